/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Stream sockets (TCP, AF_UNIX): non-blocking connect, large reads straight
 * into buffer space (zero-copy to the application), one writev per flush of
 * up to IOV_MAX iovecs, partial writes resumed without copying, listening
 * and accepting on the listener thread.
 */
#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <netinet/in.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backends/socket/socket.h"
#include "core/sys.h"

/* Smallest useful read; below it a fresh buffer is started. */
#define READ_MIN (64 * 1024)
/*
 * A one-way bulk receiver reads at most READ_BULK at a time.  A receiver
 * that asks for everything buffered holds its socket for the whole copy
 * and updates the sender's window only at the end, so a loopback TCP
 * stream of 128 KiB messages moved ~42 Gbit/s; in 64 KiB reads, 62-70
 * (docs/PERFORMANCE.md).  A bind that answers what it reads (request and
 * response) is left alone: there the extra reads and window updates lie
 * on the round trip and cost up to a third of the throughput.  Nor does it
 * apply to messages of READ_BULK or more: those are read whole under a
 * low-water mark (segment() in net/bind.c).
 */
#define READ_BULK  (64 * 1024)
#define BULK_AFTER (4u << 20) /* bytes read without a send in between */
/* Reads per readiness dispatch before yielding to other binds. */
#define READ_BUDGET 16

