/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The module over every stream transport (http.md: "any stream protocol"):
 * our client against our server on TCP, AF_UNIX, TLS, io_uring TCP and the
 * in-process stream, with HTTP/1.1 and with HTTP/2 (h2c prior knowledge,
 * ALPN on TLS): a GET, and a 1 MiB POST the server sends back chunked with
 * a trailer, byte for byte.  Unavailable transports are skipped one by one.
 */
#include "t_http.h"

#define BODY (1u << 20)

struct srv_req {
    struct evpl_http_request *r;
};

static int s_done;

static void
s_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
         enum evpl_http_notify_type type, enum evpl_http_request_type method, const char *uri,
         void *notify_data, void *private_data)
{
    struct evpl_iovec iov[64];
    uint64_t avail;

    if (type == EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE) {
        s_done++;
        return;
    }
    if (type != EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        return;
    }
    if (method == EVPL_HTTP_REQUEST_TYPE_GET) {
        evpl_http_server_set_response_length(request, 5);
        t_add_str(evpl, request, "hello");
    } else {
        /* echo the body by reference, chunked, with a trailer */
        evpl_http_server_set_response_chunked(request);
        evpl_http_request_add_trailer(request, "X-Len", "1048576");
        while ((avail = evpl_http_request_get_data_avail(request)) > 0) {
            int n = evpl_http_request_get_datav(evpl, request, iov,
                                                avail > 65536 ? 65536 : (int) avail);

            T_OK(n > 0);
            evpl_http_request_add_datav(request, iov, n);
        }
        evpl_http_request_add_datav(request, NULL, 0);
    }
    evpl_http_server_dispatch_default(request, 200);
}

static void
s_dispatch(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
           evpl_http_notify_callback_t *cb, void **nd, void *pd)
{
    *cb = s_notify;
}

struct creq {
    struct t_buf body;
    int status, complete, failed, proto;
    char trailer[32];
};

static void
c_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
         enum evpl_http_notify_type type, enum evpl_http_request_type method, const char *uri,
         void *notify_data, void *private_data)
{
    struct creq *q = notify_data;

    switch (type) {
        case EVPL_HTTP_NOTIFY_RECEIVE_DATA:
            t_take_all(evpl, request, &q->body);
            break;
        case EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE: {
            const char *t = evpl_http_request_trailer(request, "X-Len");

            t_take_all(evpl, request, &q->body);
            q->status = evpl_http_request_status(request);
            q->proto = (int) evpl_http_request_protocol(request);
            snprintf(q->trailer, sizeof(q->trailer), "%s", t ? t : "");
            q->complete = 1;
            break;
        }
        case EVPL_HTTP_NOTIFY_FAILED:
            q->failed = 1;
            break;
        default:
            break;
    } /* switch */
}

