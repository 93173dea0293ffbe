/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A bind that does not read, with small buffers (buffer_size 4 KiB), so
 * that receiving runs out of buffer memory while the bind is paused for
 * back-pressure; then the peer resets.  net.md §6 (peer-initiated close)
 * and BEHAVIOUR.md: a paused bind whose peer resets gets DISCONNECTED
 * with an error at once, without the application reading.  io_uring TCP
 * missed the reset when its receive had ended for want of buffers while
 * the bind was paused: nothing watched the socket until the application
 * read again (helper-103).  Several connections, each its own peer.
 */
/* MATRIX: stream */
/* MATRIX_ONLY: STREAM_SOCKET_TCP STREAM_IO_URING_TCP */
/* ALSO_MECH: io_uring */
#include "t_net.h"

enum { NCONN = 4 };

int
main(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    static uint8_t junk[256 << 10];
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    int fds[NCONN];
    uint64_t sent[NCONN] = {0}, stall_start, deadline;

    t_net_guard(60);
    evpl_global_config_set_buffer_size(cfg, 4096);
    evpl_global_config_set_stream_recv_limit(cfg, 256 << 10); /* (pauses sooner) */
    evpl_init(cfg);
    proto = t_proto(T_NET_KIND_STREAM);
    if (proto != EVPL_STREAM_SOCKET_TCP && proto != EVPL_STREAM_IO_URING_TCP) {
        T_SKIP("a TCP reset from a raw peer is what is tested");
    }
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.autodrain = 0; /* the application reads nothing */
    srv.keep_msgs = 1; /* (else t_server_start drains) */
    t_server_start(&srv, evpl, proto, ep, NCONN);
    for (int i = 0; i < NCONN; i++) {
        fds[i] = t_raw_connect(ep);
        T_OK(fds[i] >= 0);
        T_EQ(fcntl(fds[i], F_SETFL, O_NONBLOCK), 0);
    }
    T_PUMP(evpl, srv.n == NCONN, 5000);

    /* every peer writes until it can write no more: the binds pause */
    stall_start = t_now_ns();
    deadline = t_now_ns() + 20ull * 1000000000ull;
    for (;;) {
        for (int i = 0; i < NCONN; i++) {
            ssize_t w = write(fds[i], junk, sizeof(junk));

            if (w > 0) {
                sent[i] += (uint64_t) w;
                stall_start = t_now_ns();
            }
        }
        if (t_now_ns() - stall_start > 300ull * 1000000ull) {
            break;
        }
        evpl_continue(evpl);
        T_OK(t_now_ns() < deadline);
    }
    for (int i = 0; i < NCONN; i++) {
        T_GT(sent[i], 0);
        T_EQ(srv.conns[i].disconnected, 0);
    }

    /* the peers reset; the binds end without the application reading */
    for (int i = 0; i < NCONN; i++) {
        struct linger lg = {1, 0};

        T_EQ(setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        close(fds[i]);
    }
    for (int i = 0; i < NCONN; i++) {
        T_PUMP(evpl, srv.conns[i].disconnected, 2000);
        T_LT(srv.conns[i].disconnect_status, 0);
        T_EQ(srv.conns[i].errors, 0);
    }
    fprintf(stderr,
            "ok: %d paused binds ended by their peers' resets (peers wrote %llu KiB "
            "each at least)\n",
            NCONN, (unsigned long long) (sent[0] >> 10));

    evpl_listener_detach(evpl, srv.binding);
    srv.binding = NULL;
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
