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

/* Our io_uring TCP bind (c, on loop evpl) connected to a raw peer socket
 * (fd) that reads nothing unless told to; rcvbuf: the peer's, 0 default. */
struct zc_pair {
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    int lfd, fd;
    struct t_conn c;
};

static void
zc_open(struct zc_pair *z, int rcvbuf)
{
    enum evpl_protocol_id proto = EVPL_STREAM_IO_URING_TCP;
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1;

    z->evpl = t_net_loop();
    z->ep = t_endpoint(proto);
    len = t_endpoint_sockaddr(z->ep, &ss);
    z->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    T_OK(z->lfd >= 0);
    T_EQ(setsockopt(z->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    if (rcvbuf) {
        T_EQ(setsockopt(z->lfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    }
    T_EQ(bind(z->lfd, (struct sockaddr *) &ss, len), 0);
    T_EQ(listen(z->lfd, 1), 0);
    t_conn_init(&z->c);
    z->c.owner = pthread_self();
    t_connect(z->evpl, proto, z->ep, &z->c, NULL);
    z->fd = accept(z->lfd, NULL, NULL);
    T_OK(z->fd >= 0);
    T_PUMP(z->evpl, z->c.connected, 5000);
} /* zc_open */

/* after evpl_destroy(z->evpl): the peer's sockets and the rest */
static void
zc_done(struct zc_pair *z)
{
    close(z->fd);
    close(z->lfd);
    t_conn_free(&z->c);
    evpl_endpoint_close(z->ep);
} /* zc_done */

static void
one_run(int close_first)
{
    static uint8_t big[4 << 20];
    struct zc_pair z;

    zc_open(&z, 0);
    evpl_bind_request_send_notifications(z.evpl, z.c.bind);
    evpl_send(z.evpl, z.c.bind, big, sizeof(big)); /* more than the socket takes */
    t_pump_for(z.evpl, 200);
    T_EQ(z.c.disconnected, 0);
    fprintf(stderr, "SENT %llu of %zu bytes to a peer that reads nothing\n",
            (unsigned long long) z.c.sent_bytes, sizeof(big));
    T_GT(z.c.sent_bytes, 0);
    T_LT(z.c.sent_bytes, sizeof(big));
    if (close_first) {
        evpl_close(z.evpl, z.c.bind);
        T_PUMP(z.evpl, z.c.disconnected, 5000);
    }
    evpl_destroy(z.evpl);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), 0);
    zc_done(&z); /* (the peer was still there: only the reset freed the pages) */
} /* one_run */

/* A GLOBAL buffer sent without TAKE_REF, released on its SENT and taken
 * again and overwritten, while most of it still waits in the kernel: the
 * peer must read the original bytes. */
static void
global_reuse(void)
{
    struct evpl_iovec g, again;
    struct zc_pair z;
    unsigned char *back;
    size_t got = 0, glen;

    zc_open(&z, 16384);
    evpl_bind_request_send_notifications(z.evpl, z.c.bind);
    evpl_iovec_alloc_global(z.evpl, &g);
    T_OK(g.data != NULL);
    glen = g.length;
    t_pattern_fill(41, 0, g.data, glen);
    evpl_sendv(z.evpl, z.c.bind, &g, 1, glen, 0);
    T_PUMP(z.evpl, z.c.sent_bytes > 0, 5000);
    t_pump_for(z.evpl, 50);
    /* SENT: released, then given out again and overwritten */
    evpl_iovec_release(z.evpl, &g);
    evpl_iovec_alloc_global(z.evpl, &again);
    T_OK(again.data != NULL);
    memset(again.data, 0xee, again.length);
    /* now the peer reads all of it */
    back = malloc(glen);
    T_OK(back != NULL);
    T_EQ(fcntl(z.fd, F_SETFL, O_NONBLOCK), 0);
    for (uint64_t end = t_now_ns() + 10000000000ull; got < glen && t_now_ns() < end;) {
        ssize_t n = read(z.fd, back + got, glen - got);

        if (n > 0) {
            got += (size_t) n;
        } else {
            t_pump_for(z.evpl, 1);
        }
    }
    T_EQ_U(got, glen);
    T_EQ(t_pattern_check(41, 0, back, glen), -1);
    free(back);
    evpl_iovec_release(z.evpl, &again);
    evpl_close(z.evpl, z.c.bind);
    T_PUMP(z.evpl, z.c.disconnected, 5000);
    evpl_destroy(z.evpl);
    zc_done(&z);
} /* global_reuse */

/* evpl_finish while the pages are out, the peer reading nothing, then the
 * loop goes: nothing may be left behind */
static void
finish_then_destroy(void)
{
    static uint8_t big[4 << 20];
    struct zc_pair z;

    zc_open(&z, 0);
    evpl_send(z.evpl, z.c.bind, big, sizeof(big));
    t_pump_for(z.evpl, 200);
    evpl_finish(z.evpl, z.c.bind);
    t_pump_for(z.evpl, 100);
    T_EQ(z.c.disconnected, 0); /* (the bytes wait for a reader) */
    evpl_destroy(z.evpl);
    T_EQ(t_metric("evpl_allocator_buffers_in_use"), 0);
    zc_done(&z);
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
