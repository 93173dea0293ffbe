/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * EVPL_DATAGRAM_IO_URING_UDP: UDP with io_uring requests.
 *
 *  - receive: one multishot recvmsg selecting whole chunks from the loop's
 *    datagram buffer group; each completion is one datagram (or a UDP_GRO
 *    run of them) whose payload goes to the application in place.  When a
 *    chunk (at most buffer_size) has no room for the multishot header in
 *    front of a max_datagram_size payload, single-shot recvmsg requests
 *    take their place: name and control land in the bind, the chunk holds
 *    payload only.
 *  - send: the front of the queue is cut into the same sends the socket
 *    backend would make with sendmmsg (UDP_SEGMENT groups included), one
 *    sendmsg request each, linked so they leave in order, all submitted
 *    with the loop's one io_uring_enter.  One batch in flight per bind;
 *    the next is built when it completes.
 */
#include <errno.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/io_uring/uring.h"
#include "backends/socket/socket.h"

struct usend {
    struct evpl_uring_req req;
    struct udpc *c;
    int res;
};

struct udpc {
    struct evpl_uring_req recv_req;
    struct evpl_uring_waiter waiter;
    struct evpl_uring *u;
    struct evpl_uring_pool *pool;
    struct evpl_bind *bind; /* NULL once closed */
    int fd;
    int recv_armed;
    struct msghdr recv_msg;  /* multishot template: name and control room */
    int single;              /* single-shot receives (tight buffer_size) */
    struct iovec single_iov; /*   their payload: a selected chunk */
    struct sockaddr_storage single_name;
    uint64_t single_ctl[(EVPL_URING_DGRAM_CTRLLEN + 7) / 8];
    struct evpl_address *last_from; /* the previous sender, reused while it repeats */
    /* the batch in flight */
    struct evpl_udp_batch batch;
    struct sockaddr_storage names[EVPL_UDP_BATCH_MAX]; /* copies: the queue may go first */
    struct usend sends[EVPL_UDP_BATCH_MAX];
    uint32_t nsends, outstanding;
    struct evpl_iovec *held; /* batch data after the bind closed */
    uint32_t nheld;
};

static void
udpc_maybe_free(struct evpl *evpl, struct udpc *c)
{
    if (c->bind || c->recv_armed || c->outstanding) {
        return;
    }
    if (c->pool) {
        evpl__uring_unwait(c->pool, &c->waiter);
    }
    close(c->fd);
    evpl__address_release(c->last_from);
    evpl_iovecs_release_internal(evpl, c->held,
                                 (int) c->nheld); /* clones: GLOBAL ones took no count */
    free(c->held);
    c->u->objects--;
    free(c);
} /* udpc_maybe_free */

static void
recv_arm(struct evpl *evpl, struct udpc *c)
{
    struct io_uring_sqe *sqe;

    if (c->recv_armed || !c->bind || (c->bind->flags & EVPL_BIND_CLOSING)) {
        return;
    }
    sqe = evpl__uring_start(c->u, &c->recv_req);
    if (!sqe) {
        evpl__bind_fail(evpl, c->bind, -EBUSY);
        return;
    }
    if (c->single) {
        /* the kernel writes name, control and flags back into recv_msg */
        memset(&c->recv_msg, 0, sizeof(c->recv_msg));
        c->single_iov.iov_base = NULL;
        /* no more than max_datagram_size: a larger datagram is truncated,
         * and dropped as on the socket backend (helper-103: a buffer_size
         * a little over max_datagram_size let one through) */
        c->single_iov.iov_len = c->pool->chunk_size;
        if (c->single_iov.iov_len > evpl_shared->config->max_datagram_size) {
            c->single_iov.iov_len = evpl_shared->config->max_datagram_size;
        }
        c->recv_msg.msg_iov = &c->single_iov;
        c->recv_msg.msg_iovlen = 1;
        c->recv_msg.msg_name = &c->single_name;
        c->recv_msg.msg_namelen = sizeof(c->single_name);
        c->recv_msg.msg_control = c->single_ctl;
        c->recv_msg.msg_controllen = sizeof(c->single_ctl);
        io_uring_prep_recvmsg(sqe, c->fd, &c->recv_msg, 0);
    } else {
        io_uring_prep_recvmsg_multishot(sqe, c->fd, &c->recv_msg, 0);
    }
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = c->pool->bgid;
    c->recv_armed = 1;
} /* recv_arm */

