/* SPDX-License-Identifier: LGPL-2.1-only */
/* Kernel socket backends: TCP, UNIX streams (stream.c), UDP (udp.c). */
#pragma once

#include <errno.h>

#include "net/net.h"

/* bind(2), for functions where "bind" names the evpl_bind argument */
static inline int
sys_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    return bind(fd, sa, len);
} /* sys_bind */

/* Kernel sockets are always there. */
static inline int
evpl__socket_available(void)
{
    return 1;
}

static inline struct evpl_bind *
evpl_socket_bind(struct evpl_event *event)
{
    return container_of(event, struct evpl_bind, event);
} /* evpl_socket_bind */

/* stream.c: shared by TCP and AF_UNIX */
int evpl__stream_connect(struct evpl *evpl, struct evpl_bind *bind);
int evpl__stream_attach(struct evpl *evpl, struct evpl_bind *bind, struct evpl_accepted *conn);
int evpl__stream_listen(struct evpl *evpl, const struct evpl_protocol *protocol,
                        struct evpl_listener *listener, struct evpl_address *address, void **state);
void evpl__stream_unlisten(struct evpl *evpl, void *state);
void evpl__stream_flush(struct evpl *evpl, struct evpl_bind *bind);
void evpl__stream_close(struct evpl *evpl, struct evpl_bind *bind);
void evpl__stream_read_resume(struct evpl *evpl, struct evpl_bind *bind);
/* writev ring to the bind's socket until it is empty or the socket is
 * full (write interest armed); returns the bytes written.  *failed: the
 * bind was failed (a write error), the caller returns. */
uint64_t evpl__stream_write_ring(struct evpl *evpl, struct evpl_bind *bind,
                                 struct evpl_iovec_ring *ring, int *failed);
/* Whole messages finished by bytes written (segmented binds' SENT.msgs). */
uint64_t evpl__stream_messages_done(struct evpl_bind *bind, uint64_t bytes);
/* The socket buffer is full: wait for it to drain. */
static inline void
evpl__stream_wait_writable(struct evpl *evpl, struct evpl_bind *bind)
{
    evpl__event_clear(evpl, &bind->event, EVPL_EV_WRITABLE);
    evpl__event_set(evpl, &bind->event, EVPL_EV_WRITE_INTEREST);
} /* evpl__stream_wait_writable */

/* A write to a stream socket returned < 0 (errno set): EINTR retries
 * (RETRY), EAGAIN waits for room (WAIT), anything else fails the bind
 * (FAILED: the caller returns). */
enum { EVPL_WRITE_RETRY, EVPL_WRITE_WAIT, EVPL_WRITE_FAILED };

static inline int
evpl__stream_write_error(struct evpl *evpl, struct evpl_bind *bind)
{
    if (errno == EINTR) {
        return EVPL_WRITE_RETRY;
    }
    if (errno == EAGAIN) {
        evpl__stream_wait_writable(evpl, bind);
        return EVPL_WRITE_WAIT;
    }
    evpl__bind_fail(evpl, bind, -errno);
    return EVPL_WRITE_FAILED;
} /* evpl__stream_write_error */

/* Back-pressure in a read pass: past the receive limit (and holding at
 * least the length a segmented bind waits for) reading stops here, and an
 * unsegmented bind pauses until the application drains; what follows in
 * the transport (an EOF, a close_notify) waits behind it, as on TCP.
 * Returns whether to stop. */
static inline int
evpl__stream_recv_full(struct evpl_bind *bind)
{
    if (bind->recv_ring.length > evpl__bind_recv_limit(bind) &&
        bind->recv_ring.length >= bind->want) {
        if (!bind->segment_callback) {
            bind->flags |= EVPL_BIND_READ_PAUSED;
        }
        return 1;
    }
    return 0;
} /* evpl__stream_recv_full */

/* End of a read pass: data that arrived is delivered first, then an EOF
 * (status 0) or error (< 0) closes the bind; 1: still open. */
static inline void
evpl__stream_read_end(struct evpl *evpl, struct evpl_bind *bind, int got, int status)
{
    if (got) {
        evpl__bind_received(evpl, bind);
    }
    if (status == 0 && !bind->protocol->stream && bind->recv_ring.length &&
        bind->want > bind->recv_ring.length) {
        /* messages framed on a byte stream (TCP-RDMA): the peer ended
         * inside one, which is lost: an error, not an orderly end (whole
         * frames left waiting, a stalled peer's requests, are not that) */
        status = -EPROTO;
    }
    if (status <= 0) {
        evpl__event_clear(evpl, &bind->event, EVPL_EV_READABLE | EVPL_EV_READ_INTEREST);
        evpl__bind_fail(evpl, bind, status);
    }
} /* evpl__stream_read_end */

/* Error/hang-up on a stream socket: connect failure or a broken connection. */
void evpl__stream_error(struct evpl *evpl, struct evpl_event *event);
/* Graceful close of a non-blocking stream socket: FIN after the queued
 * bytes, then drain until the peer closes (the loop owns fd afterwards). */
int evpl__stream_linger(struct evpl *evpl, int fd);

/* ---- UDP pieces shared with the io_uring UDP backend ---- */

