/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * evpl-bench rpc: ONC RPC calls through libevpl_rpc2, for side-by-side runs
 * with libtirpc (bench/compare-rpc.sh).  A server loop on its own thread,
 * the client on the calling thread; each of --conns connections keeps
 * --depth calls in flight, each carrying --size bytes that the server
 * echoes.  --zc moves the payload as a zcopaque (by reference, by RDMA
 * chunks on RDMA-capable protocols); otherwise it is an opaque, decoded
 * and encoded by copy.  --server PORT / --client HOST:PORT run one side.
 * Reports calls/s, latency and calls per CPU-second of the process.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_rpc_xdr.h"

struct rcfg {
    const char *proto;
    unsigned int size, depth, conns;
    double duration, warmup;
    int zc, row, quiet, json;
    long long spin_ns;  /* busy-poll window: 0 library default, < 0 never */
    int port;           /* --server */
    const char *remote; /* --client host */
};

static struct rcfg rc = {
    .proto = "STREAM_SOCKET_TCP", .size = 64, .depth = 16, .conns = 1, .duration = 5, .warmup = 1};

static struct BENCH_V1 prog;
static struct evpl_rpc2_server *server;
static struct evpl_endpoint *ep;
static enum evpl_protocol_id proto;
static volatile sig_atomic_t stop_server;

#define LAT_BUCKETS 4096 /* 0.25 us buckets up to ~1 ms, then log */
static uint64_t lat[LAT_BUCKETS + 64];
static uint64_t calls_done, calls_counted, measuring;
static struct evpl_iovec zpayload;
static uint8_t *payload;

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static double
cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double) ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double) ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static unsigned
lat_bucket(uint64_t ns)
{
    uint64_t q = ns / 250;
    unsigned b = LAT_BUCKETS;

    if (q < LAT_BUCKETS) {
        return (unsigned) q;
    }
    for (q /= LAT_BUCKETS; q > 1 && b < LAT_BUCKETS + 63; q >>= 1) {
        b++;
    }
    return b;
}

static double
lat_us(unsigned b)
{
    return b < LAT_BUCKETS ? b * 0.25
                           : (double) LAT_BUCKETS * 0.25 * (double) (2ull << (b - LAT_BUCKETS));
}

static double
lat_pct(double pct)
{
    uint64_t n = 0, want;

    for (unsigned i = 0; i < LAT_BUCKETS + 64; i++) {
        n += lat[i];
    }
    want = (uint64_t) ((double) n * pct / 100.0);
    for (unsigned i = 0, seen = 0; i < LAT_BUCKETS + 64; i++) {
        seen += (unsigned) lat[i];
        if (seen > want) {
            return lat_us(i);
        }
    }
    return 0;
}

/* ---- server ---- */

static void
s_echo(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, bench_msg *args,
       struct evpl_rpc2_encoding *enc, void *private_data)
{
    prog.send_reply_BENCH_ECHO(evpl, NULL, args, enc);
}

static void
s_echoz(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred,
        bench_zmsg *args, struct evpl_rpc2_encoding *enc, void *private_data)
{
    /* the payload's references move into the reply (rpc2.md §7) */
    evpl_rpc2_encoding_take_read_chunk(enc, NULL, NULL);
    prog.send_reply_BENCH_ECHOZ(evpl, NULL, args, enc);
}

static void *
server_init(struct evpl *evpl, void *private_data)
{
    struct evpl_rpc2_program *programs[1] = {&prog.rpc2};
    struct evpl_rpc2_thread *t = evpl_rpc2_thread_init(evpl, programs, 1, NULL, NULL);

    evpl_rpc2_server_attach(t, server, NULL);
    return t;
}

static void
server_fini(struct evpl *evpl, void *private_data)
{
    struct evpl_rpc2_thread *t = private_data;

    evpl_rpc2_server_detach(t, server);
    evpl_rpc2_thread_destroy(t);
}

/* ---- client ---- */

struct slot {
    struct evpl_rpc2_conn *conn;
    uint64_t start;
    uint32_t seq;
};

static struct evpl *cevpl;
static int running = 1;

