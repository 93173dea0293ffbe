/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * uv-bench: the libuv reference peer of evpl-bench.
 *
 * Same command line, same summary and the same --json keys as evpl-bench, for
 * the workloads libuv can run the same way: `pingpong` and `stream` over TCP.
 * It is written the way a careful libuv user would write it, and no more:
 * one uv_loop per thread, uv_tcp_t with TCP_NODELAY, uv_read_start with an
 * alloc_cb handing out a per-connection buffer, uv_try_write first and
 * uv_write for what is left.  No busy polling: libuv sleeps in epoll_wait
 * when it has nothing to do, and that is the point of the comparison.
 *
 * pingpong: the client keeps --depth messages of --size bytes in flight on
 *   each connection; the server echoes every complete message; the client
 *   counts one op per response and records its latency (send time of that
 *   message to the arrival of its response; TCP keeps them in order).
 * stream: the client keeps --depth uv_write()s of --size bytes queued on each
 *   connection and counts an op in each write callback; the server counts
 *   bytes.  Latency fields are 0 in this mode.
 * Gbit/s counts the client's payload in one direction (ops x size).
 *
 * Timing is driven by the main thread: connect everything, warm up, then tell
 * every loop (uv_async) that the measured period starts and later that it
 * ends; each loop snapshots its own counters and getrusage(RUSAGE_THREAD) at
 * those two points, so warm-up and tear-down are excluded from every figure.
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include <uv.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- configuration ---- */

enum mode { MODE_PINGPONG, MODE_STREAM };
enum role { ROLE_LOCAL, ROLE_SERVER, ROLE_CLIENT };

static struct {
    enum mode mode;
    enum role role;
    const char *host;
    size_t size;
    unsigned depth;
    unsigned conns;
    unsigned client_threads;
    unsigned server_threads;
    double duration;
    double warmup;
    int port;
    bool quiet;
    bool json;
    bool coalesce;
} cfg = {
    .mode = MODE_PINGPONG,
    .role = ROLE_LOCAL,
    .size = 64,
    .depth = 16,
    .conns = 1,
    .client_threads = 1,
    .server_threads = 1,
    .duration = 5,
    .warmup = 1,
    .port = -1,
};

static const char *const mode_names[] = {"pingpong", "stream"};

/* ---- log-linear histogram (HdrHistogram layout, 64 sub-buckets per octave) ---- */

/*
 * Values below 128 ns have a bucket each; above, every power of two is split
 * into 64 linear sub-buckets, so a bucket is at most 1/64 (1.6 %) wide.
 * Recording is a shift and an increment: no allocation per sample.
 */
#define H_SUB_BITS 6
#define H_SUB      (1u << H_SUB_BITS)
#define H_MAX_MSB  40 /* 2^41 ns, about 36 minutes: everything above is clamped */
#define H_BUCKETS  (2 * H_SUB + (H_MAX_MSB - H_SUB_BITS) * H_SUB)

struct hist {
    uint64_t count[H_BUCKETS];
    uint64_t n, sum, min, max;
};

static unsigned
h_index(uint64_t v)
{
    unsigned msb, shift;

    if (v < 2 * H_SUB) {
        return (unsigned) v;
    }
    msb = 63u - (unsigned) __builtin_clzll(v);
    if (msb > H_MAX_MSB) {
        return H_BUCKETS - 1;
    }
    shift = msb - H_SUB_BITS;
    return 2 * H_SUB + (shift - 1) * H_SUB + (unsigned) ((v >> shift) - H_SUB);
} /* h_index */

static uint64_t
h_low(unsigned i)
{
    unsigned shift;

    if (i < 2 * H_SUB) {
        return i;
    }
    shift = (i - 2 * H_SUB) / H_SUB + 1;
    return (uint64_t) ((i - 2 * H_SUB) % H_SUB + H_SUB) << shift;
} /* h_low */

static void
h_reset(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
} /* h_reset */

static inline void
h_record(struct hist *h, uint64_t v)
{
    h->count[h_index(v)]++;
    h->n++;
    h->sum += v;
    if (v < h->min) {
        h->min = v;
    }
    if (v > h->max) {
        h->max = v;
    }
} /* h_record */

static void
h_merge(struct hist *into, const struct hist *from)
{
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        into->count[i] += from->count[i];
    }
    into->n += from->n;
    into->sum += from->sum;
    if (from->min < into->min) {
        into->min = from->min;
    }
    if (from->max > into->max) {
        into->max = from->max;
    }
} /* h_merge */

