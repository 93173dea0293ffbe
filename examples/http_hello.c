/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * HTTP server and client on one loop.
 *
 *   evpl-http-hello            a client makes 100 requests on one
 *                              connection (GET /hello, and POST /echo with
 *                              a body the server sends back chunked),
 *                              checks every answer, exits 0
 *   evpl-http-hello --serve P  only the server, on 127.0.0.1:P (try curl)
 *   ... tls                    the same over TLS (HTTP/2 by ALPN when built in)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <evpl/evpl_http.h>

static const char hello[] = "hello, world\n";

static void
add_bytes(struct evpl *evpl, struct evpl_http_request *request, const void *data, unsigned int len)
{
    struct evpl_iovec iov;

    if (evpl_iovec_alloc(evpl, len, 8, 1, 0, &iov) != 1) {
        fprintf(stderr, "out of buffers\n");
        exit(1);
    }
    memcpy(evpl_iovec_data(&iov), data, len);
    evpl_http_request_add_datav(request, &iov, 1);
} /* add_bytes */

/* server side: answer on RECEIVE_COMPLETE */
static void
server_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
              enum evpl_http_notify_type type, enum evpl_http_request_type method, const char *uri,
              void *notify_data, void *private_data)
{
    if (type != EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        return;
    }
    if (strcmp(uri, "/hello") == 0) {
        evpl_http_request_add_header(request, "Content-Type", "text/plain");
        evpl_http_server_set_response_length(request, sizeof(hello) - 1);
        add_bytes(evpl, request, hello, sizeof(hello) - 1);
        evpl_http_server_dispatch_default(request, 200);
    } else if (strcmp(uri, "/echo") == 0) {
        /* the request body, by reference, as a chunked response; taken a
         * bounded amount at a time (pieces are buffers' worth of data) */
        uint64_t avail;
        struct evpl_iovec iov[64];

        evpl_http_server_set_response_chunked(request);
        evpl_http_request_add_trailer(request, "X-Echoed", "yes");
        while ((avail = evpl_http_request_get_data_avail(request)) > 0) {
            int n = evpl_http_request_get_datav(evpl, request, iov,
                                                avail > 1048576 ? 1048576 : (int) avail);

            evpl_http_request_add_datav(request, iov, n);
        }
        evpl_http_request_add_datav(request, NULL, 0);
        evpl_http_server_dispatch_default(request, 200);
    } else {
        evpl_http_server_dispatch_default(request, 404);
    }
} /* server_notify */

static void
dispatch(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
         evpl_http_notify_callback_t *notify_callback, void **notify_data, void *private_data)
{
    *notify_callback = server_notify;
} /* dispatch */

/* client side */
struct client {
    int done, failed, inflight, http2;
    char body[256];
    size_t body_len;
};

static void client_next(struct evpl *evpl, struct evpl_http_conn *conn, struct client *cl);

static void
client_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
              enum evpl_http_notify_type type, enum evpl_http_request_type method, const char *uri,
              void *notify_data, void *private_data)
{
    struct client *cl = private_data;
    struct evpl_http_conn *conn = notify_data;
    struct evpl_iovec iov[64];

    switch (type) {
        case EVPL_HTTP_NOTIFY_RECEIVE_DATA:
        case EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE: {
            uint64_t avail;

            while ((avail = evpl_http_request_get_data_avail(request)) > 0) {
                int n = evpl_http_request_get_datav(evpl, request, iov,
                                                    avail > 1048576 ? 1048576 : (int) avail);

                for (int i = 0; i < n; i++) {
                    if (cl->body_len + iov[i].length <= sizeof(cl->body)) {
                        memcpy(cl->body + cl->body_len, iov[i].data, iov[i].length);
                    }
                    cl->body_len += iov[i].length;
                    evpl_iovec_release(evpl, &iov[i]);
                }
            }
            if (type == EVPL_HTTP_NOTIFY_RECEIVE_DATA) {
                break;
            }
            const char *want = strcmp(uri, "/hello") == 0 ? hello : "ping";

            if (evpl_http_request_status(request) != 200 || cl->body_len != strlen(want) ||
                memcmp(cl->body, want, cl->body_len) != 0) {
                fprintf(stderr, "%s: status %d, %zu bytes\n", uri,
                        evpl_http_request_status(request), cl->body_len);
                cl->failed = 1;
            }
            if (strcmp(uri, "/echo") == 0) {
                const char *t = evpl_http_request_trailer(request, "X-Echoed");

                if (!t || strcmp(t, "yes") != 0) {
                    fprintf(stderr, "/echo: trailer missing\n");
                    cl->failed = 1;
                }
            }
            cl->http2 = evpl_http_request_protocol(request) == EVPL_HTTP_PROTOCOL_HTTP2;
            cl->done++;
            cl->inflight = 0;
            client_next(evpl, conn, cl);
            break;
        }
        case EVPL_HTTP_NOTIFY_FAILED:
            fprintf(stderr, "%s: failed %d\n", uri, evpl_http_request_status(request));
            cl->failed = 1;
            break;
        default:
            break;
    } /* switch */
} /* client_notify */

