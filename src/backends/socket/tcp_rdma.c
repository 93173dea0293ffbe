/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * EVPL_DATAGRAM_TCP_RDMA: connected datagrams and one-sided operations
 * emulated over a kernel TCP connection, in upstream's wire format
 * (rdma.md §6): every operation is a 32-byte big-endian header
 *
 *     magic "TRMA" | opcode | length | remote key | remote address | id
 *
 * followed by length bytes for SEND, READ_REPLY and WRITE_REQUEST, and, as
 * upstream sends it, by a 4-byte big-endian read length for READ_REQUEST
 * (whose header length is 4).  The
 * peer's loop performs reads and writes against its process-local
 * registration table (net/rdma.c) and answers each request with a reply
 * or an ERROR carrying an errno; replies are matched by id.
 *
 * The TCP side is the socket stream backend's (connect, accept, reads into
 * the receive ring); this file frames what goes out and what comes in.
 * Outgoing frames queue on a wire ring of their own: the header of each
 * datagram is prepended when it leaves the bind's send queue, so sends and
 * one-sided operations keep the order they were issued in.
 */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "backends/socket/socket.h"
#include "core/sys.h"
#include "mem/mem.h"
#include "mem/ring.h"

#define TRMA_MAGIC 0x54524D41u /* "TRMA" */
#define TRMA_HDR   32u

enum {
    OP_SEND = 1,
    OP_READ_REQUEST = 2,
    OP_READ_REPLY = 3,
    OP_WRITE_REQUEST = 4,
    OP_WRITE_REPLY = 5,
    OP_ERROR = 6,
};

struct trma_hdr {
    uint32_t magic, opcode, length, key;
    uint64_t address, id;
};

/* One frame on the wire ring: its size, whether it is a message of the
 * application's (counted in SENT.msgs once written), and what of it is
 * memory we allocated to answer the peer (reply frames; counted in
 * trma.owed until written). */
struct trma_frame {
    uint64_t bytes;
    uint64_t owed;
    int user;
};

EVPL_RING_DEFINE(trma_frames, struct trma_frame)

/* A one-sided operation: waiting for its turn on the wire (pend), then for
 * its reply (ops). */
struct trma_op {
    struct trma_op *next;
    uint64_t id;
    uint64_t barrier; /* datagrams queued before it (absolute count) */
    uint32_t key, length;
    uint64_t address;
    int write;
    void (*callback)(int status, void *private_data);
    void *private_data;
    int niov;
    struct evpl_iovec iov[]; /* reads: where the data goes; writes: the
                                 payload until it goes on the wire (our
                                 references) */
};

/* Operations on the wire awaiting replies, per connection.  More wait in
 * order behind them (and the datagrams sent after them wait too).  So the
 * replies a peer of ours owes us stay far below the bound at which it
 * stops reading (below): two ends that push one-sided traffic at each
 * other both keep reading. */
#define TRMA_OPS_MAX 4096
/* what one reply we owe costs: its header, and the ring entries of header
 * and payload */
#define TRMA_REPLY_COST (TRMA_HDR + 2 * sizeof(struct evpl_iovec))

struct trma {
    struct evpl_iovec_ring wire;
    struct trma_frames frames;
    uint64_t front_done;              /* bytes of the front frame already written */
    struct trma_op *ops, *ops_tail;   /* on the wire, awaiting replies */
    struct trma_op *pend, *pend_tail; /* not on the wire yet */
    uint32_t inflight;                /* ops on the wire */
    uint64_t filled;                  /* datagrams moved onto the wire, ever */
    uint64_t next_id;
    /* a peer that sends requests but does not read our replies: when the
     * replies we owe it (owed: header bytes and iovec entries of reply
     * frames not yet written) pass the bound, its requests wait in the
     * receive ring and reading pauses until they have drained to half of
     * it.  Our own requests and messages do not count: two peers that
     * both push one-sided traffic at each other must both keep reading */
    uint64_t owed;
    int stalled;
    uint64_t oversize;    /* a datagram at the front is above max_msg_size: its length */
    uint32_t bad_targets; /* the peer's operations in a row that named no memory */
    struct evpl_deferral resume;
    struct evpl_bind *bind;
};