static void
run(struct evpl *evpl, enum evpl_protocol_id proto, const char *name,
    enum evpl_http_version version)
{
    struct evpl_http_agent *agent = evpl_http_init(evpl);
    struct evpl_endpoint *ep = t_endpoint(proto);
    struct evpl_listener *l = evpl_listener_create();
    struct evpl_http_server *server;
    struct evpl_http_conn *conn;
    struct evpl_http_request *r;
    struct creq get = {0}, post = {0};
    static char data[BODY];
    struct evpl_iovec iov;
    int want_proto =
        version == EVPL_HTTP_VERSION_HTTP1 ? EVPL_HTTP_PROTOCOL_HTTP1 : EVPL_HTTP_PROTOCOL_HTTP2;
    fprintf(stderr, "-- %s, %s\n", name,
            version == EVPL_HTTP_VERSION_HTTP1 ? "HTTP/1.1" : "HTTP/2");
    T_EQ(evpl_listen(l, proto, ep), 0);
    server = evpl_http_attach(agent, l, s_dispatch, NULL);
    s_done = 0;
    /* TLS: HTTP/2 by ALPN (AUTO); others: h2c by prior knowledge */
    conn = evpl_http_client_connect(agent, proto, ep,
                                    version == EVPL_HTTP_VERSION_HTTP2 &&
                                            proto == EVPL_STREAM_SOCKET_TLS
                                        ? EVPL_HTTP_VERSION_AUTO
                                        : version,
                                    NULL);
    r = evpl_http_request_create(conn, EVPL_HTTP_REQUEST_TYPE_GET, "/get");
    evpl_http_request_add_header(r, "Host", "test");
    evpl_http_request_dispatch(r, c_notify, &get);
    r = evpl_http_request_create(conn, EVPL_HTTP_REQUEST_TYPE_POST, "/post");
    evpl_http_request_add_header(r, "Host", "test");
    evpl_http_client_set_request_length(r, BODY);
    t_pattern_fill(3, 0, data, sizeof(data));
    T_EQ(evpl_iovec_alloc(evpl, BODY, 8, 1, 0, &iov), 1);
    memcpy(evpl_iovec_data(&iov), data, BODY);
    evpl_http_request_add_datav(r, &iov, 1);
    evpl_http_request_dispatch(r, c_notify, &post);
    T_HPUMP(evpl, (get.complete || get.failed) && (post.complete || post.failed), 20000);
    T_EQ(get.failed + post.failed, 0);
    T_EQ(get.status, 200);
    T_BYTES_EQ(get.body.p, get.body.len, "hello");
    T_EQ(get.proto, want_proto);
    T_EQ(post.status, 200);
    T_EQ(post.body.len, (size_t) BODY);
    T_OK(memcmp(post.body.p, data, BODY) == 0);
    T_OK(strcmp(post.trailer, "1048576") == 0);
    T_EQ(post.proto, want_proto);
    T_HPUMP(evpl, s_done == 2, 5000);
    fprintf(stderr, "  ok: GET and a 1 MiB echo over %s\n", name);
    t_buf_free(&get.body);
    t_buf_free(&post.body);
    evpl_http_client_close(agent, conn);
    evpl_http_server_destroy(agent, server);
    evpl_http_destroy(agent);
    evpl_listener_destroy(l);
    evpl_endpoint_close(ep);
}

int
main(void)
{
    static const char *const protos[] = {"STREAM_SOCKET_TCP", "STREAM_SOCKET_UNIX",
                                         "STREAM_SOCKET_TLS", "STREAM_IO_URING_TCP",
                                         "STREAM_INPROC"};
    struct evpl_global_config *config = evpl_global_config_init();
    struct evpl *evpl;
    int ran = 0;

    signal(SIGPIPE, SIG_IGN);
    /* our own server's generated certificate: no verification here
     * (tests/http/test_h2_tls.c checks a verified chain) */
    evpl_global_config_set_tls_verify_peer(config, 0);
    evpl_init(config);
    {
        const char *mech = getenv("EVPL_CORE_MECH");
        enum evpl_protocol_id id;

        /* the io_uring variant must run on io_uring, or not at all */
        if (mech && strcmp(mech, "io_uring") == 0 &&
            evpl_protocol_lookup(&id, "STREAM_IO_URING_TCP") != 0) {
            T_SKIP("io_uring is not usable here");
        }
    }
    evpl = t_net_loop();
    t_evpl = evpl;
    for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
        enum evpl_protocol_id id;

        if (evpl_protocol_lookup(&id, protos[i]) != 0) {
            fprintf(stderr, "-- %s unavailable: skipped\n", protos[i]);
            continue;
        }
        run(evpl, id, protos[i], EVPL_HTTP_VERSION_HTTP1);
        run(evpl, id, protos[i], EVPL_HTTP_VERSION_HTTP2);
        ran++;
    }
    T_OK(ran >= 3); /* TCP, UNIX and in-process are always built */
    evpl_destroy(evpl);
    fprintf(stderr, "PASS\n");
    return 0;
}
