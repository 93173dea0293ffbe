/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * Host names are resolved off the loop: evpl_connect to "localhost" returns
 * at once and connects once the lookup answers; an unresolvable name ends
 * in one DISCONNECTED with a negative errno; a bind closed while its lookup
 * is in flight gets one DISCONNECTED and the late answer is ignored; a loop
 * destroyed with a lookup in flight is not written to afterwards.
 */
#include <evpl/evpl.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "t.h"

struct conn {
    int connected, disconnected, status;
};

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    struct conn *c = priv;

    if (n->notify_type == EVPL_NOTIFY_CONNECTED) {
        c->connected++;
    } else if (n->notify_type == EVPL_NOTIFY_DISCONNECTED) {
        c->disconnected++;
        c->status = n->notify_status;
    }
}

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
}

static void
on_accept(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_cb,
          evpl_segment_callback_t *segment_cb, void **conn_private, void *priv)
{
    *notify_cb = server_notify;
}

static void
pump(struct evpl *evpl, int *cond, int want)
{
    uint64_t end = t_now_ns() + 10ull * 1000000000;

    while (*cond < want) {
        T_LT(t_now_ns(), end);
        evpl_continue(evpl);
    }
}

int
main(void)
{
    int port;
    struct evpl *evpl;
    struct evpl_listener *l;
    struct evpl_endpoint *ip, *name, *bad;
    struct evpl_listener_binding *b;
    struct conn ok = {0}, fail = {0}, early = {0};
    struct evpl_bind *bind;

    /* the failing lookup must not reach a name server off this machine */
    if (t_private_netns() < 0) {
        T_SKIP("needs a private network namespace (root)");
    }
    port = t_free_port(SOCK_STREAM);
    {
        /* a loop that sleeps 5 ms at most: the pumps below go on while
         * nothing happens (a default loop past its spin window would wait
         * for an event that may never come) */
        struct evpl_thread_config *tc = evpl_thread_config_init();

        evpl_thread_config_set_poll_mode(tc, 0);
        evpl_thread_config_set_wait_ms(tc, 5);
        evpl = evpl_create(tc);
        evpl_thread_config_release(tc);
    }
    l = evpl_listener_create();
    ip = evpl_endpoint_create("127.0.0.1", port);
    name = evpl_endpoint_create("localhost", port);
    bad = evpl_endpoint_create("nonexistent.invalid", port);
    b = evpl_listener_attach(evpl, l, on_accept, NULL);

    T_EQ(evpl_listen(l, EVPL_STREAM_SOCKET_TCP, ip), 0);

    bind = evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, name, client_notify, NULL, &ok);
    T_OK(bind != NULL);
    T_EQ(ok.connected, 0); /* never from inside evpl_connect */
    pump(evpl, &ok.connected, 1);
    evpl_close(evpl, bind);
    pump(evpl, &ok.disconnected, 1);
    T_EQ(ok.connected, 1);
    T_EQ(ok.status, 0);

    bind = evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, bad, client_notify, NULL, &fail);
    T_OK(bind != NULL);
    pump(evpl, &fail.disconnected, 1);
    T_EQ(fail.connected, 0);
    T_LT(fail.status, 0);

    /* closed before the lookup answers: exactly one DISCONNECTED */
    bind = evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, name, client_notify, NULL, &early);
    evpl_close(evpl, bind);
    pump(evpl, &early.disconnected, 1);
    {
        /* time for the late answer to come, and be ignored */
        uint64_t end = t_now_ns() + 200000000ull;

        while (t_now_ns() < end) {
            evpl_continue(evpl);
        }
    }
    T_EQ(early.disconnected, 1);
    T_EQ(early.connected, 0);

    /* a lookup still in flight when the loop goes away */
    evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, name, client_notify, NULL, &early);

    evpl_listener_detach(evpl, b);
    evpl_destroy(evpl);
    evpl_listener_destroy(l);
    evpl_endpoint_close(ip);
    evpl_endpoint_close(name);
    evpl_endpoint_close(bad);
    usleep(100000); /* let the orphaned lookup finish under the sanitizers */
    return 0;
}
