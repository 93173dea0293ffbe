/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * EVPL_BLOCK_PROTOCOL_LIBAIO: Linux AIO (libaio) on files and block
 * devices with O_DIRECT.  One AIO context per queue; a polling loop's
 * requests of a pass are submitted together by one io_submit at the end of
 * the pass, a sleeping loop's each at once;
 * completions signal an eventfd the loop watches, and are reaped from the
 * context's ring in user space (no io_getevents call) where the kernel
 * exposes it, which is also what the poll callback does in poll mode.
 */
#include <errno.h>
#include <libaio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "block/block.h"

#define AIO_RING_MAGIC 0xa10a10a1

/* The kernel's completion ring at the context's address (fs/aio.c). */
struct aio_ring {
    unsigned id;
    unsigned nr;
    unsigned head;
    unsigned tail;
    unsigned magic;
    unsigned compat_features;
    unsigned incompat_features;
    unsigned header_length;
    struct io_event io_events[];
};

struct aqueue {
    io_context_t ctx;
    unsigned depth;    /* the context's size */
    unsigned inflight; /* submitted, not completed */
    int efd;
    int busy;        /* reap() or submit_now() is on the stack */
    int dead;        /* closed meanwhile: the outermost of them frees it */
    int submitting;  /* submit_now() is on the stack */
    int retry_armed; /* the kernel refused for now: retry timer set */
    struct evpl_timer retry;
    int level_triggered; /* select(2): the eventfd must be read to go quiet */
    struct evpl_event event;
    struct evpl_poll *poll;
    struct evpl_deferral submit;
    struct evpl_block_queue *q;
    struct iocb **batch; /* this pass's requests, in order */
    unsigned nbatch, batch_cap;
};

static void
aq_free(struct aqueue *aq)
{
    close(aq->efd);
    io_destroy(aq->ctx);
    free(aq->batch);
    free(aq);
} /* aq_free */

static int
libaio_available(void)
{
    return evpl_shared->config->libaio_enabled;
} /* libaio_available */

static void
complete_event(struct evpl *evpl, struct io_event *ev)
{
    struct evpl_block_req *r = ev->data;
    long res = (long) ev->res;

    evpl__block_complete(evpl, r, res);
} /* complete_event */

/* Reap what is there, without blocking; returns how many.  At most the
 * requests in flight on entry: those the callbacks submit may complete
 * inside io_submit (a file system without asynchronous reads), and reaping
 * them too would never return to the loop.  A callback may close the
 * queue: it is then freed here, once nothing of it is in use. */
static int
reap(struct evpl *evpl, struct aqueue *aq)
{
    struct aio_ring *ring = (struct aio_ring *) aq->ctx;
    int n = 0, user = ring->magic == AIO_RING_MAGIC && ring->incompat_features == 0;
    unsigned budget = aq->inflight;

    aq->busy++;
    while (!aq->dead && (unsigned) n < budget) {
        struct io_event ev;

        if (user) {
            /* re-read each time: a callback may have consumed events
             * (draining a queue it closes) */
            unsigned head = __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE);
            unsigned tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);

            if (head == tail) {
                break;
            }
            ev = ring->io_events[head];
            __atomic_store_n(&ring->head, (head + 1) % ring->nr, __ATOMIC_RELEASE);
        } else {
            struct timespec zero = {0, 0};

            if (io_getevents(aq->ctx, 0, 1, &ev, &zero) != 1) {
                break;
            }
        }
        aq->inflight--;
        n++;
        complete_event(evpl, &ev);
    }
    if (--aq->busy == 0 && aq->dead) {
        aq_free(aq); /* closed from one of the callbacks */
        return n;
    }
    if (!aq->dead && aq->nbatch && aq->inflight < aq->depth) {
        evpl_defer(evpl, &aq->submit); /* requests that waited for room */
    }
    return n;
} /* reap */

static void
batch_drop(struct aqueue *aq, unsigned n)
{
    aq->nbatch -= n;
    memmove(aq->batch, aq->batch + n, aq->nbatch * sizeof(*aq->batch));
} /* batch_drop */

static void retry_submit(struct evpl *evpl, struct evpl_timer *timer);

