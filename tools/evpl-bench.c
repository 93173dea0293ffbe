/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * evpl-bench: the project's benchmark tool, written on the public API only.
 *
 *   pingpong  request/response with --depth requests in flight per connection
 *   stream    one-way bulk, --depth messages of --size bytes in flight
 *   msg       one-way message rate (datagrams, or framed stream messages)
 *   block     block I/O on a file or device (evpl-bench-block.c)
 *
 * Both sides run in this process by default (--local); --server and
 * --client HOST split them across processes or hosts.  Figures exclude the
 * warm-up.  See --help, and docs/PERFORMANCE.md for the method.
 */
#include <evpl/evpl.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum mode { PINGPONG, STREAM, MSG };
enum role { LOCAL, SERVER, CLIENT };

static struct {
    enum mode mode;
    enum evpl_protocol_id proto;
    const char *proto_name;
    unsigned int size;
    unsigned int depth;
    unsigned int conns;
    unsigned int cthreads, sthreads;
    double duration, warmup;
    int port;
    enum role role;
    const char *host;
    int quiet, json, row;
    long long spin_ns;
    const char *tls_ciphers;
    const char *core_mech;
    int stream_proto;
    int connected; /* listen/connect (streams, in-process datagrams) */
} cfg = {
    .mode = PINGPONG,
    .proto_name = "auto",
    .size = 64,
    .depth = 16,
    .conns = 1,
    .cthreads = 1,
    .sthreads = 1,
    .duration = 5,
    .warmup = 1,
    .port = 0,
    .role = LOCAL,
    .host = "127.0.0.1",
};

static const char *const mode_names[] = {"pingpong", "stream", "msg"};

/* 0: warming up, 1: measuring, 2: stopping (no new sends) */
static _Atomic int phase;

