/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Helpers shared by the networking test programs (tests/net).  Not a test
 * program itself: only files named test_*.c are.
 *
 * Transport tests are written once and run for every protocol of a kind:
 * a file carrying the marker line "MATRIX: stream" (or "stream datagram")
 * is registered by tests/CMakeLists.txt once per protocol of
 * EVPL_TEST_STREAM_PROTOCOLS / EVPL_TEST_DATAGRAM_PROTOCOLS, with
 * T_PROTO=<protocol name> in the environment.  t_proto() reads it (exit 77
 * when that protocol is unavailable or of a kind the test does not cover).
 *
 * Only the public API is used (plus plain sockets for raw peers).
 */
#pragma once

#include <evpl/evpl.h>

#include <arpa/inet.h>
#include <endian.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "t.h"

#define T_NET_KIND_STREAM   1
#define T_NET_KIND_DATAGRAM 2 /* unconnected datagrams (evpl_bind) */
#define T_NET_KIND_CDGRAM   4 /* connected datagrams (listen/connect, one RECV_MSG per send) */

/* Datagram protocols that listen and connect (README protocol table). */
static inline int
t_proto_is_connected_datagram(enum evpl_protocol_id id)
{
    return id == EVPL_DATAGRAM_INPROC || id == EVPL_DATAGRAM_TCP_RDMA ||
           id == EVPL_DATAGRAM_RDMACM_RC;
} /* t_proto_is_connected_datagram */

/* RDMA CM: a device's address (soft-RoCE in the VM: T_RDMA_ADDR). */
static inline int
t_proto_is_rdmacm(enum evpl_protocol_id id)
{
    return id == EVPL_DATAGRAM_RDMACM_RC || id == EVPL_STREAM_RDMACM_RC ||
           id == EVPL_DATAGRAM_RDMACM_UD;
} /* t_proto_is_rdmacm */

static inline const char *
t_rdma_addr(void)
{
    const char *a = getenv("T_RDMA_ADDR");

    return a ? a : "10.77.0.1"; /* tests/vm/guest.sh's rxe0 */
} /* t_rdma_addr */

/* A count of work, scaled down by div inside the test VM (tests/vm sets
 * EVPL_VM): software-emulated CPUs run 5-10x slower. */
static inline uint64_t
t_vm_scale(uint64_t n, uint64_t div)
{
    return getenv("EVPL_VM") ? n / div : n;
} /* t_vm_scale */

/* Last-resort hang guard: every net test calls this first. */
static inline void
t_net_guard(unsigned int seconds)
{
    alarm(seconds);
} /* t_net_guard */

/* set by t_proto: raw-socket peers cannot stand in for a TLS peer */
static int t_proto_is_tls;
/* set by t_proto: in-process protocols have no socket at all */
static int t_proto_is_inproc;
/* set by t_proto: a forked child can go on using the parent's connections
 * (not over io_uring, nor on a loop waiting on io_uring: the ring and its
 * armed requests belong to the parent) */
static int t_proto_forkable;

/*
 * Skips (exit 77) that the environment alone decides, without touching the
 * library: a kernel-TLS run where the kernel has no TLS, or an io_uring
 * loop where io_uring is missing (the library would fall back to epoll and
 * the run would test epoll a second time).
 */
static inline void
t_proto_env_skips(const char *name)
{
    if (getenv("T_REQUIRE_KTLS") && access("/proc/net/tls_stat", R_OK) != 0) {
        T_SKIP("%s with kernel TLS: no kernel TLS here (runs in the VM)", name);
    }
    if (getenv("EVPL_CORE_MECH") && strcmp(getenv("EVPL_CORE_MECH"), "io_uring") == 0) {
        struct io_uring_params p;
        int fd;

        memset(&p, 0, sizeof(p));
        fd = (int) syscall(__NR_io_uring_setup, 1, &p);
        if (fd < 0) {
            T_SKIP("no io_uring here: the loop would wait on epoll");
        }
        close(fd);
    }
} /* t_proto_env_skips */

