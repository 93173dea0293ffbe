/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Helpers for the HTTP/2 test programs (tests/http/test_h2*.c).  Not a
 * test program itself.
 *
 * - t_ev_match: callback sequences against a small pattern language
 *   ("x?" optional, "x*" any number, "x+" at least one);
 * - t_h2peer: a raw HTTP/2 peer (client or server) built on nghttp2 over a
 *   t_raw socket, driven from the main thread between loop passes
 *   (only when the test was built with nghttp2: T_HAVE_NGHTTP2);
 * - t_tool_run: run an external tool (curl, h2load ...) while the loop
 *   keeps running, with a deadline.
 *
 * HTTP/2 in libevpl_http exists only when it was built with nghttp2; the
 * tests build against the same library (tests/CMakeLists.txt), and skip
 * (77) without it.
 */
#pragma once

#include "t_http.h"

#include <sys/wait.h>

#ifdef T_HAVE_NGHTTP2
#include <nghttp2/nghttp2.h>
#endif

static inline void
t_h2_require(void)
{
#ifndef T_HAVE_NGHTTP2
    T_SKIP("built without nghttp2: no HTTP/2 to test");
#endif
} /* t_h2_require */

/* ------------------------------------------------------------------ */
/* event sequences                                                     */
/* ------------------------------------------------------------------ */

/* Does ev match pat?  A pattern character may be followed by '?' (0 or 1),
 * '*' (any number) or '+' (1 or more). */
static inline int
t_ev_match(const char *ev, const char *pat)
{
    char c, q;

    if (!*pat) {
        return !*ev;
    }
    c = pat[0];
    q = pat[1];
    if (q == '?' || q == '*' || q == '+') {
        int max = q == '?' ? 1 : 1 << 20, min = q == '+' ? 1 : 0, n = 0;

        /* try every run length, shortest first */
        for (;;) {
            if (n >= min && t_ev_match(ev + n, pat + 2)) {
                return 1;
            }
            if (n >= max || ev[n] != c) {
                return 0;
            }
            n++;
        }
    }
    return *ev == c && t_ev_match(ev + 1, pat + 1);
} /* t_ev_match */

#define T_EV_MATCH(what, ev, pat)                                                 \
    do {                                                                          \
        if (!t_ev_match((ev), (pat))) {                                           \
            T_FAIL("%s: events \"%s\" do not match \"%s\"", (what), (ev), (pat)); \
        }                                                                         \
        fprintf(stderr, "  ok: %s events %s ~ %s\n", (what), (ev), (pat));        \
    } while (0)

/* "name: value\n" present in a field dump made by t_fields_cb */
static inline int
t_has_field(struct t_buf *b, const char *line)
{
    return strstr(t_buf_str(b), line) != NULL;
} /* t_has_field */

/* A field of this name (ASCII case-insensitive) in a dump. */
static inline int
t_has_field_name(struct t_buf *b, const char *name)
{
    const char *p = t_buf_str(b);
    size_t n = strlen(name);

    while (*p) {
        const char *nl = strchr(p, '\n');

        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            return 1;
        }
        if (!nl) {
            break;
        }
        p = nl + 1;
    }
    return 0;
} /* t_has_field_name */

/* ------------------------------------------------------------------ */
/* external tools                                                      */
/* ------------------------------------------------------------------ */

static inline int
t_tool_exists(const char *name)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
} /* t_tool_exists */

/*
 * Run argv (stdout and stderr into out) while pumping the loops (evpl2 may
 * be NULL).  Returns the exit status (or 128 + signal); fails after
 * timeout_ms.
 */
