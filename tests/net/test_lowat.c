/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A segmented bind waiting for a long message sets a receive low-water
 * mark (SO_RCVLOWAT) of at most the bytes still missing, so it is woken
 * once for a big piece instead of per packet.  It must never stall: the
 * rest of a 300 KB message trickling in as 1000-byte writes, then a tail
 * shorter than any mark, then a small message right behind it, and a long
 * message cut short by the peer closing, all arrive (or end) promptly.
 */
/* MATRIX: stream */
#include "t_net.h"

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn *s;
    static uint8_t msg[300000];
    uint8_t small[T_HDR + 10];
    int fd;

    t_net_guard(60);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    t_server_start_framed(&srv, evpl, proto, ep, 4);

    fd = t_raw_connect(ep); /* skips for TLS: a raw peer cannot speak it */
    T_PUMP(evpl, srv.n == 1 && srv.conns[0].connected, 5000);
    s = &srv.conns[0];

    t_put_be32(msg, sizeof(msg));
    t_pattern_fill(1, 0, msg + T_HDR, sizeof(msg) - T_HDR);
    t_put_be32(small, sizeof(small));
    memset(small + T_HDR, 7, sizeof(small) - T_HDR);

    /* header and a first piece, then the rest in 1000-byte writes while
     * the loop runs between them (each write alone is below any mark) */
    t_write_all(fd, msg, 10000);
    t_pump_for(evpl, 20);
    for (size_t off = 10000; off < sizeof(msg) - 500; off += 1000) {
        size_t n = sizeof(msg) - 500 - off < 1000 ? sizeof(msg) - 500 - off : 1000;

        t_write_all(fd, msg + off, n);
        evpl_continue(evpl);
    }
    /* the last 500 bytes together with a small message */
    {
        uint8_t tail[500 + sizeof(small)];

        memcpy(tail, msg + sizeof(msg) - 500, 500);
        memcpy(tail + 500, small, sizeof(small));
        t_write_all(fd, tail, sizeof(tail));
    }
    T_PUMP(evpl, s->nrecv_msg == 2, 5000);

    /* a long message the peer abandons: EOF must still end the bind */
    t_write_all(fd, msg, 200000);
    t_pump_for(evpl, 20);
    close(fd);
    T_PUMP(evpl, s->disconnected == 1, 5000);
    T_EQ(s->nrecv_msg, 2);

    evpl_listener_detach(evpl, srv.binding);
    srv.binding = NULL;
    evpl_destroy(evpl);
    t_server_stop(&srv);
    evpl_endpoint_close(ep);
    return 0;
}
