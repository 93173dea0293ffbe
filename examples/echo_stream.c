/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Echo over a stream: a server loop echoes every byte it receives, a
 * client on the same loop sends a greeting and waits for it to come back.
 *
 *   evpl-echo-stream [TCP|UNIX]
 *
 * Shows: a listener, attaching a loop to it, evpl_connect, evpl_send,
 * RECV_DATA with evpl_recv, evpl_close and DISCONNECTED.
 */
#include <evpl/evpl.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char greeting[] = "hello, evpl";
static char echoed[sizeof(greeting)];
static int have;

/* Server side: every connection gets this notify callback. */
static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify, void *priv)
{
    char buf[4096];
    int n;

    if (notify->notify_type == EVPL_NOTIFY_RECV_DATA) {
        /* take everything buffered and send it straight back */
        while ((n = evpl_recv(evpl, bind, buf, sizeof(buf), 0)) > 0) {
            evpl_send(evpl, bind, buf, (unsigned int) n);
        }
    }
}

/* Called on our loop for every accepted connection. */
static void
on_accept(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_cb,
          evpl_segment_callback_t *segment_cb, void **conn_private, void *priv)
{
    *notify_cb = server_notify;
}

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify, void *priv)
{
    switch (notify->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            evpl_send(evpl, bind, greeting, sizeof(greeting));
            break;
        case EVPL_NOTIFY_RECV_DATA:
            have += evpl_recv(evpl, bind, echoed + have, (int) sizeof(echoed) - have, 0);
            if (have == (int) sizeof(echoed)) {
                evpl_close(evpl, bind); /* DISCONNECTED follows on a later pass */
            }
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            evpl_stop(evpl);
            break;
    }
}

int
main(int argc, char **argv)
{
    int unix_sock = argc > 1 && strcmp(argv[1], "UNIX") == 0;
    char path[64];
    struct evpl *evpl = evpl_create(NULL);
    struct evpl_listener *listener = evpl_listener_create();
    struct evpl_endpoint *ep;
    struct evpl_listener_binding *binding;
    enum evpl_protocol_id proto = unix_sock ? EVPL_STREAM_SOCKET_UNIX : EVPL_STREAM_SOCKET_TCP;

    binding = evpl_listener_attach(evpl, listener, on_accept, NULL);

    /* a port (or name) nobody else uses: try a few until listen succeeds */
    for (int attempt = 0;; attempt++) {
        if (unix_sock) {
            snprintf(path, sizeof(path), "@evpl-echo-%d-%d", (int) getpid(), attempt);
            ep = evpl_endpoint_create_local(path);
        } else {
            ep = evpl_endpoint_create("127.0.0.1",
                                      20000 + (int) ((getpid() * 7919 + attempt * 104729) % 40000));
        }
        if (evpl_listen(listener, proto, ep) == 0) {
            break;
        }
        evpl_endpoint_close(ep);
        if (attempt == 20) {
            fprintf(stderr, "listen failed\n");
            return 1;
        }
    }
    evpl_connect(evpl, proto, NULL, ep, client_notify, NULL, NULL);
    evpl_run(evpl);

    evpl_listener_detach(evpl, binding);
    evpl_listener_destroy(listener);
    evpl_destroy(evpl); /* closes the server side of the connection too */
    evpl_endpoint_close(ep);

    printf("sent \"%s\", got back \"%s\"\n", greeting, echoed);
    return strcmp(greeting, echoed) == 0 ? 0 : 1;
}
