/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Private declarations shared by the core.  Nothing here is installed.
 * Naming: evpl__<object>_<verb> for non-static internal functions.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <evpl/evpl.h>

#include "mem/mem.h"

#define EVPL_CACHELINE 64

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define container_of(ptr, type, member) ((type *) ((char *) (ptr) -offsetof(type, member)))

/* ---- logging (log.c) ---- */

enum evpl_log_level {
    EVPL_LOG_DEBUG = 0,
    EVPL_LOG_INFO = 1,
    EVPL_LOG_ERROR = 2,
    EVPL_LOG_FATAL = 3,
    EVPL_LOG_NONE = 4,
};

extern int evpl__log_threshold;

void evpl__log(int level, const char *module, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The level test is inline so a disabled debug line costs one compare. */
#define evpl_log_at(lvl, mod, ...)                                    \
    do {                                                              \
        if (unlikely((lvl) >= evpl__log_threshold)) {                 \
            evpl__log((lvl), (mod), __FILE__, __LINE__, __VA_ARGS__); \
        }                                                             \
    } while (0)

#define evpl_log_debug(mod, ...) evpl_log_at(EVPL_LOG_DEBUG, mod, __VA_ARGS__)
#define evpl_log_info(mod, ...)  evpl_log_at(EVPL_LOG_INFO, mod, __VA_ARGS__)
#define evpl_log_error(mod, ...) evpl_log_at(EVPL_LOG_ERROR, mod, __VA_ARGS__)

/* Contract violations: one path, always on (they are cheap checks). */
#define evpl_bug(mod, ...) evpl_abort((mod), __FILE__, __LINE__, __VA_ARGS__)
#define EVPL_ASSERT(cond)                                    \
    do {                                                     \
        if (unlikely(!(cond))) {                             \
            evpl_bug("core", "assertion failed: %s", #cond); \
        }                                                    \
    } while (0)

/* Allocation that aborts on failure: for the few places where upstream
 * promises a non-NULL result (config objects, loop creation). */
void *evpl__zalloc(size_t size);
void *evpl__realloc(void *ptr, size_t size);

/* Grow a dynamic array so that index n fits: doubles capacity. */
#define evpl_array_reserve(arr, cap, n)                           \
    do {                                                          \
        if ((n) >= (cap)) {                                       \
            uint32_t ncap_ = (cap) ? (cap) *2 : 16;               \
            while (ncap_ <= (n))                                  \
                ncap_ *= 2;                                       \
            (arr) = evpl__realloc((arr), ncap_ * sizeof(*(arr))); \
            (cap) = ncap_;                                        \
        }                                                         \
    } while (0)

/* ---- configuration (config.c) ---- */

struct evpl_thread_config {
    int poll_mode;
    int poll_iterations;
    int wait_ms;
    uint64_t spin_ns;
    /* Set when the object was handed to evpl_create & co.  Upstream
     * consumes such objects, so programs written for it never release
     * them; we copy instead and free the never-released ones at exit. */
    struct evpl_thread_config *adopted_next;
    struct evpl_thread_config *adopted_prev;
    int adopted;
};

struct evpl_global_config {
    enum evpl_core_mech core_mech;
    uint64_t buffer_size;
    uint64_t slab_size;
    int huge_pages;
    uint64_t huge_page_size;
    unsigned int max_datagram_size;
    unsigned int max_datagram_batch;
    unsigned int max_num_iovec;
    unsigned int iovec_ring_size;
    unsigned int dgram_ring_size;
    unsigned int rdma_request_ring_size;
    unsigned int max_pending;
    unsigned int max_poll_fd;
    unsigned int resolve_timeout_ms;
    unsigned int hf_time_mode;
    int virtual_clock;
    unsigned int preallocate_slabs;
    unsigned int preallocate_threads;
    int io_uring_enabled;
    unsigned int io_uring_entries;
    int libaio_enabled;
    unsigned int libaio_max_pending;
    int vfio_enabled;
    int xlio_enabled;
    int rdmacm_enabled;
    uint8_t rdmacm_tos;
    unsigned int rdmacm_datagram_size_override;
    int rdmacm_srq_prefill;
    unsigned int rdmacm_max_sge;
    unsigned int rdmacm_cq_size;
    unsigned int rdmacm_sq_size;
    unsigned int rdmacm_srq_size;
    unsigned int rdmacm_srq_min;
    unsigned int rdmacm_srq_batch;
    unsigned int rdmacm_max_inline;
    unsigned int rdmacm_retry_count;
    unsigned int rdmacm_rnr_retry_count;
    char *tls_cert;
    char *tls_key;
    char *tls_ca;
    char *tls_cipher_list;
    int tls_verify_peer;
    int tls_ktls_enabled;
    unsigned int http_max_header_size;
    unsigned int rpc2_max_message_size;
    unsigned int max_slabs;
    uint64_t stream_recv_limit;
    uint64_t max_msg_size;
    unsigned int tls_handshake_timeout_ms;
    char *tls_alpn;
    struct evpl_thread_config thread_default;
};

void evpl__thread_config_adopt(struct evpl_thread_config *config);
void evpl__thread_config_free_adopted(void);
void evpl__thread_config_copy(struct evpl_thread_config *dst, const struct evpl_thread_config *src);
/* Replace the stored values no transport can use (zeros, unknown modes). */
void evpl__global_config_effective(struct evpl_global_config *config);

/* ---- process-wide state (evpl.c) ---- */

struct evpl_mech_ops;

struct evpl_shared {
    struct evpl_global_config *config;
    const struct evpl_mech_ops *mech;
    int virtual_clock;
    _Atomic uint64_t virtual_now;
    pthread_mutex_t lock; /* loops list, adopted configs */
    struct evpl *loops;   /* live loops, for metrics */
    /* counters of destroyed loops, so scraped totals stay monotonic */
    uint64_t retired_passes;
    uint64_t retired_events;
    uint64_t retired_sleeps;
    uint64_t retired_poll_ns;
    uint64_t retired_switches;
    uint64_t retired_timers;
    uint64_t retired_cache_hits;
    uint64_t retired_cache_misses;
};

extern struct evpl_shared *evpl_shared;

/* Initialise with defaults unless already done.  Cheap when done. */
void evpl__ensure_init(void);

static inline void
evpl_auto_init(void)
{
    if (unlikely(!__atomic_load_n(&evpl_shared, __ATOMIC_ACQUIRE))) {
        evpl__ensure_init();
    }
} /* evpl_auto_init */

/* ---- clock (clock.c) ---- */

void evpl__clock_init(unsigned int hf_time_mode);
/* CLOCK_MONOTONIC-compatible ns, TSC-backed where reliable. */
uint64_t evpl__hf_now_ns(void);
/* CLOCK_MONOTONIC in ns: the loop's clock (timers, spin window) */
uint64_t evpl__mono_ns(void);

/* ---- events (event.c): fds the wait mechanism watches ---- */

struct evpl_event;
typedef void (*evpl_event_cb_t)(struct evpl *evpl, struct evpl_event *event);

enum {
    EVPL_EV_READ_INTEREST = 1u << 0,
    EVPL_EV_WRITE_INTEREST = 1u << 1,
    EVPL_EV_READABLE = 1u << 2,   /* latched until marked unreadable */
    EVPL_EV_WRITABLE = 1u << 3,   /* latched until marked unwritable */
    EVPL_EV_ERROR = 1u << 4,      /* delivered once to error_cb */
    EVPL_EV_KICK = 1u << 5,       /* run read_cb once, no fd readiness */
    EVPL_EV_ACTIVE = 1u << 6,     /* has a slot in the active array */
    EVPL_EV_REGISTERED = 1u << 7, /* known to the wait mechanism */
    EVPL_EV_WANT_WRITE = 1u << 8, /* register for EPOLLOUT too */
    EVPL_EV_RDHUP = 1u << 9,      /* peer closed its side: reads will reach EOF */
};

/*
 * 40 bytes: it has to fit, with the rest of their state, inside the public
 * 64-byte doorbell and 80-byte fd event storage.
 */
struct evpl_event {
    int fd;
    uint32_t flags;
    int32_t active_idx;
    uint32_t unused;
    evpl_event_cb_t read_cb;
    evpl_event_cb_t write_cb;
    evpl_event_cb_t error_cb;
};

void evpl__event_init(struct evpl_event *event, int fd, evpl_event_cb_t read_cb,
                      evpl_event_cb_t write_cb, evpl_event_cb_t error_cb);
/* Register with the wait mechanism; returns 0 or a negative errno. */
int evpl__event_add(struct evpl *evpl, struct evpl_event *event);
void evpl__event_remove(struct evpl *evpl, struct evpl_event *event);
/* Set flag bits (interest or readiness) and (de)activate as needed. */
void evpl__event_set(struct evpl *evpl, struct evpl_event *event, uint32_t bits);
void evpl__event_clear(struct evpl *evpl, struct evpl_event *event, uint32_t bits);
/* Run every active event once; returns how many callbacks ran. */
unsigned evpl__events_dispatch(struct evpl *evpl);
/* Drop slots of removed or no-longer-ready events; returns how many remain. */
uint32_t evpl__events_compact(struct evpl *evpl);

/* ---- wait mechanisms (mech_*.c) ---- */

struct evpl_mech_ops {
    const char *name;
    /* armed requests keep files open (io_uring): closing a socket does not
     * end its connection until they are gone, so it is ended explicitly */
    int holds_files;
    int (*create)(struct evpl *evpl);
    void (*destroy)(struct evpl *evpl);
    int (*add)(struct evpl *evpl, struct evpl_event *event);
    void (*remove)(struct evpl *evpl, struct evpl_event *event);
    /* Wait up to timeout_ns (-1 = forever) and latch readiness into events
     * with evpl__event_set; returns the number of events reported. */
    int (*wait)(struct evpl *evpl, int64_t timeout_ns);
    /* Optional: run what the wait collected that calls back into the
     * program (io_uring completions), after the post_wait hook; returns
     * how many were news (readiness or a completion), which is then the
     * pass's count instead of what wait returned. */
    int (*reap)(struct evpl *evpl);
};

extern const struct evpl_mech_ops evpl_mech_epoll;
extern const struct evpl_mech_ops evpl_mech_select;
#ifdef HAVE_IO_URING
extern const struct evpl_mech_ops evpl_mech_io_uring;

/*
 * io_uring requests of the backends (backends/io_uring): a completion whose
 * user_data points to one of these runs its callback.  The structure must
 * stay alive until the request's last completion (no IORING_CQE_F_MORE).
 */
struct evpl_uring_req;
typedef void (*evpl_uring_complete_t)(struct evpl *evpl, struct evpl_uring_req *req, int res,
                                      uint32_t flags);
struct evpl_uring_req {
    evpl_uring_complete_t complete;
};

struct io_uring;
/* The wait mechanism's ring when it is io_uring (the backends share it). */
struct io_uring *evpl__mech_uring_ring(struct evpl *evpl);
/* A ring in the cheapest mode the kernel accepts (registered ring fd),
 * with extra setup flags (SQE128...) that must be there. */
int evpl__uring_queue_init(unsigned entries, struct io_uring *ring, unsigned extra);
/* Must this thread enter the kernel: submissions queued, or completion
 * work waiting (read from the shared ring, no syscall, where it can)? */
int evpl__uring_need_enter(struct io_uring *ring);
/* Run every completion waiting on ring; returns how many did something. */
int evpl__uring_process(struct evpl *evpl, struct io_uring *ring);
/* backends/io_uring: before the loop waits (submit), and at loop destroy. */
void evpl__uring_pre_wait(struct evpl *evpl);
/* End of every pass: what the pass queued goes to the kernel now (block.md
 * §3 rule 1, net.md §14 statement 38), not with a later pass. */
void evpl__uring_pass_end(struct evpl *evpl);
void evpl__uring_loop_cleanup(struct evpl *evpl);
#endif

/* ---- timers (timer.c) ---- */

struct evpl_timer_heap_entry {
    uint64_t deadline;
    uint32_t node;
};

struct evpl_timer_node {
    struct evpl_timer *timer;
    uint32_t heap_idx; /* FIRING while in its callback, LATER while held back */
    uint32_t next_free;
    uint32_t armed_run; /* the value of run when last armed */
};

struct evpl_timer_hash_slot {
    struct evpl_timer *timer;
    uint32_t node;
};

struct evpl_timers {
    struct evpl_timer_heap_entry *heap;
    uint32_t heap_len, heap_cap;
    struct evpl_timer_node *nodes;
    uint32_t nodes_len, nodes_cap, free_node;
    struct evpl_timer_hash_slot *hash;
    uint32_t hash_mask, hash_count;
    int firing;
    uint32_t run;    /* counts runs; timers armed in one fire in a later one */
    uint32_t *later; /* nodes held back until the end of the run */
    uint32_t later_len, later_cap;
};

void evpl__timers_init(struct evpl_timers *timers);
void evpl__timers_destroy(struct evpl_timers *timers);
/* Fire due timers; returns how many fired. */
unsigned evpl__timers_run(struct evpl *evpl, uint64_t now);
/* Earliest deadline, or UINT64_MAX. */
static inline uint64_t
evpl__timers_next(const struct evpl_timers *timers)
{
    return timers->heap_len ? timers->heap[0].deadline : UINT64_MAX;
} /* evpl__timers_next */

/* ---- deferrals (deferral.c) ---- */

/* A backend's once-per-pass hand-over to the kernel: evpl_defer, or at once
 * when the pass's deferrals have run (evpl->pass_tail). */
void evpl__defer_handover(struct evpl *evpl, struct evpl_deferral *deferral);
/* The loops created on the calling thread (evpl->thread_next). */
struct evpl *evpl__thread_loops(void);
void evpl__deferrals_run(struct evpl *evpl);
void evpl__deferrals_promote(struct evpl *evpl);

/* ---- doorbells (doorbell.c) ---- */

struct evpl_doorbell_impl {
    struct evpl_event event;
    evpl_doorbell_callback_t callback;
    struct evpl *evpl;
    _Atomic uint32_t rung;
    uint32_t idx; /* slot in evpl->doorbells */
};

/* The loop stops taking rings through memory (it leaves evpl_run): clear
 * polling, then make every doorbell rung meanwhile readable on its
 * descriptor. */
void evpl__doorbells_quiesce(struct evpl *evpl);
/* Activate every doorbell rung while the loop was polling. */
void evpl__doorbells_collect(struct evpl *evpl);

/* ---- polls (poll.c) ---- */

struct evpl_poll {
    evpl_poll_enter_callback_t enter_callback;
    evpl_poll_exit_callback_t exit_callback;
    evpl_poll_callback_t callback;
    void *private_data;
    uint32_t idx;
    int entered;
    int completion; /* a backend's (evpl__add_completion_poll) */
};

void evpl__polls_run(struct evpl *evpl);
/* Enter the polls not entered yet; completion polls follow dormancy (see
 * evpl__add_completion_poll): left out, or exited, while it holds. */
void evpl__polls_enter(struct evpl *evpl);
void evpl__polls_exit(struct evpl *evpl);
void evpl__polls_destroy(struct evpl *evpl);
/* A poll callback stopped at its budget with work left: the next pass is a
 * full one (timers, the wait's reaps), not up to poll_iterations later. */
void evpl__poll_yield(struct evpl *evpl);
/* A backend's completion poll; the backend also has a wake source (an
 * eventfd, a completion channel) that reaps on full passes.  On a loop with
 * spin_ns 0, no pin and no other poll (the application's, a VFIO queue's),
 * completion polls are dormant: not entered or run (those still entered
 * are exited on the next full pass), and no poll-only passes for them.
 * Running, each completion such a poll reaped was activity, which renewed
 * poll mode for another poll_iterations poll-only passes, so under steady
 * traffic a loop told never to busy-poll never slept.  Dormant, the loop
 * gets its completions with the wait, as it gets a socket's readiness, and
 * sleeps after a pass that found nothing.  A pin or another poll wakes
 * them: the next pass is a full one, which enters them (the loop polls
 * then, loop.md §4.2, and they reap in its poll-only passes). */
struct evpl_poll *evpl__add_completion_poll(struct evpl *evpl, evpl_poll_enter_callback_t enter,
                                            evpl_poll_exit_callback_t exit,
                                            evpl_poll_callback_t callback, void *private_data);

/* ---- the loop (evpl.c) ---- */

struct evpl_loop_counters {
    _Atomic uint64_t passes;
    _Atomic uint64_t events;
    _Atomic uint64_t sleeps;
    _Atomic uint64_t poll_ns;
    _Atomic uint64_t switches;
    _Atomic uint64_t timers;
};

struct evpl {
    /* hot state of one pass */
    uint64_t now;
    struct evpl_event **active;
    uint32_t active_len, active_cap;
    int mech_full; /* last wait filled its batch */

    struct evpl_deferral **deferrals;
    uint32_t deferrals_len, deferrals_cap;
    struct evpl_deferral **deferrals_next; /* armed for the next pass */
    uint32_t deferrals_next_len, deferrals_next_cap;

    struct evpl_timers timers;

    struct evpl_poll **polls;
    uint32_t polls_len, polls_cap;
    uint32_t polls_other; /* registered polls that are not completion polls */
    int polls_asleep;     /* the last evpl__polls_enter left completion polls out */
    int polls_iterating;
    int polls_holes;

    struct evpl_doorbell_impl **doorbells;
    uint32_t doorbells_len, doorbells_cap;
    struct evpl_block_queue *block_queues; /* open on this loop (src/block) */

    /* hybrid event/poll mode */
    struct evpl_thread_config config;
    int poll_mode; /* currently polling */
    /* the pass's deferrals have run (the iteration_end hook): a request
     * a backend would put off to them goes to the kernel at once */
    int pass_tail;
    int poll_passes; /* poll-only passes since full */
    int pins;
    int activity; /* reported since last full pass */
    uint64_t last_activity;
    uint64_t poll_since;

    struct evpl_loop_hooks hooks;

    const struct evpl_mech_ops *mech;
    int mech_fd;
    void *mech_state;

    struct evpl_doorbell wake; /* evpl_stop's wakeup */

    struct evpl_mem_cache mem; /* this thread's buffer cache */

    struct evpl_bind *binds;   /* net: every live bind of this loop */
    int destroying;            /* evpl_destroy is closing them: no new binds */
    struct evpl_bind *closing; /* net: closed, DISCONNECTED due next full pass */
    void *resolve_box;         /* net: host-name lookups in flight */
    void *lingering;           /* net: gracefully closed sockets draining */
    void *uring;               /* backends/io_uring: this loop's framework state */
    void *inproc;              /* backends/inproc: doorbell and ready list */
    void *rdma;                /* net/rdma.c: completions due on the next look */
    void *rdmacm;              /* backends/rdmacm: event channel, device queues */

    struct evpl *next, *prev;               /* evpl_shared->loops */
    struct evpl *thread_next, *thread_prev; /* the loops of the owning thread */

    /* written by other threads */
    _Alignas(EVPL_CACHELINE) _Atomic int stopped;
    _Atomic int stoppers; /* evpl_stop calls in progress: evpl_destroy waits for them */
    _Atomic int polling;  /* 1: ringers skip the eventfd (only inside evpl_run) */
    int in_run;           /* evpl_run is on the stack */
    pthread_t owner;      /* the thread that created it (and runs it) */
    _Atomic uint32_t doorbells_pending;

    _Alignas(EVPL_CACHELINE) struct evpl_loop_counters counters;
};

/* Completion polls dormant (evpl__add_completion_poll): spin_ns 0, no
 * pin, no other poll. */
static inline int
evpl__polls_dormant(const struct evpl *evpl)
{
    return evpl->config.spin_ns == 0 && evpl->pins == 0 && evpl->polls_other == 0;
} /* evpl__polls_dormant */

/* A poll-only pass may run: not when completion polls have become dormant
 * (a full pass exits them) or stopped being so since they were left out (a
 * full pass enters them; a pin or a poll added by a callback of this very
 * pass, or by an enter callback, would otherwise wait poll_iterations
 * passes with the completions unreaped). */
static inline int
evpl__polls_settled(const struct evpl *evpl)
{
    return !evpl->polls_asleep && !evpl__polls_dormant(evpl);
} /* evpl__polls_settled */

/* A struct evpl-scoped call on a thread other than the loop's owner is a
 * programming error (spec README rule 1): debug builds abort on it, release
 * builds do not pay for the check. */
#ifndef NDEBUG
#define EVPL_OWNER_ONLY(evpl)                                                          \
    do {                                                                               \
        if (unlikely((evpl) && !pthread_equal(pthread_self(), (evpl)->owner))) {       \
            evpl_bug("core", "%s called off the thread that owns the evpl", __func__); \
        }                                                                              \
    } while (0)
#else
#define EVPL_OWNER_ONLY(evpl) ((void) (evpl))
#endif

/* The loop's notion of now in ns: virtual, or CLOCK_MONOTONIC itself (a
 * timer never fires before its delay has passed on that clock). */
static inline uint64_t
evpl__now(const struct evpl *evpl)
{
    (void) evpl;
    if (unlikely(evpl_shared->virtual_clock)) {
        return atomic_load_explicit(&evpl_shared->virtual_now, memory_order_acquire);
    }
    return evpl__mono_ns();
} /* evpl__now */

/* Single-writer counter bump: relaxed load+store, no locked instruction. */
static inline void
evpl_counter_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
} /* evpl_counter_add */

/* The number of the pass under way (or the next one, between passes),
 * never 0: work bounded per pass compares it (owner thread). */
static inline uint64_t
evpl__pass_id(struct evpl *evpl)
{
    return atomic_load_explicit(&evpl->counters.passes, memory_order_relaxed) + 1;
} /* evpl__pass_id */

/* Networking hooks the loop calls (net/bind.c). */
void evpl__binds_finalize(struct evpl *evpl);
void evpl__binds_close_all(struct evpl *evpl);
/* Loop teardown: lookups in flight, lingering sockets. */
void evpl__net_loop_cleanup(struct evpl *evpl);
void evpl__block_loop_cleanup(struct evpl *evpl);

/* Create a loop from a config the caller keeps (NULL: global default). */
struct evpl *evpl__create(const struct evpl_thread_config *config);
