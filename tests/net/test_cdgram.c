/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Connected datagram protocols (listen/connect, one RECV_MSG per send):
 * message boundaries for sizes from 0 bytes to several buffers, sent by
 * copy, by reference and by reference transfer; SENT counts; addresses
 * (net.md §14 statement 40 for in-process ends); both ends DISCONNECTED
 * after either closes; a name nobody listens on and a listener with no
 * loop attached both refuse; echo across two threads (references that
 * cross loops); and, on RDMA-capable binds, rdma.md §7 statements 2-5
 * and 7.
 */
/* MATRIX: cdatagram */
/* LABELS: threads */
#include "t_net.h"

/* (RDMA CM: a message fits one receive buffer, 64 KiB here; main trims) */
static unsigned int sizes[] = {0, 1, 100, 4096, 65536, 100000, 3 * 1024 * 1024 + 7};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static unsigned char
pattern(uint64_t i, unsigned int seed)
{
    return (unsigned char) ((i * 131 + seed * 7) >> 3);
} /* pattern */

/* Send message k (size sizes[k % NSIZES]) three ways in turn. */
static uint64_t
send_msg(struct evpl *evpl, struct evpl_bind *bind, unsigned int k)
{
    unsigned int len = sizes[k % NSIZES];
    unsigned char *buf = malloc(len ? len : 1);
    struct evpl_iovec iov[8];
    int n;

    T_OK(buf != NULL);
    for (unsigned int i = 0; i < len; i++) {
        buf[i] = pattern(i, k);
    }
    switch (len ? k % 3 : 0) { /* (evpl_sendv of no iovecs sends nothing) */
        case 0:
            evpl_send(evpl, bind, buf, len);
            break;
        default:
            n = evpl_iovec_alloc(evpl, len, 0, 8, 0, iov);
            T_OK(n >= 0);
            for (int i = 0, off = 0; i < n; off += (int) iov[i].length, i++) {
                memcpy(iov[i].data, buf + off, iov[i].length);
            }
            if (k % 3 == 1) {
                evpl_sendv(evpl, bind, iov, n, (int) len, EVPL_SEND_FLAG_TAKE_REF);
            } else {
                evpl_sendv(evpl, bind, iov, n, (int) len, 0);
                evpl_iovecs_release(evpl, iov, n); /* ours: the library took its own */
            }
            break;
    }
    free(buf);
    return len;
} /* send_msg */

/* Messages of send_msg 0..count-1, less the empty ones when echoed (an
 * echo of an empty message is an evpl_sendv of no iovecs: nothing). */
static unsigned int
expected(unsigned int count, int echoed)
{
    unsigned int n = 0;

    for (unsigned int k = 0; k < count; k++) {
        n += !echoed || sizes[k % NSIZES] != 0;
    }
    return n;
} /* expected */

/* c received those messages, in order and intact. */
static void
check_msgs(struct t_conn *c, unsigned int count, int echoed)
{
    uint64_t off = 0;
    int m = 0;

    T_EQ(c->nmsg_len, (int) expected(count, echoed));
    for (unsigned int k = 0; k < count; k++) {
        unsigned int len = sizes[k % NSIZES];

        if (echoed && len == 0) {
            continue;
        }
        T_EQ(c->msg_len[m++], len);
        for (unsigned int i = 0; i < len; i++) {
            if (c->rx[off + i] != pattern(i, k)) {
                T_FAIL("message %u byte %u: %u, want %u", k, i, c->rx[off + i], pattern(i, k));
            }
        }
        off += len;
    }
    T_EQ(c->rxlen, off);
} /* check_msgs */

/* ---- a server on its own thread ---- */

struct remote {
    struct t_server srv;
    struct evpl_listener *listener;
    atomic_int done;
};

static void *
remote_init(struct evpl *evpl, void *arg)
{
    struct remote *r = arg;

    r->srv.evpl = evpl;
    r->srv.max = 4;
    r->srv.owner = pthread_self();
    r->srv.echo_msgs = 1;
    r->srv.keep_msgs = 1;
    r->srv.conns = calloc(4, sizeof(struct t_conn));
    r->srv.binding = evpl_listener_attach(evpl, r->listener, t_server_attach, &r->srv);
    return r;
}

