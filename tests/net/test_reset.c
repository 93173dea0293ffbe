/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A peer that resets in the middle of a framed message (issue item (b)),
 * over every stream protocol: a raw socket sends whole frames then part of
 * one (inside the body, and inside the header) and aborts (TCP: SO_LINGER
 * {1, 0} -> RST; AF_UNIX: close).  The segmented bind gets the whole frames,
 * no RECV_MSG for the partial one, exactly one DISCONNECTED (TCP: with a
 * negative errno), and nothing leaks.  net.md §14 statements 4, 31, 33.
 */
/* MATRIX: stream */
/* ALSO_MECH: io_uring */
#include "t_net.h"

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    int64_t base;

    t_net_guard(30);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    t_server_start_framed(&srv, evpl, proto, ep, 8);
    base = -1;

    for (int round = 0; round < 4; round++) {
        struct t_conn *s;
        uint8_t frame[3000];
        int fd = t_raw_connect(ep);
        int partial = round % 2 ? 2 : 1500; /* cut in the header / the body */
        int whole = round < 2 ? 3 : 0;

        T_OK(fd >= 0);
        T_PUMP(evpl, srv.n == round + 1 && srv.conns[round].connected, 5000);
        s = &srv.conns[round];
        if (base < 0) {
            /* after the first connection: a transport may keep a pool of
             * receive space (io_uring's provided buffers) from then on */
            t_pump_for(evpl, 10);
            base = t_metric("evpl_allocator_buffers_in_use");
        }
        t_put_be32(frame, sizeof(frame));
        t_pattern_fill((uint64_t) round, 0, frame + T_HDR, sizeof(frame) - T_HDR);
        for (int i = 0; i < whole; i++) {
            t_write_all(fd, frame, sizeof(frame));
        }
        t_write_all(fd, frame, (size_t) partial);
        if (!evpl_protocol_is_local(proto)) {
            struct linger lg = {1, 0};

            T_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
        }
        close(fd);
        T_PUMP(evpl, s->disconnected, 5000);
        t_pump_for(evpl, 30);
        T_EQ(s->disconnected, 1);
        T_EQ(s->cb_after_disconnect, 0);
        /* whole frames before the reset may or may not have been read
         * before it (an RST discards unread kernel data); the partial
         * frame is never delivered */
        T_LE(s->nrecv_msg, whole);
        for (int i = 0; i < s->nrecv_msg; i++) {
            T_EQ(s->msg_len[i], sizeof(frame));
            T_EQ(t_pattern_check((uint64_t) round, 0, s->rx + i * sizeof(frame) + T_HDR,
                                 sizeof(frame) - T_HDR),
                 -1);
        }
        if (!evpl_protocol_is_local(proto)) {
            T_LT(s->disconnect_status, 0); /* a reset is an error */
        } else {
            T_EQ(s->nrecv_msg, whole); /* AF_UNIX close keeps the data */
        }
        T_EQ(s->errors, 0);
    }
    /* nothing held on to: the partial frames were freed */
    T_LE(t_metric("evpl_allocator_buffers_in_use"), base + 1);

    evpl_listener_detach(evpl, srv.binding);
    srv.binding = NULL;
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0; /* and the exit-time leak check */
}
