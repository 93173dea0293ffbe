/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * EVPL_STREAM_IO_URING_TCP: TCP with every operation an io_uring request.
 *
 *  - receive: one multishot recv per connection selecting from the loop's
 *    provided-buffer ring; each completion's bytes join the receive ring as
 *    an iovec on slab memory (zero-copy to the application).  It is
 *    cancelled for back-pressure and re-armed by read_resume.
 *  - send: at most one sendmsg in flight per connection, carrying up to
 *    IOV_MAX iovecs of the send ring; what was queued meanwhile goes in the
 *    next one, submitted from the completion.
 *  - connect and accept (multishot, on the listener's thread) are requests
 *    too.
 *
 * A connection's state outlives its bind until its last request completes:
 * closing cancels the requests and shuts the socket down, and data of a
 * send still in flight stays referenced until the kernel is done with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/io_uring/uring.h"
#include "backends/socket/socket.h"

struct uconn {
    struct evpl_uring_req recv_req;
    struct evpl_uring_req send_req;
    struct evpl_uring_req connect_req;
    struct evpl_uring_req err_req; /* error watch while no receive is armed */
    struct evpl_uring_waiter waiter;
    struct evpl_uring *u;
    struct evpl_uring_pool *pool; /* receive buffers (set when first armed) */
    struct evpl_bind *bind;       /* NULL once closed */
    int fd;
    int slot; /* registered-file slot, or -1 */
    unsigned recv_armed : 1;
    unsigned send_busy : 1;
    unsigned connecting : 1;
    unsigned err_armed : 1;
    unsigned eof_held : 1; /* the peer's EOF came while reading was paused */
    struct msghdr msg;
    struct iovec *iov;
    uint32_t iov_cap;
    uint32_t send_niov;
    unsigned send_zc : 1; /* the send in flight is SENDMSG_ZC */
    int zc_res;           /* its result, applied when the kernel lets go */
    /* data the kernel may still read: a zero-copy send's (reported sent,
     * kept until its notification), or what was in flight at the close */
    struct evpl_iovec *held;
    uint32_t nheld;
    struct evpl_address *connect_addr; /* kept while the connect is in flight */
};

static void
conn_maybe_free(struct evpl *evpl, struct uconn *c)
{
    if (c->bind || c->recv_armed || c->send_busy || c->connecting || c->err_armed) {
        return;
    }
    if (c->pool) {
        evpl__uring_unwait(c->pool, &c->waiter);
    }
    evpl__uring_file_remove(c->u, c->slot);
    if (c->fd >= 0) {
        close(c->fd);
    }
    evpl_iovecs_release_internal(evpl, c->held,
                                 (int) c->nheld); /* clones: GLOBAL ones took no count */
    free(c->held);
    free(c->iov);
    evpl__address_release(c->connect_addr);
    c->u->objects--;
    free(c);
} /* conn_maybe_free */

static int
wants_data(const struct uconn *c)
{
    return c->bind && !(c->bind->flags & (EVPL_BIND_READ_PAUSED | EVPL_BIND_CLOSING));
} /* wants_data */

static void recv_arm(struct evpl *evpl, struct uconn *c);

static void
err_complete(struct evpl *evpl, struct evpl_uring_req *req, int res, uint32_t flags)
{
    struct uconn *c = container_of(req, struct uconn, err_req);
    int err = 0;
    socklen_t len = sizeof(err);

    c->err_armed = 0;
    c->u->pending--;
    if (res > 0 && (res & POLLERR) && c->bind && !(c->bind->flags & EVPL_BIND_CLOSING) &&
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err) {
        evpl__bind_fail(evpl, c->bind, -err);
    } else if (res == -ECANCELED) {
        /* cancelled by a resume (the receive now reports errors), or by a
         * resume and a new pause since: then watch again */
        recv_arm(evpl, c);
    }
    /* a hang-up without an error: the receive, once re-armed, reports
     * what is left (watching again would only fire again at once) */
    conn_maybe_free(evpl, c);
} /* err_complete */

/*
 * While no receive is armed (reading paused for back-pressure, or waiting
 * for receive buffers), a one-shot poll watches for a socket error, as
 * the socket backend's error event does: a peer that resets ends the
 * connection now, not when the application reads again (net.md §6).
 */
static void
err_arm(struct evpl *evpl, struct uconn *c)
{
    struct io_uring_sqe *sqe;

    if (c->err_armed || c->recv_armed || !c->bind || (c->bind->flags & EVPL_BIND_CLOSING)) {
        return;
    }
    c->err_req.complete = err_complete;
    sqe = evpl__uring_start(c->u, &c->err_req);
    if (!sqe) {
        return; /* best effort: the next receive reports the error */
    }
    io_uring_prep_poll_add(sqe, c->fd, POLLERR);
    evpl__uring_sqe_file(sqe, c->slot);
    c->err_armed = 1;
} /* err_arm */

static void
recv_arm(struct evpl *evpl, struct uconn *c)
{
    struct io_uring_sqe *sqe;

    if (c->recv_armed) {
        return;
    }
    if (!wants_data(c)) {
        err_arm(evpl, c); /* paused (or before the first read): errors still count */
        return;
    }
    if (c->eof_held) {
        evpl__bind_fail(evpl, c->bind, 0); /* drained: now the end */
        return;
    }
    if (c->err_armed) {
        evpl__uring_cancel(c->u, &c->err_req); /* the receive reports errors now */
    }
    if (!c->pool && !(c->pool = evpl__uring_pool(evpl, c->u, EVPL_URING_POOL_STREAM))) {
        evpl__bind_fail(evpl, c->bind, -ENOMEM);
        return;
    }
    sqe = evpl__uring_start(c->u, &c->recv_req);
    if (!sqe) {
        evpl__bind_fail(evpl, c->bind, -EBUSY);
        return;
    }
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    evpl__uring_sqe_file(sqe, c->slot);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = c->pool->bgid;
    c->recv_armed = 1;
} /* recv_arm */

static void
recv_rearm(struct evpl *evpl, struct evpl_uring_waiter *w)
{
    recv_arm(evpl, container_of(w, struct uconn, waiter));
} /* recv_rearm */

static void
recv_complete(struct evpl *evpl, struct evpl_uring_req *req, int res, uint32_t flags)
{
    struct uconn *c = container_of(req, struct uconn, recv_req);
    struct evpl_bind *bind = c->bind;

    if (!(flags & IORING_CQE_F_MORE)) {
        c->recv_armed = 0;
        c->u->pending--;
    }
    if (res > 0) {
        struct evpl_iovec iov;

        evpl__uring_recv_data(evpl, c->pool, res, flags, &iov);
        if (!bind || (bind->flags & EVPL_BIND_CLOSING)) {
            evpl_iovec_release(evpl, &iov);
        } else {
            evpl_iovec_ring_append_coalesce(evpl, &bind->recv_ring, &iov);
            evpl__bind_received(evpl, bind);
            if (c->recv_armed && !wants_data(c)) {
                evpl__uring_cancel(c->u, &c->recv_req); /* back-pressure */
            }
        }
    } else if (res == -ENOBUFS) {
        /* the buffer ring ran dry: nothing was lost, the bytes wait in
         * the socket; re-arm once chunks are back (the application frees
         * them by consuming what it holds).  A segmented bind still waiting
         * for the rest of a message cannot free what it holds without
         * receiving more: with no buffer memory left at all that wait
         * would never end, for it and every other connection of the loop,
         * so it is closed, as the socket backend closes a bind that cannot
         * reserve a buffer (one that holds nothing, though a fixed-length
         * framing asks for a length, frees nothing by closing: it waits).
         * Paused meanwhile (back-pressure), it waits for the application;
         * either way errors are watched for (helper-103: a paused bind
         * whose receive ended here missed its peer's reset) */
        if (!c->recv_armed) {
            if (wants_data(c)) {
                if (bind->segment_callback && bind->recv_ring.length &&
                    bind->want > bind->recv_ring.length &&
                    evpl__uring_pool_exhausted(evpl, c->pool)) {
                    evpl_log_error("io_uring", "no buffer memory to receive into: closing");
                    evpl__bind_fail(evpl, bind, -ENOMEM);
                    conn_maybe_free(evpl, c);
                    return;
                }
                evpl__uring_wait_buffers(evpl, c->pool, &c->waiter);
            }
            err_arm(evpl, c);
        }
        conn_maybe_free(evpl, c);
        return;
    } else if (res == 0 && bind && !wants_data(c) && !(bind->flags & EVPL_BIND_CLOSING)) {
        /* the peer closed while reading was paused: the end waits behind
         * the data the application has not read, as a socket's EOF does
         * (net.md statement 29; helper-106's test: the receives in flight
         * when the pause began brought it) */
        c->eof_held = 1;
        conn_maybe_free(evpl, c);
        return;
    } else if (res != -ECANCELED && bind) {
        /* 0: the peer closed; < 0: the connection broke */
        evpl__bind_fail(evpl, bind, res);
        conn_maybe_free(evpl, c);
        return;
    }
    if (!c->recv_armed) {
        recv_arm(evpl, c); /* the kernel ended it (or a cancel raced a resume) */
    }
    conn_maybe_free(evpl, c);
} /* recv_complete */

static void send_submit(struct evpl *evpl, struct uconn *c);

/*
 * SENDMSG_ZC from this many queued bytes on (0: never, the default).  On
 * loopback and veth the kernel copies zero-copy pages when it delivers
 * them locally, and waiting for the notification costs a round trip:
 * measured slower there (docs/PERFORMANCE.md).  EVPL_URING_SEND_ZC_MIN
 * sets it for machines with a real NIC.
 */
static uint64_t zc_min;
static pthread_once_t zc_once = PTHREAD_ONCE_INIT;

static void
zc_init(void)
{
    const char *env = getenv("EVPL_URING_SEND_ZC_MIN");

    zc_min = env ? strtoull(env, NULL, 0) : 0;
} /* zc_init */

/* A zero-copy send's first completion: its res bytes are queued, as a
 * plain send's are when it completes, and count as sent now (net.md SENT:
 * they counted only at the notification, so a peer that read nothing got
 * none: helper-120); the pages stay the kernel's until the notification,
 * so the ring entries that cover them are kept (cloned) until then. */
static void
zc_queued(struct evpl *evpl, struct uconn *c, struct evpl_bind *bind, uint64_t res)
{
    uint32_t n = 0;
    uint64_t msgs = 0;

    for (uint64_t covered = 0; covered < res; n++) {
        covered += evpl_iovec_fifo_at(&bind->send_ring.fifo, n)->length;
    }
    c->held = evpl__realloc(c->held, (c->nheld + n) * sizeof(*c->held));
    for (uint32_t i = 0; i < n; i++) {
        evpl_iovec_clone(&c->held[c->nheld++], evpl_iovec_fifo_at(&bind->send_ring.fifo, i));
    }
    c->send_niov = 0; /* (what a close would keep is held already) */
    evpl_iovec_ring_consume(evpl, &bind->send_ring, res);
    if (bind->segment_callback) {
        msgs = evpl__stream_messages_done(bind, res);
    }
    evpl__bind_sent(evpl, bind, res, msgs);
} /* zc_queued */

static void
send_complete(struct evpl *evpl, struct evpl_uring_req *req, int res, uint32_t flags)
{
    struct uconn *c = container_of(req, struct uconn, send_req);
    struct evpl_bind *bind = c->bind;
    uint64_t msgs = 0;

    if (c->send_zc) {
        if (!(flags & IORING_CQE_F_NOTIF)) {
            c->zc_res = res;
            if (res > 0 && bind) {
                zc_queued(evpl, c, bind, (uint64_t) res);
            }
            if (flags & IORING_CQE_F_MORE) {
                return; /* the notification follows */
            }
        }
        /* the kernel is done with the pages */
        res = c->zc_res;
        c->send_zc = 0;
        c->send_busy = 0;
        c->u->pending--;
        if (!c->bind) {
            conn_maybe_free(evpl, c); /* (releases what is held) */
            return;
        }
        evpl_iovecs_release_internal(evpl, c->held, (int) c->nheld);
        c->nheld = 0;
        bind = c->bind;
        if (res < 0 && res != -EINTR && res != -EAGAIN) {
            if (!(bind->flags & EVPL_BIND_CLOSING)) {
                evpl__bind_fail(evpl, bind, res);
            }
        } else if (bind->send_ring.length && !(bind->flags & EVPL_BIND_CLOSING)) {
            send_submit(evpl, c);
        } else {
            evpl__bind_sent(evpl, bind, 0, 0); /* a finish waited for this */
        }
        return;
    }
    c->send_busy = 0;
    c->u->pending--;
    if (!bind) {
        conn_maybe_free(evpl, c);
        return;
    }
    if (res < 0) {
        if (res == -EINTR || res == -EAGAIN) {
            send_submit(evpl, c);
        } else if (!(bind->flags & EVPL_BIND_CLOSING)) {
            evpl__bind_fail(evpl, bind, res);
        }
        return;
    }
    evpl_iovec_ring_consume(evpl, &bind->send_ring, (uint64_t) res);
    if (bind->segment_callback) {
        msgs = evpl__stream_messages_done(bind, (uint64_t) res);
    }
    if (bind->send_ring.length && !(bind->flags & EVPL_BIND_CLOSING)) {
        send_submit(evpl, c);
    }
    evpl__bind_sent(evpl, bind, (uint64_t) res, msgs);
} /* send_complete */

/* A GLOBAL piece among the first n: a zero-copy send reports SENT before
 * the kernel is done with the pages, and a GLOBAL buffer, which clones do
 * not count, may be released and given out again then (memory.md §2): its
 * bytes would change under the kernel (helper-122).  Those go copied. */
static int
has_global(struct evpl_bind *bind, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        const struct evpl_iovec *v = evpl_iovec_fifo_at(&bind->send_ring.fifo, i);

        if (v->ref && (v->ref->flags & EVPL_IOVEC_FLAG_GLOBAL)) {
            return 1;
        }
    }
    return 0;
} /* has_global */

