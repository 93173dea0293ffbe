/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * UDP: recvmmsg/sendmmsg batches of max_datagram_batch, one RECV_MSG per
 * datagram (boundaries kept), the sender's address valid for replies.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/socket/socket.h"
#include "core/sys.h"

#define BATCH_MAX EVPL_UDP_BATCH_MAX

static unsigned int
batch_size(void)
{
    return evpl__udp_batch_size();
} /* batch_size */

/*
 * One receive slot's worth: a datagram, or with UDP_GRO several datagrams
 * of gso_size bytes (the last may be shorter) that the kernel kept
 * together; each becomes its own RECV_MSG, as a slice of the slot.
 */
void
evpl__udp_deliver(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec *v,
                  const struct msghdr *hdr, struct evpl_address *from)
{
    unsigned int seg = 0;
    struct cmsghdr *cm;

    for (cm = CMSG_FIRSTHDR(hdr); cm; cm = CMSG_NXTHDR((struct msghdr *) hdr, cm)) {
        if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
            seg = (unsigned int) *(int *) CMSG_DATA(cm);
        }
    }
    if (!seg || seg >= v->length) {
        evpl__bind_received_msg(evpl, bind, v, 1, v->length, from);
        return;
    }
    for (unsigned int off = 0; off < v->length; off += seg) {
        struct evpl_iovec part;
        unsigned int len = v->length - off < seg ? v->length - off : seg;

        evpl_iovec_clone_segment(&part, v, off, len);
        evpl__bind_received_msg(evpl, bind, &part, 1, len, from);
    }
    evpl_iovec_release(evpl, v);
}

static void
udp_read_retry(struct evpl *evpl, struct evpl_timer *timer)
{
    struct evpl_bind *bind = container_of(timer, struct evpl_bind, retry);

    if (bind->event.fd >= 0 && !(bind->flags & EVPL_BIND_CLOSING)) {
        evpl__event_set(evpl, &bind->event, EVPL_EV_READ_INTEREST | EVPL_EV_READABLE);
    }
} /* udp_read_retry */

