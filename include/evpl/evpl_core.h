/* SPDX-License-Identifier: LGPL-2.1-only */
#pragma once

#ifndef EVPL_INCLUDED
#error "Do not include evpl_core.h directly, include evpl/evpl.h instead"
#endif

/* Framework ids.  No public function takes one; kept for source compatibility. */
enum evpl_framework_id {
    EVPL_FRAMEWORK_RDMACM = 0,
    EVPL_FRAMEWORK_XLIO = 1,
    EVPL_FRAMEWORK_IO_URING = 2,
    EVPL_FRAMEWORK_VFIO = 3,
    EVPL_FRAMEWORK_TLS = 4,
    EVPL_FRAMEWORK_TCP_RDMA = 5,
    EVPL_FRAMEWORK_LIBAIO = 6,
    EVPL_FRAMEWORK_INPROC = 7,
    EVPL_NUM_FRAMEWORK = 8
};

/* Transport protocol ids, chosen per connect/bind/listen. */
enum evpl_protocol_id {
    EVPL_DATAGRAM_SOCKET_UDP = 0,
    EVPL_DATAGRAM_RDMACM_RC = 1,
    EVPL_DATAGRAM_RDMACM_UD = 2,
    EVPL_STREAM_SOCKET_TCP = 3,
    EVPL_STREAM_XLIO_TCP = 4,
    EVPL_STREAM_IO_URING_TCP = 5,
    EVPL_STREAM_RDMACM_RC = 6,
    EVPL_STREAM_SOCKET_TLS = 7,
    EVPL_DATAGRAM_TCP_RDMA = 8,
    EVPL_STREAM_SOCKET_UNIX = 9,
    EVPL_STREAM_INPROC = 10,
    EVPL_DATAGRAM_INPROC = 11,
    EVPL_DATAGRAM_IO_URING_UDP = 12, /* extension: UDP over io_uring */
    EVPL_NUM_PROTO = 13
};

/* Block I/O protocol ids. */
enum evpl_block_protocol_id {
    EVPL_BLOCK_PROTOCOL_IO_URING = 0,
    EVPL_BLOCK_PROTOCOL_VFIO = 1,
    EVPL_BLOCK_PROTOCOL_LIBAIO = 2,
    EVPL_BLOCK_PROTOCOL_IO_URING_NVME = 3,
    EVPL_NUM_BLOCK_PROTOCOL = 4
};

/* One event loop, owned by the thread that created it.  Opaque. */
struct evpl;

struct evpl_global_config;
struct evpl_thread_config;

/*
 * Initialise the library from global_config (NULL: defaults).
 * Takes global_config: the caller must not use or release it afterwards.
 * Any thread, once per process, before any auto-initialising call;
 * a second call, or a call after auto-initialisation, aborts.
 */
EVPL_API void evpl_init(struct evpl_global_config *global_config);

/*
 * Write every library metric into buffer in Prometheus text format 0.0.4,
 * NUL-terminated.  Returns the length written (without the NUL), or -1 when
 * the buffer is too small or the arguments are invalid.  Any thread.
 */
EVPL_API int evpl_metrics_scrape(char *buffer, int buffer_size);

/*
 * Create an event loop bound to the calling thread (auto-initialises).
 * Borrows config (NULL: the global thread defaults): the loop copies it.
 * The caller may reuse the object for other loops and may release it with
 * evpl_thread_config_release at any time; a config given to evpl_create and
 * never released (upstream programs do not release it) is freed at exit.
 * Returns owned; never NULL.
 */
EVPL_API struct evpl *evpl_create(struct evpl_thread_config *config);

/*
 * Monotonic time, CLOCK_MONOTONIC-compatible, from the TSC where reliable.
 * evpl is unused (may be NULL).  Any thread.  Not affected by the virtual
 * clock.
 */
EVPL_API void evpl_get_hf_monotonic_time(struct evpl *evpl, struct timespec *ts);

/* Advance the virtual clock by ns (any thread).  Aborts unless enabled. */
EVPL_API void evpl_virtual_clock_advance(uint64_t ns);

/* Current virtual time in ns.  Aborts unless the virtual clock is enabled. */
EVPL_API uint64_t evpl_virtual_clock_now(void);

/*
 * Destroy a loop: closes its binds (their callbacks run inside this call),
 * then frees it.  Owning thread only, never from inside its own callbacks.
 */
EVPL_API void evpl_destroy(struct evpl *evpl);

/* Run one pass of the loop; may block.  Owning thread, not re-entrant. */
EVPL_API void evpl_continue(struct evpl *evpl);

/* Run passes until evpl_stop takes effect.  Owning thread. */
EVPL_API void evpl_run(struct evpl *evpl);

typedef void (*evpl_loop_callback_t)(struct evpl *evpl, void *private_data);

struct evpl_loop_hooks {
    evpl_loop_callback_t iteration_end;
    evpl_loop_callback_t pre_wait;
    evpl_loop_callback_t post_wait;
    void *private_data;
};

/*
 * Install loop hooks.  Borrows hooks (copied); NULL clears all hooks.
 * Owning thread; may be called from inside a hook.
 */
EVPL_API void evpl_set_loop_hooks(struct evpl *evpl, const struct evpl_loop_hooks *hooks);

/*
 * Stop the loop: evpl_run returns after the current pass.  Permanent.
 * Any thread, including the loop's own callbacks.  A second call is a no-op.
 */
EVPL_API void evpl_stop(struct evpl *evpl);

/*
 * Protocol queries (any thread; auto-initialise).  lookup: exact,
 * case-sensitive name ("STREAM_SOCKET_TCP") among available protocols;
 * 0 and *id set, or -1.  The predicates return 1/0; out-of-range or
 * unavailable ids give 0.
 */
EVPL_API int evpl_protocol_lookup(enum evpl_protocol_id *id, const char *name);

EVPL_API int evpl_protocol_available(enum evpl_protocol_id protocol);

EVPL_API int evpl_protocol_is_stream(enum evpl_protocol_id protocol);

EVPL_API int evpl_protocol_is_local(enum evpl_protocol_id protocol);

EVPL_API int evpl_protocol_is_inproc(enum evpl_protocol_id protocol);

/*
 * Extension: the best available protocol of a transport family ("TCP",
 * "UDP", "UNIX", "TLS", "RDMA", "INPROC"; case-insensitive), by the
 * library's preference order (e.g. TCP: XLIO, io_uring, kernel socket).
 * The environment variable EVPL_PROTOCOL_<FAMILY> (e.g.
 * EVPL_PROTOCOL_TCP=STREAM_SOCKET_TCP) overrides the choice.  Returns 0
 * and sets *id, or -1 when the family is unknown or has nothing available.
 */
EVPL_API int evpl_protocol_best(const char *family, enum evpl_protocol_id *id);
