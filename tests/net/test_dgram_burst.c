/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A burst queued in one pass to a receiver on the same loop arrives whole
 * (net.md §14: one RECV_MSG per send; loopback loses nothing unless a
 * receive buffer overflows): 1000 datagrams of 64 to 1400 bytes, lengths
 * varying so that no two neighbours are grouped, each intact and in order.
 * The socket backend used to send the whole queue before its receiver read
 * anything and lost most of it (293 of 1000).
 */
/* MATRIX: datagram */
/* ALSO_MECH: io_uring */
#include "t_net.h"

#define N 1000

static int got;

static unsigned
length_of(int i)
{
    return 64 + (unsigned) ((i * 379) % 1337);
}

static void
recv_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    unsigned off = 0, len;

    if (n->notify_type != EVPL_NOTIFY_RECV_MSG) {
        return;
    }
    len = length_of(got);
    T_EQ(n->recv_msg.length, len);
    for (unsigned k = 0; k < n->recv_msg.niov; k++) {
        const unsigned char *p = n->recv_msg.iovec[k].data;

        for (unsigned j = 0; j < n->recv_msg.iovec[k].length; j++, off++) {
            if (p[j] != (unsigned char) (got * 7 + (int) off)) {
                T_FAIL("datagram %d byte %u corrupted (or out of order)", got, off);
            }
        }
    }
    T_EQ(off, len);
    evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
    got++;
}

static void
sender_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
}

int
main(void)
{
    enum evpl_protocol_id proto = t_proto(T_NET_KIND_DATAGRAM);
    struct evpl *evpl = t_net_loop();
    struct evpl_endpoint *rep, *tep;
    struct evpl_bind *rx, *tx;
    unsigned char msg[1400];
    uint64_t end;

    rep = evpl_endpoint_create("127.0.0.1", t_free_port(SOCK_DGRAM));
    tep = evpl_endpoint_create("127.0.0.1", t_free_port(SOCK_DGRAM));
    rx = evpl_bind(evpl, proto, rep, recv_notify, NULL);
    tx = evpl_bind(evpl, proto, tep, sender_notify, NULL);
    T_OK(rx && tx);
    t_pump_for(evpl, 20);

    for (int i = 0; i < N; i++) {
        unsigned len = length_of(i);

        for (unsigned k = 0; k < len; k++) {
            msg[k] = (unsigned char) (i * 7 + (int) k);
        }
        evpl_sendtoep(evpl, tx, rep, msg, len);
    }
    end = t_now_ns() + 10ull * 1000000000;
    while (got < N && t_now_ns() < end) {
        evpl_continue(evpl);
    }
    fprintf(stderr, "%d of %d datagrams sent in one pass received\n", got, N);
    T_EQ(got, N);

    evpl_destroy(evpl);
    evpl_endpoint_close(rep);
    evpl_endpoint_close(tep);
    fprintf(stderr, "PASS\n");
    return 0;
}
