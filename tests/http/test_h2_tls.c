/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * HTTP/2 over TLS via ALPN (http.md §3 evpl_http_attach, §4.1 protocol
 * selection, §6, §8 statement 19): our server on EVPL_STREAM_SOCKET_TLS
 * and our clients on one loop.
 *   VERSION_AUTO  -> HTTP/2 on both sides; the same callback sequences as
 *                    over h2c (GET, 1 MiB length-framed POST, chunked
 *                    bodies with trailers both ways);
 *   VERSION_HTTP2 -> HTTP/2;
 *   VERSION_HTTP1 -> HTTP/1 on both sides (offers no ALPN);
 *   curl --http2 / --http1.1 against the TLS server (when curl is there);
 *   statement 17: destroy with h2-over-TLS requests outstanding.
 * Certificates from the tls_certs fixture (T_CERTS, tests/tls/gen-certs.sh).
 */
#include "t_h2.h"

#define BIG  (1u << 20)
#define SEED 0x3131u

static struct t_app app;
static struct t_client cl;
static char certs[512];
static char *big;
static int sproto[T_APP_MAXREQ];
static int cproto[T_CL_MAXREQ];
static char srv_trl[64], cli_trl[64];

static const char *
cert(const char *name)
{
    static char path[4][600];
    static int k;
    char *p = path[k++ & 3];

    snprintf(p, sizeof(path[0]), "%s/%s", certs, name);
    return p;
}

static void
server_hook(struct t_app *a, struct t_sreq *r, int type)
{
    struct evpl_http_request *req = r->req;

    if (type == T_EV_DISPATCH) {
        sproto[r->idx] = (int) evpl_http_request_protocol(req) + 1;
        return;
    }
    if (strncmp(r->url, "/hold", 5) == 0) {
        return;
    }
    if (strcmp(r->url, "/chunked") == 0 && type == EVPL_HTTP_NOTIFY_WANT_DATA) {
        if (r->want_step == 0) {
            t_add_str(a->evpl, req, "second;");
            T_EQ(evpl_http_request_add_trailer(req, "X-Resp-Trl", "t2"), 0);
            evpl_http_request_add_datav(req, NULL, 0);
        }
        r->want_step++;
        return;
    }
    if (type != EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        return;
    }
    if (strcmp(r->url, "/upload") == 0) {
        char b[128];

        snprintf(b, sizeof(b), "len=%zu check=%" PRId64, r->body.len,
                 r->body.len == BIG ? t_pattern_check(SEED, 0, r->body.p, BIG) : -2);
        t_respond_simple(r, 200, b);
    } else if (strcmp(r->url, "/chunked") == 0) {
        const char *t = evpl_http_request_trailer(req, "X-Req-Trl");

        snprintf(srv_trl, sizeof(srv_trl), "%s", t ? t : "(null)");
        evpl_http_server_set_response_chunked(req);
        r->responded = 1;
        evpl_http_server_dispatch_default(req, 200);
        t_add_str(a->evpl, req, "first;");
    } else {
        t_respond_simple(r, 200, "hello tls");
    }
}

static void
client_hook(struct t_creq *r, int type)
{
    if (type == EVPL_HTTP_NOTIFY_RESPONSE_HEADERS) {
        cproto[r->idx] = (int) evpl_http_request_protocol(r->req) + 1;
    }
    if (strcmp(r->url, "/chunked") != 0) {
        return;
    }
    if (type == EVPL_HTTP_NOTIFY_WANT_DATA && r->want_step++ == 0) {
        t_add_str(cl.evpl, r->req, "up-b");
        T_EQ(evpl_http_request_add_trailer(r->req, "X-Req-Trl", "r1"), 0);
        evpl_http_request_add_datav(r->req, NULL, 0);
    }
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        const char *t = evpl_http_request_trailer(r->req, "x-resp-trl");

        snprintf(cli_trl, sizeof(cli_trl), "%s", t ? t : "(null)");
    }
}

static struct t_creq *
new_req(struct evpl_http_conn *conn, enum evpl_http_request_type m, const char *url)
{
    struct t_creq *r = t_creq_new(&cl, conn, m, url);

    T_EQ(evpl_http_request_add_header(r->req, "Host", "localhost"), 0);
    r->hook = client_hook;
    return r;
}

static void
reset_records(void)
{
    t_client_check_terminal(&cl);
    t_app_check_terminal(&app);
    t_client_free_reqs(&cl);
    t_app_free_reqs(&app);
    cl.nreqs = 0;
    app.nreqs = 0;
    memset(sproto, 0, sizeof(sproto));
    memset(cproto, 0, sizeof(cproto));
}

