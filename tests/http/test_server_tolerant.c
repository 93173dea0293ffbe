/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * What the server tolerates (http.md §3.4 "Tolerated"): bare LF line ends,
 * empty lines before the request line, runs of SP/HT between request-line
 * tokens, obsolete line folding, whitespace around field values, HTTP/1.x
 * with x > 1 (served as 1.1), identical repeated Content-Length, chunk
 * extensions, trailer sections (malformed trailer lines dropped).  And
 * Expect: 100-continue: §8 statement 7 (interim response on HTTP/1.1
 * before the body is sent; none on HTTP/1.0; other expectations ignored).
 */
#include "t_http.h"

static struct t_app app;

static void
hook(struct t_app *a, struct t_sreq *r, int type)
{
    (void) a;
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        char b[256];

        /* echo what was parsed: body length and body */
        snprintf(b, sizeof(b), "%zu:%s", r->body.len, t_buf_str(&r->body));
        t_respond_simple(r, 200, b);
    }
}

static struct t_sreq *
last_req(void)
{
    T_GT(app.nreqs, 0);
    return &app.reqs[app.nreqs - 1];
}

static void
expect_ok(struct t_raw *c, const char *version, const char *body)
{
    char head[256];

    snprintf(head, sizeof(head), "%s 200 OK\r\nDate: <DATE>\r\nContent-Length: %zu\r\n\r\n",
             version, strlen(body));
    t_expect_response(c, 0, head, body);
}

int
main(void)
{
    struct t_raw c;
    const char *v;

    t_net_guard(60);
    t_app_start(&app);
    app.hook = hook;
    t_raw_open(&c, app.ep);

    fprintf(stderr, "-- bare LF line ends\n");
    t_raw_sends(&c, "GET /lf HTTP/1.1\nHost: x\nX-A: 1\n\n");
    expect_ok(&c, "HTTP/1.1", "0:");
    T_STR_EQ(last_req()->url, "/lf");
    T_STR_EQ(t_buf_str(&last_req()->headers), "Host: x\nX-A: 1\n");

    fprintf(stderr, "-- empty lines before the request line\n");
    t_raw_sends(&c, "\r\n\r\nGET /empty HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_ok(&c, "HTTP/1.1", "0:");
    T_STR_EQ(last_req()->url, "/empty");

    fprintf(stderr, "-- runs of SP/HT between request-line tokens\n");
    t_raw_sends(&c, "GET  \t /sp \t  HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_ok(&c, "HTTP/1.1", "0:");
    T_STR_EQ(last_req()->url, "/sp");
    T_EQ(last_req()->url_len, 3);

    fprintf(stderr, "-- obsolete line folding and value whitespace\n");
    t_raw_sends(&c, "GET /fold HTTP/1.1\r\nHost: x\r\nX-F: a\r\n  b\r\n\tc\r\nX-W: \t  v v \t\r\n"
                    "X-Last: z\r\n\r\n");
    expect_ok(&c, "HTTP/1.1", "0:");
    T_STR_EQ(t_buf_str(&last_req()->headers), "Host: x\nX-F: a b c\nX-W: v v\nX-Last: z\n");

    fprintf(stderr, "-- HTTP/1.2 served as 1.1\n");
    t_raw_sends(&c, "GET /v12 HTTP/1.2\r\nHost: x\r\n\r\n");
    expect_ok(&c, "HTTP/1.1", "0:");

    fprintf(stderr, "-- identical repeated Content-Length\n");
    t_raw_sends(
        &c, "POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
    expect_ok(&c, "HTTP/1.1", "5:hello");

    fprintf(stderr, "-- chunk extensions ignored, trailers stored\n");
    t_raw_sends(&c, "POST /ext HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5;name=val\r\nhello\r\n1;a;b=\"q\"\r\n!\r\n0;last\r\nX-T: 1\r\n\r\n");
    expect_ok(&c, "HTTP/1.1", "6:hello!");
    T_STR_EQ(t_buf_str(&last_req()->trailers), "X-T: 1\n");

    fprintf(stderr, "-- malformed trailer lines dropped\n");
    t_raw_sends(&c, "POST /badtr HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "2\r\nok\r\n0\r\nX-Good: g\r\nbadline\r\nX-Also: h\r\n\r\n");
    expect_ok(&c, "HTTP/1.1", "2:ok");
    v = t_buf_str(&last_req()->trailers);
    T_OK(strstr(v, "X-Good: g\n") != NULL);
    T_OK(strstr(v, "badline") == NULL);
    fprintf(stderr, "  ok: trailers \"%s\"\n", t_esc(v, strlen(v)));
    /* and the connection is still in sync */
    t_raw_sends(&c, "GET /sync HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_ok(&c, "HTTP/1.1", "0:");

    fprintf(stderr, "-- statement 7: Expect: 100-continue on HTTP/1.1\n");
    t_raw_sends(&c, "POST /cont HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: "
                    "4\r\n\r\n");
    {
        struct t_msg m = {0};

        /* the interim response arrives before any body byte is sent */
        t_raw_read_msg(&c, 0, 0, &m);
        T_STR_EQ(m.start, "HTTP/1.1 100 Continue");
        T_EQ_U(m.body.len, 0);
        t_msg_free(&m);
    }
    /* §3.1 rule 1: dispatched on the header block, before any body byte */
    T_STR_EQ(last_req()->url, "/cont");
    T_EQ(last_req()->n_complete, 0);
    T_EV_EQ(last_req(), "D");
    T_EQ_U(c.in.len, 0);
    t_raw_sends(&c, "body");
    expect_ok(&c, "HTTP/1.1", "4:body");

    fprintf(stderr, "-- statement 7: not on HTTP/1.0\n");
    {
        struct t_raw c10;

        t_raw_open(&c10, app.ep);
        t_raw_sends(&c10, "POST /cont10 HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: "
                          "4\r\nConnection: keep-alive\r\n\r\n");
        t_expect_silent_open(&c10, 200);
        t_raw_sends(&c10, "body");
        t_expect_response(&c10, 0,
                          "HTTP/1.0 200 OK\r\nDate: <DATE>\r\nConnection: keep-alive\r\n"
                          "Content-Length: 6\r\n\r\n",
                          "4:body");
        T_EQ_U(c10.in.len, 0);
        t_raw_close(&c10);
    }

    fprintf(stderr, "-- other expectations ignored\n");
    t_raw_sends(&c, "POST /other HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Length: "
                    "2\r\n\r\n");
    t_expect_silent_open(&c, 150);
    t_raw_sends(&c, "xy");
    expect_ok(&c, "HTTP/1.1", "2:xy");
    T_EQ_U(c.in.len, 0);

    t_raw_close(&c);
    T_HPUMP(app.evpl, last_req()->req == NULL, 5000);
    t_app_stop(&app);
    fprintf(stderr, "PASS\n");
    return 0;
}