/* Lowest value of the bucket holding the p-quantile, kept within [min, max]. */
static uint64_t
h_quantile(const struct hist *h, double p)
{
    uint64_t want, seen = 0, v;

    if (h->n == 0) {
        return 0;
    }
    want = (uint64_t) (p * (double) h->n + 0.999999);
    if (want < 1) {
        want = 1;
    }
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want) {
            v = h_low(i);
            return v < h->min ? h->min : v > h->max ? h->max : v;
        }
    }
    return h->max;
} /* h_quantile */

/* ---- per-thread state ---- */

enum phase { PH_WARMUP, PH_MEASURE, PH_DONE };

static _Atomic int phase = PH_WARMUP;
/* posted by each client thread when its conns are up, by a server on its first accept */
static sem_t ready_sem;
static char *txbuf; /* constant payload every client write points into */

struct conn;

struct side {
    pthread_t tid;
    bool is_server;
    unsigned index;
    uv_loop_t loop;
    uv_async_t wake;
    int seen_phase;
    /* client: connections to open; server: listening socket */
    unsigned nconns;
    unsigned connected;
    int listen_fd;
    uv_tcp_t listener;
    struct conn *conns; /* server: accepted connections, for closing at the end */
    /* counters: ops live (progress), the rest at the snapshots */
    _Atomic uint64_t ops;
    uint64_t rx_bytes;
    uint64_t ops_at_start, ops_at_end;
    uint64_t t_start, t_end;
    struct rusage ru_start, ru_end;
    struct hist hist;
    bool measuring;
};

struct wreq {
    uv_write_t req;
    struct wreq *next;
};

struct conn {
    uv_tcp_t tcp;
    struct side *side;
    struct conn *prev, *next;
    char *rbuf;
    size_t rcap, rfill;
    /* pingpong client: send times of the messages in flight, oldest at head */
    uint64_t *sent;
    unsigned head, inflight;
    size_t rx_partial;
    struct wreq *free_wreq;
    /* pingpong server: bytes at the front of rbuf being echoed, writes still pending */
    size_t echo_len;
    unsigned echo_pending;
    /* stream client */
    struct wreq *stream_reqs;
    uv_connect_t connect_req;
};

static struct side *servers, *clients;
static struct sockaddr_storage target;

static void
die(const char *what, int err)
{
    fprintf(stderr, "uv-bench: %s: %s\n", what, err < 0 ? uv_strerror(err) : strerror(err));
    exit(1);
} /* die */

static void *
xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);

    if (!p) {
        die("calloc", ENOMEM);
    }
    return p;
} /* xcalloc */

static void
on_close_conn(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct wreq *w;

    while ((w = c->free_wreq)) {
        c->free_wreq = w->next;
        free(w);
    }
    free(c->stream_reqs);
    free(c->sent);
    free(c->rbuf);
    free(c);
} /* on_close_conn */

static void
close_conn(struct conn *c)
{
    struct side *s = c->side;

    if (uv_is_closing((uv_handle_t *) &c->tcp)) {
        return;
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    uv_close((uv_handle_t *) &c->tcp, on_close_conn);
} /* close_conn */

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    /* pingpong server keeps a partial message at the front; others discard */
    *buf = uv_buf_init(c->rbuf + c->rfill, (unsigned) (c->rcap - c->rfill));
} /* on_alloc */

/* ---- client ---- */

/*
 * Send len bytes from buf: uv_try_write while the socket takes them, a
 * uv_write (request from the connection's free list) for the rest.  libuv
 * refuses uv_try_write while writes are queued, so order is kept.  Returns 1
 * when a uv_write was queued (cb will run), 0 when all went now, <0 on error.
 */
static int
send_bytes(struct conn *c, char *buf, size_t len, uv_write_cb cb)
{
    uv_buf_t b = uv_buf_init(buf, (unsigned) len);
    struct wreq *w;
    int r;

    r = uv_try_write((uv_stream_t *) &c->tcp, &b, 1);
    if (r == UV_EAGAIN) {
        r = 0;
    } else if (r < 0) {
        return r;
    }
    if ((size_t) r == len) {
        return 0;
    }
    b = uv_buf_init(buf + r, (unsigned) (len - (size_t) r));
    w = c->free_wreq;
    if (w) {
        c->free_wreq = w->next;
    } else {
        w = xcalloc(1, sizeof(*w));
    }
    w->req.data = c;
    r = uv_write(&w->req, (uv_stream_t *) &c->tcp, &b, 1, cb);
    if (r < 0) {
        w->next = c->free_wreq;
        c->free_wreq = w;
        return r;
    }
    return 1;
} /* send_bytes */