static void issue(struct slot *s);

static void
account(struct slot *s)
{
    calls_done++;
    if (measuring) {
        calls_counted++;
        lat[lat_bucket(now_ns() - s->start)]++;
    }
}

static void
c_echo(struct evpl *evpl, const struct evpl_rpc2_verf *verf, bench_msg *reply, int status,
       void *private_data)
{
    struct slot *s = private_data;

    if (status != 0 || reply->seq != s->seq || reply->payload.len != rc.size) {
        if (running) {
            fprintf(stderr, "evpl-bench rpc: call failed (status %d)\n", status);
            exit(1);
        }
        return;
    }
    account(s);
    issue(s);
}

static void
c_echoz(struct evpl *evpl, const struct evpl_rpc2_verf *verf, bench_zmsg *reply, int status,
        void *private_data)
{
    struct slot *s = private_data;

    if (status != 0) {
        if (running) {
            fprintf(stderr, "evpl-bench rpc: call failed (status %d)\n", status);
            exit(1);
        }
        return;
    }
    for (int i = 0; i < reply->payload.niov; i++) {
        evpl_iovec_release(evpl, &reply->payload.iov[i]);
    }
    account(s);
    issue(s);
}

static void
issue(struct slot *s)
{
    if (!running) {
        return;
    }
    s->start = now_ns();
    s->seq++;
    if (rc.zc) {
        bench_zmsg m;
        struct evpl_iovec iov;

        /* a reference of the payload buffer per call: moved into the call */
        evpl_iovec_clone(&iov, &zpayload);
        m.seq = s->seq;
        xdr_set_ref(&m, payload, &iov, 1, rc.size);
        prog.send_call_BENCH_ECHOZ(&prog.rpc2, cevpl, s->conn, NULL, &m, 1, (int) rc.size + 4096,
                                   NULL, 0, 0, c_echoz, s);
    } else {
        bench_msg m;

        m.seq = s->seq;
        m.payload.len = rc.size;
        m.payload.data = payload;
        prog.send_call_BENCH_ECHO(&prog.rpc2, cevpl, s->conn, NULL, &m, 0, 0, NULL, 0, 0, c_echo,
                                  s);
    }
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: evpl-bench rpc [options]\n"
            "  -p, --proto NAME     [STREAM_SOCKET_TCP]\n"
            "  -s, --size BYTES     payload per call [64]\n"
            "  -d, --depth N        calls in flight per connection [16]\n"
            "  -c, --conns N        connections [1]\n"
            "  -D, --duration SEC   [5]    -w, --warmup SEC [1]\n"
            "      --zc             payload as zcopaque (by reference)\n"
            "      --server PORT    serve only (until SIGINT)\n"
            "      --client HOST:PORT  call a server elsewhere\n"
            "      --row            one table row: proto size depth calls/s p50 p99 calls/cpu-s\n"
            "  -j, --json           JSON summary\n"
            "      --spin-ns NS     busy-poll window after activity (-1: never) [default]\n"
            "  -q, --quiet\n");
}

static void
on_sigint(int sig)
{
    stop_server = 1;
}

int bench_rpc_main(int argc, char **argv);

