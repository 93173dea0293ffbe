/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * In-process transports: EVPL_STREAM_INPROC and EVPL_DATAGRAM_INPROC.
 *
 * Names live in a registry private to the process.  evpl_connect looks the
 * name up and hands the listener a channel at once (there is no backlog);
 * the listener gives it to an attached loop like any accepted connection.
 *
 * A channel joins two ends.  Sending moves the queued iovecs, with their
 * references, into the peer end's inbox (zero copy): a LOCAL buffer
 * becomes SHARED first when the peer lives on another loop.  The peer's
 * loop is told through one doorbell per loop and a list of its ends that
 * have news, so a loop with 10,000 in-process connections still owns one
 * eventfd.  One mutex per channel orders sends against close: an end rings
 * its peer only while the peer has not closed, and a closing end marks
 * itself closed under that mutex before its loop may go away.
 *
 * DATAGRAM_INPROC also has one-sided operations (rdma.md §1): the
 * initiator copies directly, against the process-wide table of registered
 * slabs (net/rdma.c); the peer is never woken.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/socket/socket.h"
#include "mem/mem.h"
#include "net/net.h"

/* ---- the name registry ---- */

struct inproc_name {
    struct inproc_name *next;
    char name[108];
    const struct evpl_protocol *protocol;
    struct evpl_listener *listener;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct inproc_name *registry;
static _Atomic uint32_t next_serial;

static struct inproc_name *
registry_find(const char *name)
{
    for (struct inproc_name *n = registry; n; n = n->next) {
        if (strcmp(n->name, name) == 0) {
            return n;
        }
    }
    return NULL;
} /* registry_find */

static const char *
address_name(const struct evpl_address *a)
{
    return ((const struct evpl_inproc_sockaddr *) &a->sa)->name;
} /* address_name */

/* ---- channels ---- */

/* What crosses from one end to the other: payload, or the end of it. */
/* What one flush hands over: a run of stream bytes, or datagrams (parts). */
struct inproc_part {
    uint32_t niov;
    uint32_t length;
};

struct inproc_msg {
    struct inproc_msg *next;
    uint64_t length;
    uint32_t niov;
    uint32_t first;  /* iovecs before this one were delivered */
    uint32_t nparts; /* datagrams: message boundaries, in parts[] */
    uint32_t part;   /* datagrams: the next to deliver */
    struct inproc_part *parts;
    struct evpl_iovec iov[];
};

struct inproc_loop;

struct inproc_end {
    struct inproc_chan *chan;
    int side;                 /* 0: the connecting end, 1: the accepted end */
    struct evpl_bind *bind;   /* set once the end has a bind */
    struct inproc_loop *loop; /* the bind's loop; set with bind */
    struct inproc_msg *inbox; /* from the peer, under chan->lock */
    struct inproc_msg *inbox_tail;
    struct inproc_msg *held; /* taken from the inbox, not yet delivered (owner only) */
    struct inproc_msg *held_tail;
    struct inproc_end *ready_next; /* loop->ready, under loop->lock */
    int queued;                    /* on loop->ready */
    struct inproc_end *batch_next; /* loop_ring's batch (owner only) */
    int wake_send;                 /* the peer took data: flush again (chan->lock) */
    struct parked_op *parked;      /* one-sided ops refused since the peer closed (owner) */
    /* stream: held bytes taken out of their messages while the bind is
     * paused, runs of short pieces copied into buffers of their own (owner
     * only; delivered before what is held) */
    struct evpl_iovec_ring waiting;
};

/* A one-sided operation that found the peer closed: it completes with
 * ECONNRESET when this end closes too, as one pending when the
 * connection closes (rdma.md §3), just before DISCONNECTED. */
struct parked_op {
    struct parked_op *next;
    void (*callback)(int status, void *private_data);
    void *private_data;
};

struct inproc_chan {
    pthread_mutex_t lock;
    int refs;      /* ends not yet closed (or discarded); freed at 0 */
    int accepted;  /* the accepted end has a bind */
    int closed[2]; /* the end has closed (or was discarded) */
    int reset[2];  /* ... with received data unread: its peer ends with ECONNRESET */
    /* flow control: bytes end i handed over that its peer has not taken
     * yet (into its receive ring, or to the application); at WINDOW end
     * i stops handing over until the peer has taken half of them */
    uint64_t unread[2];
    int send_blocked[2];
    struct inproc_end end[2];
};

/* What one end may have handed over and not yet seen taken: a slow or
 * paused reader holds its sender back like a full TCP window. */
#define INPROC_WINDOW (4u * 1024 * 1024)

/* Per loop: one doorbell, and the ends with news for this loop. */
struct inproc_loop {
    struct evpl_doorbell bell;
    pthread_mutex_t lock;
    struct inproc_end *ready;
};

static void loop_ring(struct evpl *evpl, struct evpl_doorbell *bell);

static struct inproc_loop *
loop_get(struct evpl *evpl)
{
    struct inproc_loop *l = evpl->inproc;

    if (!l) {
        l = evpl__zalloc(sizeof(*l));
        pthread_mutex_init(&l->lock, NULL);
        evpl_add_doorbell(evpl, &l->bell, loop_ring);
        evpl->inproc = l;
    }
    return l;
} /* loop_get */

void
evpl__inproc_loop_cleanup(struct evpl *evpl)
{
    struct inproc_loop *l = evpl->inproc;

    if (!l) {
        return;
    }
    /* every bind is closed by now, so no peer can ring this doorbell */
    evpl_remove_doorbell(evpl, &l->bell);
    pthread_mutex_destroy(&l->lock);
    free(l);
    evpl->inproc = NULL;
} /* evpl__inproc_loop_cleanup */

/* Tell end's loop that end has news; with end->chan->lock held, end open. */
static void
end_notify_locked(struct inproc_end *end)
{
    struct inproc_loop *l = end->loop;
    int ring = 0;

    pthread_mutex_lock(&l->lock);
    if (!end->queued) {
        end->queued = 1;
        end->ready_next = l->ready;
        l->ready = end;
        ring = 1;
    }
    pthread_mutex_unlock(&l->lock);
    if (ring) {
        evpl_ring_doorbell(&l->bell);
    }
} /* end_notify_locked */

static void
msgs_free(struct evpl *evpl, struct inproc_msg *m)
{
    while (m) {
        struct inproc_msg *next = m->next;

        evpl_iovecs_release_internal(evpl, m->iov + m->first, (int) (m->niov - m->first));
        free(m);
        m = next;
    }
} /* msgs_free */

static void
chan_free(struct inproc_chan *chan)
{
    pthread_mutex_destroy(&chan->lock);
    free(chan);
} /* chan_free */

/* ---- receiving ---- */

static void
held_push(struct inproc_end *end, struct inproc_msg *head, struct inproc_msg *tail)
{
    if (!head) {
        return;
    }
    if (end->held_tail) {
        end->held_tail->next = head;
    } else {
        end->held = head;
    }
    end->held_tail = tail;
} /* held_push */

static struct inproc_msg *
held_pop(struct inproc_end *end)
{
    struct inproc_msg *m = end->held;

    end->held = m->next;
    if (!end->held) {
        end->held_tail = NULL;
    }
    m->next = NULL;
    return m;
} /* held_pop */

/* The application (or the receive ring) took bytes the peer handed over:
 * a sender held back by the window may go on. */
static void
taken(struct inproc_end *end, uint64_t bytes)
{
    struct inproc_chan *chan = end->chan;
    int from = !end->side;

    pthread_mutex_lock(&chan->lock);
    chan->unread[from] -= bytes;
    if (chan->send_blocked[from] && chan->unread[from] < INPROC_WINDOW / 2 && !chan->closed[from]) {
        chan->send_blocked[from] = 0;
        chan->end[from].wake_send = 1;
        end_notify_locked(&chan->end[from]);
    }
    pthread_mutex_unlock(&chan->lock);
} /* taken */

/* Hand what the peer sent to the application, as far as it takes it. */
static void
deliver_held(struct evpl *evpl, struct inproc_end *end)
{
    struct evpl_bind *bind = end->bind;
    uint64_t bytes = 0;

    if (!bind->protocol->stream) {
        while (end->held && !(bind->flags & EVPL_BIND_CLOSING)) {
            struct inproc_msg *m = end->held;
            struct inproc_part *p = &m->parts[m->part++];
            struct evpl_iovec *iov = &m->iov[m->first];

            m->first += p->niov;
            bytes += p->length;
            if (m->part == m->nparts) {
                held_pop(end); /* before the callback: it may close the bind */
            }
            /* the message's iovecs go to the application */
            evpl__bind_received_msg(evpl, bind, iov, (int) p->niov, p->length, bind->remote);
            if (m->part == m->nparts) {
                free(m);
            }
        }
    } else {
        while ((end->waiting.length || end->held) &&
               !(bind->flags & (EVPL_BIND_CLOSING | EVPL_BIND_READ_PAUSED))) {
            /* append iovecs up to the receive limit (further while a
             * segmented bind waits for a longer message), then let the
             * bind layer look: it pauses a bind above the limit, as the
             * socket backends do */
            do {
                struct evpl_iovec v;

                if (end->waiting.length) {
                    v = *evpl_iovec_fifo_front(&end->waiting.fifo);
                    evpl_iovec_fifo_pop(&end->waiting.fifo);
                    end->waiting.length -= v.length;
                } else {
                    struct inproc_msg *m = end->held;

                    v = m->iov[m->first++];
                    if (m->first == m->niov) {
                        free(held_pop(end));
                    }
                }
                bytes += v.length;
                evpl_iovec_ring_append_coalesce(evpl, &bind->recv_ring, &v);
            } while ((end->waiting.length || end->held) &&
                     (bind->recv_ring.length <= evpl__bind_recv_limit(bind) ||
                      bind->recv_ring.length < bind->want));
            evpl__bind_received(evpl, bind);
        }
        if (end->held &&
            (bind->flags & (EVPL_BIND_CLOSING | EVPL_BIND_READ_PAUSED)) == EVPL_BIND_READ_PAUSED) {
            /* paused: what waits here stays until the application reads,
             * and short pieces (slices of buffers other data went through)
             * would pin a buffer each: those move out, as a socket
             * backend's paused receive queue does */
            while (end->held) {
                struct inproc_msg *m = end->held;

                while (m->first < m->niov) {
                    evpl_iovec_ring_append(evpl, &end->waiting, &m->iov[m->first++]);
                }
                free(held_pop(end));
            }
            evpl__iovec_ring_compact(evpl, &end->waiting, 0);
        }
    }
    if (bytes) {
        taken(end, bytes);
    }
} /* deliver_held */

/* The loop's doorbell: serve every end with news. */
static void
end_serve(struct evpl *evpl, struct inproc_end *end)
{
    struct inproc_chan *chan = end->chan;
    struct evpl_bind *bind = end->bind;
    struct inproc_msg *head, *tail;
    int peer_closed, peer_reset, accepted, wake_send;

    pthread_mutex_lock(&chan->lock);
    wake_send = end->wake_send;
    end->wake_send = 0;
    head = end->inbox;
    tail = end->inbox_tail;
    end->inbox = end->inbox_tail = NULL;
    peer_closed = chan->closed[!end->side];
    peer_reset = chan->reset[!end->side];
    accepted = chan->accepted;
    pthread_mutex_unlock(&chan->lock);

    held_push(end, head, tail);
    if (end->side == 0 && accepted && !(bind->flags & EVPL_BIND_CONNECTED)) {
        evpl__bind_connected(evpl, bind);
    }
    if (bind->flags & EVPL_BIND_CLOSING) {
        return; /* the close releases what is held */
    }
    if ((wake_send || peer_closed) &&
        (bind->send_ring.length || !evpl_dgram_ring_empty(&bind->dgram_send))) {
        evpl_defer(evpl, &bind->flush); /* what the window held back (or drop it) */
    }
    deliver_held(evpl, end);
    if (peer_closed && !end->held && !end->waiting.length &&
        !(bind->flags & EVPL_BIND_READ_PAUSED)) {
        /* everything the peer sent came first.  As with TCP: a peer that
         * dropped data it had received resets, and a connection no loop
         * took was refused.  Not while reading is paused: as a socket's
         * EOF waits behind the data not yet read, the close waits for the
         * application to drain what it holds (net.md statement 29;
         * helper-106: it came at once, and what was unread could only be
         * read inside DISCONNECTED); resuming serves this end again */
        evpl__bind_fail(evpl, bind, !accepted ? -ECONNREFUSED : peer_reset ? -ECONNRESET : 0);
    }
} /* end_serve */

static void
loop_ring(struct evpl *evpl, struct evpl_doorbell *bell)
{
    struct inproc_loop *l = container_of(bell, struct inproc_loop, bell);
    struct inproc_end *list, *rev = NULL;

    pthread_mutex_lock(&l->lock);
    list = l->ready;
    l->ready = NULL;
    for (struct inproc_end *e = list; e; e = e->ready_next) {
        e->queued = 0;
        e->batch_next = rev; /* reversed: oldest first */
        rev = e;
    }
    pthread_mutex_unlock(&l->lock);

    /* An end may be queued again (by a peer) while in this batch: it is
     * then served twice, the second time finding nothing new.  Closing an
     * end takes it off l->ready, not off this batch, but a close requested
     * by a callback here only runs at the end of the pass (close
     * deferral), so every end of the batch stays valid. */
    for (struct inproc_end *e = rev, *next; e; e = next) {
        next = e->batch_next;
        end_serve(evpl, e);
    }
} /* loop_ring */

static void
inproc_read_resume(struct evpl *evpl, struct evpl_bind *bind)
{
    struct inproc_end *end = bind->backend;

    /* not from inside the application's evpl_recv: on the loop's next look */
    pthread_mutex_lock(&end->chan->lock);
    end_notify_locked(end);
    pthread_mutex_unlock(&end->chan->lock);
    (void) evpl;
} /* inproc_read_resume */

/* ---- sending ---- */

static struct inproc_msg *
msg_new(uint32_t niov, uint32_t nparts)
{
    struct inproc_msg *m = malloc(sizeof(*m) + (size_t) niov * sizeof(struct evpl_iovec) +
                                  (size_t) nparts * sizeof(struct inproc_part));

    if (m) {
        m->next = NULL;
        m->niov = 0;
        m->first = 0;
        m->length = 0;
        m->nparts = 0;
        m->part = 0;
        m->parts = (struct inproc_part *) &m->iov[niov];
    }
    return m;
} /* msg_new */

/* Move up to niov iovecs (and their references) from the send ring.
 * -ENOMEM when a GLOBAL one could not be copied (all niov are taken off
 * the ring regardless; m is then incomplete, not to be delivered). */
static int
msg_take(struct evpl *evpl, struct evpl_bind *bind, struct inproc_msg *m, uint32_t niov, int cross)
{
    int rc = 0;

    for (uint32_t i = 0; i < niov && !evpl_iovec_fifo_empty(&bind->send_ring.fifo); i++) {
        struct evpl_iovec *f = evpl_iovec_fifo_front(&bind->send_ring.fifo);

        if (f->ref && (f->ref->flags & EVPL_IOVEC_FLAG_GLOBAL)) {
            /* the receiver releases what it gets, and releasing a GLOBAL
             * iovec frees the sender's buffer (memory.md §2): it gets a
             * counted copy instead */
            struct evpl_iovec c;

            if (f->length == 0) {
                evpl_iovec_fifo_pop(&bind->send_ring.fifo);
                continue;
            }
            if (evpl_iovec_alloc(evpl, f->length, 0, 1, cross ? EVPL_IOVEC_FLAG_SHARED : 0, &c) !=
                1) {
                bind->send_ring.length -= f->length;
                evpl_iovec_fifo_pop(&bind->send_ring.fifo); /* (no-op release: GLOBAL) */
                rc = -ENOMEM;
                continue;
            }
            memcpy(c.data, f->data, f->length);
            evpl_iovec_release_internal(evpl, f); /* no-op: GLOBAL */
            *f = c;
        } else if (cross) {
            evpl__iovec_make_shared(evpl, f);
        }
        m->iov[m->niov++] = *f;
        m->length += f->length;
        bind->send_ring.length -= f->length;
        evpl_iovec_fifo_pop(&bind->send_ring.fifo);
    }
    return rc;
} /* msg_take */

/* Hand what is queued to the peer, within the window unless force. */
static void
flush_out(struct evpl *evpl, struct evpl_bind *bind, int force)
{
    struct inproc_end *end = bind->backend, *peer = &end->chan->end[!end->side];
    struct inproc_chan *chan = end->chan;
    struct inproc_msg *head = NULL, *tail = NULL;
    uint64_t bytes = 0, msgs = 0, room;
    int cross, open, more, rc = 0;

    if (!(bind->flags & EVPL_BIND_CONNECTED)) {
        if (!force) {
            return; /* CONNECTED flushes what was queued before it */
        }
        /* closed before CONNECTED (net.md §14 statement 8): the peer may
         * have no loop yet, and shared references are good on any */
        cross = 1;
    } else {
        /* the peer's loop was set before CONNECTED reached us, and never
         * changes */
        cross = peer->loop != end->loop;
    }

    pthread_mutex_lock(&chan->lock);
    if (chan->closed[peer->side] || force) {
        room = UINT64_MAX; /* everything goes (dropped if the peer is gone) */
    } else if (chan->unread[end->side] >= INPROC_WINDOW) {
        /* the peer has not taken what it has: it wakes us when it does */
        chan->send_blocked[end->side] = 1;
        pthread_mutex_unlock(&chan->lock);
        if (bind->protocol->stream) {
            /* (what the peer holds, up to the window, it holds by
             * reference: compacting that would copy every short message
             * of a stream whose reader lags, half its speed at 1 KiB) */
            evpl_iovec_ring_waits(evpl, &bind->send_ring, 0);
        }
        return;
    } else {
        room = INPROC_WINDOW - chan->unread[end->side];
    }
    pthread_mutex_unlock(&chan->lock);

    if (bind->protocol->stream) {
        uint32_t count = evpl_iovec_fifo_count(&bind->send_ring.fifo), n = 0;
        uint64_t fill = 0;

        /* whole iovecs up to the room left in the window (at least one) */
        while (n < count && fill < room) {
            fill += evpl_iovec_fifo_at(&bind->send_ring.fifo, n)->length;
            n++;
        }
        if (n) {
            head = tail = msg_new(n, 0);
            if (!head) {
                evpl_log_error("inproc", "out of memory sending: closing");
                evpl__bind_fail(evpl, bind, -ENOMEM);
                return;
            }
            rc = msg_take(evpl, bind, head, n, cross);
            bytes = head->length;
            /* every send of an in-process stream is a message (net.md §10) */
            msgs = evpl__stream_messages_done(bind, bytes);
        }
        more = bind->send_ring.length != 0;
    } else {
        uint32_t count = evpl_dgram_ring_count(&bind->dgram_send), n = 0, niov = 0;
        uint64_t fill = 0;

        /* whole datagrams up to the room left in the window (at least
         * one), in one hand-over */
        while (n < count && fill < room) {
            struct evpl_dgram *d = evpl_dgram_ring_at(&bind->dgram_send, n);

            fill += d->length;
            niov += d->niov;
            n++;
        }
        if (n) {
            head = tail = msg_new(niov, n);
            if (!head) {
                evpl_log_error("inproc", "out of memory sending: closing");
                evpl__bind_fail(evpl, bind, -ENOMEM);
                return;
            }
            for (uint32_t i = 0; i < n; i++) {
                struct evpl_dgram *d = evpl_dgram_ring_front(&bind->dgram_send);

                head->parts[i].niov = d->niov;
                head->parts[i].length = d->length;
                rc |= msg_take(evpl, bind, head, d->niov, cross);
                evpl__address_release(d->addr);
                evpl_dgram_ring_pop(&bind->dgram_send);
            }
            head->nparts = n;
            bytes = head->length;
            msgs = n;
        }
        more = !evpl_dgram_ring_empty(&bind->dgram_send);
    }
    if (!head) {
        evpl__bind_sent(evpl, bind, bytes, msgs);
        return;
    }
    if (rc) {
        /* no buffer memory for the copy a GLOBAL buffer needs: this bind
         * ends, as on any transport that cannot get memory (helper-100:
         * it aborted) */
        evpl_log_error("inproc", "no buffer memory to copy a GLOBAL buffer: closing");
        msgs_free(evpl, head);
        evpl__bind_fail(evpl, bind, -ENOMEM);
        return;
    }

    pthread_mutex_lock(&chan->lock);
    open = !chan->closed[peer->side];
    if (open) {
        if (peer->inbox_tail) {
            peer->inbox_tail->next = head;
        } else {
            peer->inbox = head;
        }
        peer->inbox_tail = tail;
        chan->unread[end->side] += bytes;
        /* the rest waits for the peer to take some: what it takes next
         * (this, at least) wakes us */
        chan->send_blocked[end->side] |= more;
        if (peer->loop) {
            end_notify_locked(peer); /* else its attach serves its inbox */
        }
    }
    pthread_mutex_unlock(&chan->lock);
    if (!open) {
        msgs_free(evpl, head); /* the peer is gone: its close reaches us next */
        if (more) {
            evpl_defer(evpl, &bind->flush);
        }
    }
    /* SENT: handed to the peer (net.md §10), not read by it */
    evpl__bind_sent(evpl, bind, bytes, msgs);
} /* flush_out */

static void
inproc_flush(struct evpl *evpl, struct evpl_bind *bind)
{
    flush_out(evpl, bind, 0);
} /* inproc_flush */

/* ---- one-sided operations (DATAGRAM_INPROC) ---- */

/* The peer end has closed (chan->lock held). */
static int
peer_gone_locked(const struct evpl_bind *bind)
{
    const struct inproc_end *end = bind->backend;

    return end->chan->closed[!end->side];
} /* peer_gone_locked */

/* Complete op when the bind closes (see struct parked_op). */
static void
park(struct evpl *evpl, struct evpl_bind *bind, void (*callback)(int status, void *private_data),
     void *private_data)
{
    struct inproc_end *end = bind->backend;
    struct parked_op *op = callback ? malloc(sizeof(*op)) : NULL;

    if (!op) {
        evpl__rdma_complete_later(evpl, bind, ECONNRESET, callback, private_data);
        return;
    }
    op->callback = callback;
    op->private_data = private_data;
    op->next = end->parked;
    end->parked = op;
} /* park */

/* A bind whose transport is gone (closing or closed) does nothing more. */
static int
rdma_bind_open(const struct evpl_bind *bind)
{
    return bind->backend && !(bind->flags & EVPL_BIND_CLOSING);
} /* rdma_bind_open */

static void
inproc_rdma_read(struct evpl *evpl, struct evpl_bind *bind, uint32_t remote_key,
                 uint64_t remote_address, struct evpl_iovec *iov, int niov,
                 void (*callback)(int status, void *private_data), void *private_data)
{
    uint64_t len = niov > 0 ? evpl__iovecs_length(iov, niov) : 0;
    struct inproc_chan *chan;
    char *src;
    int status;

    if (!rdma_bind_open(bind)) {
        evpl__rdma_complete_later(evpl, bind, ECONNRESET, callback, private_data);
        return;
    }
    /* under the channel's lock, and only while the peer is open: a peer
     * that closed may free the memory it advertised as soon as its
     * connection is gone (its loop runs on another thread) */
    chan = ((struct inproc_end *) bind->backend)->chan;
    pthread_mutex_lock(&chan->lock);
    status = peer_gone_locked(bind) ? ECONNRESET : 0;
    src = status ? NULL : evpl__rdma_local_target(remote_key, remote_address, len);
    if (!status && !src) {
        status = EINVAL;
    }
    for (int i = 0; src && i < niov; i++) {
        memmove(iov[i].data, src, iov[i].length); /* may overlap: one process */
        src += iov[i].length;
    }
    pthread_mutex_unlock(&chan->lock);
    if (status == ECONNRESET) {
        park(evpl, bind, callback, private_data);
        return;
    }
    evpl__rdma_complete_later(evpl, bind, status, callback, private_data);
} /* inproc_rdma_read */

static void
inproc_rdma_write(struct evpl *evpl, struct evpl_bind *bind, uint32_t remote_key,
                  uint64_t remote_address, struct evpl_iovec *iov, int niov, unsigned int flags,
                  void (*callback)(int status, void *private_data), void *private_data)
{
    uint64_t len = evpl__iovecs_length(iov, niov);
    struct inproc_chan *chan;
    char *dst = NULL;
    int status = ECONNRESET, parked = 0;

    /* done before any later send of this bind is flushed: a message sent
     * after the write finds the bytes in place (rdma.md §4); under the
     * channel's lock while the peer is open, as for reads */
    if (rdma_bind_open(bind)) {
        chan = ((struct inproc_end *) bind->backend)->chan;
        pthread_mutex_lock(&chan->lock);
        status = peer_gone_locked(bind) ? ECONNRESET : 0;
        dst = status ? NULL : evpl__rdma_local_target(remote_key, remote_address, len);
        if (!status && !dst) {
            status = EINVAL;
        }
        for (int i = 0; dst && i < niov; i++) {
            memmove(dst, iov[i].data, iov[i].length); /* may overlap */
            dst += iov[i].length;
        }
        pthread_mutex_unlock(&chan->lock);
        parked = status == ECONNRESET;
    }
    if (flags & EVPL_RDMA_FLAG_TAKE_REF) {
        evpl_iovecs_release_internal(evpl, iov, niov);
    }
    if (parked) {
        park(evpl, bind, callback, private_data);
        return;
    }
    evpl__rdma_complete_later(evpl, bind, status, callback, private_data);
} /* inproc_rdma_write */

/* ---- connections ---- */

static void
end_init(struct inproc_chan *chan, int side)
{
    struct inproc_end *end = &chan->end[side];

    end->chan = chan;
    end->side = side;
} /* end_init */

/* end gets its bind (on the bind's loop). */
static void
end_bind(struct evpl *evpl, struct inproc_end *end, struct evpl_bind *bind)
{
    end->bind = bind;
    end->loop = loop_get(evpl);
    bind->backend = end;
    bind->flags |= EVPL_BIND_TRANSPORT_UP;
} /* end_bind */

static int
inproc_connect(struct evpl *evpl, struct evpl_bind *bind)
{
    const char *name = address_name(bind->remote);
    struct evpl_accepted *conn;
    struct inproc_chan *chan;
    struct inproc_name *n;
    uint32_t serial;
    struct evpl_address *local;

    pthread_mutex_lock(&registry_lock);
    n = registry_find(name);
    if (!n || n->protocol != bind->protocol) {
        pthread_mutex_unlock(&registry_lock);
        evpl_log_debug("inproc", "connect to %s: %s", name,
                       n ? "listened on with the other in-process protocol" : "no listener");
        return -ECONNREFUSED;
    }
    serial = atomic_fetch_add(&next_serial, 1) + 1;
    chan = calloc(1, sizeof(*chan));
    conn = calloc(1, sizeof(*conn));
    local = evpl__address_inproc(name, serial);
    if (!chan || !conn || !local) {
        pthread_mutex_unlock(&registry_lock);
        free(chan);
        free(conn);
        evpl__address_release(local);
        return -ENOMEM;
    }
    pthread_mutex_init(&chan->lock, NULL);
    evpl_iovec_ring_init(&chan->end[0].waiting, 64);
    evpl_iovec_ring_init(&chan->end[1].waiting, 64);
    chan->refs = 2;
    end_init(chan, 0);
    end_init(chan, 1);
    end_bind(evpl, &chan->end[0], bind);
    evpl__address_release(bind->local);
    bind->local = local;

    conn->protocol = bind->protocol;
    conn->fd = -1;
    conn->backend = chan;
    conn->local = evpl__address_ref(bind->remote);
    conn->remote = evpl__address_ref(local);
    /* under the registry lock: the listener cannot go away meanwhile.  No
     * loop attached: the connection is discarded, which fails this bind */
    evpl__listener_deliver(n->listener, conn);
    pthread_mutex_unlock(&registry_lock);
    return 0;
} /* inproc_connect */

static int
inproc_attach(struct evpl *evpl, struct evpl_bind *bind, struct evpl_accepted *conn)
{
    struct inproc_chan *chan = conn->backend;
    struct inproc_end *end = &chan->end[1];

    conn->backend = NULL; /* the bind owns the accepted end now */
    loop_get(evpl);
    pthread_mutex_lock(&chan->lock);
    end_bind(evpl, end, bind); /* the peer reads end->loop under the lock */
    chan->accepted = 1;
    if (!chan->closed[0]) {
        end_notify_locked(&chan->end[0]); /* its CONNECTED */
    } else {
        end_notify_locked(end); /* connected to a peer already gone */
    }
    pthread_mutex_unlock(&chan->lock);
    return 0;
} /* inproc_attach */

static void
inproc_discard(struct evpl_accepted *conn)
{
    struct inproc_chan *chan = conn->backend;
    struct inproc_msg *inbox;
    int last;

    conn->backend = NULL;
    pthread_mutex_lock(&chan->lock);
    chan->closed[1] = 1;
    if (!chan->closed[0]) {
        end_notify_locked(&chan->end[0]); /* refused */
    }
    /* what a peer that closed early handed over (shared references) */
    inbox = chan->end[1].inbox;
    chan->end[1].inbox = chan->end[1].inbox_tail = NULL;
    last = --chan->refs == 0;
    pthread_mutex_unlock(&chan->lock);
    msgs_free(NULL, inbox);
    if (last) {
        chan_free(chan);
    }
} /* inproc_discard */

static void
inproc_close(struct evpl *evpl, struct evpl_bind *bind)
{
    struct inproc_end *end = bind->backend, *peer = &end->chan->end[!end->side];
    struct inproc_chan *chan = end->chan;
    struct inproc_loop *l = end->loop;
    struct inproc_msg *inbox;
    int last;

    /* net.md §14 statement 8: the peer gets DISCONNECTED after all data
     * sent before the close, including what this pass queued (the window
     * does not hold it back) */
    if (bind->send_ring.length || !evpl_dgram_ring_empty(&bind->dgram_send)) {
        flush_out(evpl, bind, 1);
    }
    pthread_mutex_lock(&chan->lock);
    chan->closed[end->side] = 1;
    /* unread data makes an abortive close a reset, as on TCP; a finish
     * that ran its course is an orderly end there (the socket lingers),
     * and here (helper-106: the peer got -ECONNRESET) */
    chan->reset[end->side] =
        !((bind->flags & EVPL_BIND_FINISH) && bind->close_status == 0) &&
        (end->inbox || end->held || end->waiting.length || bind->recv_ring.length);
    inbox = end->inbox;
    end->inbox = end->inbox_tail = NULL;
    /* the peer hears of it, once it has a loop (an accepted end that no
     * loop took yet finds the flag when it is attached) */
    if (!chan->closed[peer->side] && peer->loop) {
        end_notify_locked(peer);
    }
    pthread_mutex_unlock(&chan->lock);

    /* off this loop's ready list: nobody adds it again (closed) */
    pthread_mutex_lock(&l->lock);
    if (end->queued) {
        for (struct inproc_end **p = &l->ready; *p; p = &(*p)->ready_next) {
            if (*p == end) {
                *p = end->ready_next;
                break;
            }
        }
        end->queued = 0;
    }
    pthread_mutex_unlock(&l->lock);

    msgs_free(evpl, inbox);
    msgs_free(evpl, end->held);
    end->held = end->held_tail = NULL;
    evpl_iovec_ring_cleanup(evpl, &end->waiting);
    bind->backend = NULL;
    while (end->parked) {
        struct parked_op *op = end->parked;

        end->parked = op->next;
        evpl__rdma_complete_later(evpl, bind, ECONNRESET, op->callback, op->private_data);
        free(op);
    }
    evpl__rdma_complete_bind(bind); /* before its DISCONNECTED */

    /* last: the peer may free the channel (this end with it) once we let go */
    pthread_mutex_lock(&chan->lock);
    last = --chan->refs == 0;
    pthread_mutex_unlock(&chan->lock);
    if (last) {
        chan_free(chan);
    }
} /* inproc_close */

/* ---- listening (on the listener's thread) ---- */

static int
inproc_listen(struct evpl *evpl, const struct evpl_protocol *protocol,
              struct evpl_listener *listener, struct evpl_address *address, void **state)
{
    const char *name = address_name(address);
    struct inproc_name *n;

