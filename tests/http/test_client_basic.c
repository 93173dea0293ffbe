/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * HTTP/1.1 client against a raw TCP server (http.md §4, §5): the exact
 * request bytes (§8 statement 18: one Host, Content-Length: 0 without a
 * body; application Host replaces the automatic one; header order; methods
 * in upper case, UNKNOWN as GET; length-framed body staged and from
 * WANT_DATA; chunked body with a trailer); responses: Content-Length,
 * chunked with trailers (readable at RECEIVE_COMPLETE), HEAD / 204 / 304
 * without body whatever the headers say, 100 Continue skipped (statement
 * 14), pipelined responses matched in order, unknown transfer coding and
 * HTTP/1.0 without length -> close-delimited (statement 15); status and
 * response-header accessors; request_create's size limit; statement 17.
 */
#include "t_http.h"

static struct t_client cl;
static struct t_rawsrv rs;
static char host[64];
static int order[64], norder;

static void
record_order(struct t_creq *r, int type)
{
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE || type == EVPL_HTTP_NOTIFY_FAILED) {
        order[norder++] = r->idx;
    }
}

static void
want_hook(struct t_creq *r, int type)
{
    record_order(r, type);
    if (type == EVPL_HTTP_NOTIFY_WANT_DATA && r->want_step == 0) {
        r->want_step = 1;
        t_add_str(cl.evpl, r->req, "0123456789");
    }
}

static void
expect_request(struct t_raw *s, const char *want_head, const char *want_body)
{
    struct t_msg m = {0};

    t_raw_read_msg(s, 1, 0, &m);
    T_BYTES_EQ(m.head.p, m.head.len, want_head);
    T_BYTES_EQ(t_buf_str(&m.body), m.body.len, want_body);
    t_msg_free(&m);
}

static struct t_creq *
new_req(enum evpl_http_request_type method, const char *url)
{
    struct t_creq *r = t_creq_new(&cl, cl.conn, method, url);

    r->hook = record_order;
    return r;
}

/* S (sent), H, optional d, C */
static void
expect_ok_events(struct t_creq *r)
{
    if (strcmp(r->ev, "SHC") != 0) {
        T_CEV_EQ(r, "SHdC");
    } else {
        fprintf(stderr, "  ok: client request %d events SHC\n", r->idx);
    }
}