int
bench_rpc_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"proto", 1, 0, 'p'},  {"size", 1, 0, 's'},     {"depth", 1, 0, 'd'},
        {"conns", 1, 0, 'c'},  {"duration", 1, 0, 'D'}, {"warmup", 1, 0, 'w'},
        {"zc", 0, 0, 'z'},     {"row", 0, 0, 'R'},      {"quiet", 0, 0, 'q'},
        {"server", 1, 0, 'S'}, {"client", 1, 0, 'C'},   {"help", 0, 0, 'h'},
        {"json", 0, 0, 'j'},   {"spin-ns", 1, 0, 'N'},  {0, 0, 0, 0}};
    struct evpl_rpc2_program *programs[1] = {&prog.rpc2};
    struct evpl_thread *sthread = NULL;
    struct evpl_rpc2_thread *ct;
    struct slot *slots;
    char name[64], host[256] = "127.0.0.1";
    uint64_t t0, t1, deadline;
    double c0, c1;
    int o, port = 0;

    while ((o = getopt_long(argc, argv, "p:s:d:c:D:w:qjh", opts, NULL)) != -1) {
        switch (o) {
            case 'p':
                rc.proto = optarg;
                break;
            case 's':
                rc.size = (unsigned) strtoul(optarg, NULL, 0);
                break;
            case 'd':
                rc.depth = (unsigned) strtoul(optarg, NULL, 0);
                break;
            case 'c':
                rc.conns = (unsigned) strtoul(optarg, NULL, 0);
                break;
            case 'D':
                rc.duration = atof(optarg);
                break;
            case 'w':
                rc.warmup = atof(optarg);
                break;
            case 'z':
                rc.zc = 1;
                break;
            case 'R':
                rc.row = 1;
                break;
            case 'q':
                rc.quiet = 1;
                break;
            case 'j':
                rc.json = 1;
                break;
            case 'N':
                rc.spin_ns = atoll(optarg);
                break;
            case 'S':
                rc.port = atoi(optarg);
                break;
            case 'C': {
                const char *colon = strrchr(optarg, ':');

                if (!colon) {
                    usage();
                    return 2;
                }
                snprintf(host, sizeof(host), "%.*s", (int) (colon - optarg), optarg);
                port = atoi(colon + 1);
                rc.remote = host;
                break;
            }
            default:
                usage();
                return o == 'h' ? 0 : 2;
        }
    }
    if (rc.depth == 0 || rc.conns == 0) {
        usage();
        return 2;
    }
    if (!rc.zc && rc.size > (128u << 10) - 1024) {
        /* a stub's inline message is at most 128 KiB (rpc2.md §9.4) */
        fprintf(stderr, "evpl-bench rpc: payloads over about 127 KiB need --zc\n");
        return 2;
    }
    {
        struct evpl_global_config *gc = evpl_global_config_init();

        if (rc.spin_ns > 0) {
            evpl_global_config_set_spin_ns(gc, (uint64_t) rc.spin_ns);
        } else if (rc.spin_ns < 0) {
            evpl_global_config_set_spin_ns(gc, 0); /* never busy-poll */
        }
        evpl_init(gc);
    }
    if (evpl_protocol_lookup(&proto, rc.proto) != 0) {
        fprintf(stderr, "evpl-bench rpc: unknown or unavailable protocol %s\n", rc.proto);
        return 2;
    }
    BENCH_V1_init(&prog);
    prog.recv_call_BENCH_ECHO = s_echo;
    prog.recv_call_BENCH_ECHOZ = s_echoz;
    if (rc.port) {
        port = rc.port;
    } else if (!rc.remote) {
        port = 20000 + (int) (getpid() % 20000);
    }
    if (evpl_protocol_is_inproc(proto) || evpl_protocol_is_local(proto)) {
        snprintf(name, sizeof(name), "%sevpl-bench-rpc-%d",
                 evpl_protocol_is_local(proto) ? "@" : "", port);
        ep = evpl_protocol_is_local(proto) ? evpl_endpoint_create_local(name)
                                           : evpl_endpoint_create_inproc(name);
    } else {
        ep = evpl_endpoint_create(rc.remote ? host : "127.0.0.1", port);
    }
    if (!rc.remote) {
        server = evpl_rpc2_server_init(programs, 1);
        if (evpl_rpc2_server_start(server, proto, ep) != 0) {
            fprintf(stderr, "evpl-bench rpc: cannot listen on %d\n", port);
            return 1;
        }
        sthread = evpl_thread_create(NULL, server_init, server_fini, NULL);
    }
    if (rc.port) {
        signal(SIGINT, on_sigint);
        while (!stop_server) {
            pause();
        }
        evpl_thread_destroy(sthread);
        evpl_rpc2_server_destroy(server);
        return 0;
    }

    cevpl = evpl_create(NULL);
    ct = evpl_rpc2_thread_init(cevpl, programs, 1, NULL, NULL);
    payload = calloc(1, rc.size ? rc.size : 1);
    memset(payload, 'p', rc.size);
    if (rc.zc) {
        if (evpl_iovec_alloc(cevpl, rc.size ? rc.size : 1, 8, 1, 0, &zpayload) != 1) {
            fprintf(stderr,
                    "evpl-bench rpc: a --zc payload of %u bytes must fit one buffer "
                    "(buffer_size, 2 MiB by default)\n",
                    rc.size);
            return 2;
        }
        memset(evpl_iovec_data(&zpayload), 'p', rc.size);
    }
    slots = calloc((size_t) rc.conns * rc.depth, sizeof(*slots));
    for (unsigned c = 0; c < rc.conns; c++) {
        struct evpl_rpc2_conn *conn = evpl_rpc2_client_connect(ct, proto, ep, NULL, 0, NULL);

        if (!conn) {
            fprintf(stderr, "evpl-bench rpc: cannot connect\n");
            return 1;
        }
        for (unsigned d = 0; d < rc.depth; d++) {
            slots[c * rc.depth + d].conn = conn;
            issue(&slots[c * rc.depth + d]);
        }
    }
    deadline = now_ns() + (uint64_t) (rc.warmup * 1e9);
    while (now_ns() < deadline) {
        evpl_continue(cevpl);
    }
    measuring = 1;
    c0 = cpu_s();
    t0 = now_ns();
    deadline = t0 + (uint64_t) (rc.duration * 1e9);
    while (now_ns() < deadline) {
        evpl_continue(cevpl);
    }
    t1 = now_ns();
    c1 = cpu_s();
    measuring = 0;
    running = 0;

    {
        double secs = (double) (t1 - t0) / 1e9;
        double rate = (double) calls_counted / secs;
        double per_cpu = c1 - c0 > 0 ? (double) calls_counted / (c1 - c0) : 0;

        if (rc.json) {
            printf("{\"tool\":\"evpl-bench\",\"mode\":\"rpc\",\"proto\":\"%s\",\"size\":%u,"
                   "\"depth\":%u,\"conns\":%u,\"zc\":%d,\"ops\":%llu,\"ops_per_sec\":%.1f,"
                   "\"latency_us\":{\"p50\":%.2f,\"p99\":%.2f},\"ops_per_cpu_sec\":%.1f}\n",
                   rc.proto, rc.size, rc.depth, rc.conns, rc.zc, (unsigned long long) calls_counted,
                   rate, lat_pct(50), lat_pct(99), per_cpu);
        } else if (rc.row) {
            printf("rpc%s %-20s %7u %5u %12.0f %9.1f %9.1f %12.0f\n", rc.zc ? "-zc" : "   ",
                   rc.proto, rc.size, rc.depth, rate, lat_pct(50), lat_pct(99), per_cpu);
        } else {
            printf("rpc %s size %u depth %u conns %u%s: %.1f s measured\n", rc.proto, rc.size,
                   rc.depth, rc.conns, rc.zc ? " zcopaque" : "", secs);
            printf("  %.0f calls/s  %.3f Gbit/s payload each way\n", rate,
                   rate * rc.size * 8 / 1e9);
            printf("  latency us: p50 %.1f p99 %.1f\n", lat_pct(50), lat_pct(99));
            printf("  %.2f cpu-s (process, both sides%s): %.0f calls per cpu-second\n", c1 - c0,
                   rc.remote ? ": client only" : "", per_cpu);
        }
    }

    if (getenv("EVPL_BENCH_METRICS")) {
        static char m[65536];

        if (evpl_metrics_scrape(m, sizeof(m)) > 0) {
            fputs(m, stderr);
        }
    }
    evpl_rpc2_thread_destroy(ct); /* completes what is in flight */
    if (rc.zc) {
        evpl_iovec_release(cevpl, &zpayload);
    }
    evpl_destroy(cevpl);
    if (sthread) {
        evpl_thread_destroy(sthread);
        evpl_rpc2_server_stop(server);
        evpl_rpc2_server_destroy(server);
    }
    evpl_endpoint_close(ep);
    free(slots);
    free(payload);
    return 0;
}