static inline int
t_tool_run(struct evpl *evpl, struct evpl *evpl2, char *const argv[], struct t_buf *out,
           unsigned int timeout_ms)
{
    int pfd[2], status = 0, done = 0, eof = 0;
    uint64_t deadline = t_now_ns() + (uint64_t) timeout_ms * 1000000ull;
    pid_t pid;

    T_EQ(pipe(pfd), 0);
    fprintf(stderr, "  run:");
    for (int i = 0; argv[i]; i++) {
        fprintf(stderr, " %s", argv[i]);
    }
    fprintf(stderr, "\n");
    pid = fork();
    T_OK(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    t_set_nonblock(pfd[0]);
    while (!done || !eof) {
        char buf[4096];
        ssize_t n;

        while (!eof && (n = read(pfd[0], buf, sizeof(buf))) != 0) {
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                break;
            }
            t_buf_add(out, buf, (size_t) n);
        }
        if (n == 0) {
            eof = 1;
        }
        if (!done && waitpid(pid, &status, WNOHANG) == pid) {
            done = 1;
        }
        if (t_now_ns() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            T_FAIL("%s did not finish within %u ms; output:\n%s", argv[0], timeout_ms,
                   t_buf_str(out));
        }
        t_raw_all_io();
        evpl_continue(evpl);
        if (evpl2) {
            evpl_continue(evpl2);
        }
    }
    close(pfd[0]);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
} /* t_tool_run */

/* ------------------------------------------------------------------ */
/* a raw HTTP/2 peer on nghttp2                                        */
/* ------------------------------------------------------------------ */
/* raw HTTP/2 frames a t_raw received                                  */
/* ------------------------------------------------------------------ */

/* The 9-byte header of the first whole frame of `type` on stream `sid`
 * (any stream when sid < 0) among the frames a raw connection has
 * received (the payload follows it); NULL while there is none. */
static inline const unsigned char *
t_raw_h2_frame(const struct t_raw *raw, int type, int64_t sid)
{
    const unsigned char *q = (const unsigned char *) raw->in.p;
    size_t off = 0;

    while (off + 9 <= raw->in.len) {
        size_t len = ((size_t) q[off] << 16) | ((size_t) q[off + 1] << 8) | q[off + 2];
        uint32_t s = ((uint32_t) (q[off + 5] & 0x7f) << 24) | ((uint32_t) q[off + 6] << 16) |
                     ((uint32_t) q[off + 7] << 8) | q[off + 8];

        if (off + 9 + len > raw->in.len) {
            break;
        }
        if (q[off + 3] == type && (sid < 0 || s == (uint32_t) sid)) {
            return q + off;
        }
        off += 9 + len;
    }
    return NULL;
} /* t_raw_h2_frame */

/* ------------------------------------------------------------------ */

#ifdef T_HAVE_NGHTTP2

#define T_H2_MAXSTREAMS 64

struct t_h2peer;

struct t_h2s {
    int32_t id;
    int used;
    struct t_buf hdrs;     /* first header block, "name: value\n" (pseudo fields too) */
    struct t_buf trailers; /* a later header block */
    struct t_buf body;
    int nblocks;
    int status; /* :status (client peer) */
    int end;    /* END_STREAM received */
    int closed;
    uint32_t close_error;
    int rst; /* RST_STREAM received */
    uint32_t rst_code;
    /* outbound body for a data provider */
    struct t_buf out;
    size_t out_off;
    int out_open; /* more body comes later: defer when out is exhausted */
};

struct t_h2peer {
    struct t_raw *raw;
    nghttp2_session *s;
    int server;
    struct t_h2s st[T_H2_MAXSTREAMS];
    int goaway;
    uint32_t goaway_code;
    int err; /* nghttp2_session_mem_recv / send failed */
    int settings_recv;
    int active;
};

#define T_H2_MAXPEERS 8
static struct t_h2peer *t_h2peers[T_H2_MAXPEERS];

static inline struct t_h2s *
t_h2s_get(struct t_h2peer *p, int32_t id)
{
    for (int i = 0; i < T_H2_MAXSTREAMS; i++) {
        if (p->st[i].used && p->st[i].id == id) {
            return &p->st[i];
        }
    }
    for (int i = 0; i < T_H2_MAXSTREAMS; i++) {
        if (!p->st[i].used) {
            memset(&p->st[i], 0, sizeof(p->st[i]));
            p->st[i].used = 1;
            p->st[i].id = id;
            return &p->st[i];
        }
    }
    T_FAIL("raw h2 peer: too many streams");
    return NULL;
} /* t_h2s_get */