static void
remote_shutdown(struct evpl *evpl, void *arg)
{
    struct remote *r = arg;

    evpl_listener_detach(evpl, r->srv.binding);
}

/* ---- one-sided operations ---- */

struct op {
    int done;
    int status;
};

static void
op_done(int status, void *priv)
{
    struct op *o = priv;

    o->done++;
    o->status = status;
}

struct advert {
    uint32_t key;
    uint64_t address;
};

static void
rdma_checks(struct evpl *evpl, enum evpl_protocol_id proto, struct evpl_endpoint *ep,
            struct t_conn *c, struct t_server *srv)
{
    struct t_conn *s = &srv->conns[srv->n - 1];
    struct evpl_iovec region, w, r, w2;
    struct advert ad;
    struct op o1 = {0, -1}, o2 = {0, -1}, o3 = {0, -1}, o4 = {0, -1}, o5 = {0, -1};
    unsigned int msgs;

    /* 7 */
    T_EQ(evpl_bind_is_rdma(c->bind), 1);
    T_EQ(evpl_bind_is_rdma(s->bind), 1);

    /* 2: the server advertises a 64 KiB buffer in a message */
    T_EQ(evpl_iovec_alloc(evpl, 65536, 0, 1, 0, &region), 1);
    memset(region.data, 0, 65536);
    evpl_rdma_get_address(evpl, s->bind, &region, &ad.key, &ad.address);
    T_NE(ad.key, 0);
    T_EQ(ad.address, (uint64_t) (uintptr_t) region.data);
    msgs = (unsigned int) c->nmsg_len;
    evpl_send(evpl, s->bind, &ad, sizeof(ad));
    T_PUMP(evpl, c->nmsg_len == (int) msgs + 1, 5000);
    memcpy(&ad, c->rx + c->rxlen - sizeof(ad), sizeof(ad));

    /* a pattern written into it (without TAKE_REF: our reference stays) */
    T_EQ(evpl_iovec_alloc(evpl, 65536, 0, 1, 0, &w), 1);
    for (unsigned int i = 0; i < 65536; i++) {
        ((unsigned char *) w.data)[i] = pattern(i, 99);
    }
    evpl_rdma_write(evpl, c->bind, ad.key, ad.address, &w, 1, 0, op_done, &o1);
    T_EQ(o1.done, 0); /* asynchronous */
    /* 3: a message sent after the write finds the bytes in place */
    s->hook = NULL;
    msgs = (unsigned int) s->nmsg_len;
    s->echo_msgs = 0;
    evpl_send(evpl, c->bind, "after", 5);
    T_PUMP(evpl, o1.done && s->nmsg_len == (int) msgs + 1, 5000);
    T_EQ(o1.status, 0);
    T_OK(memcmp(region.data, w.data, 65536) == 0);

    /* 2: read it back into a fresh buffer */
    T_EQ(evpl_iovec_alloc(evpl, 65536, 0, 1, 0, &r), 1);
    memset(r.data, 0, 65536);
    evpl_rdma_read(evpl, c->bind, ad.key, ad.address, &r, 1, op_done, &o2);
    T_EQ(o2.done, 0);
    T_PUMP(evpl, o2.done, 5000);
    T_EQ(o2.status, 0);
    T_OK(memcmp(r.data, w.data, 65536) == 0);
    /* a sub-range, by offset */
    memset(r.data, 0, 100);
    r.length = 100;
    evpl_rdma_read(evpl, c->bind, ad.key, ad.address + 1000, &r, 1, op_done, &o5);
    T_PUMP(evpl, o5.done, 5000);
    T_EQ(o5.status, 0);
    T_OK(memcmp(r.data, (char *) w.data + 1000, 100) == 0);
    r.length = 65536;

