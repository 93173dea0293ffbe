/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Back-pressure (issue item (c), DESIGN §9.3) over every stream protocol:
 * with evpl_global_config_set_stream_recv_limit(1 MiB), a peer that sends
 * 64 MiB while the application never reads stalls after a few MiB; the
 * bind's buffer, the buffers in use and the RSS stay bounded; once the
 * application reads, every byte arrives exactly once, in order.  net.md
 * §14 statements 22 and 29.  A TCP peer that resets while the bind is
 * paused ends it at once (net.md §6), without the application reading.
 */
/* MATRIX: stream */
/* ALSO_MECH: io_uring */
/* LABELS: threads */
#include "t_net.h"

#define LIMIT (1u << 20)
#define TOTAL (64ull << 20)
#define SEED  0xbacc

static atomic_ullong written;
static int wfd;

static void *
writer(void *arg)
{
    static uint8_t chunk[256 * 1024];
    uint64_t off = 0;

    (void) arg;
    while (off < TOTAL) {
        size_t n = sizeof(chunk);
        ssize_t w;

        if (n > TOTAL - off) {
            n = (size_t) (TOTAL - off);
        }
        t_pattern_fill(SEED, off, chunk, n);
        w = write(wfd, chunk, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            fprintf(stderr, "writer: %s\n", strerror(errno));
            break;
        }
        /* only what was written counts; the rest is rewritten next time */
        off += (uint64_t) w;
        atomic_store(&written, off);
    }
    return NULL;
}

static uint64_t checked;

/* Drain and verify on each RECV_DATA (once reading is switched on). */
static void
reader(struct t_conn *c, struct evpl_notify *n)
{
    if (n->notify_type != EVPL_NOTIFY_RECV_DATA || !c->user) {
        return;
    }
    t_recv_pattern(c->evpl, c->bind, SEED, &checked);
}

int
main(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn *s;
    pthread_t th;
    int64_t base_bufs;
    uint64_t base_rss, last, stall_start, deadline;
    static uint8_t peekbuf[64 << 20];
    int buffered;

    t_net_guard(60);
    evpl_global_config_set_stream_recv_limit(cfg, LIMIT);
    evpl_init(cfg);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.autodrain = 0;
    srv.keep_msgs = 1;
    srv.hook = reader;
    t_server_start(&srv, evpl, proto, ep, 2);

    wfd = t_raw_connect(ep);
    T_OK(wfd >= 0);
    T_PUMP(evpl, srv.n == 1 && srv.conns[0].connected, 5000);
    s = &srv.conns[0];
    /* map the first slab before measuring: under ASan its shadow (1/8 of
     * the slab) is touched when it is poisoned */
    {
        struct evpl_iovec iov;

        T_EQ(evpl_iovec_alloc(evpl, 4096, 0, 1, 0, &iov), 1);
        evpl_iovec_release(evpl, &iov);
    }
    base_bufs = t_metric("evpl_allocator_buffers_in_use");
    base_rss = t_rss_bytes();
    T_EQ(pthread_create(&th, NULL, writer, NULL), 0);

    /* the application does not read: run until the writer stalls */
    last = 0;
    stall_start = t_now_ns();
    deadline = t_now_ns() + 20ull * 1000000000ull;
    for (;;) {
        uint64_t w = atomic_load(&written);

        evpl_continue(evpl);
        if (w != last) {
            last = w;
            stall_start = t_now_ns();
        } else if (t_now_ns() - stall_start > 300ull * 1000000ull) {
            break; /* no progress for 300 ms */
        }
        T_OK(t_now_ns() < deadline);
        if (w >= TOTAL) {
            T_FAIL("the peer pushed all %llu bytes: no back-pressure", (unsigned long long) TOTAL);
        }
    }
    buffered = evpl_peek(evpl, s->bind, peekbuf, sizeof(peekbuf));
    fprintf(stderr,
            "stalled: peer wrote %llu, bind buffers %d, buffers in use +%lld, rss +%llu KiB\n",
            (unsigned long long) last, buffered,
            (long long) (t_metric("evpl_allocator_buffers_in_use") - base_bufs),
            (unsigned long long) ((t_rss_bytes() - base_rss) >> 10));
    /* bounded: the limit plus at most one read budget (a few MiB) */
    T_LE(buffered, 4 * LIMIT);
    T_LE(t_metric("evpl_allocator_buffers_in_use") - base_bufs, 4);
    /* (ThreadSanitizer's shadow memory adds several times what the
     * process touches: the buffer count above is the exact bound there) */
#ifdef __SANITIZE_THREAD__
    T_LT(t_rss_bytes() - base_rss, 128ull << 20);
#else
    T_LT(t_rss_bytes() - base_rss, 32ull << 20);
#endif
    T_EQ(s->disconnected, 0);

    /* now read: everything arrives once, in order */
    s->user = s;
    {
        struct evpl_notify n = {.notify_type = EVPL_NOTIFY_RECV_DATA};

        reader(s, &n); /* what is buffered already (no new RECV_DATA for it) */
    }
    T_PUMP(evpl, checked == TOTAL, 30000);
    pthread_join(th, NULL);
    T_EQ_U(atomic_load(&written), TOTAL);
    close(wfd);
    T_PUMP(evpl, s->disconnected, 5000);
    t_pump_for(evpl, 20);
    T_EQ_U(checked, TOTAL);
    T_EQ(s->errors, 0);

    if (!evpl_protocol_is_local(proto)) {
        /* paused, then the peer resets: DISCONNECTED with an error, now */
        static uint8_t junk[256 << 10];
        struct linger lg = {1, 0};
        struct t_conn *s2;
        uint64_t sent = 0;
        int fd = t_raw_connect(ep);

        T_OK(fd >= 0);
        T_PUMP(evpl, srv.n == 2 && srv.conns[1].connected, 5000);
        s2 = &srv.conns[1]; /* not read: no s2->user */
        T_EQ(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
        stall_start = t_now_ns();
        deadline = t_now_ns() + 20ull * 1000000000ull;
        for (;;) {
            ssize_t w = write(fd, junk, sizeof(junk));

            if (w > 0) {
                sent += (uint64_t) w;
                stall_start = t_now_ns();
            } else if (t_now_ns() - stall_start > 300ull * 1000000ull) {
                break; /* the bind paused, the socket buffers are full */
            }
            evpl_continue(evpl);
            T_OK(t_now_ns() < deadline);
        }
        T_GT(sent, LIMIT);
        T_EQ(s2->disconnected, 0);
        T_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        close(fd);
        T_PUMP(evpl, s2->disconnected, 2000);
        T_LT(s2->disconnect_status, 0);
        T_EQ(s2->errors, 0);
    }

    evpl_listener_detach(evpl, srv.binding);
    srv.binding = NULL;
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
