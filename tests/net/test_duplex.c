/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Randomized full duplex over every stream protocol (issue item (a)): both
 * ends send framed messages of 1 B .. 4 MiB payload (log-uniform sizes),
 * mixing evpl_send, evpl_sendv and evpl_sendv with TAKE_REF, header and
 * payload in one or in separate iovecs; both receive through a segment
 * callback and check every byte against a PRNG keyed by (side, index).
 * net.md §14 statements 22, 31, 34, 36.
 */
/* MATRIX: stream */
/* ALSO_MECH: io_uring */
#include "t_net.h"

#define NMSG    300
#define MAX_PAY (4u << 20)

struct side {
    int id;         /* 0 client, 1 server */
    int next_send;  /* index of the next message to send */
    int next_recv;  /* index expected next from the peer */
    uint64_t bytes; /* payload bytes verified */
    struct t_conn *conn;
};

static struct side sides[2];
static struct evpl *evpl;

static uint32_t
payload_len(int side, int i)
{
    uint64_t r = t_mix64(((uint64_t) side << 32) ^ (uint64_t) i ^ 0x5eed);
    unsigned int bits = (unsigned int) (r % 23); /* 2^0 .. 2^22 */
    uint32_t len = 1u + (uint32_t) ((r >> 8) % (1ull << bits));

    if (i == 3) {
        len = MAX_PAY; /* the extremes appear at least once */
    }
    if (i == 4) {
        len = 1;
    }
    return len > MAX_PAY ? MAX_PAY : len;
}

static uint64_t
seed(int side, int i)
{
    return ((uint64_t) side << 40) | (uint64_t) i;
}

