/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Private block layer: devices (opened once per process), per-loop queues,
 * requests, and the interface a block backend implements.  block.c does
 * what every backend shares: argument checks, bounce buffers for unaligned
 * memory, emulated write-zeroes and discard, status codes, metrics.
 */
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include "core/internal.h"

#define EVPL_BLOCK_MAX_IOV 64
#define EVPL_BLOCK_ALIGN   4096

enum evpl_block_op {
    EVPL_BLOCK_OP_READ = 0,
    EVPL_BLOCK_OP_WRITE = 1,
    EVPL_BLOCK_OP_FLUSH = 2,
    EVPL_BLOCK_OP_DISCARD = 3,
    EVPL_BLOCK_NOPS = 4,
};

struct evpl_block_queue;

struct evpl_block_req {
#ifdef HAVE_IO_URING
    struct evpl_uring_req ureq; /* io_uring backends' completion hook */
#endif
    struct evpl_block_queue *queue;
    uint8_t op;
    uint8_t sync;
    uint8_t zeroes; /* one chunk of a write-zeroes (emulated, or native) */
    uint8_t native; /* the device's own write-zeroes command */
    int niov;
    uint64_t offset;
    uint64_t bytes;
    uint64_t start_ns;
    evpl_block_callback_t callback;
    void *private_data;
    void *bounce;                         /* aligned copy of unaligned memory */
    struct iovec bounce_iov;              /* the bounce as the kernel sees it */
    struct iovec *kiov;                   /* what the kernel sees: iov, or the bounce */
    int nkiov;                            /*   and how many */
    uint64_t zero_end;                    /* write-zeroes: end of the range */
    int zero_status;                      /* write-zeroes: first error */
    int64_t fail_res;                     /* refused: the result it ends with */
    struct evpl_block_req *next;          /* free list, backend lists */
    char backend[64];                     /* backend's per-request state (libaio: iocb) */
    struct iovec iov[EVPL_BLOCK_MAX_IOV]; /* the caller's memory */
};

/* A FIFO of requests linked through next (refused, waiting, backlog). */
struct evpl_block_fifo {
    struct evpl_block_req *head, *tail;
    uint64_t n;
};

static inline void
evpl__block_fifo_push(struct evpl_block_fifo *f, struct evpl_block_req *r)
{
    r->next = NULL;
    if (f->tail) {
        f->tail->next = r;
    } else {
        f->head = r;
    }
    f->tail = r;
    f->n++;
} /* evpl__block_fifo_push */

/* The oldest request, or NULL. */
static inline struct evpl_block_req *
evpl__block_fifo_pop(struct evpl_block_fifo *f)
{
    struct evpl_block_req *r = f->head;

    if (r) {
        f->head = r->next;
        if (!f->head) {
            f->tail = NULL;
        }
        f->n--;
    }
    return r;
} /* evpl__block_fifo_pop */

struct evpl_block_stats {
    _Atomic uint64_t count[EVPL_BLOCK_NOPS];
    _Atomic uint64_t lat_sum[EVPL_BLOCK_NOPS];
    _Atomic uint64_t lat[EVPL_BLOCK_NOPS][64];
    _Atomic uint64_t bytes_sum[EVPL_BLOCK_NOPS];
    _Atomic uint64_t bytes[EVPL_BLOCK_NOPS][64];
    _Atomic int64_t depth;
};

struct evpl_block_backend;

struct evpl_block_device {
    const struct evpl_block_backend *backend;
    char *uri;
    char *label; /* uri escaped for a metric label value */
    int fd;
    dev_t st_dev;
    ino_t st_ino;
    uint64_t size;
    uint64_t max_request;
    uint32_t sector;
    uint32_t caps;       /* EVPL_BLOCK_CAP_* */
    uint64_t max_zeroes; /* native write-zeroes: bytes per command */
    _Atomic int queues;
    void *private_data; /* backend */
    struct evpl_block_stats stats;
    struct evpl_block_device *next; /* open devices */
};

struct evpl_block_refused;

struct evpl_block_queue {
    struct evpl_block_device *dev;
    struct evpl *evpl;
    uint64_t outstanding; /* requests whose callback has not run */
    struct evpl_block_req *free;
    struct evpl_iovec zero_iov; /* emulated write-zeroes: registered memory */
    uint64_t zero_len;
    void *private_data; /* backend */
    /* requests a backend refused at submission, failed on a later pass */
    struct evpl_block_fifo failed;
    struct evpl_deferral fail_deferral;
    /* kicked: fail_run on the next pass (refusals made after it ran in
     * this one; no timer, which a virtual clock would hold back) */
    int failing; /* fail_run is on the stack */
    int dead;    /* closed meanwhile: fail_run frees the queue */
    /* refused for their arguments, failed later (by fail_run too) */
    struct evpl_block_refused *refused_head, *refused_tail;
    uint64_t refused_n;
    uint64_t fail_pass; /* the pass fail_run last ran in (see fail_soon) */
    int closing;        /* evpl_block_close_queue is on the stack */
    struct evpl_block_queue *loop_next, *loop_prev; /* the loop's open queues */
};

enum {
    EVPL_BLOCK_CAP_DISCARD = 1u << 0,   /* op DISCARD reaches the device */
    EVPL_BLOCK_CAP_ZEROES = 1u << 1,    /* native write-zeroes (req->native) */
    EVPL_BLOCK_CAP_NO_BOUNCE = 1u << 2, /* the backend checks memory itself */
};

struct evpl_block_backend {
    enum evpl_block_protocol_id id;
    const char *name; /* metric label "type" */
    /* 1 usable, 0 not; -1 not now (as for protocols) */
    int (*available)(void);
    /* Open uri (the generic part opened nothing): set fd, size, sector,
     * max_request, private_data.  0 or a negative errno. */
    int (*open)(struct evpl_block_device *dev, const char *uri);
    void (*close)(struct evpl_block_device *dev);
    int (*queue_open)(struct evpl *evpl, struct evpl_block_queue *q);
    void (*queue_close)(struct evpl *evpl, struct evpl_block_queue *q);
    /* Hand a read, write or flush to the kernel by the end of this pass. */
    void (*submit)(struct evpl *evpl, struct evpl_block_queue *q, struct evpl_block_req *req);
    /* Wait for and complete requests until none is outstanding. */
    void (*drain)(struct evpl *evpl, struct evpl_block_queue *q);
};

/* A backend reports a request done: res = bytes transferred or -errno. */
void evpl__block_complete(struct evpl *evpl, struct evpl_block_req *req, int64_t res);
/* The same on a later pass: for a request refused inside submit (the
 * callback never runs inside the caller's evpl_block_* call). */
void evpl__block_complete_later(struct evpl *evpl, struct evpl_block_req *req, int64_t res);

/* Requests the backend still has (outstanding, less those failed later):
 * what a drain waits for. */
static inline uint64_t
evpl__block_inflight(const struct evpl_block_queue *q)
{
    return q->outstanding - q->failed.n;
}

/* For file backends: open path O_RDWR|O_DIRECT and fill size/sector; and
 * close it. */
int evpl__block_open_file(struct evpl_block_device *dev, const char *path);
void evpl__block_close_file(struct evpl_block_device *dev);

/* Metrics text for evpl_metrics_scrape; returns bytes written or -1. */
int evpl__block_metrics(char *buf, int size);
