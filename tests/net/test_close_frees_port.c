/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A closed datagram bind gives its port back (net.md §6: at the end of the
 * pass the transport is shut down, socket closed), also when it is closed
 * in the pass that sent its last datagram: by evpl_finish right after the
 * send, and by evpl_close from the SENT notification.  Once DISCONNECTED
 * has arrived, a new bind on the same endpoint succeeds and receives.
 *
 * On a loop waiting on io_uring, the socket's readiness poll used to be
 * removed with a poll-remove request, which the kernel refuses (-EALREADY)
 * while a wake-up of that poll is queued (the write space of the datagram
 * just sent): the poll stayed armed, kept the socket alive and bound, and
 * the rebind failed until evpl_destroy.
 */
/* MATRIX: datagram */
/* ALSO_MECH: io_uring */
#include "t_net.h"

static struct evpl *evpl;
static enum evpl_protocol_id proto;

static void
close_on_sent(struct t_conn *c, struct evpl_notify *n)
{
    if (n->notify_type == EVPL_NOTIFY_SENT) {
        evpl_close(c->evpl, c->bind);
    }
}

static void
dbind(struct evpl_endpoint *e, struct t_conn *c)
{
    t_conn_init(c);
    c->bind = evpl_bind(evpl, proto, e, t_conn_notify, c);
    T_OK(c->bind != NULL);
    c->evpl = evpl;
}

/* round: 0 = evpl_finish after the send, 1 = evpl_close from SENT */
static void
one_round(struct evpl_endpoint *epa, struct evpl_endpoint *epb, int round)
{
    struct t_conn a, b, again;

    dbind(epa, &a);
    dbind(epb, &b);
    if (round == 1) {
        evpl_bind_request_send_notifications(evpl, b.bind);
        b.hook = close_on_sent;
    }
    t_pump_for(evpl, 10);

    evpl_sendtoep(evpl, b.bind, epa, "hello", 5);
    if (round == 0) {
        evpl_finish(evpl, b.bind);
    }
    T_PUMP(evpl, b.disconnected && a.nrecv_msg == 1, 5000);
    T_EQ(b.disconnect_status, 0);

    /* the port is free again, and the new bind is the one that receives */
    dbind(epb, &again);
    evpl_sendtoep(evpl, a.bind, epb, "again", 5);
    T_PUMP(evpl, again.nrecv_msg == 1, 5000);
    T_EQ((int) again.rxlen, 5);
    T_OK(memcmp(again.rx, "again", 5) == 0);

    t_close_pair(evpl, &a, &again);
    t_conn_free(&b);
}

int
main(void)
{
    struct evpl_endpoint *epa, *epb;

    t_net_guard(60);
    proto = t_proto(T_NET_KIND_DATAGRAM);
    evpl = t_net_loop();
    epa = t_endpoint(proto);
    epb = t_endpoint(proto);

    for (int i = 0; i < 20; i++) {
        one_round(epa, epb, i & 1);
    }
    evpl_destroy(evpl);
    return 0;
}