static void
udp_read(struct evpl *evpl, struct evpl_event *event)
{
    struct evpl_bind *bind = evpl_socket_bind(event);
    unsigned int batch = batch_size();
    unsigned int dsize = evpl__udp_slot_size();
    struct mmsghdr msgs[BATCH_MAX];
    struct iovec iov[BATCH_MAX];
    struct sockaddr_storage src[BATCH_MAX];
    struct evpl_address *last = NULL;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctrl[BATCH_MAX];

    for (int rounds = 0; rounds < EVPL_UDP_RECV_ROUNDS && !(bind->flags & EVPL_BIND_CLOSING);
         rounds++) {
        int n, offered;

        /* receive slots survive between reads, so unused ones are not lost */
        while ((unsigned int) bind->ndgram_slots < batch) {
            if (evpl_iovec_alloc(evpl, dsize, 0, 1, 0, &bind->dgram_slots[bind->ndgram_slots]) !=
                1) {
                break;
            }
            bind->ndgram_slots++;
            evpl->mem.pooled++; /* receive space, not a leak (exit check) */
        }
        if (bind->ndgram_slots == 0) {
            /* the datagrams wait in the socket (the kernel drops what its
             * buffer cannot hold, as for any slow UDP reader); try again
             * after a pause that doubles up to 100 ms, not every pass */
            if (bind->retry_us == 0) {
                evpl_log_error("socket", "UDP: no buffer memory to receive into; retrying");
            }
            bind->retry_us = bind->retry_us ? bind->retry_us * 2 : 1000;
            if (bind->retry_us > 100000) {
                bind->retry_us = 100000;
            }
            evpl__event_clear(evpl, event, EVPL_EV_READ_INTEREST);
            evpl_add_oneshot_timer(evpl, &bind->retry, udp_read_retry, bind->retry_us);
            break;
        }
        bind->retry_us = 0;
        memset(msgs, 0, sizeof(msgs[0]) * (size_t) bind->ndgram_slots);
        for (int i = 0; i < bind->ndgram_slots; i++) {
            iov[i].iov_base = bind->dgram_slots[i].data;
            iov[i].iov_len = bind->dgram_slots[i].length;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &src[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(src[i]);
            msgs[i].msg_hdr.msg_control = ctrl[i].buf;
            msgs[i].msg_hdr.msg_controllen = sizeof(ctrl[i].buf);
        }
        offered = bind->ndgram_slots;
        n = evpl_sys_recvmmsg(event->fd, msgs, (unsigned int) offered, MSG_DONTWAIT);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN) {
                /* EINTR, or a queued socket error (ICMP unreachable for an
                 * earlier send): consumed by this call; datagrams may follow */
                continue;
            }
            evpl__event_clear(evpl, event, EVPL_EV_READABLE);
            break;
        }
        for (int i = 0; i < n; i++) {
            struct evpl_iovec v = bind->dgram_slots[i];

            v.length = msgs[i].msg_len;
            if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                /* larger than max_datagram_size: never deliver a cut one */
                evpl_log_error("socket", "UDP datagram larger than max_datagram_size %u dropped",
                               dsize);
                evpl_iovec_release(evpl, &v);
                continue;
            }
            /* consecutive datagrams from one sender share an address */
            if (!last || last->addrlen != msgs[i].msg_hdr.msg_namelen ||
                memcmp(&last->sa, &src[i], last->addrlen) != 0) {
                evpl__address_release(last);
                last = evpl__address_new((struct sockaddr *) &src[i], msgs[i].msg_hdr.msg_namelen);
            }
            evpl__udp_deliver(evpl, bind, &v, &msgs[i].msg_hdr, last);
        }
        /* the slots handed out are gone; keep the rest in order */
        memmove(bind->dgram_slots, bind->dgram_slots + n,
                (size_t) (bind->ndgram_slots - n) * sizeof(bind->dgram_slots[0]));
        bind->ndgram_slots -= n;
        evpl->mem.pooled -= (uint64_t) n;
        if (n < offered) {
            /* drained (every slot filled only says the slots ran out:
             * there may be more, when memory allowed fewer than a batch) */
            evpl__event_clear(evpl, event, EVPL_EV_READABLE);
            break;
        }
    }
    evpl__address_release(last);
} /* udp_read */

/*
 * UDP generic segmentation offload: consecutive datagrams to one
 * destination with one size (the last may be shorter) go out as one
 * sendmsg with UDP_SEGMENT; the kernel (or the NIC) cuts them into
 * ordinary datagrams, so any receiver sees the same messages, at a
 * fraction of the per-datagram cost.  Kept below a standard Ethernet MTU.
 */
#define IOV_CAP EVPL_UDP_IOV_CAP

/*
 * A datagram of more pieces than one send carries (the kernel takes 1024
 * iovecs a message) is copied into buffers of its own first (a few: it
 * is at most 64 KiB).  Only without memory for the copy is it dropped,
 * rather than stall the queue behind it (UDP may lose a datagram).  1 if
 * dropped.
 */
int
evpl__udp_drop_unsendable(struct evpl *evpl, struct evpl_bind *bind, uint64_t *bytes,
                          uint64_t *msgs)
{
    struct evpl_dgram *d = evpl_dgram_ring_front(&bind->dgram_send);
    struct evpl_iovec_fifo *f = &bind->send_ring.fifo;
    struct evpl_iovec copy[16];
    uint32_t src = 0, src_off = 0;
    int n;

    if (d->niov <= IOV_CAP) {
        return 0;
    }
    n = evpl_iovec_alloc(evpl, d->length, 0, 16, 0, copy);
    if (n < 1) {
        evpl_log_error("socket",
                       "UDP datagram in %u iovecs (max %d), no memory to join them: dropped",
                       d->niov, IOV_CAP);
        evpl__udp_consume(evpl, bind, 1, bytes, msgs);
        return 1;
    }
    for (int k = 0; k < n; k++) {
        for (uint32_t off = 0; off < copy[k].length;) {
            struct evpl_iovec *v = evpl_iovec_fifo_at(f, src);
            uint32_t len = v->length - src_off;

            if (len > copy[k].length - off) {
                len = copy[k].length - off;
            }
            memcpy((char *) copy[k].data + off, (char *) v->data + src_off, len);
            off += len;
            src_off += len;
            if (src_off == v->length) {
                src++;
                src_off = 0;
            }
        }
    }
    for (uint32_t i = 0; i < d->niov; i++) {
        evpl_iovec_release_internal(evpl, evpl_iovec_fifo_at(f, i));
    }
    /* the last pieces' slots hold the copy; the others go */
    f->head += d->niov - (uint32_t) n;
    for (int k = 0; k < n; k++) {
        *evpl_iovec_fifo_at(f, (uint32_t) k) = copy[k];
    }
    d->niov = (uint32_t) n;
    return 0;
} /* evpl__udp_drop_unsendable */

