/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * UDP: recvmmsg/sendmmsg batches of max_datagram_batch, one RECV_MSG per
 * datagram (boundaries kept), the sender's address valid for replies.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/socket/socket.h"

#define BATCH_MAX 64

static unsigned int
batch_size(void)
{
    unsigned int b = evpl_shared->config->max_datagram_batch;

    return b > BATCH_MAX ? BATCH_MAX : b;
} /* batch_size */

static void
udp_read(struct evpl *evpl, struct evpl_event *event)
{
    struct evpl_bind *bind = evpl_socket_bind(event);
    unsigned int batch = batch_size();
    unsigned int dsize = evpl_shared->config->max_datagram_size;
    struct mmsghdr msgs[BATCH_MAX];
    struct iovec iov[BATCH_MAX];
    struct sockaddr_storage src[BATCH_MAX];
    struct evpl_address *last = NULL;

    for (int rounds = 0; rounds < 8 && !(bind->flags & EVPL_BIND_CLOSING); rounds++) {
        int n;

        /* receive slots survive between reads, so unused ones are not lost */
        while ((unsigned int) bind->ndgram_slots < batch) {
            if (evpl_iovec_alloc(evpl, dsize, 0, 1, 0, &bind->dgram_slots[bind->ndgram_slots]) !=
                1) {
                break;
            }
            bind->ndgram_slots++;
        }
        if (bind->ndgram_slots == 0) {
            evpl_log_error("socket", "UDP: no buffer memory to receive into");
            break;
        }
        memset(msgs, 0, sizeof(msgs[0]) * (size_t) bind->ndgram_slots);
        for (int i = 0; i < bind->ndgram_slots; i++) {
            iov[i].iov_base = bind->dgram_slots[i].data;
            iov[i].iov_len = bind->dgram_slots[i].length;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &src[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(src[i]);
        }
        n = recvmmsg(event->fd, msgs, (unsigned int) bind->ndgram_slots, MSG_DONTWAIT, NULL);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            evpl__event_clear(evpl, event, EVPL_EV_READABLE);
            break;
        }
        for (int i = 0; i < n; i++) {
            struct evpl_iovec v = bind->dgram_slots[i];

            v.length = msgs[i].msg_len;
            /* consecutive datagrams from one sender share an address */
            if (!last || last->addrlen != msgs[i].msg_hdr.msg_namelen ||
                memcmp(&last->sa, &src[i], last->addrlen) != 0) {
                evpl__address_release(last);
                last = evpl__address_new((struct sockaddr *) &src[i], msgs[i].msg_hdr.msg_namelen);
            }
            evpl__bind_received_msg(evpl, bind, &v, 1, v.length, last);
        }
        /* the slots handed out are gone; keep the rest in order */
        memmove(bind->dgram_slots, bind->dgram_slots + n,
                (size_t) (bind->ndgram_slots - n) * sizeof(bind->dgram_slots[0]));
        bind->ndgram_slots -= n;
        if (n < (int) batch) {
            evpl__event_clear(evpl, event, EVPL_EV_READABLE);
            break;
        }
    }
    evpl__address_release(last);
} /* udp_read */

static void
udp_flush(struct evpl *evpl, struct evpl_bind *bind)
{
    unsigned int batch = batch_size();
    struct mmsghdr msgs[BATCH_MAX];
    struct iovec iov[BATCH_MAX * 8];
    uint64_t bytes = 0, sent_msgs = 0;

    while (!evpl_dgram_ring_empty(&bind->dgram_send)) {
        uint32_t nd = evpl_dgram_ring_count(&bind->dgram_send), k = 0, vi = 0, ri = 0;
        int n;

        memset(msgs, 0, sizeof(msgs));
        /* one mmsghdr per datagram, iovecs from the send ring in order */
        for (k = 0; k < nd && k < batch; k++) {
            struct evpl_dgram *d = evpl_dgram_ring_at(&bind->dgram_send, k);
            struct evpl_address *to = d->addr;

            if (vi + d->niov > BATCH_MAX * 8) {
                break;
            }
            msgs[k].msg_hdr.msg_iov = &iov[vi];
            msgs[k].msg_hdr.msg_iovlen = d->niov;
            msgs[k].msg_hdr.msg_name = to ? &to->sa : NULL;
            msgs[k].msg_hdr.msg_namelen = to ? to->addrlen : 0;
            for (uint32_t j = 0; j < d->niov; j++, ri++, vi++) {
                struct evpl_iovec *v = evpl_iovec_fifo_at(&bind->send_ring.fifo, ri);

                iov[vi].iov_base = v->data;
                iov[vi].iov_len = v->length;
            }
        }
        n = sendmmsg(bind->event.fd, msgs, k, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                evpl__event_clear(evpl, &bind->event, EVPL_EV_WRITABLE);
                evpl__event_set(evpl, &bind->event, EVPL_EV_WRITE_INTEREST);
                break;
            }
            /* this datagram cannot go (too big, unreachable): drop it alone */
            evpl_log_error("socket", "UDP send: %s; datagram dropped", strerror(errno));
            n = 1;
        }
        for (int i = 0; i < n; i++) {
            struct evpl_dgram *d = evpl_dgram_ring_front(&bind->dgram_send);

            evpl_iovec_ring_consume(evpl, &bind->send_ring, d->length);
            /* zero-length iovecs are never queued, so niov may exceed what
             * length covers only for empty datagrams, which consume none */
            bytes += d->length;
            sent_msgs++;
            evpl__address_release(d->addr);
            evpl_dgram_ring_pop(&bind->dgram_send);
        }
    }
    if (evpl_dgram_ring_empty(&bind->dgram_send)) {
        evpl__event_clear(evpl, &bind->event, EVPL_EV_WRITE_INTEREST);
    }
    evpl__bind_sent(evpl, bind, bytes, sent_msgs);
} /* udp_flush */

static void
udp_write(struct evpl *evpl, struct evpl_event *event)
{
    udp_flush(evpl, evpl_socket_bind(event));
} /* udp_write */

static int
udp_bind(struct evpl *evpl, struct evpl_bind *bind)
{
    int fd, rc;

    fd = socket(bind->local->sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    if (sys_bind(fd, (struct sockaddr *) &bind->local->sa, bind->local->addrlen) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    evpl__event_init(&bind->event, fd, udp_read, udp_write, NULL);
    bind->event.flags = EVPL_EV_WANT_WRITE;
    rc = evpl__event_add(evpl, &bind->event);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    bind->flags |= EVPL_BIND_TRANSPORT_UP;
    evpl__event_set(evpl, &bind->event, EVPL_EV_READ_INTEREST);
    return 0;
} /* udp_bind */

static void
udp_close(struct evpl *evpl, struct evpl_bind *bind)
{
    evpl__stream_close(evpl, bind); /* same socket teardown */
    evpl_iovecs_release(evpl, bind->dgram_slots, bind->ndgram_slots);
    bind->ndgram_slots = 0;
} /* udp_close */

static int
always(void)
{
    return 1;
} /* always */

const struct evpl_protocol evpl_protocol_socket_udp = {
    .id = EVPL_DATAGRAM_SOCKET_UDP,
    .name = "DATAGRAM_SOCKET_UDP",
    .stream = 0,
    .connected = 0,
    .kind = EVPL_EP_NETWORK,
    .available = always,
    .bind = udp_bind,
    .flush = udp_flush,
    .close = udp_close,
};