/*
 * The protocol under test: T_PROTO, or the default of the first kind the
 * test accepts when it is run by hand.  Exits 77 when the protocol is
 * unavailable or of a kind not in kinds.
 */
static inline enum evpl_protocol_id
t_proto(int kinds)
{
    const char *name = getenv("T_PROTO");
    enum evpl_protocol_id id;
    int stream;

    if (!name || !*name) {
        name = (kinds & T_NET_KIND_STREAM)     ? "STREAM_SOCKET_TCP"
               : (kinds & T_NET_KIND_DATAGRAM) ? "DATAGRAM_SOCKET_UDP"
                                               : "DATAGRAM_INPROC";
    }
    if (evpl_protocol_lookup(&id, name) != 0) {
        T_SKIP("protocol %s unavailable", name);
    }
    stream = evpl_protocol_is_stream(id);
    if (stream && !(kinds & T_NET_KIND_STREAM)) {
        T_SKIP("%s: stream protocols not covered by this test", name);
    }
    if (!stream && t_proto_is_connected_datagram(id) && !(kinds & T_NET_KIND_CDGRAM)) {
        T_SKIP("%s: connected datagram protocols not covered by this test", name);
    }
    if (!stream && !t_proto_is_connected_datagram(id) && !(kinds & T_NET_KIND_DATAGRAM)) {
        T_SKIP("%s: datagram protocols not covered by this test", name);
    }
    t_proto_env_skips(name);
    fprintf(stderr, "protocol: %s\n", name);
    t_proto_is_tls = id == EVPL_STREAM_SOCKET_TLS;
    t_proto_is_inproc = evpl_protocol_is_inproc(id);
    /* (RDMA CM: a child would share the parent's device context and
     * queues, which verbs does not support) */
    t_proto_forkable =
        strstr(name, "IO_URING") == NULL && !t_proto_is_rdmacm(id) &&
        !(getenv("EVPL_CORE_MECH") && strcmp(getenv("EVPL_CORE_MECH"), "io_uring") == 0);
    return id;
} /* t_proto */

/* Initialise the library with buffer memory capped at max_slabs slabs of
 * 16 buffers of buffer_size bytes (memory-exhaustion tests). */
static inline void
t_init_memory_cap(uint64_t buffer_size, unsigned int max_slabs)
{
    struct evpl_global_config *cfg = evpl_global_config_init();

    evpl_global_config_set_buffer_size(cfg, buffer_size);
    evpl_global_config_set_slab_size(cfg, 16 * buffer_size);
    evpl_global_config_set_max_slabs(cfg, max_slabs);
    evpl_init(cfg);
} /* t_init_memory_cap */

/* A loop that sleeps at most wait_ms (so pumping loops can time out). */
static inline struct evpl *
t_net_loop(void)
{
    struct evpl_thread_config *tc = evpl_thread_config_init();
    struct evpl *evpl;

    T_OK(tc != NULL);
    evpl_thread_config_set_poll_mode(tc, 0);
    evpl_thread_config_set_wait_ms(tc, 5);
    evpl = evpl_create(tc);
    T_OK(evpl != NULL);
    evpl_thread_config_release(tc);
    return evpl;
} /* t_net_loop */

/* "@evpl-test-<pid>-<n>": a fresh abstract AF_UNIX name. */
static inline void
t_abstract_name(char *buf, size_t len)
{
    static atomic_int n;

    snprintf(buf, len, "@evpl-test-%d-%d", (int) getpid(), atomic_fetch_add(&n, 1));
} /* t_abstract_name */