static inline ssize_t
t_h2_send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *user)
{
    struct t_h2peer *p = user;

    (void) s;
    (void) flags;
    if (!p->raw || p->raw->fd < 0) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    t_raw_send(p->raw, data, len);
    return (ssize_t) len;
} /* t_h2_send_cb */

static inline int
t_h2_begin_headers_cb(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    (void) s;
    if (f->hd.type == NGHTTP2_HEADERS) {
        struct t_h2s *st = t_h2s_get(user, f->hd.stream_id);

        st->nblocks++;
    }
    return 0;
} /* t_h2_begin_headers_cb */

static inline int
t_h2_header_cb(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
               const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    struct t_h2s *st = t_h2s_get(user, f->hd.stream_id);
    struct t_buf *b = st->nblocks > 1 ? &st->trailers : &st->hdrs;

    (void) s;
    (void) flags;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        st->status = atoi((const char *) value);
    }
    t_buf_add(b, name, namelen);
    t_buf_adds(b, ": ");
    t_buf_add(b, value, valuelen);
    t_buf_adds(b, "\n");
    return 0;
} /* t_h2_header_cb */

static inline int
t_h2_data_cb(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
             void *user)
{
    (void) s;
    (void) flags;
    t_buf_add(&t_h2s_get(user, id)->body, data, len);
    return 0;
} /* t_h2_data_cb */

static inline int
t_h2_frame_recv_cb(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    struct t_h2peer *p = user;

    (void) s;
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
        p->settings_recv++;
    }
    if (f->hd.type == NGHTTP2_GOAWAY) {
        p->goaway = 1;
        p->goaway_code = f->goaway.error_code;
    }
    if (f->hd.type == NGHTTP2_RST_STREAM) {
        struct t_h2s *st = t_h2s_get(p, f->hd.stream_id);

        st->rst = 1;
        st->rst_code = f->rst_stream.error_code;
    }
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        t_h2s_get(p, f->hd.stream_id)->end = 1;
    }
    return 0;
} /* t_h2_frame_recv_cb */

static inline int
t_h2_stream_close_cb(nghttp2_session *s, int32_t id, uint32_t error_code, void *user)
{
    struct t_h2s *st = t_h2s_get(user, id);

    (void) s;
    st->closed = 1;
    st->close_error = error_code;
    return 0;
} /* t_h2_stream_close_cb */

static inline ssize_t
t_h2_read_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
             nghttp2_data_source *src, void *user)
{
    struct t_h2s *st = src->ptr;
    size_t n = st->out.len - st->out_off;

    (void) s;
    (void) id;
    (void) user;
    if (n > length) {
        n = length;
    }
    if (n == 0 && st->out_open) {
        return NGHTTP2_ERR_DEFERRED;
    }
    memcpy(buf, st->out.p + st->out_off, n);
    st->out_off += n;
    if (st->out_off == st->out.len && !st->out_open) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t) n;
} /* t_h2_read_cb */

/* A raw HTTP/2 peer on r (server: a connection our client opened; client:
 * a connection to our server).  Sends its SETTINGS (and, as a client, the
 * preface) on the next pump. */
static inline void
t_h2peer_init(struct t_h2peer *p, struct t_raw *r, int server)
{
    nghttp2_session_callbacks *cb;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};

    memset(p, 0, sizeof(*p));
    p->raw = r;
    p->server = server;
    T_EQ(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_send_callback(cb, t_h2_send_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, t_h2_begin_headers_cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, t_h2_header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, t_h2_data_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, t_h2_frame_recv_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, t_h2_stream_close_cb);
    T_EQ(server ? nghttp2_session_server_new(&p->s, cb, p)
                : nghttp2_session_client_new(&p->s, cb, p),
         0);
    nghttp2_session_callbacks_del(cb);
    T_EQ(nghttp2_submit_settings(p->s, NGHTTP2_FLAG_NONE, iv, 1), 0);
    p->active = 1;
    for (int i = 0; i < T_H2_MAXPEERS; i++) {
        if (!t_h2peers[i]) {
            t_h2peers[i] = p;
            return;
        }
    }
    T_FAIL("too many raw h2 peers");
} /* t_h2peer_init */