static void
recv_rearm(struct evpl *evpl, struct evpl_uring_waiter *w)
{
    recv_arm(evpl, container_of(w, struct udpc, waiter));
} /* recv_rearm */

static void
recv_one(struct evpl *evpl, struct udpc *c, struct evpl_iovec *v, int res)
{
    struct io_uring_recvmsg_out *o = NULL;
    struct evpl_address *from;
    const void *name;
    uint32_t namelen, msg_flags;
    struct msghdr h;

    memset(&h, 0, sizeof(h));
    if (c->single) {
        /* the payload alone; the rest is in recv_msg */
        name = c->recv_msg.msg_name;
        namelen = c->recv_msg.msg_namelen;
        msg_flags = (uint32_t) c->recv_msg.msg_flags;
        h.msg_control = c->recv_msg.msg_control;
        h.msg_controllen = c->recv_msg.msg_controllen;
    } else {
        o = io_uring_recvmsg_validate(v->data, res, &c->recv_msg);
        name = o ? io_uring_recvmsg_name(o) : NULL;
        namelen = o ? o->namelen : 0;
        msg_flags = o ? o->flags : MSG_TRUNC;
    }
    if ((msg_flags & MSG_TRUNC) || namelen > sizeof(struct sockaddr_storage)) {
        evpl_log_error("io_uring", "UDP datagram larger than max_datagram_size %u dropped",
                       evpl_shared->config->max_datagram_size);
        evpl_iovec_release(evpl, v);
        return;
    }
    from = c->last_from;
    if (!from || from->addrlen != namelen || memcmp(&from->sa, name, namelen) != 0) {
        /* a new sender: one allocation per change of sender, not per datagram */
        evpl__address_release(from);
        from = c->last_from = evpl__address_new(name, namelen);
    }
    if (o) {
        h.msg_control = (char *) io_uring_recvmsg_name(o) + c->recv_msg.msg_namelen;
        h.msg_controllen = o->controllen;
        v->length = io_uring_recvmsg_payload_length(o, res, &c->recv_msg);
        v->data = io_uring_recvmsg_payload(o, &c->recv_msg);
    }
    if (from) {
        evpl__udp_deliver(evpl, c->bind, v, &h, from);
    } else {
        evpl_iovec_release(evpl, v);
    }
} /* recv_one */

static void
recv_complete(struct evpl *evpl, struct evpl_uring_req *req, int res, uint32_t flags)
{
    struct udpc *c = container_of(req, struct udpc, recv_req);

    if (!(flags & IORING_CQE_F_MORE)) {
        c->recv_armed = 0;
        c->u->pending--;
    }
    if ((res > 0 || (c->single && res == 0)) && (flags & IORING_CQE_F_BUFFER)) {
        /* (single-shot: an empty datagram still used up its chunk) */
        struct evpl_iovec v;

        evpl__uring_recv_data(evpl, c->pool, res, flags, &v);
        if (c->bind && !(c->bind->flags & EVPL_BIND_CLOSING)) {
            recv_one(evpl, c, &v, res);
        } else {
            evpl_iovec_release(evpl, &v);
        }
    } else if (c->single && res == 0 && c->bind && !(c->bind->flags & EVPL_BIND_CLOSING)) {
        /* an empty datagram, its chunk given back by the kernel */
        struct evpl_iovec v;

        if (evpl_iovec_alloc(evpl, 1, 0, 1, 0, &v) == 1) {
            v.length = 0;
            recv_one(evpl, c, &v, 0);
        }
    } else if (res == -ENOBUFS) {
        if (c->bind && !c->recv_armed) {
            evpl__uring_wait_buffers(evpl, c->pool, &c->waiter);
        }
        udpc_maybe_free(evpl, c);
        return;
    } else if (res < 0 && res != -ECANCELED) {
        /* an ICMP error queued for an earlier send: the socket goes on */
        evpl_log_debug("io_uring", "UDP receive: %s", strerror(-res));
    }
    if (!c->recv_armed) {
        recv_arm(evpl, c);
    }
    udpc_maybe_free(evpl, c);
} /* recv_complete */