static uint64_t
now_ns(void)
{
    struct timespec ts;

    evpl_get_hf_monotonic_time(NULL, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

/* ---- log-linear histogram: 64 sub-buckets per power of two (~1.6%) ---- */

#define H_SUB     64
#define H_BUCKETS (128 + 40 * H_SUB)

struct hist {
    uint64_t count[H_BUCKETS];
    uint64_t n, sum, min, max;
};

static inline unsigned
h_index(uint64_t v)
{
    unsigned e, s;

    if (v < 128) {
        return (unsigned) v;
    }
    e = 63u - (unsigned) __builtin_clzll(v); /* >= 7 */
    s = e - 6;                               /* v >> s is in [64, 127] */
    if (s > 40) {
        return H_BUCKETS - 1;
    }
    return 128 + (s - 1) * H_SUB + (unsigned) ((v >> s) - 64);
}

static inline uint64_t
h_value(unsigned i)
{
    unsigned s;

    if (i < 128) {
        return i;
    }
    s = (i - 128) / H_SUB + 1;
    return ((uint64_t) ((i - 128) % H_SUB) + 64) << s;
}

static inline void
h_add(struct hist *h, uint64_t v)
{
    h->count[h_index(v)]++;
    h->n++;
    h->sum += v;
    if (v < h->min || h->n == 1) {
        h->min = v;
    }
    if (v > h->max) {
        h->max = v;
    }
}

static void
h_merge(struct hist *dst, const struct hist *src)
{
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        dst->count[i] += src->count[i];
    }
    if (src->n && (!dst->n || src->min < dst->min)) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
    dst->n += src->n;
    dst->sum += src->sum;
}

static uint64_t
h_pct(const struct hist *h, double p)
{
    uint64_t want = (uint64_t) ((double) h->n * p / 100.0 + 0.5), seen = 0;

    if (!h->n) {
        return 0;
    }
    if (want < 1) {
        want = 1;
    }
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want) {
            uint64_t v = h_value(i);

            return v < h->min ? h->min : v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---- per-thread state ---- */

struct side {
    _Atomic uint64_t ops;
    _Atomic uint64_t bytes;
    _Atomic long tid;
    /* its /proc stat file, opened by the thread itself before it makes any
     * connection (with 10,000 connections the process may have no
     * descriptor left to open it when the figures are taken) */
    _Atomic int stat_fd;
    struct hist hist; /* written by its thread only until it stops */
};

static void
side_started(struct side *s)
{
    char path[64];
    long tid = (long) syscall(SYS_gettid);

    snprintf(path, sizeof(path), "/proc/self/task/%ld/stat", tid);
    atomic_store(&s->stat_fd, open(path, O_RDONLY | O_CLOEXEC));
    if (atomic_load(&s->stat_fd) < 0) {
        fprintf(stderr, "evpl-bench: %s: %s (CPU figures will be too low)\n", path,
                strerror(errno));
    }
    atomic_store(&s->tid, tid);
}

static struct side *servers, *clients;
static _Atomic unsigned next_server, next_client;

static struct evpl_listener *listener;
static struct evpl_endpoint *server_ep;

static inline void
count(struct side *s, uint64_t ops, uint64_t bytes)
{
    atomic_fetch_add_explicit(&s->ops, ops, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bytes, bytes, memory_order_relaxed);
}

/* Streams carry fixed-size messages; the segment callback frames them. */
static int
fixed_size(struct evpl *evpl, struct evpl_bind *bind, void *priv)
{
    return (int) cfg.size;
}

/* ---- server side ---- */

struct server_thread {
    struct side *side;
    struct evpl_listener_binding *binding;
    struct evpl_bind *udp;
};

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct server_thread *st = priv;
    struct evpl_iovec iov[64];
    int len, k;

    switch (n->notify_type) {
        case EVPL_NOTIFY_RECV_MSG:
            if (cfg.mode == PINGPONG) {
                count(st->side, 1, n->recv_msg.length);
                /* echo by reference: the received iovecs go straight back */
                if (cfg.connected) {
                    evpl_sendv(evpl, bind, n->recv_msg.iovec, (int) n->recv_msg.niov,
                               (int) n->recv_msg.length, EVPL_SEND_FLAG_TAKE_REF);
                } else {
                    evpl_sendtov(evpl, bind, n->recv_msg.addr, n->recv_msg.iovec,
                                 (int) n->recv_msg.niov, (int) n->recv_msg.length,
                                 EVPL_SEND_FLAG_TAKE_REF);
                }
            } else {
                count(st->side, 1, n->recv_msg.length);
                evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
            }
            break;
        case EVPL_NOTIFY_RECV_DATA:
            while ((k = evpl_recvv(evpl, bind, iov, 64, 1 << 30, &len)) > 0) {
                count(st->side, 0, (uint64_t) len);
                evpl_iovecs_release(evpl, iov, k);
            }
            break;
    }
}

static void
server_accept(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_cb,
              evpl_segment_callback_t *segment_cb, void **conn_private, void *priv)
{
    *notify_cb = server_notify;
    *segment_cb = cfg.mode == STREAM ? NULL : fixed_size;
    *conn_private = priv;
}

static void *
server_init(struct evpl *evpl, void *arg)
{
    unsigned i = atomic_fetch_add(&next_server, 1);
    struct server_thread *st = calloc(1, sizeof(*st));

    st->side = &servers[i];
    side_started(st->side);
    if (cfg.connected) {
        st->binding = evpl_listener_attach(evpl, listener, server_accept, st);
    } else if (i == 0) {
        st->udp = evpl_bind(evpl, cfg.proto, server_ep, server_notify, st);
        if (!st->udp) {
            fprintf(stderr, "evpl-bench: cannot bind %s port %d\n", cfg.proto_name, cfg.port);
            exit(1);
        }
    }
    return st;
}

static void
server_fini(struct evpl *evpl, void *arg)
{
    struct server_thread *st = arg;

    if (st->binding) {
        evpl_listener_detach(evpl, st->binding);
    }
    free(st);
}

/* ---- client side ---- */

struct conn {
    struct evpl_bind *bind;
    struct side *side;
    uint64_t *sent_at; /* send times of the messages in flight (ring) */
    uint32_t head, tail;
    uint64_t inflight;       /* stream: bytes; msg: messages */
    struct evpl_iovec chunk; /* stream/msg payload, sent by reference */
    char *payload;
};

struct client_thread {
    struct side *side;
    struct conn *conns;
    unsigned nconns;
    struct evpl_endpoint *local_ep;
};

static void
send_one(struct evpl *evpl, struct conn *c)
{
    if (c->chunk.data && cfg.connected) {
        evpl_sendv(evpl, c->bind, &c->chunk, 1, (int) cfg.size, 0);
    } else if (c->chunk.data) {
        evpl_sendtoepv(evpl, c->bind, server_ep, &c->chunk, 1, (int) cfg.size, 0);
    } else if (cfg.connected) {
        evpl_send(evpl, c->bind, c->payload, cfg.size);
    } else {
        evpl_sendtoep(evpl, c->bind, server_ep, c->payload, cfg.size);
    }
}

static void
ping(struct evpl *evpl, struct conn *c)
{
    c->sent_at[c->tail++ % cfg.depth] = now_ns();
    send_one(evpl, c);
}

static void
fill(struct evpl *evpl, struct conn *c)
{
    /* streams count bytes in flight (a stream's SENT has no message count
     * unless it is segmented); datagrams count messages */
    uint64_t limit = cfg.stream_proto ? (uint64_t) cfg.depth * cfg.size : cfg.depth;
    uint64_t unit = cfg.stream_proto ? cfg.size : 1;

    while (atomic_load_explicit(&phase, memory_order_relaxed) < 2 && c->inflight + unit <= limit) {
        send_one(evpl, c);
        c->inflight += unit;
    }
}

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct conn *c = priv;

    switch (n->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            if (cfg.mode == PINGPONG) {
                for (unsigned i = 0; i < cfg.depth; i++) {
                    ping(evpl, c);
                }
            } else {
                evpl_bind_request_send_notifications(evpl, bind);
                fill(evpl, c);
            }
            break;
        case EVPL_NOTIFY_RECV_MSG: {
            uint64_t t = now_ns(), lat = t - c->sent_at[c->head++ % cfg.depth];
            int p = atomic_load_explicit(&phase, memory_order_relaxed);

            evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
            if (p == 1) {
                h_add(&c->side->hist, lat);
                count(c->side, 1, n->recv_msg.length);
            } else {
                count(c->side, 0, 0);
            }
            if (p < 2) {
                ping(evpl, c);
            }
            break;
        }
        case EVPL_NOTIFY_SENT:
            c->inflight -= cfg.stream_proto ? n->sent.bytes : n->sent.msgs;
            if (cfg.role == CLIENT && atomic_load_explicit(&phase, memory_order_relaxed) == 1) {
                /* a client on its own reports what it handed to the kernel */
                count(c->side, n->sent.msgs, n->sent.bytes);
            }
            fill(evpl, c);
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            if (n->notify_status < 0 && atomic_load(&phase) < 2) {
                fprintf(stderr, "evpl-bench: connection lost: %s\n", strerror(-n->notify_status));
            }
            c->bind = NULL;
            break;
    }
}