static void
set_nodelay(int fd, int family)
{
    int one = 1;

    if (family == AF_INET || family == AF_INET6) {
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
} /* set_nodelay */

/* Account written bytes against message boundaries (segmented binds). */
uint64_t
evpl__stream_messages_done(struct evpl_bind *bind, uint64_t bytes)
{
    uint64_t msgs = 0;

    while (bytes && !evpl_dgram_ring_empty(&bind->dgram_send)) {
        struct evpl_dgram *d = evpl_dgram_ring_front(&bind->dgram_send);
        uint64_t left = d->length - bind->msg_sent;

        if (bytes < left) {
            bind->msg_sent += bytes;
            break;
        }
        bytes -= left;
        bind->msg_sent = 0;
        evpl_dgram_ring_pop(&bind->dgram_send);
        msgs++;
    }
    return msgs;
} /* messages_done */

uint64_t
evpl__stream_write_ring(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec_ring *ring,
                        int *failed)
{
    struct iovec iov[IOV_MAX];
    uint64_t written = 0;

    *failed = 0;
    while (ring->length) {
        uint32_t entries, n;
        uint64_t want;
        ssize_t rc;

        n = evpl_iovec_ring_gather(ring, iov, IOV_MAX, &entries, &want);
        rc = evpl_sys_writev(bind->event.fd, iov, (int) n);
        if (rc < 0) {
            int w = evpl__stream_write_error(evpl, bind);

            if (w == EVPL_WRITE_RETRY) {
                continue;
            }
            *failed = w == EVPL_WRITE_FAILED;
            break;
        }
        evpl_iovec_ring_consume(evpl, ring, (uint64_t) rc);
        written += (uint64_t) rc;
        if ((uint64_t) rc < want) {
            /* the socket buffer is full: wait for EPOLLOUT */
            evpl__stream_wait_writable(evpl, bind);
            break;
        }
    }
    if (!*failed && !ring->length) {
        evpl__event_clear(evpl, &bind->event, EVPL_EV_WRITE_INTEREST);
    } else if (!*failed) {
        evpl_iovec_ring_waits(evpl, ring, 0);
    }
    return written;
} /* evpl__stream_write_ring */

void
evpl__stream_flush(struct evpl *evpl, struct evpl_bind *bind)
{
    uint64_t written, msgs = 0;
    int failed;

    if (!(bind->flags & EVPL_BIND_CONNECTED)) {
        return; /* still connecting: the connect completion flushes */
    }
    written = evpl__stream_write_ring(evpl, bind, &bind->send_ring, &failed);
    if (failed) {
        return;
    }
    if (bind->segment_callback) {
        msgs = evpl__stream_messages_done(bind, written);
    }
    evpl__bind_sent(evpl, bind, written, msgs);
} /* evpl__stream_flush */

static int connect_done(struct evpl *evpl, struct evpl_bind *bind);

static void
stream_read(struct evpl *evpl, struct evpl_event *event)
{
    struct evpl_bind *bind = evpl_socket_bind(event);
    uint64_t total = 0;
    int status = 1; /* 1: open, 0: EOF, < 0: error */

    if (!(bind->flags & EVPL_BIND_CONNECTED) && !connect_done(evpl, bind)) {
        return;
    }

    for (int budget = READ_BUDGET; budget > 0; budget--) {
        struct evpl_iovec iov;
        ssize_t n;

        if (bind->flags & (EVPL_BIND_READ_PAUSED | EVPL_BIND_CLOSING)) {
            /* back-pressure: stop reading; read_resume re-arms */
            evpl__event_clear(evpl, event, EVPL_EV_READ_INTEREST);
            break;
        }
        if (evpl__iovec_reserve_tail(evpl, READ_MIN, &iov) < 0) {
            evpl_log_error("socket", "no buffer memory to receive into: closing");
            status = -ENOMEM;
            break;
        }
        if (iov.length > READ_BULK && bind->rx_since_send >= BULK_AFTER &&
            (bind->want ? bind->want : bind->last_len) < READ_BULK) {
            iov.length = READ_BULK;
        }
        if (iov.length > READ_MIN) {
            /* no further past the receive limit than READ_MIN (a read
             * takes what is left of a 2 MiB buffer: a bind with a low
             * limit, libevpl_http's, would hold up to that much) */
            uint64_t cap = evpl__bind_recv_limit(bind), have = bind->recv_ring.length;

            if (cap < bind->want) {
                cap = bind->want;
            }
            cap = cap > have + READ_MIN ? cap - have : READ_MIN;
            if (iov.length > cap) {
                iov.length = (unsigned int) cap;
            }
        }
        n = evpl_sys_read(event->fd, iov.data, iov.length);
        if (n > 0) {
            unsigned int asked = iov.length;

            bind->rx_since_send += (uint64_t) n;
            iov.length = (unsigned int) n;
            evpl_iovec_commit(evpl, 0, &iov, 1);
            evpl_iovec_ring_append_coalesce(evpl, &bind->recv_ring, &iov);
            total += (uint64_t) n;
            /* back-pressure: stop at the limit, not after the whole budget
             * (a segmented bind waiting for a longer message reads on; the
             * bind layer decides after segmenting) */
            if (evpl__stream_recv_full(bind)) {
                break;
            }
            /* a short read means drained - unless the peer has closed, in
             * which case the EOF behind the data gets no edge of its own */
            if ((unsigned int) n < asked && !(event->flags & EVPL_EV_RDHUP)) {
                evpl__event_clear(evpl, event, EVPL_EV_READABLE);
                break;
            }
            continue;
        }
        evpl_iovec_release(evpl, &iov);
        if (n == 0) {
            status = 0;
            break;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN) {
            evpl__event_clear(evpl, event, EVPL_EV_READABLE);
        } else {
            status = -errno;
        }
        break;
    }

    /* data that arrived before EOF or an error is delivered first */
    evpl__stream_read_end(evpl, bind, total != 0, status);
} /* stream_read */

/*
 * A connecting socket's first readiness report: the connect finished (or
 * failed).  Returns 1 once CONNECTED has been delivered, 0 otherwise.
 * Both the read and the write callback come here first, so data the peer
 * sends at once can never overtake CONNECTED.
 */
static int
connect_done(struct evpl *evpl, struct evpl_bind *bind)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (bind->flags & EVPL_BIND_CONNECTED) {
        return 1;
    }
    if (getsockopt(bind->event.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        err = errno;
    }
    if (err) {
        evpl__event_clear(evpl, &bind->event, EVPL_EV_WRITE_INTEREST | EVPL_EV_READ_INTEREST);
        evpl__bind_fail(evpl, bind, -err);
        return 0;
    }
    evpl__bind_local_from_fd(bind, bind->event.fd);
    evpl__event_clear(evpl, &bind->event, EVPL_EV_WRITE_INTEREST);
    evpl__bind_connected(evpl, bind);
    return (bind->flags & EVPL_BIND_CONNECTED) != 0;
} /* connect_done */

static void
stream_write(struct evpl *evpl, struct evpl_event *event)
{
    struct evpl_bind *bind = evpl_socket_bind(event);

    if (!(bind->flags & EVPL_BIND_CONNECTED)) {
        connect_done(evpl, bind); /* CONNECTED schedules the first flush */
        return;
    }
    bind->protocol->flush(evpl, bind); /* TCP-RDMA frames its own */
} /* stream_write */

void
evpl__stream_error(struct evpl *evpl, struct evpl_event *event)
{
    struct evpl_bind *bind = evpl_socket_bind(event);
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(event->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        err = errno;
    }
    if (!(bind->flags & EVPL_BIND_CONNECTED)) {
        evpl__bind_fail(evpl, bind, err ? -err : -ECONNREFUSED);
    } else if (err) {
        evpl__bind_fail(evpl, bind, -err);
    }
    /* a hang-up without an error: the read side sees EOF and closes */
} /* evpl__stream_error */

static int
register_fd(struct evpl *evpl, struct evpl_bind *bind, int fd, uint32_t interest)
{
    int rc;

    evpl__event_init(&bind->event, fd, stream_read, stream_write, evpl__stream_error);
    bind->event.flags = EVPL_EV_WANT_WRITE;
    rc = evpl__event_add(evpl, &bind->event);
    if (rc < 0) {
        return rc;
    }
    bind->flags |= EVPL_BIND_TRANSPORT_UP;
    evpl__event_set(evpl, &bind->event, interest);
    return 0;
} /* register_fd */

/* A full AF_UNIX backlog refuses a non-blocking connect with EAGAIN (TCP
 * queues the SYN instead): retry with backoff before giving up. */
#define UNIX_RETRY_MAX_US 5000000

static void connect_retry(struct evpl *evpl, struct evpl_timer *timer);

/* Whether /proc/net/unix lists a listening socket bound to path (as the
 * binder spelled it: one bound by a relative path is not found). */
static int
unix_path_listed_listening(const char *path)
{
    FILE *f = fopen("/proc/net/unix", "re");
    char line[4096];
    int found = 0;

    if (!f) {
        return 0;
    }
    while (!found && fgets(line, sizeof(line), f)) {
        unsigned long flags;
        char *p;
        int used = 0;

        /* "Num: RefCount Protocol Flags Type St Inode Path" */
        if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %n", &flags, &used) != 1 || !used) {
            continue;
        }
        p = line + used;
        p[strcspn(p, "\n")] = '\0';
        found = (flags & 0x10000) != 0 && strcmp(p, path) == 0; /* __SO_ACCEPTCON */
    }
    fclose(f);
    return found;
} /* unix_path_listed_listening */

