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
 * with a peer that reads nothing).
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
    return 0;
}
