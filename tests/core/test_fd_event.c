/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Caller-owned fd events (loop.md §6, statements 23-28): latched read
 * readiness, mark_readable, write interest/disinterest/mark_unwritable,
 * removal and freeing from the event's own callback, abort on interest
 * without a callback, hang-up delivery (error callback once per report,
 * our header).  Loops use poll_mode = 0 and wait_ms = 0 so that every
 * evpl_continue is one non-blocking full pass and passes can be counted.
 */
#include "t_loop.h"

#include <fcntl.h>
#include <sys/socket.h>

static int pass_no;

static void
pass(struct evpl *evpl)
{
    pass_no++;
    evpl_continue(evpl);
} /* pass */

static void
passes(struct evpl *evpl, int n)
{
    for (int i = 0; i < n; i++) {
        pass(evpl);
    }
} /* passes */

/* ---- statements 23, 24 -------------------------------------------------- */

struct reader {
    struct evpl_fd_event ev;
    int fd;
    int calls;
    int bytes;
    int eagains;
    int eof;
    int passes_seen[64];
    int calls_this_pass_max;
    int last_pass, calls_in_last_pass;
    int errors;
    char order[64];
    int norder;
};

static void
note_call(struct reader *r, char what)
{
    if (r->last_pass == pass_no) {
        r->calls_in_last_pass++;
    } else {
        r->last_pass = pass_no;
        r->calls_in_last_pass = 1;
    }
    if (r->norder < (int) sizeof(r->order) - 1) {
        r->order[r->norder++] = what;
    }
} /* note_call */

/* Reads ONE byte per call; marks unreadable only on EAGAIN or EOF. */
static void
read_one(struct evpl *evpl, struct evpl_fd_event *ev)
{
    struct reader *r = t_container_of(ev, struct reader, ev);
    char c;
    ssize_t n;

    T_EQ(evpl_fd_event_fd(ev), r->fd);
    if (r->calls < 64) {
        r->passes_seen[r->calls] = pass_no;
    }
    r->calls++;
    note_call(r, 'R');
    if (r->calls_in_last_pass > r->calls_this_pass_max) {
        r->calls_this_pass_max = r->calls_in_last_pass;
    }
    n = read(r->fd, &c, 1);
    if (n == 1) {
        r->bytes++;
    } else if (n == 0) {
        r->eof = 1;
        evpl_fd_event_mark_unreadable(evpl, ev);
    } else {
        T_OK(errno == EAGAIN || errno == EWOULDBLOCK);
        r->eagains++;
        evpl_fd_event_mark_unreadable(evpl, ev);
    }
} /* read_one */

static void
on_error(struct evpl *evpl, struct evpl_fd_event *ev)
{
    struct reader *r = t_container_of(ev, struct reader, ev);

    r->errors++;
    note_call(r, 'E');
} /* on_error */

