/* SPDX-License-Identifier: LGPL-2.1-only */
/* Caller-owned file descriptors watched by the loop. */
#include <errno.h>
#include <string.h>

#include "core/internal.h"

struct evpl_fd_event_impl {
    struct evpl_event event;
    evpl_fd_event_callback_t read_callback;
    evpl_fd_event_callback_t write_callback;
    evpl_fd_event_callback_t error_callback;
};

_Static_assert(sizeof(struct evpl_fd_event_impl) <= sizeof(struct evpl_fd_event),
               "fd event state must fit the public 80-byte storage");

#define IMPL(ev) ((struct evpl_fd_event_impl *) (ev))

static void
fd_read(struct evpl *evpl, struct evpl_event *event)
{
    IMPL(event)->read_callback(evpl, (struct evpl_fd_event *) event);
} /* fd_read */

static void
fd_write(struct evpl *evpl, struct evpl_event *event)
{
    IMPL(event)->write_callback(evpl, (struct evpl_fd_event *) event);
} /* fd_write */

static void
fd_error(struct evpl *evpl, struct evpl_event *event)
{
    IMPL(event)->error_callback(evpl, (struct evpl_fd_event *) event);
} /* fd_error */

EVPL_API void
evpl_add_fd_event(struct evpl *evpl, struct evpl_fd_event *event, int fd,
                  evpl_fd_event_callback_t read_callback, evpl_fd_event_callback_t write_callback,
                  evpl_fd_event_callback_t error_callback)
{
    EVPL_OWNER_ONLY(evpl);
    struct evpl_fd_event_impl *e = IMPL(event);
    int rc;

    if (fd < 0) {
        evpl_bug("core", "evpl_add_fd_event: invalid fd %d", fd);
    }
    memset(event, 0, sizeof(*event));
    evpl__event_init(&e->event, fd, fd_read, fd_write, error_callback ? fd_error : NULL);
    e->event.flags = EVPL_EV_WANT_WRITE;
    e->read_callback = read_callback;
    e->write_callback = write_callback;
    e->error_callback = error_callback;

    rc = evpl__event_add(evpl, &e->event);
    if (rc == -EPERM) {
        /* regular files and the like cannot be polled: always ready */
        evpl_log_debug("core", "fd %d cannot be polled; treating it as always ready", fd);
        e->event.flags |= EVPL_EV_READABLE | EVPL_EV_WRITABLE;
    } else if (rc < 0) {
        evpl_bug("core", "evpl_add_fd_event: cannot watch fd %d: %s", fd, strerror(-rc));
    }
} /* evpl_add_fd_event */

EVPL_API void
evpl_remove_fd_event(struct evpl *evpl, struct evpl_fd_event *event)
{
    EVPL_OWNER_ONLY(evpl);
    evpl__event_remove(evpl, &IMPL(event)->event);
} /* evpl_remove_fd_event */

EVPL_API int
evpl_fd_event_fd(struct evpl_fd_event *event)
{
    return IMPL(event)->event.fd;
} /* evpl_fd_event_fd */

EVPL_API void
evpl_fd_event_read_interest(struct evpl *evpl, struct evpl_fd_event *event)
{
    EVPL_OWNER_ONLY(evpl);
    if (!IMPL(event)->read_callback) {
        evpl_bug("core", "evpl_fd_event_read_interest: event has no read callback");
    }
    evpl__event_set(evpl, &IMPL(event)->event, EVPL_EV_READ_INTEREST);
} /* evpl_fd_event_read_interest */

EVPL_API void
evpl_fd_event_read_disinterest(struct evpl *evpl, struct evpl_fd_event *event)
{
    EVPL_OWNER_ONLY(evpl);
    evpl__event_clear(evpl, &IMPL(event)->event, EVPL_EV_READ_INTEREST);
} /* evpl_fd_event_read_disinterest */

EVPL_API void
evpl_fd_event_write_interest(struct evpl *evpl, struct evpl_fd_event *event)
{
    EVPL_OWNER_ONLY(evpl);
    if (!IMPL(event)->write_callback) {
        evpl_bug("core", "evpl_fd_event_write_interest: event has no write callback");
    }
    evpl__event_set(evpl, &IMPL(event)->event, EVPL_EV_WRITE_INTEREST);
} /* evpl_fd_event_write_interest */

EVPL_API void
evpl_fd_event_write_disinterest(struct evpl *evpl, struct evpl_fd_event *event)
{
    EVPL_OWNER_ONLY(evpl);
    evpl__event_clear(evpl, &IMPL(event)->event, EVPL_EV_WRITE_INTEREST);
} /* evpl_fd_event_write_disinterest */

EVPL_API void
evpl_fd_event_mark_readable(struct evpl *evpl, struct evpl_fd_event *event)
{
    EVPL_OWNER_ONLY(evpl);
    evpl__event_set(evpl, &IMPL(event)->event, EVPL_EV_READABLE);
} /* evpl_fd_event_mark_readable */

EVPL_API void
evpl_fd_event_mark_unreadable(struct evpl *evpl, struct evpl_fd_event *event)
{
    EVPL_OWNER_ONLY(evpl);
    evpl__event_clear(evpl, &IMPL(event)->event, EVPL_EV_READABLE);
} /* evpl_fd_event_mark_unreadable */

EVPL_API void
evpl_fd_event_mark_unwritable(struct evpl *evpl, struct evpl_fd_event *event)
{
    EVPL_OWNER_ONLY(evpl);
    evpl__event_clear(evpl, &IMPL(event)->event, EVPL_EV_WRITABLE);
} /* evpl_fd_event_mark_unwritable */