static void *
client_init(struct evpl *evpl, void *arg)
{
    unsigned i = atomic_fetch_add(&next_client, 1);
    struct client_thread *ct = calloc(1, sizeof(*ct));

    ct->side = &clients[i];
    side_started(ct->side);
    /* connections spread over the client threads */
    ct->nconns = cfg.conns / cfg.cthreads + (i < cfg.conns % cfg.cthreads);
    ct->conns = calloc(ct->nconns ? ct->nconns : 1, sizeof(*ct->conns));
    if (!cfg.connected) {
        ct->local_ep = evpl_endpoint_create(cfg.role == LOCAL ? "127.0.0.1" : "0.0.0.0", 0);
    }
    for (unsigned k = 0; k < ct->nconns; k++) {
        struct conn *c = &ct->conns[k];

        c->side = ct->side;
        c->sent_at = calloc(cfg.depth, sizeof(uint64_t));
        c->payload = calloc(1, cfg.size);
        memset(c->payload, 'e', cfg.size);
        if (cfg.mode != PINGPONG) {
            /* one registered payload, sent again and again by reference */
            if (evpl_iovec_alloc(evpl, cfg.size, 0, 1, 0, &c->chunk) == 1) {
                memset(c->chunk.data, 'e', cfg.size);
            } else {
                memset(&c->chunk, 0, sizeof(c->chunk));
            }
        }
        if (cfg.connected) {
            c->bind = evpl_connect(evpl, cfg.proto, NULL, server_ep, client_notify,
                                   cfg.mode == PINGPONG ? fixed_size : NULL, c);
        } else {
            c->bind = evpl_bind(evpl, cfg.proto, ct->local_ep, client_notify, c);
            if (c->bind) {
                struct evpl_notify up = {.notify_type = EVPL_NOTIFY_CONNECTED};

                client_notify(evpl, c->bind, &up, c); /* datagrams: start at once */
            }
        }
        if (!c->bind) {
            fprintf(stderr, "evpl-bench: cannot create connection %u\n", k);
            exit(1);
        }
    }
    return ct;
}

