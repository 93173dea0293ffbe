/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Client connection lifecycle (http.md §4.1; §8 statements 16, 17):
 *  - requests dispatched before the connection is established are written
 *    once it is;
 *  - the peer drops the connection with three requests outstanding: each
 *    gets exactly one FAILED (CONN_LOST), in order; the handle stays valid
 *    and a dispatch on it delivers FAILED before evpl_http_request_dispatch
 *    returns; evpl_http_client_close then frees it (leak check at exit);
 *  - evpl_http_client_close on a live connection with a request
 *    outstanding: FAILED on a later pass (not inside the call), the peer
 *    sees the close;
 *  - a connection that cannot be established fails its request;
 *  - two connections on one agent each see their own private_data.
 */
#include "t_http.h"

static struct t_client cl, cl2;
static struct t_rawsrv rs;

static void
read_get(struct t_raw *s, const char *path)
{
    struct t_msg m = {0};
    char want[256];

    t_raw_read_msg(s, 1, 0, &m);
    snprintf(want, sizeof(want),
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 0\r\n\r\n", path, rs.port);
    T_BYTES_EQ(m.head.p, m.head.len, want);
    t_msg_free(&m);
}

static int fail_order[16], nfail;

static void
hook(struct t_creq *r, int type)
{
    if (type == EVPL_HTTP_NOTIFY_FAILED) {
        fail_order[nfail++] = r->idx;
    }
}

int
main(void)
{
    struct t_raw *s;
    struct t_creq *r[3], *q;

    t_net_guard(60);
    t_rawsrv_open(&rs);
    t_client_start(&cl, rs.port);

    fprintf(stderr, "-- statement 16: peer drops the connection\n");
    /* dispatched at once, before the connection is up */
    for (int i = 0; i < 3; i++) {
        char p[16];

        snprintf(p, sizeof(p), "/r%d", i);
        r[i] = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, p);
        r[i]->hook = hook;
        t_creq_dispatch(r[i]);
        T_EQ(r[i]->n_failed, 0);
    }
    T_HPUMP(cl.evpl, rs.nconns == 1, 5000);
    s = &rs.conns[0];
    read_get(s, "/r0");
    read_get(s, "/r1");
    read_get(s, "/r2");
    t_raw_close(s);
    T_HPUMP(cl.evpl, t_creq_done(r[0]) && t_creq_done(r[1]) && t_creq_done(r[2]), 5000);
    t_hpump_for(cl.evpl, 30);
    for (int i = 0; i < 3; i++) {
        T_CEV_EQ(r[i], "SF");
        T_EQ(r[i]->status_final, EVPL_HTTP_ERROR_CONN_LOST);
        T_EQ(fail_order[i], r[i]->idx);
    }
    /* the handle is still valid: a dispatch fails synchronously */
    q = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, "/retired");
    t_creq_dispatch(q);
    T_EQ(q->n_failed, 1);
    T_EQ(q->failed_in_dispatch, 1);
    T_EQ(q->status_final, EVPL_HTTP_ERROR_CONN_LOST);
    fprintf(stderr, "  ok: FAILED inside evpl_http_request_dispatch\n");
    /* and a second time */
    q = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_POST, "/retired2");
    evpl_http_client_set_request_length(q->req, 3);
    t_add_str(cl.evpl, q->req, "abc");
    t_creq_dispatch(q);
    T_EQ(q->failed_in_dispatch, 1);
    t_hpump_for(cl.evpl, 30);
    evpl_http_client_close(cl.agent, cl.conn);
    t_hpump_for(cl.evpl, 30);
    T_EQ(rs.nconns, 1); /* no reconnection */

    fprintf(stderr, "-- evpl_http_client_close with a request outstanding\n");
    cl.conn = evpl_http_client_connect(cl.agent, EVPL_STREAM_SOCKET_TCP, cl.ep,
                                       EVPL_HTTP_VERSION_HTTP1, &cl);
    T_OK(cl.conn != NULL);
    T_HPUMP(cl.evpl, rs.nconns == 2, 5000);
    s = &rs.conns[1];
    q = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, "/pending");
    t_creq_dispatch(q);
    read_get(s, "/pending");
    evpl_http_client_close(cl.agent, cl.conn);
    T_EQ(q->n_failed, 0); /* on a later pass */
    T_HPUMP(cl.evpl, t_creq_done(q), 5000);
    T_CEV_EQ(q, "SF");
    T_EQ(q->status_final, EVPL_HTTP_ERROR_CONN_LOST);
    T_HPUMP(cl.evpl, t_raw_closed(s), 5000);
    fprintf(stderr, "  ok: peer saw the close\n");

    fprintf(stderr, "-- evpl_http_client_close on an idle live connection\n");
    cl.conn = evpl_http_client_connect(cl.agent, EVPL_STREAM_SOCKET_TCP, cl.ep,
                                       EVPL_HTTP_VERSION_HTTP1, &cl);
    T_HPUMP(cl.evpl, rs.nconns == 3, 5000);
    s = &rs.conns[2];
    t_hpump_for(cl.evpl, 20);
    evpl_http_client_close(cl.agent, cl.conn);
    T_HPUMP(cl.evpl, t_raw_closed(s), 5000);
    T_EQ_U(s->in.len, 0);

    fprintf(stderr, "-- connection refused\n");
    {
        struct evpl_endpoint *dead = evpl_endpoint_create("127.0.0.1", t_free_port(SOCK_STREAM));
        struct evpl_http_conn *dc;

        dc = evpl_http_client_connect(cl.agent, EVPL_STREAM_SOCKET_TCP, dead,
                                      EVPL_HTTP_VERSION_HTTP1, &cl);
        T_OK(dc != NULL);
        q = t_creq_new(&cl, dc, EVPL_HTTP_REQUEST_TYPE_GET, "/refused");
        t_creq_dispatch(q);
        T_HPUMP(cl.evpl, t_creq_done(q), 5000);
        T_EQ(q->n_failed, 1);
        T_EQ(q->status_final, EVPL_HTTP_ERROR_CONN_LOST);
        T_EQ(q->n_headers, 0);
        q = t_creq_new(&cl, dc, EVPL_HTTP_REQUEST_TYPE_GET, "/refused2");
        t_creq_dispatch(q);
        T_EQ(q->failed_in_dispatch, 1);
        evpl_http_client_close(cl.agent, dc);
        evpl_endpoint_close(dead);
    }

    fprintf(stderr, "-- two connections, their own private_data\n");
    cl.conn = evpl_http_client_connect(cl.agent, EVPL_STREAM_SOCKET_TCP, cl.ep,
                                       EVPL_HTTP_VERSION_HTTP1, &cl);
    memset(&cl2, 0, sizeof(cl2));
    cl2.evpl = cl.evpl;
    cl2.agent = cl.agent;
    cl2.conn = evpl_http_client_connect(cl.agent, EVPL_STREAM_SOCKET_TCP, cl.ep,
                                        EVPL_HTTP_VERSION_HTTP1, &cl2);
    T_OK(cl2.conn != NULL && cl2.conn != cl.conn);
    {
        struct t_creq *a = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, "/a");
        struct t_creq *b = t_creq_new(&cl2, cl2.conn, EVPL_HTTP_REQUEST_TYPE_GET, "/b");
        struct t_raw *sa = NULL, *sb = NULL;

        t_creq_dispatch(a);
        t_creq_dispatch(b);
        T_HPUMP(cl.evpl, rs.nconns == 5 && rs.conns[3].in.len > 0 && rs.conns[4].in.len > 0, 5000);
        /* which accepted socket carries which request */
        if (strstr(rs.conns[3].in.p, "GET /a ")) {
            sa = &rs.conns[3];
            sb = &rs.conns[4];
        } else {
            sa = &rs.conns[4];
            sb = &rs.conns[3];
        }
        read_get(sa, "/a");
        read_get(sb, "/b");
        t_raw_sends(sb, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB");
        t_raw_sends(sa, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA");
        T_HPUMP(cl.evpl, t_creq_done(a) && t_creq_done(b), 5000);
        T_BYTES_EQ(a->body.p, a->body.len, "A");
        T_BYTES_EQ(b->body.p, b->body.len, "B");
    }
    evpl_http_client_close(cl.agent, cl.conn);
    evpl_http_client_close(cl2.agent, cl2.conn);
    t_hpump_for(cl.evpl, 30);

    t_client_check_terminal(&cl);
    t_client_check_terminal(&cl2);
    evpl_http_destroy(cl.agent);
    evpl_destroy(cl.evpl);
    evpl_endpoint_close(cl.ep);
    t_rawsrv_close(&rs);
    t_client_free_reqs(&cl);
    t_client_free_reqs(&cl2);
    fprintf(stderr, "PASS\n");
    return 0;
}
