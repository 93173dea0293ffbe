/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * HTTP/2 (h2c, prior knowledge) between our client and our server on one
 * loop (http.md §4.1, §5, §6, §3.1, §4.2): protocol HTTP2 on both sides;
 * callback sequences (server: dispatch, RECEIVE_DATA*, RECEIVE_COMPLETE,
 * WANT_DATA*, RESPONSE_COMPLETE; client: RESPONSE_COMPLETE,
 * RESPONSE_HEADERS, RECEIVE_DATA*, RECEIVE_COMPLETE); GET length-framed;
 * 4 MiB length-framed POST and GET checked byte for byte; at most 64
 * fields per block; chunked request and response bodies with trailers both
 * ways, and trailers on length-framed messages (evpl_http_request_trailer
 * at RECEIVE_COMPLETE); 50 concurrent requests on one connection answered
 * in reverse order; 120 at once (more than the advertised 100 streams:
 * the server sees 100 until it answers); 8 MiB and 32 MiB uploads the
 * server application reads only after a timer (flow control must hold the
 * client back, and not deadlock); HEAD and 204 without body; fields
 * lower-cased; connection-specific fields never sent; host -> :authority
 * -> Host (and a request without Host); date added; an HTTP/1 client still
 * served as HTTP/1 on the same listener; statement 17 on both sides.
 */
#include "t_h2.h"

#define UP_LEN   (4u << 20)
#define LATE_MAX (32u << 20)
#define USEED    0x4242u
#define LSEED    0x5151u
#define NMULTI   50
#define HOSTV    "h2.test:1234"

static struct t_app app;
static struct t_client cl;
static char *upload;
static char *late_up;

/* server side observations */
static char host_seen[T_APP_MAXREQ][64];
static int sproto_bad, sproto_n;
static char srv_trl[64], srv_trl2[64];

/* client side observations */
static int cproto[T_CL_MAXREQ];
static char cli_trl[64], cli_trl2[64];

/* more requests than SETTINGS_MAX_CONCURRENT_STREAMS */
#define NCAP 120
static int cap_hold;
struct cap {
    struct t_buf body;
    int done, failed, status;
};
static struct cap caps[NCAP];

static void
cap_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
           enum evpl_http_notify_type type, enum evpl_http_request_type request_type,
           const char *uri, void *notify_data, void *private_data)
{
    struct cap *c = notify_data;

    if (type == EVPL_HTTP_NOTIFY_RECEIVE_DATA || type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        t_take_all(evpl, request, &c->body);
    }
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        c->done++;
        c->status = evpl_http_request_status(request);
    }
    if (type == EVPL_HTTP_NOTIFY_FAILED) {
        c->failed++;
    }
}

/* the late reader */
static struct evpl_timer late_timer;
static struct t_sreq *late_req;
static int late_fired, late_reading;
static uint64_t late_avail_at_timer;
static size_t late_len;
static int late_complete_at_timer;

static void
respond_summary(struct t_sreq *r, uint64_t seed, size_t want_len)
{
    char b[256];
    int64_t bad = -2;

    if (r->body.len == want_len) {
        bad = t_pattern_check(seed, 0, r->body.p, want_len);
    }
    snprintf(b, sizeof(b), "%.64s len=%zu check=%" PRId64, r->url, r->body.len, bad);
    t_respond_simple(r, 200, b);
}

/* the late reader: takes nothing before the timer, then everything */
static void
late_timer_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    (void) timer;
    late_fired = 1;
    if (!late_req || !late_req->req) {
        late_complete_at_timer = -1; /* gone already (failed) */
        return;
    }
    late_avail_at_timer = evpl_http_request_get_data_avail(late_req->req);
    late_complete_at_timer = late_req->n_complete;
    late_reading = 1;
    t_take_all(evpl, late_req->req, &late_req->body);
    if (late_req->n_complete) {
        respond_summary(late_req, LSEED, late_len);
    }
}

