/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: vm rdma */
/*
 * EVPL_DATAGRAM_RDMACM_UD (rdma.md §5) beyond the datagram matrix test:
 *
 *  - the receiver learns who sent a datagram (recv_msg.addr, which upstream
 *    leaves NULL): a server bind answers three client binds from inside its
 *    callback, and each client gets exactly its own answers, in order;
 *  - a datagram larger than one packet (the path MTU: 1024 on soft-RoCE
 *    over a 1500-byte link) is dropped at the sender and counted in SENT;
 *    the largest that fits arrives whole;
 *  - a destination that restarts (closed, bound again at its address:
 *    another queue pair) and never sends to us is reached again once its
 *    resolution is refreshed (4 x resolve_timeout_ms, at least 2 s);
 *  - a destination nobody is bound to: its datagrams are dropped (counted
 *    in SENT), the bind stays up and other destinations are not held up;
 *    once a bind there sends to us, it is reachable again at once;
 *  - evpl_finish with datagrams still waiting for their destination to be
 *    resolved delivers them, then DISCONNECTED;
 *  - evpl_close while a resolution is in flight: one DISCONNECTED, and
 *    nothing leaks (ASan's leak check in the VM);
 *  - evpl_close with datagrams in flight: the port is free by DISCONNECTED
 *    (a new bind on it, made from the callback, receives);
 *  - a destination whose host never answers (10.77.0.2: an address with
 *    no RDMA device behind it) gives up after twice resolve_timeout_ms at
 *    most: dropped, counted, the bind goes on;
 *  - a bind on port 0 reports its endpoint as given and is answered on the
 *    port the CM gave it;
 *  - a bind on a wildcard address (no RDMA device behind it) is refused.
 *
 * Needs an RDMA device: soft-RoCE in the test VM (tests/vm); skips (77)
 * elsewhere.
 */
#include "../net/t_net.h"

#define MTU 1024

static struct evpl *evpl;

/* DISCONNECTED of a bind closed with datagrams in flight: bind its
 * endpoint again at once */
static struct evpl_endpoint *rebind_ep;
static struct t_conn rebound;

static void
rebind_hook(struct t_conn *c, struct evpl_notify *n)
{
    if (n->notify_type == EVPL_NOTIFY_SENT && !evpl_bind_is_closing(c->bind)) {
        evpl_close(c->evpl, c->bind); /* (most of the burst still in flight) */
    }
    if (n->notify_type == EVPL_NOTIFY_DISCONNECTED) {
        t_conn_init(&rebound);
        rebound.keep_msgs = 1;
        rebound.evpl = evpl;
        rebound.bind = evpl_bind(evpl, EVPL_DATAGRAM_RDMACM_UD, rebind_ep, t_conn_notify, &rebound);
    }
}

/* the server: answers "ack:<what it got>" to the sender's address */
static void
answer(struct t_conn *c, struct evpl_notify *n)
{
    char r[96];
    int len;

    if (n->notify_type != EVPL_NOTIFY_RECV_MSG) {
        return;
    }
    T_OK(n->recv_msg.addr != NULL);
    len = snprintf(r, sizeof(r), "ack:%.*s", (int) n->recv_msg.length,
                   (const char *) c->rx + c->rxlen - n->recv_msg.length);
    evpl_sendto(c->evpl, c->bind, n->recv_msg.addr, r, (unsigned int) len);
}

static struct evpl_bind *
ubind(struct evpl_endpoint *e, struct t_conn *c)
{
    t_conn_init(c);
    c->owner = pthread_self();
    c->check_owner = 1;
    c->keep_msgs = 1;
    c->evpl = evpl;
    c->bind = evpl_bind(evpl, EVPL_DATAGRAM_RDMACM_UD, e, t_conn_notify, c);
    T_OK(c->bind != NULL);
    return c->bind;
}

/* the i-th message c received, as a string */
static void
msg_at(const struct t_conn *c, int i, char *out, size_t cap)
{
    size_t off = 0;

    for (int k = 0; k < i; k++) {
        off += c->msg_len[k];
    }
    snprintf(out, cap, "%.*s", (int) c->msg_len[i], (const char *) c->rx + off);
}

