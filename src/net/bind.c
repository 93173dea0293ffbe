/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Binds: lifecycle, notifications, the send and receive API, segmentation.
 *
 * Lifecycle (DESIGN §5): evpl_close marks the bind closing and arms its
 * close deferral, which shuts the transport down at the end of the pass;
 * the bind then waits on evpl->closing until the next full pass, which
 * delivers DISCONNECTED (last callback) and frees it.  So no callback ever
 * runs inside the API call that caused it, and any callback may close any
 * bind, its own included.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/hold.h"
#include "net/net.h"

/* Receive-ring level above which a stream stops reading (back-pressure). */
#define RECV_LIMIT_DEFAULT (64ull * 1024 * 1024)

uint64_t
evpl__bind_recv_limit(const struct evpl_bind *bind)
{
    uint64_t limit = evpl_shared->config->stream_recv_limit ? evpl_shared->config->stream_recv_limit
                                                            : RECV_LIMIT_DEFAULT;

    return bind && bind->recv_limit && bind->recv_limit < limit ? bind->recv_limit : limit;
} /* evpl__bind_recv_limit */

static void
notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n)
{
    bind->notify_callback(evpl, bind, n, bind->private_data);
} /* notify */

/* Nothing left to hand to the transport (evpl_finish may close). */
static int
send_idle(const struct evpl_bind *bind)
{
    return bind->send_ring.length == 0 && evpl_dgram_ring_empty(&bind->dgram_send) &&
           !(bind->protocol->send_pending && bind->protocol->send_pending(bind));
} /* send_idle */

static void flush_deferral(struct evpl *evpl, void *arg);
static void close_deferral(struct evpl *evpl, void *arg);
static void unhold_deferral(struct evpl *evpl, void *arg);

#define RING_START 16

static inline uint32_t
ring_start(uint32_t configured)
{
    return configured < RING_START ? configured : RING_START;
}

struct evpl_bind *
evpl__bind_alloc(struct evpl *evpl, const struct evpl_protocol *protocol,
                 evpl_notify_callback_t notify_cb, evpl_segment_callback_t segment,
                 void *private_data)
{
    struct evpl_bind *bind = evpl__zalloc(sizeof(*bind));
    const struct evpl_global_config *cfg = evpl_shared->config;

    bind->protocol = protocol;
    bind->evpl = evpl;
    bind->notify_callback = notify_cb;
    bind->segment_callback = protocol->stream ? segment : NULL;
    bind->private_data = private_data;
    bind->event.fd = -1;
    /* Rings start small and double on demand (the configured sizes cap
     * the start), and take no memory until first used: 10,000 idle
     * connections must not cost 10,000 x 64 KiB. */
    evpl_iovec_ring_init(&bind->send_ring, ring_start(cfg->iovec_ring_size));
    evpl_dgram_ring_init(&bind->dgram_send, ring_start(cfg->dgram_ring_size));
    evpl_iovec_ring_init(&bind->recv_ring, ring_start(cfg->iovec_ring_size));
    evpl_deferral_init(&bind->flush, flush_deferral, bind);
    evpl_deferral_init(&bind->close, close_deferral, bind);
    evpl_deferral_init(&bind->unhold, unhold_deferral, bind);

    bind->next = evpl->binds;
    if (bind->next) {
        bind->next->prev = bind;
    }
    evpl->binds = bind;
    return bind;
} /* evpl__bind_alloc */

/* Drop every queued datagram descriptor's address reference. */
static void
dgrams_clear(struct evpl_bind *bind)
{
    while (!evpl_dgram_ring_empty(&bind->dgram_send)) {
        evpl__address_release(evpl_dgram_ring_front(&bind->dgram_send)->addr);
        evpl_dgram_ring_pop(&bind->dgram_send);
    }
} /* dgrams_clear */

static void
bind_free(struct evpl *evpl, struct evpl_bind *bind)
{
    evpl__resolve_forget(bind);
    free(bind->peer_name);
    evpl_remove_timer(evpl, &bind->retry);
    if (bind->prev) {
        bind->prev->next = bind->next;
    } else {
        evpl->binds = bind->next;
    }
    if (bind->next) {
        bind->next->prev = bind->prev;
    }
    evpl_remove_deferral(evpl, &bind->flush);
    evpl_remove_deferral(evpl, &bind->close);
    evpl_remove_deferral(evpl, &bind->unhold);
    evpl_iovec_ring_cleanup(evpl, &bind->send_ring);
    evpl_iovec_ring_cleanup(evpl, &bind->recv_ring);
    dgrams_clear(bind);
    evpl_dgram_ring_cleanup(&bind->dgram_send);
    evpl__address_release(bind->local);
    evpl__address_release(bind->remote);
    free(bind);
} /* bind_free */

static void
close_request(struct evpl *evpl, struct evpl_bind *bind, int status)
{
    if (bind->flags & (EVPL_BIND_CLOSING | EVPL_BIND_DISCONNECTED)) {
        return;
    }
    bind->flags |= EVPL_BIND_CLOSING;
    if (status && !bind->close_status) {
        bind->close_status = status;
    }
    evpl_defer(evpl, &bind->close);
} /* close_request */

