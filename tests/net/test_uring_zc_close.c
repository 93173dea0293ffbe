/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * io_uring TCP with zero-copy sends (EVPL_URING_SEND_ZC_MIN, off by
 * default): a send parked on a peer that reads nothing and keeps the
 * connection open holds its pages in the kernel until the peer takes the
 * bytes, which it never does.  evpl_close (abortive) resets the connection
 * so that they come back: the loop's destroy then finds nothing in flight
 * and every buffer is free (it waited 5 s and leaked them, and the exit
 * leak check aborted: helper-120).  Also with the bind left open for
 * evpl_destroy to close.  And SENT counts the bytes the socket took, as
 * on socket TCP, not only those whose pages the kernel gave back (none,
 * with a peer that reads nothing).  A GLOBAL buffer, which the application
 * may release on SENT and be given again (memory.md §2), is not sent
 * zero-copy: rewritten after its SENT, it changed the bytes still waiting
 * in the kernel (helper-122).  And evpl_finish waits for the pages before
 * the close, so a finish with them out does not leak at evpl_destroy.
 */
#include "t_net.h"

static void
one_run(int close_first)
{
    static uint8_t big[4 << 20];
    enum evpl_protocol_id proto = EVPL_STREAM_IO_URING_TCP;
    struct evpl *evpl = t_net_loop();
    struct evpl_endpoint *ep = t_endpoint(proto);
    struct sockaddr_storage ss;
    socklen_t len = t_endpoint_sockaddr(ep, &ss);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), fd, one = 1;
    struct t_conn c;

    T_OK(lfd >= 0);
    T_EQ(setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    T_EQ(bind(lfd, (struct sockaddr *) &ss, len), 0);
    T_EQ(listen(lfd, 1), 0);
    t_conn_init(&c);
    c.owner = pthread_self();
    t_connect(evpl, proto, ep, &c, NULL);
    fd = accept(lfd, NULL, NULL);
    T_OK(fd >= 0);
    T_PUMP(evpl, c.connected, 5000);
    evpl_bind_request_send_notifications(evpl, c.bind);
    evpl_send(evpl, c.bind, big, sizeof(big)); /* more than the socket takes */
    t_pump_for(evpl, 200);
    T_EQ(c.disconnected, 0);
    fprintf(stderr, "SENT %llu of %zu bytes to a peer that reads nothing\n",
            (unsigned long long) c.sent_bytes, sizeof(big));
    T_GT(c.sent_bytes, 0);
    T_LT(c.sent_bytes, sizeof(big));
    if (close_first) {
        evpl_close(evpl, c.bind);
        T_PUMP(evpl, c.disconnected, 5000);
    }
    evpl_destroy(evpl);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), 0);
    close(fd); /* (the peer is still there: only the reset freed the pages) */
    close(lfd);
    t_conn_free(&c);
    evpl_endpoint_close(ep);
} /* one_run */

/* A GLOBAL buffer sent without TAKE_REF, released on its SENT and taken
 * again and overwritten, while most of it still waits in the kernel: the
 * peer must read the original bytes. */
static void
global_reuse(void)
{
    enum evpl_protocol_id proto = EVPL_STREAM_IO_URING_TCP;
    struct evpl *evpl = t_net_loop();
    struct evpl_endpoint *ep = t_endpoint(proto);
    struct sockaddr_storage ss;
    socklen_t len = t_endpoint_sockaddr(ep, &ss);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), fd, one = 1, small = 16384;
    struct evpl_iovec g, again;
    struct t_conn c;
    unsigned char *back;
    size_t got = 0, glen;

    T_OK(lfd >= 0);
    T_EQ(setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    T_EQ(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    T_EQ(bind(lfd, (struct sockaddr *) &ss, len), 0);
    T_EQ(listen(lfd, 1), 0);
    t_conn_init(&c);
    c.owner = pthread_self();
    t_connect(evpl, proto, ep, &c, NULL);
    fd = accept(lfd, NULL, NULL);
    T_OK(fd >= 0);
    T_PUMP(evpl, c.connected, 5000);
    evpl_bind_request_send_notifications(evpl, c.bind);
    evpl_iovec_alloc_global(evpl, &g);
    T_OK(g.data != NULL);
    glen = g.length;
    t_pattern_fill(41, 0, g.data, glen);
    evpl_sendv(evpl, c.bind, &g, 1, glen, 0);
    T_PUMP(evpl, c.sent_bytes > 0, 5000);
    t_pump_for(evpl, 50);
    /* SENT: released, then given out again and overwritten */
    evpl_iovec_release(evpl, &g);
    evpl_iovec_alloc_global(evpl, &again);
    T_OK(again.data != NULL);
    memset(again.data, 0xee, again.length);
    /* now the peer reads all of it */
    back = malloc(glen);
    T_OK(back != NULL);
    T_EQ(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    for (uint64_t end = t_now_ns() + 10000000000ull; got < glen && t_now_ns() < end;) {
        ssize_t n = read(fd, back + got, glen - got);

        if (n > 0) {
            got += (size_t) n;
        } else {
            t_pump_for(evpl, 1);
        }
    }
    T_EQ_U(got, glen);
    T_EQ(t_pattern_check(41, 0, back, glen), -1);
    free(back);
    evpl_iovec_release(evpl, &again);
    evpl_close(evpl, c.bind);
    T_PUMP(evpl, c.disconnected, 5000);
    evpl_destroy(evpl);
    close(fd);
    close(lfd);
    t_conn_free(&c);
    evpl_endpoint_close(ep);
} /* global_reuse */

/* evpl_finish while the pages are out, the peer reading nothing, then the
 * loop goes: nothing may be left behind */
static void
finish_then_destroy(void)
{
    static uint8_t big[4 << 20];
    enum evpl_protocol_id proto = EVPL_STREAM_IO_URING_TCP;
    struct evpl *evpl = t_net_loop();
    struct evpl_endpoint *ep = t_endpoint(proto);
    struct sockaddr_storage ss;
    socklen_t len = t_endpoint_sockaddr(ep, &ss);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), fd, one = 1;
    struct t_conn c;

    T_OK(lfd >= 0);
    T_EQ(setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    T_EQ(bind(lfd, (struct sockaddr *) &ss, len), 0);
    T_EQ(listen(lfd, 1), 0);
    t_conn_init(&c);
    c.owner = pthread_self();
    t_connect(evpl, proto, ep, &c, NULL);
    fd = accept(lfd, NULL, NULL);
    T_OK(fd >= 0);
    T_PUMP(evpl, c.connected, 5000);
    evpl_send(evpl, c.bind, big, sizeof(big));
    t_pump_for(evpl, 200);
    evpl_finish(evpl, c.bind);
    t_pump_for(evpl, 100);
    T_EQ(c.disconnected, 0); /* (the bytes wait for a reader) */
    evpl_destroy(evpl);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), 0);
    close(fd);
    close(lfd);
    t_conn_free(&c);
    evpl_endpoint_close(ep);
} /* finish_then_destroy */

int
main(void)
{
    t_net_guard(60);
    setenv("EVPL_URING_SEND_ZC_MIN", "1", 1); /* read at the first send */
    evpl_init(NULL);
    if (!evpl_protocol_available(EVPL_STREAM_IO_URING_TCP)) {
        T_SKIP("io_uring TCP unavailable");
    }
    one_run(1);
    one_run(0);
    global_reuse();
    finish_then_destroy();
    return 0;
}