int
main(void)
{
    enum { NC = 3, PER = 20 };
    struct evpl_endpoint *eps, *epc[NC], *nowhere;
    struct t_conn s, cl[NC];
    static char big[MTU + 1];
    char want[96], got[96];
    enum evpl_protocol_id id;

    t_net_guard(180);
    {
        struct evpl_global_config *gc = evpl_global_config_init();

        evpl_global_config_set_resolve_timeout_ms(gc, 1000);
        evpl_init(gc);
    }
    if (evpl_protocol_lookup(&id, "DATAGRAM_RDMACM_UD") != 0) {
        fprintf(stderr, "no RDMA device: skipped\n");
        return 77;
    }
    T_EQ((int) id, (int) EVPL_DATAGRAM_RDMACM_UD);
    T_EQ(evpl_protocol_is_stream(id), 0);
    evpl = t_net_loop();

    eps = t_endpoint(id);
    ubind(eps, &s);
    s.hook = answer;
    T_EQ(evpl_bind_is_rdma(s.bind), 0);
    for (int i = 0; i < NC; i++) {
        epc[i] = t_endpoint(id);
        ubind(epc[i], &cl[i]);
        evpl_bind_request_send_notifications(evpl, cl[i].bind);
    }

    /* each client's datagrams are answered to it alone, in order */
    for (int k = 0; k < PER; k++) {
        for (int i = 0; i < NC; i++) {
            char m[32];
            int len = snprintf(m, sizeof(m), "c%d-%d", i, k);

            evpl_sendtoep(evpl, cl[i].bind, eps, m, (unsigned int) len);
        }
    }
    T_PUMP(evpl, cl[0].nrecv_msg == PER && cl[1].nrecv_msg == PER && cl[2].nrecv_msg == PER, 20000);
    t_pump_for(evpl, 50);
    T_EQ(s.nrecv_msg, NC * PER);
    for (int i = 0; i < NC; i++) {
        T_EQ(cl[i].nrecv_msg, PER);
        for (int k = 0; k < PER; k++) {
            snprintf(want, sizeof(want), "ack:c%d-%d", i, k);
            msg_at(&cl[i], k, got, sizeof(got));
            T_STR_EQ(got, want);
        }
        T_EQ_U(cl[i].sent_msgs, PER);
    }

    /* bound to port 0: it reports its endpoint as given (net.md §3), and
     * answers still find it (its requests carry the port the CM gave) */
    {
        struct evpl_endpoint *e0 = evpl_endpoint_create(t_rdma_addr(), 0);
        char str[EVPL_ADDRESS_STRLEN], want0[EVPL_ADDRESS_STRLEN];
        struct t_conn z;

        ubind(e0, &z);
        evpl_bind_get_local_address(z.bind, str, sizeof(str));
        snprintf(want0, sizeof(want0), "%s:0", t_rdma_addr());
        T_STR_EQ(str, want0);
        evpl_sendtoep(evpl, z.bind, eps, "zero", 4);
        T_PUMP(evpl, z.nrecv_msg == 1, 10000);
        msg_at(&z, 0, got, sizeof(got));
        T_STR_EQ(got, "ack:zero");
        evpl_close(evpl, z.bind);
        T_PUMP(evpl, z.disconnected, 5000);
        t_conn_free(&z);
        evpl_endpoint_close(e0);
    }
    s.hook = NULL;

    /* one packet at most: MTU bytes arrive, MTU + 1 are dropped (and
     * counted in SENT); the bind goes on */
    memset(big, 'u', sizeof(big));
    {
        int before = s.nrecv_msg;
        uint64_t msgs0 = cl[0].sent_msgs, bytes0 = cl[0].sent_bytes;

        evpl_sendtoep(evpl, cl[0].bind, eps, big, MTU + 1);
        evpl_sendtoep(evpl, cl[0].bind, eps, big, MTU);
        evpl_sendtoep(evpl, cl[0].bind, eps, "tail", 4);
        T_PUMP(evpl, s.nrecv_msg == before + 2 && cl[0].sent_msgs == msgs0 + 3, 10000);
        t_pump_for(evpl, 50);
        T_EQ(s.nrecv_msg, before + 2);
        T_EQ(s.msg_len[before], MTU);
        T_EQ(s.msg_len[before + 1], 4);
        T_EQ_U(cl[0].sent_bytes - bytes0, 2 * MTU + 1 + 4);
        T_EQ(cl[0].disconnected, 0);
    }

    /* a destination that restarts silently: w's resolution of it names
     * the old queue pair, until it is refreshed in the background */
    {
        struct evpl_endpoint *epr = t_endpoint(id), *eps2 = t_endpoint(id), *epw = t_endpoint(id);
        struct t_conn r, spare, w;

        ubind(epw, &w);
        ubind(epr, &r);
        evpl_sendtoep(evpl, w.bind, epr, "before", 6);
        T_PUMP(evpl, r.nrecv_msg == 1, 10000);
        evpl_close(evpl, r.bind);
        T_PUMP(evpl, r.disconnected, 5000);
        t_conn_free(&r);
        /* (another bind first, so the new one is unlikely to get the
         * old queue pair number back) */
        ubind(eps2, &spare);
        ubind(epr, &r);
        /* (should spare have got the old queue pair number, it receives
         * these until the refresh: UD cannot tell) */
        for (int k = 0; k < 100 && r.nrecv_msg == 0; k++) {
            evpl_sendtoep(evpl, w.bind, epr, "again", 5);
            t_pump_for(evpl, 100);
        }
        T_OK(r.nrecv_msg >= 1);
        msg_at(&r, 0, got, sizeof(got));
        T_STR_EQ(got, "again");
        T_EQ(w.disconnected, 0);
        evpl_close(evpl, r.bind);
        evpl_close(evpl, spare.bind);
        evpl_close(evpl, w.bind);
        T_PUMP(evpl, r.disconnected && spare.disconnected && w.disconnected, 5000);
        t_conn_free(&r);
        t_conn_free(&spare);
        t_conn_free(&w);
        evpl_endpoint_close(epr);
        evpl_endpoint_close(eps2);
        evpl_endpoint_close(epw);
    }

    /* nobody at that address: dropped, counted; others not held up */
    nowhere = t_endpoint(id);
    {
        int before = s.nrecv_msg;
        uint64_t msgs0 = cl[1].sent_msgs;

        for (int k = 0; k < 5; k++) {
            evpl_sendtoep(evpl, cl[1].bind, nowhere, "lost", 4);
            evpl_sendtoep(evpl, cl[1].bind, eps, "here", 4);
        }
        T_PUMP(evpl, s.nrecv_msg == before + 5, 10000);
        T_PUMP(evpl, cl[1].sent_msgs == msgs0 + 10, 60000);
        T_EQ(cl[1].disconnected, 0);
        /* and the bind still works */
        evpl_sendtoep(evpl, cl[1].bind, eps, "again", 5);
        T_PUMP(evpl, s.nrecv_msg == before + 6, 10000);
    }

    /* someone binds there after all and sends to us: at once reachable
     * again (not only after the second a failed destination waits) */
    {
        struct t_conn nb;
        int before1 = cl[1].nrecv_msg;

        ubind(nowhere, &nb);
        evpl_sendtoep(evpl, nb.bind, epc[1], "hi", 2);
        T_PUMP(evpl, cl[1].nrecv_msg == before1 + 1, 10000);
        evpl_sendtoep(evpl, cl[1].bind, nowhere, "back", 4);
        T_PUMP(evpl, nb.nrecv_msg == 1, 10000);
        evpl_close(evpl, nb.bind);
        T_PUMP(evpl, nb.disconnected, 5000);
        t_conn_free(&nb);
    }

    /* finish with datagrams waiting for a fresh destination: delivered,
     * then DISCONNECTED */
    {
        struct evpl_endpoint *epf = t_endpoint(id);
        struct t_conn f;

        ubind(epf, &f);
        for (int k = 0; k < 10; k++) {
            evpl_sendtoep(evpl, cl[2].bind, epf, "fin", 3);
        }
        evpl_finish(evpl, cl[2].bind);
        T_PUMP(evpl, cl[2].disconnected, 10000);
        /* (SENT over UD: the datagram left; the receiver polls it later) */
        T_PUMP(evpl, f.nrecv_msg == 10, 10000);
        T_EQ_U(cl[2].sent_msgs, PER + 10);
        evpl_close(evpl, f.bind);
        T_PUMP(evpl, f.disconnected, 5000);
        t_conn_free(&f);
        evpl_endpoint_close(epf);
    }

    /* close while a destination is being resolved */
    {
        struct evpl_endpoint *epx = t_endpoint(id), *epy = t_endpoint(id);
        struct t_conn x, y;

        ubind(epx, &x);
        ubind(epy, &y);
        evpl_sendtoep(evpl, y.bind, epx, "never", 5);
        evpl_sendtoep(evpl, y.bind, nowhere, "never", 5);
        evpl_close(evpl, y.bind);
        T_PUMP(evpl, y.disconnected, 5000);
        t_pump_for(evpl, 200);
        T_EQ(y.disconnected, 1);
        T_EQ(y.cb_after_disconnect, 0);
        evpl_close(evpl, x.bind);
        T_PUMP(evpl, x.disconnected, 5000);
        t_conn_free(&x);
        t_conn_free(&y);
        evpl_endpoint_close(epx);
        evpl_endpoint_close(epy);
    }

    /* closed with datagrams in flight: the port is free by DISCONNECTED */
    {
        struct t_conn z;

        rebind_ep = t_endpoint(id);
        ubind(rebind_ep, &z);
        z.hook = rebind_hook;
        evpl_bind_request_send_notifications(evpl, z.bind);
        for (int k = 0; k < 200; k++) {
            evpl_sendtoep(evpl, z.bind, eps, big, MTU);
        }
        T_PUMP(evpl, z.disconnected, 5000);
        T_OK(rebound.bind != NULL);
        evpl_sendtoep(evpl, cl[0].bind, rebind_ep, "re", 2);
        T_PUMP(evpl, rebound.nrecv_msg == 1, 5000);
        evpl_close(evpl, rebound.bind);
        T_PUMP(evpl, rebound.disconnected, 5000);
        t_conn_free(&z);
        t_conn_free(&rebound);
        evpl_endpoint_close(rebind_ep);
    }

    /* a host that never answers: given up on in time, the bind goes on */
    {
        struct evpl_endpoint *mute = evpl_endpoint_create("10.77.0.2", t_free_port(SOCK_STREAM));
        uint64_t msgs0 = cl[0].sent_msgs, t0 = t_now_ns();
        int before = s.nrecv_msg;

        evpl_sendtoep(evpl, cl[0].bind, mute, "void", 4);
        evpl_sendtoep(evpl, cl[0].bind, eps, "live", 4);
        T_PUMP(evpl, s.nrecv_msg == before + 1, 5000);
        T_PUMP(evpl, cl[0].sent_msgs == msgs0 + 2, 10000);
        fprintf(stderr, "unanswered destination given up after %llu ms\n",
                (unsigned long long) ((t_now_ns() - t0) / 1000000));
        T_EQ(cl[0].disconnected, 0);
        evpl_endpoint_close(mute);
    }

    /* a wildcard address has no device behind it */
    {
        struct evpl_endpoint *any = evpl_endpoint_create("0.0.0.0", t_free_port(SOCK_STREAM));
        struct t_conn w;

        t_conn_init(&w);
        T_OK(evpl_bind(evpl, id, any, t_conn_notify, &w) == NULL);
        T_EQ(w.nevents, 0);
        evpl_endpoint_close(any);
    }

    for (int i = 0; i < NC; i++) {
        if (!cl[i].disconnected) {
            evpl_close(evpl, cl[i].bind);
        }
    }
    evpl_close(evpl, s.bind);
    T_PUMP(evpl, s.disconnected && cl[0].disconnected && cl[1].disconnected, 5000);
    T_EQ(s.errors + cl[0].errors + cl[1].errors + cl[2].errors, 0);
    for (int i = 0; i < NC; i++) {
        t_conn_free(&cl[i]);
        evpl_endpoint_close(epc[i]);
    }
    t_conn_free(&s);
    evpl_endpoint_close(eps);
    evpl_endpoint_close(nowhere);
    evpl_destroy(evpl);
    return 0;
}