/* A fresh endpoint of the kind protocol needs (loopback only). */
static inline struct evpl_endpoint *
t_endpoint(enum evpl_protocol_id proto)
{
    struct evpl_endpoint *ep;

    if (evpl_protocol_is_local(proto)) {
        char name[64];

        t_abstract_name(name, sizeof(name));
        ep = evpl_endpoint_create_local(name);
    } else if (evpl_protocol_is_inproc(proto)) {
        char name[64];

        t_abstract_name(name, sizeof(name));
        ep = evpl_endpoint_create_inproc(name + 1);
    } else if (t_proto_is_rdmacm(proto)) {
        /* the CM has its own port space: any port free for TCP will do */
        ep = evpl_endpoint_create(t_rdma_addr(), t_free_port(SOCK_STREAM));
    } else if (!evpl_protocol_is_stream(proto) && !t_proto_is_connected_datagram(proto)) {
        ep = evpl_endpoint_create("127.0.0.1", t_free_port(SOCK_DGRAM));
    } else {
        /* A port bind(0) hands out can still refuse a listener that sets
         * SO_REUSEADDR (a connection of an earlier run still on it, not in
         * TIME_WAIT): probe with such a listener, as evpl_listen will. */
        int port = -1;

        for (int attempt = 0; attempt < 16 && port < 0; attempt++) {
            struct sockaddr_in sa = {.sin_family = AF_INET};
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

            T_OK(fd >= 0);
            port = t_free_port(SOCK_STREAM);
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            sa.sin_port = htons((uint16_t) port);
            if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
                bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0 || listen(fd, 1) != 0) {
                port = -1;
            }
            close(fd);
        }
        T_OK(port > 0);
        ep = evpl_endpoint_create("127.0.0.1", port);
    }
    T_OK(ep != NULL);
    return ep;
} /* t_endpoint */

/* The socket address an endpoint made by t_endpoint (or by hand) names. */
static inline socklen_t
t_endpoint_sockaddr(struct evpl_endpoint *ep, struct sockaddr_storage *ss)
{
    const char *a = evpl_endpoint_address(ep);

    if (evpl_endpoint_is_inproc(ep)) {
        T_SKIP("an in-process endpoint has no socket address");
    }
    memset(ss, 0, sizeof(*ss));
    if (evpl_endpoint_is_local(ep)) {
        struct sockaddr_un *un = (struct sockaddr_un *) ss;
        size_t n = strlen(a);

        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, a, n);
        if (a[0] == '@') {
            un->sun_path[0] = '\0';
            return (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n);
        }
        return (socklen_t) sizeof(*un);
    }
    if (strchr(a, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t) evpl_endpoint_port(ep));
        T_EQ(inet_pton(AF_INET6, a, &s6->sin6_addr), 1);
        return sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *) ss;

        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t) evpl_endpoint_port(ep));
        T_EQ(inet_pton(AF_INET, a, &s4->sin_addr), 1);
        return sizeof(*s4);
    }
} /* t_endpoint_sockaddr */

/*
 * A plain blocking socket connected to ep (stream), or -1 with errno set
 * when connect fails.
 */