static void
put_wreq(uv_write_t *req)
{
    struct conn *c = req->data;
    struct wreq *w = (struct wreq *) req;

    w->next = c->free_wreq;
    c->free_wreq = w;
} /* put_wreq */

static void
on_client_write(uv_write_t *req, int status)
{
    put_wreq(req);
} /* on_client_write */

/*
 * Send n more requests.  Each is its own write, as an RPC client issuing
 * independent requests would do; with --coalesce the n go in one write.
 */
static void
pp_send(struct conn *c, unsigned n)
{
    uint64_t now = uv_hrtime();
    unsigned per = cfg.coalesce ? n : 1;
    int r = 0;

    for (unsigned i = 0; i < n; i++) {
        c->sent[(c->head + c->inflight++) % cfg.depth] = now;
    }
    for (unsigned i = 0; i < n && r >= 0; i += per) {
        r = send_bytes(c, txbuf, (size_t) per * cfg.size, on_client_write);
    }
    if (r < 0 && atomic_load(&phase) != PH_DONE) {
        die("client write", r);
    }
} /* pp_send */

static void
on_client_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    struct side *s = c->side;
    unsigned got;
    uint64_t now;

    if (nread < 0) {
        if (atomic_load_explicit(&phase, memory_order_relaxed) != PH_DONE) {
            die("client read", (int) nread);
        }
        close_conn(c);
        return;
    }
    c->rx_partial += (size_t) nread;
    got = (unsigned) (c->rx_partial / cfg.size);
    c->rx_partial %= cfg.size;
    if (got == 0) {
        return;
    }
    now = uv_hrtime();
    for (unsigned i = 0; i < got; i++) {
        uint64_t t = c->sent[c->head];

        c->head = (c->head + 1) % cfg.depth;
        if (s->measuring) {
            h_record(&s->hist, now - t);
        }
    }
    c->inflight -= got;
    atomic_fetch_add_explicit(&s->ops, got, memory_order_relaxed);
    pp_send(c, got);
} /* on_client_read */

static void
on_stream_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    uv_buf_t buf = uv_buf_init(txbuf, (unsigned) cfg.size);
    int r;

    if (status < 0) {
        if (status != UV_ECANCELED && atomic_load(&phase) != PH_DONE) {
            die("stream write", status);
        }
        return;
    }
    atomic_fetch_add_explicit(&c->side->ops, 1, memory_order_relaxed);
    if (uv_is_closing((uv_handle_t *) &c->tcp)) {
        return;
    }
    r = uv_write(req, (uv_stream_t *) &c->tcp, &buf, 1, on_stream_write);
    if (r < 0) {
        die("uv_write", r);
    }
} /* on_stream_write */

static void
on_stream_client_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0) {
        close_conn(stream->data);
    }
} /* on_stream_client_read */

static void
on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    struct side *s = c->side;
    uv_buf_t buf;
    int r;

    if (status < 0) {
        die("connect", status);
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (cfg.mode == MODE_PINGPONG) {
        uv_read_start((uv_stream_t *) &c->tcp, on_alloc, on_client_read);
        pp_send(c, cfg.depth);
    } else {
        /* reading only to notice the server going away */
        uv_read_start((uv_stream_t *) &c->tcp, on_alloc, on_stream_client_read);
        c->stream_reqs = xcalloc(cfg.depth, sizeof(*c->stream_reqs));
        buf = uv_buf_init(txbuf, (unsigned) cfg.size);
        for (unsigned i = 0; i < cfg.depth; i++) {
            c->stream_reqs[i].req.data = c;
            r = uv_write(&c->stream_reqs[i].req, (uv_stream_t *) &c->tcp, &buf, 1, on_stream_write);
            if (r < 0) {
                die("uv_write", r);
            }
        }
    }
    if (++s->connected == s->nconns) {
        sem_post(&ready_sem);
    }
} /* on_connect */

static void
link_conn(struct side *s, struct conn *c)
{
    c->next = s->conns;
    if (s->conns) {
        s->conns->prev = c;
    }
    s->conns = c;
} /* link_conn */

static void
client_start(struct side *s)
{
    for (unsigned i = 0; i < s->nconns; i++) {
        struct conn *c = xcalloc(1, sizeof(*c));
        int r;

        c->side = s;
        link_conn(s, c);
        c->rcap = 65536;
        c->rbuf = malloc(c->rcap);
        c->sent = xcalloc(cfg.depth, sizeof(*c->sent));
        if (!c->rbuf) {
            die("malloc", ENOMEM);
        }
        uv_tcp_init(&s->loop, &c->tcp);
        c->tcp.data = c;
        c->connect_req.data = c;
        r = uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *) &target, on_connect);
        if (r < 0) {
            die("uv_tcp_connect", r);
        }
    }
    if (s->nconns == 0) {
        sem_post(&ready_sem);
    }
} /* client_start */

