/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * libevpl_rpc2: ONC RPC v2 (RFC 5531) on evpl loops (spec rpc2.md).
 *
 * A connection is a bind.  On stream protocols every record travels with
 * RFC 5531 §11 record marking (the segment callback cuts the stream at
 * fragment boundaries; fragments of one record are gathered by reference
 * until the last one).  On connected message protocols with RDMA (TCP-RDMA,
 * in-process, RDMA CM RC) each message starts with an RFC 8166 transport
 * header, and bulk payloads may move by RDMA read/write (chunks).
 *
 * Generated stubs leave `reserve` bytes in front of the arguments or
 * results; the RPC header and the transport header are written backwards
 * into them, so a message goes out as the stub's own iovecs.
 *
 * Server calls: one `struct rpc2_sreq` per received call, recycled per
 * thread, carrying the decode buffer (dbuf) the arguments live in until the
 * handler replies.  Client calls: one `struct evpl_rpc2_request` per call
 * in flight, found by xid.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics_source.h"
#include "core/next_pass.h"
#include "net/hold.h"
#include "rpc2/rpc2.h"

#define CLIENT_DBUF_SIZE (1u << 20)
#define DBUF_MIN         (64u << 10)
#define DBUF_PER_BYTE    8 /* decoded structures per wire byte, at most */
#define SREQ_CACHE       64
#define MSG_INLINE       8 /* iovecs of a call held without an allocation */
#define SPREAD_INLINE    4 /* iovecs of a chunk kept without an allocation */
/* Flow control of a connection a server accepted on a stream protocol: it
 * takes no more calls while this many reply bytes wait to be sent (a
 * client that calls and never reads) or this many calls are being served
 * (a handler that answers later, or never); they wait in its receive
 * buffer, and past stream_recv_limit in the peer's socket. */
#define RPC2_SEND_HIGH   (16u << 20)
#define RPC2_SEND_MSGS   16384 /* a small reply costs ~300 bytes queued, not its size */
#define RPC2_SERVING_MAX 1024
/* ... and it reads at most this far ahead of the calls it takes (not
 * stream_recv_limit, 64 MiB by default: a client that calls and never
 * reads made the server hold that much of its calls).  A record longer
 * than this is still read whole: a segmented bind waiting for the rest of
 * a message reads on. */
#define RPC2_RECV_LIMIT (4u << 20)
/* ... and once its replies back up (RPC2_SEND_HIGH, RPC2_SEND_MSGS: the
 * client reads none), no further than this, and what it read ahead moves
 * out of the receive buffers it shares with other connections: none of
 * it can be served before the client reads. */
#define RPC2_STUCK_LIMIT (64u << 10)
/* Calls one such connection is served in a loop pass; the rest wait in its
 * receive buffer for the next pass, so a client that pipelines thousands
 * cannot hold the loop from the others.  All of a thread's connections
 * together are served RPC2_THREAD_CALLS, past which each still gets
 * RPC2_MIN_CALLS (a pass is bounded however many connections call at
 * once, and none waits for ever behind the others). */
#define RPC2_PASS_CALLS   256
#define RPC2_THREAD_CALLS 1024
#define RPC2_MIN_CALLS    16
#define RPC_HDR_MAX       512 /* call header with the largest AUTH_SYS credential */
#define AUTH_BODY_MAX     400 /* RFC 5531 §8.2 */

#define rpc2_error(...) evpl_log_message("error", "rpc2", __FILE__, __LINE__, __VA_ARGS__)
#define MACHINE_MAX     255

struct rpc2_seg {
    uint32_t handle;
    uint32_t length;
    uint64_t offset;
};

/* A write or reply chunk the peer offered: its segments, in order. */
struct rpc2_chunk {
    struct rpc2_seg seg[RDMA_MAX_SEGMENTS];
    int n;
    uint64_t total;
};

/* A client call in flight. */
struct rpc2_held;

struct evpl_rpc2_request {
    uint32_t xid;
    uint32_t proc;
    int status; /* set for calls failed before sending */
    struct evpl_rpc2_program *program;
    void *callback;
    void *private_data;
    /* RPC-over-RDMA: the buffers advertised to the server */
    struct evpl_iovec *read_iov; /* the read chunk's payload (ours until the reply) */
    int has_read;                /* its iovecs, one segment each */
    /* where the server writes a direct result, and a long reply: the
     * iovecs (one segment each) in *_inline, or in *_heap when more */
    struct evpl_iovec *write_iov;
    int has_write;  /* its iovecs */
    int write_lent; /* the caller's buffer: never released here */
    struct evpl_iovec *reply_iov;
    int has_reply;
    struct evpl_iovec write_inline[SPREAD_INLINE], *write_heap;
    struct evpl_iovec reply_inline[SPREAD_INLINE], *reply_heap;
    uint32_t read_pos;      /* the read chunk's XDR position in the arguments */
    uint32_t write_max;     /* the write chunk's advertised length */
    uint32_t reply_max;     /* the reply chunk's */
    struct rpc2_held *held; /* not sent yet: waiting for CONNECTED */
    UT_hash_handle hh;
    struct evpl_rpc2_request *next;
};

/* A call being served. */
struct rpc2_sreq {
    struct evpl_rpc2_encoding enc;
    struct evpl_rpc2_thread *thread;
    struct evpl_rpc2_conn *conn; /* NULL once the connection is gone */
    struct xdr_dbuf dbuf;
    struct evpl_rpc2_cred cred;
    uint32_t gids[EVPL_RPC2_AUTH_SYS_MAX_GIDS];
    char machinename[MACHINE_MAX + 1];
    uint32_t proc;
    int rdma;
    struct evpl_rpc2_rdma_chunk read_chunk;
    struct evpl_rpc2_rdma_chunk write_chunk;
    struct evpl_iovec read_inline[SPREAD_INLINE]; /* the read chunk's buffers */
    struct evpl_iovec *read_heap;                 /* or these, when more */
    struct rpc2_seg read_segs[RDMA_MAX_SEGMENTS];
    int nread_segs;
    uint32_t read_position;
    int reads_left;
    int read_failed;
    int long_call;                 /* the read chunk is the whole call (RFC 8166 §3.5.3) */
    struct rpc2_chunk write_offer; /* the client's write chunk */
    int write_offered;             /* it sent one (maybe of no segments) */
    struct rpc2_chunk reply_offer; /* the client's reply chunk (n 0: none) */
    /* the received message, kept while the read chunk is fetched: in
     * msg_inline when it fits (no allocation per call) */
    struct evpl_iovec *msg;
    int nmsg;
    struct evpl_iovec msg_inline[MSG_INLINE];
    uint32_t msglen;
    uint32_t args_pos;
    uint32_t args_len;
    struct evpl_rpc2_program *program;
    struct rpc2_gss_ctx *gss; /* RPCSEC_GSS DATA call: its context */
    uint32_t gss_seq;
    uint32_t gss_svc;
    int orphaned; /* its connection is gone: on the thread's orphans */
    int dead;     /* its thread is gone too: the reply only frees it */
    struct rpc2_sreq *prev;
    struct rpc2_sreq *next;
};

/* The library's side of a connection. */
struct rpc2_conn {
    struct evpl_rpc2_conn pub;
    int stream;                     /* record marking (else RPC-over-RDMA) */
    int closing;                    /* evpl_close called */
    int gone;                       /* DISCONNECTED seen */
    int connected;                  /* CONNECTED seen */
    int flow;                       /* accepted on a stream protocol: flow controlled */
    int rx_held;                    /* taking no calls (flow control) */
    int rx_stuck;                   /* ... because its replies back up */
    int nserving;                   /* calls being served */
    int pass_done;                  /* served its share of this pass (RPC2_PASS_CALLS) */
    struct evpl__budget calls;      /* calls served in a pass */
    struct evpl_deferral next_pass; /* ends pass_done */
    uint64_t unsent;                /* bytes sent and not yet reported SENT (flow) */
    uint64_t unsent_msgs;           /* messages (0 once the bytes are all reported) */
    uint32_t reasm_room;            /* free bytes after the record's last iovec, a copy */
    struct rpc2_held *held;         /* calls waiting for CONNECTED, oldest first */
    struct rpc2_held **held_tail;
    struct rpc2_sreq *sreqs;
    struct evpl_rpc2_request *failed; /* calls to complete from the loop */
    struct evpl_deferral fail_deferral;
    uint32_t credits; /* RPC-over-RDMA credits the peer asked for last */
};

struct rpc2_binding {
    struct evpl_rpc2_thread *thread;
    struct evpl_rpc2_server *server; /* compared, never read: it may be gone */
    /* the server's programs, copied: its listener's bindings outlive
     * evpl_rpc2_server_destroy and may still hand over a connection */
    struct evpl_rpc2_program *programs[4];
    int nprograms;
    struct evpl_listener_binding *lb;
    void *private_data;
    struct rpc2_binding *next;
};

struct evpl_rpc2_thread {
    struct evpl *evpl;
    evpl_rpc2_notify_callback_t notify;
    void *private_data;
    struct evpl_rpc2_conn *conns;
    struct xdr_dbuf client_dbuf;
    struct xdr_dbuf reply_dbuf;
    struct rpc2_binding *bindings;
    struct evpl__budget calls; /* calls all its connections were served in a pass */
    const struct evpl_rpc2_gss_provider *gss;
    void *gss_arg;
    struct rpc2_sreq *free_sreqs;
    int nfree_sreqs;
    struct rpc2_sreq *orphans;            /* calls served whose connection is gone */
    struct evpl_rpc2_request *free_calls; /* recycled client requests */
    int nfree_calls;
    /* evpl_rpc2_queue_depth: calls in flight by role, written by this
     * thread only, read by any thread that scrapes */
    unsigned int id;
    _Atomic int64_t depth[2];
    struct evpl_rpc2_thread *reg_prev;
    struct evpl_rpc2_thread *reg_next;
};

enum { ROLE_SERVER, ROLE_CLIENT };

struct evpl_rpc2_server {
    struct evpl_listener *listener;
    struct evpl_rpc2_program *programs[4];
    int nprograms;
};

static int rpc2_send_reply(struct evpl *evpl, struct evpl_rpc2_encoding *encoding,
                           const struct evpl_rpc2_verf *verf, xdr_iovec *iov, int niov, int length);

static inline struct rpc2_conn *
priv(struct evpl_rpc2_conn *conn)
{
    return container_of(conn, struct rpc2_conn, pub);
}

/*
 * Memory.  What a connection or a call needs is allocated as it comes,
 * and running out of it ends that connection (a log line and a close),
 * never the process: the peer sees the connection go, the other
 * connections are served on.  Only setting up (a server and its
 * attachment to a thread) aborts, as the core's configuration objects do.
 */
static void *
setup_alloc(size_t n)
{
    void *p = calloc(1, n);

    if (!p) {
        evpl_abort("rpc2", __FILE__, __LINE__, "out of memory (%zu bytes)", n);
    }
    return p;
}

/* ---- decode buffers ---- */

/* Room for want bytes of decoded structures: 0, or -ENOMEM with the
 * buffer it had (and its size) kept. */
static int
dbuf_fit(struct xdr_dbuf *d, uint64_t want)
{
    void *b;

    d->used = 0;
    if (want > (1u << 30)) {
        want = 1u << 30;
    }
    if ((uint64_t) d->size >= want) {
        return 0;
    }
    /* not zeroed: decoders write what they use, and buffers are reused
     * as they are anyway; zeroing touched 64 KiB per call being served */
    b = malloc(want);
    if (!b) {
        return -ENOMEM;
    }
    free(d->buffer);
    d->buffer = b;
    d->size = (int) want;
    return 0;
}

static void *
dbuf_space(struct xdr_dbuf *d, size_t n)
{
    void *p;

    if ((size_t) d->used + n > (size_t) d->size) {
        return NULL;
    }
    p = (char *) d->buffer + d->used;
    d->used = (int) (((size_t) d->used + n + 7) & ~(size_t) 7);
    if (d->used > d->size) {
        d->used = d->size;
    }
    return p;
}

/* ---- iovec helpers ---- */

/* Library-side releases: a GLOBAL buffer the application handed over is
 * the application's to free (memory.md §6), so these leave it alone. */
static void
release_all(struct evpl *evpl, struct evpl_iovec *iov, int niov)
{
    for (int i = 0; i < niov; i++) {
        evpl_iovec_release_internal(evpl, &iov[i]);
    }
}

/* An iovec array of n entries: the caller's stack array when it fits;
 * NULL when there is no memory for it. */
#define STACK_IOV 16

static struct evpl_iovec *
iov_array(struct evpl_iovec *stack, int n)
{
    return n <= STACK_IOV ? stack : malloc((size_t) n * sizeof(*stack));
}

/* len fresh bytes in as many buffers as it takes, at most max (0: any
 * number): in inl (SPREAD_INLINE entries) when they fit, else in an array
 * allocated here (*heap, the caller's to free); *arr is the one used.
 * Returns the number of iovecs, or -1 (no memory, or more than max
 * buffers: refused before any is taken). */
static int
alloc_spread(struct evpl *evpl, uint64_t len, int max, struct evpl_iovec *inl,
             struct evpl_iovec **heap, struct evpl_iovec **arr)
{
    int n;

    *heap = NULL;
    *arr = inl;
    if (len > UINT32_MAX) {
        return -1;
    }
    n = evpl_iovec_alloc(evpl, len ? (unsigned int) len : 1, 8, SPREAD_INLINE, 0, inl);
    if (n > 0 || (max && max <= SPREAD_INLINE)) {
        return n > 0 ? n : -1;
    }
    if (!max) {
        max = (int) (len / 4096) + 2; /* buffers are 4 KiB at least */
    }
    *heap = malloc((size_t) max * sizeof(**heap));
    if (!*heap) {
        return -1;
    }
    n = evpl_iovec_alloc(evpl, (unsigned int) len, 8, (unsigned int) max, 0, *heap);
    if (n <= 0) {
        free(*heap);
        *heap = NULL;
        return -1;
    }
    *arr = *heap;
    return n;
}

static void
iov_array_free(struct evpl_iovec *a, struct evpl_iovec *stack)
{
    if (a != stack) {
        free(a);
    }
}

/*
 * A borrowed view of bytes [from, from + len) of a message: entries of
 * out point into iov's buffers without references of their own.
 */
static int
view(const struct evpl_iovec *iov, int niov, uint32_t from, uint32_t len, struct evpl_iovec *out,
     int maxout)
{
    int n = 0;

    for (int i = 0; i < niov && len; i++) {
        uint32_t l = iov[i].length;

        if (from >= l) {
            from -= l;
            continue;
        }
        if (n == maxout) {
            return -1;
        }
        out[n] = iov[i];
        out[n].data = (char *) iov[i].data + from;
        out[n].length = l - from < len ? l - from : len;
        len -= out[n].length;
        from = 0;
        n++;
    }
    return len ? -1 : n;
}