/* End of the pass that closed the bind: release the transport and data. */
static void
close_deferral(struct evpl *evpl, void *arg)
{
    struct evpl_bind *bind = arg;

    if (bind->flags & EVPL_BIND_TRANSPORT_UP) {
        bind->flags &= ~EVPL_BIND_TRANSPORT_UP;
        bind->protocol->close(evpl, bind);
    }
    evpl_remove_deferral(evpl, &bind->flush);
    /* queued output is discarded (abortive close); unconsumed input stays
     * readable until DISCONNECTED returns (the last bytes a peer sent
     * before closing are not lost to a reader that had paused) */
    evpl_iovec_ring_consume(evpl, &bind->send_ring, bind->send_ring.length);
    dgrams_clear(bind);

    bind->next_closing = evpl->closing;
    evpl->closing = bind;
} /* close_deferral */

/* Core, on a full pass: DISCONNECTED for the binds closed earlier. */
void
evpl__binds_finalize(struct evpl *evpl)
{
    struct evpl_bind *bind, *next;

    bind = evpl->closing;
    evpl->closing = NULL;
    for (; bind; bind = next) {
        struct evpl_notify n = {.notify_type = EVPL_NOTIFY_DISCONNECTED,
                                .notify_status = bind->close_status};

        next = bind->next_closing;
        bind->flags |= EVPL_BIND_DISCONNECTED;
        notify(evpl, bind, &n);
        bind_free(evpl, bind);
    }
} /* evpl__binds_finalize */

void
evpl__binds_close_all(struct evpl *evpl)
{
    /* pump: close deferrals, then DISCONNECTED on the following full pass
     * (binds created meanwhile are refused: a client that reconnects from
     * its DISCONNECTED callback would keep this going for ever) */
    evpl->destroying = 1;
    while (evpl->binds) {
        for (struct evpl_bind *b = evpl->binds; b; b = b->next) {
            close_request(evpl, b, 0);
        }
        evpl_continue(evpl);
    }
} /* evpl__binds_close_all */

EVPL_API void
evpl_close(struct evpl *evpl, struct evpl_bind *bind)
{
    EVPL_OWNER_ONLY(evpl);
    /* abortive even after evpl_finish: queued data is dropped, so the
     * transport must not end it with an orderly shutdown */
    if (!(bind->flags & (EVPL_BIND_CLOSING | EVPL_BIND_DISCONNECTED))) {
        bind->flags &= ~EVPL_BIND_FINISH;
    }
    close_request(evpl, bind, 0);
} /* evpl_close */

EVPL_API void
evpl_finish(struct evpl *evpl, struct evpl_bind *bind)
{
    EVPL_OWNER_ONLY(evpl);
    if (bind->flags & (EVPL_BIND_CLOSING | EVPL_BIND_DISCONNECTED)) {
        return;
    }
    bind->flags |= EVPL_BIND_FINISH;
    if (send_idle(bind)) {
        close_request(evpl, bind, 0);
        return;
    }
    /* otherwise evpl__bind_sent closes once the queue drains (a flush now:
     * a transport may hold frames back that a finish lets go) */
    evpl_defer(evpl, &bind->flush);
} /* evpl_finish */

EVPL_API int
evpl_bind_is_closing(struct evpl_bind *bind)
{
    return (bind->flags & (EVPL_BIND_CLOSING | EVPL_BIND_FINISH)) != 0;
} /* evpl_bind_is_closing */

static void segment(struct evpl *evpl, struct evpl_bind *bind);

void
evpl__bind_fail(struct evpl *evpl, struct evpl_bind *bind, int status)
{
    if (bind->unhold.armed && !(bind->flags & (EVPL_BIND_CLOSING | EVPL_BIND_RECV_HELD))) {
        /* a hold was released and what it kept not yet delivered: it is,
         * before DISCONNECTED, as if the deferral had run first (a hold
         * taken again stops it).  Messages still held when the peer is
         * done are dropped with the bind (hold.h).  Nothing sent in
         * answer could leave: the bind closes now, so sends are dropped
         * at once instead of queued */
        evpl_remove_deferral(evpl, &bind->unhold);
        bind->flags |= EVPL_BIND_RECV_DRAIN;
        if (bind->recv_ring.length) {
            segment(evpl, bind);
        }
        bind->flags &= ~EVPL_BIND_RECV_DRAIN; /* a finishing bind sends on */
    }
    /* a stream's send fails with EPIPE once the peer has reset it: whether
     * the send or the receive notices first is timing (and the transport),
     * the cause is the same */
    if (status == -EPIPE && bind->protocol->stream) {
        status = -ECONNRESET;
    }
    if (status == 0 && (bind->flags & EVPL_BIND_FINISH) && !(bind->flags & EVPL_BIND_CLOSING) &&
        !send_idle(bind)) {
        /* the peer's EOF ends only its direction: a finish still hands
         * every queued byte over (net.md §14 statements 9 and 10; a peer
         * that shuts down its write side after a request still reads the
         * reply), then closes; a peer that is gone fails the sends */
        return;
    }
    close_request(evpl, bind, status);
} /* evpl__bind_fail */

