/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Listeners over every stream protocol: net.md §14 statements 16 (TCP /
 * UNIX parts), 17 (one loop attached twice), 19, 20 (existing and new
 * connections; the AF_UNIX file part is in test_unix_path), 40 (TCP and
 * AF_UNIX address strings); §4: connections arriving while no loop is
 * attached are closed (QUIRK 7 / DESIGN §9); a binding may be detached
 * after its listener was destroyed.
 */
/* MATRIX: stream */
/* ALSO_MECH: io_uring */
/* LABELS: threads */
#include "t_net.h"

static struct evpl *evpl;
static enum evpl_protocol_id proto;
static struct evpl_endpoint *ep;

static void
server_init(struct t_server *s, int max)
{
    memset(s, 0, sizeof(*s));
    s->evpl = evpl;
    s->max = max;
    s->owner = pthread_self();
    s->autodrain = 1;
    s->keep_msgs = 1;
    s->conns = calloc((size_t) max, sizeof(*s->conns));
}

/*
 * Connect and wait for CONNECTED on both ends; returns the accepted end and
 * sets *which to 0 (server a) or 1 (server b).
 */
static struct t_conn *
connect_one(struct t_conn *c, struct t_server *a, struct t_server *b, int *which)
{
    int na = a->n, nb = b->n;
    struct t_conn *s;

    t_connect(evpl, proto, ep, c, NULL);
    if (proto == EVPL_STREAM_SOCKET_TCP || proto == EVPL_STREAM_IO_URING_TCP) {
        /* net.md §3: the kernel-assigned local address, from the connect
         * (io_uring TCP had it only once connected: helper-103) */
        char local[EVPL_ADDRESS_STRLEN];

        evpl_bind_get_local_address(c->bind, local, sizeof(local));
        T_OK(strncmp(local, "127.0.0.1:", 10) == 0 && atoi(local + 10) > 0);
    }
    T_PUMP(evpl, c->connected && a->n + b->n == na + nb + 1, 5000);
    *which = a->n > na ? 0 : 1;
    s = *which ? &b->conns[nb] : &a->conns[na];
    T_PUMP(evpl, s->connected, 5000);
    return s;
}

static void
roundtrip(struct t_conn *c, struct t_conn *s, const char *msg)
{
    size_t before = s->rxlen;

    evpl_send(evpl, c->bind, msg, (unsigned int) strlen(msg));
    T_PUMP(evpl, s->rxlen == before + strlen(msg), 5000);
    T_OK(memcmp(s->rx + before, msg, strlen(msg)) == 0);
    before = c->rxlen;
    evpl_send(evpl, s->bind, msg, (unsigned int) strlen(msg));
    T_PUMP(evpl, c->rxlen == before + strlen(msg), 5000);
}

