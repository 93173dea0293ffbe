/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * libFuzzer target for the HTTP module's parsers, through the public API
 * only.  The first input byte picks the side and how the rest is cut into
 * writes; the rest is what the peer sends, over an in-process stream:
 *
 *   bit 0 clear: bytes to our server (requests: HTTP/1.x, or h2c after a
 *         preface); the application answers every request, taking its body
 *   bit 0 set: bytes our client receives as the answer to two pipelined
 *         requests (a GET and a chunked POST); with bit 1 the client
 *         speaks h2c (the bytes are then a server's frames)
 *   bits 2-7: the write size, 5 bytes per step (0: all at once)
 *
 * Invariants checked (abort on violation): each dispatched request gets
 * exactly one terminal notification, nothing leaks (ASan), nothing hangs
 * (a bounded number of loop passes, then the connection is closed and the
 * agent must still be destroyed cleanly).
 *
 * Built with clang -fsanitize=fuzzer (make fuzz); otherwise main() below
 * replays the files named on the command line (the seed corpus runs in
 * `make test`).
 */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <evpl/evpl_http.h>

struct tally {
    int dispatched, terminal, open, failed;
};

static struct tally tally;
static uint64_t activity; /* callbacks seen: the loop is settled when it stops moving */

static void
check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_http: invariant broken: %s\n", what);
        abort();
    }
} /* check */

static void
drain(struct evpl *evpl, struct evpl_http_request *request)
{
    struct evpl_iovec iov[8];
    uint64_t avail;

    /* a bounded length per call: at most one iovec per byte */
    while ((avail = evpl_http_request_get_data_avail(request)) > 0) {
        int n = evpl_http_request_get_datav(evpl, request, iov, avail > 8 ? 8 : (int) avail);

        check(n > 0 && n <= 8, "get_datav count");
        for (int i = 0; i < n; i++) {
            evpl_iovec_release(evpl, &iov[i]);
        }
    }
    check(evpl_http_request_get_datav(evpl, request, iov, 1) == -1, "get_datav past avail");
} /* drain */

static void
server_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
              enum evpl_http_notify_type type, enum evpl_http_request_type method, const char *uri,
              void *notify_data, void *private_data)
{
    activity++;
    switch (type) {
        case EVPL_HTTP_NOTIFY_RECEIVE_DATA:
            drain(evpl, request);
            break;
        case EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE:
            drain(evpl, request);
            evpl_http_request_trailer(request, "x");
            evpl_http_request_header(request, "host");
            if (uri[0] == '/' && uri[1] == 'c') {
                evpl_http_server_set_response_chunked(request);
                evpl_http_request_add_trailer(request, "T", "v");
                evpl_http_request_add_datav(request, NULL, 0);
            }
            evpl_http_server_dispatch_default(request, uri[0] == '/' ? 200 : 404);
            break;
        case EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE:
        case EVPL_HTTP_NOTIFY_FAILED:
            tally.terminal++;
            tally.open--;
            break;
        default:
            break;
    } /* switch */
} /* server_notify */

static void
dispatch(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
         evpl_http_notify_callback_t *notify_callback, void **notify_data, void *private_data)
{
    activity++;
    tally.dispatched++;
    tally.open++;
    *notify_callback = server_notify;
} /* dispatch */

static void
client_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
              enum evpl_http_notify_type type, enum evpl_http_request_type method, const char *uri,
              void *notify_data, void *private_data)
{
    activity++;
    switch (type) {
        case EVPL_HTTP_NOTIFY_RECEIVE_DATA:
            drain(evpl, request);
            break;
        case EVPL_HTTP_NOTIFY_RESPONSE_HEADERS:
            check(evpl_http_request_status(request) >= 100, "status after headers");
            evpl_http_response_header(request, "content-type");
            break;
        case EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE:
            drain(evpl, request);
            tally.terminal++;
            tally.open--;
            break;
        case EVPL_HTTP_NOTIFY_FAILED:
            check(evpl_http_request_status(request) < 0, "FAILED status");
            tally.failed++;
            tally.terminal++;
            tally.open--;
            break;
        default:
            break;
    } /* switch */
} /* client_notify */

/* the raw peer: an in-process connection writing the fuzz bytes */
struct peer {
    int up, gone;
};

static void
peer_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify, void *priv)
{
    struct peer *p = priv;
    char buf[4096];

    activity++;
    switch (notify->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            p->up = 1;
            break;
        case EVPL_NOTIFY_RECV_DATA:
            while (evpl_recv(evpl, bind, buf, sizeof(buf), 0) > 0) {
            }
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            p->gone = 1;
            break;
        default:
            break;
    } /* switch */
} /* peer_notify */

static struct evpl_bind *peer_accepted;
static struct peer peer_state;

static void
peer_attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_callback,
            evpl_segment_callback_t *segment_callback, void **conn_private_data, void *private_data)
{
    *notify_callback = peer_notify;
    *conn_private_data = &peer_state;
    peer_state.up = 1;
    peer_accepted = bind;
} /* peer_attach */

static struct evpl *evpl;
static struct evpl_listener *listener;
static struct evpl_endpoint *server_ep, *peer_ep;