static void
send_submit(struct evpl *evpl, struct uconn *c)
{
    struct evpl_bind *bind = c->bind;
    uint32_t n = evpl_iovec_fifo_count(&bind->send_ring.fifo), entries;
    uint64_t bytes;
    struct io_uring_sqe *sqe;

    if (n > IOV_MAX) {
        n = IOV_MAX;
    }
    if (n > c->iov_cap) {
        uint32_t cap = c->iov_cap ? c->iov_cap : 16;

        while (cap < n) {
            cap *= 2;
        }
        c->iov = evpl__realloc(c->iov, cap * sizeof(*c->iov));
        c->iov_cap = cap;
    }
    n = evpl_iovec_ring_gather(&bind->send_ring, c->iov, n, &entries, &bytes);
    sqe = evpl__uring_start(c->u, &c->send_req);
    if (!sqe) {
        evpl__bind_fail(evpl, bind, -EBUSY);
        return;
    }
    memset(&c->msg, 0, sizeof(c->msg));
    c->msg.msg_iov = c->iov;
    c->msg.msg_iovlen = n;
    if (zc_min && bind->send_ring.length >= zc_min && !has_global(bind, entries)) {
        io_uring_prep_sendmsg_zc(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
        c->send_zc = 1;
    } else if (n == 1) {
        /* one run of bytes: no message header or iovec array to import */
        io_uring_prep_send(sqe, c->fd, c->iov[0].iov_base, c->iov[0].iov_len, MSG_NOSIGNAL);
    } else {
        io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
    }
    evpl__uring_sqe_file(sqe, c->slot);
    c->send_niov = entries; /* ring entries the kernel may read */
    c->send_busy = 1;
} /* send_submit */

/* A zero-copy send's pages are still the kernel's: a finish waits for
 * them (its close would linger on a copy of the descriptor, and a peer
 * that reads nothing would keep the connection and its buffers). */
static int
uring_send_pending(const struct evpl_bind *bind)
{
    const struct uconn *c = bind->backend;

    return c && c->send_busy && c->send_zc;
} /* uring_send_pending */

static void
uring_flush(struct evpl *evpl, struct evpl_bind *bind)
{
    struct uconn *c = bind->backend;

    if (c->send_busy) {
        /* queued behind a send the kernel holds (a full socket buffer
         * parks it); the entries that send reads stay as they are */
        evpl_iovec_ring_waits(evpl, &bind->send_ring, c->send_niov);
    }
    if (!(bind->flags & EVPL_BIND_CONNECTED) || c->send_busy || !bind->send_ring.length) {
        return; /* connecting, or the completion of the send in flight continues */
    }
    send_submit(evpl, c);
} /* uring_flush */

static struct uconn *
conn_new(struct evpl *evpl, struct evpl_bind *bind, int fd)
{
    struct evpl_uring *u = evpl__uring_get(evpl);
    struct uconn *c;

    if (!u) {
        return NULL;
    }
    pthread_once(&zc_once, zc_init);
    c = evpl__zalloc(sizeof(*c));
    c->recv_req.complete = recv_complete;
    c->send_req.complete = send_complete;
    c->waiter.rearm = recv_rearm;
    c->u = u;
    c->fd = fd;
    c->slot = evpl__uring_file_add(u, fd);
    c->bind = bind;
    u->objects++;
    bind->backend = c;
    bind->flags |= EVPL_BIND_TRANSPORT_UP;
    return c;
} /* conn_new */

static void
connect_complete(struct evpl *evpl, struct evpl_uring_req *req, int res, uint32_t flags)
{
    struct uconn *c = container_of(req, struct uconn, connect_req);
    struct evpl_bind *bind = c->bind;

    c->connecting = 0;
    c->u->pending--;
    evpl__address_release(c->connect_addr);
    c->connect_addr = NULL;
    if (!bind) {
        conn_maybe_free(evpl, c);
        return;
    }
    if (res < 0) {
        evpl__bind_fail(evpl, bind, res);
        return;
    }
    evpl__bind_local_from_fd(bind, c->fd);
    recv_arm(evpl, c);
    evpl__bind_connected(evpl, bind); /* schedules the first flush */
} /* connect_complete */

static void
set_nodelay(int fd)
{
    int one = 1;

    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
} /* set_nodelay */

/* The bind's local address from fd, once the kernel gave it a port */
static void
local_if_bound(struct evpl_bind *bind, int fd)
{
    struct evpl_address *a = evpl__address_of_fd(fd, 0);
    in_port_t port = 0;

    if (!a) {
        return;
    }
    if (a->sa.ss_family == AF_INET) {
        port = ((struct sockaddr_in *) &a->sa)->sin_port;
    } else if (a->sa.ss_family == AF_INET6) {
        port = ((struct sockaddr_in6 *) &a->sa)->sin6_port;
    }
    if (port) {
        evpl__address_release(bind->local);
        bind->local = a;
    } else {
        evpl__address_release(a);
    }
} /* local_if_bound */

static int
uring_connect(struct evpl *evpl, struct evpl_bind *bind)
{
    struct io_uring_sqe *sqe;
    struct uconn *c;
    int fd, rc;

    /* blocking: io_uring waits for the socket itself */
    fd = socket(bind->remote->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    set_nodelay(fd);
    if (bind->local &&
        sys_bind(fd, (struct sockaddr *) &bind->local->sa, bind->local->addrlen) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    c = conn_new(evpl, bind, fd);
    if (!c) {
        close(fd);
        return -ENOSYS;
    }
    c->connect_req.complete = connect_complete;
    sqe = evpl__uring_start(c->u, &c->connect_req);
    if (!sqe) {
        return -EBUSY; /* the bind fails; close frees the connection */
    }
    c->connect_addr = evpl__address_ref(bind->remote);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *) &c->connect_addr->sa,
                          c->connect_addr->addrlen);
    c->connecting = 1;
    /* like connect(2) on the socket backend: the SYN leaves now, not at
     * the next pass (a peer may be waiting for it before it runs the loop) */
    io_uring_submit(c->u->ring);
    /* and the kernel chose the local address as it sent it: known from
     * here, as there (net.md §3; helper-103), if the connect was issued
     * inline (else at completion) */
    local_if_bound(bind, fd);
    return 0;
} /* uring_connect */

static int
uring_attach(struct evpl *evpl, struct evpl_bind *bind, struct evpl_accepted *conn)
{
    struct uconn *c;

    c = conn_new(evpl, bind, conn->fd);
    if (!c) {
        return -ENOSYS;
    }
    conn->fd = -1;
    recv_arm(evpl, c);
    return 0;
} /* uring_attach */

static void
uring_close(struct evpl *evpl, struct evpl_bind *bind)
{
    struct uconn *c = bind->backend;

    if (!c) {
        return;
    }
    bind->backend = NULL;
    c->bind = NULL;
    if (c->pool) {
        evpl__uring_unwait(c->pool, &c->waiter);
    }
    if (c->send_busy) {
        /* the kernel may still read these: keep them referenced (a
         * zero-copy send past its first completion holds its own) */
        if (c->send_niov) {
            c->held = evpl__realloc(c->held, (c->nheld + c->send_niov) * sizeof(*c->held));
            for (uint32_t i = 0; i < c->send_niov; i++) {
                evpl_iovec_clone(&c->held[c->nheld++],
                                 evpl_iovec_fifo_at(&bind->send_ring.fifo, i));
            }
        }
        evpl__uring_cancel(c->u, &c->send_req);
    }
    if (c->recv_armed) {
        evpl__uring_cancel(c->u, &c->recv_req);
    }
    if (c->err_armed) {
        evpl__uring_cancel(c->u, &c->err_req);
    }
    if (c->connecting) {
        evpl__uring_cancel(c->u, &c->connect_req);
    }
    if ((bind->flags & EVPL_BIND_FINISH) && bind->close_status == 0 &&
        (bind->flags & EVPL_BIND_CONNECTED) && !(c->send_busy && c->send_zc && evpl->destroying)) {
        /* graceful: FIN after the queued bytes, drain, then close (not
         * when the loop goes with a zero-copy send's pages still the
         * kernel's: reset below, as for evpl_close) */
        int fd = dup(c->fd);

        if (fd >= 0 && (fcntl(fd, F_SETFL, O_NONBLOCK) < 0 || evpl__stream_linger(evpl, fd) < 0)) {
            close(fd);
            evpl__stream_abort(c->fd);
        }
    } else if (c->send_busy && c->send_zc) {
        /* a zero-copy send's pages are the kernel's until the peer has
         * taken the bytes, and a peer that reads nothing never does: the
         * connection stayed, with its buffers, and evpl_destroy waited 5 s
         * for it, then leaked them (helper-120).  evpl_close is abortive:
         * a reset lets go of them now */
        struct sockaddr sa = {.sa_family = AF_UNSPEC};

        if (connect(c->fd, &sa, sizeof(sa)) != 0) {
            evpl__stream_abort(c->fd);
        }
    } else {
        evpl__stream_abort(c->fd); /* its requests are cancelled above */
    }
    conn_maybe_free(evpl, c);
} /* uring_close */

static void
uring_read_resume(struct evpl *evpl, struct evpl_bind *bind)
{
    struct uconn *c = bind->backend;

    if (c) {
        recv_arm(evpl, c);
    }
} /* uring_read_resume */

/* ---- listening (on the listener's thread, multishot accept) ---- */

struct ulisten {
    struct evpl_uring_req accept_req;
    struct evpl_uring *u;
    struct evpl_listener *listener;
    const struct evpl_protocol *protocol;
    struct evpl_timer retry;
    struct evpl_accept_errlog errlog;
    int fd;
    int armed;
    int closed;
};

static void accept_retry(struct evpl *evpl, struct evpl_timer *timer);

static void
accept_arm(struct evpl *evpl, struct ulisten *ls)
{
    struct io_uring_sqe *sqe;

    if (ls->armed || ls->closed) {
        return;
    }
    sqe = evpl__uring_start(ls->u, &ls->accept_req);
    if (!sqe) {
        /* the kernel takes no request now: connections wait in the
         * backlog, the listener tries again shortly */
        evpl_add_oneshot_timer(evpl, &ls->retry, accept_retry, 50000);
        return;
    }
    io_uring_prep_multishot_accept(sqe, ls->fd, NULL, NULL, SOCK_CLOEXEC);
    ls->armed = 1;
} /* accept_arm */

static void
accept_retry(struct evpl *evpl, struct evpl_timer *timer)
{
    accept_arm(evpl, container_of(timer, struct ulisten, retry));
} /* accept_retry */

static void
listen_maybe_free(struct ulisten *ls)
{
    if (ls->closed && !ls->armed) {
        close(ls->fd);
        ls->u->objects--;
        free(ls);
    }
} /* listen_maybe_free */

static void
accept_complete(struct evpl *evpl, struct evpl_uring_req *req, int res, uint32_t flags)
{
    struct ulisten *ls = container_of(req, struct ulisten, accept_req);

    if (!(flags & IORING_CQE_F_MORE)) {
        ls->armed = 0;
        ls->u->pending--;
    }
    if (ls->closed) {
        if (res >= 0) {
            close(res);
        }
        listen_maybe_free(ls);
        return;
    }
    if (res >= 0) {
        struct evpl_accepted *conn = calloc(1, sizeof(*conn));
        struct evpl_address *remote = conn ? evpl__address_of_fd(res, 1) : NULL;

        if (!remote) {
            free(conn); /* reset before we looked: nothing to hand on */
            close(res);
        } else {
            set_nodelay(res);
            conn->protocol = ls->protocol;
            conn->fd = res;
            conn->local = evpl__address_of_fd(res, 0);
            conn->remote = remote;
            evpl__listener_deliver(ls->listener, conn);
        }
    } else if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS) {
        /* the connection stays in the backlog: try again shortly */
        evpl__accept_failed(evpl, &ls->errlog, "io_uring", -res);
        if (!ls->armed) {
            evpl_add_oneshot_timer(evpl, &ls->retry, accept_retry, EVPL_ACCEPT_RETRY_US);
        }
        return;
    }
    if (!ls->armed) {
        accept_arm(evpl, ls);
    }
} /* accept_complete */