int
main(void)
{
    struct evpl_listener *l;
    struct evpl_listener_binding *ba, *bb, *bc;
    struct t_server sa, sb, sc;
    struct t_conn c[8];
    char str[EVPL_ADDRESS_STRLEN], want[EVPL_ADDRESS_STRLEN];
    struct t_conn *sv[8];
    int last = -1, extra = 0;

    t_net_guard(60);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);

    /* attach before listen is allowed */
    l = evpl_listener_create();
    server_init(&sa, 8);
    server_init(&sb, 8);
    server_init(&sc, 8);
    ba = evpl_listener_attach(evpl, l, t_server_attach, &sa);
    bb = evpl_listener_attach(evpl, l, t_server_attach, &sb);
    T_OK(ba != NULL && bb != NULL);
    T_EQ(evpl_listen(l, proto, ep), 0);

    /* 16: a second listener on the same address fails, leaving nothing */
    {
        struct evpl_listener *l2 = evpl_listener_create();

        T_EQ(evpl_listen(l2, proto, ep), -1);
        evpl_listener_destroy(l2);
    }

    /* 17: the same loop attached twice: connections alternate */
    for (int i = 0; i < 4; i++) {
        int which;

        sv[i] = connect_one(&c[i], &sa, &sb, &which);
        if (i > 0) {
            T_NE(which, last);
        }
        last = which;
    }
    T_EQ(sa.n, 2);
    T_EQ(sb.n, 2);

    /* 40: address strings of both ends */
    evpl_bind_get_remote_address(c[0].bind, str, sizeof(str));
    if (evpl_protocol_is_local(proto)) {
        snprintf(want, sizeof(want), "unix:%s", evpl_endpoint_address(ep));
        T_STR_EQ(str, want);
        /* the accepted end: local is the listening name, remote unbound */
        evpl_bind_get_local_address(sv[0]->bind, str, sizeof(str));
        T_STR_EQ(str, want);
        evpl_bind_get_remote_address(sv[0]->bind, str, sizeof(str));
        T_STR_EQ(str, "unix:*");
        /* already inside the attach callback (net.md §3) */
        T_STR_EQ(sv[0]->attach_local, want);
        T_STR_EQ(sv[0]->attach_remote, "unix:*");
    } else if (evpl_protocol_is_inproc(proto)) {
        const char *name = evpl_endpoint_address(ep) + strlen("inproc://");
        char local[EVPL_ADDRESS_STRLEN], prefix[EVPL_ADDRESS_STRLEN], other[EVPL_ADDRESS_STRLEN];
        long serial, serial1;

        /* the connecting end: remote inproc:<name>, local inproc:<name>#<n>, n >= 1 */
        snprintf(want, sizeof(want), "inproc:%s", name);
        T_STR_EQ(str, want);
        evpl_bind_get_local_address(c[0].bind, local, sizeof(local));
        snprintf(prefix, sizeof(prefix), "inproc:%s#", name);
        T_OK(strncmp(local, prefix, strlen(prefix)) == 0);
        serial = strtol(local + strlen(prefix), NULL, 10);
        T_OK(serial >= 1);
        /* unique per connection */
        evpl_bind_get_local_address(c[1].bind, other, sizeof(other));
        T_OK(strncmp(other, prefix, strlen(prefix)) == 0);
        serial1 = strtol(other + strlen(prefix), NULL, 10);
        T_OK(serial1 >= 1 && serial1 != serial);
        /* the accepted end: the reverse */
        evpl_bind_get_local_address(sv[0]->bind, str, sizeof(str));
        T_STR_EQ(str, want);
        evpl_bind_get_remote_address(sv[0]->bind, str, sizeof(str));
        T_STR_EQ(str, local);
        T_STR_EQ(sv[0]->attach_local, want);
        T_STR_EQ(sv[0]->attach_remote, local);
    } else {
        char local[EVPL_ADDRESS_STRLEN], host[64];

        snprintf(host, sizeof(host), "%s:", evpl_endpoint_address(ep));
        snprintf(want, sizeof(want), "%s%d", host, evpl_endpoint_port(ep));
        T_STR_EQ(str, want);
        evpl_bind_get_local_address(c[0].bind, local, sizeof(local));
        T_OK(strncmp(local, host, strlen(host)) == 0);
        T_OK(strcmp(local, want) != 0);
        /* the accepted end: local = the listening address, remote = the
         * client's local address */
        evpl_bind_get_local_address(sv[0]->bind, str, sizeof(str));
        T_STR_EQ(str, want);
        evpl_bind_get_remote_address(sv[0]->bind, str, sizeof(str));
        T_STR_EQ(str, local);
        /* already inside the attach callback (net.md §3) */
        T_STR_EQ(sv[0]->attach_local, want);
        T_STR_EQ(sv[0]->attach_remote, local);
        /* truncation like snprintf */
        evpl_bind_get_remote_address(c[0].bind, str, 5);
        host[4] = '\0';
        T_STR_EQ(str, host);
    }

    /* 19: after detaching B, new connections all go to A; B's existing
     * connections keep working */
    evpl_listener_detach(evpl, bb);
    for (int i = 4; i < 6; i++) {
        int which;

        sv[i] = connect_one(&c[i], &sa, &sb, &which);
        T_EQ(which, 0);
    }
    T_EQ(sa.n, 4);
    T_EQ(sb.n, 2);
    for (int i = 0; i < 6; i++) {
        roundtrip(&c[i], sv[i], "after-detach");
    }

    /* §3: a connecting bind given a local endpoint with port 0 reports the
     * port the kernel picked (the accepted end sees the same address) */
    if (!evpl_protocol_is_local(proto) && !evpl_protocol_is_inproc(proto)) {
        struct evpl_endpoint *any = evpl_endpoint_create(evpl_endpoint_address(ep), 0);
        struct t_conn x;
        char local[EVPL_ADDRESS_STRLEN], host[64];
        int n = sa.n;

        snprintf(host, sizeof(host), "%s:", evpl_endpoint_address(ep));
        t_connect_from(evpl, proto, any, ep, &x, NULL);
        T_PUMP(evpl, x.connected && sa.n == n + 1 && sa.conns[n].connected, 5000);
        evpl_bind_get_local_address(x.bind, local, sizeof(local));
        T_OK(strncmp(local, host, strlen(host)) == 0);
        T_NE(atoi(local + strlen(host)), 0);
        evpl_bind_get_remote_address(sa.conns[n].bind, str, sizeof(str));
        T_STR_EQ(str, local);
        evpl_close(evpl, x.bind);
        T_PUMP(evpl, x.disconnected && sa.conns[n].disconnected, 5000);
        t_conn_free(&x);
        evpl_endpoint_close(any);
        extra = 1;
    }

    /* §4 / QUIRK 7: with no loop attached, a connection is closed */
    evpl_listener_detach(evpl, ba);
    {
        struct t_conn x;

        t_connect(evpl, proto, ep, &x, NULL);
        T_PUMP(evpl, x.disconnected, 5000);
        T_EQ(x.disconnected, 1);
        T_EQ(sa.n + sb.n, 6 + extra);
        t_conn_free(&x);
    }

    /* 20: after destroy, new attempts fail; existing connections work; a
     * binding still attached can be detached afterwards */
    bc = evpl_listener_attach(evpl, l, t_server_attach, &sc);
    T_OK(bc != NULL);
    evpl_listener_destroy(l);
    {
        struct t_conn x;

        t_connect(evpl, proto, ep, &x, NULL);
        T_PUMP(evpl, x.disconnected, 5000);
        T_EQ(x.connected, 0);
        T_LT(x.disconnect_status, 0);
        T_EQ(sc.n, 0);
        t_conn_free(&x);
    }
    for (int i = 0; i < 6; i++) {
        T_EQ(c[i].disconnected, 0);
    }
    for (int i = 0; i < 6; i++) {
        roundtrip(&c[i], sv[i], "after-destroy");
    }
    evpl_listener_detach(evpl, bc);

    evpl_destroy(evpl);
    for (int i = 0; i < 6; i++) {
        T_EQ(c[i].disconnected, 1);
        T_EQ(c[i].errors, 0);
        t_conn_free(&c[i]);
    }
    for (int i = 0; i < sa.n; i++) {
        T_EQ(sa.conns[i].errors, 0);
        T_EQ(sa.conns[i].disconnected, 1);
    }
    for (int i = 0; i < sb.n; i++) {
        T_EQ(sb.conns[i].errors, 0);
        T_EQ(sb.conns[i].disconnected, 1);
    }
    T_EQ(sa.attach_wrong_thread + sb.attach_wrong_thread, 0);
    for (int i = 0; i < 3; i++) {
        struct t_server *x = i == 0 ? &sa : i == 1 ? &sb : &sc;

        for (int j = 0; j < x->n; j++) {
            t_conn_free(&x->conns[j]);
        }
        free(x->conns);
    }
    evpl_endpoint_close(ep);
    return 0;
}