static void
server_hook(struct t_app *a, struct t_sreq *r, int type)
{
    struct evpl_http_request *req = r->req;

    if (type == T_EV_DISPATCH) {
        const char *h = evpl_http_request_header(req, "Host");

        snprintf(host_seen[r->idx], sizeof(host_seen[0]), "%s", h ? h : "(null)");
        sproto_n++;
        if (evpl_http_request_protocol(req) != EVPL_HTTP_PROTOCOL_HTTP2) {
            sproto_bad++;
        }
        if (strcmp(r->url, "/late") == 0) {
            late_req = r;
            evpl_add_oneshot_timer(a->evpl, &late_timer, late_timer_cb, 400000);
        }
        return;
    }
    if (strcmp(r->url, "/late") == 0) {
        if (getenv("T_DEBUG")) {
            fprintf(stderr, "late: type %d avail %" PRIu64 " at %" PRIu64 "\n", type,
                    evpl_http_request_get_data_avail(req), t_now_ns() / 1000000);
        }
        if (late_reading &&
            (type == EVPL_HTTP_NOTIFY_RECEIVE_DATA || type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE)) {
            t_take_all(a->evpl, req, &r->body);
        }
        if (late_reading && type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
            respond_summary(r, LSEED, late_len);
        }
        return;
    }
    if (strcmp(r->url, "/chunked") == 0 && type == EVPL_HTTP_NOTIFY_WANT_DATA) {
        if (r->want_step < 3) {
            char piece[64];

            snprintf(piece, sizeof(piece), "piece-%d;", r->want_step);
            t_add_str(a->evpl, req, piece);
        } else if (r->want_step == 3) {
            T_EQ(evpl_http_request_add_trailer(req, "X-Resp-Trl", "t2"), 0);
            T_EQ(evpl_http_request_add_trailer(req, "X-Resp-Two", "2"), 0);
            evpl_http_request_add_datav(req, NULL, 0);
        }
        r->want_step++;
        return;
    }
    if (type != EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        return;
    }
    if (strcmp(r->url, "/upload") == 0) {
        respond_summary(r, USEED, UP_LEN);
    } else if (strcmp(r->url, "/chunked") == 0) {
        const char *t = evpl_http_request_trailer(req, "X-Req-Trl");
        const char *t2 = evpl_http_request_trailer(req, "x-req-two");

        snprintf(srv_trl, sizeof(srv_trl), "%s", t ? t : "(null)");
        snprintf(srv_trl2, sizeof(srv_trl2), "%s", t2 ? t2 : "(null)");
        evpl_http_server_set_response_chunked(req);
        T_EQ(evpl_http_request_add_header(req, "X-Kind", "chunked"), 0);
        r->responded = 1;
        evpl_http_server_dispatch_default(req, 200);
    } else if (strncmp(r->url, "/cap/", 5) == 0) {
        if (!cap_hold) {
            t_respond_simple(r, 200, r->url);
        }
    } else if (strncmp(r->url, "/multi/", 7) == 0) {
        /* answered from main(), in reverse order */
    } else if (strcmp(r->url, "/head") == 0) {
        evpl_http_server_set_response_length(req, 100);
        r->responded = 1;
        evpl_http_server_dispatch_default(req, 200);
    } else if (strcmp(r->url, "/nocontent") == 0) {
        evpl_http_server_set_response_length(req, 5);
        t_add_str(a->evpl, req, "hello");
        r->responded = 1;
        evpl_http_server_dispatch_default(req, 204);
    } else if (strcmp(r->url, "/download") == 0) {
        evpl_http_server_set_response_length(req, UP_LEN);
        t_add_bytes(a->evpl, req, upload, UP_LEN);
        r->responded = 1;
        evpl_http_server_dispatch_default(req, 200);
    } else if (strcmp(r->url, "/lentrl") == 0) {
        const char *t = evpl_http_request_trailer(req, "x-len-req");

        snprintf(srv_trl, sizeof(srv_trl), "%s", t ? t : "(null)");
        evpl_http_server_set_response_length(req, 6);
        T_EQ(evpl_http_request_add_trailer(req, "X-Len-Resp", "lr"), 0);
        t_add_str(a->evpl, req, "framed");
        r->responded = 1;
        evpl_http_server_dispatch_default(req, 200);
    } else if (strcmp(r->url, "/manyfields") == 0) {
        for (int i = 0; i < 70; i++) {
            char n[32];

            snprintf(n, sizeof(n), "X-F-%d", i);
            T_EQ(evpl_http_request_add_header(req, n, "v"), 0);
        }
        t_respond_simple(r, 200, "many");
    } else if (strcmp(r->url, "/connhdrs") == 0) {
        evpl_http_request_add_header(req, "Connection", "close");
        evpl_http_request_add_header(req, "Keep-Alive", "timeout=5");
        evpl_http_request_add_header(req, "Transfer-Encoding", "chunked");
        evpl_http_request_add_header(req, "Upgrade", "h2c");
        evpl_http_request_add_header(req, "Proxy-Connection", "keep-alive");
        T_EQ(evpl_http_request_add_header(req, "X-Ok", "1"), 0);
        t_respond_simple(r, 200, "conn-ok");
    } else {
        T_EQ(evpl_http_request_add_header(req, "X-Mixed-Case", "Value"), 0);
        t_respond_simple(r, 200, "hello world");
    }
}