    /* 4: a key/address never advertised fails; the connection stays usable
     * (TCP-RDMA, in-process; RDMA CM below) */
    if (!t_proto_is_rdmacm(proto)) {
        evpl_rdma_read(evpl, c->bind, ad.key + 100000, ad.address, &r, 1, op_done, &o3);
        T_PUMP(evpl, o3.done, 5000);
        T_NE(o3.status, 0);
        evpl_rdma_read(evpl, c->bind, 0, ad.address, &r, 1, op_done, &o4);
        T_PUMP(evpl, o4.done, 5000);
        T_NE(o4.status, 0);
        o4.done = 0;
        evpl_rdma_write(evpl, c->bind, ad.key, (uint64_t) -4096, &w, 1, 0, op_done, &o4);
        T_PUMP(evpl, o4.done, 5000);
        T_NE(o4.status, 0);
        msgs = (unsigned int) s->nmsg_len;
        evpl_send(evpl, c->bind, "still", 5);
        T_PUMP(evpl, s->nmsg_len == (int) msgs + 1, 5000);
        T_EQ(c->disconnected, 0);
    }

    /* 5: TAKE_REF hands our reference over (the leak check at exit) */
    T_EQ(evpl_iovec_alloc(evpl, 4096, 0, 1, 0, &w2), 1);
    memset(w2.data, 0x5a, 4096);
    o1.done = 0;
    evpl_rdma_write(evpl, c->bind, ad.key, ad.address, &w2, 1, EVPL_RDMA_FLAG_TAKE_REF, op_done,
                    &o1);
    T_PUMP(evpl, o1.done, 5000);
    T_EQ(o1.status, 0);
    T_EQ(((unsigned char *) region.data)[0], 0x5a);
    T_EQ(((unsigned char *) region.data)[4095], 0x5a);
    T_EQ(((unsigned char *) region.data)[4096], pattern(4096, 99));
    /* a NULL callback is allowed on RDMA binds */
    evpl_rdma_write(evpl, c->bind, ad.key, ad.address, &w, 1, 0, NULL, NULL);
    t_pump_for(evpl, 10);

    /* 6: an operation still pending when its bind closes ends with
     * ECONNRESET (TCP-RDMA: the request is on its way; in-process: the copy
     * is done at once, so it reports 0) */
    o1.done = 0;
    o1.status = -1;
    evpl_rdma_read(evpl, c->bind, ad.key, ad.address, &r, 1, op_done, &o1);
    evpl_close(evpl, c->bind);
    T_PUMP(evpl, c->disconnected && s->disconnected, 5000);
    T_EQ(o1.done, 1);
    T_EQ(o1.status, proto == EVPL_DATAGRAM_TCP_RDMA || t_proto_is_rdmacm(proto) ? ECONNRESET : 0);

    if (t_proto_is_rdmacm(proto)) {
        /* RDMA CM: a key the peer never advertised is a remote access
         * error, which puts the queue pair in the error state: the
         * operation fails and the connection ends, on both sides */
        struct t_conn c2;
        int n = srv->n;

        t_connect(evpl, proto, ep, &c2, NULL);
        T_PUMP(evpl, c2.connected && srv->n == n + 1 && srv->conns[n].connected, 5000);
        o3.done = 0;
        o3.status = 0;
        evpl_rdma_read(evpl, c2.bind, ad.key + 100000, ad.address, &r, 1, op_done, &o3);
        T_PUMP(evpl, o3.done && c2.disconnected && srv->conns[n].disconnected, 5000);
        T_NE(o3.status, 0);
        T_LT(c2.disconnect_status, 0);
        t_conn_free(&c2);
    }