    (void) evpl;
    pthread_mutex_lock(&registry_lock);
    if (registry_find(name)) {
        pthread_mutex_unlock(&registry_lock);
        return -EADDRINUSE; /* one name space for both in-process protocols */
    }
    n = calloc(1, sizeof(*n));
    if (!n) {
        pthread_mutex_unlock(&registry_lock);
        return -ENOMEM;
    }
    snprintf(n->name, sizeof(n->name), "%s", name);
    n->protocol = protocol;
    n->listener = listener;
    n->next = registry;
    registry = n;
    pthread_mutex_unlock(&registry_lock);
    *state = n;
    return 0;
} /* inproc_listen */

static void
inproc_unlisten(struct evpl *evpl, void *state)
{
    (void) evpl;
    pthread_mutex_lock(&registry_lock);
    for (struct inproc_name **p = &registry; *p; p = &(*p)->next) {
        if (*p == state) {
            *p = ((struct inproc_name *) state)->next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    free(state);
} /* inproc_unlisten */

/* The two in-process protocols differ in framing and one-sided operations. */
#define INPROC_PROTOCOL(proto_id, proto_name, is_stream, ...)                          \
    {                                                                                  \
        .id = (proto_id), .name = (proto_name), .stream = (is_stream), .connected = 1, \
        .kind = EVPL_EP_INPROC, .connect = inproc_connect, .attach = inproc_attach,    \
        .listen = inproc_listen, .unlisten = inproc_unlisten, .flush = inproc_flush,   \
        .close = inproc_close, .discard = inproc_discard, __VA_ARGS__                  \
    }

const struct evpl_protocol evpl_protocol_inproc_stream = INPROC_PROTOCOL(
    EVPL_STREAM_INPROC, "STREAM_INPROC", 1, .read_resume = inproc_read_resume, .stream_msgs = 1);

const struct evpl_protocol evpl_protocol_inproc_datagram =
    INPROC_PROTOCOL(EVPL_DATAGRAM_INPROC, "DATAGRAM_INPROC", 0, .rdma = 1,
                    .rdma_address = evpl__rdma_local_bind_address, .rdma_read = inproc_rdma_read,
                    .rdma_write = inproc_rdma_write);