/* ---- metrics (core.md §7: evpl_rpc2_queue_depth) ---- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct evpl_rpc2_thread *registry;
static unsigned int registry_next_id;

/* One writer per thread: a plain load and store, no locked instruction. */
static inline void
depth_add(struct evpl_rpc2_thread *t, int role, int64_t d)
{
    atomic_store_explicit(&t->depth[role],
                          atomic_load_explicit(&t->depth[role], memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static int
rpc2_metrics(char *buf, int size)
{
    static const char *const roles[2] = {"server", "client"};
    int len = 0;

    pthread_mutex_lock(&registry_lock);
    if (registry) {
        len = snprintf(buf, (size_t) size,
                       "# HELP evpl_rpc2_queue_depth RPC calls in flight.\n"
                       "# TYPE evpl_rpc2_queue_depth gauge\n");
    }
    for (struct evpl_rpc2_thread *t = registry; t; t = t->reg_next) {
        for (int role = 0; role < 2; role++) {
            len += snprintf(
                buf + len, len < size ? (size_t) (size - len) : 0,
                "evpl_rpc2_queue_depth{role=\"%s\",thread=\"%u\"} %lld\n", roles[role], t->id,
                (long long) atomic_load_explicit(&t->depth[role], memory_order_relaxed));
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return len < size ? len : -1;
}

static void
metrics_register(void)
{
    if (evpl__metrics_source_add(rpc2_metrics) < 0) {
        rpc2_error("no room for the RPC metrics in evpl_metrics_scrape");
    }
}

static void
registry_add(struct evpl_rpc2_thread *t)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    /* outside registry_lock: a scrape holds the core's source lock while
     * rpc2_metrics takes registry_lock (the other order would deadlock) */
    pthread_once(&once, metrics_register);
    pthread_mutex_lock(&registry_lock);
    t->id = registry_next_id++;
    t->reg_next = registry;
    if (registry) {
        registry->reg_prev = t;
    }
    registry = t;
    pthread_mutex_unlock(&registry_lock);
}

static void
registry_remove(struct evpl_rpc2_thread *t)
{
    pthread_mutex_lock(&registry_lock);
    if (t->reg_prev) {
        t->reg_prev->reg_next = t->reg_next;
    } else {
        registry = t->reg_next;
    }
    if (t->reg_next) {
        t->reg_next->reg_prev = t->reg_prev;
    }
    pthread_mutex_unlock(&registry_lock);
}

/* The library unloading (dlclose): scrapes must not call into it after. */
static void __attribute__((destructor)) rpc2_metrics_unload(void)
{
    evpl__metrics_source_remove(rpc2_metrics);
}

/* ---- threads ---- */

EVPL_API struct evpl_rpc2_thread *
evpl_rpc2_thread_init(struct evpl *evpl, struct evpl_rpc2_program **programs, int nprograms,
                      evpl_rpc2_notify_callback_t notify_callback, void *private_data)
{
    struct evpl_rpc2_thread *t = calloc(1, sizeof(*t));

    (void) programs; /* the programs a thread serves come from its servers */
    (void) nprograms;
    if (!t || dbuf_fit(&t->client_dbuf, CLIENT_DBUF_SIZE) < 0 ||
        dbuf_fit(&t->reply_dbuf, DBUF_MIN) < 0) {
        rpc2_error("out of memory for a thread");
        if (t) {
            free(t->client_dbuf.buffer);
            free(t);
        }
        return NULL;
    }
    t->evpl = evpl;
    t->notify = notify_callback;
    t->private_data = private_data;
    registry_add(t);
    return t;
}

static void sreq_free(struct rpc2_sreq *s);

static void sreq_orphan_release(struct rpc2_sreq *s);

EVPL_API void
evpl_rpc2_thread_destroy(struct evpl_rpc2_thread *thread)
{
    struct rpc2_sreq *s;

    if (!thread) {
        return;
    }
    for (struct evpl_rpc2_conn *c = thread->conns; c; c = c->next) {
        if (!priv(c)->closing) {
            priv(c)->closing = 1;
            evpl_close(thread->evpl, c->bind);
        }
    }
    while (thread->conns) {
        evpl_continue(thread->evpl);
    }
    /* calls the application still holds: a reply after this only frees */
    while (thread->orphans) {
        sreq_orphan_release(thread->orphans);
    }
    while (thread->bindings) {
        evpl_rpc2_server_detach(thread, thread->bindings->server);
    }
    while (thread->free_calls) {
        struct evpl_rpc2_request *req = thread->free_calls;

        thread->free_calls = req->next;
        free(req);
    }
    while ((s = thread->free_sreqs)) {
        thread->free_sreqs = s->next;
        free(s->dbuf.buffer);
        free(s);
    }
    registry_remove(thread);
    free(thread->client_dbuf.buffer);
    free(thread->reply_dbuf.buffer);
    free(thread);
}

EVPL_API void *
evpl_rpc2_thread_get_client_dbuf(struct evpl_rpc2_thread *thread)
{
    thread->client_dbuf.used = 0;
    return &thread->client_dbuf;
}

EVPL_API void
evpl_rpc2_set_gss_provider(struct evpl_rpc2_thread *thread,
                           const struct evpl_rpc2_gss_provider *provider, void *provider_arg)
{
    thread->gss = provider;
    thread->gss_arg = provider_arg;
}

static void
notify(struct evpl_rpc2_thread *t, struct evpl_rpc2_conn *conn, unsigned int type, void *arg)
{
    struct evpl_rpc2_notify n = {.notify_type = type};

    if (t->notify) {
        t->notify(t, conn, &n, arg);
    }
}

/* ---- sending ---- */

/* Flow control (RPC2_SEND_HIGH, RPC2_SEND_MSGS, RPC2_SERVING_MAX): hold or
 * release the connection's receive side as its limits are crossed. */
static void
flow_check(struct evpl *evpl, struct rpc2_conn *c)
{
    int hold, stuck;

    if (!c->flow || c->closing || c->gone) {
        return;
    }
    stuck = c->unsent >= RPC2_SEND_HIGH || c->unsent_msgs >= RPC2_SEND_MSGS;
    hold = stuck || c->nserving >= RPC2_SERVING_MAX || c->pass_done;
    if (stuck != c->rx_stuck) {
        c->rx_stuck = stuck;
        evpl__bind_set_recv_limit(evpl, c->pub.bind, stuck ? RPC2_STUCK_LIMIT : RPC2_RECV_LIMIT);
        evpl__bind_compact_recv(evpl, c->pub.bind, stuck);
    }
    if (hold != c->rx_held) {
        c->rx_held = hold;
        evpl__bind_hold_recv(evpl, c->pub.bind, hold);
    }
}

/* A call taken from c: past its share of the pass, c takes no more until
 * the next one. */
static void
flow_served(struct evpl *evpl, struct rpc2_conn *c)
{
    struct evpl__budget *all = &c->pub.thread->calls;
    uint64_t pass = evpl__pass(evpl);

    if (!c->flow) {
        return;
    }
    evpl__budget_spend(pass, &c->calls, all, 1);
    if (!evpl__budget_left(pass, &c->calls, RPC2_PASS_CALLS, all, RPC2_THREAD_CALLS,
                           RPC2_MIN_CALLS)) {
        c->pass_done = 1;
        evpl__defer_next(evpl, &c->next_pass);
    }
}

static void
next_pass(struct evpl *evpl, void *arg)
{
    struct rpc2_conn *c = arg;

    c->pass_done = 0;
    flow_check(evpl, c);
}

/* bytes in msgs messages queued (sent 0) or reported SENT (sent 1) */
static void
flow_sent(struct evpl *evpl, struct rpc2_conn *c, uint64_t bytes, uint64_t msgs, int sent)
{
    if (!c->flow) {
        return;
    }
    if (sent) {
        c->unsent = c->unsent > bytes ? c->unsent - bytes : 0;
        c->unsent_msgs = c->unsent_msgs > msgs && c->unsent ? c->unsent_msgs - msgs : 0;
    } else {
        c->unsent += bytes;
        c->unsent_msgs += msgs;
    }
    flow_check(evpl, c);
}

/* A message copied from buf (errors, GSS replies): counted as sent. */
static void
send_copy(struct evpl *evpl, struct evpl_rpc2_conn *conn, const void *buf, unsigned int length)
{
    evpl_send(evpl, conn->bind, buf, length);
    flow_sent(evpl, priv(conn), length, 1, 0);
}

static void
send_message(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_iovec *iov, int niov,
             uint32_t length)
{
    if (!conn || priv(conn)->closing || priv(conn)->gone) {
        release_all(evpl, iov, niov);
        return;
    }
    evpl_sendv(evpl, conn->bind, iov, niov, (int) length, EVPL_SEND_FLAG_TAKE_REF);
    flow_sent(evpl, priv(conn), length, 1, 0);
}

/*
 * Put hdr (hlen bytes) in front of the message whose first iovec starts
 * with `reserve` bytes of head-room.  Returns the number of iovecs (the
 * array may grow by one at its front when the header does not fit).
 */
static int
prepend(struct evpl *evpl, const uint8_t *hdr, uint32_t hlen, uint32_t reserve,
        struct evpl_iovec *iov, int niov, struct evpl_iovec *out)
{
    int n = 0;

    if (niov > 0 && hlen <= reserve && iov[0].length >= reserve) {
        iov[0].data = (char *) iov[0].data + (reserve - hlen);
        iov[0].length -= reserve - hlen;
        memcpy(iov[0].data, hdr, hlen);
    } else {
        if (evpl_iovec_alloc(evpl, hlen, 8, 1, 0, &out[0]) != 1) {
            return -1;
        }
        memcpy(out[0].data, hdr, hlen);
        n = 1;
        if (niov > 0) {
            uint32_t skip = reserve < iov[0].length ? reserve : iov[0].length;

            iov[0].data = (char *) iov[0].data + skip;
            iov[0].length -= skip;
        }
    }
    for (int i = 0; i < niov; i++) {
        out[n++] = iov[i];
    }
    return n;
}

/* ---- connections ---- */

static int segment_cb(struct evpl *evpl, struct evpl_bind *bind, void *private_data);
static void close_conn(struct evpl *evpl, struct rpc2_conn *c);
static void conn_event(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify,
                       void *private_data);
static void complete_failed(struct evpl *evpl, void *private_data);

/* What a connection needed could not be had: it ends (see setup_alloc). */
static void
out_of_memory(struct evpl *evpl, struct rpc2_conn *c, const char *what)
{
    rpc2_error("out of memory for %s: closing the connection", what);
    close_conn(evpl, c);
}

static struct rpc2_conn *
conn_new(struct evpl_rpc2_thread *t, enum evpl_protocol_id protocol)
{
    struct rpc2_conn *c = calloc(1, sizeof(*c));

    if (!c) {
        return NULL;
    }
    c->pub.protocol = protocol;
    c->pub.thread = t;
    c->pub.next_xid = 1;
    c->stream = evpl_protocol_is_stream(protocol);
    c->pub.rdma = !c->stream;
    c->credits = 1;
    c->held_tail = &c->held;
    evpl_deferral_init(&c->fail_deferral, complete_failed, c);
    evpl_deferral_init(&c->next_pass, next_pass, c);
    c->pub.next = t->conns;
    if (t->conns) {
        t->conns->prev = &c->pub;
    }
    t->conns = &c->pub;
    return c;
}

static int
framing_supported(enum evpl_protocol_id protocol)
{
    /* unconnected datagrams (UDP, RDMA CM UD) carry no RPC here */
    return evpl_protocol_is_stream(protocol) || protocol == EVPL_DATAGRAM_TCP_RDMA ||
           protocol == EVPL_DATAGRAM_INPROC || protocol == EVPL_DATAGRAM_RDMACM_RC;
}

EVPL_API struct evpl_rpc2_conn *
evpl_rpc2_client_connect(struct evpl_rpc2_thread *thread, int protocol,
                         struct evpl_endpoint *endpoint, struct evpl_rpc2_program **server_programs,
                         int num_server_programs, void *server_private_data)
{
    struct rpc2_conn *c;
    struct evpl_bind *bind;

    if (!framing_supported((enum evpl_protocol_id) protocol)) {
        rpc2_error("protocol %d carries no RPC (not connected)", protocol);
        return NULL;
    }
    if (num_server_programs > 4 || num_server_programs < 0) {
        rpc2_error("at most 4 callback programs per connection");
        return NULL;
    }
    c = conn_new(thread, (enum evpl_protocol_id) protocol);
    if (!c) {
        rpc2_error("out of memory for a connection");
        return NULL;
    }
    bind = evpl_connect(thread->evpl, (enum evpl_protocol_id) protocol, NULL, endpoint, conn_event,
                        c->stream ? segment_cb : NULL, c);
    if (!bind) {
        thread->conns = c->pub.next;
        if (thread->conns) {
            thread->conns->prev = NULL;
        }
        free(c);
        return NULL;
    }
    c->pub.bind = bind;
    c->pub.server_private_data = server_private_data;
    for (int i = 0; i < num_server_programs; i++) {
        server_programs[i]->send_reply_dispatch = rpc2_send_reply;
        c->pub.server_programs[i] = server_programs[i];
    }
    c->pub.num_server_programs = num_server_programs;
    return &c->pub;
}

EVPL_API void
evpl_rpc2_client_disconnect(struct evpl_rpc2_thread *thread, struct evpl_rpc2_conn *conn)
{
    struct rpc2_conn *c = priv(conn);

    if (!c->closing && !c->gone) {
        c->closing = 1;
        evpl_close(thread->evpl, conn->bind);
    }
}

EVPL_API void
evpl_rpc2_conn_get_local_address(struct evpl_rpc2_conn *conn, char *str, int len)
{
    evpl_bind_get_local_address(conn->bind, str, len);
}

EVPL_API void
evpl_rpc2_conn_get_remote_address(struct evpl_rpc2_conn *conn, char *str, int len)
{
    evpl_bind_get_remote_address(conn->bind, str, len);
}

EVPL_API void
evpl_rpc2_conn_set_private_data(struct evpl_rpc2_conn *conn, void *private_data)
{
    conn->private_data = private_data;
}

EVPL_API void *
evpl_rpc2_conn_get_private_data(struct evpl_rpc2_conn *conn)
{
    return conn->private_data;
}

/* Record marking (RFC 5531 §11): one fragment per message delivered. */
static int
segment_cb(struct evpl *evpl, struct evpl_bind *bind, void *private_data)
{
    uint8_t m[4];
    uint32_t len;

    if (evpl_peek(evpl, bind, m, 4) < 4) {
        return 0;
    }
    len =
        ((uint32_t) m[0] << 24 | (uint32_t) m[1] << 16 | (uint32_t) m[2] << 8 | m[3]) & 0x7fffffffu;
    if (len > evpl_global_config_get_rpc2_max_message_size()) {
        rpc2_error("fragment of %u bytes over the limit: closing", len);
        return -1;
    }
    return (int) (len + 4);
}

/* ---- server side ---- */

static struct rpc2_sreq *
sreq_get(struct evpl_rpc2_thread *t, uint32_t msglen)
{
    struct rpc2_sreq *s = t->free_sreqs;
    void *buf;
    int size;

    if (s) {
        t->free_sreqs = s->next;
        t->nfree_sreqs--;
        buf = s->dbuf.buffer;
        size = s->dbuf.size;
        memset(s, 0, sizeof(*s));
        s->dbuf.buffer = buf;
        s->dbuf.size = size;
    } else if (!(s = calloc(1, sizeof(*s)))) {
        return NULL;
    }
    if (dbuf_fit(&s->dbuf, (uint64_t) msglen * DBUF_PER_BYTE + DBUF_MIN) < 0) {
        free(s->dbuf.buffer);
        free(s);
        return NULL;
    }
    s->thread = t;
    s->enc.dbuf = &s->dbuf;
    depth_add(t, ROLE_SERVER, 1);
    return s;
}

static void
sreq_unlink(struct rpc2_sreq *s)
{
    if (s->orphaned) {
        if (s->prev) {
            s->prev->next = s->next;
        } else {
            s->thread->orphans = s->next;
        }
        if (s->next) {
            s->next->prev = s->prev;
        }
        s->orphaned = 0;
    } else if (s->conn) {
        struct rpc2_conn *c = priv(s->conn);

        if (s->prev) {
            s->prev->next = s->next;
        } else {
            c->sreqs = s->next;
        }
        if (s->next) {
            s->next->prev = s->prev;
        }
        s->conn = NULL;
        c->nserving--;
        flow_check(s->thread->evpl, c);
    }
}

/* A call whose connection is gone, still with the application (a reply
 * comes later): kept on its thread's list, so that the thread's end can
 * let go of what it holds (sreq_orphan_release). */
static void
sreq_orphan(struct rpc2_sreq *s)
{
    struct evpl_rpc2_thread *t = s->thread;

    sreq_unlink(s);
    s->orphaned = 1;
    s->prev = NULL;
    s->next = t->orphans;
    if (t->orphans) {
        t->orphans->prev = s;
    }
    t->orphans = s;
}

static void sreq_release(struct rpc2_sreq *s);

/* The thread ends before the application replied: what the call holds
 * goes back now; the reply, if it comes, only frees the rest. */
static void
sreq_orphan_release(struct rpc2_sreq *s)
{
    sreq_unlink(s);
    sreq_release(s);
    depth_add(s->thread, ROLE_SERVER, -1);
    s->thread = NULL;
    s->dead = 1;
}

static void
sreq_free(struct rpc2_sreq *s)
{
    struct evpl_rpc2_thread *t = s->thread;

    sreq_unlink(s);
    sreq_release(s);
    depth_add(t, ROLE_SERVER, -1);
    if (t->nfree_sreqs < SREQ_CACHE && s->dbuf.size <= (int) (4 * DBUF_MIN)) {
        s->next = t->free_sreqs;
        t->free_sreqs = s;
        t->nfree_sreqs++;
        return;
    }
    free(s->dbuf.buffer);
    free(s);
}

/* What a call being served holds: its message, chunks, GSS context. */
static void
sreq_release(struct rpc2_sreq *s)
{
    struct evpl *evpl = s->thread->evpl;

    if (s->msg) {
        release_all(evpl, s->msg, s->nmsg);
        if (s->msg != s->msg_inline) {
            free(s->msg);
        }
        s->msg = NULL;
    }
    /* chunks the handler did not take */
    if (s->read_chunk.niov > 0) {
        release_all(evpl, s->read_chunk.iov, s->read_chunk.niov);
    }
    if (s->write_chunk.niov > 0) {
        release_all(evpl, s->write_chunk.iov, s->write_chunk.niov);
    }
    free(s->read_heap);
    s->read_heap = NULL;
    if (s->gss) {
        rpc2_gss_put(s->gss);
        s->gss = NULL;
    }
}

/* Credits granted with a reply: what the client asked for, at least 1. */
static uint32_t
grant(const struct rpc2_sreq *s)
{
    uint32_t asked = s->conn ? priv(s->conn)->credits : 1;

    return asked ? asked : 1;
}

/*
 * The transport header in front of a reply: a record mark, or an
 * RPC-over-RDMA header (RFC 8166 §4.2) with the write list naming the
 * bytes placed in the client's write chunk.  Returns its length.
 */
static void rdma_write_done(int status, void *private_data);

/* the longest transport header: RPC-over-RDMA with a write chunk and a
 * reply chunk of RDMA_MAX_SEGMENTS segments each */
#define TRANSPORT_HDR_MAX (32 + 2 * (8 + RDMA_MAX_SEGMENTS * 16))

/* A chunk's segments as the reply lists them: the bytes written in each
 * (filled in order), RFC 8166 §3.6. */
static uint8_t *
put_chunk_written(uint8_t *p, const struct rpc2_chunk *c, uint64_t written)
{
    p = rpc2_put_u32(p, (uint32_t) c->n);
    for (int i = 0; i < c->n; i++) {
        uint32_t here = written < c->seg[i].length ? (uint32_t) written : c->seg[i].length;

        p = rpc2_put_u32(p, c->seg[i].handle);
        p = rpc2_put_u32(p, here);
        p = rpc2_put_u64(p, c->seg[i].offset);
        written -= here;
    }
    return p;
}

/*
 * RDMA-write len bytes of iov into the segments of c, in order; the
 * library takes its own references (the caller keeps and releases its).
 */
static void
rdma_put(struct evpl *evpl, struct evpl_bind *bind, const struct rpc2_chunk *c,
         const struct evpl_iovec *iov, int niov, uint64_t len)
{
    int i = 0;
    uint32_t off = 0;

    for (int k = 0; k < c->n && len; k++) {
        struct evpl_iovec piece[RDMA_MAX_SEGMENTS * 4];
        uint32_t want = len < c->seg[k].length ? (uint32_t) len : c->seg[k].length;
        int np = 0;

        len -= want;
        while (want && i < niov && np < (int) (sizeof(piece) / sizeof(piece[0]))) {
            uint32_t avail = iov[i].length - off, take = avail < want ? avail : want;

            piece[np] = iov[i];
            piece[np].data = (char *) iov[i].data + off;
            piece[np].length = take;
            np++;
            want -= take;
            off += take;
            if (off == iov[i].length) {
                i++;
                off = 0;
            }
        }
        evpl_rdma_write(evpl, bind, c->seg[k].handle, c->seg[k].offset, piece, np, 0,
                        rdma_write_done, NULL);
    }
}

static uint32_t
transport_header(struct rpc2_sreq *s, uint8_t *p, uint32_t xid, uint32_t rpc_len, int nomsg,
                 uint32_t written, uint32_t reply_written)
{
    uint8_t *start = p;

    if (!s->rdma) {
        rpc2_put_u32(p, 0x80000000u | rpc_len);
        return 4;
    }
    p = rpc2_put_u32(p, xid);
    p = rpc2_put_u32(p, RDMA_VERSION);
    p = rpc2_put_u32(p, grant(s));
    p = rpc2_put_u32(p, nomsg ? RDMA_NOMSG : RDMA_MSG);
    p = rpc2_put_u32(p, 0); /* no read list */
    if (s->write_offered) {
        /* the write chunk goes back with the lengths used (0 if unused),
         * even one of no segments (RFC 8166 4.2.2: the reply's write
         * list mirrors the call's) */
        p = rpc2_put_u32(p, 1);
        p = put_chunk_written(p, &s->write_offer, written == UINT32_MAX ? 0 : written);
    }
    p = rpc2_put_u32(p, 0); /* end of the write list */
    if (reply_written != UINT32_MAX) {
        p = rpc2_put_u32(p, 1);
        p = put_chunk_written(p, &s->reply_offer, reply_written);
    } else {
        p = rpc2_put_u32(p, 0);
    }
    return (uint32_t) (p - start);
}

/*
 * The reply verifier: AUTH_NONE, or for RPCSEC_GSS the MIC of the call's
 * sequence number (RFC 2203 §5.3.3.2).  Returns the bytes written, or -1
 * when the mechanism cannot sign.
 */
static int
put_verifier(struct rpc2_sreq *s, uint8_t *p, uint32_t max)
{
    struct rpc2_gss_ctx *g = s->gss;
    uint8_t seq[4];
    void *mic = NULL;
    size_t len = 0;
    int rc;

    if (!g) {
        rpc2_put_u32(p, EVPL_RPC2_AUTH_NONE);
        rpc2_put_u32(p + 4, 0);
        return 8;
    }
    rpc2_put_u32(seq, s->gss_seq);
    pthread_mutex_lock(&g->mu);
    rc = g->provider->get_mic(g->arg, g->gss, seq, 4, &mic, &len);
    pthread_mutex_unlock(&g->mu);
    if (rc != 0 || len > AUTH_BODY_MAX || 8 + ((len + 3) & ~(size_t) 3) > max) {
        free(mic);
        return -1;
    }
    p = rpc2_put_u32(p, EVPL_RPC2_AUTH_RPCSEC_GSS);
    rpc2_put_opaque(p, mic, (uint32_t) len);
    free(mic);
    return (int) (8 + ((len + 3) & ~(size_t) 3));
}

/* An error reply: MSG_ACCEPTED with accept_stat, or MSG_DENIED. */
static void
send_error(struct evpl *evpl, struct rpc2_sreq *s, uint32_t xid, int denied, uint32_t stat,
           uint32_t low, uint32_t high)
{
    uint8_t rpc[64 + AUTH_BODY_MAX], msg[TRANSPORT_HDR_MAX + 64 + AUTH_BODY_MAX], *p = rpc;
    uint32_t rlen, hlen;
    int vlen;

    p = rpc2_put_u32(p, xid);
    p = rpc2_put_u32(p, RPC_REPLY);
    if (denied) {
        p = rpc2_put_u32(p, MSG_DENIED);
        p = rpc2_put_u32(p, stat); /* RPC_MISMATCH or AUTH_ERROR */
        if (stat == RPC_MISMATCH) {
            p = rpc2_put_u32(p, low);
            p = rpc2_put_u32(p, high);
        } else {
            p = rpc2_put_u32(p, low); /* the auth_stat */
        }
    } else {
        p = rpc2_put_u32(p, MSG_ACCEPTED);
        vlen = put_verifier(s, p, AUTH_BODY_MAX + 8);
        if (vlen < 0) {
            rpc2_error("cannot sign the verifier of a reply: dropped");
            return;
        }
        p += vlen;
        p = rpc2_put_u32(p, stat);
        if (stat == ACCEPT_PROG_MISMATCH) {
            p = rpc2_put_u32(p, low);
            p = rpc2_put_u32(p, high);
        }
    }
    rlen = (uint32_t) (p - rpc);
    hlen = transport_header(s, msg, xid, rlen, 0, UINT32_MAX, UINT32_MAX);
    memcpy(msg + hlen, rpc, rlen);
    if (s->enc.reply_capture_cb) {
        struct evpl_iovec v = {.data = rpc, .length = rlen};

        s->enc.reply_capture_cb(&v, 1, (int) rlen, s->enc.reply_capture_private);
    }
    if (s->conn && !priv(s->conn)->closing && !priv(s->conn)->gone) {
        send_copy(evpl, s->conn, msg, hlen + rlen);
    }
}

static void
rdma_write_done(int status, void *private_data)
{
    (void) private_data;
    if (status) {
        rpc2_error("RDMA write of a reply chunk failed: %d", status);
    }
}

/* A reply message built flat in buf at offset room: transport header in
 * front, then the capture callback, then one copying send. */
static void
send_flat(struct evpl *evpl, struct rpc2_sreq *s, uint8_t *buf, uint32_t room, uint32_t len)
{
    uint8_t hdr[TRANSPORT_HDR_MAX];
    uint32_t hlen = transport_header(s, hdr, s->enc.xid, len, 0, UINT32_MAX, UINT32_MAX);

    if (s->enc.reply_capture_cb) {
        struct evpl_iovec v = {.data = buf + room, .length = len};

        s->enc.reply_capture_cb(&v, 1, (int) len, s->enc.reply_capture_private);
    }
    if (!s->conn || priv(s->conn)->closing || priv(s->conn)->gone) {
        return;
    }
    if (hlen <= room) {
        memcpy(buf + room - hlen, hdr, hlen);
        send_copy(evpl, s->conn, buf + room - hlen, hlen + len);
    } else {
        /* one message: header and body together */
        uint8_t *m = malloc(hlen + len);

        if (!m) {
            out_of_memory(evpl, priv(s->conn), "a reply");
            return;
        }
        memcpy(m, hdr, hlen);
        memcpy(m + hlen, buf + room, len);
        send_copy(evpl, s->conn, m, hlen + len);
        free(m);
    }
}

/*
 * RPCSEC_GSS integrity (RFC 2203 §5.3.2.2): the results travel as
 * rpc_gss_integ_data, the sequence number and results with a MIC over
 * them.  The MIC needs the bytes in one piece, so this reply is copied.
 * A reply that cannot be signed is not sent at all.
 */
static void
reply_integrity(struct evpl *evpl, struct rpc2_sreq *s, const uint8_t *rpc, uint32_t rlen,
                struct evpl_iovec *iov, int niov, uint32_t reserve, uint32_t body)
{
    struct rpc2_gss_ctx *g = s->gss;
    uint32_t room = 64, skip = reserve;
    uint8_t *buf = malloc(room + rlen + 8 + body + 3 + 8 + AUTH_BODY_MAX + 3);
    uint8_t *q, *lenp, *databody;
    void *mic = NULL;
    size_t miclen = 0;
    int mic_rc;

    if (!buf) {
        goto drop;
    }
    memcpy(buf + room, rpc, rlen);
    q = buf + room + rlen;
    lenp = q;
    q += 4;
    databody = q;
    q = rpc2_put_u32(q, s->gss_seq);
    for (int i = 0, left = (int) body; i < niov && left > 0; i++) {
        uint32_t l = iov[i].length, take;

        if (skip >= l) {
            skip -= l;
            continue;
        }
        take = l - skip < (uint32_t) left ? l - skip : (uint32_t) left;
        memcpy(q, (const char *) iov[i].data + skip, take);
        q += take;
        left -= (int) take;
        skip = 0;
    }
    pthread_mutex_lock(&g->mu);
    mic_rc = g->provider->get_mic(g->arg, g->gss, databody, 4 + body, &mic, &miclen);
    pthread_mutex_unlock(&g->mu);
    if (mic_rc != 0 || miclen > AUTH_BODY_MAX) {
        free(mic);
        goto drop;
    }
    rpc2_put_u32(lenp, 4 + body);
    while ((q - databody) & 3) {
        *q++ = 0;
    }
    q = rpc2_put_opaque(q, mic, (uint32_t) miclen);
    free(mic);
    release_all(evpl, iov, niov);
    send_flat(evpl, s, buf, room, (uint32_t) (q - buf - room));
    free(buf);
    sreq_free(s);
    return;

drop:
    rpc2_error("cannot protect a reply's integrity: not sent");
    free(buf);
    release_all(evpl, iov, niov);
    sreq_free(s);
}

/* A reply that could not be built for want of memory: the connection
 * ends, so its client learns the call is lost instead of waiting. */
static void
reply_lost(struct evpl *evpl, struct rpc2_sreq *s)
{
    if (s->conn) {
        out_of_memory(evpl, priv(s->conn), "a reply");
    }
    sreq_free(s);
}

/* send_reply_dispatch of every program the library serves. */
static int
rpc2_send_reply(struct evpl *evpl, struct evpl_rpc2_encoding *encoding,
                const struct evpl_rpc2_verf *verf, xdr_iovec *iov, int niov, int length)
{
    struct rpc2_sreq *s = container_of(encoding, struct rpc2_sreq, enc);
    uint32_t reserve = encoding->program->reserve;
    uint32_t body = (uint32_t) length - reserve;
    uint32_t written = UINT32_MAX;
    uint8_t hdr[TRANSPORT_HDR_MAX + 24 + AUTH_BODY_MAX], rpc[24 + AUTH_BODY_MAX], *p = rpc;
    uint32_t hlen, rlen;
    struct evpl_iovec *out, stack[STACK_IOV];
    int n, vlen;

    (void) verf; /* AUTH_NONE verifiers only (AUTH_SHORT is not issued) */
    if (s->dead) {
        /* its thread was destroyed while the application held it */
        release_all(evpl, iov, niov);
        free(s->dbuf.buffer);
        free(s);
        return 0;
    }
    if ((uint32_t) length < reserve || niov < 0) {
        release_all(evpl, iov, niov);
        sreq_free(s);
        return -1;
    }
    p = rpc2_put_u32(p, encoding->xid);
    p = rpc2_put_u32(p, RPC_REPLY);
    p = rpc2_put_u32(p, MSG_ACCEPTED);
    vlen = put_verifier(s, p, AUTH_BODY_MAX + 8);
    if (vlen < 0) {
        rpc2_error("cannot sign the verifier of a reply: dropped");
        release_all(evpl, iov, niov);
        sreq_free(s);
        return 0;
    }
    p += vlen;
    p = rpc2_put_u32(p, ACCEPT_SUCCESS);
    rlen = (uint32_t) (p - rpc);
    if (s->gss && s->gss_svc == EVPL_RPC2_GSS_SVC_INTEGRITY) {
        reply_integrity(evpl, s, rpc, rlen, iov, niov, reserve, body);
        return 0;
    }

    if (s->rdma && s->write_chunk.niov > 0 && s->conn && !priv(s->conn)->gone) {
        /* the result's payload goes straight into the client's memory;
         * the reply (sent after it on the same connection) says how much */
        written = s->write_chunk.length;
        rdma_put(evpl, s->conn->bind, &s->write_offer, s->write_chunk.iov, s->write_chunk.niov,
                 written);
        release_all(evpl, s->write_chunk.iov, s->write_chunk.niov);
        s->write_chunk.niov = 0;
    }

    if (s->rdma && s->reply_offer.n && rlen + body > RDMA_INLINE_REPLY_MAX) {
        /* RDMA_NOMSG: the whole reply goes into the reply chunk */
        uint32_t total = rlen + body;

        if (total > s->reply_offer.total) {
            uint8_t e[32], *q = e;

            q = rpc2_put_u32(q, encoding->xid);
            q = rpc2_put_u32(q, RDMA_VERSION);
            q = rpc2_put_u32(q, grant(s));
            q = rpc2_put_u32(q, RDMA_ERROR);
            q = rpc2_put_u32(q, ERR_CHUNK);
            release_all(evpl, iov, niov);
            if (s->conn && !priv(s->conn)->gone && !priv(s->conn)->closing) {
                send_copy(evpl, s->conn, e, (unsigned int) (q - e));
            }
            sreq_free(s);
            return 0;
        }
        out = malloc((size_t) (niov + 1) * sizeof(*out));
        n = out ? prepend(evpl, rpc, rlen, reserve, iov, niov, out) : -1;
        if (n < 0) {
            free(out);
            release_all(evpl, iov, niov);
            reply_lost(evpl, s);
            return -1;
        }
        if (encoding->reply_capture_cb) {
            encoding->reply_capture_cb(out, n, (int) total, encoding->reply_capture_private);
        }
        if (s->conn && !priv(s->conn)->gone) {
            hlen = transport_header(s, hdr, encoding->xid, 0, 1, written, total);
            rdma_put(evpl, s->conn->bind, &s->reply_offer, out, n, total);
            if (!priv(s->conn)->closing) {
                send_copy(evpl, s->conn, hdr, hlen);
            }
        }
        release_all(evpl, out, n);
        free(out);
        sreq_free(s);
        return 0;
    }

    hlen = transport_header(s, hdr, encoding->xid, rlen + body, 0, written, UINT32_MAX);
    memcpy(hdr + hlen, rpc, rlen);
    out = iov_array(stack, niov + 1);
    n = out ? prepend(evpl, hdr, hlen + rlen, reserve, iov, niov, out) : -1;
    if (n < 0) {
        iov_array_free(out, stack);
        release_all(evpl, iov, niov);
        reply_lost(evpl, s);
        return -1;
    }
    if (encoding->reply_capture_cb) {
        /* the RPC message without its transport header */
        struct evpl_iovec first = out[0];

        out[0].data = (char *) out[0].data + hlen;
        out[0].length -= hlen;
        encoding->reply_capture_cb(out, n, (int) (rlen + body), encoding->reply_capture_private);
        out[0] = first;
    }
    send_message(evpl, s->conn, out, n, hlen + rlen + body);
    iov_array_free(out, stack);
    sreq_free(s);
    return 0;
}

/* AUTH_SYS body (RFC 5531 appendix A) into the request's credential. */
static int
parse_authsys(struct rpc2_sreq *s, struct rpc2_rd *r, uint32_t body_len)
{
    uint32_t start = r->pos, stamp, mlen, n, g;

    if (rpc2_rd_u32(r, &stamp) < 0 || rpc2_rd_opaque(r, s->machinename, MACHINE_MAX, &mlen) < 0 ||
        rpc2_rd_u32(r, &s->cred.authsys.uid) < 0 || rpc2_rd_u32(r, &s->cred.authsys.gid) < 0 ||
        rpc2_rd_u32(r, &n) < 0 || r->pos - start > body_len ||
        n != (body_len - (r->pos - start)) / 4) {
        return -1; /* the gids must be what is left of the body */
    }
    /* rpc2.md §2: the handler sees the first 16 (num_gids clamped) */
    for (uint32_t i = 0; i < n; i++) {
        if (rpc2_rd_u32(r, i < EVPL_RPC2_AUTH_SYS_MAX_GIDS ? &s->gids[i] : &g) < 0) {
            return -1;
        }
    }
    if (n > EVPL_RPC2_AUTH_SYS_MAX_GIDS) {
        n = EVPL_RPC2_AUTH_SYS_MAX_GIDS;
    }
    if (r->pos - start != body_len) {
        return -1;
    }
    s->machinename[mlen] = '\0';
    s->cred.authsys.machinename = s->machinename;
    s->cred.authsys.machinename_len = (int) mlen;
    s->cred.authsys.num_gids = n;
    s->cred.authsys.gids = s->gids;
    return 0;
}

static void dispatch_call(struct evpl *evpl, struct rpc2_sreq *s);
static void long_call_fetched(struct evpl *evpl, struct rpc2_sreq *s);

static void
read_chunk_done(int status, void *private_data)
{
    struct rpc2_sreq *s = private_data;

    if (status) {
        s->read_failed = 1;
    }
    if (--s->reads_left == 0) {
        struct evpl *evpl = s->thread->evpl;

        if (s->read_failed || !s->conn) {
            /* the argument never arrived: the call cannot be served */
            rpc2_error("RDMA read of a call's chunk failed");
            if (s->conn && !priv(s->conn)->closing && !priv(s->conn)->gone) {
                priv(s->conn)->closing = 1;
                evpl_close(evpl, s->conn->bind);
            }
            sreq_free(s);
            return;
        }
        if (s->long_call) {
            long_call_fetched(evpl, s);
            return;
        }
        dispatch_call(evpl, s);
    }
}

/* Program, version and procedure (RFC 5531 §9 accept_stat). */
static void
dispatch_call(struct evpl *evpl, struct rpc2_sreq *s)
{
    struct evpl_rpc2_conn *conn = s->conn;
    uint32_t len = s->args_len;
    struct evpl_iovec *args, *msg, keep[MSG_INLINE];
    int nargs, nmsg, rc;

    args = dbuf_space(&s->dbuf, (size_t) (s->nmsg + 1) * sizeof(*args));
    nargs = args ? view(s->msg, s->nmsg, s->args_pos, len, args, s->nmsg + 1) : -1;
    if (nargs < 0) {
        send_error(evpl, s, s->enc.xid, 0, ACCEPT_SYSTEM_ERR, 0, 0);
        sreq_free(s);
        return;
    }
    if (s->nread_segs) {
        s->enc.read_chunk = &s->read_chunk;
    }
    if (s->write_offer.n) {
        s->write_chunk.max_length =
            s->write_offer.total > UINT32_MAX ? UINT32_MAX : (uint32_t) s->write_offer.total;
        s->enc.write_chunk = &s->write_chunk;
    }
    /* the message goes once decoding is done: what the handler keeps
     * are copies or references of its own, and a handler that replies at
     * once frees the request under us */
    msg = s->msg;
    nmsg = s->nmsg;
    if (msg == s->msg_inline) {
        msg = memcpy(keep, msg, (size_t) nmsg * sizeof(*msg));
    }
    s->msg = NULL;
    rc =
        s->program->recv_call_dispatch(evpl, conn, &s->enc, s->proc, s->program->program_data,
                                       &s->cred, args, nargs, (int) len, conn->server_private_data);
    release_all(evpl, msg, nmsg);
    if (msg != keep) {
        free(msg);
    }
    if (rc == 0) {
        return;
    }
    send_error(evpl, s, s->enc.xid, 0,
               rc == 1   ? ACCEPT_PROC_UNAVAIL
               : rc == 2 ? ACCEPT_GARBAGE_ARGS
                         : ACCEPT_SYSTEM_ERR,
               0, 0);
    sreq_free(s);
}

/* ---- RPCSEC_GSS (RFC 2203 §5) ---- */

/* The mechanism's check of a MIC, one call at a time per context. */
static int
gss_verify(struct rpc2_gss_ctx *g, const void *msg, size_t len, const void *mic, size_t miclen)
{
    int rc;

    pthread_mutex_lock(&g->mu);
    rc = g->provider->verify_mic(g->arg, g->gss, msg, len, mic, miclen);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

#define GSS_TOKEN_MAX (64u << 10)

/* Context creation over the NULL procedure: INIT and CONTINUE_INIT. */
static int
gss_init(struct evpl *evpl, struct rpc2_conn *c, struct rpc2_sreq *s, struct rpc2_rd *r,
         uint32_t gproc, const uint8_t *handle, uint32_t hlen)
{
    struct evpl_rpc2_thread *t = c->pub.thread;
    const struct evpl_rpc2_gss_provider *gp = t->gss;
    uint32_t tlen, major = GSS_S_FAILURE, window = 0, room = 64;
    uint8_t *tok = NULL, *buf = NULL, *q, seqw[4];
    void *out = NULL, *mic = NULL;
    size_t outlen = 0, miclen = 0;
    struct rpc2_gss_ctx *g;
    int complete = 0, rc;

    if (rpc2_rd_u32(r, &tlen) < 0 || tlen > GSS_TOKEN_MAX || !(tok = malloc(tlen ? tlen : 1)) ||
        rpc2_rd_bytes(r, tok, tlen) < 0) {
        free(tok);
        send_error(evpl, s, s->enc.xid, 0, ACCEPT_GARBAGE_ARGS, 0, 0);
        sreq_free(s);
        return 1;
    }
    if (gproc == RPCSEC_GSS_INIT) {
        g = rpc2_gss_new(gp, t->gss_arg, c);
    } else {
        g = rpc2_gss_find(handle, hlen, 0);
    }
    if (!g) {
        /* (RFC 2203 §5.2.3.2: CREDPROBLEM and CTXPROBLEM never answer a
         * context creation) a handle we did not issue, or no room for a
         * new context */
        free(tok);
        send_error(evpl, s, s->enc.xid, 1, AUTH_ERROR,
                   gproc == RPCSEC_GSS_INIT ? AUTH_REJECTEDCRED : AUTH_BADCRED, 0);
        sreq_free(s);
        return 1;
    }
    pthread_mutex_lock(&g->mu);
    rc = gp->accept(g->arg, &g->gss, tok, tlen, &out, &outlen, &complete, g->principal,
                    sizeof(g->principal));
    g->principal[sizeof(g->principal) - 1] = '\0';
    if (rc == 0 && complete) {
        /* the verifier of the last reply signs the window (§5.2.3.1) */
        rpc2_put_u32(seqw, RPCSEC_GSS_WINDOW);
        if (gp->get_mic(g->arg, g->gss, seqw, 4, &mic, &miclen) != 0 || miclen > AUTH_BODY_MAX) {
            rc = -1;
        }
    }
    pthread_mutex_unlock(&g->mu);
    free(tok);
    if (rc != 0 || outlen > GSS_TOKEN_MAX) {
        /* no token of a failed step goes out */
        free(out);
        out = NULL;
        outlen = 0;
        rpc2_gss_remove(g);
    } else {
        major = complete ? GSS_S_COMPLETE : GSS_S_CONTINUE_NEEDED;
        window = complete ? RPCSEC_GSS_WINDOW : 0;
        if (complete) {
            rpc2_gss_set_complete(g);
        }
    }
    buf = malloc(room + 64 + AUTH_BODY_MAX + 32 + outlen + 4);
    if (buf) {
        q = buf + room;
        q = rpc2_put_u32(q, s->enc.xid);
        q = rpc2_put_u32(q, RPC_REPLY);
        q = rpc2_put_u32(q, MSG_ACCEPTED);
        if (mic && major == GSS_S_COMPLETE) {
            q = rpc2_put_u32(q, EVPL_RPC2_AUTH_RPCSEC_GSS);
            q = rpc2_put_opaque(q, mic, (uint32_t) miclen);
        } else {
            q = rpc2_put_u32(q, EVPL_RPC2_AUTH_NONE);
            q = rpc2_put_u32(q, 0);
        }
        q = rpc2_put_u32(q, ACCEPT_SUCCESS);
        /* rpc_gss_init_res */
        if (major == GSS_S_FAILURE) {
            q = rpc2_put_u32(q, 0);
        } else {
            q = rpc2_put_opaque(q, &g->handle, sizeof(g->handle));
        }
        q = rpc2_put_u32(q, major);
        q = rpc2_put_u32(q, 0);
        q = rpc2_put_u32(q, window);
        q = rpc2_put_opaque(q, out, (uint32_t) outlen);
        send_flat(evpl, s, buf, room, (uint32_t) (q - buf - room));
    }
    free(buf);
    free(out);
    free(mic);
    rpc2_gss_put(g);
    sreq_free(s);
    return 1;
}

/*
 * An RPCSEC_GSS credential; r is positioned at its body.  Returns 0 when
 * the call goes on to its program (credential filled in, arguments
 * located), 1 when it was answered or dropped here (s is freed).
 */
static int
gss_call(struct evpl *evpl, struct rpc2_conn *c, struct rpc2_sreq *s, struct rpc2_rd *r,
         uint32_t blen, uint32_t proc, uint32_t msglen)
{
    struct evpl_rpc2_thread *t = c->pub.thread;
    uint32_t start = r->pos, ver, gproc, seq, svc, hlen, vflavor, vlen, cred_end, stat;
    uint8_t handle[AUTH_BODY_MAX], hdr[32 + AUTH_BODY_MAX], verf[AUTH_BODY_MAX];
    struct rpc2_gss_ctx *g;
    struct rpc2_rd hr;

    if (!t->gss) {
        /* (whatever the credential holds: rpc2.md §8) */
        stat = AUTH_REJECTEDCRED;
        goto deny;
    }
    if (rpc2_rd_u32(r, &ver) < 0 || rpc2_rd_u32(r, &gproc) < 0 || rpc2_rd_u32(r, &seq) < 0 ||
        rpc2_rd_u32(r, &svc) < 0 || rpc2_rd_opaque(r, handle, AUTH_BODY_MAX, &hlen) < 0 ||
        r->pos - start != blen) {
        stat = AUTH_BADCRED;
        goto deny;
    }
    cred_end = r->pos;
    if (rpc2_rd_u32(r, &vflavor) < 0 || rpc2_rd_opaque(r, verf, AUTH_BODY_MAX, &vlen) < 0) {
        stat = AUTH_BADCRED;
        goto deny;
    }
    if (ver != RPCSEC_GSS_VERS_1 || svc < EVPL_RPC2_GSS_SVC_NONE ||
        svc > EVPL_RPC2_GSS_SVC_PRIVACY) {
        stat = AUTH_BADCRED;
        goto deny;
    }
    if (gproc == RPCSEC_GSS_INIT || gproc == RPCSEC_GSS_CONTINUE) {
        if (proc != 0) {
            stat = AUTH_BADCRED;
            goto deny;
        }
        return gss_init(evpl, c, s, r, gproc, handle, hlen);
    }
    if (gproc != RPCSEC_GSS_DATA && gproc != RPCSEC_GSS_DESTROY) {
        stat = AUTH_BADCRED;
        goto deny;
    }
    /* privacy is not offered; integrity needs the whole message inline */
    if (svc == EVPL_RPC2_GSS_SVC_PRIVACY || (svc == EVPL_RPC2_GSS_SVC_INTEGRITY && !c->stream)) {
        stat = AUTH_TOOWEAK;
        goto deny;
    }
    g = rpc2_gss_find(handle, hlen, 1);
    if (!g) {
        stat = RPCSEC_GSS_CREDPROBLEM;
        goto deny;
    }
    /* the verifier signs the header from the xid to the credential's end
     * (checked first: an unsigned call learns nothing about the context) */
    rpc2_rd_init(&hr, s->msg, s->nmsg, s->msglen);
    if (cred_end > sizeof(hdr) || rpc2_rd_bytes(&hr, hdr, cred_end) < 0 ||
        vflavor != EVPL_RPC2_AUTH_RPCSEC_GSS || gss_verify(g, hdr, cred_end, verf, vlen) != 0) {
        rpc2_gss_put(g);
        stat = RPCSEC_GSS_CREDPROBLEM;
        goto deny;
    }
    if (seq >= RPCSEC_GSS_MAXSEQ) {
        rpc2_gss_put(g);
        stat = RPCSEC_GSS_CTXPROBLEM; /* RFC 2203 §5.3.3.1 */
        goto deny;
    }
    if (rpc2_gss_seq_accept(g, seq) < 0) {
        rpc2_gss_put(g); /* a replay, or older than the window: silence */
        sreq_free(s);
        return 1;
    }
    s->gss = g;
    s->gss_seq = seq;
    s->gss_svc = svc;
    if (gproc == RPCSEC_GSS_DESTROY) {
        uint8_t buf[64 + 32 + AUTH_BODY_MAX], *q = buf + 64;
        int n;

        q = rpc2_put_u32(q, s->enc.xid);
        q = rpc2_put_u32(q, RPC_REPLY);
        q = rpc2_put_u32(q, MSG_ACCEPTED);
        n = put_verifier(s, q, AUTH_BODY_MAX + 8);
        if (n >= 0) {
            q += n;
            q = rpc2_put_u32(q, ACCEPT_SUCCESS);
            send_flat(evpl, s, buf, 64, (uint32_t) (q - buf - 64));
        }
        rpc2_gss_remove(g);
        sreq_free(s);
        return 1;
    }
    s->cred.flavor = EVPL_RPC2_AUTH_RPCSEC_GSS;
    s->cred.gss.principal = g->principal;
    s->cred.gss.service = svc;
    s->cred.gss.gss_ctx = NULL;
    if (svc == EVPL_RPC2_GSS_SVC_INTEGRITY) {
        /* rpc_gss_integ_data: the sequence number and the arguments, then
         * a MIC over both (§5.3.2.2) */
        uint32_t len, body_pos, cklen, bseq;
        uint8_t *body = NULL, ck[AUTH_BODY_MAX];
        int bad;

        bad = rpc2_rd_u32(r, &len) < 0 || len < 4 || len > msglen - r->pos;
        body_pos = r->pos;
        bad = bad || !(body = malloc(len)) || rpc2_rd_bytes(r, body, len) < 0 ||
              rpc2_rd_bytes(r, NULL, (4 - (len & 3)) & 3) < 0 ||
              rpc2_rd_opaque(r, ck, AUTH_BODY_MAX, &cklen) < 0 ||
              gss_verify(g, body, len, ck, cklen) != 0;
        if (!bad) {
            bseq = (uint32_t) body[0] << 24 | (uint32_t) body[1] << 16 | (uint32_t) body[2] << 8 |
                   body[3];
            bad = bseq != seq;
        }
        free(body);
        if (bad) {
            send_error(evpl, s, s->enc.xid, 0, ACCEPT_GARBAGE_ARGS, 0, 0);
            sreq_free(s);
            return 1;
        }
        s->args_pos = body_pos + 4;
        s->args_len = len - 4;
    } else {
        s->args_pos = r->pos;
        s->args_len = msglen - r->pos;
    }
    return 0;

deny:
    send_error(evpl, s, s->enc.xid, 1, AUTH_ERROR, stat, 0);
    sreq_free(s);
    return 1;
}

/*
 * A CALL (RFC 5531 §9): the header after the xid and message type.  r is
 * positioned after those two words; msg is owned by this function.
 */
/* s is served on c (served: a call taken now, counted in c's budget). */
static void
sreq_link(struct evpl *evpl, struct rpc2_conn *c, struct rpc2_sreq *s, int served)
{
    s->conn = &c->pub;
    s->prev = NULL;
    s->next = c->sreqs;
    if (c->sreqs) {
        c->sreqs->prev = s;
    }
    c->sreqs = s;
    c->nserving++;
    if (served) {
        flow_served(evpl, c);
    }
    flow_check(evpl, c);
} /* sreq_link */

/*
 * RDMA-read the call's read chunk (s->read_segs) into buffers the request
 * owns (released with it unless the handler takes them); read_chunk_done
 * goes on.  On failure the connection closes and s is freed.
 */
static void
fetch_read_chunk(struct evpl *evpl, struct rpc2_conn *c, struct rpc2_sreq *s)
{
    struct evpl_iovec *pieces, stack[STACK_IOV];
    uint64_t total = 0;
    int n;

    for (int i = 0; i < s->nread_segs; i++) {
        total += s->read_segs[i].length;
    }
    if (total > evpl_global_config_get_rpc2_max_message_size()) {
        /* more than a record may carry inline: not taken */
        rpc2_error("read chunk of %llu bytes over the limit: closing", (unsigned long long) total);
        close_conn(evpl, c);
        sreq_free(s);
        return;
    }
    n = alloc_spread(evpl, total, 0, s->read_inline, &s->read_heap, &s->read_chunk.iov);
    if (n < 0) {
        out_of_memory(evpl, c, "a read chunk");
        sreq_free(s);
        return;
    }
    s->read_chunk.length = (uint32_t) total;
    s->read_chunk.niov = n;
    if (total == 0) {
        s->read_chunk.iov[0].length = 0; /* (one byte was allocated) */
    }
    /* each segment lands where it sits in the chunk, across buffers */
    pieces = iov_array(stack, n);
    if (!pieces) {
        out_of_memory(evpl, c, "a read chunk");
        sreq_free(s);
        return;
    }
    s->reads_left = s->nread_segs;
    for (uint32_t i = 0, off = 0; i < (uint32_t) s->nread_segs; i++) {
        int k = view(s->read_chunk.iov, n, off, s->read_segs[i].length, pieces, n);

        if (k <= 0) { /* an empty segment */
            pieces[0] = s->read_chunk.iov[0];
            pieces[0].length = 0;
            k = 1;
        }
        off += s->read_segs[i].length;
        evpl_rdma_read(evpl, c->pub.bind, s->read_segs[i].handle, s->read_segs[i].offset, pieces, k,
                       read_chunk_done, s);
    }
    iov_array_free(pieces, stack);
} /* fetch_read_chunk */

static void
server_call(struct evpl *evpl, struct rpc2_conn *c, struct rpc2_rd *r, uint32_t xid,
            const struct evpl_iovec *msg, int nmsg, uint32_t msglen, struct rpc2_sreq *s)
{
    struct evpl_rpc2_conn *conn = &c->pub;
    uint32_t rpcvers, prog, vers, proc, flavor, blen, vflavor, vlen;
    uint32_t low = UINT32_MAX, high = 0;
    int found_prog = 0;

    s->msg = nmsg <= MSG_INLINE ? s->msg_inline : malloc((size_t) nmsg * sizeof(*msg));
    if (!s->msg) {
        release_all(evpl, (struct evpl_iovec *) msg, nmsg);
        sreq_free(s);
        out_of_memory(evpl, c, "a call");
        return;
    }
    sreq_link(evpl, c, s, !s->long_call); /* (a long call was counted when it came) */
    s->long_call = 0;
    s->enc.xid = xid;
    memcpy(s->msg, msg, (size_t) nmsg * sizeof(*msg));
    s->nmsg = nmsg;
    s->msglen = msglen;

    if (rpc2_rd_u32(r, &rpcvers) < 0) {
        goto badcred;
    }
    if (rpcvers != 2) {
        send_error(evpl, s, xid, 1, RPC_MISMATCH, 2, 2);
        sreq_free(s);
        return;
    }
    if (rpc2_rd_u32(r, &prog) < 0 || rpc2_rd_u32(r, &vers) < 0 || rpc2_rd_u32(r, &proc) < 0 ||
        rpc2_rd_u32(r, &flavor) < 0 || rpc2_rd_u32(r, &blen) < 0 || blen > AUTH_BODY_MAX) {
        goto badcred;
    }
    s->cred.flavor = flavor;
    switch (flavor) {
        case EVPL_RPC2_AUTH_NONE:
            if (rpc2_rd_bytes(r, NULL, (blen + 3) & ~3u) < 0) {
                goto badcred;
            }
            break;
        case EVPL_RPC2_AUTH_SYS:
            if (parse_authsys(s, r, blen) < 0 || rpc2_rd_bytes(r, NULL, (4 - (blen & 3)) & 3) < 0) {
                goto badcred;
            }
            break;
        case EVPL_RPC2_AUTH_RPCSEC_GSS:
            if (gss_call(evpl, c, s, r, blen, proc, msglen) != 0) {
                return; /* answered (or dropped) there */
            }
            goto dispatch;
        default:
            send_error(evpl, s, xid, 1, AUTH_ERROR, AUTH_TOOWEAK, 0);
            sreq_free(s);
            return;
    }
    if (rpc2_rd_u32(r, &vflavor) < 0 || rpc2_rd_opaque(r, NULL, AUTH_BODY_MAX, &vlen) < 0) {
        goto badcred;
    }
dispatch:
    if (!s->gss) {
        s->args_pos = r->pos;
        s->args_len = msglen - r->pos;
    }

    for (int i = 0; i < conn->num_server_programs; i++) {
        struct evpl_rpc2_program *p = conn->server_programs[i];

        if (p->program != prog) {
            continue;
        }
        found_prog = 1;
        low = p->version < low ? p->version : low;
        high = p->version > high ? p->version : high;
        if (p->version == vers) {
            s->program = p;
        }
    }
    if (!found_prog) {
        send_error(evpl, s, xid, 0, ACCEPT_PROG_UNAVAIL, 0, 0);
        sreq_free(s);
        return;
    }
    if (!s->program) {
        send_error(evpl, s, xid, 0, ACCEPT_PROG_MISMATCH, low, high);
        sreq_free(s);
        return;
    }
    if (proc > s->program->maxproc) {
        send_error(evpl, s, xid, 0, ACCEPT_PROC_UNAVAIL, 0, 0);
        sreq_free(s);
        return;
    }
    s->proc = proc;
    s->enc.program = s->program;

    if (s->nread_segs) {
        /* fetch the directly placed argument before dispatch (RFC 8166
         * §3.5.3); its position is counted from the RPC message start */
        if (s->read_position < s->args_pos) {
            send_error(evpl, s, xid, 0, ACCEPT_GARBAGE_ARGS, 0, 0);
            sreq_free(s);
            return;
        }
        s->read_chunk.xdr_position = s->read_position - s->args_pos;
        fetch_read_chunk(evpl, c, s);
        return;
    }
    dispatch_call(evpl, s);
    return;

badcred:
    send_error(evpl, s, xid, 1, AUTH_ERROR, AUTH_BADCRED, 0);
    sreq_free(s);
}

/* ---- client side ---- */

static void
call_release_buffers(struct evpl *evpl, struct evpl_rpc2_request *req, int keep_write)
{
    if (req->has_read) {
        release_all(evpl, req->read_iov, req->has_read);
        free(req->read_iov);
        req->read_iov = NULL;
        req->has_read = 0;
    }
    if (req->has_write && !keep_write) {
        if (!req->write_lent) {
            release_all(evpl, req->write_iov, req->has_write);
        }
        req->has_write = 0;
    }
    if (!req->has_write) {
        free(req->write_heap);
        req->write_heap = NULL;
    }
    if (req->has_reply) {
        release_all(evpl, req->reply_iov, req->has_reply);
        req->has_reply = 0;
    }
    free(req->reply_heap);
    req->reply_heap = NULL;
}

static void held_drop(struct evpl *evpl, struct rpc2_conn *c, struct rpc2_held *h);

/* One completion per call, never inside evpl_rpc2_call. */
static void
call_complete(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_request *req,
              int status, struct evpl_rpc2_rdma_chunk *chunk, struct evpl_iovec *iov, int niov,
              uint32_t length)
{
    struct evpl_rpc2_thread *t = conn->thread;
    static const struct evpl_rpc2_verf none = {NULL, 0};
    struct xdr_dbuf *d = &t->reply_dbuf;

    depth_add(t, ROLE_CLIENT, -1);
    if (req->held) {
        held_drop(evpl, priv(conn), req->held);
        req->held = NULL;
    }
    /* with no memory for more, the buffer it has stays: a result that
     * needs more room than that fails to decode (DECODE_ERROR) */
    (void) dbuf_fit(d, (uint64_t) length * DBUF_PER_BYTE + DBUF_MIN);
    call_release_buffers(evpl, req, 1);
    req->program->recv_reply_dispatch(evpl, conn, d, req->proc, chunk, &none, iov, niov,
                                      (int) length, status, req->callback, req->private_data);
    /* a decoded result that aliases the write chunk marks it taken (niov
     * 0): the callback owns it then; otherwise (unused, a result without
     * the payload, a decoding error) it is released here */
    if (req->has_write && (!chunk || chunk->niov > 0)) {
        call_release_buffers(evpl, req, 0);
    }
    free(req->write_heap); /* (the callback took the iovecs, or they went above) */
    req->write_heap = NULL;
    /* recycled: no allocation per call once the thread is warm */
    if (t->nfree_calls < SREQ_CACHE) {
        req->next = t->free_calls;
        t->free_calls = req;
        t->nfree_calls++;
    } else {
        free(req);
    }
}

static void
complete_failed(struct evpl *evpl, void *private_data)
{
    struct rpc2_conn *c = private_data;

    while (c->failed) {
        struct evpl_rpc2_request *req = c->failed;

        c->failed = req->next;
        call_complete(evpl, &c->pub, req, req->status, NULL, NULL, 0, 0);
    }
}

static void
call_fail_later(struct evpl *evpl, struct rpc2_conn *c, struct evpl_rpc2_request *req, int status)
{
    struct evpl_rpc2_request **tail = &c->failed;

    req->status = status;
    req->next = NULL;
    while (*tail) {
        tail = &(*tail)->next;
    }
    *tail = req;
    evpl_defer(evpl, &c->fail_deferral);
}

/* The call header (RFC 5531 §9) for a credential; returns its length. */
static uint32_t
call_header(uint8_t *p, uint32_t xid, const struct evpl_rpc2_program *program, uint32_t proc,
            const struct evpl_rpc2_cred *cred)
{
    uint8_t *start = p;

    p = rpc2_put_u32(p, xid);
    p = rpc2_put_u32(p, RPC_CALL);
    p = rpc2_put_u32(p, 2);
    p = rpc2_put_u32(p, program->program);
    p = rpc2_put_u32(p, program->version);
    p = rpc2_put_u32(p, proc);
    if (cred && cred->flavor == EVPL_RPC2_AUTH_SYS) {
        uint32_t mlen =
            cred->authsys.machinename_len > 0 ? (uint32_t) cred->authsys.machinename_len : 0;
        uint32_t ngids = cred->authsys.num_gids;
        uint8_t *lenp;

        if (mlen > MACHINE_MAX) {
            mlen = MACHINE_MAX;
        }
        if (ngids > EVPL_RPC2_AUTH_SYS_MAX_GIDS) {
            ngids = EVPL_RPC2_AUTH_SYS_MAX_GIDS;
        }
        p = rpc2_put_u32(p, EVPL_RPC2_AUTH_SYS);
        lenp = p;
        p += 4;
        p = rpc2_put_u32(p, 0); /* stamp */
        p = rpc2_put_opaque(p, cred->authsys.machinename, mlen);
        p = rpc2_put_u32(p, cred->authsys.uid);
        p = rpc2_put_u32(p, cred->authsys.gid);
        p = rpc2_put_u32(p, ngids);
        for (uint32_t i = 0; i < ngids; i++) {
            p = rpc2_put_u32(p, cred->authsys.gids[i]);
        }
        rpc2_put_u32(lenp, (uint32_t) (p - lenp - 4));
    } else {
        p = rpc2_put_u32(p, EVPL_RPC2_AUTH_NONE);
        p = rpc2_put_u32(p, 0);
    }
    p = rpc2_put_u32(p, EVPL_RPC2_AUTH_NONE); /* verifier */
    p = rpc2_put_u32(p, 0);
    return (uint32_t) (p - start);
}

/* Advertise a buffer to the server: one segment of a chunk list. */
static uint8_t *
put_segment(struct evpl *evpl, struct evpl_bind *bind, uint8_t *p, struct evpl_iovec *iov,
            uint32_t length)
{
    uint32_t key;
    uint64_t addr;

    evpl_rdma_get_address(evpl, bind, iov, &key, &addr);
    p = rpc2_put_u32(p, key);
    p = rpc2_put_u32(p, length);
    return rpc2_put_u64(p, addr);
}

/* A write or reply chunk (RFC 8166 §4.2.1) of niov segments holding max
 * bytes in all. */
static uint8_t *
put_chunk(struct evpl *evpl, struct evpl_bind *bind, uint8_t *p, struct evpl_iovec *iov, int niov,
          uint32_t max)
{
    p = rpc2_put_u32(p, (uint32_t) niov);
    for (int i = 0; i < niov; i++) {
        uint32_t l = iov[i].length < max ? iov[i].length : max;

        p = put_segment(evpl, bind, p, &iov[i], l);
        max -= l;
    }
    return p;
}

/*
 * A call held until CONNECTED: on RDMA CM the keys of the buffers a call
 * advertises exist only once the connection has its device, so a call with
 * chunks made before that waits, and every call made after it waits too
 * (calls go out in the order they were made).
 */
struct rpc2_held {
    struct evpl_rpc2_request *req;
    struct rpc2_held *next;
    uint32_t rlen; /* call header */
    uint32_t body;
    int niov;
    uint8_t rpc[RPC_HDR_MAX];
    struct evpl_iovec iov[]; /* the arguments (the call's references) */
};

/* Sends a call whose buffers are in req; takes the references of req_iov. */
static void
call_send(struct evpl *evpl, struct rpc2_conn *c, struct evpl_rpc2_request *req, const uint8_t *rpc,
          uint32_t rlen, uint32_t body, struct evpl_iovec *req_iov, int req_niov)
{
    struct evpl_rpc2_conn *conn = &c->pub;
    uint8_t hdr[RPC_HDR_MAX + 128 + RDMA_MAX_SEGMENTS * 24 * 3], *p = hdr;
    struct evpl_iovec *out, stack[STACK_IOV];
    uint32_t hlen;
    int n;

    if (c->stream) {
        p = rpc2_put_u32(p, 0x80000000u | (rlen + body));
    } else {
        /* RPC-over-RDMA header (RFC 8166 §4.2) with our chunk lists */
        p = rpc2_put_u32(p, req->xid);
        p = rpc2_put_u32(p, RDMA_VERSION);
        p = rpc2_put_u32(p, 1); /* credits asked for */
        p = rpc2_put_u32(p, RDMA_MSG);
        /* one read-list item per iovec, all at the same position (RFC 8166
         * §3.4.5: a chunk of several segments) */
        for (int i = 0; i < req->has_read; i++) {
            p = rpc2_put_u32(p, 1);
            p = rpc2_put_u32(p, rlen + req->read_pos);
            p = put_segment(evpl, conn->bind, p, &req->read_iov[i], req->read_iov[i].length);
        }
        p = rpc2_put_u32(p, 0);
        /* write and reply chunks: a segment per buffer */
        if (req->has_write) {
            p = rpc2_put_u32(p, 1);
            p = put_chunk(evpl, conn->bind, p, req->write_iov, req->has_write, req->write_max);
        }
        p = rpc2_put_u32(p, 0);
        if (req->has_reply) {
            p = rpc2_put_u32(p, 1);
            p = put_chunk(evpl, conn->bind, p, req->reply_iov, req->has_reply, req->reply_max);
        } else {
            p = rpc2_put_u32(p, 0);
        }
    }
    hlen = (uint32_t) (p - hdr);
    memcpy(p, rpc, rlen);

    out = iov_array(stack, req_niov + 1);
    n = out ? prepend(evpl, hdr, hlen + rlen, req->program->reserve, req_iov, req_niov, out) : -1;
    if (n < 0) {
        iov_array_free(out, stack);
        release_all(evpl, req_iov, req_niov);
        call_release_buffers(evpl, req, 0);
        call_fail_later(evpl, c, req, EVPL_RPC2_REPLY_CONN_LOST);
        return;
    }
    HASH_ADD(hh, conn->pending_calls, xid, sizeof(req->xid), req);
    evpl_sendv(evpl, conn->bind, out, n, (int) (hlen + rlen + body), EVPL_SEND_FLAG_TAKE_REF);
    iov_array_free(out, stack);
    flow_sent(evpl, c, hlen + rlen + body, 1, 0);
}

/* CONNECTED: the held calls go out, oldest first. */
static void
send_held(struct evpl *evpl, struct rpc2_conn *c)
{
    while (c->held && !c->closing && !c->gone) {
        struct rpc2_held *h = c->held;
        struct evpl_rpc2_request *req = h->req;

        c->held = h->next;
        if (!c->held) {
            c->held_tail = &c->held;
        }
        HASH_DELETE(hh, c->pub.pending_calls, req);
        req->held = NULL;
        call_send(evpl, c, req, h->rpc, h->rlen, h->body, h->iov, h->niov);
        free(h);
    }
}

/* A held call completed without being sent (the connection went first). */
static void
held_drop(struct evpl *evpl, struct rpc2_conn *c, struct rpc2_held *h)
{
    struct rpc2_held **pp = &c->held;

    while (*pp != h) {
        pp = &(*pp)->next;
    }
    *pp = h->next;
    if (!*pp) {
        c->held_tail = pp;
    }
    release_all(evpl, h->iov, h->niov);
    free(h);
}

EVPL_API int
evpl_rpc2_call(struct evpl *evpl, struct evpl_rpc2_program *program, struct evpl_rpc2_conn *conn,
               const struct evpl_rpc2_cred *cred, uint32_t procedure, struct evpl_iovec *req_iov,
               int req_niov, int req_length, struct evpl_rpc2_rdma_chunk *rdma_chunk,
               int max_rdma_write_chunk, struct evpl_iovec *write_chunk_iov, int write_chunk_niov,
               int max_rdma_reply_chunk, void *callback, void *private_data)
{
    struct rpc2_conn *c = priv(conn);
    struct evpl_rpc2_thread *t = conn->thread;
    struct evpl_rpc2_request *req = t->free_calls, *dup;
    uint8_t rpc[RPC_HDR_MAX];
    uint32_t rlen, body;

    if (req) {
        t->free_calls = req->next;
        t->nfree_calls--;
        memset(req, 0, sizeof(*req));
    } else if (!(req = calloc(1, sizeof(*req)))) {
        /* nothing to complete the call with later: it completes here, the
         * one completion inside the call, and the connection ends */
        static const struct evpl_rpc2_verf none = {NULL, 0};

        release_all(evpl, req_iov, req_niov > 0 ? req_niov : 0);
        if (rdma_chunk && rdma_chunk->niov > 0) {
            release_all(evpl, rdma_chunk->iov, rdma_chunk->niov);
            rdma_chunk->niov = 0;
        }
        out_of_memory(evpl, c, "a call");
        t->reply_dbuf.used = 0;
        program->recv_reply_dispatch(evpl, conn, &t->reply_dbuf, procedure, NULL, &none, NULL, 0, 0,
                                     EVPL_RPC2_REPLY_CONN_LOST, callback, private_data);
        return 0;
    }
    depth_add(t, ROLE_CLIENT, 1);
    req->proc = procedure;
    req->program = program;
    req->callback = callback;
    req->private_data = private_data;

    if (req_niov < 0 || !req_iov || (uint32_t) req_length < program->reserve) {
        /* the stub could not encode the arguments */
        release_all(evpl, req_iov, req_niov > 0 ? req_niov : 0);
        call_fail_later(evpl, c, req, EVPL_RPC2_REPLY_DECODE_ERROR);
        return 0;
    }
    if (rdma_chunk && rdma_chunk->niov > RDMA_MAX_SEGMENTS) {
        /* more segments than one chunk carries here */
        release_all(evpl, req_iov, req_niov);
        release_all(evpl, rdma_chunk->iov, rdma_chunk->niov);
        rdma_chunk->niov = 0;
        call_fail_later(evpl, c, req, EVPL_RPC2_REPLY_DECODE_ERROR);
        return 0;
    }
    if (c->gone || c->closing) {
        release_all(evpl, req_iov, req_niov);
        if (rdma_chunk && rdma_chunk->niov > 0) {
            release_all(evpl, rdma_chunk->iov, rdma_chunk->niov);
            rdma_chunk->niov = 0;
        }
        call_fail_later(evpl, c, req, EVPL_RPC2_REPLY_CONN_LOST);
        return 0;
    }
    /* xids wrap after 2^32 calls (skipping 0) and never repeat one still
     * pending: its reply would complete the wrong call */
    do {
        req->xid = conn->next_xid++;
        if (conn->next_xid == 0) {
            conn->next_xid = 1;
        }
        HASH_FIND(hh, conn->pending_calls, &req->xid, sizeof(req->xid), dup);
    } while (dup);
    body = (uint32_t) req_length - program->reserve;
    rlen = call_header(rpc, req->xid, program, procedure, cred);

    if (!c->stream) {
        /* the buffers the chunk lists advertise are the call's from here */
        if (rdma_chunk && rdma_chunk->niov > 0) {
            req->read_iov = malloc((size_t) rdma_chunk->niov * sizeof(*req->read_iov));
            if (!req->read_iov) {
                release_all(evpl, rdma_chunk->iov, rdma_chunk->niov);
                rdma_chunk->niov = 0;
                goto nomem;
            }
            for (int i = 0; i < rdma_chunk->niov; i++) {
                evpl_iovec_move(&req->read_iov[i], &rdma_chunk->iov[i]);
            }
            req->has_read = rdma_chunk->niov;
            req->read_pos = rdma_chunk->xdr_position;
            rdma_chunk->niov = 0;
        }
        /* write and reply chunks larger than a buffer take several, a
         * segment each (at most RDMA_MAX_SEGMENTS: what a chunk carries) */
        if (max_rdma_write_chunk > 0) {
            req->write_iov = req->write_inline;
            if (write_chunk_iov && write_chunk_niov == 1) {
                req->write_inline[0] = write_chunk_iov[0];
                req->write_lent = 1;
                req->has_write = 1;
                /* never more than the lent buffer holds */
                if ((unsigned int) max_rdma_write_chunk > req->write_inline[0].length) {
                    max_rdma_write_chunk = (int) req->write_inline[0].length;
                }
            } else if ((req->has_write = alloc_spread(evpl, (uint64_t) max_rdma_write_chunk,
                                                      RDMA_MAX_SEGMENTS, req->write_inline,
                                                      &req->write_heap, &req->write_iov)) < 0) {
                req->has_write = 0;
                goto nomem;
            }
            req->write_max = (uint32_t) max_rdma_write_chunk;
        }
        if (max_rdma_reply_chunk > 0) {
            if ((req->has_reply =
                     alloc_spread(evpl, (uint64_t) max_rdma_reply_chunk, RDMA_MAX_SEGMENTS,
                                  req->reply_inline, &req->reply_heap, &req->reply_iov)) < 0) {
                req->has_reply = 0;
                goto nomem;
            }
            req->reply_max = (uint32_t) max_rdma_reply_chunk;
        }
        if (!c->connected && (c->held || req->has_read || req->has_write || req->has_reply)) {
            struct rpc2_held *h = malloc(sizeof(*h) + (size_t) req_niov * sizeof(h->iov[0]));

            if (!h) {
                goto nomem;
            }
            h->req = req;
            h->next = NULL;
            h->rlen = rlen;
            h->body = body;
            h->niov = req_niov;
            memcpy(h->rpc, rpc, rlen);
            for (int i = 0; i < req_niov; i++) {
                evpl_iovec_move(&h->iov[i], &req_iov[i]);
            }
            *c->held_tail = h;
            c->held_tail = &h->next;
            req->held = h;
            /* in the table, so a connection lost first completes it */
            HASH_ADD(hh, conn->pending_calls, xid, sizeof(req->xid), req);
            return 0;
        }
    }
    call_send(evpl, c, req, rpc, rlen, body, req_iov, req_niov);
    return 0;

nomem:
    /* the chunks cannot be had (no memory, or more buffers than a chunk
     * has segments): the RDMA transport cannot carry this call */
    release_all(evpl, req_iov, req_niov);
    call_release_buffers(evpl, req, 0);
    call_fail_later(evpl, c, req, EVPL_RPC2_REPLY_RDMA_ERROR);
    return 0;
}

/* A REPLY (RFC 5531 §9); r is positioned after the message type. */
static void
client_reply(struct evpl *evpl, struct rpc2_conn *c, struct rpc2_rd *r, uint32_t xid,
             struct evpl_iovec *msg, int nmsg, uint32_t msglen, int rdma_status,
             const struct rpc2_seg *written)
{
    struct evpl_rpc2_conn *conn = &c->pub;
    struct evpl_rpc2_request *req;
    uint32_t stat, vflavor, astat, v;
    struct evpl_rpc2_rdma_chunk chunk, *chunkp = NULL;
    struct evpl_iovec *res, stack[STACK_IOV];
    int nres;

    HASH_FIND(hh, conn->pending_calls, &xid, sizeof(xid), req);
    if (!req) {
        return; /* unknown or answered already: dropped (rpc2.md §4) */
    }
    HASH_DELETE(hh, conn->pending_calls, req);
    if (rdma_status) {
        call_complete(evpl, conn, req, rdma_status, NULL, NULL, 0, 0);
        return;
    }
    if (rpc2_rd_u32(r, &stat) < 0) {
        goto undecodable;
    }
    if (stat != MSG_ACCEPTED) {
        call_complete(evpl, conn, req, EVPL_RPC2_REPLY_DENIED, NULL, NULL, 0, 0);
        return;
    }
    if (rpc2_rd_u32(r, &vflavor) < 0 || rpc2_rd_opaque(r, NULL, AUTH_BODY_MAX, &v) < 0 ||
        rpc2_rd_u32(r, &astat) < 0) {
        goto undecodable;
    }
    if (astat != ACCEPT_SUCCESS) {
        call_complete(evpl, conn, req,
                      astat <= ACCEPT_SYSTEM_ERR ? (int) astat : EVPL_RPC2_REPLY_DECODE_ERROR, NULL,
                      NULL, 0, 0);
        return;
    }
    res = iov_array(stack, nmsg + 1);
    nres = res ? view(msg, nmsg, r->pos, msglen - r->pos, res, nmsg + 1) : -1;
    if (nres < 0) {
        iov_array_free(res, stack);
        goto undecodable;
    }
    if (written && req->has_write && written->length > 0) {
        uint32_t left = written->length < req->write_max ? written->length : req->write_max;
        int k = 0;

        /* the iovecs the result landed in, cut to its length; the rest go */
        memset(&chunk, 0, sizeof(chunk));
        chunk.length = left;
        while (k < req->has_write && left > 0) {
            if (req->write_iov[k].length > left) {
                req->write_iov[k].length = left;
            }
            left -= req->write_iov[k].length;
            k++;
        }
        chunk.length -= left;
        if (!req->write_lent) {
            release_all(evpl, req->write_iov + k, req->has_write - k);
        }
        req->has_write = k;
        chunk.max_length = chunk.length;
        chunk.iov = req->write_iov;
        chunk.niov = k;
        chunkp = &chunk;
    }
    call_complete(evpl, conn, req, 0, chunkp, res, nres, msglen - r->pos);
    iov_array_free(res, stack);
    return;

undecodable:
    call_complete(evpl, conn, req, EVPL_RPC2_REPLY_DECODE_ERROR, NULL, NULL, 0, 0);
}

/* ---- receiving ---- */

static void
close_conn(struct evpl *evpl, struct rpc2_conn *c)
{
    if (!c->closing && !c->gone) {
        c->closing = 1;
        evpl_close(evpl, c->pub.bind);
    }
}

/* One RPC message (both directions); takes the references of msg, not the
 * array (a call copies what it keeps). */
static void
rpc_message(struct evpl *evpl, struct rpc2_conn *c, struct evpl_iovec *msg, int nmsg, uint32_t len,
            struct rpc2_sreq *s, const struct rpc2_seg *written)
{
    struct rpc2_rd r;
    uint32_t xid, type;

    rpc2_rd_init(&r, msg, nmsg, len);
    if (rpc2_rd_u32(&r, &xid) < 0 || rpc2_rd_u32(&r, &type) < 0 ||
        (type != RPC_CALL && type != RPC_REPLY)) {
        rpc2_error("malformed RPC message: closing the connection");
        release_all(evpl, msg, nmsg);
        if (s) {
            sreq_free(s);
        }
        close_conn(evpl, c);
        return;
    }
    if (type == RPC_CALL) {
        if (!s && !(s = sreq_get(c->pub.thread, len))) {
            release_all(evpl, msg, nmsg);
            out_of_memory(evpl, c, "a call");
            return;
        }
        s->rdma = !c->stream;
        server_call(evpl, c, &r, xid, msg, nmsg, len, s); /* takes the references */
        return;
    }
    if (s) {
        sreq_free(s);
    }
    client_reply(evpl, c, &r, xid, msg, nmsg, len, 0, written);
    release_all(evpl, msg, nmsg);
}

/* A copy of the received iovec array (the callback's own) to edit: the
 * caller's stack array when it fits; NULL when there is no memory. */
static struct evpl_iovec *
own_iovecs(struct evpl_iovec *stack, const struct evpl_iovec *iov, int niov)
{
    struct evpl_iovec *m = iov_array(stack, niov ? niov : 1);

    if (m) {
        memcpy(m, iov, (size_t) niov * sizeof(*m));
    }
    return m;
}

/* A long call's chunk arrived: it is the RPC message, parsed as one that
 * came inline (the request goes along, with the chunks it offered). */
static void
long_call_fetched(struct evpl *evpl, struct rpc2_sreq *s)
{
    struct rpc2_conn *c = priv(s->conn);
    struct evpl_iovec *msg, stack[STACK_IOV];
    uint32_t len = s->read_chunk.length;
    int n = s->read_chunk.niov;

    msg = own_iovecs(stack, s->read_chunk.iov, n);
    if (!msg) {
        out_of_memory(evpl, c, "a long call");
        sreq_free(s);
        return;
    }
    s->read_chunk.niov = 0;
    free(s->read_heap); /* (copied into msg) */
    s->read_heap = NULL;
    s->nread_segs = 0;
    sreq_unlink(s); /* (server_call links it again) */
    if (dbuf_fit(&s->dbuf, (uint64_t) len * DBUF_PER_BYTE + DBUF_MIN) < 0) {
        release_all(evpl, msg, n);
        iov_array_free(msg, stack);
        out_of_memory(evpl, c, "a long call");
        sreq_free(s);
        return;
    }
    rpc_message(evpl, c, msg, n, len, s, NULL); /* takes the references */
    iov_array_free(msg, stack);
} /* long_call_fetched */

/* Drop n bytes from the front of an owned iovec list. */
static int
strip_front(struct evpl *evpl, struct evpl_iovec *iov, int niov, uint32_t n)
{
    int first = 0;

    while (n && first < niov) {
        if (iov[first].length <= n) {
            n -= iov[first].length;
            evpl_iovec_release_internal(evpl, &iov[first]);
            first++;
        } else {
            iov[first].data = (char *) iov[first].data + n;
            iov[first].length -= n;
            n = 0;
        }
    }
    memmove(iov, iov + first, (size_t) (niov - first) * sizeof(*iov));
    return niov - first;
}

/* A record in more pieces than this (fragments a few bytes long: RFC 5531
 * puts no limit on their number) is copied into as few buffers as hold it
 * before it is decoded, whose views take room per piece. */
#define REASM_FLAT_IOV 64

/* Fragments shorter than this are copied into the record being put
 * together, in pieces of REASM_COPY_BUF bytes: what a record sent as
 * millions of 1-byte fragments costs then follows its bytes (which
 * rpc2_max_message_size bounds), not one iovec and one pinned receive
 * buffer slice per fragment (120 MB for a 4 MiB record, measured).  A
 * piece is the smallest buffer_size allowed, so it can always be had,
 * and small fragments between large ones cost at most one piece each:
 * a record costs at most about twice its bytes however it is cut. */
#define REASM_COPY_BELOW 4096
#define REASM_COPY_BUF   4096u

/* Room for n more iovecs in the record being put together: 0 or -1. */
static int
reasm_reserve(struct evpl_rpc2_conn *conn, int n)
{
    int cap = conn->reasm_cap ? conn->reasm_cap : 16;
    struct evpl_iovec *a;

    if (conn->reasm_niov + n <= conn->reasm_cap) {
        return 0;
    }
    while (cap < conn->reasm_niov + n) {
        cap *= 2;
    }
    a = realloc(conn->reasm_iov, (size_t) cap * sizeof(*a));
    if (!a) {
        return -1;
    }
    conn->reasm_iov = a;
    conn->reasm_cap = cap;
    return 0;
}

/* Append the first len bytes of iov to the record by copying them. */
static int
reasm_copy(struct evpl *evpl, struct rpc2_conn *c, const struct evpl_iovec *iov, int niov,
           uint32_t len)
{
    struct evpl_rpc2_conn *conn = &c->pub;

    for (int i = 0; i < niov && len > 0; i++) {
        const char *src = evpl_iovec_data(&iov[i]);
        uint32_t left = evpl_iovec_length(&iov[i]) < len ? evpl_iovec_length(&iov[i]) : len;

        len -= left;
        while (left > 0) {
            struct evpl_iovec *last;
            uint32_t k;

            if (c->reasm_room == 0) {
                if (reasm_reserve(conn, 1) < 0) {
                    return -1;
                }
                last = &conn->reasm_iov[conn->reasm_niov];
                if (evpl_iovec_alloc(evpl, REASM_COPY_BUF, 8, 1, 0, last) != 1) {
                    return -1;
                }
                last->length = 0;
                conn->reasm_niov++;
                c->reasm_room = REASM_COPY_BUF;
            }
            last = &conn->reasm_iov[conn->reasm_niov - 1];
            k = left < c->reasm_room ? left : c->reasm_room;
            memcpy((char *) last->data + last->length, src, k);
            last->length += k;
            c->reasm_room -= k;
            src += k;
            left -= k;
        }
    }
    return 0;
}

/* The len bytes of rec (released) in new buffers in out (room for nrec);
 * their number, or -1 (no memory; rec released all the same). */
static int
flatten(struct evpl *evpl, struct evpl_iovec *rec, int nrec, uint32_t len, struct evpl_iovec *out)
{
    struct rpc2_rd r;
    int n = len ? evpl_iovec_alloc(evpl, len, 0, (unsigned int) nrec, 0, out) : 0;

    if (n >= 0) {
        rpc2_rd_init(&r, rec, nrec, len);
        for (int i = 0; i < n; i++) {
            if (rpc2_rd_bytes(&r, out[i].data, out[i].length) < 0) {
                release_all(evpl, out, n);
                n = -1;
                break;
            }
        }
    }
    release_all(evpl, rec, nrec);
    return n;
} /* flatten */

/* A fragment (RFC 5531 §11) of a record; takes the iovecs. */
static void
stream_fragment(struct evpl *evpl, struct rpc2_conn *c, struct evpl_iovec *iov, int niov,
                uint32_t len)
{
    struct evpl_rpc2_conn *conn = &c->pub;
    uint8_t m[4];
    struct rpc2_rd r;
    uint32_t mark, flen;
    struct evpl_iovec *own, stack[STACK_IOV];
    int n;

    rpc2_rd_init(&r, iov, niov, len);
    if (rpc2_rd_bytes(&r, m, 4) < 0) {
        release_all(evpl, iov, niov);
        close_conn(evpl, c);
        return;
    }
    mark = (uint32_t) m[0] << 24 | (uint32_t) m[1] << 16 | (uint32_t) m[2] << 8 | m[3];
    flen = mark & 0x7fffffffu;
    own = own_iovecs(stack, iov, niov);
    if (!own) {
        release_all(evpl, iov, niov);
        out_of_memory(evpl, c, "a record");
        return;
    }
    n = strip_front(evpl, own, niov, 4);

    if ((mark & 0x80000000u) && conn->reasm_niov == 0) {
        rpc_message(evpl, c, own, n, flen, NULL, NULL); /* the common case */
        iov_array_free(own, stack);
        return;
    }
    if ((uint64_t) conn->reasm_length + flen > evpl_global_config_get_rpc2_max_message_size()) {
        rpc2_error("record over the size limit: closing");
        release_all(evpl, own, n);
        iov_array_free(own, stack);
        close_conn(evpl, c);
        return;
    }
    if (flen < REASM_COPY_BELOW) {
        int rc = reasm_copy(evpl, c, own, n, flen);

        release_all(evpl, own, n);
        if (rc < 0) {
            iov_array_free(own, stack);
            out_of_memory(evpl, c, "a record's fragments");
            return;
        }
    } else {
        if (reasm_reserve(conn, n) < 0) {
            release_all(evpl, own, n);
            iov_array_free(own, stack);
            out_of_memory(evpl, c, "a record's fragments");
            return;
        }
        memcpy(conn->reasm_iov + conn->reasm_niov, own, (size_t) n * sizeof(*own));
        conn->reasm_niov += n;
        c->reasm_room = 0; /* the copy buffer is no longer last */
    }
    conn->reasm_length += flen;
    iov_array_free(own, stack);
    if (mark & 0x80000000u) {
        /* a copy: the connection may go (and free its array) meanwhile */
        struct evpl_iovec *rec = own_iovecs(stack, conn->reasm_iov, conn->reasm_niov);
        int nrec = conn->reasm_niov;
        uint32_t rlen = conn->reasm_length;

        conn->reasm_niov = 0;
        conn->reasm_length = 0;
        c->reasm_room = 0;
        if (!rec) {
            release_all(evpl, conn->reasm_iov, nrec);
            out_of_memory(evpl, c, "a record");
            return;
        }
        if (nrec > REASM_FLAT_IOV) {
            struct evpl_iovec *flat = malloc((size_t) nrec * sizeof(*flat));
            int nflat = flat ? flatten(evpl, rec, nrec, rlen, flat) : -1;

            if (!flat) {
                release_all(evpl, rec, nrec);
            }
            iov_array_free(rec, stack);
            if (nflat < 0) {
                free(flat);
                out_of_memory(evpl, c, "a copy of a record in many fragments");
                return;
            }
            rpc_message(evpl, c, flat, nflat, rlen, NULL, NULL);
            free(flat);
            return;
        }
        rpc_message(evpl, c, rec, nrec, rlen, NULL, NULL);
        iov_array_free(rec, stack);
    }
}

/* Read a chunk list's segments (RFC 8166 §4.2.1). */
static int
read_segment(struct rpc2_rd *r, struct rpc2_seg *seg)
{
    return rpc2_rd_u32(r, &seg->handle) < 0 || rpc2_rd_u32(r, &seg->length) < 0 ||
                   rpc2_rd_u64(r, &seg->offset) < 0
               ? -1
               : 0;
}

/* A chunk (counted array of segments); c NULL skips it. */
static int
read_chunk_array(struct rpc2_rd *r, struct rpc2_chunk *c)
{
    uint32_t count;
    struct rpc2_seg seg;

    if (rpc2_rd_u32(r, &count) < 0 || count > RDMA_MAX_SEGMENTS) {
        return -1;
    }
    if (c) {
        c->n = 0;
        c->total = 0;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (read_segment(r, &seg) < 0) {
            return -1;
        }
        if (c) {
            c->seg[c->n++] = seg;
            c->total += seg.length;
        }
    }
    return 0;
}

/* An RPC-over-RDMA message (RFC 8166 §4); takes the iovecs. */
static void
rdma_message(struct evpl *evpl, struct rpc2_conn *c, struct evpl_iovec *iov, int niov, uint32_t len)
{
    struct evpl_rpc2_conn *conn = &c->pub;
    struct rpc2_rd r;
    uint32_t xid, vers, credits, proc, more;
    struct rpc2_sreq *s = NULL;
    struct rpc2_chunk wchunk = {.n = 0}, rchunk = {.n = 0};
    struct rpc2_seg written;
    int have_written = 0, have = 0, nread = 0;
    struct rpc2_seg reads[RDMA_MAX_SEGMENTS];
    uint32_t read_pos = 0, pos;
    struct evpl_iovec *own, stack[STACK_IOV];
    int n;

    rpc2_rd_init(&r, iov, niov, len);
    if (rpc2_rd_u32(&r, &xid) < 0 || rpc2_rd_u32(&r, &vers) < 0 || rpc2_rd_u32(&r, &credits) < 0 ||
        rpc2_rd_u32(&r, &proc) < 0) {
        goto malformed;
    }
    if (vers != RDMA_VERSION) {
        uint8_t e[32], *q = e;

        q = rpc2_put_u32(q, xid);
        q = rpc2_put_u32(q, RDMA_VERSION);
        q = rpc2_put_u32(q, 1);
        q = rpc2_put_u32(q, RDMA_ERROR);
        q = rpc2_put_u32(q, ERR_VERS);
        q = rpc2_put_u32(q, RDMA_VERSION);
        q = rpc2_put_u32(q, RDMA_VERSION);
        send_copy(evpl, conn, e, (unsigned int) (q - e));
        release_all(evpl, iov, niov);
        return;
    }
    if (proc == RDMA_ERROR) {
        struct evpl_rpc2_request *req;

        release_all(evpl, iov, niov);
        HASH_FIND(hh, conn->pending_calls, &xid, sizeof(xid), req);
        if (req) {
            HASH_DELETE(hh, conn->pending_calls, req);
            call_complete(evpl, conn, req, EVPL_RPC2_REPLY_RDMA_ERROR, NULL, NULL, 0, 0);
        }
        return;
    }
    if (proc != RDMA_MSG && proc != RDMA_NOMSG) {
        goto malformed;
    }
    c->credits = credits ? credits : 1;
    /* read list: (position, segment) items */
    while (1) {
        if (rpc2_rd_u32(&r, &more) < 0) {
            goto malformed;
        }
        if (!more) {
            break;
        }
        if (nread == RDMA_MAX_SEGMENTS || rpc2_rd_u32(&r, &pos) < 0 ||
            read_segment(&r, &reads[nread]) < 0 || (nread > 0 && pos != read_pos)) {
            goto malformed; /* one read chunk per call is all we take */
        }
        read_pos = pos;
        nread++;
    }
    /* write list: chunks of segments; we use the first */
    while (1) {
        if (rpc2_rd_u32(&r, &more) < 0) {
            goto malformed;
        }
        if (!more) {
            break;
        }
        /* the first chunk is ours to use (one zcopaque result) */
        if (read_chunk_array(&r, have_written ? NULL : &wchunk) < 0) {
            goto malformed;
        }
        have_written = 1;
    }
    if (have_written) {
        written = wchunk.seg[0];
        written.length = wchunk.total > UINT32_MAX ? UINT32_MAX : (uint32_t) wchunk.total;
    }
    /* reply chunk */
    if (rpc2_rd_u32(&r, &more) < 0) {
        goto malformed;
    }
    if (more && read_chunk_array(&r, &rchunk) < 0) {
        goto malformed;
    }
    have = more && rchunk.n > 0;
    if (proc == RDMA_MSG && len - r.pos > evpl_global_config_get_rpc2_max_message_size()) {
        /* the same bound as a stream's record (§5.1) */
        rpc2_error("inline message of %u bytes over the limit: closing", len - r.pos);
        release_all(evpl, iov, niov);
        close_conn(evpl, c);
        return;
    }

    own = own_iovecs(stack, iov, niov);
    if (!own) {
        release_all(evpl, iov, niov);
        out_of_memory(evpl, c, "a message");
        return;
    }
    n = strip_front(evpl, own, niov, r.pos);

    if (proc == RDMA_NOMSG && nread) {
        /* a long call (RFC 8166 §3.5.3): the whole message in a
         * position-zero read chunk, fetched before anything else */
        release_all(evpl, own, n);
        iov_array_free(own, stack);
        if (read_pos != 0) {
            goto malformed_released;
        }
        s = sreq_get(conn->thread, 0);
        if (!s) {
            out_of_memory(evpl, c, "a call");
            return;
        }
        memcpy(s->read_segs, reads, sizeof(reads));
        s->nread_segs = nread;
        s->long_call = 1;
        s->rdma = 1;
        if (have_written) {
            s->write_offer = wchunk;
            s->write_offered = 1;
        }
        if (have) {
            s->reply_offer = rchunk;
        }
        sreq_link(evpl, c, s, 1);
        fetch_read_chunk(evpl, c, s);
        return;
    }
    if (proc == RDMA_NOMSG) {
        /* a long reply, written into our reply chunk */
        struct evpl_rpc2_request *req;
        int m;

        release_all(evpl, own, n);
        iov_array_free(own, stack);
        HASH_FIND(hh, conn->pending_calls, &xid, sizeof(xid), req);
        if (!req) {
            /* a reply to nothing */
            rpc2_error("unexpected RDMA_NOMSG: closing");
            close_conn(evpl, c);
            return;
        }
        if (!req->has_reply || !have || rchunk.total > req->reply_max) {
            /* the reply cannot be where it says: the call ends here */
            HASH_DELETE(hh, conn->pending_calls, req);
            call_complete(evpl, conn, req, EVPL_RPC2_REPLY_RDMA_ERROR, NULL, NULL, 0, 0);
            return;
        }
        /* the reply is in the chunk's first buffers: those become the
         * message (its references), the rest go */
        m = view(req->reply_iov, req->has_reply, 0, (uint32_t) rchunk.total, req->reply_iov,
                 req->has_reply);
        if (m < 0) {
            m = 0;
        }
        release_all(evpl, req->reply_iov + m, req->has_reply - m);
        req->has_reply = 0;
        /* a copy: completing the call frees the request's array */
        own = own_iovecs(stack, req->reply_iov, m);
        if (!own) {
            release_all(evpl, req->reply_iov, m);
            HASH_DELETE(hh, conn->pending_calls, req);
            call_complete(evpl, conn, req, EVPL_RPC2_REPLY_RDMA_ERROR, NULL, NULL, 0, 0);
            return;
        }
        rpc_message(evpl, c, own, m, (uint32_t) rchunk.total, NULL, have_written ? &written : NULL);
        iov_array_free(own, stack);
        return;
    }
    if (nread || have_written || have) {
        /* a call with chunks: remember them for the server side */
        s = sreq_get(conn->thread, len);
        if (!s) {
            release_all(evpl, own, n);
            iov_array_free(own, stack);
            out_of_memory(evpl, c, "a call");
            return;
        }
        memcpy(s->read_segs, reads, sizeof(reads));
        s->nread_segs = nread;
        s->read_position = read_pos;
        if (have_written) {
            s->write_offer = wchunk;
            s->write_offered = 1;
        }
        if (have) {
            s->reply_offer = rchunk;
        }
    }
    rpc_message(evpl, c, own, n, len - r.pos, s, have_written ? &written : NULL);
    iov_array_free(own, stack);
    return;

malformed:
    release_all(evpl, iov, niov);
malformed_released:
    rpc2_error("malformed RPC-over-RDMA header: closing");
    close_conn(evpl, c);
}

static void
conn_gone(struct evpl *evpl, struct rpc2_conn *c)
{
    struct evpl_rpc2_conn *conn = &c->pub;
    struct evpl_rpc2_thread *t = conn->thread;
    struct evpl_rpc2_request *req, *tmp;

    c->gone = 1;
    evpl_remove_deferral(evpl, &c->fail_deferral);
    evpl_remove_deferral(evpl, &c->next_pass);
    complete_failed(evpl, c);
    /* every call still waiting completes with CONN_LOST, including calls
     * made from these callbacks (they join the table) */
    while (conn->pending_calls) {
        HASH_ITER(hh, conn->pending_calls, req, tmp)
        {
            HASH_DELETE(hh, conn->pending_calls, req);
            call_complete(evpl, conn, req, EVPL_RPC2_REPLY_CONN_LOST, NULL, NULL, 0, 0);
        }
        complete_failed(evpl, c);
    }
    /* calls being served keep going; their replies are dropped */
    while (c->sreqs) {
        sreq_orphan(c->sreqs);
    }
    release_all(evpl, conn->reasm_iov, conn->reasm_niov);
    free(conn->reasm_iov);
    rpc2_gss_owner_gone(c); /* contexts it created (rpc2.md §8) */
    notify(t, conn, EVPL_RPC2_NOTIFY_DISCONNECTED, t->private_data);
    complete_failed(evpl, c);
    if (conn->prev) {
        conn->prev->next = conn->next;
    } else {
        t->conns = conn->next;
    }
    if (conn->next) {
        conn->next->prev = conn->prev;
    }
    /* calls made from the callbacks above armed it again */
    evpl_remove_deferral(evpl, &c->fail_deferral);
    complete_failed(evpl, c);
    free(c);
}

static void
conn_event(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *private_data)
{
    struct rpc2_conn *c = private_data;
    struct evpl_rpc2_thread *t = c->pub.thread;

    switch (n->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            c->connected = 1;
            send_held(evpl, c);
            notify(t, &c->pub, EVPL_RPC2_NOTIFY_CONNECTED, t->private_data);
            break;
        case EVPL_NOTIFY_RECV_MSG:
            if (c->gone) {
                release_all(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
            } else if (c->stream) {
                stream_fragment(evpl, c, n->recv_msg.iovec, (int) n->recv_msg.niov,
                                n->recv_msg.length);
            } else {
                rdma_message(evpl, c, n->recv_msg.iovec, (int) n->recv_msg.niov,
                             n->recv_msg.length);
            }
            break;
        case EVPL_NOTIFY_SENT:
            flow_sent(evpl, c, n->sent.bytes, n->sent.msgs, 1);
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            conn_gone(evpl, c);
            break;
        default:
            break;
    }
}

/* ---- servers ---- */

EVPL_API struct evpl_rpc2_server *
evpl_rpc2_server_init(struct evpl_rpc2_program **programs, int nprograms)
{
    struct evpl_rpc2_server *s;

    if (nprograms < 0 || nprograms > 4) {
        rpc2_error("a server serves 1 to 4 programs, not %d", nprograms);
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        rpc2_error("out of memory for a server");
        return NULL;
    }
    s->listener = evpl_listener_create();
    for (int i = 0; i < nprograms; i++) {
        programs[i]->send_reply_dispatch = rpc2_send_reply;
        s->programs[i] = programs[i];
    }
    s->nprograms = nprograms;
    return s;
}

EVPL_API int
evpl_rpc2_server_start(struct evpl_rpc2_server *server, int protocol,
                       struct evpl_endpoint *endpoint)
{
    if (!server->listener || !framing_supported((enum evpl_protocol_id) protocol)) {
        rpc2_error("protocol %d carries no RPC here", protocol);
        return -1;
    }
    return evpl_listen(server->listener, (enum evpl_protocol_id) protocol, endpoint) == 0 ? 0 : -1;
}

/* A connection accepted without memory to serve it: closed at once. */
static void
refused_event(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *private_data)
{
    (void) private_data;
    if (n->notify_type == EVPL_NOTIFY_CONNECTED) {
        evpl_close(evpl, bind);
    }
}

static void
accepted(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_cb,
         evpl_segment_callback_t *segment, void **conn_private, void *private_data)
{
    struct rpc2_binding *b = private_data;
    struct evpl_rpc2_thread *t = b->thread;
    struct rpc2_conn *c = conn_new(t, evpl_bind_get_protocol(bind));

    if (!c) {
        rpc2_error("out of memory for a connection: refused");
        *notify_cb = refused_event;
        *segment = NULL;
        *conn_private = NULL;
        return;
    }
    c->pub.bind = bind;
    c->pub.server_binding = (struct evpl_rpc2_server_binding *) b;
    c->pub.server_private_data = b->private_data;
    for (int i = 0; i < b->nprograms; i++) {
        c->pub.server_programs[i] = b->programs[i];
    }
    c->pub.num_server_programs = b->nprograms;
    *notify_cb = conn_event;
    *segment = c->stream ? segment_cb : NULL;
    *conn_private = c;
    if (c->stream) {
        c->flow = 1;
        evpl_bind_request_send_notifications(evpl, bind);
        evpl__bind_set_recv_limit(evpl, bind, RPC2_RECV_LIMIT);
    }
    notify(t, &c->pub, EVPL_RPC2_NOTIFY_ACCEPTED, b->private_data);
}

EVPL_API void
evpl_rpc2_server_attach(struct evpl_rpc2_thread *thread, struct evpl_rpc2_server *server,
                        void *private_data)
{
    struct rpc2_binding *b = setup_alloc(sizeof(*b));

    b->thread = thread;
    b->server = server;
    memcpy(b->programs, server->programs, sizeof(b->programs));
    b->nprograms = server->nprograms;
    b->private_data = private_data;
    b->lb = evpl_listener_attach(thread->evpl, server->listener, accepted, b);
    b->next = thread->bindings;
    thread->bindings = b;
}

EVPL_API void
evpl_rpc2_server_detach(struct evpl_rpc2_thread *thread, struct evpl_rpc2_server *server)
{
    struct rpc2_binding **pp = &thread->bindings, *b;

    while ((b = *pp) && b->server != server) {
        pp = &b->next;
    }
    if (!b) {
        evpl_abort("rpc2", __FILE__, __LINE__, "evpl_rpc2_server_detach: server not attached");
    }
    *pp = b->next;
    evpl_listener_detach(thread->evpl, b->lb);
    /* connections accepted here keep working; they forget the binding */
    for (struct evpl_rpc2_conn *c = thread->conns; c; c = c->next) {
        if (c->server_binding == (struct evpl_rpc2_server_binding *) b) {
            c->server_binding = NULL;
        }
    }
    free(b);
}

EVPL_API void
evpl_rpc2_server_stop(struct evpl_rpc2_server *server)
{
    if (server->listener) {
        evpl_listener_destroy(server->listener);
        server->listener = NULL;
    }
}

EVPL_API void
evpl_rpc2_server_destroy(struct evpl_rpc2_server *server)
{
    if (!server) {
        return;
    }
    evpl_rpc2_server_stop(server);
    free(server);
}
