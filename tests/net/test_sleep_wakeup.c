/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * No lost wakeup when a loop leaves poll mode (loop.md §4, net.md): one
 * message in flight at a time, echoed by a server thread after a random
 * delay around the client's spin window, so that echoes keep arriving just
 * as the client's loop stops polling and goes to sleep (wait_ms -1, the
 * default: nothing else will wake it).  Whatever a backend delivers while
 * the loop leaves poll mode must end that pass without sleeping, or the
 * client waits for ever for an echo it has already been handed (RDMA CM
 * did: its poll-exit reap delivered receives and then slept; found with
 * upstream's bulk test, which hung in 5 of 9 runs).
 *
 * The client pumps with plain evpl_continue, as applications do; a
 * watchdog thread fails the test when a round trip takes 10 s.
 *
 * With T_SPIN_NS=0 the loops are told never to busy-poll (spin_ns 0) and
 * the server echoes at once: the client must sleep between round trips,
 * not spin.  A backend whose completion poll ran on such a loop kept the
 * loop polling for as long as completions came (each reaped one renewed
 * poll mode): over io_uring and RDMA CM the client ran 30-60 passes per
 * round trip, and the two loops slept 6-10 times in all the round trips
 * (4 passes and 2-3 sleeps per round trip since).
 *
 * Unconnected datagrams (UDP, RDMA CM UD) too: the server binds and
 * echoes to the client's endpoint.  Only the first message is sent again
 * (from a timer) until its echo comes, in case the first datagram beats
 * the server's bind or address resolution; every later round trip has
 * one datagram each way and nothing else to wake the client.
 */
/* MATRIX: stream cdatagram datagram */
#include "t_net.h"

#define SPIN_US 100

#ifndef container_of
#define container_of(p, type, member) ((type *) ((char *) (p) -offsetof(type, member)))
#endif
#define MSG_LEN 64

static enum evpl_protocol_id proto;
static int dgram;                      /* unconnected datagrams: evpl_bind, sendto */
static struct evpl_endpoint *ep, *cep; /* the server's, the client's (dgram) */
static atomic_int server_bound;
static _Atomic uint64_t progress; /* round trips completed */
static atomic_int client_done;
static int spin_zero; /* T_SPIN_NS=0: never busy-poll, echo at once */

/* ---- server: echo each message after 0 .. 4 x SPIN_US ---- */

struct sconn {
    struct evpl_bind *bind;
    struct evpl_timer timer;
    struct evpl_iovec iov[8];
    int niov, length, armed, closed;
    uint64_t rng;
};

static struct sconn sconns[4];
static int nsconn;

static void
echo_now(struct evpl *evpl, struct evpl_timer *timer)
{
    struct sconn *s = container_of(timer, struct sconn, timer);

    s->armed = 0;
    if (s->closed) {
        evpl_iovecs_release(evpl, s->iov, s->niov);
        return;
    }
    if (dgram) {
        evpl_sendtoepv(evpl, s->bind, cep, s->iov, s->niov, s->length, EVPL_SEND_FLAG_TAKE_REF);
    } else {
        evpl_sendv(evpl, s->bind, s->iov, s->niov, s->length, EVPL_SEND_FLAG_TAKE_REF);
    }
}

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct sconn *s = priv;

    switch (n->notify_type) {
        case EVPL_NOTIFY_RECV_MSG:
            if (dgram && s->armed) {
                /* the first message sent again while its echo waits */
                evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
                break;
            }
            T_OK(!s->armed); /* one in flight */
            T_OK(n->recv_msg.niov <= 8);
            s->niov = (int) n->recv_msg.niov;
            s->length = (int) n->recv_msg.length;
            memcpy(s->iov, n->recv_msg.iovec, sizeof(struct evpl_iovec) * n->recv_msg.niov);
            s->rng = t_mix64(s->rng);
            s->armed = 1;
            if (spin_zero) {
                echo_now(evpl, &s->timer);
                break;
            }
            evpl_add_oneshot_timer(evpl, &s->timer, echo_now, s->rng % (4 * SPIN_US));
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            s->closed = 1;
            if (s->armed) {
                evpl_remove_timer(evpl, &s->timer);
                s->armed = 0;
                evpl_iovecs_release(evpl, s->iov, s->niov);
            }
            break;
        default:
            break;
    }
}

static void
server_attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_cb,
              evpl_segment_callback_t *segment_cb, void **conn_private, void *priv)
{
    struct sconn *s;

    T_OK(nsconn < 4);
    s = &sconns[nsconn++];
    memset(s, 0, sizeof(*s));
    s->bind = bind;
    s->rng = 0x51ee9 + (uint64_t) nsconn;
    *notify_cb = server_notify;
    *segment_cb = evpl_protocol_is_stream(proto) ? t_segment_be32 : NULL;
    *conn_private = s;
}

static struct evpl_listener *listener;
static struct evpl_listener_binding *lbinding;

static void *
server_init(struct evpl *evpl, void *arg)
{
    if (dgram) {
        struct sconn *s = &sconns[nsconn++];

        s->rng = 0x51ee9;
        s->bind = evpl_bind(evpl, proto, ep, server_notify, s);
        T_OK(s->bind != NULL);
        atomic_store(&server_bound, 1);
        return arg;
    }
    lbinding = evpl_listener_attach(evpl, listener, server_attach, NULL);
    T_OK(lbinding != NULL);
    return arg;
}

static void
server_shutdown(struct evpl *evpl, void *arg)
{
    if (dgram) {
        return; /* evpl_destroy closes the bind */
    }
    evpl_listener_detach(evpl, lbinding);
}

/* ---- client ---- */