/* ---- server ---- */

static void on_server_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/*
 * Echo the complete messages at the front of rbuf; a partial one stays there
 * until the rest arrives.  While a uv_write is pending we stop reading: the
 * write points into rbuf, and that is also TCP's own backpressure.
 */
static void
echo_done(struct conn *c)
{
    c->rfill -= c->echo_len;
    memmove(c->rbuf, c->rbuf + c->echo_len, c->rfill);
    c->echo_len = 0;
} /* echo_done */

static void
on_echo_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;

    put_wreq(req);
    if (status < 0) {
        return; /* cancelled by close, or the client went away */
    }
    if (--c->echo_pending == 0) {
        echo_done(c);
        uv_read_start((uv_stream_t *) &c->tcp, on_alloc, on_server_read);
    }
} /* on_echo_write */

static void
on_server_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    size_t complete, per;
    int r = 0;

    if (nread < 0) {
        close_conn(c);
        return;
    }
    if (cfg.mode == MODE_STREAM) {
        c->side->rx_bytes += (size_t) nread;
        atomic_store_explicit(&c->side->ops, c->side->rx_bytes / cfg.size, memory_order_relaxed);
        return;
    }
    c->rfill += (size_t) nread;
    complete = c->rfill - c->rfill % cfg.size;
    if (complete == 0) {
        return;
    }
    atomic_fetch_add_explicit(&c->side->ops, complete / cfg.size, memory_order_relaxed);
    /* one response write per request, as an RPC server would; --coalesce: one for all */
    per = cfg.coalesce ? complete : cfg.size;
    c->echo_len = complete;
    c->echo_pending = 0;
    for (size_t off = 0; off < complete; off += per) {
        r = send_bytes(c, c->rbuf + off, per, on_echo_write);
        if (r < 0) {
            close_conn(c);
            return;
        }
        c->echo_pending += (unsigned) r;
    }
    if (c->echo_pending == 0) {
        echo_done(c);
    } else {
        uv_read_stop(stream);
    }
} /* on_server_read */

