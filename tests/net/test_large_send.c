/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Issue item (f) over every stream protocol: 1 GiB queued in 1 MiB
 * evpl_sendv chunks (TAKE_REF and not) while the peer does not read, then
 * the peer reads: no byte lost or duplicated (net.md §14 statement 22;
 * about 4 s under ASan here).  Also: a
 * bind closed with 64 MiB still queued drops it, sends after the close are
 * dropped, no crash, no leak (statement 36 / evpl_bind.h).
 */
/* MATRIX: stream */
/* ALSO_MECH: io_uring */
#include "t_net.h"

#define CHUNK (1u << 20)
#define TOTAL t_vm_scale(1024ull << 20, 8) /* 1 GiB; 128 MiB in the VM */
#define SEED  0x1a46e

static uint64_t checked;

static void
reader(struct t_conn *c, struct evpl_notify *n)
{
    struct evpl_iovec iov[64];
    int len, k;

    if (n->notify_type != EVPL_NOTIFY_RECV_DATA || !c->user) {
        return;
    }
    /* drain with recvv (owned references, released here) */
    while ((k = evpl_recvv(c->evpl, c->bind, iov, 64, 8 << 20, &len)) > 0) {
        for (int i = 0; i < k; i++) {
            int64_t bad = t_pattern_check(SEED, checked, iov[i].data, iov[i].length);

            if (bad >= 0) {
                T_FAIL("byte at stream offset %llu differs",
                       (unsigned long long) (checked + (uint64_t) bad));
            }
            checked += iov[i].length;
        }
        evpl_iovecs_release(c->evpl, iov, k);
    }
}

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c, c2;
    struct t_conn *s;
    uint64_t off = 0;

    t_net_guard(getenv("EVPL_VM") ? 240 : 60); /* emulated CPUs: slower still */
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.autodrain = 0;
    srv.keep_msgs = 1;
    srv.hook = reader;
    t_server_start(&srv, evpl, proto, ep, 2);
    t_connect(evpl, proto, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 5000);
    s = &srv.conns[0];

    /* queue everything at once; the server is not reading */
    for (int i = 0; off < TOTAL; i++) {
        struct evpl_iovec iov[2];
        int n = evpl_iovec_alloc(evpl, CHUNK, 0, 2, 0, iov);
        uint64_t o = off;

        T_GE(n, 1);
        for (int k = 0; k < n; k++) {
            t_pattern_fill(SEED, o, iov[k].data, iov[k].length);
            o += iov[k].length;
        }
        if (i & 1) {
            evpl_sendv(evpl, c.bind, iov, n, CHUNK, EVPL_SEND_FLAG_TAKE_REF);
        } else {
            evpl_sendv(evpl, c.bind, iov, n, CHUNK, 0);
            evpl_iovecs_release(evpl, iov, n);
        }
        off += CHUNK;
    }
    t_pump_for(evpl, 300); /* what fits goes out; the server buffers */
    T_EQ(s->disconnected, 0);

    /* now read */
    s->user = s;
    {
        struct evpl_notify n = {.notify_type = EVPL_NOTIFY_RECV_DATA};

        reader(s, &n);
    }
    T_PUMP(evpl, checked >= TOTAL, getenv("EVPL_VM") ? 200000 : 40000);
    t_pump_for(evpl, 20);
    T_EQ_U(checked, TOTAL);

    /* close with a lot queued: dropped, then sends on the closing bind */
    t_connect(evpl, proto, ep, &c2, NULL);
    T_PUMP(evpl, c2.connected && srv.n == 2 && srv.conns[1].connected, 5000);
    srv.conns[1].autodrain = 0;
    for (int i = 0; i < 64; i++) {
        struct evpl_iovec iov[2];
        int n = evpl_iovec_alloc(evpl, CHUNK, 0, 2, 0, iov);

        T_GE(n, 1);
        evpl_sendv(evpl, c2.bind, iov, n, CHUNK, EVPL_SEND_FLAG_TAKE_REF);
    }
    evpl_close(evpl, c2.bind);
    for (int i = 0; i < 10; i++) {
        struct evpl_iovec iov[2];
        int n = evpl_iovec_alloc(evpl, CHUNK, 0, 2, 0, iov);

        evpl_send(evpl, c2.bind, "late", 4);
        evpl_sendv(evpl, c2.bind, iov, n, CHUNK, EVPL_SEND_FLAG_TAKE_REF);
    }
    T_PUMP(evpl, c2.disconnected && srv.conns[1].disconnected, 10000);
    T_EQ(c2.disconnected, 1);

    evpl_close(evpl, c.bind);
    T_PUMP(evpl, c.disconnected && s->disconnected, 5000);
    T_EQ(c.errors + s->errors + c2.errors, 0);
    evpl_listener_detach(evpl, srv.binding);
    srv.binding = NULL;
    t_server_stop(&srv);
    t_conn_free(&c);
    t_conn_free(&c2);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