static inline int
t_raw_connect(struct evpl_endpoint *ep)
{
    if (t_proto_is_tls) {
        /* tests/tls covers misbehaving peers for TLS with real TLS tools */
        T_SKIP("a raw-socket peer cannot speak TLS");
    }
    if (t_proto_is_inproc) {
        T_SKIP("an in-process protocol has no socket for a raw peer");
    }
    struct sockaddr_storage ss;
    socklen_t len = t_endpoint_sockaddr(ep, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    T_OK(fd >= 0);
    if (connect(fd, (struct sockaddr *) &ss, len) != 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    return fd;
} /* t_raw_connect */

/* A non-blocking raw client of ep with a small receive buffer: a peer
 * that reads nothing backs the server's answers up sooner. */
static inline int
t_raw_connect_small(struct evpl_endpoint *ep)
{
    struct sockaddr_storage ss;
    socklen_t len = t_endpoint_sockaddr(ep, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), small = 64 << 10;

    T_OK(fd >= 0);
    T_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    T_EQ(connect(fd, (struct sockaddr *) &ss, len), 0);
    T_EQ(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    return fd;
} /* t_raw_connect_small */

/* One round of writes to n non-blocking fds, up to step bytes each, every
 * one from its own offset off[i] into the same len bytes of buf (clients
 * sending at once).  Returns whether any wrote. */
static inline int
t_write_round(const int *fds, int n, const void *buf, size_t len, size_t *off, size_t step)
{
    int moved = 0;

    for (int i = 0; i < n; i++) {
        size_t chunk = len - off[i] < step ? len - off[i] : step;
        ssize_t w =
            chunk ? send(fds[i], (const char *) buf + off[i], chunk, MSG_NOSIGNAL | MSG_DONTWAIT)
                  : 0;

        if (w > 0) {
            off[i] += (size_t) w;
            moved = 1;
        } else {
            T_OK(w == 0 || errno == EAGAIN);
        }
    }
    return moved;
} /* t_write_round */

/* Write all of buf to a blocking fd. */
static inline void
t_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        T_OK(n > 0);
        p += n;
        len -= (size_t) n;
    }
} /* t_write_all */

/* Read exactly len bytes from a blocking fd. */
static inline void
t_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;

    while (len) {
        ssize_t n = read(fd, p, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        T_OK(n > 0);
        p += n;
        len -= (size_t) n;
    }
} /* t_read_all */

/* The library's log lines that contain a string, counted (one string per
 * process): t_count_log_lines(s) installs the log function, t_log_lines
 * is the count. */
static const char *t_log_needle;
static atomic_int t_log_lines;

static inline void
t_log_match(const char *level, const char *module, const char *srcfile, int lineno, const char *fmt,
            va_list ap)
{
    char line[512];

    (void) level;
    (void) module;
    (void) srcfile;
    (void) lineno;
    vsnprintf(line, sizeof(line), fmt, ap);
    if (t_log_needle && strstr(line, t_log_needle)) {
        t_log_lines++;
    }
} /* t_log_match */

static inline void
t_count_log_lines(const char *needle)
{
    t_log_needle = needle;
    atomic_store(&t_log_lines, 0);
    evpl_set_log_fn(t_log_match, NULL);
} /* t_count_log_lines */

/* A TCP-RDMA frame header (rdma.md §6), big-endian, into b[32]. */
static inline void
t_trma_hdr(unsigned char *b, uint32_t magic, uint32_t op, uint32_t len, uint32_t key, uint64_t addr,
           uint64_t id)
{
    uint32_t v[4] = {htobe32(magic), htobe32(op), htobe32(len), htobe32(key)};
    uint64_t w[2] = {htobe64(addr), htobe64(id)};

    memcpy(b, v, 16);
    memcpy(b + 16, w, 16);
} /* t_trma_hdr */

/* The same, written to fd. */
static inline void
t_trma_put(int fd, uint32_t magic, uint32_t op, uint32_t len, uint32_t key, uint64_t addr,
           uint64_t id)
{
    unsigned char b[32];

    t_trma_hdr(b, magic, op, len, key, addr, id);
    t_write_all(fd, b, 32);
} /* t_trma_put */

/* A fresh listener listening on (proto, ep). */
static inline struct evpl_listener *
t_listen(enum evpl_protocol_id proto, struct evpl_endpoint *ep)
{
    struct evpl_listener *l = evpl_listener_create();

    T_OK(l != NULL);
    T_EQ(evpl_listen(l, proto, ep), 0);
    return l;
} /* t_listen */

/* ---- deterministic content ---- */

/* splitmix64: a deterministic PRNG. */
static inline uint64_t
t_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
} /* t_mix64 */

/* The byte at stream offset off of a pattern keyed by seed. */
static inline uint8_t
t_pattern_byte(uint64_t seed, uint64_t off)
{
    return (uint8_t) (t_mix64(seed ^ (off >> 3)) >> ((off & 7) * 8));
} /* t_pattern_byte */

static inline void
t_pattern_fill(uint64_t seed, uint64_t off, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t i = 0;

    /* word at a time where aligned (the big tests push hundreds of MiB) */
    while (i < len && ((off + i) & 7)) {
        p[i] = t_pattern_byte(seed, off + i);
        i++;
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w = t_mix64(seed ^ ((off + i) >> 3));

        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++) {
        p[i] = t_pattern_byte(seed, off + i);
    }
} /* t_pattern_fill */

