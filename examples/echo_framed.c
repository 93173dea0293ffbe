/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Echo of framed messages over TCP: each message is a 4-byte big-endian
 * length followed by that many payload bytes.  A segment callback tells the
 * library where messages end, so the application gets whole messages
 * (RECV_MSG) however TCP split or merged them, and the server echoes each
 * one back zero-copy by handing the received iovecs to evpl_sendv.
 */
#include <evpl/evpl.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MESSAGES 100

/* Length of the next message: header + payload, or 0 if the header is
 * not all here yet.  Only peeks; the library does the consuming. */
static int
frame_length(struct evpl *evpl, struct evpl_bind *bind, void *priv)
{
    uint32_t hdr;

    if (evpl_peek(evpl, bind, &hdr, sizeof(hdr)) < (int) sizeof(hdr)) {
        return 0;
    }
    hdr = ntohl(hdr);
    if (hdr > 1024 * 1024) {
        return -1; /* refuse absurd frames: the library closes the bind */
    }
    return (int) (sizeof(hdr) + hdr);
}

static void
server_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify, void *priv)
{
    if (notify->notify_type == EVPL_NOTIFY_RECV_MSG) {
        /* we own the message's iovecs; TAKE_REF passes them on, no copy */
        evpl_sendv(evpl, bind, notify->recv_msg.iovec, (int) notify->recv_msg.niov,
                   (int) notify->recv_msg.length, EVPL_SEND_FLAG_TAKE_REF);
    }
}

static void
on_accept(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_cb,
          evpl_segment_callback_t *segment_cb, void **conn_private, void *priv)
{
    *notify_cb = server_notify;
    *segment_cb = frame_length;
}

static int received;

static void
send_message(struct evpl *evpl, struct evpl_bind *bind, int i)
{
    char payload[64];
    uint32_t len = (uint32_t) snprintf(payload, sizeof(payload), "message number %d", i);
    uint32_t hdr = htonl(len);

    evpl_send(evpl, bind, &hdr, sizeof(hdr)); /* several sends, one writev */
    evpl_send(evpl, bind, payload, len);
}

static void
client_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify, void *priv)
{
    switch (notify->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            for (int i = 0; i < MESSAGES; i++) {
                send_message(evpl, bind, i);
            }
            break;
        case EVPL_NOTIFY_RECV_MSG:
            received++;
            evpl_iovecs_release(evpl, notify->recv_msg.iovec, (int) notify->recv_msg.niov);
            if (received == MESSAGES) {
                evpl_finish(evpl, bind);
            }
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            evpl_stop(evpl);
            break;
    }
}

int
main(void)
{
    struct evpl *evpl = evpl_create(NULL);
    struct evpl_listener *listener = evpl_listener_create();
    struct evpl_listener_binding *binding = evpl_listener_attach(evpl, listener, on_accept, NULL);
    struct evpl_endpoint *ep;

    /* a port nobody else uses: try a few until listen succeeds */
    for (int attempt = 0;; attempt++) {
        ep = evpl_endpoint_create("127.0.0.1",
                                  20000 + (int) ((getpid() * 7919 + attempt * 104729) % 40000));
        if (evpl_listen(listener, EVPL_STREAM_SOCKET_TCP, ep) == 0) {
            break;
        }
        evpl_endpoint_close(ep);
        if (attempt == 20) {
            return 1;
        }
    }
    evpl_connect(evpl, EVPL_STREAM_SOCKET_TCP, NULL, ep, client_notify, frame_length, NULL);
    evpl_run(evpl);

    evpl_listener_detach(evpl, binding);
    evpl_listener_destroy(listener);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    printf("%d of %d framed messages echoed\n", received, MESSAGES);
    return received == MESSAGES ? 0 : 1;
}