unsigned int
evpl__udp_batch_build(struct evpl_bind *bind, struct evpl_udp_batch *b, int gso)
{
    uint32_t nd = evpl_dgram_ring_count(&bind->dgram_send), di = 0, vi = 0, ri = 0;
    unsigned int batch = evpl__udp_batch_size(), k;

    memset(b->msgs, 0, sizeof(b->msgs));
    for (k = 0; k < batch && di < nd; k++) {
        struct evpl_dgram *first = evpl_dgram_ring_at(&bind->dgram_send, di);
        struct msghdr *h = &b->msgs[k].msg_hdr;
        uint32_t seg = first->length, total = 0, c = 0;

        if (vi + first->niov > IOV_CAP) {
            break;
        }
        h->msg_iov = &b->iov[vi];
        h->msg_name = first->addr ? &((struct evpl_address *) first->addr)->sa : NULL;
        h->msg_namelen = first->addr ? ((struct evpl_address *) first->addr)->addrlen : 0;
        /* this datagram, then followers that can ride in the same send */
        for (; di < nd; di++, c++) {
            struct evpl_dgram *d = evpl_dgram_ring_at(&bind->dgram_send, di);

            if (c > 0 && (vi + d->niov > IOV_CAP ||
                          !evpl__udp_gso_joins(bind, di, c, seg, total, first, gso))) {
                break;
            }
            for (uint32_t j = 0; j < d->niov; j++, ri++, vi++) {
                struct evpl_iovec *v = evpl_iovec_fifo_at(&bind->send_ring.fifo, ri);

                b->iov[vi].iov_base = v->data;
                b->iov[vi].iov_len = v->length;
            }
            total += d->length;
        }
        h->msg_iovlen = (size_t) (&b->iov[vi] - (struct iovec *) h->msg_iov);
        b->count[k] = c;
        if (c > 1) {
            struct cmsghdr *cm;

            h->msg_control = b->ctrl[k].buf;
            h->msg_controllen = sizeof(b->ctrl[k].buf);
            cm = CMSG_FIRSTHDR(h);
            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            *(uint16_t *) CMSG_DATA(cm) = (uint16_t) seg;
        }
    }
    b->niov = vi;
    return k;
} /* evpl__udp_batch_build */

void
evpl__udp_consume(struct evpl *evpl, struct evpl_bind *bind, uint32_t count, uint64_t *bytes,
                  uint64_t *msgs)
{
    for (uint32_t j = 0; j < count; j++) {
        struct evpl_dgram *d = evpl_dgram_ring_front(&bind->dgram_send);

        evpl_iovec_ring_consume(evpl, &bind->send_ring, d->length);
        if (bytes) {
            *bytes += d->length;
            *msgs += 1;
        }
        evpl__address_release(d->addr);
        evpl_dgram_ring_pop(&bind->dgram_send);
    }
} /* evpl__udp_consume */