static void
setup(void)
{
    struct evpl_global_config *config = evpl_global_config_init();

    evpl_global_config_set_http_max_header_size(config, 1024); /* reach the limits */
    evpl_init(config);
    /* a pass with nothing to do must not sleep: the harness counts passes */
    struct evpl_thread_config *tc = evpl_thread_config_init();

    evpl_thread_config_set_wait_ms(tc, 0);
    evpl = evpl_create(tc);
    evpl_thread_config_release(tc);
    listener = evpl_listener_create();
    server_ep = evpl_endpoint_create_inproc("fuzz-http-server");
    peer_ep = evpl_endpoint_create_inproc("fuzz-http-peer");
    check(evpl_listen(listener, EVPL_STREAM_INPROC, server_ep) == 0, "listen");
    check(evpl_listen(listener, EVPL_STREAM_INPROC, peer_ep) == 0, "listen");
} /* setup */

/* run the loop until nothing happens for a while, *stop holds, or a
 * bound (passes never sleep: wait_ms 0) */
static void
settle(const int *stop)
{
    uint64_t last = activity;
    int quiet = 0;

    for (int i = 0; i < 200000 && quiet < 64 && !*stop; i++) {
        evpl_continue(evpl);
        if (activity != last) {
            last = activity;
            quiet = 0;
        } else {
            quiet++;
        }
    }
} /* settle */

/* run the loop until *flag, up to a second (the listener thread hands
 * connections over) */
static void
wait_for(const int *flag)
{
    struct timespec t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        evpl_continue(evpl);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (!*flag &&
             (t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 1000000000L);
} /* wait_for */

/* send data in pieces of `cut` bytes (0: at once), a loop pass between,
 * until the connection ends */
static void
feed(struct evpl_bind *bind, struct peer *p, const uint8_t *data, size_t size, size_t cut)
{
    size_t off = 0;

    while (off < size && !p->gone) {
        size_t n = cut && size - off > cut ? cut : size - off;

        evpl_send(evpl, bind, data + off, (unsigned int) n);
        off += n;
        evpl_continue(evpl);
    }
} /* feed */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!evpl) {
        setup();
    }
    if (size < 1) {
        return 0;
    }
    int client_side = data[0] & 1;
    int client_h2 = data[0] & 2;              /* the client speaks h2c */
    size_t cut = (size_t) (data[0] >> 2) * 5; /* 0, 5, 10, ... bytes per write */
    struct evpl_http_agent *agent = evpl_http_init(evpl);
    struct peer p = {0};

    memset(&tally, 0, sizeof(tally));
    data++;
    size--;

    if (!client_side) {
        struct evpl_http_server *server = evpl_http_attach(agent, listener, dispatch, NULL);
        struct evpl_bind *b =
            evpl_connect(evpl, EVPL_STREAM_INPROC, NULL, server_ep, peer_notify, NULL, &p);

        wait_for(&p.up);
        feed(b, &p, data, size, cut);
        settle(&p.gone);
        if (!p.gone) {
            evpl_close(evpl, b);
        }
        wait_for(&p.gone);
        evpl_http_server_destroy(agent, server);
    } else {
        struct evpl_listener_binding *lb = evpl_listener_attach(evpl, listener, peer_attach, NULL);
        struct evpl_http_conn *conn = evpl_http_client_connect(
            agent, EVPL_STREAM_INPROC, peer_ep,
            client_h2 ? EVPL_HTTP_VERSION_HTTP2 : EVPL_HTTP_VERSION_AUTO, NULL);
        struct evpl_http_request *r =
            evpl_http_request_create(conn, EVPL_HTTP_REQUEST_TYPE_GET, "/a");
        struct evpl_http_request *r2 =
            evpl_http_request_create(conn, EVPL_HTTP_REQUEST_TYPE_POST, "/b");

        memset(&peer_state, 0, sizeof(peer_state));
        peer_accepted = NULL;
        evpl_http_request_dispatch(r, client_notify, NULL);
        tally.dispatched++;
        tally.open++;
        evpl_http_client_set_request_chunked(r2);
        evpl_http_request_add_trailer(r2, "X", "y");
        evpl_http_request_add_datav(r2, NULL, 0);
        evpl_http_request_dispatch(r2, client_notify, NULL);
        tally.dispatched++;
        tally.open++;
        wait_for(&peer_state.up);
        if (peer_accepted) {
            feed(peer_accepted, &peer_state, data, size, cut);
            settle(&peer_state.gone);
            if (!peer_state.gone) {
                evpl_close(evpl, peer_accepted);
            }
            wait_for(&peer_state.gone);
        }
        evpl_listener_detach(evpl, lb);
        evpl_http_client_close(agent, conn);
    }
    evpl_http_destroy(agent);
    if (getenv("FUZZ_VERBOSE")) {
        fprintf(stderr, "%s side: %d requests, %d ended, %d of them failed\n",
                client_side ? "client" : "server", tally.dispatched, tally.terminal, tally.failed);
    }
    check(tally.open == 0, "every request ended");
    check(tally.terminal == tally.dispatched, "one terminal notification each");
    return 0;
} /* LLVMFuzzerTestOneInput */

#define FUZZ_NAME "fuzz_http"

__attribute__((unused)) static void
fuzz_replay_done(void)
{
    if (evpl) {
        evpl_destroy(evpl);
        evpl_listener_destroy(listener);
    }
}

#include "fuzz_replay.h"
