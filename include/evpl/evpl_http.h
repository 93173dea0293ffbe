/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * libevpl_http: an HTTP/1.0, HTTP/1.1 server and HTTP/1.1 client on an evpl
 * loop, over any stream protocol.  Link with -levpl_http.  Every function
 * must be called on the thread of the agent's loop.  No timeouts: add your
 * own with timers.
 */
#pragma once

#include <evpl/evpl.h>

#ifdef __cplusplus
extern "C" {
#endif

struct evpl_http_agent;
struct evpl_http_server;
struct evpl_http_conn;
struct evpl_http_request;

enum evpl_http_notify_type {
    EVPL_HTTP_NOTIFY_RECEIVE_DATA,
    EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE,
    EVPL_HTTP_NOTIFY_WANT_DATA,
    EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE,
    EVPL_HTTP_NOTIFY_RESPONSE_HEADERS,
    EVPL_HTTP_NOTIFY_FAILED,
};

#define EVPL_HTTP_ERROR_CONN_LOST    (-1)
#define EVPL_HTTP_ERROR_BAD_RESPONSE (-2)

enum evpl_http_version {
    EVPL_HTTP_VERSION_AUTO,
    EVPL_HTTP_VERSION_HTTP1,
    EVPL_HTTP_VERSION_HTTP2,
};

enum evpl_http_protocol {
    EVPL_HTTP_PROTOCOL_HTTP1,
    EVPL_HTTP_PROTOCOL_HTTP2,
};

enum evpl_http_request_type {
    EVPL_HTTP_REQUEST_TYPE_UNKNOWN,
    EVPL_HTTP_REQUEST_TYPE_GET,
    EVPL_HTTP_REQUEST_TYPE_HEAD,
    EVPL_HTTP_REQUEST_TYPE_POST,
    EVPL_HTTP_REQUEST_TYPE_PUT,
    EVPL_HTTP_REQUEST_TYPE_DELETE,
};

/*
 * Per-request notifications.  request_type and uri repeat the request's
 * method and target; notify_data is the request's pointer; private_data
 * the server's (server side) or the connection's (client side).
 */
typedef void (*evpl_http_notify_callback_t)(struct evpl *evpl, struct evpl_http_agent *agent,
                                            struct evpl_http_request *request,
                                            enum evpl_http_notify_type notify_type,
                                            enum evpl_http_request_type request_type,
                                            const char *uri, void *notify_data, void *private_data);

/* Server: a request's header block arrived; must set *notify_callback. */
typedef void (*evpl_http_dispatch_callback_t)(struct evpl *evpl, struct evpl_http_agent *agent,
                                              struct evpl_http_request *request,
                                              evpl_http_notify_callback_t *notify_callback,
                                              void **notify_data, void *private_data);

typedef void (*evpl_http_request_header_cb_t)(const char *name, const char *value,
                                              void *private_data);

/* One agent per loop.  Never NULL. */
EVPL_API struct evpl_http_agent *evpl_http_init(struct evpl *evpl);

/* Closes every connection (outstanding requests get FAILED), then frees.
 * Destroy servers first; not from a callback of the same loop. */
EVPL_API void evpl_http_destroy(struct evpl_http_agent *agent);

EVPL_API enum evpl_http_protocol evpl_http_request_protocol(struct evpl_http_request *request);

/* ---- server ---- */

EVPL_API struct evpl_http_server *evpl_http_attach(struct evpl_http_agent *agent,
                                                   struct evpl_listener *listener,
                                                   evpl_http_dispatch_callback_t dispatch_callback,
                                                   void *private_data);

EVPL_API void evpl_http_server_destroy(struct evpl_http_agent *agent,
                                       struct evpl_http_server *server);

/* Append a field to the outbound header block: 0, or -1 (nothing added). */
EVPL_API int evpl_http_request_add_header(struct evpl_http_request *request, const char *name,
                                          const char *value);

EVPL_API enum evpl_http_request_type evpl_http_request_type(struct evpl_http_request *request);

/* "Get", "Head", "Post", "Put", "Delete", "Unknown" (upstream's spelling). */
EVPL_API const char *evpl_http_request_type_to_string(struct evpl_http_request *request);

EVPL_API const char *evpl_http_request_url(struct evpl_http_request *request, int *len);

EVPL_API const char *evpl_http_request_header(struct evpl_http_request *request, const char *name);

EVPL_API void evpl_http_request_header_iterate(struct evpl_http_request *request,
                                               evpl_http_request_header_cb_t callback,
                                               void *private_data);

EVPL_API int evpl_http_request_add_trailer(struct evpl_http_request *request, const char *name,
                                           const char *value);

EVPL_API const char *evpl_http_request_trailer(struct evpl_http_request *request, const char *name);

EVPL_API void evpl_http_request_trailer_iterate(struct evpl_http_request *request,
                                                evpl_http_request_header_cb_t callback,
                                                void *private_data);

/* Received body bytes buffered and not yet taken. */
EVPL_API uint64_t evpl_http_request_get_data_avail(struct evpl_http_request *request);

/* The most iovecs evpl_http_request_get_datav fills for a length of up to
 * EVPL_HTTP_DATAV_MAX - 1 buffers (buffer_size each): size iov[] for it.
 * A longer length takes at most length / buffer_size + 2. */
#define EVPL_HTTP_DATAV_MAX 64

/* Move exactly length bytes of buffered body into iov[] (owned by the
 * caller); returns the iovecs used (a body received in more pieces than
 * the bound above, such as tiny chunks, is copied together), or -1 if
 * length is more than buffered or memory is short (nothing taken). */
EVPL_API int evpl_http_request_get_datav(struct evpl *evpl, struct evpl_http_request *request,
                                         struct evpl_iovec *iov, int length);

/* Stage outbound body data (takes ownership); niov == 0 ends the body. */
EVPL_API void evpl_http_request_add_datav(struct evpl_http_request *request, struct evpl_iovec *iov,
                                          int niov);

EVPL_API void evpl_http_server_set_response_length(struct evpl_http_request *request,
                                                   uint64_t content_length);

EVPL_API void evpl_http_server_set_response_chunked(struct evpl_http_request *request);

/* The response is ready with this status (100..599, else 500). */
EVPL_API void evpl_http_server_dispatch_default(struct evpl_http_request *request, int status);

/* ---- client ---- */

EVPL_API struct evpl_http_conn *evpl_http_client_connect(struct evpl_http_agent *agent,
                                                         enum evpl_protocol_id protocol_id,
                                                         struct evpl_endpoint *endpoint,
                                                         enum evpl_http_version version,
                                                         void *private_data);

EVPL_API void evpl_http_client_close(struct evpl_http_agent *agent, struct evpl_http_conn *conn);

EVPL_API struct evpl_http_request *evpl_http_request_create(struct evpl_http_conn *conn,
                                                            enum evpl_http_request_type method,
                                                            const char *url);

EVPL_API void evpl_http_client_set_request_length(struct evpl_http_request *request,
                                                  uint64_t content_length);

EVPL_API void evpl_http_client_set_request_chunked(struct evpl_http_request *request);

EVPL_API void evpl_http_request_dispatch(struct evpl_http_request *request,
                                         evpl_http_notify_callback_t notify_callback,
                                         void *notify_data);

/* Status after RESPONSE_HEADERS, the negative reason after FAILED, else 0. */
EVPL_API int evpl_http_request_status(struct evpl_http_request *request);

EVPL_API const char *evpl_http_response_header(struct evpl_http_request *request, const char *name);

EVPL_API void evpl_http_response_header_iterate(struct evpl_http_request *request,
                                                evpl_http_request_header_cb_t callback,
                                                void *private_data);

#ifdef __cplusplus
}
#endif