/*
 * Submit the batch, front first, while the context has room (when it has
 * none, the reap that makes room resubmits).  At once from submit()
 * (at_once): a refused request is left for the pass's deferral, so no
 * callback runs inside the caller's evpl_block_* call.  A refused request
 * leaves the batch before its callback runs; requests the callback makes
 * are appended (and go with the deferral), and it may close the queue.
 */
static void
submit_now(struct evpl *evpl, struct aqueue *aq, int at_once)
{
    int outer = !aq->submitting;

    aq->busy++;
    aq->submitting = 1;
    while (aq->nbatch && aq->inflight < aq->depth && !aq->dead) {
        unsigned n = aq->nbatch < aq->depth - aq->inflight ? aq->nbatch : aq->depth - aq->inflight;
        int rc = io_submit(aq->ctx, (long) n, aq->batch);

        if (rc == -EAGAIN || rc == 0) {
            /* the kernel is short of something: completions resubmit, and
             * with none due a timer does */
            if (!aq->inflight && !aq->retry_armed) {
                aq->retry_armed = 1;
                evpl_add_oneshot_timer(evpl, &aq->retry, retry_submit, 1000);
            }
            break;
        }
        if (rc < 0) {
            struct evpl_block_req *r = aq->batch[0]->data;

            if (at_once) {
                evpl_defer(evpl, &aq->submit);
                break;
            }
            /* this request is refused (bad fd or arguments): fail it alone,
             * from the block layer's refusals (a callback that retries it
             * must not keep this loop going) */
            batch_drop(aq, 1);
            evpl__block_complete_later(evpl, r, rc);
            continue;
        }
        aq->inflight += (unsigned) rc;
        batch_drop(aq, (unsigned) rc);
    }
    if (outer) {
        aq->submitting = 0;
    }
    if (--aq->busy == 0 && aq->dead) {
        aq_free(aq); /* closed from a callback */
    }
} /* submit_now */

static void
retry_submit(struct evpl *evpl, struct evpl_timer *timer)
{
    struct aqueue *aq = container_of(timer, struct aqueue, retry);

    aq->retry_armed = 0;
    submit_now(evpl, aq, 0);
} /* retry_submit */

static void
submit_batch(struct evpl *evpl, void *arg)
{
    submit_now(evpl, arg, 0);
} /* submit_batch */

static void
submit(struct evpl *evpl, struct evpl_block_queue *q, struct evpl_block_req *r)
{
    struct aqueue *aq = q->private_data;
    struct iocb *cb = (struct iocb *) r->backend;

    _Static_assert(sizeof(struct iocb) <= sizeof(r->backend), "iocb fits the request");
    switch (r->op) {
        case EVPL_BLOCK_OP_READ:
            if (r->nkiov == 1) {
                /* one piece: no iovec for the kernel to import */
                io_prep_pread(cb, q->dev->fd, r->kiov[0].iov_base, r->kiov[0].iov_len,
                              (long long) r->offset);
            } else {
                io_prep_preadv(cb, q->dev->fd, r->kiov, r->nkiov, (long long) r->offset);
            }
            break;
        case EVPL_BLOCK_OP_WRITE:
            if (r->nkiov == 1 && !r->sync) {
                io_prep_pwrite(cb, q->dev->fd, r->kiov[0].iov_base, r->kiov[0].iov_len,
                               (long long) r->offset);
            } else {
                io_prep_pwritev2(cb, q->dev->fd, r->kiov, r->nkiov, (long long) r->offset,
                                 r->sync ? RWF_DSYNC : 0);
            }
            break;
        default:
            io_prep_fsync(cb, q->dev->fd);
            break;
    }
    cb->data = r;
    io_set_eventfd(cb, aq->efd);
    if (aq->nbatch == aq->batch_cap) {
        aq->batch_cap = aq->batch_cap ? aq->batch_cap * 2 : 64;
        aq->batch = evpl__realloc(aq->batch, aq->batch_cap * sizeof(*aq->batch));
    }
    aq->batch[aq->nbatch++] = cb;
    if (!evpl->poll_mode && !aq->submitting) {
        /* a loop that sleeps between completions submits each request at
         * once (see the io_uring backend: the device gets the first of a
         * burst of new requests while the rest are still being made) */
        submit_now(evpl, aq, 1);
    } else {
        evpl__defer_handover(evpl, &aq->submit); /* one io_submit at the end of the pass */
    }
} /* submit */