static void
on_connection(uv_stream_t *listener, int status)
{
    struct side *s = listener->data;
    struct conn *c;
    int r;

    if (status < 0) {
        fprintf(stderr, "uv-bench: accept: %s\n", uv_strerror(status));
        return;
    }
    c = xcalloc(1, sizeof(*c));
    c->side = s;
    /* the stream server reads in large chunks; the echo server holds whole messages */
    c->rcap = cfg.mode == MODE_STREAM ? 262144 : (cfg.size * 2 > 65536 ? cfg.size * 2 : 65536);
    c->rbuf = malloc(c->rcap);
    if (!c->rbuf) {
        die("malloc", ENOMEM);
    }
    uv_tcp_init(&s->loop, &c->tcp);
    c->tcp.data = c;
    r = uv_accept(listener, (uv_stream_t *) &c->tcp);
    if (r < 0) {
        uv_close((uv_handle_t *) &c->tcp, on_close_conn);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    link_conn(s, c);
    uv_read_start((uv_stream_t *) &c->tcp, on_alloc, on_server_read);
    if (cfg.role == ROLE_SERVER && s->connected++ == 0) {
        sem_post(&ready_sem);
    }
} /* on_connection */

static void
server_start(struct side *s)
{
    int r;

    uv_tcp_init(&s->loop, &s->listener);
    s->listener.data = s;
    r = uv_tcp_open(&s->listener, s->listen_fd);
    if (r == 0) {
        r = uv_listen((uv_stream_t *) &s->listener, 1024, on_connection);
    }
    if (r < 0) {
        die("listen", r);
    }
} /* server_start */

/* ---- phases ---- */

static void
on_close_plain(uv_handle_t *h)
{
} /* on_close_plain */

static void
snapshot_start(struct side *s)
{
    getrusage(RUSAGE_THREAD, &s->ru_start);
    s->t_start = uv_hrtime();
    s->ops_at_start = atomic_load_explicit(&s->ops, memory_order_relaxed);
    h_reset(&s->hist);
    s->measuring = true;
} /* snapshot_start */

static void
snapshot_end(struct side *s)
{
    struct conn *c;

    s->measuring = false;
    s->ops_at_end = atomic_load_explicit(&s->ops, memory_order_relaxed);
    s->t_end = uv_hrtime();
    getrusage(RUSAGE_THREAD, &s->ru_end);
    if (s->seen_phase < PH_MEASURE) {
        /* ended before it started (SIGINT during warm-up): report nothing */
        s->ops_at_start = s->ops_at_end;
        s->t_start = s->t_end;
        s->ru_start = s->ru_end;
    }
    /* close everything so the loop returns; pending writes complete with UV_ECANCELED */
    while ((c = s->conns)) {
        close_conn(c);
    }
    if (s->is_server) {
        uv_close((uv_handle_t *) &s->listener, on_close_plain);
    }
    uv_close((uv_handle_t *) &s->wake, on_close_plain);
} /* snapshot_end */

static void
on_wake(uv_async_t *a)
{
    struct side *s = a->data;
    int now = atomic_load(&phase);

    /* uv_async_send coalesces: catch up on every phase change we missed */
    while (s->seen_phase < now) {
        if (s->seen_phase + 1 == PH_MEASURE) {
            snapshot_start(s);
            s->seen_phase = PH_MEASURE;
        } else {
            snapshot_end(s);
            s->seen_phase = PH_DONE;
        }
    }
} /* on_wake */

static void *
side_main(void *arg)
{
    struct side *s = arg;

    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    return NULL;
} /* side_main */

static void
side_init(struct side *s, bool is_server, unsigned index)
{
    int r;

    s->is_server = is_server;
    s->index = index;
    h_reset(&s->hist);
    r = uv_loop_init(&s->loop);
    if (r == 0) {
        r = uv_async_init(&s->loop, &s->wake, on_wake);
    }
    if (r < 0) {
        die("uv_loop_init", r);
    }
    s->wake.data = s;
    if (is_server) {
        server_start(s);
    } else {
        client_start(s);
    }
    r = pthread_create(&s->tid, NULL, side_main, s);
    if (r != 0) {
        die("pthread_create", r);
    }
} /* side_init */

/* ---- setup, timing, report ---- */

static void
usage(FILE *f)
{
    fprintf(f, "usage: uv-bench [pingpong|stream] [options]\n"
               "  -p, --proto NAME    STREAM_SOCKET_TCP or auto (libuv peer: TCP only) [auto]\n"
               "  -s, --size BYTES    message size [64]\n"
               "  -d, --depth N       messages in flight per connection [16]\n"
               "  -c, --conns N       connections in total [1]\n"
               "  -t, --client-threads N [1]      -T, --server-threads N [1]\n"
               "  -D, --duration SEC  measured time [5]       -w, --warmup SEC [1]\n"
               "      --port P        [local mode: a free port; else 7700]\n"
               "      --local         both sides in this process (default)\n"
               "      --server        server side only, until SIGINT or warm-up + duration\n"
               "                      after the first connection\n"
               "      --client HOST   client side only, against HOST\n"
               "  -q, --quiet         no progress lines      -j, --json   JSON summary on stdout\n"
               "      --coalesce      (uv-bench only) pingpong: write all requests / responses\n"
               "                      due at once in one write instead of one write each\n");
} /* usage */

static unsigned long
num(const char *opt, const char *arg, unsigned long min, unsigned long max)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(arg, &end, 0);
    if (errno || end == arg || *end || v < min || v > max) {
        fprintf(stderr, "uv-bench: bad value for %s: %s\n", opt, arg);
        exit(2);
    }
    return v;
} /* num */

static double
seconds(const char *opt, const char *arg)
{
    char *end;
    double v = strtod(arg, &end);

    if (end == arg || *end || v < 0 || v > 86400) {
        fprintf(stderr, "uv-bench: bad value for %s: %s\n", opt, arg);
        exit(2);
    }
    return v;
} /* seconds */

