/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Bytes a peer sent before closing stay readable until DISCONNECTED
 * returns: a receiver that leaves data buffered (it reads only when it has
 * room, as the HTTP module's paused readers do) drains all of it in its
 * DISCONNECTED callback; after the callback nothing is left to leak.
 * Over every stream protocol.
 */
/* MATRIX: stream */
#include "t_net.h"

#define TOTAL (256u * 1024)

static size_t drained;
static int pattern_ok = 1;

static void
drain_at_end(struct t_conn *c, struct evpl_notify *n)
{
    if (n->notify_type == EVPL_NOTIFY_DISCONNECTED) {
        char buf[8192];
        int got;

        while ((got = evpl_recv(c->evpl, c->bind, buf, sizeof(buf), 0)) > 0) {
            if (!t_pattern_check(7, drained, buf, (size_t) got)) {
                pattern_ok = 0;
            }
            drained += (size_t) got;
        }
    }
} /* drain_at_end */

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv = {0};
    struct t_conn cl;
    static char data[TOTAL];

    t_net_guard(60);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    srv.autodrain = 0;
    srv.keep_msgs = 1; /* (keeps t_server_start from turning autodrain on) */
    srv.hook = drain_at_end;
    t_server_start(&srv, evpl, proto, ep, 2);
    t_connect(evpl, proto, ep, &cl, NULL);
    T_PUMP(evpl, cl.connected && srv.n == 1 && srv.conns[0].connected, 5000);
    t_pattern_fill(7, 0, data, sizeof(data));
    evpl_send(evpl, cl.bind, data, sizeof(data));
    evpl_finish(evpl, cl.bind);
    T_PUMP(evpl, srv.conns[0].disconnected && cl.disconnected, 10000);
    T_EQ(srv.conns[0].nrecv_data > 0, 1);
    T_EQ(drained, (size_t) TOTAL);
    T_EQ(pattern_ok, 1);
    fprintf(stderr, "ok: %zu bytes read during DISCONNECTED\n", drained);
    t_server_stop(&srv);
    t_conn_free(&cl);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
