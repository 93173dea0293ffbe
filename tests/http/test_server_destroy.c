/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * evpl_http_server_destroy with connections open and the loop still
 * running (BEHAVIOUR.md): a request read before the destroy is answered,
 * and since nothing more is read on that connection its response says
 * `Connection: close` (http.md §3.2) before the connection closes; a
 * request sent after the destroy is never dispatched; an idle keep-alive
 * connection is closed.  HTTP/2 the same way: each connection gets GOAWAY
 * (NO_ERROR) naming the last stream begun, the held stream is answered,
 * and the connections then close, the idle one at once (they stayed open,
 * answering every new stream 503, until the agent was destroyed).
 */
#include "t_h2.h"

static struct t_app app;
static struct t_sreq *held;

/* t_app_stop without the server's destroy (done already) */
static void
app_end(void)
{
    evpl_http_destroy(app.agent);
    evpl_listener_destroy(app.listener);
    evpl_destroy(app.evpl);
    evpl_endpoint_close(app.ep);
    t_app_check_terminal(&app);
    t_app_free_reqs(&app);
} /* app_end */

static void
hook(struct t_app *a, struct t_sreq *r, int type)
{
    (void) a;
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        if (strcmp(r->url, "/hold") == 0) {
            held = r;
        } else {
            t_respond_simple(r, 200, "hello world");
        }
    }
}

#ifdef T_HAVE_NGHTTP2
static void
h2_part(void)
{
    struct t_raw c, idle;
    struct t_h2peer pc, pi;
    int32_t s_first, s_hold;

    fprintf(stderr, "-- HTTP/2\n");
    held = NULL;
    t_app_start(&app);
    app.hook = hook;
    t_raw_open(&idle, app.ep);
    t_h2peer_init(&pi, &idle, 0);
    s_first = t_h2peer_request(&pi, "GET", "/first", NULL, 0, 0);
    T_H2PUMP(app.evpl, t_h2s_get(&pi, s_first)->end, 3000);
    T_EQ(t_h2s_get(&pi, s_first)->status, 200);
    t_raw_open(&c, app.ep);
    t_h2peer_init(&pc, &c, 0);
    s_hold = t_h2peer_request(&pc, "GET", "/hold", NULL, 0, 0);
    T_H2PUMP(app.evpl, held != NULL, 3000);

    evpl_http_server_destroy(app.agent, app.server);
    T_H2PUMP(app.evpl, pc.goaway && pi.goaway, 3000);
    T_EQ_U(pc.goaway_code, NGHTTP2_NO_ERROR);
    T_H2PUMP(app.evpl, t_raw_closed(&idle), 3000);
    fprintf(stderr, "ok: GOAWAY on both; the idle connection closed\n");
    T_OK(!t_raw_closed(&c));
    t_respond_simple(held, 200, "held");
    T_H2PUMP(app.evpl, t_h2s_get(&pc, s_hold)->end, 3000);
    T_EQ(t_h2s_get(&pc, s_hold)->status, 200);
    T_STR_EQ(t_buf_str(&t_h2s_get(&pc, s_hold)->body), "held");
    T_H2PUMP(app.evpl, t_raw_closed(&c), 3000);
    fprintf(stderr, "ok: the held stream answered, then the connection closed\n");
    T_EQ(app.nreqs, 2);

    t_h2peer_free(&pc);
    t_h2peer_free(&pi);
    t_raw_close(&c);
    t_raw_close(&idle);
    app_end();
} /* h2_part */
#endif

int
main(void)
{
    struct t_raw c, idle;
    struct t_msg m = {0};
    const char *conn_hdr;

    t_net_guard(30);
    t_app_start(&app);
    app.hook = hook;
    t_raw_open(&idle, app.ep);
    t_raw_sends(&idle, "GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
    t_expect_response(&idle, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 11\r\n\r\n",
                      "hello world");
    t_raw_open(&c, app.ep);
    t_raw_sends(&c, "GET /hold HTTP/1.1\r\nHost: a\r\n\r\n");
    T_HPUMP(app.evpl, held != NULL, 3000);

    evpl_http_server_destroy(app.agent, app.server);
    t_hpump_for(app.evpl, 50);
    t_raw_sends(&c, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
    t_hpump_for(app.evpl, 50);
    t_respond_simple(held, 200, "held");

    t_raw_read_msg(&c, 0, 0, &m);
    T_STR_EQ(m.start, "HTTP/1.1 200 OK");
    T_STR_EQ(t_buf_str(&m.body), "held");
    conn_hdr = t_msg_header(&m, "Connection");
    T_OK(conn_hdr != NULL);
    T_STR_EQ(conn_hdr, "close");
    t_msg_free(&m);
    fprintf(stderr, "ok: the held request answered with Connection: close\n");

    T_HPUMP(app.evpl, t_raw_closed(&c), 3000);
    T_EQ_U(c.in.len, 0); /* nothing for /after */
    T_EQ(app.nreqs, 2);  /* /first and /hold only */
    T_HPUMP(app.evpl, t_raw_closed(&idle), 3000);
    fprintf(stderr, "ok: then closed; the later request not read; idle connection closed\n");

    t_raw_close(&c);
    t_raw_close(&idle);
    app_end();
#ifdef T_HAVE_NGHTTP2
    h2_part();
#endif
    fprintf(stderr, "PASS\n");
    return 0;
}