void
evpl__bind_connected(struct evpl *evpl, struct evpl_bind *bind)
{
    struct evpl_notify n = {.notify_type = EVPL_NOTIFY_CONNECTED};

    if (bind->flags & (EVPL_BIND_CONNECTED | EVPL_BIND_CLOSING)) {
        return;
    }
    bind->flags |= EVPL_BIND_CONNECTED;
    notify(evpl, bind, &n);
    if (!send_idle(bind)) {
        evpl_defer(evpl, &bind->flush);
    }
} /* evpl__bind_connected */

/* ---- sending ---- */

static void
flush_deferral(struct evpl *evpl, void *arg)
{
    struct evpl_bind *bind = arg;

    if ((bind->flags & EVPL_BIND_TRANSPORT_UP) && !(bind->flags & EVPL_BIND_CLOSING)) {
        bind->protocol->flush(evpl, bind);
    }
} /* flush_deferral */

void
evpl__bind_sent(struct evpl *evpl, struct evpl_bind *bind, uint64_t bytes, uint64_t msgs)
{
    if ((bind->flags & EVPL_BIND_SEND_NOTIFY) && (bytes || msgs) &&
        !(bind->flags & EVPL_BIND_CLOSING)) {
        struct evpl_notify n = {.notify_type = EVPL_NOTIFY_SENT};

        n.sent.bytes = bytes;
        n.sent.msgs = msgs;
        notify(evpl, bind, &n);
    }
    if ((bind->flags & EVPL_BIND_FINISH) && send_idle(bind)) {
        close_request(evpl, bind, 0);
    }
} /* evpl__bind_sent */

EVPL_API void
evpl_bind_request_send_notifications(struct evpl *evpl, struct evpl_bind *bind)
{
    EVPL_OWNER_ONLY(evpl);
    bind->flags |= EVPL_BIND_SEND_NOTIFY;
} /* evpl_bind_request_send_notifications */

/* Record a message boundary: datagrams always, streams when segmented. */
static void
queue_message(struct evpl_bind *bind, uint32_t niov, uint32_t length, struct evpl_address *addr)
{
    struct evpl_dgram *d;

    bind->rx_since_send = 0; /* it answers: not a one-way bulk receiver */
    if (bind->protocol->stream && !bind->segment_callback && !bind->protocol->stream_msgs) {
        return; /* upstream keeps one per send forever here (quirk 12) */
    }
    d = evpl_dgram_ring_push(&bind->dgram_send);
    d->niov = niov;
    d->length = length;
    d->addr = addr ? evpl__address_ref(addr) : NULL;
} /* queue_message */

/* Sends are dropped on a closing bind; also reject misuse by protocol. */
static int
send_allowed(struct evpl_bind *bind, struct evpl_address *addr, int to)
{
    if (bind->flags & (EVPL_BIND_CLOSING | EVPL_BIND_DISCONNECTED | EVPL_BIND_RECV_DRAIN)) {
        /* (draining: the messages a hold kept go to a bind about to
         * close, so what answers them can never be sent) */
        evpl_log_debug("net", "send on a closing bind dropped");
        return 0;
    }
    if (!bind->protocol->connected && !addr) {
        evpl_log_error("net", "%s on an unconnected %s bind needs a destination: dropped",
                       to ? "sendto" : "send", bind->protocol->name);
        return 0;
    }
    return 1;
} /* send_allowed */

/* No memory to copy a send into.  A datagram is dropped (the peer cannot
 * tell it from a lost one); a stream would get a hole in the middle, so
 * the bind is closed instead (DISCONNECTED -ENOMEM). */
static void
send_no_memory(struct evpl *evpl, struct evpl_bind *bind, unsigned int length)
{
    if (bind->protocol->stream) {
        evpl_log_error("net", "send of %u bytes: no buffer memory: closing", length);
        evpl__bind_fail(evpl, bind, -ENOMEM);
    } else {
        evpl_log_error("net", "send of %u bytes: no buffer memory, dropped", length);
    }
} /* send_no_memory */

static void
send_copy(struct evpl *evpl, struct evpl_bind *bind, struct evpl_address *addr, const void *buffer,
          unsigned int length)
{
    struct evpl_iovec stack[4], *iov = stack;
    unsigned int max = (unsigned int) (length / evpl__buffer_size) + 1;
    int n, i;
    const char *src = buffer;

    if (length == 0 && bind->protocol->stream) {
        return; /* an empty stream send is nothing (it would queue an empty message) */
    }
    if (max > 4) {
        iov = malloc(max * sizeof(*iov));
        if (!iov) {
            send_no_memory(evpl, bind, length);
            return;
        }
    }
    n = evpl_iovec_alloc(evpl, length, 0, max, 0, iov);
    if (n < 0) {
        send_no_memory(evpl, bind, length);
        if (iov != stack) {
            free(iov);
        }
        return;
    }
    for (i = 0; i < n; i++) {
        memcpy(iov[i].data, src, iov[i].length);
        src += iov[i].length;
        evpl_iovec_ring_append(evpl, &bind->send_ring, &iov[i]);
    }
    queue_message(bind, (uint32_t) n, length, addr);
    if (iov != stack) {
        free(iov);
    }
    evpl_defer(evpl, &bind->flush);
} /* send_copy */