static void
client_hook(struct t_creq *r, int type)
{
    if (type == EVPL_HTTP_NOTIFY_RESPONSE_HEADERS) {
        cproto[r->idx] = (int) evpl_http_request_protocol(r->req) + 1;
    }
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE && strcmp(r->url, "/chunked") == 0) {
        const char *t = evpl_http_request_trailer(r->req, "X-Resp-Trl");
        const char *t2 = evpl_http_request_trailer(r->req, "x-resp-two");

        snprintf(cli_trl, sizeof(cli_trl), "%s", t ? t : "(null)");
        snprintf(cli_trl2, sizeof(cli_trl2), "%s", t2 ? t2 : "(null)");
    }
    if (type == EVPL_HTTP_NOTIFY_WANT_DATA && strcmp(r->url, "/chunked") == 0) {
        if (r->want_step < 4) {
            char piece[64];

            snprintf(piece, sizeof(piece), "req-%d,", r->want_step);
            t_add_str(cl.evpl, r->req, piece);
        } else if (r->want_step == 4) {
            T_EQ(evpl_http_request_add_trailer(r->req, "X-Req-Trl", "r1"), 0);
            T_EQ(evpl_http_request_add_trailer(r->req, "X-Req-Two", "two"), 0);
            evpl_http_request_add_datav(r->req, NULL, 0);
        }
        r->want_step++;
    }
}

static struct t_creq *
new_req(enum evpl_http_request_type method, const char *url)
{
    struct t_creq *r = t_creq_new(&cl, cl.conn, method, url);

    T_EQ(evpl_http_request_add_header(r->req, "Host", HOSTV), 0);
    r->hook = client_hook;
    return r;
}

/* every request so far has finished on both sides: check and start afresh */
static void
section_end(const char *name)
{
    T_HPUMP(app.evpl, ({
                int all = 1;
                for (int i = 0; i < app.nreqs; i++) {
                    all &= app.reqs[i].req == NULL;
                }
                for (int i = 0; i < cl.nreqs; i++) {
                    all &= cl.reqs[i].req == NULL;
                }
                all;
            }),
            10000);
    t_client_check_terminal(&cl);
    t_app_check_terminal(&app);
    T_EQ(sproto_bad, 0);
    for (int i = 0; i < cl.nreqs; i++) {
        if (cl.reqs[i].n_headers) {
            if (cproto[i] != EVPL_HTTP_PROTOCOL_HTTP2 + 1) {
                T_FAIL("client request %d (%s): protocol %d, want HTTP2", i, cl.reqs[i].url,
                       cproto[i] - 1);
            }
        }
    }
    for (int i = 0; i < app.nreqs; i++) {
        if (strcmp(host_seen[i], HOSTV) != 0) {
            T_FAIL("server request %d (%s): Host \"%s\", want " HOSTV, i, app.reqs[i].url,
                   host_seen[i]);
        }
    }
    fprintf(stderr, "  ok: %s: %d server / %d client requests, protocol HTTP2, Host " HOSTV "\n",
            name, app.nreqs, cl.nreqs);
    t_client_free_reqs(&cl);
    t_app_free_reqs(&app);
    cl.nreqs = 0;
    app.nreqs = 0;
    memset(cproto, 0, sizeof(cproto));
    memset(host_seen, 0, sizeof(host_seen));
}

/* "reply-<n>:<request body>:" and n*80 more bytes */
static size_t
multi_body(int n, const char *reqbody, char *out)
{
    size_t k = (size_t) snprintf(out, 200, "reply-%d:%.64s:", n, reqbody);

    for (int j = 0; j < n * 80; j++) {
        out[k++] = (char) ('a' + (n + j) % 26);
    }
    out[k] = '\0';
    return k;
}

static void
expect_client_ok(struct t_creq *r, int status)
{
    T_EQ(r->n_failed, 0);
    T_EQ(r->status_final, status);
    T_EV_MATCH(r->url, r->ev, "SHd?C");
}

