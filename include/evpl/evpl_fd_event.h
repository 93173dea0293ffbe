/* SPDX-License-Identifier: LGPL-2.1-only */
#pragma once

#ifndef EVPL_INCLUDED
#error "Do not include evpl_fd_event.h directly, include evpl/evpl.h instead"
#endif

/* Opaque caller storage for watching a caller-owned descriptor. */
struct evpl_fd_event {
    uint64_t opaque[10];
};

typedef void (*evpl_fd_event_callback_t)(struct evpl *evpl, struct evpl_fd_event *event);

/*
 * Watch a caller-owned non-blocking fd (borrowed; never closed by the
 * library).  Any callback may be NULL.  Nothing is delivered until read or
 * write interest is set.  Readiness is latched: a readable (writable) event
 * with interest gets its callback once per pass until the application marks
 * it unreadable (unwritable).  error_callback runs once per error or
 * hang-up the kernel reports, after that pass's read/write callbacks.
 * Owning thread for every fd event function.
 */
EVPL_API void evpl_add_fd_event(struct evpl *evpl, struct evpl_fd_event *event, int fd,
                                evpl_fd_event_callback_t read_callback,
                                evpl_fd_event_callback_t write_callback,
                                evpl_fd_event_callback_t error_callback);

/* Stop watching; legal from the event's own callbacks.  Storage may then be freed. */
EVPL_API void evpl_remove_fd_event(struct evpl *evpl, struct evpl_fd_event *event);

EVPL_API int evpl_fd_event_fd(struct evpl_fd_event *event);

/* Aborts if the event has no read callback. */
EVPL_API void evpl_fd_event_read_interest(struct evpl *evpl, struct evpl_fd_event *event);

EVPL_API void evpl_fd_event_read_disinterest(struct evpl *evpl, struct evpl_fd_event *event);

/* Aborts if the event has no write callback. */
EVPL_API void evpl_fd_event_write_interest(struct evpl *evpl, struct evpl_fd_event *event);

EVPL_API void evpl_fd_event_write_disinterest(struct evpl *evpl, struct evpl_fd_event *event);

/* Set the readable latch without a kernel report (resume a parked reader). */
EVPL_API void evpl_fd_event_mark_readable(struct evpl *evpl, struct evpl_fd_event *event);

/* Clear the readable latch: call after reading to EAGAIN. */
EVPL_API void evpl_fd_event_mark_unreadable(struct evpl *evpl, struct evpl_fd_event *event);

/* Clear the writable latch: call after a write returned EAGAIN. */
EVPL_API void evpl_fd_event_mark_unwritable(struct evpl *evpl, struct evpl_fd_event *event);