static void udp_flush(struct evpl *evpl, struct evpl_bind *bind);

/* The whole batch completed: account for it in order. */
static void
batch_done(struct evpl *evpl, struct udpc *c)
{
    struct evpl_bind *bind = c->bind;
    uint64_t bytes = 0, msgs = 0;

    evpl_iovecs_release_internal(evpl, c->held,
                                 (int) c->nheld); /* clones: GLOBAL ones took no count */
    c->nheld = 0;
    if (!bind) {
        udpc_maybe_free(evpl, c);
        return;
    }
    for (uint32_t k = 0; k < c->nsends; k++) {
        int res = c->sends[k].res;

        if (res >= 0) {
            evpl__udp_probe_result(bind, 1);
            evpl__udp_consume(evpl, bind, c->batch.count[k], &bytes, &msgs);
            continue;
        }
        if (res == -ECANCELED || res == -EINTR || res == -EAGAIN) {
            break; /* the rest is still queued: the next batch sends it */
        }
        if (c->batch.count[k] > 1) {
            evpl__udp_group_failed(bind, -res);
            break;
        }
        /* this datagram cannot go (too big, unreachable): drop it alone */
        evpl_log_error("io_uring", "UDP send: %s; datagram dropped", strerror(-res));
        evpl__udp_probe_result(bind, 0);
        evpl__udp_consume(evpl, bind, 1, &bytes, &msgs); /* counted: it left the queue */
    }
    c->nsends = 0;
    if (!evpl_dgram_ring_empty(&bind->dgram_send) && !(bind->flags & EVPL_BIND_CLOSING)) {
        udp_flush(evpl, bind);
    }
    evpl__bind_sent(evpl, bind, bytes, msgs);
} /* batch_done */

static void
send_complete(struct evpl *evpl, struct evpl_uring_req *req, int res, uint32_t flags)
{
    struct usend *s = container_of(req, struct usend, req);
    struct udpc *c = s->c;

    s->res = res;
    c->u->pending--;
    if (--c->outstanding == 0) {
        batch_done(evpl, c);
    }
} /* send_complete */

static void
udp_flush(struct evpl *evpl, struct evpl_bind *bind)
{
    struct udpc *c = bind->backend;
    struct io_uring_sqe *prev = NULL;
    uint64_t dropped_bytes = 0, dropped_msgs = 0;
    unsigned int k;

    if (c->outstanding) {
        return; /* the batch in flight sends the rest when it completes */
    }
    while (!evpl_dgram_ring_empty(&bind->dgram_send) &&
           evpl__udp_drop_unsendable(evpl, bind, &dropped_bytes, &dropped_msgs)) {
    }
    if (evpl_dgram_ring_empty(&bind->dgram_send)) {
        goto report;
    }
    k = evpl__udp_batch_build(bind, &c->batch, evpl__udp_gso_on(bind));
    /* the chain must go to the kernel whole: a submission in its middle
     * (queue full) would split it, and the halves could overtake */
    if (io_uring_sq_space_left(c->u->ring) < k) {
        io_uring_submit(c->u->ring);
        if (io_uring_sq_space_left(c->u->ring) < k) {
            k = io_uring_sq_space_left(c->u->ring);
        }
    }
    for (unsigned int i = 0; i < k; i++) {
        struct msghdr *h = &c->batch.msgs[i].msg_hdr;
        struct io_uring_sqe *sqe = evpl__uring_start(c->u, &c->sends[i].req);

        if (!sqe) {
            k = i;
            if (prev) {
                prev->flags &= ~IOSQE_IO_LINK; /* end the chain here */
            }
            break;
        }
        prev = sqe;
        if (h->msg_name) {
            memcpy(&c->names[i], h->msg_name, h->msg_namelen);
            h->msg_name = &c->names[i];
        }
        io_uring_prep_sendmsg(sqe, c->fd, h, 0);
        if (i + 1 < k) {
            sqe->flags |= IOSQE_IO_LINK; /* in order, like one sendmmsg */
        }
        c->sends[i].res = -ECANCELED;
        c->outstanding++;
    }
    c->nsends = k;
report:
    if (dropped_msgs) {
        /* last: the SENT callback may close the bind */
        evpl__bind_sent(evpl, bind, dropped_bytes, dropped_msgs);
    }
} /* udp_flush */