static void
efd_ready(struct evpl *evpl, struct evpl_event *event)
{
    struct aqueue *aq = container_of(event, struct aqueue, event);

    if (aq->level_triggered) {
        uint64_t v;

        (void) read(aq->efd, &v, sizeof(v));
    }
    /* epoll and io_uring report every signal as a new edge: the counter
     * need not be reset (it cannot overflow: 2^64 completions) */
    evpl__event_clear(evpl, event, EVPL_EV_READABLE);
    reap(evpl, aq);
} /* efd_ready */

static void
poll_cb(struct evpl *evpl, void *private_data)
{
    struct aqueue *aq = private_data;

    if (aq->inflight) {
        reap(evpl, aq);
    }
} /* poll_cb */

static int
queue_open(struct evpl *evpl, struct evpl_block_queue *q)
{
    struct aqueue *aq = evpl__zalloc(sizeof(*aq));
    int rc;

    aq->depth = evpl_shared->config->libaio_max_pending;
    aq->level_triggered = strcmp(evpl->mech->name, "select") == 0;
    aq->q = q;
    rc = io_setup((int) aq->depth, &aq->ctx);
    if (rc < 0) {
        free(aq);
        return rc;
    }
    aq->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (aq->efd < 0) {
        rc = -errno;
        io_destroy(aq->ctx);
        free(aq);
        return rc;
    }
    evpl__event_init(&aq->event, aq->efd, efd_ready, NULL, NULL);
    aq->event.flags = EVPL_EV_READ_INTEREST;
    rc = evpl__event_add(evpl, &aq->event);
    if (rc < 0) {
        close(aq->efd);
        io_destroy(aq->ctx);
        free(aq);
        return rc;
    }
    evpl_deferral_init(&aq->submit, submit_batch, aq);
    aq->poll = evpl__add_completion_poll(evpl, NULL, NULL, poll_cb, aq);
    q->private_data = aq;
    return 0;
} /* queue_open */

static void
drain(struct evpl *evpl, struct evpl_block_queue *q)
{
    struct aqueue *aq = q->private_data;

    while (evpl__block_inflight(q)) {
        struct io_event evs[64];
        int got;

        if (aq->nbatch) {
            evpl_remove_deferral(evpl, &aq->submit);
            submit_batch(evpl, aq);
        }
        if (!aq->inflight) {
            if (aq->nbatch) {
                /* nothing in flight and the kernel still takes nothing
                 * (EAGAIN): no completion can make room, so the waiting
                 * requests end here with its word for it, as the io_uring
                 * backend's do */
                struct evpl_block_req *r = aq->batch[0]->data;

                batch_drop(aq, 1);
                evpl__block_complete(evpl, r, -EAGAIN);
            }
            continue; /* (requests refused at submission completed already) */
        }
        got = io_getevents(aq->ctx, 1, 64, evs, NULL);
        for (int i = 0; i < got; i++) {
            aq->inflight--;
            complete_event(evpl, &evs[i]);
        }
    }
} /* drain */

static void
queue_close(struct evpl *evpl, struct evpl_block_queue *q)
{
    struct aqueue *aq = q->private_data;

    evpl_remove_deferral(evpl, &aq->submit);
    evpl_remove_poll(evpl, aq->poll);
    evpl__event_remove(evpl, &aq->event);
    if (aq->retry_armed) {
        evpl_remove_timer(evpl, &aq->retry);
    }
    if (aq->busy) {
        aq->dead = 1; /* closed from a completion callback: freed on the way out */
        return;
    }
    aq_free(aq);
} /* queue_close */

const struct evpl_block_backend evpl_block_libaio = {
    .id = EVPL_BLOCK_PROTOCOL_LIBAIO,
    .name = "libaio",
    .available = libaio_available,
    .open = evpl__block_open_file,
    .close = evpl__block_close_file,
    .queue_open = queue_open,
    .queue_close = queue_close,
    .submit = submit,
    .drain = drain,
};
