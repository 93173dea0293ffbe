/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * evpl-loopback: what `make run` shows.  A server thread and a client loop
 * in one process move data over loopback and report what moved:
 *   TCP ping-pong: 64-byte messages, 16 in flight (segment callback framing)
 *   TCP stream:    128 KiB writes one way, paced by SENT notifications
 *   UDP ping-pong: 64-byte datagrams, 16 in flight
 *
 *   evpl-loopback [seconds-per-test [pingpong|stream|udp]]   (default: 1 s, all)
 */
#include <evpl/evpl.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MSG       64
#define DEPTH     16
#define CHUNK     (128 * 1024)
#define IN_FLIGHT (32 * CHUNK)

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

/* ---- server thread ---- */

static _Atomic uint64_t stream_bytes;

static int
fixed_msg(struct evpl *evpl, struct evpl_bind *bind, void *priv)
{
    return MSG;
}

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct evpl_iovec iov[64];
    int len;

    switch (n->notify_type) {
        case EVPL_NOTIFY_RECV_MSG: /* ping-pong: echo zero-copy */
            evpl_sendv(evpl, bind, n->recv_msg.iovec, (int) n->recv_msg.niov,
                       (int) n->recv_msg.length, EVPL_SEND_FLAG_TAKE_REF);
            break;
        case EVPL_NOTIFY_RECV_DATA: /* stream: take the bytes by reference */
            for (;;) {
                int k = evpl_recvv(evpl, bind, iov, 64, 1 << 30, &len);

                if (k <= 0) {
                    break;
                }
                atomic_fetch_add_explicit(&stream_bytes, (uint64_t) len, memory_order_relaxed);
                evpl_iovecs_release(evpl, iov, k);
            }
            break;
    }
}

static void
server_accept(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_cb,
              evpl_segment_callback_t *segment_cb, void **conn_private, void *priv)
{
    *notify_cb = server_notify;
    /* the client says which test through the private pointer trick below:
     * ping-pong connections are the ones made with a segment callback */
    if (priv == (void *) 1) {
        *segment_cb = fixed_msg;
    }
}

static void
udp_server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    if (n->notify_type == EVPL_NOTIFY_RECV_MSG) {
        evpl_sendtov(evpl, bind, n->recv_msg.addr, n->recv_msg.iovec, (int) n->recv_msg.niov,
                     (int) n->recv_msg.length, EVPL_SEND_FLAG_TAKE_REF);
    }
}

struct server {
    struct evpl_listener *pp_listener, *stream_listener;
    struct evpl_endpoint *pp_ep, *stream_ep, *udp_ep;
    struct evpl_listener_binding *pp_binding, *stream_binding;
    struct evpl_bind *udp;
};

static void *
server_init(struct evpl *evpl, void *arg)
{
    struct server *s = arg;

    s->pp_binding = evpl_listener_attach(evpl, s->pp_listener, server_accept, (void *) 1);
    s->stream_binding = evpl_listener_attach(evpl, s->stream_listener, server_accept, NULL);
    s->udp = evpl_bind(evpl, EVPL_DATAGRAM_SOCKET_UDP, s->udp_ep, udp_server_notify, NULL);
    return s;
}

static void
server_fini(struct evpl *evpl, void *arg)
{
    struct server *s = arg;

    evpl_listener_detach(evpl, s->pp_binding);
    evpl_listener_detach(evpl, s->stream_binding);
}

/* ---- client ---- */

/* evpl_stop is permanent, so the phases below drive the loop with
 * evpl_continue until this flag says the phase is over. */
static int phase_over;

struct client {
    uint64_t ops;
    uint64_t deadline;
    uint64_t queued;
    int done;
    char msg[MSG];
};

static void
client_pp_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct client *c = priv;

    switch (n->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            for (int i = 0; i < DEPTH; i++) {
                evpl_send(evpl, bind, c->msg, MSG);
            }
            break;
        case EVPL_NOTIFY_RECV_MSG:
            evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
            c->ops++;
            if (!c->done) {
                evpl_send(evpl, bind, c->msg, MSG);
            }
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            phase_over = 1;
            break;
    }
}

static void
client_udp_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct client *c = priv;

    if (n->notify_type == EVPL_NOTIFY_RECV_MSG) {
        evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
        c->ops++;
    }
}

static struct evpl_iovec chunk; /* one 128 KiB buffer, sent by reference again and again */

static void
stream_fill(struct evpl *evpl, struct evpl_bind *bind, struct client *c)
{
    while (!c->done && c->queued < IN_FLIGHT) {
        evpl_sendv(evpl, bind, &chunk, 1, CHUNK, 0);
        c->queued += CHUNK;
    }
}

static void
client_stream_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct client *c = priv;

    switch (n->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            evpl_bind_request_send_notifications(evpl, bind);
            stream_fill(evpl, bind, c);
            break;
        case EVPL_NOTIFY_SENT:
            c->queued -= n->sent.bytes;
            stream_fill(evpl, bind, c);
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            phase_over = 1;
            break;
    }
}

static void
on_deadline(struct evpl *evpl, struct evpl_timer *timer)
{
    phase_over = 1;
}