/* Index of the first byte of buf differing from the pattern, or -1. */
static inline int64_t
t_pattern_check(uint64_t seed, uint64_t off, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t i = 0;

    while (i < len && ((off + i) & 7)) {
        if (p[i] != t_pattern_byte(seed, off + i)) {
            return (int64_t) i;
        }
        i++;
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w = t_mix64(seed ^ ((off + i) >> 3));

        if (memcmp(p + i, &w, 8) != 0) {
            break;
        }
    }
    for (; i < len; i++) {
        if (p[i] != t_pattern_byte(seed, off + i)) {
            return (int64_t) i;
        }
    }
    return -1;
} /* t_pattern_check */

/* Take all a stream bind holds, checking it against the pattern from
 * stream offset *checked on (which advances); fails at a wrong byte. */
static inline void
t_recv_pattern(struct evpl *evpl, struct evpl_bind *bind, uint64_t seed, uint64_t *checked)
{
    static uint8_t buf[1 << 20];
    int r;

    while ((r = evpl_recv(evpl, bind, buf, sizeof(buf), 0)) > 0) {
        int64_t bad = t_pattern_check(seed, *checked, buf, (size_t) r);

        if (bad >= 0) {
            T_FAIL("byte at stream offset %llu differs",
                   (unsigned long long) (*checked + (uint64_t) bad));
        }
        *checked += (uint64_t) r;
    }
} /* t_recv_pattern */

/* ---- a generic per-bind observer ---- */

#define T_CONN_MAX_EVENTS 64

struct t_conn {
    struct evpl_bind *bind;
    struct evpl *evpl;
    pthread_t owner; /* thread that must run every callback */
    int check_owner;

    int connected, disconnected, disconnect_status;
    int nrecv_data, nrecv_msg, nsent;
    int errors;              /* ordering/ownership violations seen */
    int cb_after_disconnect; /* any callback after DISCONNECTED */
    uint64_t sent_bytes, sent_msgs;

    /* events in order: 'C', 'D', 'R' (data), 'M' (msg), 'S' (sent) */
    char events[T_CONN_MAX_EVENTS + 1];
    int nevents;

    /* RECV_DATA: drain everything into rx (autodrain) */
    int autodrain;
    /* RECV_MSG: copy into rx, record lengths, release the iovecs */
    int keep_msgs;
    /* RECV_MSG: send the message back with TAKE_REF instead of releasing */
    int echo_msgs;
    uint8_t *rx;
    size_t rxlen, rxcap;
    unsigned int *msg_len;
    int nmsg_len, cap_msg_len;
    unsigned int max_niov;

    /* accepted binds: the addresses as the attach callback saw them */
    char attach_local[EVPL_ADDRESS_STRLEN], attach_remote[EVPL_ADDRESS_STRLEN];

    /* extra behaviour: called after the bookkeeping; may close etc. */
    void (*hook)(struct t_conn *c, struct evpl_notify *n);
    void *user;
    int id;
};

static inline void
t_conn_init(struct t_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->autodrain = 1;
    c->keep_msgs = 1;
} /* t_conn_init */

static inline void
t_conn_free(struct t_conn *c)
{
    free(c->rx);
    free(c->msg_len);
    c->rx = NULL;
    c->msg_len = NULL;
    c->rxlen = c->rxcap = 0;
    c->nmsg_len = c->cap_msg_len = 0;
} /* t_conn_free */

static inline void
t_conn_append(struct t_conn *c, const void *p, size_t len)
{
    if (len == 0) {
        return; /* an empty datagram: nothing to keep (and rx may be NULL) */
    }
    if (c->rxlen + len > c->rxcap) {
        size_t cap = c->rxcap ? c->rxcap : 65536;

        while (cap < c->rxlen + len) {
            cap *= 2;
        }
        c->rx = realloc(c->rx, cap);
        T_OK(c->rx != NULL);
        c->rxcap = cap;
    }
    memcpy(c->rx + c->rxlen, p, len);
    c->rxlen += len;
} /* t_conn_append */

