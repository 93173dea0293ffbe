/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Parsers fed one byte per read (http.md §3.4, §4.2): every boundary of
 * request line, fields, obsolete folding, chunk-size lines, chunk data,
 * CRLFs and trailers falls between two reads.
 *  - server: a pipelined GET + chunked POST with extensions and trailers +
 *    Expect: 100-continue POST, byte by byte: exact bodies, trailers,
 *    responses in order;
 *  - client: 103 + 100 interim responses then a chunked response with
 *    trailers, then a length-framed one, byte by byte; a get_datav of more
 *    than buffered returns -1 on the client too.
 */
#include "t_http.h"

static struct t_app app;
static struct t_client cl;
static struct t_rawsrv rs;
static int overtake_checked;

static void
hook(struct t_app *a, struct t_sreq *r, int type)
{
    (void) a;
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        char b[256];

        snprintf(b, sizeof(b), "%.32s|%.64s|%.64s", r->url, t_buf_str(&r->body),
                 t_buf_str(&r->trailers));
        t_respond_simple(r, 200, b);
    }
}

static int
count_heads(struct t_raw *s)
{
    int n = 0;

    for (const char *p = s->in.p; p && (p = strstr(p, "\r\n\r\n")) != NULL; p += 4) {
        n++;
    }
    return n;
}

/* send s one byte per loop pass */
static void
trickle(struct t_raw *c, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        t_raw_send(c, s + i, 1);
        t_raw_io(c);
        T_EQ(t_raw_out_pending(c), 0);
        evpl_continue(t_evpl);
    }
}

static void
expect_body(struct t_raw *c, const char *body)
{
    char head[256];

    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: %zu\r\n\r\n",
             strlen(body));
    t_expect_response(c, 0, head, body);
}

/* client notify wrapper that checks get_datav(avail + 1) before draining */
static void
overtake_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
                enum evpl_http_notify_type type, enum evpl_http_request_type request_type,
                const char *uri, void *notify_data, void *private_data)
{
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_DATA || type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        uint64_t avail = evpl_http_request_get_data_avail(request);

        if (avail > 0) {
            T_EQ(evpl_http_request_get_datav(evpl, request, t_take_iov, (int) avail + 1), -1);
            T_EQ_U(evpl_http_request_get_data_avail(request), avail);
            overtake_checked++;
        }
    }
    t_client_notify(evpl, agent, request, type, request_type, uri, notify_data, private_data);
}

int
main(void)
{
    struct t_raw c;
    const char *req = "GET /a HTTP/1.1\r\nHost: x\r\nX-F: one\r\n two\r\n\r\n"
                      "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "a;ext=\"v\"\r\n0123456789\r\n3\r\nabc\r\n0\r\nX-T: tv\r\n\r\n"
                      "PUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwxyz";

    t_net_guard(60);
    t_app_start(&app);
    app.hook = hook;

    fprintf(stderr, "-- server, one byte per read\n");
    t_raw_open(&c, app.ep);
    trickle(&c, req, strlen(req));
    expect_body(&c, "/a||");
    expect_body(&c, "/b|0123456789abc|X-T: tv\n");
    expect_body(&c, "/c|wxyz|");
    T_EQ(app.nreqs, 3);
    T_STR_EQ(t_buf_str(&app.reqs[0].headers), "Host: x\nX-F: one two\n");

    fprintf(stderr, "-- server, Expect: 100-continue, one byte per read\n");
    {
        const char *h = "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                        "Content-Length: 3\r\n\r\n";
        struct t_msg m = {0};

        trickle(&c, h, strlen(h));
        t_raw_read_msg(&c, 0, 0, &m);
        T_STR_EQ(m.start, "HTTP/1.1 100 Continue");
        t_msg_free(&m);
        trickle(&c, "123", 3);
        expect_body(&c, "/e|123|");
    }
    t_raw_close(&c);

    fprintf(stderr, "-- client, one byte per read\n");
    t_rawsrv_open(&rs);
    memset(&cl, 0, sizeof(cl));
    cl.evpl = app.evpl;
    cl.agent = app.agent;
    cl.ep = evpl_endpoint_create("127.0.0.1", rs.port);
    cl.conn = evpl_http_client_connect(cl.agent, EVPL_STREAM_SOCKET_TCP, cl.ep,
                                       EVPL_HTTP_VERSION_HTTP1, &cl);
    {
        struct t_creq *r1 = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, "/1");
        struct t_creq *r2 = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, "/2");
        struct t_raw *s;
        const char *resp = "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
                           "HTTP/1.1 100 Continue\r\n\r\n"
                           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-H: 1\r\n\r\n"
                           "4;e=1\r\nwiki\r\n5\r\npedia\r\n0\r\nX-Sum: s\r\n\r\n"
                           "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond";

        r1->probe_name = "X-H";
        r1->in_dispatch = 1;
        evpl_http_request_dispatch(r1->req, overtake_notify, r1);
        r1->in_dispatch = 0;
        r2->in_dispatch = 1;
        evpl_http_request_dispatch(r2->req, overtake_notify, r2);
        r2->in_dispatch = 0;
        T_HPUMP(cl.evpl, rs.nconns == 1 && count_heads(&rs.conns[0]) == 2, 5000);
        s = &rs.conns[0];
        trickle(s, resp, strlen(resp));
        T_HPUMP(cl.evpl, t_creq_done(r1) && t_creq_done(r2), 5000);
        T_EQ(r1->n_headers, 1);
        T_EQ(r1->status_headers, 200);
        T_STR_EQ(r1->hdr_probe, "1");
        T_BYTES_EQ(r1->body.p, r1->body.len, "wikipedia");
        T_STR_EQ(t_buf_str(&r1->trailers), "X-Sum: s\n");
        T_EQ(r1->n_complete, 1);
        T_BYTES_EQ(r2->body.p, r2->body.len, "second");
        T_EQ(r2->n_complete, 1);
        T_GE(overtake_checked, 1);
        fprintf(stderr, "  ok: client get_datav(avail + 1) = -1 checked %d times\n",
                overtake_checked);
    }
    evpl_http_client_close(cl.agent, cl.conn);
    t_hpump_for(cl.evpl, 20);
    t_client_check_terminal(&cl);
    t_rawsrv_close(&rs);
    evpl_endpoint_close(cl.ep);
    t_client_free_reqs(&cl);

    t_app_stop(&app);
    fprintf(stderr, "PASS\n");
    return 0;
}