/* iovecs that hold fewer than length bytes are a program bug (net.md §14
 * statement 37), whether or not the send could go anywhere */
static void
check_send_length(const struct evpl_iovec *iovecs, int nbufvecs, int length)
{
    uint64_t have = 0;

    for (int i = 0; i < nbufvecs; i++) {
        have += iovecs[i].length;
    }
    if (nbufvecs > 0 && (length < 0 || have < (uint64_t) length)) {
        evpl_bug("net", "evpl_sendv: iovecs hold %llu bytes, %d requested",
                 (unsigned long long) have, length);
    }
} /* check_send_length */

static void
send_iovecs(struct evpl *evpl, struct evpl_bind *bind, struct evpl_address *addr,
            struct evpl_iovec *iovecs, int nbufvecs, int length, unsigned int flags)
{
    int take = flags & EVPL_SEND_FLAG_TAKE_REF;
    int used = 0, i;
    uint32_t left;

    if (nbufvecs <= 0) {
        return;
    }
    check_send_length(iovecs, nbufvecs, length);
    if (!send_allowed(bind, addr, addr != NULL)) {
        if (take) {
            evpl_iovecs_release_internal(evpl, iovecs, nbufvecs);
        }
        return;
    }

    left = (uint32_t) length;
    for (i = 0; i < nbufvecs; i++) {
        struct evpl_iovec v;

        if (left == 0) {
            if (take) {
                evpl_iovec_release_internal(evpl, &iovecs[i]);
            }
            continue;
        }
        if (take) {
            evpl_iovec_move_segment(&v, &iovecs[i], 0,
                                    iovecs[i].length < left ? iovecs[i].length : left);
        } else {
            evpl_iovec_clone_segment(&v, &iovecs[i], 0,
                                     iovecs[i].length < left ? iovecs[i].length : left);
        }
        left -= v.length;
        if (v.length) {
            used++;
        }
        evpl_iovec_ring_append(evpl, &bind->send_ring, &v);
    }
    if (length == 0 && bind->protocol->stream) {
        return; /* an empty stream send is nothing */
    }
    queue_message(bind, (uint32_t) used, (uint32_t) length, addr);
    evpl_defer(evpl, &bind->flush);
} /* send_iovecs */

EVPL_API void
evpl_send(struct evpl *evpl, struct evpl_bind *bind, const void *buffer, unsigned int length)
{
    EVPL_OWNER_ONLY(evpl);
    if (!send_allowed(bind, bind->remote, 0)) {
        return;
    }
    send_copy(evpl, bind, NULL, buffer, length);
} /* evpl_send */

EVPL_API void
evpl_sendv(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec *iovecs, int nbufvecs,
           int length, unsigned int flags)
{
    EVPL_OWNER_ONLY(evpl);
    if (!bind->protocol->connected && nbufvecs > 0) {
        /* unconnected binds need a destination */
        check_send_length(iovecs, nbufvecs, length);
        send_allowed(bind, NULL, 0);
        if (flags & EVPL_SEND_FLAG_TAKE_REF) {
            evpl_iovecs_release_internal(evpl, iovecs, nbufvecs);
        }
        return;
    }
    send_iovecs(evpl, bind, NULL, iovecs, nbufvecs, length, flags);
} /* evpl_sendv */

EVPL_API void
evpl_sendto(struct evpl *evpl, struct evpl_bind *bind, struct evpl_address *address,
            const void *buffer, unsigned int length)
{
    EVPL_OWNER_ONLY(evpl);
    if (!send_allowed(bind, bind->protocol->connected ? bind->remote : address, 1)) {
        return;
    }
    send_copy(evpl, bind, bind->protocol->connected ? NULL : address, buffer, length);
} /* evpl_sendto */

EVPL_API void
evpl_sendtov(struct evpl *evpl, struct evpl_bind *bind, struct evpl_address *address,
             struct evpl_iovec *iovecs, int nbufvecs, int length, unsigned int flags)
{
    EVPL_OWNER_ONLY(evpl);
    if (bind->protocol->connected) {
        send_iovecs(evpl, bind, NULL, iovecs, nbufvecs, length, flags);
        return;
    }
    if (!address) {
        check_send_length(iovecs, nbufvecs, length);
        send_allowed(bind, NULL, 1);
        if (flags & EVPL_SEND_FLAG_TAKE_REF) {
            evpl_iovecs_release_internal(evpl, iovecs, nbufvecs);
        }
        return;
    }
    send_iovecs(evpl, bind, address, iovecs, nbufvecs, length, flags);
} /* evpl_sendtov */

EVPL_API void
evpl_sendtoep(struct evpl *evpl, struct evpl_bind *bind, struct evpl_endpoint *endpoint,
              const void *buffer, unsigned int length)
{
    EVPL_OWNER_ONLY(evpl);
    struct evpl_address *a = NULL;

    if (!bind->protocol->connected) {
        a = endpoint ? evpl__endpoint_resolve(endpoint) : NULL;
        if (!a) {
            evpl_log_error("net", "sendtoep: cannot resolve the destination: dropped");
            return;
        }
    }
    evpl_sendto(evpl, bind, a, buffer, length);
    evpl__address_release(a);
} /* evpl_sendtoep */