static int
udp_bind(struct evpl *evpl, struct evpl_bind *bind)
{
    struct evpl_uring *u = evpl__uring_get(evpl);
    struct evpl_uring_pool *pool;
    struct udpc *c;
    int fd;

    if (!u || !(pool = evpl__uring_pool(evpl, u, EVPL_URING_POOL_DGRAM))) {
        return -ENOSYS;
    }
    /* blocking: io_uring waits for room itself */
    fd = socket(bind->local->sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    if (sys_bind(fd, (struct sockaddr *) &bind->local->sa, bind->local->addrlen) < 0) {
        int rc = -errno;

        close(fd);
        return rc;
    }
    evpl__udp_socket_options(fd);
    c = evpl__zalloc(sizeof(*c));
    c->recv_req.complete = recv_complete;
    c->waiter.rearm = recv_rearm;
    for (int i = 0; i < EVPL_UDP_BATCH_MAX; i++) {
        c->sends[i].req.complete = send_complete;
        c->sends[i].c = c;
    }
    c->u = u;
    c->pool = pool;
    c->fd = fd;
    c->bind = bind;
    c->recv_msg.msg_namelen = EVPL_URING_DGRAM_NAMELEN;
    c->recv_msg.msg_controllen = EVPL_URING_DGRAM_CTRLLEN;
    c->single =
        pool->chunk_size < EVPL_URING_DGRAM_OVERHEAD + evpl_shared->config->max_datagram_size;
    u->objects++;
    bind->backend = c;
    bind->flags |= EVPL_BIND_TRANSPORT_UP;
    recv_arm(evpl, c);
    return 0;
} /* udp_bind */

static void
udp_close(struct evpl *evpl, struct evpl_bind *bind)
{
    struct udpc *c = bind->backend;

    if (!c) {
        return;
    }
    bind->backend = NULL;
    c->bind = NULL;
    if (c->outstanding) {
        /* the kernel may still read the batch: keep its data referenced */
        c->held = evpl__realloc(c->held, c->batch.niov * sizeof(*c->held));
        for (uint32_t i = 0; i < c->batch.niov; i++) {
            evpl_iovec_clone(&c->held[i], evpl_iovec_fifo_at(&bind->send_ring.fifo, i));
        }
        c->nheld = c->batch.niov;
        for (uint32_t i = 0; i < c->nsends; i++) {
            evpl__uring_cancel(c->u, &c->sends[i].req);
        }
    }
    if (c->recv_armed) {
        evpl__uring_cancel(c->u, &c->recv_req);
    }
    udpc_maybe_free(evpl, c);
} /* udp_close */

const struct evpl_protocol evpl_protocol_io_uring_udp = {
    .id = EVPL_DATAGRAM_IO_URING_UDP,
    .name = "DATAGRAM_IO_URING_UDP",
    .stream = 0,
    .connected = 0,
    .kind = EVPL_EP_NETWORK,
    .available = evpl__uring_available,
    .bind = udp_bind,
    .flush = udp_flush,
    .close = udp_close,
};