static inline void
t_conn_event(struct t_conn *c, char e)
{
    if (c->nevents < T_CONN_MAX_EVENTS) {
        /* collapse runs of data events so the log stays short */
        if ((e == 'R' || e == 'M' || e == 'S') && c->nevents && c->events[c->nevents - 1] == e) {
            return;
        }
        c->events[c->nevents++] = e;
        c->events[c->nevents] = '\0';
    }
} /* t_conn_event */

static inline void
t_conn_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct t_conn *c = priv;

    if (c->check_owner && !pthread_equal(pthread_self(), c->owner)) {
        fprintf(stderr, "callback on the wrong thread (type %u)\n", n->notify_type);
        c->errors++;
    }
    if (c->disconnected) {
        c->cb_after_disconnect++;
    }
    if (c->bind && c->bind != bind) {
        fprintf(stderr, "callback for another bind\n");
        c->errors++;
    }
    c->bind = bind;
    c->evpl = evpl;

    switch (n->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            t_conn_event(c, 'C');
            if (c->connected || c->nrecv_data || c->nrecv_msg) {
                c->errors++;
            }
            c->connected++;
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            t_conn_event(c, 'D');
            c->disconnected++;
            c->disconnect_status = n->notify_status;
            break;
        case EVPL_NOTIFY_RECV_DATA:
            t_conn_event(c, 'R');
            c->nrecv_data++;
            if (n->notify_status != 0) {
                c->errors++;
            }
            if (c->autodrain) {
                char buf[65536];
                int r;

                while ((r = evpl_recv(evpl, bind, buf, sizeof(buf), 0)) > 0) {
                    t_conn_append(c, buf, (size_t) r);
                }
                if (r < 0) {
                    c->errors++;
                }
            }
            break;
        case EVPL_NOTIFY_RECV_MSG:
            t_conn_event(c, 'M');
            c->nrecv_msg++;
            if (n->notify_status != 0) {
                c->errors++;
            }
            if (n->recv_msg.niov > c->max_niov) {
                c->max_niov = n->recv_msg.niov;
            }
            if (c->keep_msgs) {
                uint64_t total = 0;

                for (unsigned i = 0; i < n->recv_msg.niov; i++) {
                    t_conn_append(c, n->recv_msg.iovec[i].data, n->recv_msg.iovec[i].length);
                    total += n->recv_msg.iovec[i].length;
                }
                if (total != n->recv_msg.length) {
                    fprintf(stderr, "recv_msg.length %u but iovecs hold %llu\n", n->recv_msg.length,
                            (unsigned long long) total);
                    c->errors++;
                }
                if (c->nmsg_len == c->cap_msg_len) {
                    c->cap_msg_len = c->cap_msg_len ? c->cap_msg_len * 2 : 64;
                    c->msg_len =
                        realloc(c->msg_len, sizeof(unsigned int) * (size_t) c->cap_msg_len);
                    T_OK(c->msg_len != NULL);
                }
                c->msg_len[c->nmsg_len++] = n->recv_msg.length;
            }
            if (c->echo_msgs) {
                evpl_sendv(evpl, bind, n->recv_msg.iovec, (int) n->recv_msg.niov,
                           (int) n->recv_msg.length, EVPL_SEND_FLAG_TAKE_REF);
            } else if (c->keep_msgs) {
                evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
            }
            break;
        case EVPL_NOTIFY_SENT:
            t_conn_event(c, 'S');
            c->nsent++;
            c->sent_bytes += n->sent.bytes;
            c->sent_msgs += n->sent.msgs;
            break;
        default:
            c->errors++;
            break;
    }
    if (c->hook) {
        c->hook(c, n);
    }
} /* t_conn_notify */

/* ---- a server: a listener attached to one loop, a fixed pool of conns ---- */