EVPL_API void
evpl_sendtoepv(struct evpl *evpl, struct evpl_bind *bind, struct evpl_endpoint *endpoint,
               struct evpl_iovec *iovecs, int nbufvecs, int length, unsigned int flags)
{
    EVPL_OWNER_ONLY(evpl);
    struct evpl_address *a = NULL;

    if (!bind->protocol->connected) {
        a = endpoint ? evpl__endpoint_resolve(endpoint) : NULL;
    }
    evpl_sendtov(evpl, bind, a, iovecs, nbufvecs, length, flags);
    evpl__address_release(a);
} /* evpl_sendtoepv */

/* ---- receiving: streams ---- */

static int
stream_ok(struct evpl *evpl, struct evpl_bind *bind, const void *buf, int segmented_ok)
{
    if (!evpl || !bind || !buf || !bind->protocol->stream ||
        (!segmented_ok && bind->segment_callback)) {
        errno = EINVAL;
        return 0;
    }
    return 1;
} /* stream_ok */

/* The receive ring drained enough: resume a paused reader. */
static void
maybe_resume(struct evpl *evpl, struct evpl_bind *bind)
{
    if ((bind->flags & EVPL_BIND_READ_PAUSED) &&
        bind->recv_ring.length <= evpl__bind_recv_limit(bind) / 2) {
        bind->flags &= ~EVPL_BIND_READ_PAUSED;
        if ((bind->flags & EVPL_BIND_TRANSPORT_UP) && bind->protocol->read_resume) {
            bind->protocol->read_resume(evpl, bind);
        }
    }
} /* maybe_resume */

EVPL_API void
evpl__bind_set_recv_limit(struct evpl *evpl, struct evpl_bind *bind, uint64_t bytes)
{
    EVPL_OWNER_ONLY(evpl);
    bind->recv_limit = bytes;
    maybe_resume(evpl, bind); /* (raised: a pause may be over) */
} /* evpl__bind_set_recv_limit */

EVPL_API void
evpl__bind_compact_recv(struct evpl *evpl, struct evpl_bind *bind, int park)
{
    EVPL_OWNER_ONLY(evpl);
    if (!bind->protocol->stream || !park) {
        bind->flags &= ~EVPL_BIND_RECV_PARK;
        return;
    }
    bind->flags |= EVPL_BIND_RECV_PARK;
    evpl__iovec_ring_compact_all(evpl, &bind->recv_ring);
} /* evpl__bind_compact_recv */

/* Copy up to len bytes from the front of the ring without consuming. */
uint64_t
evpl__ring_copy(struct evpl_iovec_ring *r, void *buffer, uint64_t len)
{
    uint64_t done = 0;
    uint32_t i, n = evpl_iovec_fifo_count(&r->fifo);

    for (i = 0; i < n && done < len; i++) {
        struct evpl_iovec *v = evpl_iovec_fifo_at(&r->fifo, i);
        uint64_t chunk = v->length < len - done ? v->length : len - done;

        memcpy((char *) buffer + done, v->data, chunk);
        done += chunk;
    }
    return done;
} /* evpl__ring_copy */

EVPL_API int
evpl_peek(struct evpl *evpl, struct evpl_bind *bind, void *buffer, int length)
{
    EVPL_OWNER_ONLY(evpl);
    if (!stream_ok(evpl, bind, buffer, 1) || length <= 0) {
        errno = EINVAL;
        return -1;
    }
    return (int) evpl__ring_copy(&bind->recv_ring, buffer, (uint64_t) length);
} /* evpl_peek */

EVPL_API int
evpl_peekv(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec *iovecs, int maxiovecs,
           int length)
{
    EVPL_OWNER_ONLY(evpl);
    uint32_t i, n;
    uint64_t done = 0;
    int out = 0;

    if (!stream_ok(evpl, bind, iovecs, 1) || maxiovecs <= 0 || length <= 0) {
        errno = EINVAL;
        return -1;
    }
    n = evpl_iovec_fifo_count(&bind->recv_ring.fifo);
    for (i = 0; i < n && out < maxiovecs && done < (uint64_t) length; i++) {
        struct evpl_iovec *v = evpl_iovec_fifo_at(&bind->recv_ring.fifo, i);

        iovecs[out] = *v; /* borrowed view: no reference */
        if (v->length > (uint64_t) length - done) {
            iovecs[out].length = (unsigned int) ((uint64_t) length - done);
        }
        done += iovecs[out].length;
        out++;
    }
    return out;
} /* evpl_peekv */

EVPL_API int
evpl_consume(struct evpl *evpl, struct evpl_bind *bind, int length)
{
    EVPL_OWNER_ONLY(evpl);
    if (length < 0 || (uint64_t) length > bind->recv_ring.length) {
        return -1;
    }
    evpl_iovec_ring_consume(evpl, &bind->recv_ring, (uint64_t) length);
    maybe_resume(evpl, bind);
    return 0;
} /* evpl_consume */

