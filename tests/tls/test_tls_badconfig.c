/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: tls */
/*
 * A TLS configuration that cannot work (a certificate file that does not
 * exist) fails evpl_listen with -1 (net.md §4: the transport failed), and a
 * connect fails with one DISCONNECTED carrying a negative status; nothing
 * aborts, and plain TCP in the same process is unaffected.
 */
#include <evpl/evpl.h>

#include <sys/socket.h>

#include "t.h"

static int connected, disconnected, status;

static void
notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) evpl, (void) bind, (void) priv;
    if (n->notify_type == EVPL_NOTIFY_CONNECTED) {
        connected++;
    } else if (n->notify_type == EVPL_NOTIFY_DISCONNECTED) {
        disconnected++;
        status = n->notify_status;
    }
}

static void
accepted(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *cb,
         evpl_segment_callback_t *seg, void **priv, void *data)
{
    (void) evpl, (void) bind, (void) data;
    *cb = notify;
    *seg = NULL;
    *priv = NULL;
}

int
main(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    struct evpl_listener *l;
    struct evpl_listener_binding *b;
    struct evpl_endpoint *ep;
    struct evpl *evpl;

    evpl_global_config_set_tls_cert(gc, "/nonexistent/evpl-test/cert.pem");
    evpl_global_config_set_tls_key(gc, "/nonexistent/evpl-test/key.pem");
    evpl_init(gc);
    {
        struct evpl_thread_config *tc = evpl_thread_config_init();

        evpl_thread_config_set_wait_ms(tc, 1);
        evpl = evpl_create(tc);
    }
    ep = evpl_endpoint_create("127.0.0.1", t_free_port(SOCK_STREAM));

    l = evpl_listener_create();
    b = evpl_listener_attach(evpl, l, accepted, NULL);
    T_OK(b != NULL);
    T_EQ(evpl_listen(l, EVPL_STREAM_SOCKET_TLS, ep), -1);

    /* the failed listen left nothing behind: plain TCP can take the port */
    T_EQ(evpl_listen(l, EVPL_STREAM_SOCKET_TCP, ep), 0);

    /* a TLS client cannot be set up either: one DISCONNECTED, status < 0 */
    T_OK(evpl_connect(evpl, EVPL_STREAM_SOCKET_TLS, NULL, ep, notify, NULL, NULL) != NULL);
    for (int i = 0; i < 5000 && !disconnected; i++) {
        evpl_continue(evpl);
    }
    T_EQ(disconnected, 1);
    T_EQ(connected, 0);
    T_LT(status, 0);

    evpl_listener_destroy(l);
    evpl_listener_detach(evpl, b);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
    return 0;
}