static void
parse_args(int argc, char **argv)
{
    enum { O_PORT = 256, O_LOCAL, O_SERVER, O_CLIENT, O_COALESCE };
    static const struct option opts[] = {
        {"proto", required_argument, NULL, 'p'},
        {"size", required_argument, NULL, 's'},
        {"depth", required_argument, NULL, 'd'},
        {"conns", required_argument, NULL, 'c'},
        {"client-threads", required_argument, NULL, 't'},
        {"server-threads", required_argument, NULL, 'T'},
        {"duration", required_argument, NULL, 'D'},
        {"warmup", required_argument, NULL, 'w'},
        {"port", required_argument, NULL, O_PORT},
        {"local", no_argument, NULL, O_LOCAL},
        {"server", no_argument, NULL, O_SERVER},
        {"client", required_argument, NULL, O_CLIENT},
        {"quiet", no_argument, NULL, 'q'},
        {"json", no_argument, NULL, 'j'},
        {"coalesce", no_argument, NULL, O_COALESCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;

    while ((o = getopt_long(argc, argv, "p:s:d:c:t:T:D:w:qjh", opts, NULL)) != -1) {
        switch (o) {
            case 'p':
                if (strcmp(optarg, "auto") && strcmp(optarg, "STREAM_SOCKET_TCP")) {
                    fprintf(stderr, "uv-bench: protocol %s not supported (TCP only)\n", optarg);
                    exit(2);
                }
                break;
            case 's':
                cfg.size = num("--size", optarg, 1, 1ul << 30);
                break;
            case 'd':
                cfg.depth = (unsigned) num("--depth", optarg, 1, 1u << 20);
                break;
            case 'c':
                cfg.conns = (unsigned) num("--conns", optarg, 1, 1u << 20);
                break;
            case 't':
                cfg.client_threads = (unsigned) num("--client-threads", optarg, 1, 1024);
                break;
            case 'T':
                cfg.server_threads = (unsigned) num("--server-threads", optarg, 1, 1024);
                break;
            case 'D':
                cfg.duration = seconds("--duration", optarg);
                break;
            case 'w':
                cfg.warmup = seconds("--warmup", optarg);
                break;
            case O_PORT:
                cfg.port = (int) num("--port", optarg, 0, 65535);
                break;
            case O_LOCAL:
                cfg.role = ROLE_LOCAL;
                break;
            case O_SERVER:
                cfg.role = ROLE_SERVER;
                break;
            case O_CLIENT:
                cfg.role = ROLE_CLIENT;
                cfg.host = optarg;
                break;
            case O_COALESCE:
                cfg.coalesce = true;
                break;
            case 'q':
                cfg.quiet = true;
                break;
            case 'j':
                cfg.json = true;
                break;
            case 'h':
                usage(stdout);
                exit(0);
            default:
                usage(stderr);
                exit(2);
        }
    }
    if (optind < argc) {
        if (!strcmp(argv[optind], "pingpong")) {
            cfg.mode = MODE_PINGPONG;
        } else if (!strcmp(argv[optind], "stream")) {
            cfg.mode = MODE_STREAM;
        } else {
            fprintf(stderr, "uv-bench: mode %s not supported (pingpong, stream)\n", argv[optind]);
            exit(2);
        }
        optind++;
    }
    if (optind < argc) {
        usage(stderr);
        exit(2);
    }
    if (cfg.port < 0) {
        cfg.port = cfg.role == ROLE_LOCAL ? 0 : 7700;
    }
    if (cfg.client_threads > cfg.conns) {
        cfg.client_threads = cfg.conns;
    }
    if ((uint64_t) cfg.size * cfg.depth > UINT32_MAX) {
        fprintf(stderr, "uv-bench: size x depth too large\n");
        exit(2);
    }
} /* parse_args */

/* Listening sockets for the server threads: one each, SO_REUSEPORT when several. */
static int
make_listeners(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof(sin);
    int one = 1;

    sin.sin_port = htons((uint16_t) cfg.port);
    sin.sin_addr.s_addr = htonl(cfg.role == ROLE_LOCAL ? INADDR_LOOPBACK : INADDR_ANY);
    for (unsigned i = 0; i < cfg.server_threads; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0) {
            die("socket", errno);
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (cfg.server_threads > 1) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        }
        if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) < 0) {
            die("bind", errno);
        }
        if (i == 0) {
            /* port 0: every later socket joins the port the kernel picked */
            getsockname(fd, (struct sockaddr *) &sin, &len);
        }
        servers[i].listen_fd = fd;
    }
    return ntohs(sin.sin_port);
} /* make_listeners */