static void
client_fini(struct evpl *evpl, void *arg)
{
    struct client_thread *ct = arg;

    for (unsigned k = 0; k < ct->nconns; k++) {
        if (ct->conns[k].chunk.data) {
            evpl_iovec_release(evpl, &ct->conns[k].chunk);
        }
        free(ct->conns[k].sent_at);
        free(ct->conns[k].payload);
    }
    free(ct->conns);
    if (ct->local_ep) {
        evpl_endpoint_close(ct->local_ep);
    }
    free(ct);
}

/* ---- measurement ---- */

struct cpu {
    double user, sys;
};

/* user/sys seconds of one loop thread, from its /proc stat file */
static struct cpu
thread_cpu(struct side *s)
{
    struct cpu c = {0, 0};
    char buf[1024], *p;
    unsigned long ut, st;
    double hz = (double) sysconf(_SC_CLK_TCK);
    int fd = atomic_load(&s->stat_fd);
    ssize_t n;

    if (fd < 0 || (n = pread(fd, buf, sizeof(buf) - 1, 0)) <= 0) {
        return c;
    }
    buf[n] = '\0';
    if ((p = strrchr(buf, ')')) &&
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2) {
        c.user = (double) ut / hz;
        c.sys = (double) st / hz;
    }
    return c;
}

static struct cpu
side_cpu(struct side *s, unsigned n)
{
    struct cpu t = {0, 0};

    for (unsigned i = 0; i < n; i++) {
        struct cpu c = thread_cpu(&s[i]);

        t.user += c.user;
        t.sys += c.sys;
    }
    return t;
}

static struct cpu
process_cpu(void)
{
    struct rusage ru;
    struct cpu c;

    getrusage(RUSAGE_SELF, &ru);
    c.user = (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6;
    c.sys = (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
    return c;
}

/* The figures come from the side that sees the work: the client for
 * ping-pong, the server for one-way modes. */
static void
totals(uint64_t *ops, uint64_t *bytes)
{
    /* the side that sees the work: the client for ping-pong, the receiver
     * for one-way modes; split across processes, whichever side we are */
    int use_clients = cfg.role == CLIENT || (cfg.role == LOCAL && cfg.mode == PINGPONG);
    struct side *s = use_clients ? clients : servers;
    unsigned n = use_clients ? cfg.cthreads : cfg.sthreads;

    *ops = *bytes = 0;
    for (unsigned i = 0; i < n; i++) {
        *ops += atomic_load(&s[i].ops);
        *bytes += atomic_load(&s[i].bytes);
    }
    if (cfg.mode == STREAM) {
        *ops = *bytes / cfg.size;
    }
}

static long
max_rss_kib(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static volatile sig_atomic_t interrupted;

static void
on_sigint(int sig)
{
    interrupted = 1;
}

static void
sleep_s(double s)
{
    struct timespec ts = {(time_t) s, (long) ((s - (double) (time_t) s) * 1e9)};

    while (nanosleep(&ts, &ts) < 0 && !interrupted) {
    }
}

static int
free_port(int type)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, type, 0), port = 7700;

    if (fd >= 0 && bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *) &sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: evpl-bench [pingpong|stream|msg] [options]\n"
            "       evpl-bench block --help | evpl-bench rpc --help\n"
            "  -p, --proto NAME        protocol name or auto (best TCP) [auto]\n"
            "  -s, --size BYTES        message size [64]\n"
            "  -d, --depth N           messages in flight per connection [16]\n"
            "  -c, --conns N           connections in total [1]\n"
            "  -t, --client-threads N  [1]\n"
            "  -T, --server-threads N  [1]\n"
            "  -D, --duration SEC      measured time [5]\n"
            "  -w, --warmup SEC        warm-up, not measured [1]\n"
            "      --port P            [local: a free port; otherwise 7700]\n"
            "      --local             both sides in this process (default)\n"
            "      --server            server side only (until SIGINT or the duration)\n"
            "      --client HOST       client side only, against HOST\n"
            "  -q, --quiet             no progress lines\n"
            "  -j, --json              JSON summary on stdout\n"
            "      --row               one table row (see bench/suite.sh)\n"
            "      --spin-ns NS        busy-poll window after activity [library default]\n"
            "      --tls-ciphers LIST  TLS cipher list or TLS 1.3 suites (TLS_AES_128_GCM_SHA256)\n"
            "      --core-mech M       epoll (default), select or io_uring\n"
            "  TLS certificates: EVPL_TLS_CERT, EVPL_TLS_KEY, EVPL_TLS_CA in the environment\n"
            "  EVPL_BENCH_METRICS=1: print the loops' metrics (evpl_metrics_scrape) at exit\n");
}