static int echoes, connected, disconnected;
static uint32_t expect_seq;

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    uint8_t m[MSG_LEN];

    switch (n->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            connected = 1;
            break;
        case EVPL_NOTIFY_RECV_MSG: {
            uint32_t off = 0;

            T_EQ(n->recv_msg.length, MSG_LEN);
            for (unsigned i = 0; i < n->recv_msg.niov; i++) {
                memcpy(m + off, n->recv_msg.iovec[i].data, n->recv_msg.iovec[i].length);
                off += n->recv_msg.iovec[i].length;
            }
            evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
            if (dgram && t_get_be32(m + T_HDR) == 0 && (expect_seq > 0 || echoes > 0)) {
                break; /* the echo of a first message sent again (both
                        * echoes may come in one pass) */
            }
            T_EQ(t_get_be32(m + T_HDR), expect_seq);
            echoes++;
            break;
        }
        case EVPL_NOTIFY_DISCONNECTED:
            disconnected = 1;
            break;
        default:
            break;
    }
}

/* dgram: the first message again, every 100 ms until its echo */
static struct evpl_timer first_timer;
static struct evpl_bind *client_bind;

static void
first_again(struct evpl *evpl, struct evpl_timer *timer)
{
    uint8_t m[MSG_LEN];

    if (echoes > 0) {
        evpl_remove_timer(evpl, timer);
        return;
    }
    memset(m, 0xa5, sizeof(m));
    t_put_be32(m, MSG_LEN);
    t_put_be32(m + T_HDR, 0);
    evpl_sendtoep(evpl, client_bind, ep, m, sizeof(m));
}

static void *
watchdog(void *arg)
{
    uint64_t last = UINT64_MAX;
    int still = 0;

    (void) arg;
    while (!atomic_load(&client_done)) {
        uint64_t p = atomic_load(&progress);

        still = p == last ? still + 1 : 0;
        last = p;
        if (still >= 100) { /* 10 s */
            fprintf(stderr,
                    "FAIL: round trip %llu not complete after 10 s: a loop went to sleep with a "
                    "message already delivered (a lost wakeup)\n",
                    (unsigned long long) p);
            _exit(1);
        }
        usleep(100000);
    }
    return NULL;
}

int
main(void)
{
    struct evpl_global_config *gc;
    struct evpl_thread *server;
    struct evpl *evpl;
    struct evpl_bind *bind;
    pthread_t dog;
    int rounds;
    uint64_t passes = 0;
    int64_t sleeps;

    t_net_guard(300);
    gc = evpl_global_config_init();
    spin_zero = getenv("T_SPIN_NS") && strcmp(getenv("T_SPIN_NS"), "0") == 0;
    evpl_global_config_set_spin_ns(gc, spin_zero ? 0 : SPIN_US * 1000ull);
    evpl_init(gc);
    proto = t_proto(T_NET_KIND_STREAM | T_NET_KIND_CDGRAM | T_NET_KIND_DATAGRAM);
    dgram = !evpl_protocol_is_stream(proto) && !t_proto_is_connected_datagram(proto);
    rounds = (int) t_vm_scale(2000, 4);

    ep = t_endpoint(proto);
    if (!dgram) {
        listener = t_listen(proto, ep);
    }
    /* the server's loop too is the default one (wait_ms -1) */
    server = evpl_thread_create(NULL, server_init, server_shutdown, NULL);
    T_EQ(pthread_create(&dog, NULL, watchdog, NULL), 0);

    evpl = evpl_create(NULL); /* poll mode, wait_ms -1: sleeps when idle */
    if (dgram) {
        while (!atomic_load(&server_bound)) {
            usleep(1000);
        }
        cep = t_endpoint(proto);
        bind = evpl_bind(evpl, proto, cep, client_notify, NULL);
        client_bind = bind;
        connected = 1; /* no CONNECTED on unconnected binds */
        evpl_add_timer(evpl, &first_timer, first_again, 100000);
    } else {
        bind = evpl_connect(evpl, proto, NULL, ep, client_notify,
                            evpl_protocol_is_stream(proto) ? t_segment_be32 : NULL, NULL);
    }
    T_OK(bind != NULL);
    for (int i = 0; i < rounds; i++) {
        uint8_t m[MSG_LEN];

        memset(m, 0xa5, sizeof(m));
        t_put_be32(m, MSG_LEN);
        t_put_be32(m + T_HDR, (uint32_t) i);
        expect_seq = (uint32_t) i;
        if (dgram) {
            evpl_sendtoep(evpl, bind, ep, m, sizeof(m));
        } else {
            evpl_send(evpl, bind, m, sizeof(m));
        }
        while (echoes == i) {
            evpl_continue(evpl);
            passes++;
        }
        T_EQ(echoes, i + 1);
        atomic_store(&progress, (uint64_t) i + 1);
    }
    atomic_store(&client_done, 1); /* the watchdog judges the round trips only */
    pthread_join(dog, NULL);
    T_OK(connected);
    sleeps = t_metric("evpl_loop_sleeps_total");
    fprintf(stderr, "%d round trips, %" PRIu64 " client passes, %" PRId64 " sleeps (both loops)\n",
            rounds, passes, sleeps);
    if (spin_zero) {
        /* a pass to send, one to sleep, one woken: a few; a loop that
         * polls the round trip out runs tens, and hardly sleeps */
        T_OK(passes <= (uint64_t) rounds * 20);
        T_OK(sleeps >= rounds / 2);
    }

    if (dgram) {
        evpl_remove_timer(evpl, &first_timer); /* if it has not gone */
    }
    evpl_close(evpl, bind);
    while (!disconnected) {
        evpl_continue(evpl);
    }
    evpl_destroy(evpl);
    evpl_thread_destroy(server);
    if (listener) {
        evpl_listener_destroy(listener);
    }
    return 0;
}
