/* SPDX-License-Identifier: LGPL-2.1-only */
#pragma once

#ifndef EVPL_INCLUDED
#error "Do not include evpl_bind.h directly, include evpl/evpl.h instead"
#endif

struct iovec;

/* A process-wide acceptor with its own thread.  Opaque. */
struct evpl_listener;
/* One loop's attachment to a listener.  Opaque. */
struct evpl_listener_binding;
/* One connection or one unconnected datagram socket, owned by a loop. */
struct evpl_bind;

#define EVPL_ADDRESS_STRLEN 128

#define EVPL_NOTIFY_CONNECTED    1
#define EVPL_NOTIFY_DISCONNECTED 2
#define EVPL_NOTIFY_RECV_DATA    3
#define EVPL_NOTIFY_RECV_MSG     4
#define EVPL_NOTIFY_SENT         5

#define EVPL_SEND_FLAG_TAKE_REF    0x01
#define EVPL_RECV_FLAG_ALL_OR_NONE 0x1

/*
 * A notification: library storage valid only during the callback.
 * notify_status is 0, or a negative errno on DISCONNECTED when the
 * connection failed or broke (extension: upstream always reports 0).
 * RECV_MSG: the callback owns recv_msg.iovec[0..niov-1] (release or
 * transfer them); recv_msg.addr is borrowed for the callback's duration.
 */
struct evpl_notify {
    unsigned int notify_type;
    int notify_status;
    union {
        struct {
            struct evpl_iovec *iovec;
            unsigned int niov;
            unsigned int length;
            struct evpl_address *addr;
        } recv_msg;
        struct {
            unsigned long bytes;
            unsigned long msgs;
        } sent;
    };
};

typedef void (*evpl_notify_callback_t)(struct evpl *evpl, struct evpl_bind *bind,
                                       struct evpl_notify *notify, void *private_data);

/*
 * Framing of a stream: return the length of the next message (> 0), 0 when
 * it cannot be known yet, < 0 to reject the stream (the bind is closed).
 * Must only look at the data with evpl_peek / evpl_peekv.
 */
typedef int (*evpl_segment_callback_t)(struct evpl *evpl, struct evpl_bind *bind,
                                       void *private_data);

/*
 * Called on the attached loop for each accepted connection; must set
 * *notify_callback, may set *segment_callback and *conn_private_data.
 */
typedef void (*evpl_attach_callback_t)(struct evpl *evpl, struct evpl_bind *bind,
                                       evpl_notify_callback_t *notify_callback,
                                       evpl_segment_callback_t *segment_callback,
                                       void **conn_private_data, void *private_data);

/* Start a listener thread.  Returns owned, never NULL.  Any thread. */
EVPL_API struct evpl_listener *evpl_listener_create(void);

/* Stop accepting, remove socket files, join the thread.  Any thread. */
EVPL_API void evpl_listener_destroy(struct evpl_listener *listener);

/*
 * Make evpl (calling thread's loop) a recipient of the listener's
 * connections, round-robin with other bindings.  Returns owned; detach it
 * before destroying the loop.
 */
EVPL_API struct evpl_listener_binding *evpl_listener_attach(struct evpl *evpl,
                                                            struct evpl_listener *listener,
                                                            evpl_attach_callback_t attach_callback,
                                                            void *private_data);

/* Stop receiving new connections and free binding (binding's loop thread). */
EVPL_API void evpl_listener_detach(struct evpl *evpl, struct evpl_listener_binding *binding);

/*
 * Listen on endpoint with protocol.  Synchronous: returns 0 once accepting,
 * or -1 (address in use, kind mismatch, unavailable or unconnected
 * protocol, resolution failure); nothing is left behind on -1.  Any thread.
 */
EVPL_API int evpl_listen(struct evpl_listener *listener, enum evpl_protocol_id protocol,
                         struct evpl_endpoint *endpoint);

/*
 * Connect (non-blocking).  Returns the bind at once, or NULL for an
 * unavailable protocol, a kind mismatch or an unresolvable numeric
 * address; the outcome arrives as CONNECTED, or as one DISCONNECTED with a
 * negative errno in notify_status.  Aborts for unconnected protocols.
 * Borrows the endpoints.  Owning thread.
 */
EVPL_API struct evpl_bind *evpl_connect(struct evpl *evpl, enum evpl_protocol_id protocol_id,
                                        struct evpl_endpoint *local_endpoint,
                                        struct evpl_endpoint *remote_endpoint,
                                        evpl_notify_callback_t notify_callback,
                                        evpl_segment_callback_t segment_callback,
                                        void *private_data);

