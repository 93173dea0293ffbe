/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * HTTP/2 failure paths (http.md §6 "a conforming implementation MUST
 * deliver FAILED", §4.1, §3.1 rule 2, §8 statements 16 and 17), with raw
 * HTTP/2 peers played by nghttp2 on plain sockets:
 *
 * client side (our client, EVPL_HTTP_VERSION_HTTP2 over TCP):
 *   a raw h2 server drops the connection with three requests outstanding
 *     -> each gets exactly one FAILED (CONN_LOST); a later dispatch on the
 *     retired handle fails inside evpl_http_request_dispatch;
 *   a raw h2 server resets one stream (RST_STREAM) and answers another
 *     -> FAILED for the first, RECEIVE_COMPLETE for the second; an interim
 *     100 before the 200 -> one RESPONSE_HEADERS (statement 14);
 *   GOAWAY whose last stream is below an outstanding request -> FAILED for
 *     that one, the other answered; a request after GOAWAY -> one FAILED;
 *   h2c against a server answering HTTP/1.1 -> FAILED for each;
 *   our server's agent destroyed (server on its own loop) with requests
 *     outstanding -> FAILED for each, on both sides.
 * server side (our server, a raw h2 client):
 *   the client resets a stream in the middle of its body, and one whose
 *     response is held -> FAILED for each, the connection goes on;
 *   a method we do not implement (FROB, lower-case get) -> 501, dispatch
 *     never runs; SETTINGS_MAX_CONCURRENT_STREAMS is 100; a response
 *     prepared at dispatch waits for the whole request body (§3.1 rule 4);
 *   the client drops the connection with two requests held -> FAILED each;
 *   a connection error (DATA on stream 0) with a request held -> FAILED,
 *     connection closed.
 * statement 17: evpl_http_destroy of one agent that serves and is a
 *   client, h2 requests outstanding on both sides -> exactly one terminal
 *   notification each.
 */
#include "t_h2.h"

static struct t_app app;
static struct t_client cl;

/* server application: "/hold..." never answered, "/body..." neither
 * (their bodies never end), others answered "hello world" */
static int early; /* "/early": answered at dispatch */

static void
hold_hook(struct t_app *a, struct t_sreq *r, int type)
{
    if (early && strcmp(r->url, "/early") == 0) {
        if (type == T_EV_DISPATCH) {
            t_respond_simple(r, 200, "early!");
        }
        return;
    }
    if (strncmp(r->url, "/hold", 5) == 0 || strncmp(r->url, "/body", 5) == 0) {
        return;
    }
    t_app_default_hook(a, r, type);
}

/* a client agent on its own loop (evpl NULL: a new one) */
static void
client_begin(struct evpl *evpl, struct evpl_http_agent *agent)
{
    memset(&cl, 0, sizeof(cl));
    if (evpl) {
        cl.evpl = evpl;
        cl.agent = agent;
    } else {
        cl.evpl = t_net_loop();
        cl.agent = evpl_http_init(cl.evpl);
        T_OK(cl.agent != NULL);
    }
}

static struct t_creq *
cget(struct evpl_http_conn *conn, const char *url)
{
    struct t_creq *r = t_creq_new(&cl, conn, EVPL_HTTP_REQUEST_TYPE_GET, url);

    T_EQ(evpl_http_request_add_header(r->req, "Host", "h2.test"), 0);
    t_creq_dispatch(r);
    return r;
}

static void
expect_failed(struct t_creq *r, const char *pat)
{
    fprintf(stderr, "  client %s: events %s status %d\n", r->url, r->ev, r->status_final);
    T_EV_MATCH(r->url, r->ev, pat);
    T_EQ(r->n_failed, 1);
    T_LT(r->status_final, 0);
}

#ifdef T_HAVE_NGHTTP2

static void
client_raw_server_drop(void)
{
    struct t_rawsrv rs;
    struct t_h2peer peer;
    struct evpl_endpoint *ep;
    struct evpl_http_conn *conn;
    struct t_creq *q[3], *late;

    fprintf(stderr, "-- client: a raw h2 server drops the connection, 3 requests outstanding\n");
    client_begin(NULL, NULL);
    t_evpl = cl.evpl;
    t_rawsrv_open(&rs);
    ep = evpl_endpoint_create("127.0.0.1", rs.port);
    conn = evpl_http_client_connect(cl.agent, EVPL_STREAM_SOCKET_TCP, ep, EVPL_HTTP_VERSION_HTTP2,
                                    &cl);
    T_OK(conn != NULL);
    for (int i = 0; i < 3; i++) {
        char url[32];

        snprintf(url, sizeof(url), "/drop/%d", i);
        q[i] = cget(conn, url);
    }
    T_H2PUMP(cl.evpl, rs.nconns == 1, 5000);
    t_h2peer_init(&peer, &rs.conns[0], 1);
    T_H2PUMP(cl.evpl, t_h2peer_nstreams(&peer) == 3 && t_h2peer_stream_nth(&peer, 2)->end, 5000);
    fprintf(stderr, "  raw server got 3 requests; first:\n%s",
            t_buf_str(&t_h2peer_stream_nth(&peer, 0)->hdrs));
    T_OK(t_has_field(&t_h2peer_stream_nth(&peer, 0)->hdrs, ":method: GET\n"));
    T_OK(t_has_field(&t_h2peer_stream_nth(&peer, 0)->hdrs, ":scheme: http\n"));
    T_OK(t_has_field(&t_h2peer_stream_nth(&peer, 0)->hdrs, ":path: /drop/0\n"));
    T_OK(t_has_field(&t_h2peer_stream_nth(&peer, 0)->hdrs, ":authority: h2.test\n"));
    T_OK(!t_has_field_name(&t_h2peer_stream_nth(&peer, 0)->hdrs, "host"));
    T_H2PUMP(cl.evpl, q[2]->n_sent == 1, 5000);
    for (int i = 0; i < 3; i++) {
        T_EQ(q[i]->n_failed + q[i]->n_complete, 0);
    }
    t_h2peer_free(&peer);
    t_raw_close(&rs.conns[0]);
    T_H2PUMP(cl.evpl, t_creq_done(q[0]) && t_creq_done(q[1]) && t_creq_done(q[2]), 5000);
    t_h2pump_for(cl.evpl, NULL, 50);
    for (int i = 0; i < 3; i++) {
        expect_failed(q[i], "SF");
        T_EQ(q[i]->status_final, EVPL_HTTP_ERROR_CONN_LOST);
    }
    /* statement 16: the handle stays; a dispatch on it fails at once */
    late = t_creq_new(&cl, conn, EVPL_HTTP_REQUEST_TYPE_GET, "/late");
    t_creq_dispatch(late);
    T_EQ(late->n_failed, 1);
    T_EQ(late->failed_in_dispatch, 1);
    fprintf(stderr, "  ok: dispatch on the retired handle failed inside the call\n");
    evpl_http_client_close(cl.agent, conn);
    t_client_check_terminal(&cl);
    t_client_free_reqs(&cl);
    evpl_http_destroy(cl.agent);
    t_rawsrv_close(&rs);
    evpl_destroy(cl.evpl);
    evpl_endpoint_close(ep);
}

static void
client_raw_server_rst(void)
{
    struct t_rawsrv rs;
    struct t_h2peer peer;
    struct evpl_endpoint *ep;
    struct evpl_http_conn *conn;
    struct t_creq *q0, *q1, *q2;

    fprintf(stderr, "-- client: a raw h2 server resets one stream, answers the others\n");
    client_begin(NULL, NULL);
    t_evpl = cl.evpl;
    t_rawsrv_open(&rs);
    ep = evpl_endpoint_create("127.0.0.1", rs.port);
    conn = evpl_http_client_connect(cl.agent, EVPL_STREAM_SOCKET_TCP, ep, EVPL_HTTP_VERSION_HTTP2,
                                    &cl);
    q0 = cget(conn, "/reset-me");
    q1 = cget(conn, "/answer-me");
    T_H2PUMP(cl.evpl, rs.nconns == 1, 5000);
    t_h2peer_init(&peer, &rs.conns[0], 1);
    T_H2PUMP(cl.evpl, t_h2peer_nstreams(&peer) == 2 && t_h2peer_stream_nth(&peer, 1)->end, 5000);
    t_h2peer_rst(&peer, t_h2peer_stream_nth(&peer, 0)->id, NGHTTP2_CANCEL);
    t_h2peer_respond(&peer, t_h2peer_stream_nth(&peer, 1)->id, "200", "answered");
    T_H2PUMP(cl.evpl, t_creq_done(q0) && t_creq_done(q1), 5000);
    expect_failed(q0, "SF");
    T_EQ(q1->n_failed, 0);
    T_EQ(q1->status_final, 200);
    T_BYTES_EQ(q1->body.p, q1->body.len, "answered");
    T_EV_MATCH("/answer-me", q1->ev, "SHd?C");

    /* the connection goes on; the server resets a stream before answering
     * anything, with an error code this time */
    q2 = cget(conn, "/reset-too");
    T_H2PUMP(cl.evpl, t_h2peer_nstreams(&peer) == 3 && t_h2peer_stream_nth(&peer, 2)->end, 5000);
    t_h2peer_rst(&peer, t_h2peer_stream_nth(&peer, 2)->id, NGHTTP2_INTERNAL_ERROR);
    T_H2PUMP(cl.evpl, t_creq_done(q2), 5000);
    expect_failed(q2, "SF");

    /* statement 14 over h2: an interim 100 then 200: one RESPONSE_HEADERS */
    {
        struct t_creq *q3 = cget(conn, "/interim");
        nghttp2_nv nv100[] = {T_NV(":status", "100")};
        int32_t id;

        T_H2PUMP(cl.evpl, t_h2peer_nstreams(&peer) == 4 && t_h2peer_stream_nth(&peer, 3)->end,
                 5000);
        id = t_h2peer_stream_nth(&peer, 3)->id;
        T_EQ(nghttp2_submit_headers(peer.s, NGHTTP2_FLAG_NONE, id, NULL, nv100, 1, NULL), 0);
        t_h2peer_respond(&peer, id, "200", "final");
        T_H2PUMP(cl.evpl, t_creq_done(q3), 5000);
        T_EQ(q3->n_failed, 0);
        T_EQ(q3->n_headers, 1);
        T_EQ(q3->status_final, 200);
        T_BYTES_EQ(q3->body.p, q3->body.len, "final");
        T_EV_MATCH("/interim", q3->ev, "SHd?C");
    }

    /* malformed responses (RFC 9113 8.1.1): a :status that is not three
     * digits, a body longer than its content-length: BAD_RESPONSE, not
     * CONN_LOST (the connection itself is fine) */
    {
        struct t_creq *q4 = cget(conn, "/bad-status"), *q5;
        nghttp2_nv bad[] = {T_NV(":status", "abc")};
        nghttp2_nv cl2[] = {T_NV(":status", "200"), T_NV("content-length", "2")};
        int32_t id;

        T_H2PUMP(cl.evpl, t_h2peer_nstreams(&peer) == 5 && t_h2peer_stream_nth(&peer, 4)->end,
                 5000);
        id = t_h2peer_stream_nth(&peer, 4)->id;
        T_EQ(nghttp2_submit_headers(peer.s, NGHTTP2_FLAG_END_STREAM, id, NULL, bad, 1, NULL), 0);
        T_H2PUMP(cl.evpl, t_creq_done(q4), 5000);
        expect_failed(q4, "SF");
        T_EQ(q4->status_final, EVPL_HTTP_ERROR_BAD_RESPONSE);

        q5 = cget(conn, "/long-body");
        T_H2PUMP(cl.evpl, t_h2peer_nstreams(&peer) == 6 && t_h2peer_stream_nth(&peer, 5)->end,
                 5000);
        id = t_h2peer_stream_nth(&peer, 5)->id;
        {
            struct t_h2s *st = t_h2s_get(&peer, id);
            nghttp2_data_provider dp = {.source.ptr = st, .read_callback = t_h2_read_cb};

            t_buf_adds(&st->out, "longer than two");
            T_EQ(nghttp2_submit_response(peer.s, id, cl2, 2, &dp), 0);
        }
        T_H2PUMP(cl.evpl, t_creq_done(q5), 5000);
        fprintf(stderr, "  client /long-body: events %s status %d\n", q5->ev, q5->status_final);
        T_EQ(q5->n_failed, 1);
        T_EQ(q5->status_final, EVPL_HTTP_ERROR_BAD_RESPONSE);

        /* three digits but not 100..599 (as HTTP/1 status lines): under
         * 100 was taken for an interim response, so the body that followed
         * came as a response without RESPONSE_HEADERS, and a HEADERS that
         * ended the stream as CONN_LOST; 600 and up were accepted
         * (helper-79) */
        for (int k = 0; k < 4; k++) {
            static const char *const codes[] = {"099", "000", "600", "999"};
            struct t_creq *q = cget(conn, "/bad-range");
            nghttp2_nv nv[] = {T_NV(":status", codes[k])};

            T_H2PUMP(cl.evpl,
                     t_h2peer_nstreams(&peer) == 7 + k && t_h2peer_stream_nth(&peer, 6 + k)->end,
                     5000);
            id = t_h2peer_stream_nth(&peer, 6 + k)->id;
            if (k % 2 == 0) { /* the head, then DATA "ok" */
                struct t_h2s *st = t_h2s_get(&peer, id);
                nghttp2_data_provider dp = {.source.ptr = st, .read_callback = t_h2_read_cb};

                t_buf_adds(&st->out, "ok");
                T_EQ(nghttp2_submit_response(peer.s, id, nv, 1, &dp), 0);
            } else {
                T_EQ(nghttp2_submit_headers(peer.s, NGHTTP2_FLAG_END_STREAM, id, NULL, nv, 1, NULL),
                     0);
            }
            T_H2PUMP(cl.evpl, t_creq_done(q), 5000);
            fprintf(stderr, "  client :status %s: events %s status %d\n", codes[k], q->ev,
                    q->status_final);
            T_EQ(q->n_failed, 1);
            T_EQ(q->status_final, EVPL_HTTP_ERROR_BAD_RESPONSE);
        }
    }

    t_h2pump_for(cl.evpl, NULL, 30);
    t_client_check_terminal(&cl);
    evpl_http_client_close(cl.agent, conn);
    t_h2pump_for(cl.evpl, NULL, 30);
    t_h2peer_free(&peer);
    t_client_free_reqs(&cl);
    evpl_http_destroy(cl.agent);
    t_rawsrv_close(&rs);
    evpl_destroy(cl.evpl);
    evpl_endpoint_close(ep);
}

static void
client_goaway_and_http1_server(void)
{
    struct t_rawsrv rs;
    struct t_h2peer peer;
    struct evpl_endpoint *ep;
    struct evpl_http_conn *conn, *conn1;
    struct t_creq *q0, *q1, *q2, *h[2];

    fprintf(stderr, "-- client: GOAWAY below an outstanding stream; then a new request\n");
    client_begin(NULL, NULL);
    t_evpl = cl.evpl;
    t_rawsrv_open(&rs);
    ep = evpl_endpoint_create("127.0.0.1", rs.port);
    conn = evpl_http_client_connect(cl.agent, EVPL_STREAM_SOCKET_TCP, ep, EVPL_HTTP_VERSION_HTTP2,
                                    &cl);
    q0 = cget(conn, "/below");
    q1 = cget(conn, "/above");
    T_H2PUMP(cl.evpl, rs.nconns == 1, 5000);
    t_h2peer_init(&peer, &rs.conns[0], 1);
    T_H2PUMP(cl.evpl, t_h2peer_nstreams(&peer) == 2 && t_h2peer_stream_nth(&peer, 1)->end, 5000);
    /* last stream id = the first request's: the second was never processed */
    T_EQ(nghttp2_submit_goaway(peer.s, NGHTTP2_FLAG_NONE, t_h2peer_stream_nth(&peer, 0)->id,
                               NGHTTP2_NO_ERROR, NULL, 0),
         0);
    t_h2peer_respond(&peer, t_h2peer_stream_nth(&peer, 0)->id, "200", "last one");
    T_H2PUMP(cl.evpl, t_creq_done(q0) && t_creq_done(q1), 5000);
    T_EQ(q0->n_failed, 0);
    T_EQ(q0->status_final, 200);
    T_BYTES_EQ(q0->body.p, q0->body.len, "last one");
    expect_failed(q1, "SF");
    /* a request after GOAWAY: exactly one terminal notification */
    q2 = cget(conn, "/after-goaway");
    T_H2PUMP(cl.evpl, t_creq_done(q2), 5000);
    fprintf(stderr, "  client /after-goaway: events %s status %d\n", q2->ev, q2->status_final);
    T_EQ(q2->n_failed, 1);
    t_h2pump_for(cl.evpl, NULL, 30);
    t_client_check_terminal(&cl);
    evpl_http_client_close(cl.agent, conn);
    t_h2pump_for(cl.evpl, NULL, 30);
    t_h2peer_free(&peer);

    fprintf(stderr, "-- client: h2c against a server that answers HTTP/1.1\n");
    conn1 = evpl_http_client_connect(cl.agent, EVPL_STREAM_SOCKET_TCP, ep, EVPL_HTTP_VERSION_HTTP2,
                                     &cl);
    h[0] = cget(conn1, "/h1-0");
    h[1] = cget(conn1, "/h1-1");
    T_H2PUMP(cl.evpl, rs.nconns == 2 && rs.conns[1].in.len >= 24, 5000);
    T_OK(memcmp(rs.conns[1].in.p, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24) == 0);
    fprintf(stderr, "  ok: the client preface\n");
    t_raw_sends(&rs.conns[1], "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                              "Connection: close\r\n\r\n");
    T_H2PUMP(cl.evpl, t_creq_done(h[0]) && t_creq_done(h[1]), 5000);
    T_H2PUMP(cl.evpl, t_raw_closed(&rs.conns[1]), 5000);
    expect_failed(h[0], "S?F");
    expect_failed(h[1], "S?F");
    t_h2pump_for(cl.evpl, NULL, 30);
    t_client_check_terminal(&cl);
    evpl_http_client_close(cl.agent, conn1);
    t_client_free_reqs(&cl);
    evpl_http_destroy(cl.agent);
    t_rawsrv_close(&rs);
    evpl_destroy(cl.evpl);
    evpl_endpoint_close(ep);
}

static void
server_protocol_error(void)
{
    struct t_raw raw;
    struct t_h2peer peer;
    static const char bad_frame[9] = {0, 0, 0, 0 /* DATA */, 0, 0, 0, 0, 0 /* stream 0 */};

    fprintf(stderr, "-- server: a connection error (DATA on stream 0), a request held\n");
    t_app_start(&app);
    app.hook = hold_hook;
    t_raw_open(&raw, app.ep);
    t_h2peer_init(&peer, &raw, 0);
    t_h2peer_request(&peer, "GET", "/hold/pe", NULL, 0, 0);
    T_H2PUMP(app.evpl, app.nreqs == 1 && app.reqs[0].n_complete == 1, 5000);
    peer.active = 0; /* from here on, raw bytes */
    t_raw_send(&raw, bad_frame, sizeof(bad_frame));
    T_H2PUMP(app.evpl, app.reqs[0].req == NULL, 5000);
    T_EV_EQ(&app.reqs[0], "DCF");
    T_H2PUMP(app.evpl, t_raw_closed(&raw), 5000);
    fprintf(stderr, "  ok: connection closed by the server\n");
    t_h2peer_free(&peer);
    t_app_stop(&app);
}

static void
server_raw_client(void)
{
    struct t_raw raw;
    struct t_h2peer peer;
    int32_t s_body, s_held, s_frob, s_lower, s_ok;
    int n;

    fprintf(stderr, "-- server: a raw h2 client resets streams; unknown methods\n");
    t_app_start(&app);
    app.hook = hold_hook;
    t_raw_open(&raw, app.ep);
    t_h2peer_init(&peer, &raw, 0);

    /* a POST whose body stops half-way, then RST_STREAM */
    s_body = t_h2peer_request(&peer, "POST", "/body", "0123456789", 10, 1);
    T_H2PUMP(app.evpl, app.nreqs == 1 && app.reqs[0].body.len == 10, 5000);
    T_EQ(evpl_http_request_protocol(app.reqs[0].req), EVPL_HTTP_PROTOCOL_HTTP2);
    t_h2peer_rst(&peer, s_body, NGHTTP2_CANCEL);
    T_H2PUMP(app.evpl, app.reqs[0].req == NULL, 5000);
    fprintf(stderr, "  server /body: events %s status %d\n", app.reqs[0].ev,
            app.reqs[0].failed_status);
    T_EV_MATCH("server /body", app.reqs[0].ev, "Dd?F");

    /* a GET received whole, its response held, then RST_STREAM */
    s_held = t_h2peer_request(&peer, "GET", "/hold", NULL, 0, 0);
    T_H2PUMP(app.evpl, app.nreqs == 2 && app.reqs[1].n_complete == 1, 5000);
    t_h2peer_rst(&peer, s_held, NGHTTP2_CANCEL);
    T_H2PUMP(app.evpl, app.reqs[1].req == NULL, 5000);
    T_EV_EQ(&app.reqs[1], "DCF");

    /* methods the server does not implement: 501, never dispatched */
    n = app.nreqs;
    s_frob = t_h2peer_request(&peer, "FROB", "/frob", NULL, 0, 0);
    s_lower = t_h2peer_request(&peer, "get", "/lower", NULL, 0, 0);
    T_H2PUMP(app.evpl, t_h2s_get(&peer, s_frob)->end && t_h2s_get(&peer, s_lower)->end, 5000);
    T_EQ(t_h2s_get(&peer, s_frob)->status, 501);
    T_EQ(t_h2s_get(&peer, s_lower)->status, 501);
    fprintf(stderr, "  501 response fields:\n%s", t_buf_str(&t_h2s_get(&peer, s_frob)->hdrs));
    T_EQ(app.nreqs, n);
    fprintf(stderr, "  ok: FROB and get -> 501, dispatch not called\n");

    /* SETTINGS_MAX_CONCURRENT_STREAMS 100 (§6) */
    T_EQ(nghttp2_session_get_remote_settings(peer.s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS), 100);
    fprintf(stderr, "  ok: SETTINGS_MAX_CONCURRENT_STREAMS 100\n");

    /* §3.1 rule 4: a response prepared at dispatch is not written before
     * the request has been received whole */
    {
        int32_t id;
        int k = app.nreqs;

        early = 1;
        id = t_h2peer_request(&peer, "POST", "/early", "abc", 3, 1);
        T_H2PUMP(app.evpl, app.nreqs == k + 1 && app.reqs[k].body.len == 3, 5000);
        T_OK(app.reqs[k].responded);
        t_h2pump_for(app.evpl, NULL, 50);
        T_EQ(t_h2s_get(&peer, id)->status, 0);
        T_EQ(app.reqs[k].n_rcomplete, 0);
        fprintf(stderr, "  ok: no response while the request body is open\n");
        t_h2peer_more(&peer, id, "def", 3, 1);
        T_H2PUMP(app.evpl, t_h2s_get(&peer, id)->end, 5000);
        T_EQ(t_h2s_get(&peer, id)->status, 200);
        T_BYTES_EQ(t_h2s_get(&peer, id)->body.p, t_h2s_get(&peer, id)->body.len, "early!");
        T_HPUMP(app.evpl, app.reqs[k].req == NULL, 5000);
        T_BYTES_EQ(app.reqs[k].body.p, app.reqs[k].body.len, "abcdef");
        T_EV_MATCH("server /early", app.reqs[k].ev, "Dd*CW*R");
        early = 0;
    }

    /* the connection is still good */
    s_ok = t_h2peer_request(&peer, "GET", "/ok", NULL, 0, 0);
    T_H2PUMP(app.evpl, t_h2s_get(&peer, s_ok)->end, 5000);
    T_EQ(t_h2s_get(&peer, s_ok)->status, 200);
    T_BYTES_EQ(t_h2s_get(&peer, s_ok)->body.p, t_h2s_get(&peer, s_ok)->body.len, "hello world");
    T_EQ(peer.goaway, 0);
    T_EQ(peer.err, 0);
    T_EQ(t_h2s_get(&peer, s_body)->rst, 0);

    /* the client drops the connection: two held requests fail */
    n = app.nreqs;
    t_h2peer_request(&peer, "GET", "/hold/a", NULL, 0, 0);
    t_h2peer_request(&peer, "POST", "/body/b", "xy", 2, 1);
    T_H2PUMP(app.evpl, app.nreqs == n + 2 && app.reqs[n + 1].body.len == 2, 5000);
    t_h2peer_free(&peer);
    t_raw_abort(&raw);
    T_H2PUMP(app.evpl, app.reqs[n].req == NULL && app.reqs[n + 1].req == NULL, 5000);
    T_EV_EQ(&app.reqs[n], "DCF");
    T_EV_MATCH("server /body/b", app.reqs[n + 1].ev, "Dd?F");
    T_EQ(app.reqs[n].failed_status, EVPL_HTTP_ERROR_CONN_LOST);
    T_EQ(app.reqs[n + 1].failed_status, EVPL_HTTP_ERROR_CONN_LOST);
    t_app_stop(&app);
}

#endif /* T_HAVE_NGHTTP2 */

static void
server_agent_destroyed(void)
{
    struct t_creq *q[3];
    struct evpl_http_conn *conn;

    fprintf(stderr, "-- client: the server's agent is destroyed, requests outstanding\n");
    t_app_start(&app);
    app.hook = hold_hook;
    client_begin(NULL, NULL);
    conn = evpl_http_client_connect(cl.agent, EVPL_STREAM_SOCKET_TCP, app.ep,
                                    EVPL_HTTP_VERSION_HTTP2, &cl);
    q[0] = cget(conn, "/hold/0");
    q[1] = cget(conn, "/hold/1");
    {
        /* one with a body in progress */
        q[2] = t_creq_new(&cl, conn, EVPL_HTTP_REQUEST_TYPE_POST, "/body/2");
        T_EQ(evpl_http_request_add_header(q[2]->req, "Host", "h2.test"), 0);
        evpl_http_client_set_request_length(q[2]->req, 100);
        t_add_str(cl.evpl, q[2]->req, "partial");
        t_creq_dispatch(q[2]);
    }
    T_H2PUMP2(app.evpl, cl.evpl,
              app.nreqs == 3 && app.reqs[0].n_complete && app.reqs[1].n_complete &&
                  app.reqs[2].body.len == 7,
              5000);
    evpl_http_server_destroy(app.agent, app.server);
    evpl_http_destroy(app.agent);
    for (int i = 0; i < 3; i++) {
        fprintf(stderr, "  server %s: events %s\n", app.reqs[i].url, app.reqs[i].ev);
        T_EQ(app.reqs[i].n_failed, 1);
        T_EQ(app.reqs[i].n_rcomplete + app.reqs[i].n_bad, 0);
    }
    T_H2PUMP(cl.evpl, t_creq_done(q[0]) && t_creq_done(q[1]) && t_creq_done(q[2]), 5000);
    t_h2pump_for(cl.evpl, NULL, 30);
    expect_failed(q[0], "SF");
    expect_failed(q[1], "SF");
    expect_failed(q[2], "W*F");
    for (int i = 0; i < 3; i++) {
        T_EQ(q[i]->status_final, EVPL_HTTP_ERROR_CONN_LOST);
    }
    t_client_check_terminal(&cl);
    evpl_http_client_close(cl.agent, conn);
    evpl_http_destroy(cl.agent);
    evpl_destroy(cl.evpl);
    t_client_free_reqs(&cl);
    evpl_listener_destroy(app.listener);
    evpl_destroy(app.evpl);
    evpl_endpoint_close(app.ep);
    t_app_check_terminal(&app);
    t_app_free_reqs(&app);
}

static void
agent_destroy_both_sides(void)
{
    struct evpl_http_conn *conn, *dead = NULL;
    struct t_creq *q[4];
    int nq = 0;
#ifdef T_HAVE_NGHTTP2
    struct t_rawsrv rs;
    struct t_h2peer peer;
    struct evpl_endpoint *rep;
#endif

    fprintf(stderr, "-- statement 17: evpl_http_destroy, h2 requests outstanding both sides\n");
    t_app_start(&app);
    app.hook = hold_hook;
    client_begin(app.evpl, app.agent);
    conn = evpl_http_client_connect(app.agent, EVPL_STREAM_SOCKET_TCP, app.ep,
                                    EVPL_HTTP_VERSION_HTTP2, &cl);
    q[nq++] = cget(conn, "/hold/x");
    q[nq++] = cget(conn, "/hold/y");
    q[nq] = t_creq_new(&cl, conn, EVPL_HTTP_REQUEST_TYPE_PUT, "/body/z");
    T_EQ(evpl_http_request_add_header(q[nq]->req, "Host", "h2.test"), 0);
    evpl_http_client_set_request_chunked(q[nq]->req);
    t_add_str(cl.evpl, q[nq]->req, "some");
    t_creq_dispatch(q[nq]);
    nq++;
#ifdef T_HAVE_NGHTTP2
    /* and a request to a raw h2 server that never answers */
    t_rawsrv_open(&rs);
    rep = evpl_endpoint_create("127.0.0.1", rs.port);
    dead = evpl_http_client_connect(app.agent, EVPL_STREAM_SOCKET_TCP, rep, EVPL_HTTP_VERSION_HTTP2,
                                    &cl);
    q[nq++] = cget(dead, "/silent");
    T_H2PUMP(app.evpl, rs.nconns == 1, 5000);
    t_h2peer_init(&peer, &rs.conns[0], 1);
    T_H2PUMP(app.evpl, t_h2peer_nstreams(&peer) == 1, 5000);
#endif
    T_H2PUMP(app.evpl, app.nreqs == 3 && app.reqs[2].body.len == 4, 5000);
    t_h2pump_for(app.evpl, NULL, 30);
    for (int i = 0; i < nq; i++) {
        T_EQ(q[i]->n_failed + q[i]->n_complete, 0);
    }
    for (int i = 0; i < 3; i++) {
        T_EQ(app.reqs[i].n_failed + app.reqs[i].n_rcomplete, 0);
    }
    evpl_http_server_destroy(app.agent, app.server);
    evpl_http_destroy(app.agent);
    for (int i = 0; i < 3; i++) {
        fprintf(stderr, "  server %s: events %s\n", app.reqs[i].url, app.reqs[i].ev);
        T_EQ(app.reqs[i].n_failed, 1);
        T_EQ(app.reqs[i].n_rcomplete + app.reqs[i].n_bad, 0);
    }
    for (int i = 0; i < nq; i++) {
        fprintf(stderr, "  client %s: events %s status %d\n", q[i]->url, q[i]->ev,
                q[i]->status_final);
        T_EQ(q[i]->n_failed, 1);
        T_EQ(q[i]->n_complete + q[i]->n_bad, 0);
        T_LT(q[i]->status_final, 0);
    }
    T_EQ(cl.errors, 0);
    T_EQ(app.errors, 0);
    (void) dead;
#ifdef T_HAVE_NGHTTP2
    t_h2peer_free(&peer);
    t_rawsrv_close(&rs);
    evpl_endpoint_close(rep);
#endif
    evpl_listener_destroy(app.listener);
    evpl_destroy(app.evpl);
    evpl_endpoint_close(app.ep);
    t_app_free_reqs(&app);
    t_client_free_reqs(&cl);
}

int
main(void)
{
    t_net_guard(120);
    t_h2_require();
    signal(SIGPIPE, SIG_IGN);
#ifdef T_HAVE_NGHTTP2
    client_raw_server_drop();
    client_raw_server_rst();
    client_goaway_and_http1_server();
    server_raw_client();
    server_protocol_error();
#endif
    server_agent_destroyed();
    agent_destroy_both_sides();
    fprintf(stderr, "PASS\n");
    return 0;
}
