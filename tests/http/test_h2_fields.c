/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Header fields over HTTP/2 as over HTTP/1 (helper-119), against a raw
 * HTTP/2 client (nghttp2):
 *   - a request whose host field differs from :authority is a 400, never
 *     dispatched (over HTTP/1 two Host fields are); the same value twice
 *     reaches the application as one Host;
 *   - cookie crumbs sent as fields of their own reach it as one Cookie
 *     (RFC 9113 8.2.3);
 *   - response fields the application added with whitespace around the
 *     value go without it, one with a control character is left out, and
 *     the response is not reset for them (the whole stream failed).
 */
#include "t_h2.h"

static int s_dispatched;
static char s_host[128], s_cookie[128];
static int s_hosts, s_cookies;

static void
s_header(const char *name, const char *value, void *private_data)
{
    (void) private_data;
    if (strcasecmp(name, "host") == 0) {
        s_hosts++;
        snprintf(s_host, sizeof(s_host), "%s", value);
    } else if (strcasecmp(name, "cookie") == 0) {
        s_cookies++;
        snprintf(s_cookie, sizeof(s_cookie), "%s", value);
    }
} /* s_header */

static void
s_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
         enum evpl_http_notify_type type, enum evpl_http_request_type rtype, const char *uri,
         void *notify_data, void *private_data)
{
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        evpl_http_request_header_iterate(request, s_header, NULL);
        T_EQ(evpl_http_request_add_header(request, "X-Lead", "  lead"), 0);
        T_EQ(evpl_http_request_add_header(request, "X-Trail", "trail \t"), 0);
        T_EQ(evpl_http_request_add_header(request, "X-Ctl", "a\x01b"),
             0); /* (only CR, LF refused) */
        T_EQ(evpl_http_request_add_header(request, "X-Plain", "plain"), 0);
        evpl_http_server_set_response_length(request, 0);
        evpl_http_server_dispatch_default(request, 200);
    }
} /* s_notify */

static void
s_dispatch(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
           evpl_http_notify_callback_t *cb, void **nd, void *pd)
{
    s_dispatched++;
    *cb = s_notify;
} /* s_dispatch */

int
main(void)
{
    struct evpl *evpl;
    struct evpl_http_agent *agent;
    struct evpl_endpoint *ep;
    struct evpl_listener *l;
    struct evpl_http_server *server;
    struct t_raw raw;
    struct t_h2peer peer;
    struct t_h2s *st;
    int32_t id;

    signal(SIGPIPE, SIG_IGN);
    t_h2_require();
    evpl = t_net_loop();
    agent = evpl_http_init(evpl);
    ep = t_endpoint(EVPL_STREAM_SOCKET_TCP);
    l = t_listen(EVPL_STREAM_SOCKET_TCP, ep);
    server = evpl_http_attach(agent, l, s_dispatch, NULL);
    t_evpl = evpl;
    t_raw_open(&raw, ep);
    t_h2peer_init(&peer, &raw, 0);

    /* two hosts */
    {
        nghttp2_nv nv[] = {T_NV(":method", "GET"), T_NV(":scheme", "http"),
                           T_NV(":authority", "a.example"), T_NV(":path", "/"),
                           T_NV("host", "b.example")};

        id = t_h2peer_request_nv(&peer, nv, sizeof(nv) / sizeof(nv[0]));
        T_H2PUMP(evpl, t_h2s_get(&peer, id)->end || t_h2s_get(&peer, id)->rst, 5000);
        T_EQ(t_h2s_get(&peer, id)->status, 400);
        T_EQ(s_dispatched, 0);
    }
    /* an :authority with userinfo (RFC 9110 7.2: not a Host value) */
    {
        nghttp2_nv nv[] = {T_NV(":method", "GET"), T_NV(":scheme", "http"),
                           T_NV(":authority", "user@a.example"), T_NV(":path", "/")};

        id = t_h2peer_request_nv(&peer, nv, sizeof(nv) / sizeof(nv[0]));
        T_H2PUMP(evpl, t_h2s_get(&peer, id)->end || t_h2s_get(&peer, id)->rst, 5000);
        T_EQ(t_h2s_get(&peer, id)->status, 400);
        T_EQ(s_dispatched, 0);
    }
    /* the same host twice, cookie crumbs; response fields */
    {
        nghttp2_nv nv[] = {T_NV(":method", "GET"),          T_NV(":scheme", "http"),
                           T_NV(":authority", "a.example"), T_NV(":path", "/"),
                           T_NV("cookie", "a=1"),           T_NV("host", "A.example"),
                           T_NV("cookie", "b=2"),           T_NV("cookie", "c=3")};

        id = t_h2peer_request_nv(&peer, nv, sizeof(nv) / sizeof(nv[0]));
        T_H2PUMP(evpl, t_h2s_get(&peer, id)->end || t_h2s_get(&peer, id)->rst, 5000);
        st = t_h2s_get(&peer, id);
        T_EQ(s_dispatched, 1);
        T_EQ(s_hosts, 1);
        T_STR_EQ(s_host, "a.example");
        T_EQ(s_cookies, 1);
        T_STR_EQ(s_cookie, "a=1; b=2; c=3");
        T_EQ(st->rst, 0);
        T_EQ(st->status, 200);
        t_buf_adds(&st->hdrs, ""); /* (NUL-terminated for strstr) */
        fprintf(stderr, "response header block:\n%.*s", (int) st->hdrs.len, st->hdrs.p);
        T_OK(memmem(st->hdrs.p, st->hdrs.len, "x-lead: lead\n", 13) != NULL);
        T_OK(memmem(st->hdrs.p, st->hdrs.len, "x-trail: trail\n", 15) != NULL);
        T_OK(memmem(st->hdrs.p, st->hdrs.len, "x-plain: plain\n", 15) != NULL);
        T_OK(memmem(st->hdrs.p, st->hdrs.len, "x-ctl", 5) == NULL);
    }

    t_h2peer_free(&peer);
    t_raw_close(&raw);
    evpl_http_server_destroy(agent, server);
    evpl_http_destroy(agent);
    evpl_listener_destroy(l);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
    return 0;
}