static void
udp_flush(struct evpl *evpl, struct evpl_bind *bind)
{
    struct evpl_udp_batch b;
    uint64_t bytes = 0, sent_msgs = 0;
    unsigned int rounds = 0;

    while (!evpl_dgram_ring_empty(&bind->dgram_send)) {
        unsigned k;
        int n;

        if (rounds++ == EVPL_UDP_SEND_ROUNDS) {
            /* the rest on the next pass: receivers (this loop's own too)
             * read between, as udp_read takes as many rounds a pass */
            evpl__event_set(evpl, &bind->event, EVPL_EV_WRITE_INTEREST | EVPL_EV_WRITABLE);
            break;
        }
        if (evpl__udp_drop_unsendable(evpl, bind, &bytes, &sent_msgs)) {
            continue;
        }
        k = evpl__udp_batch_build(bind, &b, evpl__udp_gso_on(bind));
        n = evpl_sys_sendmmsg(bind->event.fd, b.msgs, k, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                evpl__stream_wait_writable(evpl, bind);
                break;
            }
            if (b.count[0] > 1) {
                evpl__udp_group_failed(bind, errno);
                continue;
            }
            /* this datagram cannot go (too big, unreachable): drop it alone */
            evpl_log_error("socket", "UDP send: %s; datagram dropped", strerror(errno));
            evpl__udp_probe_result(bind, 0);
            n = 1;
        } else {
            evpl__udp_probe_result(bind, 1);
        }
        for (int i = 0; i < n; i++) {
            evpl__udp_consume(evpl, bind, b.count[i], &bytes, &sent_msgs);
        }
    }
    if (evpl_dgram_ring_empty(&bind->dgram_send)) {
        evpl__event_clear(evpl, &bind->event, EVPL_EV_WRITE_INTEREST);
    }
    evpl__bind_sent(evpl, bind, bytes, sent_msgs);
} /* udp_flush */

void
evpl__udp_group_failed(struct evpl_bind *bind, int err)
{
    evpl_log_debug("socket", "UDP send of grouped datagrams: %s; trying the first alone",
                   strerror(err));
    bind->flags |= EVPL_BIND_GSO_PROBE;
} /* evpl__udp_group_failed */

void
evpl__udp_probe_result(struct evpl_bind *bind, int sent)
{
    if (!(bind->flags & EVPL_BIND_GSO_PROBE)) {
        return;
    }
    bind->flags &= ~EVPL_BIND_GSO_PROBE;
    if (sent) {
        /* the path refuses segmentation offload: plain sends from now on */
        evpl_log_info("socket", "UDP_SEGMENT refused; sending datagrams one by one");
        bind->flags |= EVPL_BIND_NO_GSO;
    }
} /* evpl__udp_probe_result */

static void
udp_write(struct evpl *evpl, struct evpl_event *event)
{
    udp_flush(evpl, evpl_socket_bind(event));
} /* udp_write */

void
evpl__udp_socket_options(int fd)
{
    int rcv = EVPL_UDP_RCVBUF;

    /* what arrives between two reads waits in the socket: a burst one
     * pass sends (a peer's, or this loop's own to itself) must fit; the
     * kernel's default holds ~200 KiB.  Capped by net.core.rmem_max. */
    (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    /* receive coalesced datagrams (split again in deliver) when a slot can
     * hold the largest coalesced packet */
    if (evpl__udp_slot_size() >= 65535) {
        int one = 1;

        (void) setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one));
    }
} /* evpl__udp_socket_options */

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
    evpl__udp_socket_options(fd);
    bind->dgram_slots = calloc(BATCH_MAX, sizeof(*bind->dgram_slots));
    if (!bind->dgram_slots) {
        close(fd);
        return -ENOMEM;
    }
    evpl__event_init(&bind->event, fd, udp_read, udp_write, NULL);
    bind->event.flags = EVPL_EV_WANT_WRITE;
    rc = evpl__event_add(evpl, &bind->event);
    if (rc < 0) {
        close(fd);
        free(bind->dgram_slots);
        bind->dgram_slots = NULL;
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
    evpl->mem.pooled -= (uint64_t) bind->ndgram_slots;
    bind->ndgram_slots = 0;
    free(bind->dgram_slots);
    bind->dgram_slots = NULL;
} /* udp_close */

const struct evpl_protocol evpl_protocol_socket_udp = {
    .id = EVPL_DATAGRAM_SOCKET_UDP,
    .name = "DATAGRAM_SOCKET_UDP",
    .stream = 0,
    .connected = 0,
    .kind = EVPL_EP_NETWORK,
    .available = evpl__socket_available,
    .bind = udp_bind,
    .flush = udp_flush,
    .close = udp_close,
};