/* AF_UNIX: a socket file nobody accepts on is stale and may be replaced by
 * a listener (net.md §5); a client's path only when no socket at all is
 * bound to it (another connection's path is not taken over). */
static int
unix_path_is_stale(const struct evpl_address *a, int listener)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *) &a->sa;
    struct stat st;
    int fd, rc, err;

    if (un->sun_path[0] == '\0' || lstat(un->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
        return 0; /* abstract, vanished, or not a socket: never remove */
    }
    /* A datagram socket asks without being seen: a file nobody is bound to
     * refuses, a live datagram socket accepts, and a stream socket bound
     * to the path answers EPROTOTYPE. */
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return 0;
    }
    rc = connect(fd, (const struct sockaddr *) &a->sa, a->addrlen);
    err = errno;
    close(fd);
    if (rc == 0 || err != EPROTOTYPE) {
        return rc < 0 && err == ECONNREFUSED;
    }
    /* A stream socket is bound there: live for a client.  For a listener,
     * live only if it listens.  A listener the kernel lists under this
     * path is left alone without a connection it would see; otherwise
     * (bound but not listening, or listed under a relative path) a stream
     * connect tells, refused meaning nobody accepts. */
    if (!listener || unix_path_listed_listening(un->sun_path)) {
        return 0;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return 0;
    }
    rc = connect(fd, (const struct sockaddr *) &a->sa, a->addrlen);
    err = errno;
    close(fd);
    return rc < 0 && err == ECONNREFUSED;
} /* unix_path_is_stale */

