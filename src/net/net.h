/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Private networking layer: addresses, endpoints, binds, listeners and the
 * protocol/framework registry.  Backends see only this header and mem/.
 */
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include "core/internal.h"
#include "mem/ring.h"

/* ---- addresses (address.c) ---- */

struct evpl_address {
    _Atomic int refcnt;
    socklen_t addrlen;
    struct sockaddr_storage sa;
};

struct evpl_address *evpl__address_new(const struct sockaddr *sa, socklen_t len);
/* The socket's own (peer == 0) or its peer's address; NULL on failure. */
struct evpl_address *evpl__address_of_fd(int fd, int peer);
/* A connected bind's local address is what the kernel assigned (a local
 * endpoint with port 0 or a wildcard host is only a request). */
void evpl__bind_local_from_fd(struct evpl_bind *bind, int fd);
/* Abortive close of a stream socket whose file io_uring requests may still
 * hold, ending the connection at once the way close(2) alone would:
 * with received bytes the application never read, the peer gets a reset;
 * otherwise a FIN.  The caller closes fd after. */
void evpl__stream_abort(int fd);
static inline struct evpl_address *
evpl__address_ref(struct evpl_address *a)
{
    atomic_fetch_add_explicit(&a->refcnt, 1, memory_order_relaxed);
    return a;
} /* evpl__address_ref */
void evpl__address_release(struct evpl_address *a);
/* net.md §3 text form of a (NULL: "(NULL)"). */
void evpl__address_format(const struct evpl_address *a, char *str, int len);

/* In-process names live in an address of a family no kernel uses: the
 * name, and a connection serial (0 for the listener's own name). */
#define EVPL_AF_INPROC 0xE1F0
struct evpl_inproc_sockaddr {
    sa_family_t family;
    uint16_t pad;
    uint32_t serial;
    char name[108]; /* NUL-terminated, 1..107 bytes */
};
struct evpl_address *evpl__address_inproc(const char *name, uint32_t serial);

/* ---- endpoints (address.c) ---- */

enum evpl_endpoint_kind {
    EVPL_EP_NETWORK = 0,
    EVPL_EP_LOCAL = 1,
    EVPL_EP_INPROC = 2,
};

struct evpl_endpoint {
    enum evpl_endpoint_kind kind;
    int port;
    char text[256];
    pthread_mutex_t lock;
    struct evpl_address *addr; /* cached resolution */
    uint64_t resolved_ns;
    struct evpl_endpoint *next, *prev; /* open endpoints (address.c) */
    _Atomic int refs;                  /* the application's, plus host-name lookups in flight */
    /* set once for numeric and local endpoints, whose address never expires:
     * senders read it without taking the lock */
    _Atomic(struct evpl_address *) permanent;
};

/* A lookup thread keeps the endpoint alive (and updates its cache). */
static inline void
evpl__endpoint_ref(struct evpl_endpoint *ep)
{
    atomic_fetch_add_explicit(&ep->refs, 1, memory_order_relaxed);
}
void evpl__endpoint_release(struct evpl_endpoint *ep);

/*
 * Resolve (cached for resolve_timeout_ms; local and numeric addresses
 * never expire).  Returns a new reference, or NULL with errno set.  May
 * block on DNS for host names.
 */
struct evpl_address *evpl__endpoint_resolve(struct evpl_endpoint *ep);
/* Blocking DNS lookup of host (see address.c). */
struct evpl_address *evpl__address_lookup(const char *host, int port, int *err);
/* Numeric or cached only: never blocks.  NULL when DNS would be needed. */
struct evpl_address *evpl__endpoint_resolve_nonblocking(struct evpl_endpoint *ep);

/* ---- protocols (protocol.c) ---- */

struct evpl_bind;
struct evpl_listener;

/* What a listener thread hands to the loop that takes a connection. */
struct evpl_accepted {
    struct evpl_accepted *next;
    const struct evpl_protocol *protocol;
    int fd;
    void *backend; /* in-process: the channel (fd is -1) */
    struct evpl_address *local;
    struct evpl_address *remote;
};