static inline void
t_h2peer_free(struct t_h2peer *p)
{
    for (int i = 0; i < T_H2_MAXPEERS; i++) {
        if (t_h2peers[i] == p) {
            t_h2peers[i] = NULL;
        }
    }
    if (p->s) {
        nghttp2_session_del(p->s);
    }
    for (int i = 0; i < T_H2_MAXSTREAMS; i++) {
        t_buf_free(&p->st[i].hdrs);
        t_buf_free(&p->st[i].trailers);
        t_buf_free(&p->st[i].body);
        t_buf_free(&p->st[i].out);
    }
    memset(p, 0, sizeof(*p));
} /* t_h2peer_free */

/* feed what arrived, then queue what nghttp2 wants to send */
static inline void
t_h2peer_io(struct t_h2peer *p)
{
    if (!p->active || !p->raw || p->raw->fd < 0) {
        return;
    }
    if (p->raw->in.len && !p->err) {
        ssize_t rv = nghttp2_session_mem_recv(p->s, (const uint8_t *) p->raw->in.p, p->raw->in.len);

        if (rv < 0) {
            fprintf(stderr, "raw h2 peer: mem_recv: %s\n", nghttp2_strerror((int) rv));
            p->err = (int) rv;
        } else {
            t_buf_consume(&p->raw->in, (size_t) rv);
        }
    }
    if (!p->err) {
        int rv = nghttp2_session_send(p->s);

        if (rv) {
            fprintf(stderr, "raw h2 peer: send: %s\n", nghttp2_strerror(rv));
            p->err = rv;
        }
    }
} /* t_h2peer_io */

static inline void
t_h2_all_io(void)
{
    for (int i = 0; i < T_H2_MAXPEERS; i++) {
        if (t_h2peers[i]) {
            t_h2peer_io(t_h2peers[i]);
        }
    }
} /* t_h2_all_io */

#define T_NV(n, v) \
    ((nghttp2_nv){(uint8_t *) (n), (uint8_t *) (v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE})

/*
 * Client peer: submit a request (method, path; authority "h2.test").
 * body: NULL = no body (END_STREAM on HEADERS); else its bytes, and open:
 * the body continues later (t_h2peer_more).  Returns the stream id.
 */
static inline int32_t
t_h2peer_request(struct t_h2peer *p, const char *method, const char *path, const char *body,
                 size_t bodylen, int open)
{
    nghttp2_nv nv[] = {T_NV(":method", method), T_NV(":scheme", "http"),
                       T_NV(":authority", "h2.test"), T_NV(":path", path)};
    nghttp2_data_provider dp;
    struct t_h2s tmp;
    int32_t id;

    memset(&tmp, 0, sizeof(tmp));
    if (!body) {
        id = nghttp2_submit_request(p->s, NULL, nv, 4, NULL, NULL);
        T_GT(id, 0);
        t_h2s_get(p, id);
        return id;
    }
    /* the stream id is known only after submitting: a provisional slot */
    id = nghttp2_session_get_next_stream_id(p->s);
    {
        struct t_h2s *st = t_h2s_get(p, (int32_t) id);

        t_buf_add(&st->out, body, bodylen);
        st->out_open = open;
        dp.source.ptr = st;
        dp.read_callback = t_h2_read_cb;
        T_EQ(nghttp2_submit_request(p->s, NULL, nv, 4, &dp, NULL), id);
    }
    return id;
} /* t_h2peer_request */

/* Client peer: a GET with exactly these header fields (pseudo ones
 * included), no body.  Returns the stream id. */
static inline int32_t
t_h2peer_request_nv(struct t_h2peer *p, const nghttp2_nv *nv, size_t n)
{
    int32_t id = nghttp2_submit_request(p->s, NULL, nv, n, NULL, NULL);

    T_GT(id, 0);
    t_h2s_get(p, id);
    return id;
} /* t_h2peer_request_nv */

/* more body for an open stream (last: end it) */
static inline void
t_h2peer_more(struct t_h2peer *p, int32_t id, const char *body, size_t len, int last)
{
    struct t_h2s *st = t_h2s_get(p, id);

    t_buf_add(&st->out, body, len);
    st->out_open = !last;
    T_EQ(nghttp2_session_resume_data(p->s, id), 0);
} /* t_h2peer_more */

/* Server peer: answer stream id with status and body (NULL: none). */
static inline void
t_h2peer_respond(struct t_h2peer *p, int32_t id, const char *status, const char *body)
{
    nghttp2_nv nv[] = {T_NV(":status", status)};
    struct t_h2s *st = t_h2s_get(p, id);
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = t_h2_read_cb};

    if (body) {
        t_buf_adds(&st->out, body);
    }
    T_EQ(nghttp2_submit_response(p->s, id, nv, 1, body ? &dp : NULL), 0);
} /* t_h2peer_respond */