/* How much we may owe the peer in replies before its requests wait: the
 * receive limit, and never less than twice what a peer that keeps to our
 * own window can make us owe. */
static uint64_t
wire_bound(void)
{
    uint64_t limit = evpl__bind_recv_limit(NULL), least = 2ull * TRMA_OPS_MAX * TRMA_REPLY_COST;

    return limit > least ? limit : least;
} /* wire_bound */

static struct trma *
trma_of(const struct evpl_bind *bind)
{
    return bind->backend;
} /* trma_of */

/* ---- sending ---- */

static void
hdr_encode(unsigned char *p, uint32_t opcode, uint32_t length, uint32_t key, uint64_t address,
           uint64_t id)
{
    uint32_t v32;
    uint64_t v64;

    v32 = htobe32(TRMA_MAGIC);
    memcpy(p, &v32, 4);
    v32 = htobe32(opcode);
    memcpy(p + 4, &v32, 4);
    v32 = htobe32(length);
    memcpy(p + 8, &v32, 4);
    v32 = htobe32(key);
    memcpy(p + 12, &v32, 4);
    v64 = htobe64(address);
    memcpy(p + 16, &v64, 8);
    v64 = htobe64(id);
    memcpy(p + 24, &v64, 8);
} /* hdr_encode */

static void
hdr_decode(const unsigned char *p, struct trma_hdr *h)
{
    uint32_t v32;
    uint64_t v64;

    memcpy(&v32, p, 4);
    h->magic = be32toh(v32);
    memcpy(&v32, p + 4, 4);
    h->opcode = be32toh(v32);
    memcpy(&v32, p + 8, 4);
    h->length = be32toh(v32);
    memcpy(&v32, p + 12, 4);
    h->key = be32toh(v32);
    memcpy(&v64, p + 16, 8);
    h->address = be64toh(v64);
    memcpy(&v64, p + 24, 8);
    h->id = be64toh(v64);
} /* hdr_decode */

/* Queue a header for a frame of payload bytes that follow it. */
static int
wire_header(struct evpl *evpl, struct trma *t, uint32_t opcode, uint32_t length, uint32_t key,
            uint64_t address, uint64_t id, uint64_t payload, int user)
{
    struct evpl_iovec h;
    struct trma_frame *f;

    if (evpl_iovec_alloc(evpl, TRMA_HDR, 0, 1, 0, &h) != 1) {
        return -ENOMEM;
    }
    hdr_encode(h.data, opcode, length, key, address, id);
    evpl_iovec_ring_append(evpl, &t->wire, &h);
    f = trma_frames_push(&t->frames);
    f->bytes = TRMA_HDR + payload;
    f->user = user;
    f->owed = 0;
    if (opcode == OP_READ_REPLY || opcode == OP_WRITE_REPLY || opcode == OP_ERROR) {
        /* the header, and the ring entries of header and payload */
        f->owed = TRMA_REPLY_COST;
        t->owed += f->owed;
    }
    return 0;
} /* wire_header */

/* Payloads up to this size are copied behind their header: consecutive
 * small messages then sit back to back in one buffer and go to the kernel
 * as one iovec (the header would otherwise split every message in two). */
#define TRMA_INLINE 512

/* The application's queued datagrams go onto the wire, each behind a SEND
 * header, up to the first operation still waiting for its turn (which was
 * issued before the rest). */