static const char *
proto_name(int p)
{
    return p == EVPL_HTTP_PROTOCOL_HTTP2 + 1   ? "HTTP2"
           : p == EVPL_HTTP_PROTOCOL_HTTP1 + 1 ? "HTTP1"
                                               : "(none)";
}

/*
 * GET, a 1 MiB POST and chunked bodies with trailers on a connection made
 * with version; every request must travel as want_proto on both sides.
 */
static void
exchange(enum evpl_http_version version, enum evpl_http_protocol want_proto, const char *what)
{
    struct evpl_http_conn *conn;
    struct t_creq *g, *p, *c;
    char want[128];

    fprintf(stderr, "-- %s\n", what);
    conn = evpl_http_client_connect(app.agent, EVPL_STREAM_SOCKET_TLS, app.ep, version, &cl);
    T_OK(conn != NULL);
    g = new_req(conn, EVPL_HTTP_REQUEST_TYPE_GET, "/get");
    t_creq_dispatch(g);
    p = new_req(conn, EVPL_HTTP_REQUEST_TYPE_POST, "/upload");
    evpl_http_client_set_request_length(p->req, BIG);
    t_add_bytes(cl.evpl, p->req, big, BIG);
    t_creq_dispatch(p);
    c = new_req(conn, EVPL_HTTP_REQUEST_TYPE_PUT, "/chunked");
    evpl_http_client_set_request_chunked(c->req);
    t_add_str(cl.evpl, c->req, "up-a;");
    t_creq_dispatch(c);
    T_HPUMP(app.evpl, t_creq_done(g) && t_creq_done(p) && t_creq_done(c), 20000);
    T_HPUMP(app.evpl,
            app.nreqs == 3 && app.reqs[0].req == NULL && app.reqs[1].req == NULL &&
                app.reqs[2].req == NULL,
            5000);

    T_EQ(g->n_failed + p->n_failed + c->n_failed, 0);
    T_BYTES_EQ(g->body.p, g->body.len, "hello tls");
    snprintf(want, sizeof(want), "len=%u check=-1", BIG);
    T_BYTES_EQ(p->body.p, p->body.len, want);
    T_BYTES_EQ(c->body.p, c->body.len, "first;second;");
    T_STR_EQ(cli_trl, "t2");
    T_STR_EQ(srv_trl, "r1");
    for (int i = 0; i < 3; i++) {
        struct t_sreq *s = &app.reqs[i];
        const char *url = s->url;

        fprintf(stderr, "  %s: server %s, client %s\n", url, proto_name(sproto[i]),
                proto_name(cproto[i]));
        if (sproto[i] != (int) want_proto + 1 || cproto[i] != (int) want_proto + 1) {
            T_FAIL("%s: protocol server %s client %s, want %s", url, proto_name(sproto[i]),
                   proto_name(cproto[i]), proto_name((int) want_proto + 1));
        }
        if (strcmp(url, "/get") == 0) {
            T_EV_EQ(s, "DCR");
        } else if (strcmp(url, "/upload") == 0) {
            T_EV_MATCH("server /upload", s->ev, "Dd?CR");
        } else {
            T_EV_MATCH("server /chunked", s->ev, "Dd?CW+R");
            T_BYTES_EQ(s->body.p, s->body.len, "up-a;up-b");
        }
    }
    T_EV_MATCH("client /get", g->ev, "SHd?C");
    T_EV_MATCH("client /upload", p->ev, "SHd?C");
    T_EV_MATCH("client /chunked", c->ev, "W+SHd?C");
    evpl_http_client_close(app.agent, conn);
    t_hpump_for(app.evpl, 20);
    reset_records();
}

static void
curl_part(void)
{
    struct t_buf out = {0};
    char url[128], ca[700];

    if (!t_tool_exists("curl") ||
        system("curl --version 2>/dev/null | grep -qi 'nghttp2\\|HTTP2'") != 0) {
        fprintf(stderr, "-- curl over TLS: SKIPPED (no curl with HTTP/2)\n");
        return;
    }
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/curl", evpl_endpoint_port(app.ep));
    snprintf(ca, sizeof(ca), "%s", cert("ca.pem"));
    fprintf(stderr, "-- curl --http2 over TLS (ALPN h2)\n");
    {
        char *argv[] = {
            "curl", "-sS", "--http2", "--cacert", ca, "-w", "|%{http_version} %{response_code}",
            url,    NULL};

        T_EQ(t_tool_run(app.evpl, NULL, argv, &out, 20000), 0);
        fprintf(stderr, "  output: %s\n", t_buf_str(&out));
        T_BYTES_EQ(out.p, out.len, "hello tls|2 200");
    }
    T_HPUMP(app.evpl, app.nreqs == 1 && app.reqs[0].req == NULL, 5000);
    T_STR_EQ(proto_name(sproto[0]), "HTTP2");
    t_buf_free(&out);
    fprintf(stderr, "-- curl --http1.1 over TLS\n");
    {
        char *argv[] = {"curl", "-sS", "--http1.1", "-k", "-w", "|%{http_version} %{response_code}",
                        url,    NULL};

        T_EQ(t_tool_run(app.evpl, NULL, argv, &out, 20000), 0);
        fprintf(stderr, "  output: %s\n", t_buf_str(&out));
        T_BYTES_EQ(out.p, out.len, "hello tls|1.1 200");
    }
    T_HPUMP(app.evpl, app.nreqs == 2 && app.reqs[1].req == NULL, 5000);
    T_STR_EQ(proto_name(sproto[1]), "HTTP1");
    t_buf_free(&out);
    reset_records();
}