/* bind(2); an AF_UNIX socket file left behind by a socket that is gone
 * (a crashed run) is replaced, a live one never (unix_path_is_stale).
 * *ino: the inode of the socket file made (0: none). */
static int
bind_address(int fd, const struct evpl_address *a, int listener, uint64_t *ino)
{
    const char *path = ((const struct sockaddr_un *) &a->sa)->sun_path;
    int rc = sys_bind(fd, (const struct sockaddr *) &a->sa, a->addrlen);
    struct stat st;

    if (rc < 0 && errno == EADDRINUSE && a->sa.ss_family == AF_UNIX) {
        if (unix_path_is_stale(a, listener)) {
            unlink(path);
            rc = sys_bind(fd, (const struct sockaddr *) &a->sa, a->addrlen);
        } else {
            errno = EADDRINUSE; /* not what the probing left */
        }
    }
    *ino = 0;
    if (rc == 0 && a->sa.ss_family == AF_UNIX && path[0] && lstat(path, &st) == 0) {
        *ino = (uint64_t) st.st_ino;
    }
    return rc;
} /* bind_address */

/* Remove the socket file made at path, unless it is no longer the one made
 * (inode ino): a listener may have replaced it meanwhile (a path nobody
 * accepts on is stale to a listener) and the file is then its own. */
static void
unix_path_remove(const char *path, uint64_t ino)
{
    struct stat st;

    if (lstat(path, &st) == 0 && (uint64_t) st.st_ino == ino) {
        unlink(path);
    }
} /* unix_path_remove */

/* Close a connecting socket that never came up, with the AF_UNIX path it
 * was bound to (a retry binds it again). */
static void
connect_abandon(struct evpl_bind *bind, int fd)
{
    if (bind->flags & EVPL_BIND_OWNS_PATH) {
        unix_path_remove(((struct sockaddr_un *) &bind->local->sa)->sun_path, bind->path_ino);
        bind->flags &= ~EVPL_BIND_OWNS_PATH;
    }
    close(fd);
} /* connect_abandon */

int
evpl__stream_connect(struct evpl *evpl, struct evpl_bind *bind)
{
    int family = bind->remote->sa.ss_family;
    int fd, rc;

    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    set_nodelay(fd, family);
    if (bind->local) {
        if (bind_address(fd, bind->local, 0, &bind->path_ino) < 0) {
            rc = -errno;
            close(fd);
            return rc;
        }
        if (bind->path_ino) {
            bind->flags |= EVPL_BIND_OWNS_PATH; /* the file is ours to remove */
        }
    }
    if (connect(fd, (struct sockaddr *) &bind->remote->sa, bind->remote->addrlen) < 0 &&
        errno != EINPROGRESS) {
        rc = -errno;
        connect_abandon(bind, fd);
        if (rc == -EAGAIN && family == AF_UNIX && bind->retry_total_us < UNIX_RETRY_MAX_US) {
            bind->retry_us = bind->retry_us ? bind->retry_us * 2 : 1000;
            if (bind->retry_us > 100000) {
                bind->retry_us = 100000;
            }
            bind->retry_total_us += bind->retry_us;
            evpl_add_oneshot_timer(evpl, &bind->retry, connect_retry, bind->retry_us);
            return 0;
        }
        /* refused at once (AF_UNIX, or loopback): reported as DISCONNECTED */
        return rc;
    }
    /* the kernel chose the local address at connect (net.md §3): known
     * from here, not only once connected */
    evpl__bind_local_from_fd(bind, fd);
    /* completion (or an immediate success) is reported by EPOLLOUT */
    rc = register_fd(evpl, bind, fd, EVPL_EV_READ_INTEREST | EVPL_EV_WRITE_INTEREST);
    if (rc < 0) {
        connect_abandon(bind, fd);
    }
    return rc;
} /* evpl__stream_connect */

static void
connect_retry(struct evpl *evpl, struct evpl_timer *timer)
{
    struct evpl_bind *bind = container_of(timer, struct evpl_bind, retry);
    int rc;

    if (evpl__bind_closing(bind)) {
        return;
    }
    rc = evpl__stream_connect(evpl, bind);
    if (rc < 0) {
        evpl__bind_fail(evpl, bind, rc);
    }
} /* connect_retry */