typedef void (*evpl_accept_deliver_t)(struct evpl_listener *listener, struct evpl_accepted *conn);

struct evpl_protocol {
    enum evpl_protocol_id id;
    const char *name;
    int stream;
    int connected; /* listen/connect, else evpl_bind */
    int rdma;
    int own_connected; /* the backend reports CONNECTED (after a handshake) */
    int stream_msgs;   /* a stream that counts its sends in SENT.msgs (in-process, net.md §10) */
    enum evpl_endpoint_kind kind;
    /* 1 usable, 0 not; -1 not now (out of descriptors: asked again) */
    int (*available)(void);

    /* Start connecting bind->remote; negative errno = failed at once. */
    int (*connect)(struct evpl *evpl, struct evpl_bind *bind);
    /* Take over an accepted connection. */
    int (*attach)(struct evpl *evpl, struct evpl_bind *bind, struct evpl_accepted *conn);
    /* Unconnected datagram socket on bind->local. */
    int (*bind)(struct evpl *evpl, struct evpl_bind *bind);
    /* Listener side, on the listener thread: returns 0 or negative errno. */
    int (*listen)(struct evpl *evpl, const struct evpl_protocol *protocol,
                  struct evpl_listener *listener, struct evpl_address *address,
                  void **listen_state);
    void (*unlisten)(struct evpl *evpl, void *listen_state);
    /* Write what is queued (called by the bind's flush deferral). */
    void (*flush)(struct evpl *evpl, struct evpl_bind *bind);
    /* Release the transport (socket) for good. */
    void (*close)(struct evpl *evpl, struct evpl_bind *bind);
    /* The receive side changed its mind about reading (back-pressure). */
    void (*read_resume)(struct evpl *evpl, struct evpl_bind *bind);
    /* Optional: wake the reader only once this many bytes are queued (a
     * segmented bind waiting for a long message); 1 = any byte. */
    void (*rcvlowat)(struct evpl *evpl, struct evpl_bind *bind, uint32_t bytes);
    /* Optional: the protocol frames received bytes itself (instead of
     * RECV_DATA or the segment callback); called with bytes appended. */
    void (*received)(struct evpl *evpl, struct evpl_bind *bind);
    /* Optional: the protocol still holds bytes to send outside the send
     * ring (evpl_finish waits for them). */
    int (*send_pending)(const struct evpl_bind *bind);
    /* Optional: an accepted connection (conn->backend) that no loop took;
     * any thread. */
    void (*discard)(struct evpl_accepted *conn);
    /* One-sided operations (rdma.md), for protocols with rdma set. */
    void (*rdma_address)(struct evpl_bind *bind, const struct evpl_iovec *iovec, uint32_t *r_key,
                         uint64_t *r_address);
    void (*rdma_read)(struct evpl *evpl, struct evpl_bind *bind, uint32_t remote_key,
                      uint64_t remote_address, struct evpl_iovec *iov, int niov,
                      void (*callback)(int status, void *private_data), void *private_data);
    void (*rdma_write)(struct evpl *evpl, struct evpl_bind *bind, uint32_t remote_key,
                       uint64_t remote_address, struct evpl_iovec *iov, int niov,
                       unsigned int flags, void (*callback)(int status, void *private_data),
                       void *private_data);
};

const struct evpl_protocol *evpl__protocol(enum evpl_protocol_id id);

/* ---- binds (bind.c) ---- */