int
main(void)
{
    struct t_raw *s;
    struct t_creq *r, *r2;
    char want[8192 + 256];

    t_net_guard(60);
    t_rawsrv_open(&rs);
    snprintf(host, sizeof(host), "127.0.0.1:%d", rs.port);
    t_client_start(&cl, rs.port);
    T_HPUMP(cl.evpl, rs.nconns == 1, 5000);
    s = &rs.conns[0];

    fprintf(stderr, "-- statement 18: GET without body\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/path?q=1");
    T_EQ(evpl_http_request_status(r->req), 0);
    T_EQ(evpl_http_request_type(r->req), EVPL_HTTP_REQUEST_TYPE_GET);
    T_STR_EQ(evpl_http_request_type_to_string(r->req), "Get");
    {
        int len = -1;

        T_STR_EQ(evpl_http_request_url(r->req, &len), "/path?q=1");
        T_EQ(len, 9);
    }
    r->probe_name = "x-resp";
    t_creq_dispatch(r);
    T_EQ(r->n_failed, 0);
    snprintf(want, sizeof(want), "GET /path?q=1 HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n",
             host);
    expect_request(s, want, "");
    T_EQ(r->n_headers, 0);
    t_raw_sends(s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Resp: a\r\nX-Resp: b\r\n\r\nhello");
    T_HPUMP(cl.evpl, t_creq_done(r), 5000);
    expect_ok_events(r);
    T_EQ(r->status_headers, 200);
    T_EQ(r->status_final, 200);
    T_BYTES_EQ(r->body.p, r->body.len, "hello");
    T_STR_EQ(t_buf_str(&r->headers), "Content-Length: 5\nX-Resp: a\nX-Resp: b\n");
    T_STR_EQ(r->hdr_probe, "a");

    fprintf(stderr, "-- application headers, application Host; 204 with a length\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/");
    T_EQ(evpl_http_request_add_header(r->req, "X-A", "1"), 0);
    T_EQ(evpl_http_request_add_header(r->req, "Host", "custom.example"), 0);
    T_EQ(evpl_http_request_add_header(r->req, "X-B", "2"), 0);
    T_EQ(evpl_http_request_add_header(r->req, "X-Bad", "a\r\nInjected: 1"), -1);
    T_EQ(evpl_http_request_add_header(r->req, "Bad Name", "v"), -1);
    T_STR_EQ(evpl_http_request_header(r->req, "HOST"), "custom.example");
    T_OK(evpl_http_request_header(r->req, "Injected") == NULL);
    T_EQ(evpl_http_request_protocol(r->req), EVPL_HTTP_PROTOCOL_HTTP1);
    t_creq_dispatch(r);
    expect_request(s,
                   "GET / HTTP/1.1\r\nX-A: 1\r\nHost: custom.example\r\nX-B: 2\r\n"
                   "Content-Length: 0\r\n\r\n",
                   "");
    t_raw_sends(s, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
    T_HPUMP(cl.evpl, t_creq_done(r), 5000);
    T_CEV_EQ(r, "SHC");
    T_EQ(r->status_headers, 204);
    T_EQ_U(r->body.len, 0);

    fprintf(stderr, "-- POST with a staged body; chunked response with trailers\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_POST, "/p");
    T_STR_EQ(evpl_http_request_type_to_string(r->req), "Post");
    evpl_http_client_set_request_length(r->req, 5);
    t_add_str(cl.evpl, r->req, "hello");
    t_creq_dispatch(r);
    snprintf(want, sizeof(want), "POST /p HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n\r\n", host);
    expect_request(s, want, "hello");
    t_raw_sends(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\r\nwor\r\n2;ext=1\r\nld\r\n0\r\nX-Sum: abc\r\nX-Two: 2\r\n\r\n");
    T_HPUMP(cl.evpl, t_creq_done(r), 5000);
    expect_ok_events(r);
    T_BYTES_EQ(r->body.p, r->body.len, "world");
    T_STR_EQ(t_buf_str(&r->trailers), "X-Sum: abc\nX-Two: 2\n");

    fprintf(stderr, "-- PUT whose body comes from WANT_DATA\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_PUT, "/w");
    r->hook = want_hook;
    evpl_http_client_set_request_length(r->req, 10);
    t_creq_dispatch(r);
    snprintf(want, sizeof(want), "PUT /w HTTP/1.1\r\nHost: %s\r\nContent-Length: 10\r\n\r\n", host);
    expect_request(s, want, "0123456789");
    t_raw_sends(s, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    T_HPUMP(cl.evpl, t_creq_done(r), 5000);
    T_CEV_EQ(r, "WSHC");
    T_EQ(r->status_headers, 201);

    fprintf(stderr, "-- DELETE, HEAD (no body whatever the length), UNKNOWN as GET\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_DELETE, "/d");
    t_creq_dispatch(r);
    snprintf(want, sizeof(want), "DELETE /d HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n",
             host);
    expect_request(s, want, "");
    t_raw_sends(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    T_HPUMP(cl.evpl, t_creq_done(r), 5000);
    T_BYTES_EQ(r->body.p, r->body.len, "ok");

    r = new_req(EVPL_HTTP_REQUEST_TYPE_HEAD, "/h");
    t_creq_dispatch(r);
    snprintf(want, sizeof(want), "HEAD /h HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n", host);
    expect_request(s, want, "");
    r2 = new_req(EVPL_HTTP_REQUEST_TYPE_UNKNOWN, "/u");
    t_creq_dispatch(r2);
    snprintf(want, sizeof(want), "GET /u HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n", host);
    expect_request(s, want, "");
    /* both responses in one write: the HEAD one has no body */
    t_raw_sends(s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                   "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    T_HPUMP(cl.evpl, t_creq_done(r) && t_creq_done(r2), 5000);
    T_CEV_EQ(r, "SHC");
    T_EQ_U(r->body.len, 0);
    expect_ok_events(r2);
    T_BYTES_EQ(r2->body.p, r2->body.len, "abc");

    fprintf(stderr, "-- chunked request body with a trailer\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_POST, "/c");
    evpl_http_client_set_request_chunked(r->req);
    t_add_str(cl.evpl, r->req, "hello");
    t_add_str(cl.evpl, r->req, " world");
    T_EQ(evpl_http_request_add_trailer(r->req, "X-T", "1"), 0);
    T_EQ(evpl_http_request_add_trailer(r->req, "Bad Name", "1"), -1);
    evpl_http_request_add_datav(r->req, NULL, 0);
    T_EQ(evpl_http_request_add_trailer(r->req, "X-Late", "1"), -1);
    t_creq_dispatch(r);
    {
        struct t_msg m = {0};

        t_raw_read_msg(s, 1, 0, &m);
        snprintf(want, sizeof(want),
                 "POST /c HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n", host);
        T_BYTES_EQ(m.head.p, m.head.len, want);
        T_BYTES_EQ(m.body.p, m.body.len, "hello world");
        T_EQ(m.ntr, 1);
        T_STR_EQ(m.tn[0], "X-T");
        T_STR_EQ(m.tv[0], "1");
        t_msg_free(&m);
    }
    t_raw_sends(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    T_HPUMP(cl.evpl, t_creq_done(r), 5000);
    T_CEV_EQ(r, "SHC");

    fprintf(stderr, "-- statement 14: 100 Continue skipped; 304 without body\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/cont");
    t_creq_dispatch(r);
    r2 = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/nm");
    t_creq_dispatch(r2);
    snprintf(want, sizeof(want), "GET /cont HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n",
             host);
    expect_request(s, want, "");
    snprintf(want, sizeof(want), "GET /nm HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n", host);
    expect_request(s, want, "");
    t_raw_sends(s, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                   "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n");
    T_HPUMP(cl.evpl, t_creq_done(r) && t_creq_done(r2), 5000);
    T_EQ(r->n_headers, 1);
    T_EQ(r->status_headers, 200);
    expect_ok_events(r);
    T_BYTES_EQ(r->body.p, r->body.len, "ok");
    T_CEV_EQ(r2, "SHC");
    T_EQ(r2->status_headers, 304);

    fprintf(stderr, "-- request_create size limit (default 8192)\n");
    {
        char *url = malloc(8000);
        struct evpl_http_request *q;

        T_OK(url != NULL);
        url[0] = '/';
        memset(url + 1, 'u', 7922 - 1);
        url[7922] = '\0';
        /* 3 + 7922 + 12 + 256 > 8192 */
        q = evpl_http_request_create(cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, url);
        T_OK(q == NULL);
        url[7921] = '\0';
        /* 3 + 7921 + 12 + 256 == 8192: fits */
        r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, url);
        t_creq_dispatch(r);
        snprintf(want, sizeof(want), "GET %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n",
                 url, host);
        expect_request(s, want, "");
        t_raw_sends(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        T_HPUMP(cl.evpl, t_creq_done(r), 5000);
        T_CEV_EQ(r, "SHC");
        free(url);
    }

    fprintf(stderr, "-- pipelined responses matched in order\n");
    norder = 0;
    r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/1");
    t_creq_dispatch(r);
    r2 = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/2");
    t_creq_dispatch(r2);
    snprintf(want, sizeof(want), "GET /1 HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n", host);
    expect_request(s, want, "");
    snprintf(want, sizeof(want), "GET /2 HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n", host);
    expect_request(s, want, "");
    t_raw_sends(s, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
                   "HTTP/1.1 202 Accepted\r\nContent-Length: 3\r\n\r\ntwo");
    T_HPUMP(cl.evpl, t_creq_done(r) && t_creq_done(r2), 5000);
    T_BYTES_EQ(r->body.p, r->body.len, "one");
    T_BYTES_EQ(r2->body.p, r2->body.len, "two");
    T_EQ(r2->status_headers, 202);
    T_EQ(norder, 2);
    T_EQ(order[0], r->idx);
    T_EQ(order[1], r2->idx);

    fprintf(stderr, "-- unknown transfer coding: close-delimited\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/gz");
    t_creq_dispatch(r);
    snprintf(want, sizeof(want), "GET /gz HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n", host);
    expect_request(s, want, "");
    t_raw_sends(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw bytes 0\r\n\r\n");
    T_HPUMP(cl.evpl, r->n_headers == 1 && !t_raw_out_pending(s), 5000);
    t_hpump_for(cl.evpl, 50);
    T_EQ(r->n_complete + r->n_failed, 0); /* not complete before the close */
    t_raw_close(s);
    T_HPUMP(cl.evpl, t_creq_done(r), 5000);
    expect_ok_events(r);
    T_BYTES_EQ(r->body.p, r->body.len, "raw bytes 0\r\n\r\n");
    evpl_http_client_close(cl.agent, cl.conn);

    fprintf(stderr, "-- statement 15: HTTP/1.0 response without Content-Length\n");
    cl.conn = evpl_http_client_connect(cl.agent, EVPL_STREAM_SOCKET_TCP, cl.ep,
                                       EVPL_HTTP_VERSION_AUTO, &cl);
    T_OK(cl.conn != NULL);
    r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/10");
    t_creq_dispatch(r);
    T_HPUMP(cl.evpl, rs.nconns == 2, 5000);
    s = &rs.conns[1];
    snprintf(want, sizeof(want), "GET /10 HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n", host);
    expect_request(s, want, "");
    {
        char big[20000];

        for (size_t i = 0; i < sizeof(big); i++) {
            big[i] = (char) ('a' + i % 26);
        }
        t_raw_sends(s, "HTTP/1.0 200 OK\r\n\r\n");
        t_raw_send(s, big, sizeof(big));
        T_HPUMP(cl.evpl, !t_raw_out_pending(s), 5000);
        t_raw_close(s);
        T_HPUMP(cl.evpl, t_creq_done(r), 5000);
        expect_ok_events(r);
        T_EQ(r->status_headers, 200);
        T_EQ_U(r->body.len, sizeof(big));
        T_OK(memcmp(r->body.p, big, sizeof(big)) == 0);
        fprintf(stderr, "  ok: %zu bytes until close\n", sizeof(big));
    }
    evpl_http_client_close(cl.agent, cl.conn);

    t_client_finish(&cl, &rs);
    fprintf(stderr, "PASS\n");
    return 0;
}