int
evpl__stream_attach(struct evpl *evpl, struct evpl_bind *bind, struct evpl_accepted *conn)
{
    int rc;

    rc = register_fd(evpl, bind, conn->fd, EVPL_EV_READ_INTEREST);
    if (rc < 0) {
        return rc;
    }
    conn->fd = -1;
    return 0;
} /* evpl__stream_attach */

/*
 * Graceful close (evpl_finish): close(2) with unread input would send an
 * RST that can destroy data still in our send queue, so the socket is shut
 * down for writing (FIN after the queued bytes) and then drained and
 * discarded until the peer closes too.  Without that EOF it is closed once
 * LINGER_MIN_US have passed and the peer has acknowledged everything we
 * sent (SIOCOUTQ 0: a reset cannot lose any of it any more), or after
 * LINGER_MAX_US whatever the state (a peer that never reads).  The bind
 * itself is done with at once; the loop owns the lingering socket.
 */
#define LINGER_TICK_US 250000
#define LINGER_MIN_US  2000000
#define LINGER_MAX_US  60000000

struct evpl_linger {
    struct evpl_event event;
    struct evpl_timer timer;
    uint64_t waited_us;
    int tcp; /* AF_UNIX: what we sent is in the peer's queue already */
    struct evpl_linger *next, *prev;
};

static void
linger_end(struct evpl *evpl, struct evpl_linger *lg)
{
    evpl_remove_timer(evpl, &lg->timer);
    evpl__event_remove(evpl, &lg->event);
    close(lg->event.fd);
    if (lg->prev) {
        lg->prev->next = lg->next;
    } else {
        evpl->lingering = lg->next;
    }
    if (lg->next) {
        lg->next->prev = lg->prev;
    }
    free(lg);
} /* linger_end */

static void
linger_read(struct evpl *evpl, struct evpl_event *event)
{
    char sink[16384]; /* contents are thrown away */
    struct evpl_linger *lg = container_of(event, struct evpl_linger, event);

    for (;;) {
        ssize_t n = read(event->fd, sink, sizeof(sink));

        if (n > 0) {
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            evpl__event_clear(evpl, event, EVPL_EV_READABLE);
            return;
        }
        linger_end(evpl, lg); /* EOF or error: the peer is done */
        return;
    }
} /* linger_read */

static void
linger_tick(struct evpl *evpl, struct evpl_timer *timer)
{
    struct evpl_linger *lg = container_of(timer, struct evpl_linger, timer);
    int unacked = 0;

    lg->waited_us += LINGER_TICK_US;
    if (!lg->tcp || ioctl(lg->event.fd, SIOCOUTQ, &unacked) < 0) {
        unacked = 0;
    }
    if ((lg->waited_us >= LINGER_MIN_US && unacked == 0) || lg->waited_us >= LINGER_MAX_US) {
        linger_end(evpl, lg);
        return;
    }
    evpl_add_oneshot_timer(evpl, &lg->timer, linger_tick, LINGER_TICK_US);
} /* linger_tick */

int
evpl__stream_linger(struct evpl *evpl, int fd)
{
    struct evpl_linger *lg;

    if (shutdown(fd, SHUT_WR) < 0 || !(lg = calloc(1, sizeof(*lg)))) {
        return -1;
    }
    evpl__event_init(&lg->event, fd, linger_read, NULL, NULL);
    lg->event.flags = EVPL_EV_READ_INTEREST;
    {
        int domain = 0;
        socklen_t len = sizeof(domain);

        lg->tcp = getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
                  (domain == AF_INET || domain == AF_INET6);
    }
    if (evpl__event_add(evpl, &lg->event) < 0) {
        free(lg);
        return -1;
    }
    /* data may already be waiting: look once without a readiness report */
    evpl__event_set(evpl, &lg->event, EVPL_EV_READABLE);
    evpl_add_oneshot_timer(evpl, &lg->timer, linger_tick, LINGER_TICK_US);
    lg->next = evpl->lingering;
    if (lg->next) {
        ((struct evpl_linger *) lg->next)->prev = lg;
    }
    evpl->lingering = lg;
    return 0;
} /* evpl__stream_linger */

