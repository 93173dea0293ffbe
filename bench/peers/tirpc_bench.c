/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The peer of `evpl-bench rpc` in bench/compare-rpc.sh: the same program
 * (tools/bench_rpc.x, procedure 1 echoes { seq, opaque payload<> }) served
 * and called with libtirpc over TCP on loopback.  The server is a forked
 * process running svc_run(); the client runs --conns threads, each with
 * its own connection and one call in flight (clnt_call is synchronous).
 * CPU is both processes' user+system time over the measured interval.
 *
 *   tirpc-bench [-s size] [-c conns] [-D seconds] [-w warmup] [--row]
 */
#include <pthread.h>
#include <rpc/rpc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG 0x20005555
#define VERS 1
#define ECHO 1

struct msg {
    u_int seq;
    u_int len;
    char *data;
};

static bool_t
xdr_msg(XDR *x, struct msg *m)
{
    return xdr_u_int(x, &m->seq) && xdr_bytes(x, &m->data, &m->len, ~0u);
}

static void
dispatch(struct svc_req *rq, SVCXPRT *xprt)
{
    struct msg m = {0};

    switch (rq->rq_proc) {
        case NULLPROC:
            svc_sendreply(xprt, (xdrproc_t) (void (*)(void)) xdr_void, NULL);
            return;
        case ECHO:
            if (!svc_getargs(xprt, (xdrproc_t) xdr_msg, (caddr_t) &m)) {
                svcerr_decode(xprt);
                return;
            }
            svc_sendreply(xprt, (xdrproc_t) xdr_msg, (caddr_t) &m);
            svc_freeargs(xprt, (xdrproc_t) xdr_msg, (caddr_t) &m);
            return;
        default:
            svcerr_noproc(xprt);
    }
}

static unsigned size = 64, conns = 1;
static double duration = 5, warmup = 1;
static struct sockaddr_in addr;
static atomic_int phase; /* 0 warm-up, 1 measuring, 2 done */
static atomic_ullong calls;
#define LAT_BUCKETS 8192 /* 0.25 us each */
static atomic_ullong lat[LAT_BUCKETS + 1];

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static void *
client(void *arg)
{
    int sock = RPC_ANYSOCK;
    struct sockaddr_in a = addr;
    CLIENT *cl = clnttcp_create(&a, PROG, VERS, &sock, 0, 0);
    struct timeval tmo = {30, 0};
    struct msg m = {0}, r;
    char *payload = calloc(1, size ? size : 1);

    if (!cl) {
        clnt_pcreateerror("tirpc-bench");
        exit(1);
    }
    m.len = size;
    m.data = payload;
    while (atomic_load(&phase) < 2) {
        uint64_t t0 = now_ns(), d;

        m.seq++;
        memset(&r, 0, sizeof(r));
        if (clnt_call(cl, ECHO, (xdrproc_t) xdr_msg, (caddr_t) &m, (xdrproc_t) xdr_msg,
                      (caddr_t) &r, tmo) != RPC_SUCCESS ||
            r.seq != m.seq || r.len != size) {
            clnt_perror(cl, "tirpc-bench");
            exit(1);
        }
        clnt_freeres(cl, (xdrproc_t) xdr_msg, (caddr_t) &r);
        if (atomic_load(&phase) == 1) {
            d = (now_ns() - t0) / 250;
            atomic_fetch_add(&lat[d < LAT_BUCKETS ? d : LAT_BUCKETS], 1);
            atomic_fetch_add(&calls, 1);
        }
    }
    clnt_destroy(cl);
    free(payload);
    return arg;
}

static double
pct(double p)
{
    uint64_t n = 0, seen = 0;

    for (int i = 0; i <= LAT_BUCKETS; i++) {
        n += lat[i];
    }
    for (int i = 0; i <= LAT_BUCKETS; i++) {
        seen += lat[i];
        if ((double) seen > (double) n * p / 100.0) {
            return i * 0.25;
        }
    }
    return 0;
}

/* CPU seconds of another process so far (/proc/PID/stat utime + stime) */
static double
proc_cpu(pid_t pid)
{
    char path[64], line[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
    f = fopen(path, "r");
    if (!f || !fgets(line, sizeof(line), f)) {
        if (f) {
            fclose(f);
        }
        return 0;
    }
    fclose(f);
    p = strrchr(line, ')');
    /* after the name: state, then fields 4..13, then utime (14), stime (15) */
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2) {
        return (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
    }
    return 0;
}

static double
cpu(int who)
{
    struct rusage ru;

    getrusage(who, &ru);
    return (double) ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double) ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int
main(int argc, char **argv)
{
    int row = 0, lsock, one = 1;
    socklen_t alen = sizeof(addr);
    pthread_t *th;
    pid_t pid;
    double c0, c1, s0, s1;
    uint64_t t0, t1;
    char buf[64];

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-s") && i + 1 < argc) {
            size = (unsigned) atoi(argv[++i]);
        } else if (!strcmp(argv[i], "-c") && i + 1 < argc) {
            conns = (unsigned) atoi(argv[++i]);
        } else if (!strcmp(argv[i], "-D") && i + 1 < argc) {
            duration = atof(argv[++i]);
        } else if (!strcmp(argv[i], "-w") && i + 1 < argc) {
            warmup = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--row")) {
            row = 1;
        } else {
            fprintf(stderr, "usage: tirpc-bench [-s size] [-c conns] [-D s] [-w s] [--row]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    lsock = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lsock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lsock, (struct sockaddr *) &addr, sizeof(addr)) != 0 ||
        getsockname(lsock, (struct sockaddr *) &addr, &alen) != 0 || listen(lsock, 128) != 0) {
        perror("bind");
        return 1;
    }
    pid = fork();
    if (pid == 0) {
        /* the server; it goes with the client, however that ends */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        SVCXPRT *x = svctcp_create(lsock, 0, 0);

        if (!x || !svc_register(x, PROG, VERS, dispatch, 0)) {
            fprintf(stderr, "tirpc-bench: cannot serve\n");
            _exit(1);
        }
        svc_run();
        _exit(0);
    }
    close(lsock);
    th = calloc(conns, sizeof(*th));
    for (unsigned i = 0; i < conns; i++) {
        pthread_create(&th[i], NULL, client, NULL);
    }
    usleep((useconds_t) (warmup * 1e6));
    c0 = cpu(RUSAGE_SELF);
    s0 = proc_cpu(pid);
    t0 = now_ns();
    atomic_store(&phase, 1);
    usleep((useconds_t) (duration * 1e6));
    atomic_store(&phase, 2);
    t1 = now_ns();
    c1 = cpu(RUSAGE_SELF);
    s1 = proc_cpu(pid);
    for (unsigned i = 0; i < conns; i++) {
        pthread_join(th[i], NULL);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    {
        double secs = (double) (t1 - t0) / 1e9;
        double rate = (double) calls / secs;
        double per_cpu = (double) calls / ((c1 - c0) + (s1 - s0));

        snprintf(buf, sizeof(buf), "tirpc-c%u", conns);
        if (row) {
            printf("%-9s %-20s %7u %5u %12.0f %9.1f %9.1f %12.0f\n", buf, "TCP(libtirpc)", size,
                   conns, rate, pct(50), pct(99), per_cpu);
        } else {
            printf("libtirpc TCP size %u conns %u: %.0f calls/s, p50 %.1f us p99 %.1f us, "
                   "%.0f calls per cpu-second\n",
                   size, conns, rate, pct(50), pct(99), per_cpu);
        }
    }
    free(th);
    return 0;
}
