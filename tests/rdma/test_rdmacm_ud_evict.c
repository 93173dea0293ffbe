/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: vm rdma */
/*
 * EVPL_DATAGRAM_RDMACM_UD: a bind's table of known addresses is bounded,
 * and a full table makes room by forgetting the entry used longest ago
 * (docs/BEHAVIOUR.md).  EVPL_RDMACM_UD_PEERS=8 makes the table small:
 *
 *  - bind a sends to 10 bound destinations, one after another, then to
 *    the first again: each receives (the first was forgotten and is
 *    resolved again);
 *  - bind a sends to 12 destinations nobody is bound to, one after
 *    another (each dropped and counted in SENT): the table fills with
 *    them;
 *  - meanwhile s, a sender a has learned, sends to a before each new
 *    destination: it stays known, so every one of its datagrams reaches a
 *    with its address (recv_msg.addr), and a's answer to that address
 *    reaches s;
 *  - a fresh destination b, after all that, still receives what a sends
 *    (with a table that could not make room it was dropped);
 *  - a fresh sender t is learned (its datagram carries its address) once
 *    the table is more than half full.
 *
 * Needs an RDMA device: soft-RoCE in the test VM (tests/vm); skips (77)
 * elsewhere.
 */
#include "../net/t_net.h"

#define NOWHERE 12
#define DEST    10

static struct evpl *evpl;
static int no_addr; /* datagrams a received without the sender's address */

/* Bind a fresh endpoint.  Its port was free for TCP, but the CM has its
 * own port space, which another RDMA test running at the same time may
 * hold that port in (EADDRINUSE, seen once in CI): then another port. */
static struct evpl_bind *
ubind(struct evpl_endpoint **e, struct t_conn *c)
{
    t_conn_init(c);
    c->keep_msgs = 1;
    c->evpl = evpl;
    for (int attempt = 0; attempt < 8; attempt++) {
        c->bind = evpl_bind(evpl, EVPL_DATAGRAM_RDMACM_UD, *e, t_conn_notify, c);
        if (c->bind) {
            break;
        }
        evpl_endpoint_close(*e);
        *e = t_endpoint(EVPL_DATAGRAM_RDMACM_UD);
    }
    T_OK(c->bind != NULL);
    evpl_bind_request_send_notifications(evpl, c->bind);
    return c->bind;
}

/* a: answers every datagram to its sender's address */
static void
answer(struct t_conn *c, struct evpl_notify *n)
{
    if (n->notify_type != EVPL_NOTIFY_RECV_MSG) {
        return;
    }
    if (!n->recv_msg.addr) {
        no_addr++;
        return;
    }
    evpl_sendto(c->evpl, c->bind, n->recv_msg.addr, "ack", 3);
}

int
main(void)
{
    struct evpl_endpoint *epa, *eps, *epb, *ept, *nowhere[NOWHERE], *epd[DEST];
    struct t_conn a, s, b, t, d[DEST];

    t_net_guard(180);
    T_EQ(setenv("EVPL_RDMACM_UD_PEERS", "8", 1), 0);
    {
        struct evpl_global_config *gc = evpl_global_config_init();

        evpl_global_config_set_resolve_timeout_ms(gc, 500);
        evpl_init(gc);
    }
    if (evpl_protocol_lookup(&(enum evpl_protocol_id){0}, "DATAGRAM_RDMACM_UD") != 0) {
        fprintf(stderr, "no RDMA device: skipped\n");
        return 77;
    }
    evpl = t_net_loop();
    epa = t_endpoint(EVPL_DATAGRAM_RDMACM_UD);
    eps = t_endpoint(EVPL_DATAGRAM_RDMACM_UD);
    ubind(&epa, &a);
    a.hook = answer;
    ubind(&eps, &s);

    /* resolved destinations, more than the table holds: each reached;
     * the first, forgotten by now, is reached again */
    for (int i = 0; i < DEST; i++) {
        epd[i] = t_endpoint(EVPL_DATAGRAM_RDMACM_UD);
        ubind(&epd[i], &d[i]);
        evpl_sendtoep(evpl, a.bind, epd[i], "d", 1);
        T_PUMP(evpl, d[i].nrecv_msg == 1, 10000);
    }
    evpl_sendtoep(evpl, a.bind, epd[0], "d", 1);
    T_PUMP(evpl, d[0].nrecv_msg == 2, 10000);
    T_PUMP(evpl, a.sent_msgs == DEST + 1, 10000);
    for (int i = 0; i < DEST; i++) {
        evpl_close(evpl, d[i].bind);
        T_PUMP(evpl, d[i].disconnected, 5000);
        t_conn_free(&d[i]);
        evpl_endpoint_close(epd[i]);
    }

    for (int i = 0; i < NOWHERE; i++) {
        uint64_t sent0 = a.sent_msgs;
        int acks = s.nrecv_msg;

        /* s is heard from (and answered) before each new destination */
        evpl_sendtoep(evpl, s.bind, epa, "s", 1);
        T_PUMP(evpl, s.nrecv_msg == acks + 1, 10000);
        T_EQ(no_addr, 0);
        /* a's answer went out: SENT */
        T_PUMP(evpl, a.sent_msgs == sent0 + 1, 10000);
        nowhere[i] = t_endpoint(EVPL_DATAGRAM_RDMACM_UD);
        evpl_sendtoep(evpl, a.bind, nowhere[i], "lost", 4);
        /* dropped once its resolution fails (refused, or 1 s at most) */
        T_PUMP(evpl, a.sent_msgs == sent0 + 2, 10000);
    }
    T_EQ(a.nrecv_msg, NOWHERE);
    T_EQ_U(a.sent_msgs, DEST + 1 + 2 * NOWHERE);
    T_EQ(a.disconnected, 0);

    /* a fresh destination: room is made for it */
    epb = t_endpoint(EVPL_DATAGRAM_RDMACM_UD);
    ubind(&epb, &b);
    evpl_sendtoep(evpl, a.bind, epb, "to b", 4);
    T_PUMP(evpl, b.nrecv_msg == 1, 10000);

    /* a fresh sender, the table more than half full: learned */
    ept = t_endpoint(EVPL_DATAGRAM_RDMACM_UD);
    ubind(&ept, &t);
    evpl_sendtoep(evpl, t.bind, epa, "t", 1);
    T_PUMP(evpl, t.nrecv_msg == 1, 10000);
    T_EQ(no_addr, 0);
    T_EQ(a.nrecv_msg, NOWHERE + 1);

    /* and s, still known */
    evpl_sendtoep(evpl, s.bind, epa, "s", 1);
    T_PUMP(evpl, s.nrecv_msg == NOWHERE + 1, 10000);
    T_EQ(no_addr, 0);

    evpl_close(evpl, a.bind);
    evpl_close(evpl, s.bind);
    evpl_close(evpl, b.bind);
    evpl_close(evpl, t.bind);
    T_PUMP(evpl, a.disconnected && s.disconnected && b.disconnected && t.disconnected, 5000);
    for (int i = 0; i < NOWHERE; i++) {
        evpl_endpoint_close(nowhere[i]);
    }
    evpl_endpoint_close(epa);
    evpl_endpoint_close(eps);
    evpl_endpoint_close(epb);
    evpl_endpoint_close(ept);
    t_conn_free(&a);
    t_conn_free(&s);
    t_conn_free(&b);
    t_conn_free(&t);
    evpl_destroy(evpl);
    return 0;
}