static void
resolve(const char *host, int port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    char service[16];
    int r;

    snprintf(service, sizeof(service), "%d", port);
    hints.ai_family = AF_INET;
    r = getaddrinfo(host, service, &hints, &ai);
    if (r != 0) {
        hints.ai_family = AF_UNSPEC;
        r = getaddrinfo(host, service, &hints, &ai);
    }
    if (r != 0) {
        fprintf(stderr, "uv-bench: %s: %s\n", host, gai_strerror(r));
        exit(1);
    }
    memcpy(&target, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
} /* resolve */

static void
broadcast(int ph)
{
    atomic_store(&phase, ph);
    for (unsigned i = 0; servers && i < cfg.server_threads; i++) {
        uv_async_send(&servers[i].wake);
    }
    for (unsigned i = 0; clients && i < cfg.client_threads; i++) {
        uv_async_send(&clients[i].wake);
    }
} /* broadcast */

static uint64_t
live_ops(void)
{
    struct side *v = clients ? clients : servers;
    unsigned n = clients ? cfg.client_threads : cfg.server_threads;
    uint64_t sum = 0;

    for (unsigned i = 0; i < n; i++) {
        sum += atomic_load_explicit(&v[i].ops, memory_order_relaxed);
    }
    return sum;
} /* live_ops */

/*
 * Sleep for sec seconds on the main thread, printing a progress line each
 * second; SIGINT/SIGTERM (blocked in every thread, waited for here) cut it
 * short.  Returns false when interrupted.
 */
static bool
wait_phase(double sec, const char *label)
{
    sigset_t set;
    uint64_t start = uv_hrtime(), end = start + (uint64_t) (sec * 1e9), last_t = start;
    uint64_t last_ops = live_ops();

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    for (;;) {
        uint64_t now = uv_hrtime(), step;
        struct timespec ts;

        if (now >= end) {
            return true;
        }
        step =
            end - now < 1000000000ull ? end - now : 1000000000ull - (now - last_t) % 1000000000ull;
        ts.tv_sec = (time_t) (step / 1000000000ull);
        ts.tv_nsec = (long) (step % 1000000000ull);
        if (sigtimedwait(&set, NULL, &ts) > 0) {
            return false;
        }
        now = uv_hrtime();
        if (!cfg.quiet && now - last_t >= 999000000ull) {
            uint64_t ops = live_ops();
            double dt = (double) (now - last_t) / 1e9;
            double rate = (double) (ops - last_ops) / dt;

            fprintf(stderr, "[%s%5.1fs] %12.0f ops/s %8.3f Gbit/s\n", label,
                    (double) (now - start) / 1e9, rate, rate * (double) cfg.size * 8 / 1e9);
            last_ops = ops;
            last_t = now;
        }
    }
} /* wait_phase */

struct totals {
    uint64_t ops;
    double ops_per_sec;
    double cpu_user[2], cpu_sys[2]; /* [0] client, [1] server */
    struct hist hist;
};

static double
tv_sec(struct timeval a, struct timeval b)
{
    return (double) (b.tv_sec - a.tv_sec) + (double) (b.tv_usec - a.tv_usec) / 1e6;
} /* tv_sec */

static void
sum_side(struct totals *t, struct side *v, unsigned n, int which, bool count_ops)
{
    for (unsigned i = 0; v && i < n; i++) {
        struct side *s = &v[i];
        uint64_t ops = s->ops_at_end - s->ops_at_start;

        t->cpu_user[which] += tv_sec(s->ru_start.ru_utime, s->ru_end.ru_utime);
        t->cpu_sys[which] += tv_sec(s->ru_start.ru_stime, s->ru_end.ru_stime);
        if (count_ops) {
            t->ops += ops;
            if (s->t_end > s->t_start) {
                t->ops_per_sec += (double) ops * 1e9 / (double) (s->t_end - s->t_start);
            }
            h_merge(&t->hist, &s->hist);
        }
    }
} /* sum_side */

static const char *const role_names[] = {"local", "server", "client"};

/* Same shape as evpl-bench's summary and JSON (plus "tool"), so one parser reads both. */
static void
report(void)
{
    static struct totals t;
    struct side *first_side = clients ? clients : servers;
    double cpu, gbit, per_cpu, avg, elapsed;
    uint64_t lmin;

    h_reset(&t.hist);
    sum_side(&t, clients, cfg.client_threads, 0, true);
    sum_side(&t, servers, cfg.server_threads, 1, clients == NULL);
    cpu = t.cpu_user[0] + t.cpu_sys[0] + t.cpu_user[1] + t.cpu_sys[1];
    gbit = t.ops_per_sec * (double) cfg.size * 8 / 1e9;
    per_cpu = cpu > 0 ? (double) t.ops / cpu : 0;
    avg = t.hist.n ? (double) t.hist.sum / (double) t.hist.n : 0;
    lmin = t.hist.n ? t.hist.min : 0;
    elapsed = (double) (first_side->t_end - first_side->t_start) / 1e9;

    if (cfg.json) {
        bool first = true;

        printf("{\"tool\":\"uv-bench\",\"mode\":\"%s\",\"proto\":\"STREAM_SOCKET_TCP\","
               "\"size\":%zu,\"depth\":%u,\"conns\":%u,\"client_threads\":%u,"
               "\"server_threads\":%u,\"duration_s\":%.3f,\"warmup_s\":%.3f,\"role\":\"%s\",",
               mode_names[cfg.mode], cfg.size, cfg.depth, cfg.conns, cfg.client_threads,
               cfg.server_threads, elapsed, cfg.warmup, role_names[cfg.role]);
        printf("\"ops\":%" PRIu64 ",\"ops_per_sec\":%.1f,\"gbit_per_sec\":%.4f,", t.ops,
               t.ops_per_sec, gbit);
        printf("\"latency_ns\":{\"min\":%" PRIu64 ",\"avg\":%.1f,\"p50\":%" PRIu64
               ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 "},",
               lmin, avg, h_quantile(&t.hist, 0.5), h_quantile(&t.hist, 0.99),
               h_quantile(&t.hist, 0.999), t.hist.max);
        printf("\"cpu\":{\"client_user_s\":%.3f,\"client_sys_s\":%.3f,\"server_user_s\":%.3f,"
               "\"server_sys_s\":%.3f},",
               t.cpu_user[0], t.cpu_sys[0], t.cpu_user[1], t.cpu_sys[1]);
        printf("\"ops_per_cpu_sec\":%.1f,\"histogram\":[", per_cpu);
        for (unsigned i = 0; i < H_BUCKETS; i++) {
            if (t.hist.count[i]) {
                printf("%s[%" PRIu64 ",%" PRIu64 "]", first ? "" : ",", h_low(i), t.hist.count[i]);
                first = false;
            }
        }
        printf("]}\n");
        return;
    }
    printf("%s STREAM_SOCKET_TCP size %zu depth %u conns %u threads %u/%u: %.1f s measured\n",
           mode_names[cfg.mode], cfg.size, cfg.depth, cfg.conns, cfg.client_threads,
           cfg.server_threads, elapsed);
    printf("  %.0f ops/s  %.3f Gbit/s\n", t.ops_per_sec, gbit);
    if (t.hist.n) {
        printf("  latency us: min %.1f avg %.1f p50 %.1f p99 %.1f p99.9 %.1f max %.1f\n",
               (double) lmin / 1e3, avg / 1e3, (double) h_quantile(&t.hist, 0.5) / 1e3,
               (double) h_quantile(&t.hist, 0.99) / 1e3, (double) h_quantile(&t.hist, 0.999) / 1e3,
               (double) t.hist.max / 1e3);
    }
    printf("  cpu s: client user %.2f sys %.2f, server user %.2f sys %.2f; %.0f ops per "
           "cpu-second\n",
           t.cpu_user[0], t.cpu_sys[0], t.cpu_user[1], t.cpu_sys[1], per_cpu);
} /* report */

int
main(int argc, char **argv)
{
    size_t txlen;
    sigset_t set;
    int port = 0;
    bool ok;

    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    /* SIGINT/SIGTERM go to the main thread's sigtimedwait, never to a loop */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sem_init(&ready_sem, 0, 0);

    txlen = cfg.size * (cfg.mode == MODE_PINGPONG ? cfg.depth : 1);
    txbuf = malloc(txlen);
    if (!txbuf) {
        die("malloc", ENOMEM);
    }
    memset(txbuf, 'x', txlen);

    if (cfg.role != ROLE_CLIENT) {
        servers = xcalloc(cfg.server_threads, sizeof(*servers));
        port = make_listeners();
        for (unsigned i = 0; i < cfg.server_threads; i++) {
            side_init(&servers[i], true, i);
        }
    }
    if (cfg.role != ROLE_SERVER) {
        resolve(cfg.role == ROLE_LOCAL ? "127.0.0.1" : cfg.host,
                cfg.role == ROLE_LOCAL ? port : cfg.port);
        clients = xcalloc(cfg.client_threads, sizeof(*clients));
        for (unsigned i = 0; i < cfg.client_threads; i++) {
            clients[i].nconns =
                cfg.conns / cfg.client_threads + (i < cfg.conns % cfg.client_threads ? 1 : 0);
            side_init(&clients[i], false, i);
        }
        for (unsigned i = 0; i < cfg.client_threads; i++) {
            sem_wait(&ready_sem);
        }
    } else {
        if (!cfg.quiet) {
            fprintf(stderr, "uv-bench: listening on port %d\n", port);
        }
        sem_wait(&ready_sem); /* the first connection starts the clock */
    }

    ok = wait_phase(cfg.warmup, "warm-up ");
    if (ok) {
        broadcast(PH_MEASURE);
        wait_phase(cfg.duration, " ");
    }
    broadcast(PH_DONE);
    for (unsigned i = 0; clients && i < cfg.client_threads; i++) {
        pthread_join(clients[i].tid, NULL);
    }
    for (unsigned i = 0; servers && i < cfg.server_threads; i++) {
        pthread_join(servers[i].tid, NULL);
    }
    report();
    free(clients);
    free(servers);
    free(txbuf);
    return 0;
} /* main */