static int
uring_listen(struct evpl *evpl, const struct evpl_protocol *protocol,
             struct evpl_listener *listener, struct evpl_address *address, void **state)
{
    struct evpl_uring *u = evpl__uring_get(evpl);
    struct ulisten *ls;
    int fd, one = 1;

    if (!u) {
        return -ENOSYS;
    }
    fd = socket(address->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (sys_bind(fd, (struct sockaddr *) &address->sa, address->addrlen) < 0 ||
        listen(fd, (int) evpl_shared->config->max_pending) < 0) {
        int rc = -errno;

        close(fd);
        return rc;
    }
    ls = evpl__zalloc(sizeof(*ls));
    ls->accept_req.complete = accept_complete;
    ls->u = u;
    ls->listener = listener;
    ls->protocol = protocol;
    ls->fd = fd;
    u->objects++;
    accept_arm(evpl, ls);
    *state = ls;
    return 0;
} /* uring_listen */

static void
uring_unlisten(struct evpl *evpl, void *state)
{
    struct ulisten *ls = state;

    ls->closed = 1;
    evpl_remove_timer(evpl, &ls->retry);
    shutdown(ls->fd, SHUT_RDWR); /* stop accepting now */
    if (ls->armed) {
        evpl__uring_cancel(ls->u, &ls->accept_req);
        /* hand the cancel to the kernel now: evpl_listen's caller may
         * expect the port to be free when this returns */
        io_uring_submit(ls->u->ring);
    }
    listen_maybe_free(ls);
} /* uring_unlisten */

static void
uring_rcvlowat(struct evpl *evpl, struct evpl_bind *bind, uint32_t bytes)
{
    struct uconn *c = bind->backend;
    int v = bytes > 1 ? (int) bytes : 1;

    /* a multishot receive completes once this much is queued, so a long
     * message arrives in a few large pieces */
    if (!c || (uint32_t) v == (bind->lowat ? bind->lowat : 1)) {
        return;
    }
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v)) == 0) {
        bind->lowat = (uint32_t) v;
    }
} /* uring_rcvlowat */

const struct evpl_protocol evpl_protocol_io_uring_tcp = {
    .id = EVPL_STREAM_IO_URING_TCP,
    .name = "STREAM_IO_URING_TCP",
    .stream = 1,
    .connected = 1,
    .kind = EVPL_EP_NETWORK,
    .available = evpl__uring_available,
    .connect = uring_connect,
    .attach = uring_attach,
    .listen = uring_listen,
    .unlisten = uring_unlisten,
    .flush = uring_flush,
    .send_pending = uring_send_pending,
    .close = uring_close,
    .read_resume = uring_read_resume,
    .rcvlowat = uring_rcvlowat,
};