static double
run_for(struct evpl *evpl, uint64_t us)
{
    struct evpl_timer t;
    uint64_t t0 = now_ns();

    phase_over = 0;
    evpl_add_oneshot_timer(evpl, &t, on_deadline, us);
    while (!phase_over) {
        evpl_continue(evpl);
    }
    return (double) (now_ns() - t0) / 1e9;
}

/* close b and run until its DISCONNECTED */
static void
close_and_wait(struct evpl *evpl, struct evpl_bind *b)
{
    phase_over = 0;
    evpl_close(evpl, b);
    while (!phase_over) {
        evpl_continue(evpl);
    }
}

int
main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    const char *only = argc > 2 ? argv[2] : NULL;
    uint64_t us = (uint64_t) (secs * 1e6);
    int base;
    struct server s;
    struct client c;
    struct evpl_thread *server;
    struct evpl *evpl;
    struct evpl_bind *b;
    double t;
    uint64_t bytes0;

    memset(&s, 0, sizeof(s));
    s.pp_listener = evpl_listener_create();
    s.stream_listener = evpl_listener_create();
    /* three ports nobody else uses: try a few bases until all listen */
    for (int attempt = 0;; attempt++) {
        base = 20000 + (int) ((getpid() * 7919 + attempt * 104729) % 40000);
        s.pp_ep = evpl_endpoint_create("127.0.0.1", base);
        s.stream_ep = evpl_endpoint_create("127.0.0.1", base + 1);
        s.udp_ep = evpl_endpoint_create("127.0.0.1", base + 2);
        /* a listener keeps what it listens on: a failed attempt gets fresh ones */
        if (evpl_listen(s.pp_listener, EVPL_STREAM_SOCKET_TCP, s.pp_ep) == 0 &&
            evpl_listen(s.stream_listener, EVPL_STREAM_SOCKET_TCP, s.stream_ep) == 0) {
            break;
        }
        evpl_listener_destroy(s.pp_listener);
        evpl_listener_destroy(s.stream_listener);
        s.pp_listener = evpl_listener_create();
        s.stream_listener = evpl_listener_create();
        evpl_endpoint_close(s.pp_ep);
        evpl_endpoint_close(s.stream_ep);
        evpl_endpoint_close(s.udp_ep);
        if (attempt == 20) {
            fprintf(stderr, "cannot find free ports to listen on\n");
            return 1;
        }
    }
    server = evpl_thread_create(NULL, server_init, server_fini, &s);
    evpl = evpl_create(NULL);

    printf("evpl %s loopback, %.1f s per test (server thread + client loop)\n", EVPL_VERSION_STRING,
           secs);

    /* TCP ping-pong */
    if (!only || strcmp(only, "pingpong") == 0) {
        memset(&c, 0, sizeof(c));
        b = evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, s.pp_ep, client_pp_notify, fixed_msg,
                         &c);
        t = run_for(evpl, us);
        c.done = 1;
        printf("  TCP ping-pong  64 B x %d in flight: %10.0f msgs/s round trip\n", DEPTH,
               (double) c.ops / t);
        close_and_wait(evpl, b);
        if (c.ops == 0) {
            return 1;
        }
    }

    /* TCP stream */
    if (!only || strcmp(only, "stream") == 0) {
        memset(&c, 0, sizeof(c));
        evpl_iovec_alloc(evpl, CHUNK, 0, 1, 0, &chunk);
        memset(chunk.data, 'x', CHUNK);
        bytes0 = atomic_load(&stream_bytes);
        b = evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, s.stream_ep, client_stream_notify,
                         NULL, &c);
        t = run_for(evpl, us);
        c.done = 1;
        printf("  TCP stream     128 KiB writes:      %10.2f Gbit/s received\n",
               (double) (atomic_load(&stream_bytes) - bytes0) * 8 / t / 1e9);
        close_and_wait(evpl, b);
        evpl_iovec_release(evpl, &chunk);
    }

    /* UDP ping-pong: the client keeps DEPTH datagrams in flight */
    if (!only || strcmp(only, "udp") == 0) {
        struct evpl_endpoint *cep = evpl_endpoint_create("127.0.0.1", base + 3);
        uint64_t prev = 0, t0, end;

        memset(&c, 0, sizeof(c));
        b = evpl_bind(evpl, EVPL_DATAGRAM_SOCKET_UDP, cep, client_udp_notify, &c);
        if (!b) {
            return 77;
        }
        for (int i = 0; i < DEPTH; i++) {
            evpl_sendtoep(evpl, b, s.udp_ep, c.msg, MSG);
        }
        t0 = now_ns();
        end = t0 + us * 1000;
        while (now_ns() < end) {
            evpl_continue(evpl);
            for (; prev < c.ops; prev++) {
                evpl_sendtoep(evpl, b, s.udp_ep, c.msg, MSG);
            }
        }
        printf("  UDP ping-pong  64 B x %d in flight: %10.0f msgs/s round trip\n", DEPTH,
               (double) c.ops / ((double) (now_ns() - t0) / 1e9));
        evpl_close(evpl, b);
        evpl_endpoint_close(cep);
    }

    evpl_destroy(evpl);
    evpl_thread_destroy(server);
    evpl_listener_destroy(s.pp_listener);
    evpl_listener_destroy(s.stream_listener);
    return 0;
}
