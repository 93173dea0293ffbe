/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Tiny assertion header for the test programs: each check prints the
 * values it compared and exits non-zero on failure.  Exit 77 = skipped.
 */
#pragma once

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define T_SKIP_CODE 77

#define T_FAIL(...)                                           \
    do {                                                      \
        fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__);                         \
        fprintf(stderr, "\n");                                \
        exit(1);                                              \
    } while (0)

#define T_SKIP(...)                   \
    do {                              \
        fprintf(stderr, "SKIP: ");    \
        fprintf(stderr, __VA_ARGS__); \
        fprintf(stderr, "\n");        \
        exit(T_SKIP_CODE);            \
    } while (0)

#define T_OK(cond)                        \
    do {                                  \
        if (!(cond)) {                    \
            T_FAIL("expected %s", #cond); \
        }                                 \
    } while (0)

#define T_CMP_(a, op, b, type, fmt)                                       \
    do {                                                                  \
        type t_a_ = (type) (a);                                           \
        type t_b_ = (type) (b);                                           \
        if (!(t_a_ op t_b_)) {                                            \
            T_FAIL("%s %s %s: " fmt " vs " fmt, #a, #op, #b, t_a_, t_b_); \
        }                                                                 \
    } while (0)

#define T_EQ(a, b)     T_CMP_(a, ==, b, int64_t, "%" PRId64)
#define T_NE(a, b)     T_CMP_(a, !=, b, int64_t, "%" PRId64)
#define T_LT(a, b)     T_CMP_(a, <, b, int64_t, "%" PRId64)
#define T_LE(a, b)     T_CMP_(a, <=, b, int64_t, "%" PRId64)
#define T_GT(a, b)     T_CMP_(a, >, b, int64_t, "%" PRId64)
#define T_GE(a, b)     T_CMP_(a, >=, b, int64_t, "%" PRId64)
#define T_EQ_U(a, b)   T_CMP_(a, ==, b, uint64_t, "%" PRIu64)
#define T_EQ_PTR(a, b) T_CMP_(a, ==, b, const void *, "%p")
#define T_STR_EQ(a, b)                                                \
    do {                                                              \
        const char *t_a_ = (a), *t_b_ = (b);                          \
        if (strcmp(t_a_, t_b_) != 0) {                                \
            T_FAIL("%s == %s: \"%s\" vs \"%s\"", #a, #b, t_a_, t_b_); \
        }                                                             \
    } while (0)

static inline uint64_t
t_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
} /* t_now_ns */

/*
 * Run fn in a child process and return its termination signal (0 when it
 * exited normally).  Used to check that misuse aborts.
 */
static inline int
t_child_signal(void (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    int status;

    if (pid == 0) {
        /* keep the expected abort quiet and fast */
        fn(arg);
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        T_FAIL("fork/waitpid: %s", strerror(errno));
    }
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
} /* t_child_signal */

/* Process CPU time (user + system) in ns. */
static inline uint64_t
t_cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
} /* t_cpu_ns */

/* Value of an unlabelled metric from evpl_metrics_scrape, or -1. */
int evpl_metrics_scrape(char *buffer, int buffer_size);

static inline int64_t
t_metric(const char *name)
{
    static char buf[65536];
    size_t len = strlen(name);
    char *p;

    if (evpl_metrics_scrape(buf, sizeof(buf)) < 0) {
        return -1;
    }
    for (p = buf; (p = strstr(p, name)) != NULL; p += len) {
        if ((p == buf || p[-1] == '\n') && p[len] == ' ') {
            return strtoll(p + len + 1, NULL, 10);
        }
    }
    return -1;
} /* t_metric */

/* Bind fd to the loopback address of af at port (0: any); 0 or -1. */
static inline int
t_bind_loopback(int fd, int af, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (af == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        s6->sin6_port = htons((uint16_t) port);
        *len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *) ss;

        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        s4->sin_port = htons((uint16_t) port);
        *len = sizeof(*s4);
    }
    return bind(fd, (struct sockaddr *) ss, *len) == 0 ? 0 : -1;
} /* t_bind_loopback */

/*
 * A free loopback port for type (SOCK_STREAM / SOCK_DGRAM), or -1 when
 * the family cannot bind its loopback (no ::1 here).  Taken at random
 * below the kernel's ephemeral range: a port bind(0) hands out can be
 * given to another test's connect() as its local port before this test
 * listens on it (ctest -j: "address in use" now and then).
 */
static inline int
t_try_free_port_af(int af, int type)
{
    static atomic_uint seq;
    struct sockaddr_storage ss;
    socklen_t len;
    int port = -1, low = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    uint32_t x = (uint32_t) getpid() * 2654435761u ^ (uint32_t) t_now_ns() ^
                 atomic_fetch_add(&seq, 1) * 40503u;

    if (f) {
        if (fscanf(f, "%d", &low) != 1) {
            low = 32768;
        }
        fclose(f);
    }
    for (int attempt = 0; attempt < 64 && port < 0 && low > 11024; attempt++) {
        int fd = socket(af, type | SOCK_CLOEXEC, 0), cand;

        if (fd < 0) {
            return -1;
        }
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        cand = 10000 + (int) (x % (uint32_t) (low - 1 - 10000));
        if (t_bind_loopback(fd, af, cand, &ss, &len) == 0) {
            port = cand;
        }
        close(fd);
    }
    if (port < 0) {
        /* (no room below the ephemeral range: any port) */
        int fd = socket(af, type | SOCK_CLOEXEC, 0);

        if (fd < 0) {
            return -1;
        }
        if (t_bind_loopback(fd, af, 0, &ss, &len) == 0 &&
            getsockname(fd, (struct sockaddr *) &ss, &len) == 0) {
            port = ntohs(af == AF_INET6 ? ((struct sockaddr_in6 *) &ss)->sin6_port
                                        : ((struct sockaddr_in *) &ss)->sin_port);
        }
        close(fd);
    }
    return port;
} /* t_try_free_port_af */

/* The same, failing the test when there is none. */
static inline int
t_free_port_af(int af, int type)
{
    int port = t_try_free_port_af(af, type);

    T_OK(port > 0);
    return port;
} /* t_free_port_af */

static inline int
t_free_port(int type)
{
    return t_free_port_af(AF_INET, type);
} /* t_free_port */

/*
 * A fresh file of size bytes (sparse) under $TMPDIR or /var/tmp, named
 * evpl-<name>-XXXXXX; its path goes in path.  Returns an open descriptor
 * (the caller closes it, and unlinks the path).
 */
static inline int
t_temp_file(char *path, size_t len, const char *name, uint64_t size)
{
    int fd;

    snprintf(path, len, "%s/evpl-%s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp",
             name);
    fd = mkstemp(path);
    T_OK(fd >= 0);
    T_EQ(ftruncate(fd, (off_t) size), 0);
    return fd;
} /* t_temp_file */

/*
 * Move this process into a network namespace of its own with only a
 * loopback interface up: a test that resolves names that must fail then
 * never sends a DNS query off the machine (nothing leaves 127.0.0.0/8),
 * and the failure is immediate.  Call first thing in main, before any
 * thread exists.  0, or -errno (not root: the caller skips).
 */
static inline int
t_private_netns(void)
{
    struct ifreq ifr;
    int fd;

    if (unshare(CLONE_NEWNET) < 0) {
        return -errno;
    }
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
        close(fd);
        return -errno;
    }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) {
        close(fd);
        return -errno;
    }
    close(fd);
    return 0;
} /* t_private_netns */