struct t_server {
    struct evpl_listener *listener;
    struct evpl_listener_binding *binding;
    struct evpl *evpl;
    struct t_conn *conns;
    int max, n;
    evpl_segment_callback_t segment;
    /* applied to each accepted conn */
    int autodrain, keep_msgs, echo_msgs;
    void (*hook)(struct t_conn *c, struct evpl_notify *n);
    void *user;
    int attach_wrong_thread;
    pthread_t owner;
};

static inline void
t_server_attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_cb,
                evpl_segment_callback_t *segment_cb, void **conn_private, void *priv)
{
    struct t_server *s = priv;
    struct t_conn *c;

    if (!pthread_equal(pthread_self(), s->owner)) {
        s->attach_wrong_thread++;
    }
    if (s->n >= s->max) {
        T_FAIL("server: more connections than expected (%d)", s->max);
    }
    c = &s->conns[s->n];
    t_conn_init(c);
    c->id = s->n++;
    c->bind = bind;
    c->evpl = evpl;
    c->autodrain = s->autodrain;
    c->keep_msgs = s->keep_msgs;
    c->echo_msgs = s->echo_msgs;
    c->hook = s->hook;
    c->user = s->user;
    c->owner = s->owner;
    c->check_owner = 1;
    evpl_bind_get_local_address(bind, c->attach_local, sizeof(c->attach_local));
    evpl_bind_get_remote_address(bind, c->attach_remote, sizeof(c->attach_remote));
    *notify_cb = t_conn_notify;
    *segment_cb = s->segment;
    *conn_private = c;
} /* t_server_attach */

/*
 * Listen on (proto, ep) and attach evpl (calling thread) with room for max
 * connections.
 */
static inline void
t_server_start(struct t_server *s, struct evpl *evpl, enum evpl_protocol_id proto,
               struct evpl_endpoint *ep, int max)
{
    s->evpl = evpl;
    s->max = max;
    s->owner = pthread_self();
    s->conns = calloc((size_t) max, sizeof(*s->conns));
    T_OK(s->conns != NULL);
    if (!s->autodrain && !s->keep_msgs && !s->segment) {
        s->autodrain = 1;
        s->keep_msgs = 1;
    }
    s->listener = t_listen(proto, ep);
    s->binding = evpl_listener_attach(evpl, s->listener, t_server_attach, s);
    T_OK(s->binding != NULL);
} /* t_server_start */

static inline void
t_server_stop(struct t_server *s)
{
    if (s->binding) {
        evpl_listener_detach(s->evpl, s->binding);
        s->binding = NULL;
    }
    if (s->listener) {
        evpl_listener_destroy(s->listener);
        s->listener = NULL;
    }
    for (int i = 0; i < s->n; i++) {
        t_conn_free(&s->conns[i]);
    }
    free(s->conns);
    s->conns = NULL;
} /* t_server_stop */

/* ---- pumping ---- */

/*
 * Run passes of evpl until cond holds; fail after timeout_ms.  cond is
 * re-evaluated after every pass.
 */
