/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * evpl_finish against a peer that shuts down only its write side and goes
 * on reading (net.md §14 statements 9 and 10: every byte queued before the
 * finish reaches the peer, then DISCONNECTED).  The peer's EOF ends its
 * direction, not the finish:
 *  - a request and the EOF behind it arrive together; the server answers
 *    from RECV_DATA and finishes: the peer reads the whole answer;
 *  - the server queues 8 MiB and finishes; the peer half-closes after the
 *    first 64 KiB and reads on: it gets all 8 MiB, and the server's
 *    DISCONNECTED has status 0.
 * Both used to be cut short: the EOF closed the bind and dropped the queue,
 * with status 0.  And a peer that reads nothing for a while after the
 * finish still gets everything (the socket lingers until the peer has
 * acknowledged every byte).
 */
/* MATRIX: stream */
/* ALSO_MECH: io_uring */
#include "t_net.h"

#define BIG   (8u * 1024 * 1024)
#define SMALL (1u * 1024 * 1024)

static uint8_t *big;

static void
answer_and_finish(struct t_conn *c, struct evpl_notify *n)
{
    if (n->notify_type == EVPL_NOTIFY_RECV_DATA && !c->user) {
        c->user = c; /* once */
        evpl_send(c->evpl, c->bind, "response", 8);
        evpl_finish(c->evpl, c->bind);
    }
}

/* Read fd until EOF (or failure), pumping evpl between reads; bytes read. */
static size_t
read_to_eof(struct evpl *evpl, int fd, uint8_t *dst, size_t cap, size_t stop_at)
{
    size_t got = 0;
    uint64_t deadline = t_now_ns() + 10000000000ull;

    while (got < cap && t_now_ns() < deadline) {
        ssize_t n = recv(fd, dst + got, cap - got, MSG_DONTWAIT);

        if (n == 0) {
            break;
        }
        if (n > 0) {
            got += (size_t) n;
            if (stop_at && got >= stop_at) {
                break;
            }
            continue;
        }
        if (errno != EAGAIN && errno != EINTR) {
            break;
        }
        evpl_continue(evpl);
    }
    return got;
}

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv = {0};
    uint8_t *rx;
    size_t got;
    int fd;

    t_net_guard(60);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    srv.autodrain = 1;
    t_server_start(&srv, evpl, proto, ep, 4);
    rx = malloc(BIG + 1);
    big = malloc(BIG);
    T_OK(rx != NULL && big != NULL);
    t_pattern_fill(9, 0, big, BIG);

    /* a request and its EOF in one go; the answer and the finish from
     * RECV_DATA */
    srv.hook = answer_and_finish;
    fd = t_raw_connect(ep);
    T_OK(fd >= 0);
    t_write_all(fd, "request", 7);
    T_EQ(shutdown(fd, SHUT_WR), 0);
    T_PUMP(evpl, srv.n == 1 && srv.conns[0].disconnected, 5000);
    got = read_to_eof(evpl, fd, rx, BIG, 0);
    T_EQ((int) got, 8);
    T_OK(memcmp(rx, "response", 8) == 0);
    T_EQ(srv.conns[0].disconnect_status, 0);
    close(fd);

    /* 8 MiB queued and finished; the peer half-closes while it drains */
    srv.hook = NULL;
    fd = t_raw_connect(ep);
    T_OK(fd >= 0);
    T_PUMP(evpl, srv.n == 2 && srv.conns[1].connected, 5000);
    evpl_send(evpl, srv.conns[1].bind, big, BIG);
    evpl_finish(evpl, srv.conns[1].bind);
    got = read_to_eof(evpl, fd, rx, BIG + 1, 64 * 1024);
    T_OK(got >= 64 * 1024);
    T_EQ(shutdown(fd, SHUT_WR), 0);
    got += read_to_eof(evpl, fd, rx + got, BIG + 1 - got, 0);
    T_EQ((int64_t) got, (int64_t) BIG);
    T_EQ(t_pattern_check(9, 0, rx, BIG), -1);
    T_PUMP(evpl, srv.conns[1].disconnected, 5000);
    T_EQ(srv.conns[1].disconnect_status, 0);
    close(fd);

    /* a peer that reads nothing for longer than the drain's 2 s minimum
     * (its window stays full, most of the 8 MiB still in our send queue),
     * then writes something and reads: it gets every byte, then EOF (the
     * lingering socket used to be closed after 2 s, and the peer's write
     * drew a reset that threw the rest away) */
    {
        struct sockaddr_storage ss;
        socklen_t sl = t_endpoint_sockaddr(ep, &ss);
        int small = 64 * 1024;

        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        T_OK(fd >= 0);
        /* a small window, so most of the 8 MiB waits in our send queue */
        T_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
        T_EQ(connect(fd, (struct sockaddr *) &ss, sl), 0);
    }
    T_PUMP(evpl, srv.n == 3 && srv.conns[2].connected, 5000);
    /* 1 MiB: it fits in the kernel's send buffer, so the bind hands it all
     * over and closes, and the socket lingers with it */
    evpl_send(evpl, srv.conns[2].bind, big, SMALL);
    evpl_finish(evpl, srv.conns[2].bind);
    {
        uint64_t until = t_now_ns() + 2600ull * 1000000;

        while (t_now_ns() < until) {
            evpl_continue(evpl);
        }
    }
    t_write_all(fd, "late", 4);
    got = read_to_eof(evpl, fd, rx, BIG + 1, 0);
    T_EQ((int64_t) got, (int64_t) SMALL);
    T_EQ(t_pattern_check(9, 0, rx, SMALL), -1);
    T_PUMP(evpl, srv.conns[2].disconnected, 5000);
    close(fd);

    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    free(rx);
    free(big);
    return 0;
}