static void
on_msg(struct t_conn *c, struct evpl_notify *n)
{
    struct side *me = c->user;
    int peer = !me->id;
    uint32_t want, got = 0;
    uint64_t off = 0;
    uint8_t hdr[T_HDR];

    if (n->notify_type != EVPL_NOTIFY_RECV_MSG) {
        return;
    }
    want = payload_len(peer, me->next_recv);
    if (n->recv_msg.length != want + T_HDR) {
        T_FAIL("side %d message %d: length %u, expected %u", me->id, me->next_recv,
               n->recv_msg.length, want + T_HDR);
    }
    /* header bytes may straddle iovecs */
    for (unsigned i = 0; i < n->recv_msg.niov; i++) {
        const uint8_t *p = n->recv_msg.iovec[i].data;
        uint32_t len = n->recv_msg.iovec[i].length;

        while (len && got < T_HDR) {
            hdr[got++] = *p++;
            len--;
        }
        if (len) {
            int64_t bad = t_pattern_check(seed(peer, me->next_recv), off, p, len);

            if (bad >= 0) {
                T_FAIL("side %d message %d: byte %llu differs", me->id, me->next_recv,
                       (unsigned long long) (off + (uint64_t) bad));
            }
            off += len;
        }
    }
    T_EQ(t_get_be32(hdr), want + T_HDR);
    T_EQ_U(off, want);
    me->bytes += want;
    me->next_recv++;
    evpl_iovecs_release(c->evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
}

/* Queue message i of side s in one of several forms. */
static void
send_msg(struct side *s)
{
    int i = s->next_send++;
    uint32_t len = payload_len(s->id, i);
    uint32_t total = len + T_HDR;
    struct evpl_bind *b = s->conn->bind;
    int form = (int) (t_mix64(seed(s->id, i) ^ 77) % 4);

    if (form == 0) {
        /* copy form, one buffer */
        uint8_t *m = malloc(total);

        t_put_be32(m, total);
        t_pattern_fill(seed(s->id, i), 0, m + T_HDR, len);
        evpl_send(evpl, b, m, total);
        free(m);
    } else if (form == 1) {
        /* header copied, payload as iovecs without TAKE_REF */
        uint8_t h[T_HDR];
        struct evpl_iovec iov[8];
        int n;
        uint64_t off = 0;

        t_put_be32(h, total);
        evpl_send(evpl, b, h, T_HDR);
        n = evpl_iovec_alloc(evpl, len, 0, 8, 0, iov);
        T_GE(n, 1);
        for (int k = 0; k < n; k++) {
            t_pattern_fill(seed(s->id, i), off, iov[k].data, iov[k].length);
            off += iov[k].length;
        }
        evpl_sendv(evpl, b, iov, n, (int) len, 0);
        evpl_iovecs_release(evpl, iov, n);
    } else {
        /* header and payload in one iovec array, TAKE_REF (form 2) or not
         * (form 3); one spare iovec past length (ignored / released) */
        struct evpl_iovec iov[10];
        int n;
        uint64_t off = 0;

        T_EQ(evpl_iovec_alloc(evpl, T_HDR, 0, 1, 0, &iov[0]), 1);
        t_put_be32(iov[0].data, total);
        n = evpl_iovec_alloc(evpl, len, 0, 8, 0, &iov[1]);
        T_GE(n, 1);
        for (int k = 1; k <= n; k++) {
            t_pattern_fill(seed(s->id, i), off, iov[k].data, iov[k].length);
            off += iov[k].length;
        }
        T_EQ(evpl_iovec_alloc(evpl, 64, 0, 1, 0, &iov[n + 1]), 1);
        if (form == 2) {
            evpl_sendv(evpl, b, iov, n + 2, (int) total, EVPL_SEND_FLAG_TAKE_REF);
        } else {
            evpl_sendv(evpl, b, iov, n + 2, (int) total, 0);
            evpl_iovecs_release(evpl, iov, n + 2);
        }
    }
}

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c;
    uint64_t deadline;

    t_net_guard(60);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);

    memset(&srv, 0, sizeof(srv));
    srv.segment = t_segment_be32;
    srv.hook = on_msg;
    srv.user = &sides[1];
    t_server_start(&srv, evpl, proto, ep, 1);
    t_connect(evpl, proto, ep, &c, t_segment_be32);
    c.keep_msgs = 0;
    c.hook = on_msg;
    c.user = &sides[0];
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 5000);
    srv.conns[0].keep_msgs = 0;
    sides[0].id = 0;
    sides[0].conn = &c;
    sides[1].id = 1;
    sides[1].conn = &srv.conns[0];

    /* both sides keep sending while receiving */
    deadline = t_now_ns() + 40ull * 1000000000ull;
    while (sides[0].next_recv < NMSG || sides[1].next_recv < NMSG) {
        for (int s = 0; s < 2; s++) {
            /* a few messages per pass, a bounded number in flight */
            for (int k = 0; k < 3 && sides[s].next_send < NMSG &&
                            sides[s].next_send - sides[!s].next_recv < 20;
                 k++) {
                send_msg(&sides[s]);
            }
        }
        evpl_continue(evpl);
        if (t_now_ns() > deadline) {
            T_FAIL("timed out: client got %d, server got %d of %d", sides[0].next_recv,
                   sides[1].next_recv, NMSG);
        }
    }
    t_pump_for(evpl, 20);
    T_EQ(sides[0].next_recv, NMSG);
    T_EQ(sides[1].next_recv, NMSG);
    T_EQ(c.nrecv_data + srv.conns[0].nrecv_data, 0);
    fprintf(stderr, "verified %llu + %llu payload bytes\n", (unsigned long long) sides[0].bytes,
            (unsigned long long) sides[1].bytes);

    evpl_close(evpl, c.bind);
    T_PUMP(evpl, c.disconnected && srv.conns[0].disconnected, 5000);
    T_EQ(c.errors + srv.conns[0].errors, 0);
    evpl_listener_detach(evpl, srv.binding);
    srv.binding = NULL;
    t_server_stop(&srv);
    t_conn_free(&c);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