#define T_PUMP(evpl, cond, timeout_ms)                                                     \
    do {                                                                                   \
        uint64_t t_deadline_ = t_now_ns() + (uint64_t) (timeout_ms) *1000000ull;           \
        while (!(cond)) {                                                                  \
            if (t_now_ns() > t_deadline_) {                                                \
                T_FAIL("timed out after %d ms waiting for %s", (int) (timeout_ms), #cond); \
            }                                                                              \
            evpl_continue(evpl);                                                           \
        }                                                                                  \
    } while (0)

/* Run passes for ms milliseconds (to observe that something does NOT happen). */
static inline void
t_pump_for(struct evpl *evpl, unsigned int ms)
{
    uint64_t deadline = t_now_ns() + (uint64_t) ms * 1000000ull;

    while (t_now_ns() < deadline) {
        evpl_continue(evpl);
    }
} /* t_pump_for */

/* Two datagram binds on evpl at fresh endpoints: a keeps the messages it
 * receives (a.rx, a.msg_len), b is the sender. */
static inline void
t_dgram_pair(struct evpl *evpl, enum evpl_protocol_id proto, struct evpl_endpoint **epa,
             struct evpl_endpoint **epb, struct t_conn *a, struct t_conn *b)
{
    *epa = t_endpoint(proto);
    *epb = t_endpoint(proto);
    t_conn_init(a);
    a->keep_msgs = 1;
    a->bind = evpl_bind(evpl, proto, *epa, t_conn_notify, a);
    a->evpl = evpl;
    T_OK(a->bind != NULL);
    t_conn_init(b);
    b->bind = evpl_bind(evpl, proto, *epb, t_conn_notify, b);
    b->evpl = evpl;
    T_OK(b->bind != NULL);
} /* t_dgram_pair */

/* Close two datagram binds, wait for both DISCONNECTEDs, free both. */
static inline void
t_close_pair(struct evpl *evpl, struct t_conn *a, struct t_conn *b)
{
    evpl_close(evpl, a->bind);
    evpl_close(evpl, b->bind);
    T_PUMP(evpl, a->disconnected && b->disconnected, 5000);
    t_conn_free(a);
    t_conn_free(b);
} /* t_close_pair */

/* Connect a t_conn to ep from local (may be NULL); the conn is
 * initialised here. */
static inline struct evpl_bind *
t_connect_from(struct evpl *evpl, enum evpl_protocol_id proto, struct evpl_endpoint *local,
               struct evpl_endpoint *ep, struct t_conn *c, evpl_segment_callback_t segment)
{
    struct evpl_bind *b;

    t_conn_init(c);
    c->owner = pthread_self();
    c->check_owner = 1;
    b = evpl_connect(evpl, proto, local, ep, t_conn_notify, segment, c);
    T_OK(b != NULL);
    c->bind = b;
    c->evpl = evpl;
    return b;
} /* t_connect_from */

/* Connect a t_conn to ep (the conn is initialised here). */
static inline struct evpl_bind *
t_connect(struct evpl *evpl, enum evpl_protocol_id proto, struct evpl_endpoint *ep,
          struct t_conn *c, evpl_segment_callback_t segment)
{
    return t_connect_from(evpl, proto, NULL, ep, c, segment);
} /* t_connect */

/* The process resident set size in bytes. */
static inline uint64_t
t_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;

    if (!f) {
        return 0;
    }
    if (fscanf(f, "%lu %lu", &size, &rss) != 2) {
        rss = 0;
    }
    fclose(f);
    return (uint64_t) rss * (uint64_t) sysconf(_SC_PAGESIZE);
} /* t_rss_bytes */

/* ---- framing used by segmented tests: 4-byte big-endian total length ---- */

#define T_HDR 4

/* Segment callback: total length from a 4-byte big-endian header. */
static inline int
t_segment_be32(struct evpl *evpl, struct evpl_bind *bind, void *priv)
{
    uint8_t h[T_HDR];
    int r = evpl_peek(evpl, bind, h, T_HDR);

    (void) priv;
    if (r < T_HDR) {
        return 0;
    }
    return (int) (((uint32_t) h[0] << 24) | ((uint32_t) h[1] << 16) | ((uint32_t) h[2] << 8) |
                  (uint32_t) h[3]);
} /* t_segment_be32 */

static inline void
t_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 24);
    p[1] = (uint8_t) (v >> 16);
    p[2] = (uint8_t) (v >> 8);
    p[3] = (uint8_t) v;
} /* t_put_be32 */

/* A server whose connections are framed by t_segment_be32 and keep every
 * message they receive. */
static inline void
t_server_start_framed(struct t_server *s, struct evpl *evpl, enum evpl_protocol_id proto,
                      struct evpl_endpoint *ep, int max)
{
    memset(s, 0, sizeof(*s));
    s->segment = t_segment_be32;
    s->keep_msgs = 1;
    t_server_start(s, evpl, proto, ep, max);
} /* t_server_start_framed */

static inline uint32_t
t_get_be32(const uint8_t *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) |
           (uint32_t) p[3];
} /* t_get_be32 */
