/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A reader paused for back-pressure, and a peer that ends the stream right
 * behind its data (evpl_finish in the pass that queued it).  On TCP the
 * EOF waits in the socket behind the bytes not read, so the paused bind
 * stays open until the application drains it, outside any callback; then
 * it gets every byte and DISCONNECTED(0).  net.md §14 statement 29 (data
 * not consumed remains available to a later evpl_recv), DESIGN §9.3.  The
 * in-process transport and TLS (both record layers) ended the paused bind
 * at once, its data readable only inside DISCONNECTED (helper-106).
 */
/* MATRIX: stream */
/* ALSO_MECH: io_uring */
#include "t_net.h"

#define LIMIT (1u << 20)
#define SEED  0x9a05

static uint64_t checked;

/* once the application drains: what comes in is read as it comes (also
 * inside DISCONNECTED: what the last read brought with the end) */
static void
reader(struct t_conn *c, struct evpl_notify *n)
{
    if (c->user &&
        (n->notify_type == EVPL_NOTIFY_RECV_DATA || n->notify_type == EVPL_NOTIFY_DISCONNECTED)) {
        t_recv_pattern(c->evpl, c->bind, SEED, &checked);
    }
} /* reader */

int
main(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c, *s;
    static uint8_t data[LIMIT + (64u << 10)];
    const uint64_t total = sizeof(data);

    t_net_guard(60);
    evpl_global_config_set_stream_recv_limit(cfg, LIMIT);
    evpl_init(cfg);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.autodrain = 0; /* the application does not read */
    srv.keep_msgs = 1;
    srv.hook = reader;
    t_server_start(&srv, evpl, proto, ep, 1);
    t_conn_init(&c);
    t_connect(evpl, proto, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 10000);
    s = &srv.conns[0];

    /* a little over the limit, then the end, in one pass */
    t_pattern_fill(SEED, 0, data, total);
    evpl_send(evpl, c.bind, data, (unsigned int) total);
    evpl_finish(evpl, c.bind);
    T_PUMP(evpl, c.disconnected, 10000);
    t_pump_for(evpl, 300);
    if (s->disconnected) {
        T_FAIL("the paused bind ended with %llu bytes unread (status %d)",
               (unsigned long long) (total - checked), s->disconnect_status);
    }
    T_OK(evpl_bind_is_closing(s->bind) == 0);

    /* the application drains, outside any callback: every byte, then the end */
    {
        uint64_t deadline = t_now_ns() + 10000000000ull;

        s->user = s;
        while (!s->disconnected) {
            t_recv_pattern(evpl, s->bind, SEED, &checked);
            evpl_continue(evpl);
            T_OK(t_now_ns() < deadline);
        }
    }
    T_EQ_U(checked, total);
    T_EQ(s->disconnect_status, 0);
    T_EQ(c.errors + s->errors, 0);
    fprintf(stderr, "ok: %llu bytes read after the peer's end, then DISCONNECTED(0)\n",
            (unsigned long long) checked);

    evpl_listener_detach(evpl, srv.binding);
    srv.binding = NULL;
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    t_conn_free(&c);
    return 0;
}