static int
wire_fill(struct evpl *evpl, struct evpl_bind *bind)
{
    struct trma *t = trma_of(bind);

    while (!evpl_dgram_ring_empty(&bind->dgram_send) &&
           (!t->pend || t->filled < t->pend->barrier)) {
        struct evpl_dgram *d = evpl_dgram_ring_front(&bind->dgram_send);
        struct evpl_iovec f;
        uint64_t limit = evpl_shared->config->max_msg_size;

        if (limit && d->length > limit) {
            /* the peer would close on it (as RDMA CM's receiver would on
             * a datagram over its receive size): what came before goes,
             * then the sender ends, with the reason (trma_flush; helper-106:
             * the peer broke the connection) */
            t->oversize = d->length;
            break;
        }
        if (d->length <= TRMA_INLINE &&
            evpl_iovec_alloc(evpl, TRMA_HDR + d->length, 0, 1, 0, &f) == 1) {
            struct trma_frame *fr = trma_frames_push(&t->frames);
            char *p = (char *) f.data + TRMA_HDR;

            hdr_encode(f.data, OP_SEND, d->length, 0, 0, 0);
            for (uint32_t i = 0; i < d->niov; i++) {
                struct evpl_iovec *v = evpl_iovec_fifo_front(&bind->send_ring.fifo);

                memcpy(p, v->data, v->length);
                p += v->length;
                bind->send_ring.length -= v->length;
                evpl_iovec_release_internal(evpl, v);
                evpl_iovec_fifo_pop(&bind->send_ring.fifo);
            }
            evpl_iovec_ring_append(evpl, &t->wire, &f);
            fr->bytes = TRMA_HDR + d->length;
            fr->owed = 0;
            fr->user = 1;
        } else {
            if (wire_header(evpl, t, OP_SEND, d->length, 0, 0, 0, d->length, 1) < 0) {
                return -ENOMEM;
            }
            for (uint32_t i = 0; i < d->niov; i++) {
                struct evpl_iovec *v = evpl_iovec_fifo_front(&bind->send_ring.fifo);

                bind->send_ring.length -= v->length;
                evpl_iovec_ring_append(evpl, &t->wire, v); /* the reference moves */
                evpl_iovec_fifo_pop(&bind->send_ring.fifo);
            }
        }
        evpl__address_release(d->addr);
        evpl_dgram_ring_pop(&bind->dgram_send);
        t->filled++;
    }
    return 0;
} /* wire_fill */

/* Account bytes written against the frames: *payload gets the bytes of
 * the application's messages among them (not headers, not one-sided
 * traffic); returns the messages finished. */
static uint64_t
frames_done(struct trma *t, uint64_t bytes, uint64_t *payload)
{
    uint64_t msgs = 0;

    while (bytes && !trma_frames_empty(&t->frames)) {
        struct trma_frame *f = trma_frames_front(&t->frames);
        uint64_t left = f->bytes - t->front_done;
        uint64_t chunk = bytes < left ? bytes : left;

        if (f->user) {
            uint64_t from = t->front_done > TRMA_HDR ? t->front_done : TRMA_HDR;
            uint64_t to = t->front_done + chunk;

            *payload += to > from ? to - from : 0;
        }
        bytes -= chunk;
        t->front_done += chunk;
        if (t->front_done < f->bytes) {
            break;
        }
        t->front_done = 0;
        msgs += f->user;
        t->owed -= f->owed;
        trma_frames_pop(&t->frames);
    }
    return msgs;
} /* frames_done */

static int wire_pump(struct evpl *evpl, struct evpl_bind *bind);

static void
trma_flush(struct evpl *evpl, struct evpl_bind *bind)
{
    struct trma *t = trma_of(bind);
    uint64_t payload = 0, msgs;
    int failed;

    if (!(bind->flags & EVPL_BIND_CONNECTED)) {
        return; /* CONNECTED flushes what was queued before it */
    }
    if (wire_pump(evpl, bind) < 0) {
        evpl_log_error("tcp_rdma", "no buffer memory for frame headers: closing");
        evpl__bind_fail(evpl, bind, -ENOMEM);
        return;
    }
    msgs = frames_done(t, evpl__stream_write_ring(evpl, bind, &t->wire, &failed), &payload);
    if (failed) {
        return;
    }
    if (t->stalled && t->owed <= wire_bound() / 2) {
        t->stalled = 0;
        evpl_defer(evpl, &t->resume); /* the requests waiting in the ring */
    }
    /* SENT counts the application's messages and their bytes, as on every
     * other protocol (upstream also counts frame headers and one-sided
     * traffic: net.md §10 QUIRK) */
    evpl__bind_sent(evpl, bind, payload, msgs);
    if (t->oversize && !t->wire.length && !(bind->flags & EVPL_BIND_CLOSING)) {
        evpl_log_error("tcp_rdma", "datagram of %llu bytes exceeds max_msg_size %llu: closing",
                       (unsigned long long) t->oversize,
                       (unsigned long long) evpl_shared->config->max_msg_size);
        evpl__bind_fail(evpl, bind, -EMSGSIZE);
    }
} /* trma_flush */