void
evpl__stream_linger_cleanup(struct evpl *evpl)
{
    while (evpl->lingering) {
        struct evpl_linger *lg = evpl->lingering;
        char sink[16384];

        /* the loop is going away: read what the peer sent first, since a
         * close with unread input is a reset that throws away what the
         * peer has not received yet; the kernel still delivers the rest
         * (the peer may yet draw a reset by sending more) */
        while (read(lg->event.fd, sink, sizeof(sink)) > 0) {
        }
        linger_end(evpl, lg);
    }
} /* evpl__stream_linger_cleanup */

void
evpl__stream_close(struct evpl *evpl, struct evpl_bind *bind)
{
    int fd = bind->event.fd;

    if (bind->flags & EVPL_BIND_OWNS_PATH) {
        /* the socket keeps its address; nothing connects to a client's path */
        unix_path_remove(((struct sockaddr_un *) &bind->local->sa)->sun_path, bind->path_ino);
        bind->flags &= ~EVPL_BIND_OWNS_PATH;
    }
    if (fd < 0) {
        return;
    }
    evpl__event_remove(evpl, &bind->event);
    bind->event.fd = -1;
    if ((bind->flags & EVPL_BIND_FINISH) && bind->close_status == 0 &&
        (bind->flags & EVPL_BIND_CONNECTED) && evpl__stream_linger(evpl, fd) == 0) {
        return;
    }
    if (evpl->mech->holds_files) {
        evpl__stream_abort(fd); /* close(2) alone does the same otherwise */
    }
    close(fd);
} /* evpl__stream_close */

/* SO_RCVLOWAT: epoll reports the socket readable only once this much is
 * queued, so a long message is read in a few large reads, not in many
 * small ones racing the sender for the socket lock.  Safe for plain TCP:
 * the caller asks for no more than the bytes its message still lacks. */
static void
stream_rcvlowat(struct evpl *evpl, struct evpl_bind *bind, uint32_t bytes)
{
    int v = bytes > 1 ? (int) bytes : 1;

    if (bind->event.fd < 0 || (uint32_t) v == (bind->lowat ? bind->lowat : 1)) {
        return;
    }
    if (setsockopt(bind->event.fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v)) == 0) {
        bind->lowat = (uint32_t) v;
    }
}

void
evpl__stream_read_resume(struct evpl *evpl, struct evpl_bind *bind)
{
    evpl__event_set(evpl, &bind->event, EVPL_EV_READ_INTEREST);
} /* evpl__stream_read_resume */

/* ---- listening (runs on the listener's thread) ---- */

struct listen_state {
    struct evpl_event event;
    struct evpl_listener *listener;
    const struct evpl_protocol *protocol;
    struct evpl_timer retry;
    struct evpl_accept_errlog errlog;
    char unlink_path[sizeof(((struct sockaddr_un *) 0)->sun_path) + 1];
    uint64_t path_ino; /* the socket file made there */
};

static void accept_ready(struct evpl *evpl, struct evpl_event *event);

static void
accept_retry(struct evpl *evpl, struct evpl_timer *timer)
{
    struct listen_state *ls = container_of(timer, struct listen_state, retry);

    evpl__event_set(evpl, &ls->event, EVPL_EV_READ_INTEREST | EVPL_EV_READABLE);
} /* accept_retry */