static void
latched_reads(struct evpl *evpl)
{
    struct reader r;
    int fds[2], i, first, base;

    memset(&r, 0, sizeof(r));
    t_pipe(fds);
    r.fd = fds[0];
    evpl_add_fd_event(evpl, &r.ev, fds[0], read_one, NULL, NULL);
    T_EQ(evpl_fd_event_fd(&r.ev), fds[0]);

    /* nothing is delivered before read interest ... */
    T_EQ(write(fds[1], "a", 1), 1);
    passes(evpl, 5);
    T_EQ(r.calls, 0);
    /* ... and readiness that arrived before it is delivered after it */
    evpl_fd_event_read_interest(evpl, &r.ev);
    passes(evpl, 5);
    T_EQ(r.bytes, 1);
    T_EQ(r.eagains, 1);
    T_EQ(r.calls, 2);

    /* statement 23: k = 5 bytes -> one call per pass on consecutive passes
     * (5 one-byte reads + the EAGAIN one), then nothing until new data */
    base = r.calls;
    T_EQ(write(fds[1], "12345", 5), 5);
    first = pass_no + 1;
    passes(evpl, 6);
    T_EQ(r.calls, base + 6); /* loop 23 */
    T_EQ(r.bytes, 6);
    T_EQ(r.eagains, 2);
    T_EQ(r.calls_this_pass_max, 1); /* loop 23 */
    for (i = 0; i < 6; i++) {
        T_EQ(r.passes_seen[base + i], first + i); /* loop 23 */
    }
    passes(evpl, 20);
    T_EQ(r.calls, base + 6); /* loop 23 */

    /* more bytes: callbacks resume */
    base = r.calls;
    T_EQ(write(fds[1], "xy", 2), 2);
    passes(evpl, 3);
    T_EQ(r.calls, base + 3); /* loop 23 */
    T_EQ(r.bytes, 8);
    passes(evpl, 10);
    T_EQ(r.calls, base + 3); /* loop 23 */

    /* statement 24: mark_readable on the parked event -> one more call
     * without new data (it hits EAGAIN and parks again) */
    base = r.calls;
    evpl_fd_event_mark_readable(evpl, &r.ev);
    pass(evpl);
    T_EQ(r.calls, base + 1); /* loop 24 */
    T_EQ(r.eagains, 4);
    passes(evpl, 10);
    T_EQ(r.calls, base + 1); /* loop 24 */

    /* read_disinterest stops delivery but keeps the latch */
    base = r.calls;
    T_EQ(write(fds[1], "zz", 2), 2);
    pass(evpl);
    T_EQ(r.calls, base + 1);
    evpl_fd_event_read_disinterest(evpl, &r.ev);
    passes(evpl, 10);
    T_EQ(r.calls, base + 1);
    evpl_fd_event_read_interest(evpl, &r.ev);
    passes(evpl, 2);
    T_EQ(r.calls, base + 3); /* the byte left + EAGAIN */
    T_EQ(r.bytes, 10);

    evpl_remove_fd_event(evpl, &r.ev);
    /* after removal nothing is delivered */
    base = r.calls;
    T_EQ(write(fds[1], "q", 1), 1);
    passes(evpl, 5);
    T_EQ(r.calls, base);
    close(fds[0]);
    close(fds[1]);
} /* latched_reads */

/* ---- statement 25 ------------------------------------------------------- */

struct writer {
    struct evpl_fd_event ev;
    int calls;
    int last_pass, per_pass_max, cur;
    int unwritable_at; /* call number that marks unwritable */
};

static void
on_writable(struct evpl *evpl, struct evpl_fd_event *ev)
{
    struct writer *w = t_container_of(ev, struct writer, ev);

    w->calls++;
    if (w->last_pass == pass_no) {
        w->cur++;
    } else {
        w->last_pass = pass_no;
        w->cur = 1;
    }
    if (w->cur > w->per_pass_max) {
        w->per_pass_max = w->cur;
    }
    if (w->unwritable_at && w->calls == w->unwritable_at) {
        evpl_fd_event_mark_unwritable(evpl, ev);
    }
} /* on_writable */

static void
write_interest(struct evpl *evpl)
{
    struct writer w;
    int fds[2];

    memset(&w, 0, sizeof(w));
    t_pipe(fds);
    evpl_add_fd_event(evpl, &w.ev, fds[1], NULL, on_writable, NULL);
    passes(evpl, 3);
    T_EQ(w.calls, 0);

    /* an empty pipe is always writable: one call every pass */
    evpl_fd_event_write_interest(evpl, &w.ev);
    passes(evpl, 5);
    T_EQ(w.calls, 5); /* loop 25 */
    T_EQ(w.per_pass_max, 1);

    /* write_disinterest stops it; the latch is kept, so interest resumes */
    evpl_fd_event_write_disinterest(evpl, &w.ev);
    passes(evpl, 10);
    T_EQ(w.calls, 5); /* loop 25 */
    evpl_fd_event_write_interest(evpl, &w.ev);
    passes(evpl, 3);
    T_EQ(w.calls, 8);

    /* mark_unwritable from the callback stops it (edge-triggered
     * mechanisms report nothing new; select reports the fd again) */
    w.unwritable_at = 9;
    passes(evpl, 10);
    if (!t_mech_is_select()) {
        T_EQ(w.calls, 9); /* loop 25 */
    }
    evpl_remove_fd_event(evpl, &w.ev);
    close(fds[0]);
    close(fds[1]);
} /* write_interest */

