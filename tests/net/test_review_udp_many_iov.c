/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Review regression: a datagram made of more iovecs than udp_flush's iovec
 * array (IOV_CAP = 1024) made the batch loop build zero messages, call
 * sendmmsg(…, 0) (returns 0) and spin forever inside one evpl_continue.
 * Such a datagram must be dropped (or sent) and the queue must move on.
 */
/* MATRIX: datagram */
#include "t_net.h"

static int
has_msg(struct t_conn *c, unsigned int len)
{
    for (int i = 0; i < c->nmsg_len; i++) {
        if (c->msg_len[i] == len) {
            return 1;
        }
    }
    return 0;
}

int
main(void)
{
    enum { NIOV = 1100 };
    static struct evpl_iovec iov[NIOV];
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct evpl_bind *b;
    struct t_conn c;
    enum evpl_protocol_id proto;

    t_net_guard(20);
    proto = t_proto(T_NET_KIND_DATAGRAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    t_conn_init(&c);
    c.owner = pthread_self();
    b = evpl_bind(evpl, proto, ep, t_conn_notify, &c);
    T_OK(b != NULL);
    c.bind = b;
    c.evpl = evpl;

    for (int i = 0; i < NIOV; i++) {
        T_EQ(evpl_iovec_alloc(evpl, 1, 0, 1, 0, &iov[i]), 1);
        *(char *) iov[i].data = 'x';
    }
    evpl_sendtoep(evpl, b, ep, "before", 6);
    evpl_sendtoepv(evpl, b, ep, iov, NIOV, NIOV, EVPL_SEND_FLAG_TAKE_REF);
    evpl_sendtoep(evpl, b, ep, "after!!", 7);

    /* hangs inside evpl_continue before the fix (the alarm fires) */
    T_PUMP(evpl, has_msg(&c, 6) && has_msg(&c, 7), 5000);
    T_EQ(c.errors, 0);

    evpl_close(evpl, b);
    T_PUMP(evpl, c.disconnected, 5000);
    t_conn_free(&c);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