static int
trma_send_pending(const struct evpl_bind *bind)
{
    const struct trma *t = trma_of(bind);

    return t && (t->wire.length != 0 || t->pend);
} /* trma_send_pending */

/* ---- one-sided operations: the initiator ---- */

static void
op_complete(struct evpl *evpl, struct trma_op *op, int status)
{
    evpl_iovecs_release_internal(evpl, op->iov, op->niov);
    if (op->callback) {
        op->callback(status, op->private_data);
    }
    free(op);
} /* op_complete */

/* Unlink the operation id (NULL: no such operation). */
static struct trma_op *
op_take(struct trma *t, uint64_t id)
{
    struct trma_op *prev = NULL;

    for (struct trma_op *op = t->ops; op; prev = op, op = op->next) {
        if (op->id != id) {
            continue;
        }
        if (prev) {
            prev->next = op->next;
        } else {
            t->ops = op->next;
        }
        if (t->ops_tail == op) {
            t->ops_tail = prev;
        }
        op->next = NULL;
        t->inflight--;
        return op;
    }
    return NULL;
} /* op_take */

/* Queue an operation's request; payload (writes) moves onto the wire. */
/* A 4-byte big-endian value as a frame's payload. */
static int
wire_be32(struct evpl *evpl, struct trma *t, uint32_t value)
{
    struct evpl_iovec v;
    uint32_t be = htobe32(value);

    if (evpl_iovec_alloc(evpl, 4, 0, 1, 0, &v) != 1) {
        return -ENOMEM;
    }
    memcpy(v.data, &be, 4);
    evpl_iovec_ring_append(evpl, &t->wire, &v);
    return 0;
} /* wire_be32 */

static void
op_issue(struct evpl *evpl, struct evpl_bind *bind, int write, uint32_t key, uint64_t address,
         struct evpl_iovec *iov, int niov, int take, void (*callback)(int, void *),
         void *private_data)
{
    struct trma *t = trma_of(bind);
    uint64_t len = niov > 0 ? evpl__iovecs_length(iov, niov) : 0;
    uint64_t limit = evpl_shared->config->max_msg_size;
    struct trma_op *op = NULL;
    int keep = niov > 0 ? niov : 0;
    int err = 0;

    if (bind->flags & EVPL_BIND_CLOSING) {
        err = ECONNRESET;
    } else if (!t) {
        err = ENOTCONN; /* a host name still resolving: no connection yet */
    } else if (len > UINT32_MAX || (limit && len > limit)) {
        err = EINVAL; /* a frame the receiving end would refuse */
    } else if (!(op = malloc(sizeof(*op) + (size_t) keep * sizeof(struct evpl_iovec)))) {
        evpl_log_error("tcp_rdma", "out of memory queuing a one-sided operation: closing");
        evpl__bind_fail(evpl, bind, -ENOMEM);
        err = ENOMEM;
    }
    if (err) {
        if (take) {
            evpl_iovecs_release_internal(evpl, iov, niov);
        }
        evpl__rdma_complete_later(evpl, bind, err, callback, private_data);
        return;
    }
    op->next = NULL;
    op->id = t->next_id++;
    /* after the datagrams queued now, before those queued later */
    op->barrier = t->filled + evpl_dgram_ring_count(&bind->dgram_send);
    op->key = key;
    op->address = address;
    op->length = (uint32_t) len;
    op->write = write;
    op->callback = callback;
    op->private_data = private_data;
    op->niov = keep;
    for (int i = 0; i < niov; i++) {
        /* a read keeps its own references to fill in; a write's payload
         * goes out behind its header */
        if (take) {
            op->iov[i] = iov[i];
        } else {
            evpl_iovec_clone_segment(&op->iov[i], &iov[i], 0, iov[i].length);
        }
    }
    if (t->pend_tail) {
        t->pend_tail->next = op;
    } else {
        t->pend = op;
    }
    t->pend_tail = op;
    evpl_defer(evpl, &bind->flush); /* issued at the end of the pass */
} /* op_issue */