EVPL_API int
evpl_recv(struct evpl *evpl, struct evpl_bind *bind, void *buffer, int maxlength,
          unsigned int flags)
{
    EVPL_OWNER_ONLY(evpl);
    uint64_t n;

    if (!stream_ok(evpl, bind, buffer, 0) || maxlength <= 0) {
        errno = EINVAL;
        return -1;
    }
    if ((flags & EVPL_RECV_FLAG_ALL_OR_NONE) && bind->recv_ring.length < (uint64_t) maxlength) {
        return 0;
    }
    n = evpl__ring_copy(&bind->recv_ring, buffer, (uint64_t) maxlength);
    evpl_iovec_ring_consume(evpl, &bind->recv_ring, n);
    maybe_resume(evpl, bind);
    return (int) n;
} /* evpl_recv */

/*
 * Move up to maxlength bytes from the front of the ring into at most
 * maxiov owned iovecs (whole iovecs move their reference; a partial one is
 * cloned).  Returns the count and the bytes in *bytes.
 */
int
evpl__ring_take(struct evpl *evpl, struct evpl_iovec_ring *r, struct evpl_iovec *out, int maxiov,
                uint64_t maxlength, uint64_t *bytes)
{
    int n = 0;
    uint64_t done = 0;

    while (n < maxiov && done < maxlength && !evpl_iovec_fifo_empty(&r->fifo)) {
        struct evpl_iovec *f = evpl_iovec_fifo_front(&r->fifo);

        if (f->length <= maxlength - done) {
            done += f->length;
            r->length -= f->length;
            out[n++] = *f; /* the ring's reference moves out */
            evpl_iovec_fifo_pop(&r->fifo);
        } else {
            unsigned int part = (unsigned int) (maxlength - done);

            evpl_iovec_clone_segment(&out[n++], f, 0, part);
            evpl_iovec_ring_consume(evpl, r, part);
            done += part;
        }
    }
    *bytes = done;
    return n;
} /* evpl__ring_take */

EVPL_API int
evpl_recvv(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec *iovecs, int maxiovecs,
           int maxlength, int *length)
{
    EVPL_OWNER_ONLY(evpl);
    uint64_t bytes;
    int n;

    if (length) {
        *length = 0;
    }
    if (!stream_ok(evpl, bind, iovecs, 0) || maxiovecs <= 0 || maxlength <= 0) {
        errno = EINVAL;
        return -1;
    }
    n = evpl__ring_take(evpl, &bind->recv_ring, iovecs, maxiovecs, (uint64_t) maxlength, &bytes);
    if (length) {
        *length = (int) bytes;
    }
    maybe_resume(evpl, bind);
    return n;
} /* evpl_recvv */

/* Deliver one message (iov owned by the callback).  */
static void
deliver_msg(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec *iov, int niov,
            unsigned int length, struct evpl_address *addr)
{
    struct evpl_notify n = {.notify_type = EVPL_NOTIFY_RECV_MSG};

    n.recv_msg.iovec = iov;
    n.recv_msg.niov = (unsigned int) niov;
    n.recv_msg.length = length;
    n.recv_msg.addr = addr;
    notify(evpl, bind, &n);
} /* deliver_msg */

void
evpl__bind_received_msg(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec *iov, int niov,
                        unsigned int length, struct evpl_address *addr)
{
    if (bind->flags & EVPL_BIND_CLOSING) {
        evpl_iovecs_release_internal(evpl, iov, niov);
        return;
    }
    deliver_msg(evpl, bind, iov, niov, length, addr);
} /* evpl__bind_received_msg */

/* Receive low-water marks for long messages (see the rcvlowat op). */
#define LOWAT_MIN (64u * 1024)
#define LOWAT_MAX (1024u * 1024)