static void
client_next(struct evpl *evpl, struct evpl_http_conn *conn, struct client *cl)
{
    if (cl->done == 100 || cl->failed) {
        return;
    }
    struct evpl_http_request *r;

    cl->body_len = 0;
    cl->inflight = 1;
    if (cl->done % 2 == 0) {
        r = evpl_http_request_create(conn, EVPL_HTTP_REQUEST_TYPE_GET, "/hello");
    } else {
        r = evpl_http_request_create(conn, EVPL_HTTP_REQUEST_TYPE_POST, "/echo");
        evpl_http_client_set_request_length(r, 4);
        add_bytes(evpl, r, "ping", 4);
    }
    evpl_http_request_dispatch(r, client_notify, conn);
} /* client_next */

int
main(int argc, char **argv)
{
    int port = argc > 2 && strcmp(argv[1], "--serve") == 0 ? atoi(argv[2]) : 0;
    /* "tls" as the last argument: TLS (a generated certificate, no client
     * certificates asked for) */
    int tls = argc > 1 && strcmp(argv[argc - 1], "tls") == 0;
    enum evpl_protocol_id proto = tls ? EVPL_STREAM_SOCKET_TLS : EVPL_STREAM_SOCKET_TCP;

    if (tls) {
        struct evpl_global_config *config = evpl_global_config_init();

        evpl_global_config_set_tls_verify_peer(config, 0);
        evpl_init(config);
    }

    struct evpl *evpl = evpl_create(NULL);
    struct evpl_http_agent *agent = evpl_http_init(evpl);
    struct evpl_listener *listener = evpl_listener_create();
    struct evpl_endpoint *ep = NULL;
    struct evpl_http_server *server;

    /* the given port, or the first free one from a per-process start */
    for (int i = 0; i < 64 && !ep; i++) {
        int p = port ? port : 20000 + (getpid() * 7 + i * 131) % 20000;

        ep = evpl_endpoint_create("127.0.0.1", p);
        if (evpl_listen(listener, proto, ep) != 0) {
            ep = NULL;
            if (port) {
                break;
            }
        }
    }
    if (!ep) {
        fprintf(stderr, "cannot listen\n");
        return 1;
    }
    server = evpl_http_attach(agent, listener, dispatch, NULL);

    if (port) {
        for (;;) {
            evpl_continue(evpl);
        }
    }

    struct client cl = {0};
    struct evpl_endpoint *to = evpl_endpoint_create("127.0.0.1", evpl_endpoint_port(ep));
    struct evpl_http_conn *conn =
        evpl_http_client_connect(agent, proto, to, EVPL_HTTP_VERSION_AUTO, &cl);

    client_next(evpl, conn, &cl);
    for (int i = 0; i < 1000000 && cl.done < 100 && !cl.failed; i++) {
        evpl_continue(evpl);
    }
    printf("%d requests over %s, %s\n", cl.done, cl.http2 ? "HTTP/2" : "HTTP/1.1",
           cl.failed || cl.done != 100 ? "FAILED" : "ok");
    evpl_http_client_close(agent, conn);
    evpl_http_server_destroy(agent, server);
    evpl_http_destroy(agent);
    evpl_listener_destroy(listener);
    evpl_destroy(evpl);
    return cl.failed || cl.done != 100;
} /* main */
