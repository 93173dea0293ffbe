/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * evpl_http_destroy with requests outstanding (http.md §2; §8 statement
 * 17): one loop holds a server (two raw clients: one request waiting for
 * its response, one in the middle of its body; one request from our own
 * client, waiting) and a client (that request; one on a connection to a
 * raw server that never answers; one retired connection never released).
 * evpl_http_server_destroy then evpl_http_destroy, without running the
 * loop in between: every dispatched request - server and client side -
 * receives exactly one FAILED, and nothing leaks (exit-time leak check).
 */
#include "t_http.h"

static struct t_app app;
static struct t_client cl;
static struct t_rawsrv rs;

static void
hook(struct t_app *a, struct t_sreq *r, int type)
{
    (void) a;
    (void) r;
    (void) type; /* never answers */
}

int
main(void)
{
    struct t_raw c1, c2;
    struct t_creq *q1, *q2, *q3;
    struct evpl_http_conn *own, *dead, *retired;
    struct evpl_endpoint *rep;

    t_net_guard(60);
    t_app_start(&app);
    app.hook = hook;
    t_rawsrv_open(&rs);
    rep = evpl_endpoint_create("127.0.0.1", rs.port);

    memset(&cl, 0, sizeof(cl));
    cl.evpl = app.evpl;
    cl.agent = app.agent;

    /* server side, raw clients */
    t_raw_open(&c1, app.ep);
    t_raw_sends(&c1, "GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
    t_raw_open(&c2, app.ep);
    t_raw_sends(&c2, "POST /midbody HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789");
    T_HPUMP(app.evpl, app.nreqs == 2, 5000);

    /* our own client to our own server */
    own = evpl_http_client_connect(app.agent, EVPL_STREAM_SOCKET_TCP, app.ep,
                                   EVPL_HTTP_VERSION_HTTP1, &cl);
    T_OK(own != NULL);
    q1 = t_creq_new(&cl, own, EVPL_HTTP_REQUEST_TYPE_GET, "/own");
    t_creq_dispatch(q1);
    T_HPUMP(app.evpl, app.nreqs == 3 && q1->n_sent == 1, 5000);
    T_STR_EQ(app.reqs[2].url, "/own");

    /* a client request to a raw server that never answers */
    dead = evpl_http_client_connect(app.agent, EVPL_STREAM_SOCKET_TCP, rep, EVPL_HTTP_VERSION_HTTP1,
                                    &cl);
    q2 = t_creq_new(&cl, dead, EVPL_HTTP_REQUEST_TYPE_GET, "/silent");
    t_creq_dispatch(q2);
    T_HPUMP(app.evpl, rs.nconns == 1 && rs.conns[0].in.len > 0, 5000);

    /* a retired connection, never released */
    retired = evpl_http_client_connect(app.agent, EVPL_STREAM_SOCKET_TCP, rep,
                                       EVPL_HTTP_VERSION_HTTP1, &cl);
    q3 = t_creq_new(&cl, retired, EVPL_HTTP_REQUEST_TYPE_GET, "/dropped");
    t_creq_dispatch(q3);
    T_HPUMP(app.evpl, rs.nconns == 2 && rs.conns[1].in.len > 0, 5000);
    t_raw_close(&rs.conns[1]);
    T_HPUMP(app.evpl, t_creq_done(q3), 5000);
    T_EQ(q3->n_failed, 1);

    t_hpump_for(app.evpl, 50);
    for (int i = 0; i < 3; i++) {
        T_EQ(app.reqs[i].n_failed + app.reqs[i].n_rcomplete, 0);
    }
    T_EQ(q1->n_complete + q1->n_failed, 0);
    T_EQ(q2->n_complete + q2->n_failed, 0);

    fprintf(stderr, "-- destroy with requests outstanding\n");
    evpl_http_server_destroy(app.agent, app.server);
    evpl_http_destroy(app.agent);

    for (int i = 0; i < 3; i++) {
        struct t_sreq *r = &app.reqs[i];

        fprintf(stderr, "  server request %s: events %s\n", r->url, r->ev);
        T_EQ(r->n_failed, 1);
        T_EQ(r->n_rcomplete, 0);
        T_EQ(r->n_bad, 0);
    }
    for (int i = 0; i < cl.nreqs; i++) {
        struct t_creq *q = &cl.reqs[i];

        fprintf(stderr, "  client request %s: events %s status %d\n", q->url, q->ev,
                q->status_final);
        T_EQ(q->n_failed, 1);
        T_EQ(q->n_complete, 0);
        T_LT(q->status_final, 0);
    }
    T_EQ(cl.errors, 0);
    T_EQ(app.errors, 0);

    /* the raw peers see their connections closed */
    T_HPUMP(app.evpl, t_raw_closed(&c1) && t_raw_closed(&c2) && t_raw_closed(&rs.conns[0]), 5000);
    t_raw_close(&c1);
    t_raw_close(&c2);
    t_rawsrv_close(&rs);
    evpl_listener_destroy(app.listener);
    evpl_destroy(app.evpl);
    evpl_endpoint_close(app.ep);
    evpl_endpoint_close(rep);
    t_app_free_reqs(&app);
    t_client_free_reqs(&cl);
    fprintf(stderr, "PASS\n");
    return 0;
}