/* Datagrams and operations go onto the wire in the order they were
 * issued, operations while fewer than TRMA_OPS_MAX await replies. */
static int
wire_pump(struct evpl *evpl, struct evpl_bind *bind)
{
    struct trma *t = trma_of(bind);

    for (;;) {
        struct trma_op *op = t->pend;
        if (wire_fill(evpl, bind) < 0) {
            return -ENOMEM;
        }
        /* (a finishing bind waits for its frames to be written, not for
         * replies: its window is open) */
        if (!op || t->filled < op->barrier ||
            (t->inflight >= TRMA_OPS_MAX && !(bind->flags & EVPL_BIND_FINISH))) {
            return 0;
        }
        if (wire_header(evpl, t, op->write ? OP_WRITE_REQUEST : OP_READ_REQUEST,
                        op->write ? op->length : 4, op->key, op->address, op->id,
                        op->write ? op->length : 4, 0) < 0 ||
            (!op->write && wire_be32(evpl, t, op->length) < 0)) {
            return -ENOMEM;
        }
        if (op->write) {
            for (int i = 0; i < op->niov; i++) {
                evpl_iovec_ring_append(evpl, &t->wire, &op->iov[i]); /* the reference moves */
            }
            op->niov = 0;
        }
        t->pend = op->next;
        if (!t->pend) {
            t->pend_tail = NULL;
        }
        op->next = NULL;
        if (t->ops_tail) {
            t->ops_tail->next = op;
        } else {
            t->ops = op;
        }
        t->ops_tail = op;
        t->inflight++;
    }
} /* wire_pump */

static void
trma_rdma_read(struct evpl *evpl, struct evpl_bind *bind, uint32_t remote_key,
               uint64_t remote_address, struct evpl_iovec *iov, int niov,
               void (*callback)(int status, void *private_data), void *private_data)
{
    op_issue(evpl, bind, 0, remote_key, remote_address, iov, niov, 0, callback, private_data);
} /* trma_rdma_read */

static void
trma_rdma_write(struct evpl *evpl, struct evpl_bind *bind, uint32_t remote_key,
                uint64_t remote_address, struct evpl_iovec *iov, int niov, unsigned int flags,
                void (*callback)(int status, void *private_data), void *private_data)
{
    op_issue(evpl, bind, 1, remote_key, remote_address, iov, niov,
             (flags & EVPL_RDMA_FLAG_TAKE_REF) != 0, callback, private_data);
} /* trma_rdma_write */

/* ---- receiving ---- */

static int
has_payload(uint32_t opcode)
{
    return opcode == OP_SEND || opcode == OP_READ_REPLY || opcode == OP_WRITE_REQUEST ||
           opcode == OP_READ_REQUEST;
} /* has_payload */

/* Answer with ERROR: the peer's operation fails with err. */
static int
reply_error(struct evpl *evpl, struct trma *t, const struct trma_hdr *h, int err)
{
    return wire_header(evpl, t, OP_ERROR, (uint32_t) err, h->key, h->address, h->id, 0, 0);
} /* reply_error */

/* A peer's operation named memory that is not registered: it fails with
 * ERROR(EINVAL) and the connection goes on (rdma.md statement 4), but not
 * for ever: a peer guessing keys and addresses (to reach other
 * connections' buffers) is closed with -EACCES at the TRMA_BAD_TARGETS-th
 * in a row (one that names memory starts the count again).  An RDMA
 * device ends the queue pair at the first. */