static void
parse(int argc, char **argv)
{
    static const struct option opts[] = {
        {"proto", 1, 0, 'p'},          {"size", 1, 0, 's'},
        {"depth", 1, 0, 'd'},          {"conns", 1, 0, 'c'},
        {"client-threads", 1, 0, 't'}, {"server-threads", 1, 0, 'T'},
        {"duration", 1, 0, 'D'},       {"warmup", 1, 0, 'w'},
        {"port", 1, 0, 'P'},           {"local", 0, 0, 'L'},
        {"server", 0, 0, 'S'},         {"client", 1, 0, 'C'},
        {"quiet", 0, 0, 'q'},          {"json", 0, 0, 'j'},
        {"help", 0, 0, 'h'},           {"row", 0, 0, 'R'},
        {"spin-ns", 1, 0, 'N'},        {"tls-ciphers", 1, 0, 'X'},
        {"core-mech", 1, 0, 'M'},      {0, 0, 0, 0}};
    int o;

    while ((o = getopt_long(argc, argv, "p:s:d:c:t:T:D:w:qjh", opts, NULL)) != -1) {
        switch (o) {
            case 'p':
                cfg.proto_name = optarg;
                break;
            case 's':
                cfg.size = (unsigned) strtoul(optarg, NULL, 0);
                break;
            case 'd':
                cfg.depth = (unsigned) strtoul(optarg, NULL, 0);
                break;
            case 'c':
                cfg.conns = (unsigned) strtoul(optarg, NULL, 0);
                break;
            case 't':
                cfg.cthreads = (unsigned) strtoul(optarg, NULL, 0);
                break;
            case 'T':
                cfg.sthreads = (unsigned) strtoul(optarg, NULL, 0);
                break;
            case 'D':
                cfg.duration = atof(optarg);
                break;
            case 'w':
                cfg.warmup = atof(optarg);
                break;
            case 'P':
                cfg.port = atoi(optarg);
                break;
            case 'L':
                cfg.role = LOCAL;
                break;
            case 'S':
                cfg.role = SERVER;
                break;
            case 'C':
                cfg.role = CLIENT;
                cfg.host = optarg;
                break;
            case 'q':
                cfg.quiet = 1;
                break;
            case 'j':
                cfg.json = 1;
                break;
            case 'R':
                cfg.row = 1;
                cfg.quiet = 1;
                break;
            case 'N':
                cfg.spin_ns = atoll(optarg);
                break;
            case 'X':
                cfg.tls_ciphers = optarg;
                break;
            case 'M':
                cfg.core_mech = optarg;
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
        const char *m = argv[optind];

        cfg.mode = strcmp(m, "stream") == 0     ? STREAM
                   : strcmp(m, "msg") == 0      ? MSG
                   : strcmp(m, "pingpong") == 0 ? PINGPONG
                                                : (enum mode) - 1;
        if ((int) cfg.mode < 0) {
            usage(stderr);
            exit(2);
        }
    }
    if (!cfg.size || !cfg.depth || !cfg.conns || !cfg.cthreads || !cfg.sthreads ||
        cfg.duration <= 0) {
        fprintf(stderr, "evpl-bench: size, depth, conns, threads and duration must be > 0\n");
        exit(2);
    }
    if (cfg.cthreads > cfg.conns) {
        cfg.cthreads = cfg.conns;
    }
}

int
main(int argc, char **argv)
{
    int bench_block_main(int argc, char **argv);
    int bench_rpc_main(int argc, char **argv);
    struct evpl_threadpool *spool = NULL, *cpool = NULL;
    struct evpl_global_config *gc;
    struct hist *h;
    uint64_t ops0, bytes0, ops1, bytes1, prev_ops = 0, prev_bytes = 0;
    struct cpu c0s = {0, 0}, c0c = {0, 0}, c1s = {0, 0}, c1c = {0, 0};
    double elapsed, t;
    char local_name[64];
    uint64_t t0, t1;

    if (argc > 1 && strcmp(argv[1], "block") == 0) {
        return bench_block_main(argc - 1, argv + 1);
    }
    if (argc > 1 && strcmp(argv[1], "rpc") == 0) {
        return bench_rpc_main(argc - 1, argv + 1);
    }
    h = calloc(1, sizeof(*h));
    parse(argc, argv);
    signal(SIGINT, on_sigint);

    gc = evpl_global_config_init();
    if (cfg.spin_ns > 0) {
        evpl_global_config_set_spin_ns(gc, (uint64_t) cfg.spin_ns);
    } else if (cfg.spin_ns < 0) {
        evpl_global_config_set_spin_ns(gc, 0); /* never busy-poll */
    }
    if (cfg.core_mech) {
        evpl_global_config_set_core_mech(
            gc, strcmp(cfg.core_mech, "io_uring") == 0 ? EVPL_CORE_MECH_IO_URING
                : strcmp(cfg.core_mech, "select") == 0 ? EVPL_CORE_MECH_SELECT
                                                       : EVPL_CORE_MECH_EPOLL);
    }
    if (cfg.tls_ciphers) {
        evpl_global_config_set_tls_cipher_list(gc, cfg.tls_ciphers);
    }
    /* many connections: a listen backlog and descriptors to match */
    evpl_global_config_set_max_pending(gc, cfg.conns > 128 ? (cfg.conns > 65535 ? 65535 : cfg.conns)
                                                           : 128);
    {
        struct rlimit rl;
        rlim_t need = (rlim_t) cfg.conns * 2 + 256;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
            if (rl.rlim_max < need) {
                rl.rlim_max = need; /* allowed as root; otherwise the next line caps */
                if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
                    getrlimit(RLIMIT_NOFILE, &rl);
                }
            }
            rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < need) {
                fprintf(stderr, "evpl-bench: only %llu descriptors for %u connections\n",
                        (unsigned long long) rl.rlim_cur, cfg.conns);
            }
        }
    }
    evpl_init(gc);

    if (strcmp(cfg.proto_name, "auto") == 0) {
        if (evpl_protocol_best("TCP", &cfg.proto) != 0) {
            fprintf(stderr, "evpl-bench: no TCP protocol available\n");
            return 1;
        }
    } else if (evpl_protocol_lookup(&cfg.proto, cfg.proto_name) != 0) {
        fprintf(stderr, "evpl-bench: unknown or unavailable protocol %s\n", cfg.proto_name);
        return 2;
    }
    cfg.proto_name = NULL;
    cfg.stream_proto = evpl_protocol_is_stream(cfg.proto);
    cfg.connected = cfg.stream_proto || cfg.proto == EVPL_DATAGRAM_INPROC ||
                    cfg.proto == EVPL_DATAGRAM_TCP_RDMA || cfg.proto == EVPL_DATAGRAM_RDMACM_RC;
    if (evpl_protocol_is_inproc(cfg.proto) && cfg.role != LOCAL) {
        fprintf(stderr, "evpl-bench: in-process protocols connect only inside one process "
                        "(--local)\n");
        return 2;
    }
    {
        static const char *names[] = {
            "DATAGRAM_SOCKET_UDP",  "DATAGRAM_RDMACM_RC", "DATAGRAM_RDMACM_UD",
            "STREAM_SOCKET_TCP",    "STREAM_XLIO_TCP",    "STREAM_IO_URING_TCP",
            "STREAM_RDMACM_RC",     "STREAM_SOCKET_TLS",  "DATAGRAM_TCP_RDMA",
            "STREAM_SOCKET_UNIX",   "STREAM_INPROC",      "DATAGRAM_INPROC",
            "DATAGRAM_IO_URING_UDP"};

        cfg.proto_name =
            (unsigned) cfg.proto < sizeof(names) / sizeof(names[0]) ? names[cfg.proto] : "?";
    }
    if (cfg.mode == STREAM && !cfg.stream_proto) {
        fprintf(stderr, "evpl-bench: stream mode needs a stream protocol (use msg)\n");
        return 2;
    }
    if (!cfg.port) {
        cfg.port =
            cfg.role == LOCAL ? free_port(cfg.stream_proto ? SOCK_STREAM : SOCK_DGRAM) : 7700;
    }
    if (evpl_protocol_is_local(cfg.proto)) {
        snprintf(local_name, sizeof(local_name), "@evpl-bench-%d", cfg.port);
        server_ep = evpl_endpoint_create_local(local_name);
    } else if (evpl_protocol_is_inproc(cfg.proto)) {
        snprintf(local_name, sizeof(local_name), "evpl-bench-%d", cfg.port);
        server_ep = evpl_endpoint_create_inproc(local_name);
    } else {
        server_ep = evpl_endpoint_create(cfg.role == SERVER ? "0.0.0.0" : cfg.host, cfg.port);
    }
    if (cfg.role == SERVER) {
        cfg.cthreads = 0;
    }
    servers = calloc(cfg.sthreads, sizeof(*servers));
    clients = calloc(cfg.cthreads ? cfg.cthreads : 1, sizeof(*clients));
    for (unsigned i = 0; servers && i < cfg.sthreads; i++) {
        servers[i].stat_fd = -1;
    }
    for (unsigned i = 0; clients && i < (cfg.cthreads ? cfg.cthreads : 1); i++) {
        clients[i].stat_fd = -1;
    }

    if (cfg.role != CLIENT) {
        if (cfg.connected) {
            listener = evpl_listener_create();
            if (evpl_listen(listener, cfg.proto, server_ep) != 0) {
                fprintf(stderr, "evpl-bench: cannot listen on port %d\n", cfg.port);
                return 1;
            }
        } else {
            cfg.sthreads = 1; /* one socket serves a datagram port */
        }
        spool = evpl_threadpool_create(NULL, (int) cfg.sthreads, server_init, server_fini, NULL);
    }
    if (cfg.role != SERVER) {
        cpool = evpl_threadpool_create(NULL, (int) cfg.cthreads, client_init, client_fini, NULL);
    }

    sleep_s(cfg.warmup);
    totals(&ops0, &bytes0);
    c0s = side_cpu(servers, cfg.role == CLIENT ? 0 : cfg.sthreads);
    c0c = side_cpu(clients, cfg.cthreads);
    if (cfg.role != LOCAL) {
        c0c = process_cpu(); /* this process is one side: see below */
    }
    t0 = now_ns();
    atomic_store(&phase, 1);
    prev_ops = ops0;
    prev_bytes = bytes0;

    for (t = 0; t < cfg.duration && !interrupted;) {
        double step = cfg.duration - t < 1.0 ? cfg.duration - t : 1.0;

        sleep_s(step);
        t += step;
        totals(&ops1, &bytes1);
        if (!cfg.quiet) {
            fprintf(stderr, "[%5.1fs] %12.0f ops/s %8.3f Gbit/s\n", t,
                    (double) (ops1 - prev_ops) / step,
                    (double) (bytes1 - prev_bytes) * 8 / step / 1e9);
        }
        prev_ops = ops1;
        prev_bytes = bytes1;
    }
    t1 = now_ns();
    totals(&ops1, &bytes1);
    c1s = side_cpu(servers, cfg.role == CLIENT ? 0 : cfg.sthreads);
    c1c = side_cpu(clients, cfg.cthreads);
    if (cfg.role != LOCAL) {
        c1c = process_cpu();
    }
    atomic_store(&phase, 2);

    if (cpool) {
        evpl_threadpool_destroy(cpool); /* closes the client connections */
    }
    if (spool) {
        evpl_threadpool_destroy(spool);
    }
    if (listener) {
        evpl_listener_destroy(listener);
    }
    for (unsigned i = 0; i < cfg.cthreads; i++) {
        h_merge(h, &clients[i].hist);
    }

    elapsed = (double) (t1 - t0) / 1e9;
    {
        uint64_t ops = ops1 - ops0;
        double rate = (double) ops / elapsed;
        double gbit = (double) (bytes1 - bytes0) * 8 / elapsed / 1e9;
        double cpu_c = (c1c.user - c0c.user) + (c1c.sys - c0c.sys);
        double cpu_s = (c1s.user - c0s.user) + (c1s.sys - c0s.sys);
        double per_cpu = cpu_c + cpu_s > 0 ? (double) ops / (cpu_c + cpu_s) : 0;
        double avg = h->n ? (double) h->sum / (double) h->n : 0;

        if (cfg.role == SERVER) {
            /* the whole process is the server side */
            c1s = c1c;
            c0s = c0c;
            c1c = c0c = (struct cpu){0, 0};
        }
        if (cfg.json) {
            printf("{\"tool\":\"evpl-bench\",\"mode\":\"%s\",\"proto\":\"%s\",\"size\":%u,"
                   "\"depth\":%u,\"conns\":%u,\"client_threads\":%u,\"server_threads\":%u,"
                   "\"duration_s\":%.3f,\"warmup_s\":%.3f,\"role\":\"%s\",\"ops\":%llu,"
                   "\"ops_per_sec\":%.1f,\"gbit_per_sec\":%.4f,",
                   mode_names[cfg.mode], cfg.proto_name, cfg.size, cfg.depth, cfg.conns,
                   cfg.cthreads, cfg.sthreads, elapsed, cfg.warmup,
                   cfg.role == LOCAL    ? "local"
                   : cfg.role == SERVER ? "server"
                                        : "client",
                   (unsigned long long) ops, rate, gbit);
            printf("\"latency_ns\":{\"min\":%llu,\"avg\":%.1f,\"p50\":%llu,\"p99\":%llu,"
                   "\"p999\":%llu,\"max\":%llu},",
                   (unsigned long long) h->min, avg, (unsigned long long) h_pct(h, 50),
                   (unsigned long long) h_pct(h, 99), (unsigned long long) h_pct(h, 99.9),
                   (unsigned long long) h->max);
            printf("\"cpu\":{\"client_user_s\":%.3f,\"client_sys_s\":%.3f,\"server_user_s\":%.3f,"
                   "\"server_sys_s\":%.3f},\"ops_per_cpu_sec\":%.1f,\"max_rss_kib\":%ld,"
                   "\"histogram\":[",
                   c1c.user - c0c.user, c1c.sys - c0c.sys, c1s.user - c0s.user, c1s.sys - c0s.sys,
                   per_cpu, max_rss_kib());
            for (unsigned i = 0, first = 1; i < H_BUCKETS; i++) {
                if (h->count[i]) {
                    printf("%s[%llu,%llu]", first ? "" : ",", (unsigned long long) h_value(i),
                           (unsigned long long) h->count[i]);
                    first = 0;
                }
            }
            printf("]}\n");
        } else if (cfg.row) {
            printf("%-9s %-20s %7u %5u %12.0f %9.3f %9.1f %9.1f %12.0f\n", mode_names[cfg.mode],
                   cfg.proto_name, cfg.size, cfg.depth, rate, gbit, (double) h_pct(h, 50) / 1e3,
                   (double) h_pct(h, 99) / 1e3, per_cpu);
        } else {
            printf("%s %s size %u depth %u conns %u threads %u/%u: %.1f s measured\n",
                   mode_names[cfg.mode], cfg.proto_name, cfg.size, cfg.depth, cfg.conns,
                   cfg.cthreads, cfg.sthreads, elapsed);
            printf("  %.0f ops/s  %.3f Gbit/s\n", rate, gbit);
            if (h->n) {
                printf("  latency us: min %.1f avg %.1f p50 %.1f p99 %.1f p99.9 %.1f max %.1f\n",
                       (double) h->min / 1e3, avg / 1e3, (double) h_pct(h, 50) / 1e3,
                       (double) h_pct(h, 99) / 1e3, (double) h_pct(h, 99.9) / 1e3,
                       (double) h->max / 1e3);
            }
            printf("  cpu s: client user %.2f sys %.2f, server user %.2f sys %.2f; "
                   "%.0f ops per cpu-second\n",
                   c1c.user - c0c.user, c1c.sys - c0c.sys, c1s.user - c0s.user, c1s.sys - c0s.sys,
                   per_cpu);
        }
    }
    evpl_endpoint_close(server_ep);
    free(servers);
    free(clients);
    free(h);
    if (getenv("EVPL_BENCH_PASSES") || getenv("EVPL_BENCH_METRICS")) {
        /* every loop is gone: the totals include warm-up and set-up (for
         * bench/uring-syscalls.sh, which counts syscalls over the same run) */
        static char m[65536];
        const char *p;

        if (getenv("EVPL_BENCH_METRICS") && evpl_metrics_scrape(m, sizeof(m)) > 0) {
            fputs(m, stderr);
        }
        if (evpl_metrics_scrape(m, sizeof(m)) > 0 &&
            (p = strstr(m, "\nevpl_loop_passes_total ")) != NULL) {
            fprintf(stderr, "loop passes: %llu\n",
                    strtoull(p + strlen("\nevpl_loop_passes_total "), NULL, 10));
        }
    }
    return 0;
}