    evpl_iovec_release(evpl, &w);
    evpl_iovec_release(evpl, &r);
    evpl_iovec_release(evpl, &region);
} /* rdma_checks */

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c;
    char str[EVPL_ADDRESS_STRLEN], local[EVPL_ADDRESS_STRLEN];
    const unsigned int count = 3 * NSIZES;
    uint64_t bytes = 0;

    t_net_guard(60);
    proto = t_proto(T_NET_KIND_CDGRAM);
    if (t_proto_is_rdmacm(proto)) {
        sizes[5] = 60001;
        sizes[6] = 65535;
    }
    evpl = t_net_loop();
    ep = t_endpoint(proto);

    /* a name nobody listens on: DISCONNECTED only */
    t_connect(evpl, proto, ep, &c, NULL);
    evpl_send(evpl, c.bind, "lost", 4);
    T_PUMP(evpl, c.disconnected, 5000);
    T_STR_EQ(c.events, "D");
    T_LT(c.disconnect_status, 0);
    t_conn_free(&c);

    /* a listener with no loop attached: the connection is closed, not left hanging */
    {
        struct evpl_listener *l = t_listen(proto, ep);

        t_connect(evpl, proto, ep, &c, NULL);
        T_PUMP(evpl, c.disconnected, 5000);
        /* over TCP the kernel completed the handshake before anyone could
         * refuse: CONNECTED, then the close; RDMA CM rejects the request */
        T_STR_EQ(c.events, evpl_protocol_is_inproc(proto) || t_proto_is_rdmacm(proto) ? "D" : "CD");
        t_conn_free(&c);
        evpl_listener_destroy(l);
    }

    memset(&srv, 0, sizeof(srv));
    srv.echo_msgs = 1;
    srv.keep_msgs = 1;
    t_server_start(&srv, evpl, proto, ep, 8);

    /* echo on one loop: boundaries, sizes, the three ways to send */
    t_connect(evpl, proto, ep, &c, NULL);
    evpl_bind_request_send_notifications(evpl, c.bind);
    T_EQ(c.nevents, 0);
    for (unsigned int k = 0; k < count; k++) {
        bytes += send_msg(evpl, c.bind, k); /* queued before CONNECTED */
    }
    T_PUMP(evpl, c.nmsg_len == (int) expected(count, 1), 10000);
    T_EQ(c.connected, 1);
    T_EQ(c.events[0], 'C');
    check_msgs(&c, count, 1);
    check_msgs(&srv.conns[0], count, 0);
    T_EQ(c.sent_msgs, count);
    T_EQ(c.sent_bytes, bytes);
    T_EQ(c.errors, 0);
    T_EQ(srv.conns[0].errors, 0);

    /* 40: addresses */
    if (evpl_protocol_is_inproc(proto)) {
        const char *name = evpl_endpoint_address(ep) + strlen("inproc://");
        char want[EVPL_ADDRESS_STRLEN];

        snprintf(want, sizeof(want), "inproc:%s", name);
        evpl_bind_get_remote_address(c.bind, str, sizeof(str));
        T_STR_EQ(str, want);
        evpl_bind_get_local_address(c.bind, local, sizeof(local));
        snprintf(want, sizeof(want), "inproc:%s#", name);
        T_OK(strncmp(local, want, strlen(want)) == 0);
        T_OK(atol(local + strlen(want)) >= 1);
        evpl_bind_get_remote_address(srv.conns[0].bind, str, sizeof(str));
        T_STR_EQ(str, local);
    }

    if (evpl_bind_is_rdma(c.bind)) {
        rdma_checks(evpl, proto, ep, &c, &srv);
    }

    /* either end closing ends both (the RDMA checks end by closing ours) */
    if (!c.disconnected) {
        evpl_close(evpl, srv.conns[0].bind);
    }
    T_PUMP(evpl, c.disconnected && srv.conns[0].disconnected, 5000);
    T_EQ(c.disconnect_status, 0);
    T_EQ(c.cb_after_disconnect, 0);
    t_conn_free(&c);
    t_server_stop(&srv);

    /* echo across threads: the server loop runs on its own thread */
    {
        struct remote r;
        struct evpl_thread *th;

        memset(&r, 0, sizeof(r));
        r.listener = t_listen(proto, ep);
        th = evpl_thread_create(NULL, remote_init, remote_shutdown, &r);
        T_OK(th != NULL);
        t_connect(evpl, proto, ep, &c, NULL);
        for (unsigned int k = 0; k < count; k++) {
            send_msg(evpl, c.bind, k);
        }
        T_PUMP(evpl, c.nmsg_len == (int) expected(count, 1), 10000);
        check_msgs(&c, count, 1);
        T_EQ(c.errors, 0);
        evpl_close(evpl, c.bind);
        T_PUMP(evpl, c.disconnected, 5000);
        evpl_thread_destroy(th);
        T_EQ(r.srv.n, 1);
        T_EQ(r.srv.conns[0].disconnected, 1);
        T_EQ(r.srv.conns[0].errors, 0);
        check_msgs(&r.srv.conns[0], count, 0);
        t_conn_free(&r.srv.conns[0]);
        free(r.srv.conns);
        evpl_listener_destroy(r.listener);
        t_conn_free(&c);
    }

    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
