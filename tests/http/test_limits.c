/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * http_max_header_size (core.md config table; http.md §2, §3.4, §4.2, §5)
 * set to 100: the agent floors it at 512.
 *  - server: a ~400-byte request head is served, a ~700-byte one gets 400
 *    (statement 12);
 *  - evpl_http_request_add_header: -1 once the outbound block would exceed
 *    512 - 256 bytes; evpl_http_request_add_trailer: the whole 512 (the
 *    library adds no trailer lines);
 *  - evpl_http_request_create: NULL exactly when len(method) + len(url) +
 *    12 + 256 > 512;
 *  - client: a ~400-byte response head is accepted, a ~700-byte one fails
 *    with BAD_RESPONSE (statement 12).
 */
#include "t_http.h"

static struct t_app app;
static struct t_client cl;
static struct t_rawsrv rs;
static int budget_checked;

static char *
head_of(const char *first, size_t total)
{
    struct t_buf b = {0};

    t_buf_adds(&b, first);
    t_buf_adds(&b, "X-Pad: ");
    while (b.len + 4 < total) {
        t_buf_add(&b, "p", 1);
    }
    t_buf_adds(&b, "\r\n\r\n");
    return b.p;
}

static void
hook(struct t_app *a, struct t_sreq *r, int type)
{
    (void) a;
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        if (strcmp(r->url, "/budget") == 0) {
            char v[101];

            memset(v, 'v', 100);
            v[100] = '\0';
            T_EQ(evpl_http_request_add_header(r->req, "X-A", v), 0);
            T_EQ(evpl_http_request_add_header(r->req, "X-B", v), 0);
            /* ~321 bytes of fields > 512 - 256 */
            T_EQ(evpl_http_request_add_header(r->req, "X-C", v), -1);
            T_OK(evpl_http_response_header(r->req, "X-C") == NULL);
            /* trailers: 4 x 107 bytes fit in 512, a fifth does not */
            for (int i = 0; i < 4; i++) {
                T_EQ(evpl_http_request_add_trailer(r->req, "X-T", v), 0);
            }
            T_EQ(evpl_http_request_add_trailer(r->req, "X-U", v), -1);
            budget_checked = 1;
        }
        evpl_http_server_dispatch_default(r->req, 200);
    }
}

int
main(void)
{
    struct evpl_global_config *cfg;
    struct t_raw c;
    char *h;

    t_net_guard(60);
    cfg = evpl_global_config_init();
    evpl_global_config_set_http_max_header_size(cfg, 100);
    evpl_init(cfg);

    t_app_start(&app);
    app.hook = hook;

    fprintf(stderr, "-- server: 400-byte head served (floor 512)\n");
    t_raw_open(&c, app.ep);
    h = head_of("GET /small HTTP/1.1\r\nHost: x\r\n", 400);
    T_EQ_U(strlen(h), 400);
    t_raw_sends(&c, h);
    free(h);
    t_expect_response(&c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 0\r\n\r\n", "");

    fprintf(stderr, "-- server: add_header budget\n");
    t_raw_sends(&c, "GET /budget HTTP/1.1\r\nHost: x\r\n\r\n");
    {
        struct t_msg m = {0};

        t_raw_read_msg(&c, 0, 0, &m);
        T_STR_EQ(m.start, "HTTP/1.1 200 OK");
        T_EQ(t_msg_header_count(&m, "X-A"), 1);
        T_EQ(t_msg_header_count(&m, "X-B"), 1);
        T_EQ(t_msg_header_count(&m, "X-C"), 0);
        t_msg_free(&m);
    }
    T_EQ(budget_checked, 1);

    fprintf(stderr, "-- server: 700-byte head rejected\n");
    h = head_of("GET /large HTTP/1.1\r\nHost: x\r\n", 700);
    t_raw_sends(&c, h);
    free(h);
    t_expect_rejection(&c, 400);
    t_expect_closed(&c);
    t_raw_close(&c);
    T_EQ(app.nreqs, 2);

    fprintf(stderr, "-- client: request_create limit\n");
    t_rawsrv_open(&rs);
    memset(&cl, 0, sizeof(cl));
    cl.evpl = app.evpl;
    cl.agent = app.agent;
    cl.ep = evpl_endpoint_create("127.0.0.1", rs.port);
    cl.conn = evpl_http_client_connect(cl.agent, EVPL_STREAM_SOCKET_TCP, cl.ep,
                                       EVPL_HTTP_VERSION_HTTP1, &cl);
    {
        char url[300];
        struct t_creq *r;
        struct t_raw *s;

        url[0] = '/';
        memset(url + 1, 'u', 241);
        url[242] = '\0';
        /* 3 + 242 + 12 + 256 = 513 > 512 */
        T_OK(evpl_http_request_create(cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, url) == NULL);
        url[241] = '\0';
        /* 3 + 241 + 12 + 256 = 512 */
        r = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, url);
        t_creq_dispatch(r);
        T_HPUMP(cl.evpl, rs.nconns == 1, 5000);
        s = &rs.conns[0];
        {
            struct t_msg m = {0};

            t_raw_read_msg(s, 1, 0, &m);
            T_EQ_U(strlen(m.start), 4 + 241 + 9);
            t_msg_free(&m);
        }

        fprintf(stderr, "-- client: 400-byte response head accepted\n");
        h = head_of("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", 400);
        t_raw_sends(s, h);
        free(h);
        T_HPUMP(cl.evpl, t_creq_done(r), 5000);
        T_EQ(r->n_complete, 1);
        T_EQ(r->status_final, 200);

        fprintf(stderr, "-- client: 700-byte response head: BAD_RESPONSE\n");
        r = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, "/big");
        t_creq_dispatch(r);
        {
            struct t_msg m = {0};

            t_raw_read_msg(s, 1, 0, &m);
            t_msg_free(&m);
        }
        h = head_of("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", 700);
        t_raw_sends(s, h);
        free(h);
        T_HPUMP(cl.evpl, t_creq_done(r), 5000);
        T_EQ(r->n_failed, 1);
        T_EQ(r->status_final, EVPL_HTTP_ERROR_BAD_RESPONSE);
    }
    evpl_http_client_close(cl.agent, cl.conn);
    t_client_check_terminal(&cl);
    t_rawsrv_close(&rs);
    evpl_endpoint_close(cl.ep);
    t_client_free_reqs(&cl);

    t_app_stop(&app);
    fprintf(stderr, "PASS\n");
    return 0;
}
