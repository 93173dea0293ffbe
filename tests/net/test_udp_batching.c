/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * UDP batching keeps every datagram intact: many datagrams queued in one
 * pass (runs of equal sizes that go out with UDP_SEGMENT and come back
 * coalesced by UDP_GRO, mixed with odd sizes and a second destination) all
 * arrive as separate RECV_MSGs with their own length and content, in order.
 */
/* MATRIX: datagram */
/* ALSO_MECH: io_uring */
#include "t_net.h"

#define N 600

static int got[2];
static unsigned expect_len[N];
static int order[2][N]; /* datagram indexes each receiver expects, in order */

/* runs of 10 to one destination (so UDP_SEGMENT can group them) */
static int
dest_of(int i)
{
    return (i / 10) % 2;
}

static unsigned
length_of(int i)
{
    /* runs of equal lengths with odd ones in between */
    return (i % 50 == 49) ? 1 + (unsigned) i % 7 : 100 + (unsigned) (i / 50) * 13;
}

static void
fill(char *p, int i, unsigned len)
{
    for (unsigned k = 0; k < len; k++) {
        p[k] = (char) (i * 31 + (int) k);
    }
}

static void
recv_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    int *count = priv;
    char buf[2048];
    int i;
    unsigned off = 0;

    if (n->notify_type != EVPL_NOTIFY_RECV_MSG) {
        return;
    }
    i = order[count == &got[1]][*count];
    T_EQ(n->recv_msg.length, expect_len[i]);
    for (unsigned k = 0; k < n->recv_msg.niov; k++) {
        memcpy(buf + off, n->recv_msg.iovec[k].data, n->recv_msg.iovec[k].length);
        off += n->recv_msg.iovec[k].length;
    }
    T_EQ(off, expect_len[i]);
    for (unsigned k = 0; k < off; k++) {
        if (buf[k] != (char) (i * 31 + (int) k)) {
            T_FAIL("datagram %d byte %u corrupted", i, k);
        }
    }
    evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
    (*count)++;
}

static void
sender_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
}

int
main(void)
{
    enum evpl_protocol_id proto = t_proto(T_NET_KIND_DATAGRAM);
    struct evpl *evpl = t_net_loop(); /* (a lost datagram must not block a pass) */
    struct evpl_endpoint *ep[3];
    struct evpl_bind *rx[2], *tx;
    char msg[2048];
    uint64_t end;

    for (int i = 0; i < 3; i++) {
        ep[i] = evpl_endpoint_create("127.0.0.1", t_free_port(SOCK_DGRAM));
    }
    rx[0] = evpl_bind(evpl, proto, ep[0], recv_notify, &got[0]);
    rx[1] = evpl_bind(evpl, proto, ep[1], recv_notify, &got[1]);
    tx = evpl_bind(evpl, proto, ep[2], sender_notify, NULL);
    T_OK(rx[0] && rx[1] && tx);

    /* batches of 100 queued within one pass each: runs of 10 to one
     * destination, equal sizes within a run except every 50th */
    {
        int n[2] = {0, 0};

        for (int i = 0; i < N; i++) {
            expect_len[i] = length_of(i);
            order[dest_of(i)][n[dest_of(i)]++] = i;
        }
    }
    for (int b = 0; b < N / 100; b++) {
        for (int i = b * 100; i < (b + 1) * 100; i++) {
            fill(msg, i, expect_len[i]);
            if (i % 4 < 2) {
                evpl_sendtoep(evpl, tx, ep[dest_of(i)], msg, expect_len[i]);
            } else {
                struct evpl_iovec v;

                T_EQ(evpl_iovec_alloc(evpl, expect_len[i], 0, 1, 0, &v), 1);
                memcpy(v.data, msg, expect_len[i]);
                evpl_sendtoepv(evpl, tx, ep[dest_of(i)], &v, 1, (int) expect_len[i],
                               EVPL_SEND_FLAG_TAKE_REF);
            }
        }
        /* let this batch drain before the next: loopback has no loss, but
         * a receive buffer overflow would */
        end = t_now_ns() + 5ull * 1000000000;
        while (got[0] + got[1] < (b + 1) * 100 && t_now_ns() < end) {
            evpl_continue(evpl);
        }
    }
    T_EQ(got[0], N / 2);
    T_EQ(got[1], N / 2);

    evpl_destroy(evpl);
    for (int i = 0; i < 3; i++) {
        evpl_endpoint_close(ep[i]);
    }
    return 0;
}
