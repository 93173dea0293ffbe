/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * evpl-bench block: block I/O through the public API, for side-by-side
 * runs with fio (bench/compare-block.sh).  One loop on the calling thread
 * keeps --depth requests of --bs bytes in flight on a file or device,
 * random or sequential, read or write, for --duration seconds after a
 * warm-up; reports IOPS, MiB/s, latency and CPU seconds per million I/Os.
 */
#include <evpl/evpl.h>

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct bcfg {
    const char *file;
    const char *engine;
    const char *rw;
    unsigned int bs;
    unsigned int depth;
    double duration, warmup;
    uint64_t size; /* file size when the file is created */
    int json, row, quiet;
    int poll;         /* busy-poll between completions (default: sleep) */
    const char *mech; /* the loop's wait mechanism */
};

struct slot {
    struct evpl_iovec iov;
    uint64_t start;
};

static struct bcfg bc = {
    .engine = "io_uring",
    .rw = "randread",
    .bs = 4096,
    .depth = 32,
    .duration = 5,
    .warmup = 1,
    .size = 1ull << 30,
};

static struct evpl *b_evpl;
static struct evpl_block_queue *b_q;
static uint64_t b_dev_size, b_seq_off, b_rng = 0x2545f4914f6cdd1dull;
static uint64_t b_ops, b_errors, b_lat_sum, b_lat_n;
static uint64_t b_hist[64];
static int b_write, b_random, b_measuring, b_stopping;
static unsigned b_inflight;

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

static uint64_t
next_offset(void)
{
    uint64_t blocks = b_dev_size / bc.bs, off;

    if (b_random) {
        b_rng ^= b_rng << 13;
        b_rng ^= b_rng >> 7;
        b_rng ^= b_rng << 17;
        return (b_rng % blocks) * bc.bs;
    }
    off = b_seq_off;
    b_seq_off += bc.bs;
    if (b_seq_off + bc.bs > blocks * bc.bs) {
        b_seq_off = 0;
    }
    return off;
}

static void issue(struct slot *s);

static void
done(struct evpl *evpl, int status, void *arg)
{
    struct slot *s = arg;

    b_inflight--;
    if (status) {
        b_errors++;
    }
    if (b_measuring) {
        uint64_t lat = now_ns() - s->start;

        b_ops++;
        b_lat_sum += lat;
        b_lat_n++;
        b_hist[63 - __builtin_clzll(lat | 1)]++;
    }
    if (!b_stopping) {
        issue(s);
    }
}

static void
issue(struct slot *s)
{
    uint64_t off = next_offset();

    s->start = now_ns();
    b_inflight++;
    if (b_write) {
        evpl_block_write(b_evpl, b_q, &s->iov, 1, off, 0, done, s);
    } else {
        evpl_block_read(b_evpl, b_q, &s->iov, 1, off, done, s);
    }
}

static double
hist_pct(double pct)
{
    uint64_t want = (uint64_t) ((double) b_lat_n * pct / 100.0), seen = 0;

    for (int b = 0; b < 64; b++) {
        seen += b_hist[b];
        if (seen > want) {
            return (double) (1ull << b) * 1.5; /* middle of the power-of-two bucket */
        }
    }
    return 0;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: evpl-bench block --file PATH [options]\n"
            "  -f, --file PATH         file or block device (a file is created at --size)\n"
            "  -e, --engine NAME       io_uring (default) or libaio\n"
            "  -r, --rw MODE           randread (default), randwrite, read, write\n"
            "  -b, --bs BYTES          request size [4096]\n"
            "  -d, --depth N           requests in flight [32]\n"
            "  -D, --duration SEC      measured time [5]\n"
            "  -w, --warmup SEC        not measured [1]\n"
            "      --size BYTES        size of a created file [1 GiB]\n"
            "      --poll              busy-poll between completions (default: the loop sleeps\n"
            "                          in the kernel until one arrives, as fio does)\n"
            "      --core-mech M       epoll, or io_uring (default for the io_uring engine:\n"
            "                          one ring, one io_uring_enter per pass)\n"
            "  -j, --json              JSON summary\n"
            "      --row               one table row\n"
            "  -q, --quiet\n");
}