/* ---- statement 26 ------------------------------------------------------- */

static int self_remove_reads, self_remove_writes, self_remove_errors;

struct heap_ev {
    struct evpl_fd_event ev;
    int fd;
};

static void
remove_and_free(struct evpl *evpl, struct evpl_fd_event *ev)
{
    struct heap_ev *h = t_container_of(ev, struct heap_ev, ev);

    self_remove_reads++;
    evpl_remove_fd_event(evpl, ev);
    memset(h, 0x5a, sizeof(*h));
    free(h);
} /* remove_and_free */

static void
count_write(struct evpl *evpl, struct evpl_fd_event *ev)
{
    self_remove_writes++;
} /* count_write */

static void
count_error(struct evpl *evpl, struct evpl_fd_event *ev)
{
    self_remove_errors++;
} /* count_error */

static void
remove_from_own_callback(struct evpl *evpl)
{
    struct heap_ev *h;
    int fds[2], sv[2];
    char buf[8];

    /* pipe: remove + free in the read callback; the fd stays open */
    t_pipe(fds);
    h = calloc(1, sizeof(*h));
    h->fd = fds[0];
    evpl_add_fd_event(evpl, &h->ev, fds[0], remove_and_free, NULL, NULL);
    evpl_fd_event_read_interest(evpl, &h->ev);
    T_EQ(write(fds[1], "ab", 2), 2);
    passes(evpl, 3);
    T_EQ(self_remove_reads, 1); /* loop 26 */
    T_EQ(write(fds[1], "cd", 2), 2);
    passes(evpl, 5);
    T_EQ(self_remove_reads, 1);              /* loop 26 */
    T_NE(fcntl(fds[0], F_GETFD), -1);        /* the library never closes it */
    T_EQ(read(fds[0], buf, sizeof(buf)), 4); /* loop 26 */
    close(fds[0]);
    close(fds[1]);

    /* socket both readable and writable (and later hung up) in one pass:
     * once the read callback removed and freed the event, neither the
     * write nor the error callback of that pass may run */
    T_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    h = calloc(1, sizeof(*h));
    h->fd = sv[0];
    evpl_add_fd_event(evpl, &h->ev, sv[0], remove_and_free, count_write, count_error);
    T_EQ(write(sv[1], "x", 1), 1);
    close(sv[1]);
    evpl_fd_event_write_interest(evpl, &h->ev);
    evpl_fd_event_read_interest(evpl, &h->ev);
    self_remove_reads = 0;
    passes(evpl, 5);
    T_EQ(self_remove_reads, 1); /* loop 26 */
    /* both interests were set before the first pass, so the read callback
     * (dispatched first) removed the event before any write/error one */
    T_EQ(self_remove_writes, 0); /* loop 26 */
    T_EQ(self_remove_errors, 0); /* loop 26 */
    T_NE(fcntl(sv[0], F_GETFD), -1);
    close(sv[0]);
} /* remove_from_own_callback */

/* ---- statement 27 ------------------------------------------------------- */

static void
on_any(struct evpl *evpl, struct evpl_fd_event *ev)
{
} /* on_any */

static void
read_interest_without_cb(void *arg)
{
    struct evpl *evpl = t_loop_create(0, 0);
    struct evpl_fd_event ev;
    int fds[2];

    t_pipe(fds);
    evpl_add_fd_event(evpl, &ev, fds[0], NULL, on_any, on_any);
    evpl_fd_event_read_interest(evpl, &ev);
} /* read_interest_without_cb */

static void
write_interest_without_cb(void *arg)
{
    struct evpl *evpl = t_loop_create(0, 0);
    struct evpl_fd_event ev;
    int fds[2];

    t_pipe(fds);
    evpl_add_fd_event(evpl, &ev, fds[1], on_any, NULL, on_any);
    evpl_fd_event_write_interest(evpl, &ev);
} /* write_interest_without_cb */