#define TRMA_BAD_TARGETS 32

static int
bad_target(struct evpl *evpl, struct trma *t, const struct trma_hdr *h)
{
    if (++t->bad_targets >= TRMA_BAD_TARGETS) {
        evpl_log_error("tcp_rdma", "peer named unregistered memory %u times: closing",
                       t->bad_targets);
        return -EACCES;
    }
    return reply_error(evpl, t, h, EINVAL);
} /* bad_target */

/* A view of registered memory with no count of its own: slabs are never
 * unmapped, and releasing a GLOBAL-flagged view is a no-op. */
static struct evpl_iovec_ref slab_view = {.flags = EVPL_IOVEC_FLAG_GLOBAL};

/* The peer reads our memory: READ_REPLY straight from it, read when the
 * reply is written to the socket (as an RDMA device reads it when it
 * sends the response), so a peer's reads cost us no copy and no buffer
 * memory, however much it asks for. */
static int
serve_read(struct evpl *evpl, struct trma *t, const struct trma_hdr *h, uint32_t len)
{
    uint64_t limit = evpl_shared->config->max_msg_size;
    char *src = evpl__rdma_local_target(h->key, h->address, len);
    struct evpl_iovec v;

    if (!src) {
        return bad_target(evpl, t, h);
    }
    if (limit && len > limit) {
        return reply_error(evpl, t, h, EINVAL); /* a reply the reading end would refuse */
    }
    t->bad_targets = 0;
    if (wire_header(evpl, t, OP_READ_REPLY, len, h->key, h->address, h->id, len, 0) < 0) {
        return -ENOMEM;
    }
    v.data = src;
    v.length = len;
    v.pad = 0;
    v.ref = &slab_view;
    evpl_iovec_ring_append(evpl, &t->wire, &v);
    return 0;
} /* serve_read */

/* Copy len bytes from the front of the receive ring to dst, consuming them. */
static void
ring_drain_to(struct evpl *evpl, struct evpl_bind *bind, void *dst, uint64_t len)
{
    evpl__ring_copy(&bind->recv_ring, dst, len);
    evpl_iovec_ring_consume(evpl, &bind->recv_ring, len);
} /* ring_drain_to */

/* One whole frame (header consumed, payload at the front of the ring).
 * Returns 0, or a negative errno that ends the connection. */
