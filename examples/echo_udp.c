/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * UDP echo: a server socket sends every datagram back to where it came
 * from; a client socket sends a few datagrams and counts the echoes.
 *
 * Shows: evpl_bind for an unconnected datagram protocol, RECV_MSG with
 * recv_msg.addr, replying with evpl_sendto, releasing received iovecs.
 */
#include <evpl/evpl.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define COUNT 8

static int echoes;

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify, void *priv)
{
    if (notify->notify_type == EVPL_NOTIFY_RECV_MSG) {
        /* the payload iovecs are ours: send them back without copying
         * (TAKE_REF hands our references to the send queue) */
        evpl_sendtov(evpl, bind, notify->recv_msg.addr, notify->recv_msg.iovec,
                     (int) notify->recv_msg.niov, (int) notify->recv_msg.length,
                     EVPL_SEND_FLAG_TAKE_REF);
    }
}

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify, void *priv)
{
    if (notify->notify_type == EVPL_NOTIFY_RECV_MSG) {
        printf("echo %d: %u bytes \"%.*s\"\n", ++echoes, notify->recv_msg.length,
               (int) notify->recv_msg.iovec[0].length, (char *) notify->recv_msg.iovec[0].data);
        /* owned by us: release when done */
        evpl_iovecs_release(evpl, notify->recv_msg.iovec, (int) notify->recv_msg.niov);
        if (echoes == COUNT) {
            evpl_stop(evpl);
        }
    }
}

static void
give_up(struct evpl *evpl, struct evpl_timer *timer)
{
    evpl_stop(evpl); /* UDP may drop; do not wait forever */
}

int
main(void)
{
    struct evpl *evpl = evpl_create(NULL);
    struct evpl_endpoint *server_ep = NULL, *client_ep = NULL;
    struct evpl_bind *server = NULL, *client = NULL;
    struct evpl_timer timer;
    char msg[32];

    /* two ports nobody else uses: try a few pairs until both binds work */
    for (int attempt = 0; !server || !client; attempt++) {
        int port = 20000 + (int) ((getpid() * 7919 + attempt * 104729) % 40000);

        if (attempt == 20) {
            fprintf(stderr, "cannot bind two UDP ports\n");
            return 1;
        }
        if (server) {
            evpl_close(evpl, server);
        }
        if (server_ep) {
            evpl_endpoint_close(server_ep);
            evpl_endpoint_close(client_ep);
        }
        server_ep = evpl_endpoint_create("127.0.0.1", port);
        client_ep = evpl_endpoint_create("127.0.0.1", port + 1);
        server = evpl_bind(evpl, EVPL_DATAGRAM_SOCKET_UDP, server_ep, server_notify, NULL);
        client = server ? evpl_bind(evpl, EVPL_DATAGRAM_SOCKET_UDP, client_ep, client_notify, NULL)
                        : NULL;
    }
    for (int i = 0; i < COUNT; i++) {
        int n = snprintf(msg, sizeof(msg), "datagram %d", i);

        evpl_sendtoep(evpl, client, server_ep, msg, (unsigned int) n);
    }
    evpl_add_oneshot_timer(evpl, &timer, give_up, 5000000);
    evpl_run(evpl);
    evpl_remove_timer(evpl, &timer);

    evpl_destroy(evpl); /* closes both binds */
    evpl_endpoint_close(server_ep);
    evpl_endpoint_close(client_ep);
    return echoes == COUNT ? 0 : 1;
}