/* Run the segment callback over what is buffered (net.md §9). */
static void
segment(struct evpl *evpl, struct evpl_bind *bind)
{
    struct evpl_iovec stack[16], *iov = stack;
    int cap = 16, delivered = 0;
    uint64_t max = evpl_shared->config->max_msg_size;

    /* after a message the callback is asked again, even with nothing left
     * buffered (net.md §9.1, as upstream: it sees an empty peek) */
    while (!(bind->flags & (EVPL_BIND_CLOSING | EVPL_BIND_RECV_HELD)) &&
           (bind->recv_ring.length || delivered)) {
        int len = bind->segment_callback(evpl, bind, bind->private_data);
        uint64_t bytes;
        int n;
        uint32_t need;

        if (len < 0) {
            evpl_log_error("net", "segment callback rejected the stream (%d): closing", len);
            close_request(evpl, bind, -EPROTO);
            break;
        }
        if (max && (uint64_t) len > max) {
            evpl_log_error("net", "message of %d bytes exceeds max_msg_size %llu: closing", len,
                           (unsigned long long) max);
            close_request(evpl, bind, -EMSGSIZE);
            break;
        }
        bind->want = (uint64_t) len;
        if (len == 0 || (uint64_t) len > bind->recv_ring.length) {
            break;
        }
        /* how many iovecs the message spans: grow the array to fit */
        need = evpl_iovec_fifo_count(&bind->recv_ring.fifo);
        if (need > (uint32_t) cap) {
            if (iov != stack) {
                free(iov);
            }
            cap = (int) need;
            iov = malloc((size_t) cap * sizeof(*iov));
            if (!iov) {
                evpl_log_error("net", "out of memory delivering a message: closing");
                close_request(evpl, bind, -ENOMEM);
                return;
            }
        }
        n = evpl__ring_take(evpl, &bind->recv_ring, iov, cap, (uint64_t) len, &bytes);
        bind->want = 0;
        bind->last_len = (uint64_t) len;
        deliver_msg(evpl, bind, iov, n, (unsigned int) len, bind->remote);
        delivered = 1;
    }
    if (iov != stack) {
        free(iov);
    }
    if (bind->protocol->rcvlowat && !(bind->flags & EVPL_BIND_CLOSING)) {
        uint64_t missing =
            bind->want > bind->recv_ring.length ? bind->want - bind->recv_ring.length : 0;

        /* waiting for a long message: be woken when (part of) the rest is
         * here; never for more than is missing, so this cannot stall */
        if (missing >= LOWAT_MIN) {
            bind->protocol->rcvlowat(evpl, bind,
                                     (uint32_t) (missing < LOWAT_MAX ? missing : LOWAT_MAX));
        } else if (bind->lowat > 1) {
            bind->protocol->rcvlowat(evpl, bind, 1);
        }
    }
} /* segment */

void
evpl__bind_received(struct evpl *evpl, struct evpl_bind *bind)
{
    if (bind->flags & EVPL_BIND_CLOSING) {
        return;
    }
    if (bind->protocol->received) {
        bind->protocol->received(evpl, bind); /* the protocol frames the bytes itself */
        return;
    }
    if (bind->segment_callback) {
        segment(evpl, bind);
    } else {
        struct evpl_notify n = {.notify_type = EVPL_NOTIFY_RECV_DATA};

        notify(evpl, bind, &n);
    }
    if (bind->flags & EVPL_BIND_RECV_PARK) {
        evpl__iovec_ring_compact_all(evpl, &bind->recv_ring); /* (what this read brought) */
    }
    if (bind->recv_ring.length > evpl__bind_recv_limit(bind)) {
        if (!bind->segment_callback || (bind->flags & EVPL_BIND_RECV_HELD)) {
            /* back-pressure: stop reading until the application drains
             * (or the module holding the receive side lets go); what
             * waits meanwhile, if it came in short pieces (an RDMA
             * receive or an io_uring chunk each), moves out of the
             * receive buffers those pieces pin */
            bind->flags |= EVPL_BIND_READ_PAUSED;
            evpl__iovec_ring_compact(evpl, &bind->recv_ring, 0);
        } else if (bind->want == 0 && !(bind->flags & EVPL_BIND_CLOSING)) {
            /* the framing cannot tell a message length from this many
             * bytes: nothing the application can consume will change that */
            evpl_log_error("net", "%llu bytes buffered without a message length: closing",
                           (unsigned long long) bind->recv_ring.length);
            close_request(evpl, bind, -EMSGSIZE);
        }
        /* a segmented bind waiting for a known larger message keeps reading */
    }
} /* evpl__bind_received */

/* ---- receive holds (hold.h) ---- */

static void
unhold_deferral(struct evpl *evpl, void *arg)
{
    struct evpl_bind *bind = arg;

    if (bind->flags & (EVPL_BIND_CLOSING | EVPL_BIND_RECV_HELD)) {
        return;
    }
    if (bind->recv_ring.length) {
        evpl__bind_received(evpl, bind);
    }
    if ((bind->flags & (EVPL_BIND_CLOSING | EVPL_BIND_RECV_HELD | EVPL_BIND_READ_PAUSED)) ==
        EVPL_BIND_READ_PAUSED) {
        /* every whole message went: what is left is part of one, which
         * a segmented bind reads on for, however long (the pause was the
         * hold's) */
        bind->flags &= ~EVPL_BIND_READ_PAUSED;
        if ((bind->flags & EVPL_BIND_TRANSPORT_UP) && bind->protocol->read_resume) {
            bind->protocol->read_resume(evpl, bind);
        }
    }
} /* unhold_deferral */

EVPL_API void
evpl__bind_hold_recv(struct evpl *evpl, struct evpl_bind *bind, int hold)
{
    if (!bind->segment_callback || bind->protocol->received) {
        return; /* not a segmented stream */
    }
    if (hold) {
        bind->flags |= EVPL_BIND_RECV_HELD;
        evpl_remove_deferral(evpl, &bind->unhold);
    } else if (bind->flags & EVPL_BIND_RECV_HELD) {
        bind->flags &= ~EVPL_BIND_RECV_HELD;
        evpl_defer(evpl, &bind->unhold);
    }
} /* evpl__bind_hold_recv */

/* ---- queries ---- */

EVPL_API void
evpl_bind_get_local_address(struct evpl_bind *bind, char *str, int len)
{
    evpl__address_format(bind->local, str, len);
} /* evpl_bind_get_local_address */