enum {
    EVPL_BIND_CONNECTED = 1u << 0, /* CONNECTED delivered */
    EVPL_BIND_CLOSING = 1u << 1,   /* evpl_close or finish-then-close */
    EVPL_BIND_FINISH = 1u << 2,    /* close once the send queue drains */
    EVPL_BIND_SEND_NOTIFY = 1u << 3,
    EVPL_BIND_TRANSPORT_UP = 1u << 4, /* the backend holds a transport */
    EVPL_BIND_DISCONNECTED = 1u << 5, /* DISCONNECTED delivered */
    EVPL_BIND_READ_PAUSED = 1u << 6,  /* receive ring above its limit */
    EVPL_BIND_NO_GSO = 1u << 8,       /* UDP: the path refused UDP_SEGMENT */
    EVPL_BIND_OWNS_PATH = 1u << 9,    /* bound an AF_UNIX path: removed at close */
    EVPL_BIND_RECV_HELD = 1u << 10,   /* a module holds the receive side (hold.h) */
    EVPL_BIND_RECV_DRAIN = 1u << 11,  /* delivering at failure: sends are dropped */
    EVPL_BIND_RECV_PARK = 1u << 12,   /* what arrives waits long: compacted (hold.h) */
    EVPL_BIND_GSO_PROBE = 1u << 13,   /* UDP: a grouped send failed; is UDP_SEGMENT to blame? */
};

struct evpl_bind {
    const struct evpl_protocol *protocol;
    struct evpl *evpl;
    uint32_t flags;
    int close_status; /* negative errno or 0 */

    evpl_notify_callback_t notify_callback;
    evpl_segment_callback_t segment_callback;
    void *private_data;

    struct evpl_address *local;
    struct evpl_address *remote;

    struct evpl_iovec_ring send_ring;  /* payload queued to send */
    struct evpl_dgram_ring dgram_send; /* message boundaries (datagram, segmented) */
    struct evpl_iovec_ring recv_ring;  /* stream bytes received */

    struct evpl_deferral flush;
    struct evpl_deferral close;
    struct evpl_deferral unhold; /* delivers what a receive hold kept (hold.h) */

    struct evpl_bind *next, *prev; /* evpl->binds */
    struct evpl_bind *next_closing;

    void *resolving;         /* pending host-name lookup (resolve.c) */
    char *peer_name;         /* the name connected to (TLS checks the certificate against it) */
    struct evpl_timer retry; /* backend: connect retry (AF_UNIX backlog full) */
    uint32_t retry_us, retry_total_us;
    uint64_t path_ino;              /* AF_UNIX: the socket file it made (EVPL_BIND_OWNS_PATH) */
    uint32_t lowat;                 /* current receive low-water mark (0/1: none) */
    uint64_t want;                  /* length the segmenter asked for */
    uint64_t recv_limit;            /* below stream_recv_limit (hold.h); 0: that */
    uint64_t rx_since_send;         /* stream: bytes read since the application last sent */
    uint64_t last_len;              /* length of the last message segmented */
    uint64_t msg_sent;              /* bytes of the front message already written */
    struct evpl_iovec *dgram_slots; /* UDP: receive slots kept between reads */
    int ndgram_slots;

    /* backend state: one socket event for the socket backends */
    struct evpl_event event;
    void *backend;
};

struct evpl_bind *evpl__bind_alloc(struct evpl *evpl, const struct evpl_protocol *protocol,
                                   evpl_notify_callback_t notify, evpl_segment_callback_t segment,
                                   void *private_data);

/* Backends report with these; all are safe from any backend callback. */
void evpl__bind_connected(struct evpl *evpl, struct evpl_bind *bind);
/* Close from inside the library (peer EOF, error): status = -errno or 0. */
void evpl__bind_fail(struct evpl *evpl, struct evpl_bind *bind, int status);
/* Bytes appended to recv_ring: raise RECV_DATA or run the segmenter. */
void evpl__bind_received(struct evpl *evpl, struct evpl_bind *bind);
/* One datagram (iovec owned by the callee) from addr (borrowed). */
void evpl__bind_received_msg(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec *iov,
                             int niov, unsigned int length, struct evpl_address *addr);
/* bytes and whole messages left for the transport: SENT, finish-close. */
void evpl__bind_sent(struct evpl *evpl, struct evpl_bind *bind, uint64_t bytes, uint64_t msgs);
/* The receive ring's limit for back-pressure. */
uint64_t evpl__bind_recv_limit(const struct evpl_bind *bind);
/* Copy up to len bytes from the front of r without consuming them. */
uint64_t evpl__ring_copy(struct evpl_iovec_ring *r, void *buffer, uint64_t len);
/* Move up to maxlength bytes from the front of r into at most maxiov
 * iovecs (references move); *bytes = how many.  Returns the iovecs used. */
