/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * Several loops serving one listener (http.md §3: "Several loops may
 * attach agents to the same listener (round-robin distribution)"): two
 * server threads, each with its own agent; the main thread's client opens
 * 8 connections and makes 400 requests (HTTP/1.1 and HTTP/2 connections
 * mixed), each answered with the thread that served it.  Every answer is
 * right, both threads served, and everything shuts down cleanly (also
 * under TSan: make tsan).
 */
#include "t_http.h"

#include <pthread.h>

#define NCONN 8
#define NREQ  400

struct server_thread {
    struct evpl_listener *listener;
    struct evpl_http_agent *agent;
    struct evpl_http_server *server;
    int id;
    atomic_int served;
};

static void
s_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
         enum evpl_http_notify_type type, enum evpl_http_request_type method, const char *uri,
         void *notify_data, void *private_data)
{
    struct server_thread *st = private_data;
    char body[64];
    int n;

    if (type != EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        return;
    }
    n = snprintf(body, sizeof(body), "%s from %d", uri, st->id);
    evpl_http_server_set_response_length(request, (uint64_t) n);
    t_add_bytes(evpl, request, body, (size_t) n);
    evpl_http_server_dispatch_default(request, 200);
    atomic_fetch_add(&st->served, 1);
}

static void
s_dispatch(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
           evpl_http_notify_callback_t *cb, void **nd, void *pd)
{
    *cb = s_notify;
}

static void *
s_init(struct evpl *evpl, void *priv)
{
    struct server_thread *st = priv;

    st->agent = evpl_http_init(evpl);
    st->server = evpl_http_attach(st->agent, st->listener, s_dispatch, st);
    return st;
}

static void
s_shutdown(struct evpl *evpl, void *priv)
{
    struct server_thread *st = priv;

    evpl_http_server_destroy(st->agent, st->server);
    evpl_http_destroy(st->agent);
}

struct creq {
    int idx, done, ok, from;
    struct t_buf body;
};

static int completed;

static void
c_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
         enum evpl_http_notify_type type, enum evpl_http_request_type method, const char *uri,
         void *notify_data, void *private_data)
{
    struct creq *q = notify_data;

    if (type == EVPL_HTTP_NOTIFY_RECEIVE_DATA) {
        t_take_all(evpl, request, &q->body);
    } else if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        char want[64];
        int n;

        t_take_all(evpl, request, &q->body);
        n = snprintf(want, sizeof(want), "/r%d from ", q->idx);
        q->ok = evpl_http_request_status(request) == 200 && q->body.len > (size_t) n &&
                memcmp(q->body.p, want, (size_t) n) == 0;
        q->from = q->ok ? atoi(q->body.p + n) : -1;
        q->done = 1;
        completed++;
    } else if (type == EVPL_HTTP_NOTIFY_FAILED) {
        q->done = 1;
        completed++;
    }
}

int
main(void)
{
    struct server_thread st[2];
    struct evpl_thread *th[2];
    struct evpl *evpl;
    struct evpl_http_agent *agent;
    struct evpl_endpoint *ep;
    struct evpl_listener *listener;
    struct evpl_http_conn *conns[NCONN];
    static struct creq q[NREQ];
    int per[2] = {0, 0};

    signal(SIGPIPE, SIG_IGN);
    ep = t_endpoint(EVPL_STREAM_SOCKET_TCP);
    listener = t_listen(EVPL_STREAM_SOCKET_TCP, ep);
    for (int i = 0; i < 2; i++) {
        memset(&st[i], 0, sizeof(st[i]));
        st[i].listener = listener;
        st[i].id = i;
        th[i] = evpl_thread_create(NULL, s_init, s_shutdown, &st[i]);
        T_OK(th[i] != NULL);
    }
    evpl = t_net_loop();
    t_evpl = evpl;
    agent = evpl_http_init(evpl);
    for (int c = 0; c < NCONN; c++) {
        conns[c] = evpl_http_client_connect(
            agent, EVPL_STREAM_SOCKET_TCP, ep,
            c % 2 ? EVPL_HTTP_VERSION_HTTP2 : EVPL_HTTP_VERSION_HTTP1, NULL);
    }
    for (int i = 0; i < NREQ; i++) {
        char url[32];
        struct evpl_http_request *r;

        snprintf(url, sizeof(url), "/r%d", i);
        q[i].idx = i;
        r = evpl_http_request_create(conns[i % NCONN], EVPL_HTTP_REQUEST_TYPE_GET, url);
        T_OK(r != NULL);
        evpl_http_request_dispatch(r, c_notify, &q[i]);
    }
    T_HPUMP(evpl, completed == NREQ, 20000);
    for (int i = 0; i < NREQ; i++) {
        if (!q[i].ok) {
            T_FAIL("request %d: wrong answer \"%.*s\"", i, (int) q[i].body.len,
                   q[i].body.p ? q[i].body.p : "");
        }
        per[q[i].from]++;
        t_buf_free(&q[i].body);
    }
    fprintf(stderr, "served: thread 0 %d, thread 1 %d\n", per[0], per[1]);
    T_EQ(per[0] + per[1], NREQ);
    T_OK(per[0] > 0 && per[1] > 0); /* connections went to both loops */
    for (int c = 0; c < NCONN; c++) {
        evpl_http_client_close(agent, conns[c]);
    }
    evpl_http_destroy(agent);
    for (int i = 0; i < 2; i++) {
        evpl_thread_destroy(th[i]);
    }
    T_EQ(atomic_load(&st[0].served) + atomic_load(&st[1].served), NREQ);
    evpl_listener_destroy(listener);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    fprintf(stderr, "PASS\n");
    return 0;
}