EVPL_API void
evpl_bind_get_remote_address(struct evpl_bind *bind, char *str, int len)
{
    evpl__address_format(bind->remote, str, len);
} /* evpl_bind_get_remote_address */

EVPL_API enum evpl_protocol_id
evpl_bind_get_protocol(struct evpl_bind *bind)
{
    return bind->protocol->id;
} /* evpl_bind_get_protocol */

EVPL_API int
evpl_bind_is_rdma(struct evpl_bind *bind)
{
    return bind->protocol->rdma;
} /* evpl_bind_is_rdma */

/* ---- creating binds ---- */

/* Free a bind that never reached the application (no callback owed). */
static void
bind_discard(struct evpl *evpl, struct evpl_bind *bind)
{
    bind_free(evpl, bind);
} /* bind_discard */

EVPL_API struct evpl_bind *
evpl_connect(struct evpl *evpl, enum evpl_protocol_id protocol_id,
             struct evpl_endpoint *local_endpoint, struct evpl_endpoint *remote_endpoint,
             evpl_notify_callback_t notify_callback, evpl_segment_callback_t segment_callback,
             void *private_data)
{
    EVPL_OWNER_ONLY(evpl);
    const struct evpl_protocol *p = evpl__protocol(protocol_id);
    struct evpl_address *remote, *local = NULL;
    struct evpl_bind *bind;
    int rc;

    if (!p) {
        evpl_log_error("net", "evpl_connect: protocol %d is not available", (int) protocol_id);
        return NULL;
    }
    if (evpl->destroying) {
        evpl_log_error("net", "evpl_connect: the loop is being destroyed");
        return NULL;
    }
    if (!p->connected) {
        evpl_bug("net", "evpl_connect on the unconnected protocol %s (use evpl_bind)", p->name);
    }
    if (!remote_endpoint || remote_endpoint->kind != p->kind ||
        (local_endpoint && local_endpoint->kind != p->kind)) {
        evpl_log_error("net", "evpl_connect: endpoint kind does not match %s", p->name);
        return NULL;
    }
    /* numeric and cached addresses at once; host names off the loop */
    remote = evpl__endpoint_resolve_nonblocking(remote_endpoint);
    if (!remote && remote_endpoint->kind != EVPL_EP_NETWORK) {
        evpl_log_error("net", "evpl_connect: cannot resolve %s", remote_endpoint->text);
        return NULL;
    }
    if (local_endpoint) {
        local = evpl__endpoint_resolve(local_endpoint);
        if (!local) {
            evpl__address_release(remote);
            return NULL;
        }
    }

    bind = evpl__bind_alloc(evpl, p, notify_callback, segment_callback, private_data);
    bind->remote = remote;
    bind->local = local;
    bind->peer_name = strdup(remote_endpoint->text);
    rc = remote ? p->connect(evpl, bind) : evpl__resolve_async(evpl, bind, remote_endpoint);
    if (rc < 0) {
        /* reported asynchronously: one DISCONNECTED with the reason */
        evpl__bind_fail(evpl, bind, rc);
    }
    return bind;
} /* evpl_connect */

EVPL_API struct evpl_bind *
evpl_bind(struct evpl *evpl, enum evpl_protocol_id protocol, struct evpl_endpoint *endpoint,
          evpl_notify_callback_t callback, void *private_data)
{
    EVPL_OWNER_ONLY(evpl);
    const struct evpl_protocol *p = evpl__protocol(protocol);
    struct evpl_address *local;
    struct evpl_bind *bind;
    int rc;

    if (!p) {
        evpl_log_error("net", "evpl_bind: protocol %d is not available", (int) protocol);
        return NULL;
    }
    if (evpl->destroying) {
        evpl_log_error("net", "evpl_bind: the loop is being destroyed");
        return NULL;
    }
    if (p->connected) {
        evpl_bug("net", "evpl_bind on the connection-oriented protocol %s (use evpl_connect)",
                 p->name);
    }
    if (!endpoint || endpoint->kind != p->kind) {
        evpl_log_error("net", "evpl_bind: endpoint kind does not match %s", p->name);
        return NULL;
    }
    local = evpl__endpoint_resolve(endpoint);
    if (!local) {
        evpl_log_error("net", "evpl_bind: cannot resolve %s", endpoint->text);
        return NULL;
    }
    bind = evpl__bind_alloc(evpl, p, callback, NULL, private_data);
    bind->local = local;
    rc = p->bind(evpl, bind);
    if (rc < 0) {
        evpl_log_error("net", "evpl_bind %s: %s", endpoint->text, strerror(-rc));
        bind_discard(evpl, bind);
        return NULL;
    }
    return bind;
} /* evpl_bind */

#ifndef HAVE_TLS
/* No TLS in this build: no ALPN either. */
EVPL_API int
evpl_tls_set_alpn(const char *protocols)
{
    return -1;
} /* evpl_tls_set_alpn */

EVPL_API int
evpl_bind_set_alpn(struct evpl_bind *bind, const char *protocols)
{
    return -1;
} /* evpl_bind_set_alpn */

EVPL_API const char *
evpl_bind_get_alpn(struct evpl_bind *bind)
{
    return NULL;
} /* evpl_bind_get_alpn */
#endif