static inline void
t_h2peer_rst(struct t_h2peer *p, int32_t id, uint32_t code)
{
    T_EQ(nghttp2_submit_rst_stream(p->s, NGHTTP2_FLAG_NONE, id, code), 0);
} /* t_h2peer_rst */

/* count of streams the peer has seen (server peer: requests begun) */
static inline int
t_h2peer_nstreams(struct t_h2peer *p)
{
    int n = 0;

    for (int i = 0; i < T_H2_MAXSTREAMS; i++) {
        n += p->st[i].used;
    }
    return n;
} /* t_h2peer_nstreams */

/* the n-th stream by id order among those used */
static inline struct t_h2s *
t_h2peer_stream_nth(struct t_h2peer *p, int n)
{
    struct t_h2s *sorted[T_H2_MAXSTREAMS];
    int k = 0;

    for (int i = 0; i < T_H2_MAXSTREAMS; i++) {
        if (p->st[i].used) {
            int j = k++;

            while (j > 0 && sorted[j - 1]->id > p->st[i].id) {
                sorted[j] = sorted[j - 1];
                j--;
            }
            sorted[j] = &p->st[i];
        }
    }
    T_OK(n < k);
    return sorted[n];
} /* t_h2peer_stream_nth */

#else
static inline void
t_h2_all_io(void)
{
}
#endif /* T_HAVE_NGHTTP2 */

/*
 * Run loop passes (evpl2 too, when not NULL), the raw sockets and the raw
 * h2 peers until cond holds; fail after timeout_ms.
 */
#define T_H2PUMP2(lp_, lp2_, cond, timeout_ms)                                             \
    do {                                                                                   \
        uint64_t t_deadline_ = t_now_ns() + (uint64_t) (timeout_ms) *1000000ull;           \
        for (;;) {                                                                         \
            t_raw_all_io();                                                                \
            t_h2_all_io();                                                                 \
            t_raw_all_io();                                                                \
            if (cond) {                                                                    \
                break;                                                                     \
            }                                                                              \
            if (t_now_ns() > t_deadline_) {                                                \
                T_FAIL("timed out after %d ms waiting for %s", (int) (timeout_ms), #cond); \
            }                                                                              \
            evpl_continue(lp_);                                                            \
            if ((lp2_) != NULL) {                                                          \
                evpl_continue(lp2_);                                                       \
            }                                                                              \
        }                                                                                  \
    } while (0)

#define T_H2PUMP(lp_, cond, timeout_ms) T_H2PUMP2(lp_, (struct evpl *) NULL, cond, timeout_ms)

static inline void
t_h2pump_for(struct evpl *evpl, struct evpl *evpl2, unsigned int ms)
{
    uint64_t deadline = t_now_ns() + (uint64_t) ms * 1000000ull;

    while (t_now_ns() < deadline) {
        t_raw_all_io();
        t_h2_all_io();
        t_raw_all_io();
        evpl_continue(evpl);
        if (evpl2) {
            evpl_continue(evpl2);
        }
    }
    t_raw_all_io();
    t_h2_all_io();
    t_raw_all_io();
} /* t_h2pump_for */