#define EVPL_UDP_BATCH_MAX 64
#define EVPL_UDP_IOV_CAP   (EVPL_UDP_BATCH_MAX * 16)
/* UDP generic segmentation offload limits: consecutive equal-sized
 * datagrams to one destination go as one send, kept below an Ethernet MTU */
#define EVPL_UDP_GSO_MAX_SEGS  64
#define EVPL_UDP_GSO_MAX_SIZE  1452
#define EVPL_UDP_GSO_MAX_BYTES 65000

/* sendmmsg calls one flush makes and recvmmsg calls one readiness event
 * makes, at most: a sender and a receiver on one loop take turns pass by
 * pass, the receiver able to take more than the sender gives */
#define EVPL_UDP_SEND_ROUNDS 1
#define EVPL_UDP_RECV_ROUNDS 8
#define EVPL_UDP_RCVBUF      (4 << 20)

/* A receive slot: max_datagram_size, or a whole buffer when buffers are
 * smaller (a larger datagram is then dropped, never cut) */
static inline unsigned int
evpl__udp_slot_size(void)
{
    uint64_t d = evpl_shared->config->max_datagram_size;

    return (unsigned int) (d < evpl__buffer_size ? d : evpl__buffer_size);
} /* evpl__udp_slot_size */

/* Options every UDP bind's socket gets (socket and io_uring backends). */
void evpl__udp_socket_options(int fd);

static inline unsigned int
evpl__udp_batch_size(void)
{
    unsigned int b = evpl_shared->config->max_datagram_batch;

    return b > EVPL_UDP_BATCH_MAX ? EVPL_UDP_BATCH_MAX : b;
} /* evpl__udp_batch_size */

static inline int
evpl__same_dest(const struct evpl_address *a, const struct evpl_address *b)
{
    return a == b ||
           (a && b && a->addrlen == b->addrlen && memcmp(&a->sa, &b->sa, a->addrlen) == 0);
} /* evpl__same_dest */

/* May the datagram at index di (of a group starting with seg-sized first,
 * c datagrams and total bytes so far) ride in the same GSO send? */
static inline int
evpl__udp_gso_joins(struct evpl_bind *bind, uint32_t di, uint32_t c, uint32_t seg, uint32_t total,
                    const struct evpl_dgram *first, int gso)
{
    const struct evpl_dgram *d = evpl_dgram_ring_at(&bind->dgram_send, di);

    return gso && c < EVPL_UDP_GSO_MAX_SEGS && seg != 0 && seg <= EVPL_UDP_GSO_MAX_SIZE &&
           d->length != 0 && d->length <= seg && total + d->length <= EVPL_UDP_GSO_MAX_BYTES &&
           evpl__same_dest(first->addr, d->addr) &&
           evpl_dgram_ring_at(&bind->dgram_send, di - 1)->length == seg;
} /* evpl__udp_gso_joins */

/* One received slot (a datagram, or UDP_GRO-coalesced equal datagrams
 * split again): RECV_MSG for each; v's reference is consumed. */
void evpl__udp_deliver(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec *v,
                       const struct msghdr *hdr, struct evpl_address *from);

/* One batch of sends built from the front of the datagram queue: msgs[k]
 * carries count[k] datagrams (several: one UDP_SEGMENT send). */
struct evpl_udp_batch {
    struct mmsghdr msgs[EVPL_UDP_BATCH_MAX];
    uint32_t count[EVPL_UDP_BATCH_MAX];
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctrl[EVPL_UDP_BATCH_MAX];
    struct iovec iov[EVPL_UDP_IOV_CAP];
    uint32_t niov; /* iovecs used, from the front of the send ring */
};

/* Fill b (gso: group datagrams); returns how many sends it holds. */
unsigned int evpl__udp_batch_build(struct evpl_bind *bind, struct evpl_udp_batch *b, int gso);
/* count datagrams left the queue (sent, or dropped when bytes is NULL). */
void evpl__udp_consume(struct evpl *evpl, struct evpl_bind *bind, uint32_t count, uint64_t *bytes,
                       uint64_t *msgs);
/* The front datagram has more iovecs than a send takes: dropped (1), and
 * counted in bytes/msgs like a sent one (what SENT reports is what left
 * the queue, net.md §14 statement 39). */
int evpl__udp_drop_unsendable(struct evpl *evpl, struct evpl_bind *bind, uint64_t *bytes,
                              uint64_t *msgs);
/* A grouped send failed: no more UDP_SEGMENT on this bind. */
/* A send of several datagrams (UDP_SEGMENT) failed: the next send of its
 * first datagram goes alone, and says whether segmentation was to blame
 * (it goes: no more grouping on this bind) or the datagram itself (a bad
 * address; it fails too and is dropped: grouping goes on). */
void evpl__udp_group_failed(struct evpl_bind *bind, int err);
void evpl__udp_probe_result(struct evpl_bind *bind, int sent);

/* Whether the next batch may group datagrams. */
static inline int
evpl__udp_gso_on(const struct evpl_bind *bind)
{
    return !(bind->flags & (EVPL_BIND_NO_GSO | EVPL_BIND_GSO_PROBE));
} /* evpl__udp_gso_on */