int
main(void)
{
    const char *dir = getenv("T_CERTS");
    struct evpl_global_config *cfg;
    struct evpl_http_conn *conn;
    struct t_creq *q[2];

    t_net_guard(120);
    t_h2_require();
    if (!dir || access(dir, R_OK) != 0) {
        T_SKIP("T_CERTS (made by gen-certs.sh) is not set");
    }
    snprintf(certs, sizeof(certs), "%s", dir);
    signal(SIGPIPE, SIG_IGN);
    cfg = evpl_global_config_init();
    evpl_global_config_set_tls_cert(cfg, cert("server.pem"));
    evpl_global_config_set_tls_key(cfg, cert("server.key"));
    evpl_global_config_set_tls_ca(cfg, cert("ca.pem"));
    evpl_init(cfg);

    big = malloc(BIG);
    T_OK(big != NULL);
    t_pattern_fill(SEED, 0, big, BIG);

    /* t_app_start, over TLS */
    memset(&app, 0, sizeof(app));
    app.drain = 1;
    app.evpl = t_net_loop();
    t_evpl = app.evpl;
    app.agent = evpl_http_init(app.evpl);
    app.ep = t_endpoint(EVPL_STREAM_SOCKET_TLS);
    app.listener = t_listen(EVPL_STREAM_SOCKET_TLS, app.ep);
    app.server = evpl_http_attach(app.agent, app.listener, t_app_dispatch, &app);
    T_OK(app.server != NULL);
    app.hook = server_hook;
    memset(&cl, 0, sizeof(cl));
    cl.evpl = app.evpl;
    cl.agent = app.agent;

    /* statement 19 */
    exchange(EVPL_HTTP_VERSION_AUTO, EVPL_HTTP_PROTOCOL_HTTP2, "TLS, VERSION_AUTO -> HTTP/2");
    exchange(EVPL_HTTP_VERSION_HTTP2, EVPL_HTTP_PROTOCOL_HTTP2, "TLS, VERSION_HTTP2 -> HTTP/2");
    exchange(EVPL_HTTP_VERSION_HTTP1, EVPL_HTTP_PROTOCOL_HTTP1, "TLS, VERSION_HTTP1 -> HTTP/1");
    curl_part();

    fprintf(stderr, "-- statement 17: destroy with h2-over-TLS requests outstanding\n");
    conn = evpl_http_client_connect(app.agent, EVPL_STREAM_SOCKET_TLS, app.ep,
                                    EVPL_HTTP_VERSION_AUTO, &cl);
    q[0] = new_req(conn, EVPL_HTTP_REQUEST_TYPE_GET, "/hold/1");
    t_creq_dispatch(q[0]);
    q[1] = new_req(conn, EVPL_HTTP_REQUEST_TYPE_GET, "/hold/2");
    t_creq_dispatch(q[1]);
    T_HPUMP(app.evpl, app.nreqs == 2 && app.reqs[1].n_complete == 1, 5000);
    T_STR_EQ(proto_name(sproto[0]), "HTTP2");
    evpl_http_server_destroy(app.agent, app.server);
    evpl_http_destroy(app.agent);
    for (int i = 0; i < 2; i++) {
        fprintf(stderr, "  server %s: %s; client: %s status %d\n", app.reqs[i].url, app.reqs[i].ev,
                q[i]->ev, q[i]->status_final);
        T_EV_EQ(&app.reqs[i], "DCF");
        T_CEV_EQ(q[i], "SF");
        T_LT(q[i]->status_final, 0);
    }
    t_client_check_terminal(&cl);
    T_EQ(app.errors, 0);
    evpl_listener_destroy(app.listener);
    evpl_destroy(app.evpl);
    evpl_endpoint_close(app.ep);
    t_client_free_reqs(&cl);
    t_app_free_reqs(&app);
    free(big);
    fprintf(stderr, "PASS\n");
    return 0;
}