int evpl__ring_take(struct evpl *evpl, struct evpl_iovec_ring *r, struct evpl_iovec *out,
                    int maxiov, uint64_t maxlength, uint64_t *bytes);

/* ---- one-sided operations: the process-local registration table (rdma.c),
 * shared by the in-process and TCP-RDMA protocols ---- */

/* Key and address of library memory (0/0 for other memory). */
void evpl__rdma_local_address(const struct evpl_iovec *iovec, uint32_t *key, uint64_t *address);
/* The same as a protocol's rdma_address operation. */
void evpl__rdma_local_bind_address(struct evpl_bind *bind, const struct evpl_iovec *iovec,
                                   uint32_t *key, uint64_t *address);

static inline uint64_t
evpl__iovecs_length(const struct evpl_iovec *iov, int niov)
{
    uint64_t n = 0;

    for (int i = 0; i < niov; i++) {
        n += iov[i].length;
    }
    return n;
} /* evpl__iovecs_length */
/* The registered memory [address, address + len) under key, or NULL. */
char *evpl__rdma_local_target(uint32_t key, uint64_t address, uint64_t len);
/* Report a one-sided operation's end on the loop's next look (never inside
 * the call that issued it). */
void evpl__rdma_complete_later(struct evpl *evpl, struct evpl_bind *bind, int status,
                               void (*callback)(int status, void *private_data),
                               void *private_data);
/* A closing bind: report its queued completions now, before DISCONNECTED. */
void evpl__rdma_complete_bind(struct evpl_bind *bind);
void evpl__rdma_loop_cleanup(struct evpl *evpl);
/* backends/rdmacm: this loop's channel and device queues (its binds are gone). */
void evpl__rdmacm_loop_cleanup(struct evpl *evpl);

static inline int
evpl__bind_closing(const struct evpl_bind *bind)
{
    return bind->flags & EVPL_BIND_CLOSING;
} /* evpl__bind_closing */

/* Full pass: DISCONNECTED for binds closed on an earlier pass. */
void evpl__binds_finalize(struct evpl *evpl);

/* Loop teardown: close every bind and pump until all are gone. */
void evpl__binds_close_all(struct evpl *evpl);

/* ---- host-name resolution off the loop (resolve.c) ---- */

/* Look up ep's host on a helper thread, then connect bind (or fail it). */
int evpl__resolve_async(struct evpl *evpl, struct evpl_bind *bind, const struct evpl_endpoint *ep);
void evpl__resolve_loop_cleanup(struct evpl *evpl);
/* backends/inproc: this loop's in-process state (all its binds are gone). */
void evpl__inproc_loop_cleanup(struct evpl *evpl);
void evpl__stream_linger_cleanup(struct evpl *evpl);

/* The bind is going away: ignore its lookup's answer. */
void evpl__resolve_forget(struct evpl_bind *bind);

/* ---- listeners (listener.c) ---- */

/* Backend listen callbacks hand each accepted connection here. */
void evpl__listener_deliver(struct evpl_listener *listener, struct evpl_accepted *conn);
/* evpl_destroy: detach the bindings the program left attached to it. */
void evpl__listener_loop_gone(struct evpl *evpl);

/* An accept that failed for want of descriptors or memory (EMFILE, ENFILE,
 * ENOMEM, ENOBUFS): the connection stays in the backlog and the listener
 * retries in EVPL_ACCEPT_RETRY_US.  Reported once, then at most once per
 * 10 s with how many more failed meanwhile (a retry every 50 ms logged
 * 20 lines a second). */
#define EVPL_ACCEPT_RETRY_US 50000
struct evpl_accept_errlog {
    uint64_t last_ns; /* the last line (0: none yet) */
    uint32_t quiet;   /* failures since */
};
void evpl__accept_failed(struct evpl *evpl, struct evpl_accept_errlog *log, const char *module,
                         int err);
void evpl__accepted_free(struct evpl_accepted *conn);