/* ---- statement 28 ------------------------------------------------------- */

static void
hangup(struct evpl *evpl)
{
    struct reader r;
    int fds[2], i, errors;
    uint64_t t0;

    memset(&r, 0, sizeof(r));
    t_pipe(fds);
    r.fd = fds[0];
    evpl_add_fd_event(evpl, &r.ev, fds[0], read_one, NULL, on_error);
    evpl_fd_event_read_interest(evpl, &r.ev);
    passes(evpl, 3);
    T_EQ(write(fds[1], "z", 1), 1);
    close(fds[1]);
    t0 = t_now_ns();
    while (!r.eof && r.errors == 0) {
        if (t_now_ns() - t0 > 2000000000ull) {
            T_FAIL("closing the write end delivered neither error_cb nor EOF");
        }
        pass(evpl);
    }
    passes(evpl, 5);
    T_OK(r.eof || r.errors > 0); /* loop 28 */
    T_EQ(r.bytes, 1);
    /* the error callback comes after the read callback of its pass */
    for (i = 1; i < r.norder; i++) {
        if (r.order[i] == 'E') {
            T_EQ(r.order[i - 1], 'R');
            break;
        }
    }
    /* our header: error_callback runs once per reported error, not on every
     * later pass; an edge-triggered mechanism reports the hang-up once */
    if (!t_mech_is_select()) {
        T_EQ(r.errors, 1);
        errors = r.errors;
        passes(evpl, 20);
        T_EQ(r.errors, errors);
    }
    evpl_remove_fd_event(evpl, &r.ev);
    close(fds[0]);
} /* hangup */

/* A read callback that removes its event and adds it again (same storage,
 * same fd, interest and readiness set) runs once per pass, not again and
 * again inside one (evpl_continue never returned: helper-80). */
static struct evpl_fd_event readd_ev;
static int readd_fd, readd_calls;

static void
readd_read(struct evpl *evpl, struct evpl_fd_event *event)
{
    (void) event;
    readd_calls++;
    T_OK(readd_calls < 1000);
    evpl_remove_fd_event(evpl, &readd_ev);
    evpl_add_fd_event(evpl, &readd_ev, readd_fd, readd_read, NULL, NULL);
    evpl_fd_event_read_interest(evpl, &readd_ev);
    evpl_fd_event_mark_readable(evpl, &readd_ev);
} /* readd_read */

static void
readd_in_own_callback(struct evpl *evpl)
{
    int fds[2];

    T_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    readd_fd = fds[0];
    evpl_add_fd_event(evpl, &readd_ev, readd_fd, readd_read, NULL, NULL);
    evpl_fd_event_read_interest(evpl, &readd_ev);
    evpl_fd_event_mark_readable(evpl, &readd_ev);
    for (int i = 1; i <= 5; i++) {
        pass(evpl);
        T_EQ(readd_calls, i);
    }
    evpl_remove_fd_event(evpl, &readd_ev);
    close(fds[0]);
    close(fds[1]);
} /* readd_in_own_callback */

int
main(void)
{
    struct evpl *evpl;

    alarm(30);
    T_OK(sizeof(struct evpl_fd_event) == 80);
    evpl_init(t_global_config());

    T_EQ(t_child_signal(read_interest_without_cb, NULL), SIGABRT);  /* loop 27 */
    T_EQ(t_child_signal(write_interest_without_cb, NULL), SIGABRT); /* loop 27 */

    evpl = t_loop_create(0, 0);
    latched_reads(evpl);            /* loop 23, 24 */
    write_interest(evpl);           /* loop 25 */
    remove_from_own_callback(evpl); /* loop 26 */
    hangup(evpl);                   /* loop 28 */
    readd_in_own_callback(evpl);    /* loop 23: once per pass */
    evpl_destroy(evpl);
    return 0;
} /* main */