static int
frame(struct evpl *evpl, struct evpl_bind *bind, const struct trma_hdr *h, int *reply)
{
    struct trma *t = trma_of(bind);
    struct trma_op *op;

    switch (h->opcode) {
        case OP_SEND: {
            struct evpl_iovec stack[16], *iov = stack;
            uint32_t cap = evpl_iovec_fifo_count(&bind->recv_ring.fifo);
            uint64_t bytes;
            int n;

            if (cap > 16 && !(iov = malloc(cap * sizeof(*iov)))) {
                return -ENOMEM;
            }
            n = evpl__ring_take(evpl, &bind->recv_ring, iov, cap > 16 ? (int) cap : 16, h->length,
                                &bytes);
            /* the message's iovecs go to the application */
            evpl__bind_received_msg(evpl, bind, iov, n, h->length, bind->remote);
            if (iov != stack) {
                free(iov);
            }
            return 0;
        }
        case OP_READ_REQUEST: {
            uint32_t len;

            if (h->length != 4) {
                evpl_log_error("tcp_rdma", "READ_REQUEST of length %u (not 4): closing", h->length);
                return -EPROTO;
            }
            ring_drain_to(evpl, bind, &len, 4);
            *reply = 1;
            return serve_read(evpl, t, h, be32toh(len));
        }
        case OP_WRITE_REQUEST: {
            char *dst = evpl__rdma_local_target(h->key, h->address, h->length);

            *reply = 1;
            if (!dst) {
                evpl_iovec_ring_consume(evpl, &bind->recv_ring, h->length);
                return bad_target(evpl, t, h);
            }
            t->bad_targets = 0;
            ring_drain_to(evpl, bind, dst, h->length);
            return wire_header(evpl, t, OP_WRITE_REPLY, 0, h->key, h->address, h->id, 0, 0);
        }
        case OP_READ_REPLY:
            op = op_take(t, h->id);
            if (!op || op->write || evpl__iovecs_length(op->iov, op->niov) != h->length) {
                evpl_log_error("tcp_rdma", "READ_REPLY %llu matches no read of %u bytes: closing",
                               (unsigned long long) h->id, h->length);
                if (op) {
                    op_complete(evpl, op, EPROTO);
                }
                return -EPROTO;
            }
            for (int i = 0; i < op->niov; i++) {
                ring_drain_to(evpl, bind, op->iov[i].data, op->iov[i].length);
            }
            op_complete(evpl, op, 0);
            return 0;
        case OP_WRITE_REPLY:
        case OP_ERROR:
            op = op_take(t, h->id);
            if (!op || (h->opcode == OP_WRITE_REPLY && !op->write)) {
                evpl_log_error("tcp_rdma", "reply %u for unknown operation %llu: closing",
                               h->opcode, (unsigned long long) h->id);
                if (op) {
                    op_complete(evpl, op, EPROTO);
                }
                return -EPROTO;
            }
            /* the peer's errno; anything not one reads as EIO */
            op_complete(evpl, op,
                        h->opcode == OP_WRITE_REPLY         ? 0
                        : h->length > 0 && h->length < 4096 ? (int) h->length
                                                            : EIO);
            return 0;
        default:
            evpl_log_error("tcp_rdma", "unknown opcode %u: closing", h->opcode);
            return -EPROTO;
    }
} /* frame */

static void
trma_received(struct evpl *evpl, struct evpl_bind *bind)
{
    uint64_t limit = evpl_shared->config->max_msg_size;
    unsigned char raw[TRMA_HDR];
    int reply = 0, rc = 0;

    while (!(bind->flags & EVPL_BIND_CLOSING) && trma_of(bind)) {
        struct trma_hdr h;
        uint64_t body;

        if (bind->recv_ring.length < TRMA_HDR) {
            bind->want = TRMA_HDR;
            break;
        }
        evpl__ring_copy(&bind->recv_ring, raw, TRMA_HDR);
        hdr_decode(raw, &h);
        if (h.magic != TRMA_MAGIC) {
            evpl_log_error("tcp_rdma", "bad frame magic 0x%08x: closing", h.magic);
            rc = -EPROTO;
            break;
        }
        body = has_payload(h.opcode) ? h.length : 0;
        if (limit && body > limit) {
            evpl_log_error("tcp_rdma", "frame of %llu bytes exceeds max_msg_size %llu: closing",
                           (unsigned long long) body, (unsigned long long) limit);
            rc = -EMSGSIZE;
            break;
        }
        if (bind->recv_ring.length < TRMA_HDR + body) {
            bind->want = TRMA_HDR + body; /* keep reading past the receive limit */
            break;
        }
        if ((h.opcode == OP_READ_REQUEST || h.opcode == OP_WRITE_REQUEST) &&
            trma_of(bind)->owed > wire_bound()) {
            /* the peer does not read our replies: its requests wait */
            trma_of(bind)->stalled = 1;
            bind->flags |= EVPL_BIND_READ_PAUSED;
            bind->want = 0;
            break;
        }
        evpl_iovec_ring_consume(evpl, &bind->recv_ring, TRMA_HDR);
        bind->want = 0;
        rc = frame(evpl, bind, &h, &reply);
        if (rc < 0) {
            break;
        }
    }
    if (rc < 0) {
        evpl__bind_fail(evpl, bind, rc);
        return;
    }
    if (reply || (trma_of(bind) && trma_of(bind)->pend)) {
        /* replies to send, or operations that waited for a reply's room */
        evpl_defer(evpl, &bind->flush);
    }
    if ((bind->flags & EVPL_BIND_READ_PAUSED) && trma_of(bind) && !trma_of(bind)->stalled &&
        (bind->recv_ring.length <= evpl__bind_recv_limit(bind) ||
         bind->want > bind->recv_ring.length)) {
        /* paused while a long frame filled the ring: it is consumed now,
         * or the rest of it is still to come */
        bind->flags &= ~EVPL_BIND_READ_PAUSED;
        evpl__stream_read_resume(evpl, bind);
    }
} /* trma_received */