int
bench_block_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"file", 1, 0, 'f'},  {"engine", 1, 0, 'e'},    {"rw", 1, 0, 'r'},     {"bs", 1, 0, 'b'},
        {"depth", 1, 0, 'd'}, {"duration", 1, 0, 'D'},  {"warmup", 1, 0, 'w'}, {"size", 1, 0, 'S'},
        {"json", 0, 0, 'j'},  {"row", 0, 0, 'R'},       {"quiet", 0, 0, 'q'},  {"help", 0, 0, 'h'},
        {"poll", 0, 0, 'P'},  {"core-mech", 1, 0, 'M'}, {0, 0, 0, 0},
    };
    struct evpl_block_device *dev;
    struct slot *slots;
    enum evpl_block_protocol_id proto;
    double c0, c1, elapsed;
    uint64_t t0, t1, tw;
    int o;

    while ((o = getopt_long(argc, argv, "f:e:r:b:d:D:w:jqh", opts, NULL)) != -1) {
        switch (o) {
            case 'f':
                bc.file = optarg;
                break;
            case 'e':
                bc.engine = optarg;
                break;
            case 'r':
                bc.rw = optarg;
                break;
            case 'b':
                bc.bs = (unsigned) strtoul(optarg, NULL, 0);
                break;
            case 'd':
                bc.depth = (unsigned) strtoul(optarg, NULL, 0);
                break;
            case 'D':
                bc.duration = atof(optarg);
                break;
            case 'w':
                bc.warmup = atof(optarg);
                break;
            case 'S':
                bc.size = strtoull(optarg, NULL, 0);
                break;
            case 'j':
                bc.json = 1;
                break;
            case 'R':
                bc.row = 1;
                break;
            case 'q':
                bc.quiet = 1;
                break;
            case 'P':
                bc.poll = 1;
                break;
            case 'M':
                bc.mech = optarg;
                break;
            default:
                usage();
                return o == 'h' ? 0 : 2;
        }
    }
    if (strcmp(bc.rw, "randread") && strcmp(bc.rw, "randwrite") && strcmp(bc.rw, "read") &&
        strcmp(bc.rw, "write")) {
        fprintf(stderr, "evpl-bench: --rw %s: randread, randwrite, read or write\n", bc.rw);
        return 2;
    }
    if (!bc.file || !bc.bs || bc.bs % 512 || !bc.depth) {
        usage();
        return 2;
    }
    proto = strcmp(bc.engine, "libaio") == 0 ? EVPL_BLOCK_PROTOCOL_LIBAIO
                                             : EVPL_BLOCK_PROTOCOL_IO_URING;
    b_write = strstr(bc.rw, "write") != NULL;
    b_random = strncmp(bc.rw, "rand", 4) == 0;
    if (access(bc.file, F_OK) != 0) {
        int fd = open(bc.file, O_RDWR | O_CREAT, 0600);

        if (fd < 0 || ftruncate(fd, (off_t) bc.size) < 0) {
            perror(bc.file);
            return 1;
        }
        close(fd);
    }
    {
        struct evpl_global_config *gc = evpl_global_config_init();
        const char *mech = bc.mech                                 ? bc.mech
                           : proto == EVPL_BLOCK_PROTOCOL_IO_URING ? "io_uring"
                                                                   : "epoll";

        evpl_global_config_set_core_mech(gc, strcmp(mech, "io_uring") == 0 ? EVPL_CORE_MECH_IO_URING
                                                                           : EVPL_CORE_MECH_EPOLL);
        evpl_init(gc);
    }
    dev = evpl_block_open_device(proto, bc.file);
    if (!dev) {
        fprintf(stderr, "evpl-bench: cannot open %s with %s\n", bc.file, bc.engine);
        return 1;
    }
    b_dev_size = evpl_block_size(dev);
    {
        struct evpl_thread_config *tc = evpl_thread_config_init();

        evpl_thread_config_set_poll_mode(tc, bc.poll);
        b_evpl = evpl_create(tc);
        evpl_thread_config_release(tc);
    }
    b_q = evpl_block_open_queue(b_evpl, dev);
    slots = calloc(bc.depth, sizeof(*slots));
    for (unsigned i = 0; i < bc.depth; i++) {
        if (evpl_iovec_alloc(b_evpl, bc.bs, 4096, 1, 0, &slots[i].iov) != 1) {
            fprintf(stderr, "evpl-bench: cannot allocate %u bytes\n", bc.bs);
            return 1;
        }
        memset(slots[i].iov.data, 0xa5, bc.bs);
        issue(&slots[i]);
    }
    tw = now_ns() + (uint64_t) (bc.warmup * 1e9);
    while (now_ns() < tw) {
        evpl_continue(b_evpl);
    }
    b_measuring = 1;
    c0 = cpu_s();
    t0 = now_ns();
    t1 = t0 + (uint64_t) (bc.duration * 1e9);
    while (now_ns() < t1) {
        evpl_continue(b_evpl);
    }
    elapsed = (double) (now_ns() - t0) / 1e9;
    c1 = cpu_s();
    b_measuring = 0;
    b_stopping = 1;
    while (b_inflight) {
        evpl_continue(b_evpl);
    }
    {
        double iops = (double) b_ops / elapsed;
        double mibs = iops * bc.bs / (1024.0 * 1024.0);
        double cpu_per_m = b_ops ? (c1 - c0) / (double) b_ops * 1e6 : 0;
        double avg = b_lat_n ? (double) b_lat_sum / (double) b_lat_n / 1e3 : 0;

        if (bc.json) {
            printf("{\"mode\":\"block\",\"engine\":\"%s\",\"rw\":\"%s\",\"bs\":%u,\"depth\":%u,"
                   "\"ops\":%llu,\"errors\":%llu,\"iops\":%.0f,\"mib_s\":%.1f,"
                   "\"cpu_s_per_mio\":%.3f,\"lat_avg_us\":%.1f,\"lat_p99_us\":%.1f}\n",
                   bc.engine, bc.rw, bc.bs, bc.depth, (unsigned long long) b_ops,
                   (unsigned long long) b_errors, iops, mibs, cpu_per_m, avg, hist_pct(99) / 1e3);
        } else if (bc.row) {
            printf("block %-8s %-9s %7u %5u %10.0f %9.1f %9.3f %9.1f\n", bc.engine, bc.rw, bc.bs,
                   bc.depth, iops, mibs, cpu_per_m, avg);
        } else {
            printf("block %s %s bs %u depth %u: %.1f s measured\n", bc.engine, bc.rw, bc.bs,
                   bc.depth, elapsed);
            printf("  %.0f IOPS  %.1f MiB/s  %llu errors\n", iops, mibs,
                   (unsigned long long) b_errors);
            printf("  latency us: avg %.1f p50 ~%.1f p99 ~%.1f\n", avg, hist_pct(50) / 1e3,
                   hist_pct(99) / 1e3);
            printf("  cpu: %.2f s, %.3f s per million I/Os\n", c1 - c0, cpu_per_m);
        }
    }
    for (unsigned i = 0; i < bc.depth; i++) {
        evpl_iovec_release(b_evpl, &slots[i].iov);
    }
    free(slots);
    evpl_block_close_queue(b_evpl, b_q);
    evpl_block_close_device(dev);
    evpl_destroy(b_evpl);
    return b_errors ? 1 : 0;
}