static void
accept_ready(struct evpl *evpl, struct evpl_event *event)
{
    struct listen_state *ls = container_of(event, struct listen_state, event);

    for (int budget = 64; budget > 0; budget--) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        struct evpl_accepted *conn;
        int fd;

        fd = accept4(event->fd, (struct sockaddr *) &ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EAGAIN) {
                evpl__event_clear(evpl, event, EVPL_EV_READABLE);
                return;
            }
            /* EMFILE and friends: the connection stays in the backlog, the
             * socket readable; no interest until the retry (a level-triggered
             * mechanism, select, would report it on every pass) instead of
             * spinning or giving up */
            evpl__event_clear(evpl, event, EVPL_EV_READABLE | EVPL_EV_READ_INTEREST);
            evpl__accept_failed(evpl, &ls->errlog, "socket", errno);
            evpl_add_oneshot_timer(evpl, &ls->retry, accept_retry, EVPL_ACCEPT_RETRY_US);
            return;
        }
        conn = calloc(1, sizeof(*conn));
        if (!conn) {
            close(fd);
            continue;
        }
        set_nodelay(fd, ss.ss_family);
        conn->protocol = ls->protocol;
        conn->fd = fd;
        conn->local = evpl__address_of_fd(fd, 0);
        conn->remote = evpl__address_new((struct sockaddr *) &ss, len);
        evpl__listener_deliver(ls->listener, conn);
    }
    /* budget used up: stay readable, continue next pass */
} /* accept_ready */

int
evpl__stream_listen(struct evpl *evpl, const struct evpl_protocol *protocol,
                    struct evpl_listener *listener, struct evpl_address *address, void **state)
{
    struct listen_state *ls;
    int family = address->sa.ss_family;
    int fd, rc, one = 1;
    uint64_t ino;

    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    if (family != AF_UNIX) {
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    rc = bind_address(fd, address, 1, &ino);
    if (rc < 0 || listen(fd, (int) evpl_shared->config->max_pending) < 0) {
        rc = -errno;
        goto fail;
    }

    ls = calloc(1, sizeof(*ls));
    if (!ls) {
        rc = -ENOMEM;
        goto fail;
    }
    ls->listener = listener;
    ls->protocol = protocol; /* TCP, UNIX, or TLS on top of TCP */
    if (ino) {
        strncpy(ls->unlink_path, ((struct sockaddr_un *) &address->sa)->sun_path,
                sizeof(ls->unlink_path) - 1);
        ls->path_ino = ino;
    }
    evpl__event_init(&ls->event, fd, accept_ready, NULL, NULL);
    ls->event.flags = EVPL_EV_READ_INTEREST;
    rc = evpl__event_add(evpl, &ls->event);
    if (rc < 0) {
        free(ls);
        goto fail;
    }
    *state = ls;
    return 0;

fail:
    if (ino) { /* the socket file made here goes with it */
        unix_path_remove(((struct sockaddr_un *) &address->sa)->sun_path, ino);
    }
    close(fd);
    return rc;
} /* evpl__stream_listen */

void
evpl__stream_unlisten(struct evpl *evpl, void *state)
{
    struct listen_state *ls = state;

    evpl_remove_timer(evpl, &ls->retry);
    evpl__event_remove(evpl, &ls->event);
    shutdown(ls->event.fd, SHUT_RDWR); /* stop accepting now, whoever holds the file */
    close(ls->event.fd);
    if (ls->unlink_path[0]) {
        unix_path_remove(ls->unlink_path, ls->path_ino);
    }
    free(ls);
} /* evpl__stream_unlisten */

/* TCP and AF_UNIX streams differ only in their addresses (and AF_UNIX
 * poll ignores SO_RCVLOWAT). */
#define STREAM_SOCKET_PROTOCOL(proto_id, proto_name, endpoint_kind, lowat)   \
    {                                                                        \
        .id = (proto_id), .name = (proto_name), .stream = 1, .connected = 1, \
        .kind = (endpoint_kind), .available = evpl__socket_available,        \
        .connect = evpl__stream_connect, .attach = evpl__stream_attach,      \
        .listen = evpl__stream_listen, .unlisten = evpl__stream_unlisten,    \
        .flush = evpl__stream_flush, .close = evpl__stream_close,            \
        .read_resume = evpl__stream_read_resume, .rcvlowat = (lowat),        \
    }

const struct evpl_protocol evpl_protocol_socket_tcp = STREAM_SOCKET_PROTOCOL(
    EVPL_STREAM_SOCKET_TCP, "STREAM_SOCKET_TCP", EVPL_EP_NETWORK, stream_rcvlowat);

const struct evpl_protocol evpl_protocol_socket_unix =
    STREAM_SOCKET_PROTOCOL(EVPL_STREAM_SOCKET_UNIX, "STREAM_SOCKET_UNIX", EVPL_EP_LOCAL, NULL);