/*
 * An unconnected datagram socket bound to endpoint.  Returns NULL when the
 * protocol is unavailable, the kind does not match, or the OS refuses the
 * bind.  Aborts for connection-oriented protocols.  Owning thread.
 */
EVPL_API struct evpl_bind *evpl_bind(struct evpl *evpl, enum evpl_protocol_id protocol,
                                     struct evpl_endpoint *endpoint,
                                     evpl_notify_callback_t callback, void *private_data);

/* Opt in to SENT notifications for bind (permanent). */
EVPL_API void evpl_bind_request_send_notifications(struct evpl *evpl, struct evpl_bind *bind);

/*
 * Sending: every form queues and returns; the queue is flushed at the end
 * of the pass.  Copy forms copy buffer before returning.  Iovec forms send
 * the first length bytes of iovecs[0..nbufvecs-1]; without
 * EVPL_SEND_FLAG_TAKE_REF they take their own references (the caller
 * releases its own), with it they take the caller's.  Sends on a closing
 * bind are dropped.  Owning thread.
 */
EVPL_API void evpl_send(struct evpl *evpl, struct evpl_bind *bind, const void *buffer,
                        unsigned int length);

EVPL_API void evpl_sendv(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec *iovecs,
                         int nbufvecs, int length, unsigned int flags);

/* Unconnected binds: to address (the library takes its own reference). */
EVPL_API void evpl_sendto(struct evpl *evpl, struct evpl_bind *bind, struct evpl_address *address,
                          const void *buffer, unsigned int length);

EVPL_API void evpl_sendtoep(struct evpl *evpl, struct evpl_bind *bind,
                            struct evpl_endpoint *endpoint, const void *buffer,
                            unsigned int length);

EVPL_API void evpl_sendtov(struct evpl *evpl, struct evpl_bind *bind, struct evpl_address *address,
                           struct evpl_iovec *iovecs, int nbufvecs, int length, unsigned int flags);

EVPL_API void evpl_sendtoepv(struct evpl *evpl, struct evpl_bind *bind,
                             struct evpl_endpoint *endpoint, struct evpl_iovec *iovecs,
                             int nbufvecs, int length, unsigned int flags);

/*
 * Stream receive buffer access (net.md §8).  recvv returns owned
 * references; peekv returns borrowed views valid until bytes are consumed
 * or control returns to the loop.  -1 with errno EINVAL on invalid
 * arguments or datagram binds (recv/recvv also on segmented binds).
 */
EVPL_API int evpl_peek(struct evpl *evpl, struct evpl_bind *bind, void *buffer, int length);

EVPL_API int evpl_peekv(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec *iovecs,
                        int maxiovecs, int length);

/* Drop exactly length bytes: 0, or -1 (nothing consumed) if fewer buffered. */
EVPL_API int evpl_consume(struct evpl *evpl, struct evpl_bind *bind, int length);

EVPL_API int evpl_recv(struct evpl *evpl, struct evpl_bind *bind, void *buffer, int maxlength,
                       unsigned int flags);

EVPL_API int evpl_recvv(struct evpl *evpl, struct evpl_bind *bind, struct evpl_iovec *iovecs,
                        int maxiovecs, int maxlength, int *length);

/* Abortive close: DISCONNECTED follows on a later pass.  Idempotent. */
EVPL_API void evpl_close(struct evpl *evpl, struct evpl_bind *bind);

/* Graceful close: once everything queued has been handed to the transport. */
EVPL_API void evpl_finish(struct evpl *evpl, struct evpl_bind *bind);

/* Address text (see net.md §3) into str, truncated like snprintf. */
EVPL_API void evpl_bind_get_local_address(struct evpl_bind *bind, char *str, int len);

EVPL_API void evpl_bind_get_remote_address(struct evpl_bind *bind, char *str, int len);

EVPL_API enum evpl_protocol_id evpl_bind_get_protocol(struct evpl_bind *bind);

EVPL_API int evpl_bind_is_rdma(struct evpl_bind *bind);

/*
 * Extension, TLS binds: the ALPN protocols this connection offers (comma-
 * separated, preference order; "" or NULL offers none), replacing the
 * process-wide list for it.  Call right after evpl_connect, before the
 * handshake.  0, or -1 (not a connecting TLS bind, or a bad list).
 */
EVPL_API int evpl_bind_set_alpn(struct evpl_bind *bind, const char *protocols);

/* Extension: the protocol ALPN settled on (valid while the bind lives), or
 * NULL (none, not TLS, or before CONNECTED). */
EVPL_API const char *evpl_bind_get_alpn(struct evpl_bind *bind);

/* Non-zero once evpl_close or evpl_finish was called on bind. */
EVPL_API int evpl_bind_is_closing(struct evpl_bind *bind);