/* ---- connections ---- */

/* The wire ring drained: serve the requests that waited, read again. */
static void
trma_resume(struct evpl *evpl, void *arg)
{
    struct evpl_bind *bind = ((struct trma *) arg)->bind;

    if (bind->flags & EVPL_BIND_CLOSING) {
        return;
    }
    bind->flags &= ~EVPL_BIND_READ_PAUSED;
    evpl__stream_read_resume(evpl, bind);
    trma_received(evpl, bind);
} /* trma_resume */

static struct trma *
trma_new(struct evpl_bind *bind)
{
    struct trma *t = calloc(1, sizeof(*t));

    if (t) {
        evpl_iovec_ring_init(&t->wire, 16);
        trma_frames_init(&t->frames, 16);
        t->next_id = 1;
        t->bind = bind;
        evpl_deferral_init(&t->resume, trma_resume, t);
    }
    return t;
} /* trma_new */

static void
trma_free(struct evpl *evpl, struct evpl_bind *bind)
{
    struct trma *t = trma_of(bind);

    bind->backend = NULL;
    if (!t) {
        return;
    }
    evpl_remove_deferral(evpl, &t->resume);
    evpl_iovec_ring_cleanup(evpl, &t->wire);
    trma_frames_cleanup(&t->frames);
    /* operations still waiting for the peer, or for their turn: the
     * connection is gone */
    while (t->ops) {
        struct trma_op *op = t->ops;

        t->ops = op->next;
        op_complete(evpl, op, ECONNRESET);
    }
    while (t->pend) {
        struct trma_op *op = t->pend;

        t->pend = op->next;
        op_complete(evpl, op, ECONNRESET);
    }
    free(t);
} /* trma_free */

static int
trma_connect(struct evpl *evpl, struct evpl_bind *bind)
{
    int rc;

    bind->backend = trma_new(bind);
    if (!bind->backend) {
        return -ENOMEM;
    }
    rc = evpl__stream_connect(evpl, bind);
    if (rc < 0) {
        trma_free(evpl, bind);
    }
    return rc;
} /* trma_connect */

static int
trma_attach(struct evpl *evpl, struct evpl_bind *bind, struct evpl_accepted *conn)
{
    int rc;

    bind->backend = trma_new(bind);
    if (!bind->backend) {
        return -ENOMEM;
    }
    rc = evpl__stream_attach(evpl, bind, conn);
    if (rc < 0) {
        trma_free(evpl, bind);
    }
    return rc;
} /* trma_attach */

static void
trma_close(struct evpl *evpl, struct evpl_bind *bind)
{
    trma_free(evpl, bind);          /* pending operations end with ECONNRESET */
    evpl__rdma_complete_bind(bind); /* and those already failed, before DISCONNECTED */
    evpl__stream_close(evpl, bind);
} /* trma_close */

const struct evpl_protocol evpl_protocol_tcp_rdma = {
    .id = EVPL_DATAGRAM_TCP_RDMA,
    .name = "DATAGRAM_TCP_RDMA",
    .connected = 1,
    .rdma = 1,
    .kind = EVPL_EP_NETWORK,
    .available = evpl__socket_available,
    .connect = trma_connect,
    .attach = trma_attach,
    .listen = evpl__stream_listen,
    .unlisten = evpl__stream_unlisten,
    .flush = trma_flush,
    .close = trma_close,
    .read_resume = evpl__stream_read_resume,
    .received = trma_received,
    .send_pending = trma_send_pending,
    .rdma_address = evpl__rdma_local_bind_address,
    .rdma_read = trma_rdma_read,
    .rdma_write = trma_rdma_write,
};