int
main(void)
{
    struct t_creq *r;
    struct t_sreq *s;

    t_net_guard(120);
    if (getenv("T_BUFFER_SIZE")) {
        /* buffers smaller than a 64 KiB fill (the variant http_test_h2_buf4k) */
        struct evpl_global_config *cfg = evpl_global_config_init();

        evpl_global_config_set_buffer_size(cfg, strtoull(getenv("T_BUFFER_SIZE"), NULL, 0));
        evpl_init(cfg);
    }
    t_h2_require();
    t_app_start(&app);
    app.hook = server_hook;
    upload = malloc(UP_LEN);
    late_up = malloc(LATE_MAX);
    T_OK(upload && late_up);
    t_pattern_fill(USEED, 0, upload, UP_LEN);
    t_pattern_fill(LSEED, 0, late_up, LATE_MAX);

    memset(&cl, 0, sizeof(cl));
    cl.evpl = app.evpl;
    cl.agent = app.agent;
    cl.conn = evpl_http_client_connect(app.agent, EVPL_STREAM_SOCKET_TCP, app.ep,
                                       EVPL_HTTP_VERSION_HTTP2, &cl);
    T_OK(cl.conn != NULL);

    fprintf(stderr, "-- GET, length-framed response; fields lower-cased; date\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/get?x=1");
    T_EQ(evpl_http_request_add_header(r->req, "X-Client-Case", "AbC"), 0);
    r->probe_name = "X-MIXED-CASE";
    t_creq_dispatch(r);
    T_HPUMP(app.evpl, t_creq_done(r), 5000);
    expect_client_ok(r, 200);
    T_BYTES_EQ(r->body.p, r->body.len, "hello world");
    T_STR_EQ(r->hdr_probe, "Value");
    fprintf(stderr, "  response fields:\n%s", t_buf_str(&r->headers));
    T_OK(t_has_field(&r->headers, "x-mixed-case: Value\n"));
    T_OK(!t_has_field(&r->headers, "X-Mixed-Case"));
    T_OK(t_has_field_name(&r->headers, "date"));
    T_HPUMP(app.evpl, app.nreqs == 1 && app.reqs[0].req == NULL, 5000);
    s = &app.reqs[0];
    T_EV_EQ(s, "DCR");
    T_EQ(s->type, EVPL_HTTP_REQUEST_TYPE_GET);
    T_STR_EQ(s->url, "/get?x=1");
    fprintf(stderr, "  request fields:\n%s", t_buf_str(&s->headers));
    T_OK(t_has_field(&s->headers, "x-client-case: AbC\n"));
    T_OK(!t_has_field(&s->headers, "X-Client-Case"));
    section_end("GET");

    fprintf(stderr, "-- POST, 4 MiB length-framed body, byte for byte\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_POST, "/upload");
    evpl_http_client_set_request_length(r->req, UP_LEN);
    t_add_bytes(cl.evpl, r->req, upload, UP_LEN);
    t_creq_dispatch(r);
    T_HPUMP(app.evpl, t_creq_done(r), 20000);
    expect_client_ok(r, 200);
    {
        char want[128];

        snprintf(want, sizeof(want), "/upload len=%u check=-1", UP_LEN);
        T_BYTES_EQ(r->body.p, r->body.len, want);
    }
    T_HPUMP(app.evpl, app.nreqs == 1 && app.reqs[0].req == NULL, 5000);
    T_EQ(app.reqs[0].type, EVPL_HTTP_REQUEST_TYPE_POST);
    T_EV_MATCH("server /upload", app.reqs[0].ev, "Dd?CR");
    section_end("POST 4 MiB");

    fprintf(stderr, "-- GET, 4 MiB length-framed response, byte for byte\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/download");
    t_creq_dispatch(r);
    T_HPUMP(app.evpl, t_creq_done(r), 20000);
    expect_client_ok(r, 200);
    T_EQ_U(r->body.len, UP_LEN);
    T_EQ(t_pattern_check(USEED, 0, r->body.p, UP_LEN), -1);
    fprintf(stderr, "  ok: 4 MiB intact\n");
    T_HPUMP(app.evpl, app.reqs[0].req == NULL, 5000);
    T_EV_EQ(&app.reqs[0], "DCR");
    section_end("download 4 MiB");

    fprintf(stderr, "-- 70 application fields: at most 64 per block, still answered\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/manyfields");
    t_creq_dispatch(r);
    T_HPUMP(app.evpl, t_creq_done(r), 5000);
    expect_client_ok(r, 200);
    T_BYTES_EQ(r->body.p, r->body.len, "many");
    {
        int n = 0;

        for (const char *p = t_buf_str(&r->headers); (p = strstr(p, "x-f-")) != NULL; p++) {
            n++;
        }
        fprintf(stderr, "  %d x-f-* fields arrived\n", n);
        T_LE(n, 64);
        T_GE(n, 50);
        T_OK(t_has_field(&r->headers, "x-f-0: v\n"));
    }
    section_end("many fields");

    fprintf(stderr, "-- chunked request and response bodies, trailers both ways\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_PUT, "/chunked");
    evpl_http_client_set_request_chunked(r->req);
    r->probe_name = "x-kind";
    t_creq_dispatch(r);
    T_HPUMP(app.evpl, t_creq_done(r), 5000);
    T_EQ(r->n_failed, 0);
    T_EQ(r->status_final, 200);
    T_EV_MATCH("client /chunked", r->ev, "W+SHd?C");
    T_BYTES_EQ(r->body.p, r->body.len, "piece-0;piece-1;piece-2;");
    T_STR_EQ(r->hdr_probe, "chunked");
    T_STR_EQ(cli_trl, "t2");
    T_STR_EQ(cli_trl2, "2");
    fprintf(stderr, "  response trailers:\n%s", t_buf_str(&r->trailers));
    T_OK(t_has_field(&r->trailers, "x-resp-trl: t2\n"));
    T_OK(!t_has_field_name(&r->headers, "transfer-encoding"));
    T_OK(!t_has_field_name(&r->headers, "x-resp-trl"));
    T_HPUMP(app.evpl, app.nreqs == 1 && app.reqs[0].req == NULL, 5000);
    s = &app.reqs[0];
    T_EQ(s->type, EVPL_HTTP_REQUEST_TYPE_PUT);
    T_EV_MATCH("server /chunked", s->ev, "Dd?CW+R");
    T_BYTES_EQ(s->body.p, s->body.len, "req-0,req-1,req-2,req-3,");
    T_STR_EQ(srv_trl, "r1");
    T_STR_EQ(srv_trl2, "two");
    fprintf(stderr, "  request trailers:\n%s", t_buf_str(&s->trailers));
    T_OK(t_has_field(&s->trailers, "x-req-trl: r1\n"));
    T_OK(!t_has_field_name(&s->headers, "transfer-encoding"));
    T_OK(!t_has_field_name(&s->headers, "x-req-trl"));
    section_end("chunked + trailers");

    fprintf(stderr, "-- trailers on length-framed messages (§5: sent for HTTP/2)\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_POST, "/lentrl");
    evpl_http_client_set_request_length(r->req, 4);
    T_EQ(evpl_http_request_add_trailer(r->req, "X-Len-Req", "lq"), 0);
    t_add_str(cl.evpl, r->req, "body");
    t_creq_dispatch(r);
    T_HPUMP(app.evpl, t_creq_done(r), 5000);
    expect_client_ok(r, 200);
    T_BYTES_EQ(r->body.p, r->body.len, "framed");
    fprintf(stderr, "  response trailers:\n%s", t_buf_str(&r->trailers));
    T_OK(t_has_field(&r->trailers, "x-len-resp: lr\n"));
    T_STR_EQ(srv_trl, "lq");
    T_HPUMP(app.evpl, app.reqs[0].req == NULL, 5000);
    T_BYTES_EQ(app.reqs[0].body.p, app.reqs[0].body.len, "body");
    T_EV_MATCH("server /lentrl", app.reqs[0].ev, "Dd?CR");
    section_end("length-framed + trailers");

    fprintf(stderr, "-- %d concurrent requests on one connection, answered in reverse\n", NMULTI);
    for (int i = 0; i < NMULTI; i++) {
        char url[64];

        snprintf(url, sizeof(url), "/multi/%d", i);
        r = new_req(i % 2 ? EVPL_HTTP_REQUEST_TYPE_GET : EVPL_HTTP_REQUEST_TYPE_POST, url);
        if (i % 2 == 0) {
            char body[64];

            snprintf(body, sizeof(body), "up-%d", i);
            evpl_http_client_set_request_length(r->req, strlen(body));
            t_add_str(cl.evpl, r->req, body);
        }
        t_creq_dispatch(r);
    }
    T_HPUMP(app.evpl, ({
                int n = 0;
                for (int i = 0; i < app.nreqs; i++) {
                    n += app.reqs[i].n_complete;
                }
                n == NMULTI;
            }),
            10000);
    T_EQ(app.nreqs, NMULTI);
    t_hpump_for(app.evpl, 20);
    for (int i = 0; i < NMULTI; i++) {
        T_EQ(cl.reqs[i].n_headers + cl.reqs[i].n_failed, 0);
    }
    /* all 50 were received before any answer: reply from the last to the first */
    for (int i = app.nreqs - 1; i >= 0; i--) {
        struct t_sreq *q = &app.reqs[i];
        char body[4200];

        multi_body(atoi(q->url + 7), t_buf_str(&q->body), body);
        t_respond_simple(q, 200, body);
    }
    T_HPUMP(app.evpl, ({
                int all = 1;
                for (int i = 0; i < NMULTI; i++) {
                    all &= t_creq_done(&cl.reqs[i]);
                }
                all;
            }),
            10000);
    for (int i = 0; i < NMULTI; i++) {
        char up[32], want[4200];
        size_t k;

        r = &cl.reqs[i];
        snprintf(up, sizeof(up), "up-%d", i);
        k = multi_body(i, i % 2 ? "" : up, want);
        if (r->n_failed || r->status_final != 200 || r->body.len != k ||
            memcmp(r->body.p, want, k) != 0) {
            T_FAIL("multi %d: failed %d status %d body %zu bytes \"%s\", want %zu \"%s\"", i,
                   r->n_failed, r->status_final, r->body.len,
                   t_esc(t_buf_str(&r->body), r->body.len > 60 ? 60 : r->body.len), k,
                   t_esc(want, k > 60 ? 60 : k));
        }
        T_EV_MATCH(r->url, r->ev, "SHd?C");
    }
    fprintf(stderr, "  ok: %d responses, each its own body\n", NMULTI);
    section_end("concurrent");

    fprintf(stderr, "-- %d requests at once, more than the 100 concurrent streams (§6)\n", NCAP);
    cap_hold = 1;
    for (int i = 0; i < NCAP; i++) {
        char url[32];
        struct evpl_http_request *q;

        snprintf(url, sizeof(url), "/cap/%d", i);
        q = evpl_http_request_create(cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, url);
        T_OK(q != NULL);
        T_EQ(evpl_http_request_add_header(q, "Host", HOSTV), 0);
        evpl_http_request_dispatch(q, cap_notify, &caps[i]);
    }
    T_HPUMP(app.evpl, app.nreqs >= 100, 5000);
    t_hpump_for(app.evpl, 50);
    fprintf(stderr, "  %d dispatched on the server while all are held\n", app.nreqs);
    T_EQ(app.nreqs, 100);
    cap_hold = 0;
    for (int i = 0; i < app.nreqs; i++) {
        t_respond_simple(&app.reqs[i], 200, app.reqs[i].url);
    }
    T_HPUMP(app.evpl, ({
                int n = 0;
                for (int i = 0; i < NCAP; i++) {
                    n += caps[i].done + caps[i].failed;
                }
                n == NCAP;
            }),
            10000);
    for (int i = 0; i < NCAP; i++) {
        char want[32];

        snprintf(want, sizeof(want), "/cap/%d", i);
        if (caps[i].failed || caps[i].done != 1 || caps[i].status != 200 ||
            strcmp(t_buf_str(&caps[i].body), want) != 0) {
            T_FAIL("cap %d: done %d failed %d status %d body \"%s\"", i, caps[i].done,
                   caps[i].failed, caps[i].status, t_buf_str(&caps[i].body));
        }
        t_buf_free(&caps[i].body);
    }
    fprintf(stderr, "  ok: all %d answered with their own bodies\n", NCAP);
    T_EQ(app.nreqs, NCAP);
    section_end("over the stream limit");

    /* 8 MiB: within what the server may buffer on its own (§3.1 rule 6:
     * about 1023 pieces); 32 MiB: beyond, so flow control must hold the
     * client back until the application reads, and then let it go on */
    for (int round = 0; round < 2; round++) {
        late_len = round == 0 ? (8u << 20) : LATE_MAX;
        fprintf(stderr, "-- %zu MiB upload the server reads only after a timer\n", late_len >> 20);
        app.drain = 0;
        late_req = NULL;
        late_fired = late_reading = 0;
        late_avail_at_timer = 0;
        late_complete_at_timer = 0;
        r = new_req(EVPL_HTTP_REQUEST_TYPE_POST, "/late");
        evpl_http_client_set_request_length(r->req, late_len);
        t_add_bytes(cl.evpl, r->req, late_up, late_len);
        t_creq_dispatch(r);
        T_HPUMP(app.evpl, late_fired, 5000);
        fprintf(stderr, "  at the timer: %" PRIu64 " bytes buffered, RECEIVE_COMPLETE %d\n",
                late_avail_at_timer, late_complete_at_timer);
        T_OK(late_req != NULL);
        T_GE(late_complete_at_timer, 0);
        T_EQ(r->n_failed, 0);
        if (round == 1) {
            /* flow control held the rest back */
            T_LT(late_avail_at_timer, late_len);
            T_EQ(late_complete_at_timer, 0);
        }
        T_HPUMP(app.evpl, t_creq_done(r), 30000);
        expect_client_ok(r, 200);
        {
            char want[128];

            snprintf(want, sizeof(want), "/late len=%zu check=-1", late_len);
            T_BYTES_EQ(r->body.p, r->body.len, want);
        }
        T_HPUMP(app.evpl, app.reqs[0].req == NULL, 5000);
        T_EV_MATCH("server /late", app.reqs[0].ev, "Dd?CR");
        app.drain = 1;
        section_end("late reader");
    }

    fprintf(stderr, "-- HEAD and 204: no body\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_HEAD, "/head");
    t_creq_dispatch(r);
    r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/nocontent");
    t_creq_dispatch(r);
    T_HPUMP(app.evpl, t_creq_done(&cl.reqs[0]) && t_creq_done(&cl.reqs[1]), 5000);
    T_EQ(cl.reqs[0].n_failed, 0);
    T_EQ(cl.reqs[0].status_final, 200);
    T_EQ_U(cl.reqs[0].body.len, 0);
    T_CEV_EQ(&cl.reqs[0], "SHC");
    T_EQ(cl.reqs[1].n_failed, 0);
    T_EQ(cl.reqs[1].status_final, 204);
    T_EQ_U(cl.reqs[1].body.len, 0);
    T_CEV_EQ(&cl.reqs[1], "SHC");
    T_HPUMP(app.evpl, app.reqs[0].req == NULL && app.reqs[1].req == NULL, 5000);
    T_EV_EQ(&app.reqs[0], "DCR");
    T_EV_EQ(&app.reqs[1], "DCR");
    T_EQ(app.reqs[0].type, EVPL_HTTP_REQUEST_TYPE_HEAD);
    section_end("HEAD / 204");

    fprintf(stderr, "-- connection-specific fields are not sent (either way)\n");
    r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/connhdrs");
    evpl_http_request_add_header(r->req, "Connection", "close");
    evpl_http_request_add_header(r->req, "Keep-Alive", "timeout=5");
    evpl_http_request_add_header(r->req, "Transfer-Encoding", "chunked");
    evpl_http_request_add_header(r->req, "Upgrade", "h2c");
    evpl_http_request_add_header(r->req, "Proxy-Connection", "keep-alive");
    T_EQ(evpl_http_request_add_header(r->req, "X-Req-Ok", "1"), 0);
    t_creq_dispatch(r);
    T_HPUMP(app.evpl, t_creq_done(r), 5000);
    expect_client_ok(r, 200);
    T_BYTES_EQ(r->body.p, r->body.len, "conn-ok");
    fprintf(stderr, "  response fields:\n%s", t_buf_str(&r->headers));
    T_OK(t_has_field(&r->headers, "x-ok: 1\n"));
    {
        static const char *const bad[] = {"connection", "keep-alive", "transfer-encoding",
                                          "upgrade", "proxy-connection"};

        T_HPUMP(app.evpl, app.nreqs == 1, 5000);
        fprintf(stderr, "  request fields:\n%s", t_buf_str(&app.reqs[0].headers));
        T_OK(t_has_field(&app.reqs[0].headers, "x-req-ok: 1\n"));
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            if (t_has_field_name(&r->headers, bad[i])) {
                T_FAIL("response carried %s", bad[i]);
            }
            if (t_has_field_name(&app.reqs[0].headers, bad[i])) {
                T_FAIL("request carried %s", bad[i]);
            }
        }
        fprintf(stderr, "  ok: none of connection/keep-alive/transfer-encoding/upgrade/"
                        "proxy-connection\n");
    }
    /* and the connection goes on ("Connection: close" means nothing in h2) */
    r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/after");
    t_creq_dispatch(r);
    T_HPUMP(app.evpl, t_creq_done(r), 5000);
    expect_client_ok(r, 200);
    T_BYTES_EQ(r->body.p, r->body.len, "hello world");
    section_end("connection-specific fields");

    fprintf(stderr, "-- a request without Host (no :authority, §6 QUIRK): one terminal\n");
    r = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, "/nohost");
    r->hook = client_hook;
    t_creq_dispatch(r);
    T_HPUMP(app.evpl, t_creq_done(r), 5000);
    t_hpump_for(app.evpl, 20);
    fprintf(stderr, "  client events %s status %d; server dispatched %d (Host %s)\n", r->ev,
            r->status_final, app.nreqs, app.nreqs ? host_seen[0] : "-");
    T_EQ(r->n_complete + r->n_failed, 1);
    if (app.nreqs) {
        /* §6 says "no host -> no :authority" (upstream); an :authority from
         * the automatic Host (§4.1: 127.0.0.1:<port>) is accepted too, as
         * RFC 9113 §8.3.1 asks for it: nothing else */
        char autoh[64];

        snprintf(autoh, sizeof(autoh), "127.0.0.1:%d", evpl_endpoint_port(app.ep));
        if (strcmp(host_seen[0], "(null)") != 0) {
            T_STR_EQ(host_seen[0], autoh);
            fprintf(stderr, "  note: :authority from the automatic Host (§6 says none)\n");
        }
        strcpy(host_seen[0], HOSTV); /* for section_end */
    }
    /* the connection is still usable */
    r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/after-nohost");
    t_creq_dispatch(r);
    T_HPUMP(app.evpl, t_creq_done(r), 5000);
    expect_client_ok(r, 200);
    section_end("no Host");

    fprintf(stderr, "-- an HTTP/1 client on the same listener is served as HTTP/1\n");
    {
        struct evpl_http_conn *c1 = evpl_http_client_connect(app.agent, EVPL_STREAM_SOCKET_TCP,
                                                             app.ep, EVPL_HTTP_VERSION_HTTP1, &cl);

        r = t_creq_new(&cl, c1, EVPL_HTTP_REQUEST_TYPE_GET, "/one");
        t_creq_dispatch(r);
        T_HPUMP(app.evpl, t_creq_done(r) && app.nreqs == 1 && app.reqs[0].req == NULL, 5000);
        T_EQ(r->status_final, 200);
        T_BYTES_EQ(r->body.p, r->body.len, "hello world");
        T_EQ(sproto_bad, 1); /* that one request was HTTP1 on the server */
        T_EV_EQ(&app.reqs[0], "DCR");
        sproto_bad = 0;
        t_client_check_terminal(&cl);
        t_client_free_reqs(&cl);
        cl.nreqs = 0;
        t_buf_free(&app.reqs[0].headers);
        app.nreqs = 0;
        evpl_http_client_close(app.agent, c1);
    }

    fprintf(stderr, "-- statement 17: close with requests outstanding (h2)\n");
    for (int i = 0; i < 3; i++) {
        r = new_req(EVPL_HTTP_REQUEST_TYPE_GET, "/multi/held");
        t_creq_dispatch(r);
    }
    T_HPUMP(app.evpl, app.nreqs == 3 && app.reqs[2].n_complete == 1, 5000);
    evpl_http_client_close(app.agent, cl.conn);
    T_HPUMP(app.evpl,
            t_creq_done(&cl.reqs[0]) && t_creq_done(&cl.reqs[1]) && t_creq_done(&cl.reqs[2]) &&
                app.reqs[0].req == NULL && app.reqs[1].req == NULL && app.reqs[2].req == NULL,
            5000);
    for (int i = 0; i < 3; i++) {
        T_CEV_EQ(&cl.reqs[i], "SF");
        T_EQ(cl.reqs[i].status_final, EVPL_HTTP_ERROR_CONN_LOST);
        T_EV_EQ(&app.reqs[i], "DCF");
        T_EQ(app.reqs[i].failed_status, EVPL_HTTP_ERROR_CONN_LOST);
    }
    t_client_check_terminal(&cl);
    t_client_free_reqs(&cl);
    cl.nreqs = 0;

    t_app_stop(&app);
    free(upload);
    free(late_up);
    fprintf(stderr, "PASS\n");
    return 0;
}
