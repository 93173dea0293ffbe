/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * spin_ns 0 and a backend's completion poll (io_uring TCP), one loop that
 * holds both ends of a connection and plays ping-pong with itself.
 *
 * 1. With an application poll registered the loop polls (loop.md §4.2:
 *    activity keeps it in poll mode), and io_uring completions are reaped
 *    in its poll-only passes: the round trips need almost no full passes.
 *    When the backend's poll was left out on such loops (c1a862b), every
 *    completion waited for a full pass (one in poll_iterations + 1
 *    passes), at least one per round trip.
 * 2. The application poll removed while the loop polls: the completion
 *    poll goes dormant, so no poll-only passes any more (each round trip
 *    takes full passes).  Before, it kept the loop polling (and the loop
 *    never slept while completions came: test_sleep_wakeup T_SPIN_NS=0).
 * 3. No other poll, but a pin for each round trip (pin, send, unpin on
 *    the echo, one pass, and again): each pin wakes the dormant completion
 *    poll on the next pass.  It stayed asleep for up to poll_iterations
 *    empty poll-only passes when the pin came while the loop was in poll
 *    mode (helper-99): 1000 passes or more per round trip.
 *
 * Full passes are counted with the pre_wait hook (one per full pass), all
 * passes with iteration_end.
 */
#include "t_net.h"

#define ROUNDS 2000
#define MSG    64

static struct evpl_bind *server_bind, *client_bind;
static int echoes, connected, disconnected, app_polls;
static uint64_t full_passes, all_passes;

static void
count_full(struct evpl *evpl, void *priv)
{
    (void) evpl;
    (void) priv;
    full_passes++;
}

static void
count_pass(struct evpl *evpl, void *priv)
{
    (void) evpl;
    (void) priv;
    all_passes++;
}

static void
app_poll(struct evpl *evpl, void *priv)
{
    (void) evpl;
    (void) priv;
    app_polls++;
}

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) priv;
    if (n->notify_type == EVPL_NOTIFY_RECV_MSG) {
        evpl_sendv(evpl, bind, n->recv_msg.iovec, (int) n->recv_msg.niov, (int) n->recv_msg.length,
                   EVPL_SEND_FLAG_TAKE_REF);
    }
}

static void
server_attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *cb,
              evpl_segment_callback_t *seg, void **conn_private, void *priv)
{
    (void) evpl;
    (void) priv;
    server_bind = bind;
    *cb = server_notify;
    *seg = t_segment_be32;
    *conn_private = NULL;
}

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) bind;
    (void) priv;
    if (n->notify_type == EVPL_NOTIFY_CONNECTED) {
        connected = 1;
    } else if (n->notify_type == EVPL_NOTIFY_RECV_MSG) {
        T_EQ(n->recv_msg.length, MSG);
        evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
        echoes++;
    } else if (n->notify_type == EVPL_NOTIFY_DISCONNECTED) {
        disconnected = 1;
    }
}

struct run {
    uint64_t full, passes; /* full passes, all passes */
    int64_t sleeps;        /* (both ends are this loop) */
};

/* rounds round trips, each pinning the loop in poll mode if pin */
static struct run
ping_pong(struct evpl *evpl, int rounds, int pin)
{
    struct run r = {full_passes, all_passes, t_metric("evpl_loop_sleeps_total")};
    int echoes0 = echoes;

    for (int i = 0; i < rounds; i++) {
        uint8_t m[MSG];
        uint64_t deadline = t_now_ns() + 10000000000ull;

        memset(m, 0x5a, sizeof(m));
        t_put_be32(m, MSG);
        if (pin) {
            evpl_poll_pin(evpl);
        }
        evpl_send(evpl, client_bind, m, sizeof(m));
        while (echoes - echoes0 == i) {
            evpl_continue(evpl);
            if (t_now_ns() > deadline) {
                T_FAIL("round trip %d not complete after 10 s (a completion nobody reaps)", i);
            }
        }
        if (pin) {
            evpl_poll_unpin(evpl);
            evpl_continue(evpl);
        }
    }
    r.full = full_passes - r.full;
    r.passes = all_passes - r.passes;
    r.sleeps = t_metric("evpl_loop_sleeps_total") - r.sleeps;
    fprintf(stderr, "  %d round trips: %" PRIu64 " passes, %" PRIu64 " full, %" PRId64 " sleeps\n",
            rounds, r.passes, r.full, r.sleeps);
    return r;
}

int
main(void)
{
    struct evpl_global_config *gc;
    struct evpl_loop_hooks hooks = {.pre_wait = count_full, .iteration_end = count_pass};
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct evpl_listener *l;
    struct evpl_listener_binding *lb;
    struct evpl_poll *poll;
    struct run r;

    t_net_guard(120);
    gc = evpl_global_config_init();
    evpl_global_config_set_spin_ns(gc, 0);
    evpl_init(gc);
    if (!evpl_protocol_available(EVPL_STREAM_IO_URING_TCP)) {
        T_SKIP("no io_uring TCP here");
    }

    evpl = evpl_create(NULL); /* poll mode on, wait_ms -1 */
    evpl_set_loop_hooks(evpl, &hooks);
    ep = t_endpoint(EVPL_STREAM_IO_URING_TCP);
    l = t_listen(EVPL_STREAM_IO_URING_TCP, ep);
    lb = evpl_listener_attach(evpl, l, server_attach, NULL);
    client_bind =
        evpl_connect(evpl, EVPL_STREAM_IO_URING_TCP, NULL, ep, client_notify, t_segment_be32, NULL);
    T_OK(client_bind != NULL);
    T_PUMP(evpl, connected && server_bind, 5000);

    /* 1: an application poll; the loop polls, and reaps as it polls */
    fprintf(stderr, "1: an application poll\n");
    poll = evpl_add_poll(evpl, NULL, NULL, app_poll, NULL);
    r = ping_pong(evpl, ROUNDS, 0);
    T_OK(app_polls > 0);
    T_OK(r.full < ROUNDS / 4);

    /* 2: the poll goes while the loop polls: full passes only */
    fprintf(stderr, "2: the poll removed\n");
    evpl_remove_poll(evpl, poll);
    r = ping_pong(evpl, ROUNDS, 0);
    T_EQ_U(r.passes, r.full);

    /* 3: a pin per round trip, the completion poll woken at once */
    fprintf(stderr, "3: a pin per round trip\n");
    r = ping_pong(evpl, ROUNDS, 1);
    T_OK(r.passes < (uint64_t) ROUNDS * 20);

    evpl_close(evpl, client_bind);
    T_PUMP(evpl, disconnected, 5000);
    evpl_listener_detach(evpl, lb);
    evpl_destroy(evpl);
    evpl_listener_destroy(l);
    evpl_endpoint_close(ep);
    return 0;
}
