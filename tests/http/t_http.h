/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Helpers shared by the HTTP test programs (tests/http).  Not a test
 * program itself: only files named test_*.c are.
 *
 * Black-box, from http.md only: the HTTP agent runs on one evpl loop on the
 * main thread; the peers are raw nonblocking TCP sockets driven from the
 * same thread between loop passes (t_raw: a client talking to our server,
 * t_rawsrv: a listening socket our client connects to).  Every pump has a
 * deadline, so a broken implementation fails instead of hanging.
 */
#pragma once

#include <evpl/evpl_http.h>

#include "../net/t_net.h"

#include <ctype.h>
#include <fcntl.h>
#include <poll.h>

/* ------------------------------------------------------------------ */
/* growable, NUL-terminated byte buffer                                */
/* ------------------------------------------------------------------ */

struct t_buf {
    char *p;
    size_t len, cap;
};

static inline void
t_buf_add(struct t_buf *b, const void *d, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;

        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->p = realloc(b->p, cap);
        T_OK(b->p != NULL);
        b->cap = cap;
    }
    if (n) {
        memcpy(b->p + b->len, d, n);
    }
    b->len += n;
    b->p[b->len] = '\0';
} /* t_buf_add */

static inline void
t_buf_adds(struct t_buf *b, const char *s)
{
    t_buf_add(b, s, strlen(s));
} /* t_buf_adds */

static inline void
t_buf_consume(struct t_buf *b, size_t n)
{
    T_OK(n <= b->len);
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
    if (b->p) {
        b->p[b->len] = '\0';
    }
} /* t_buf_consume */

static inline void
t_buf_free(struct t_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
} /* t_buf_free */

static inline const char *
t_buf_str(struct t_buf *b)
{
    return b->p ? b->p : "";
} /* t_buf_str */

/* printable rendering of some bytes for failure messages */
static inline const char *
t_esc(const char *p, size_t n)
{
    static char out[4][2048];
    static int which;
    char *o = out[which++ & 3];
    size_t k = 0;

    for (size_t i = 0; i < n && k < sizeof(out[0]) - 8; i++) {
        unsigned char c = (unsigned char) p[i];

        if (c == '\r') {
            k += (size_t) sprintf(o + k, "\\r");
        } else if (c == '\n') {
            k += (size_t) sprintf(o + k, "\\n");
        } else if (c < 32 || c > 126) {
            k += (size_t) sprintf(o + k, "\\x%02x", c);
        } else {
            o[k++] = (char) c;
        }
    }
    o[k] = '\0';
    return o;
} /* t_esc */

#define T_BYTES_EQ(got, gotlen, want)                                                          \
    do {                                                                                       \
        const char *t_g_ = (got), *t_w_ = (want);                                              \
        size_t t_gl_ = (gotlen), t_wl_ = strlen(t_w_);                                         \
        if (t_gl_ != t_wl_ || memcmp(t_g_, t_w_, t_wl_) != 0) {                                \
            T_FAIL("%s == %s:\n   got \"%s\"\n  want \"%s\"", #got, #want, t_esc(t_g_, t_gl_), \
                   t_esc(t_w_, t_wl_));                                                        \
        }                                                                                      \
        fprintf(stderr, "  ok: %s\n", t_esc(t_w_, t_wl_ > 120 ? 120 : t_wl_));                 \
    } while (0)

/* ------------------------------------------------------------------ */
/* raw nonblocking stream peers                                        */
/* ------------------------------------------------------------------ */

struct t_raw {
    int fd;
    struct t_buf out;
    size_t out_off;
    struct t_buf in;
    int eof;   /* read returned 0 */
    int reset; /* read/write error (ECONNRESET, EPIPE) */
    int registered;
};

#define T_RAW_MAX 64
static struct t_raw *t_raws[T_RAW_MAX];

struct t_rawsrv {
    int lfd, port;
    struct t_raw conns[16];
    int nconns;
};
static struct t_rawsrv *t_rawsrvs[4];

static inline void
t_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    T_OK(fl >= 0);
    T_EQ(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
} /* t_set_nonblock */

static inline void
t_raw_register(struct t_raw *r)
{
    for (int i = 0; i < T_RAW_MAX; i++) {
        if (!t_raws[i]) {
            t_raws[i] = r;
            r->registered = 1;
            return;
        }
    }
    T_FAIL("too many raw peers");
} /* t_raw_register */

static inline void
t_raw_init_fd(struct t_raw *r, int fd)
{
    memset(r, 0, sizeof(*r));
    r->fd = fd;
    t_set_nonblock(fd);
    t_raw_register(r);
} /* t_raw_init_fd */

/* A raw client connected to ep (127.0.0.1:port). */
static inline void
t_raw_open(struct t_raw *r, struct evpl_endpoint *ep)
{
    int fd = t_raw_connect(ep), one = 1;

    T_OK(fd >= 0);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    t_raw_init_fd(r, fd);
} /* t_raw_open */

static inline void
t_raw_close(struct t_raw *r)
{
    if (r->registered) {
        for (int i = 0; i < T_RAW_MAX; i++) {
            if (t_raws[i] == r) {
                t_raws[i] = NULL;
            }
        }
        r->registered = 0;
    }
    if (r->fd >= 0) {
        close(r->fd);
    }
    r->fd = -1;
    t_buf_free(&r->in);
    t_buf_free(&r->out);
} /* t_raw_close */

/* Close with an RST (SO_LINGER 0). */
static inline void
t_raw_abort(struct t_raw *r)
{
    struct linger lg = {1, 0};

    if (r->fd >= 0) {
        setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    t_raw_close(r);
} /* t_raw_abort */

static inline void
t_raw_send(struct t_raw *r, const void *p, size_t n)
{
    t_buf_add(&r->out, p, n);
} /* t_raw_send */

static inline void
t_raw_sends(struct t_raw *r, const char *s)
{
    t_raw_send(r, s, strlen(s));
} /* t_raw_sends */

static inline int
t_raw_out_pending(struct t_raw *r)
{
    return r->out_off < r->out.len;
} /* t_raw_out_pending */

static inline void
t_raw_io(struct t_raw *r)
{
    if (r->fd < 0) {
        return;
    }
    while (r->out_off < r->out.len && !r->reset) {
        ssize_t n = send(r->fd, r->out.p + r->out_off, r->out.len - r->out_off, MSG_NOSIGNAL);

        if (n > 0) {
            r->out_off += (size_t) n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            r->reset = 1;
            break;
        }
    }
    if (r->out_off == r->out.len && r->out.len) {
        r->out.len = 0;
        r->out_off = 0;
    }
    while (!r->eof && !r->reset) {
        char buf[65536];
        ssize_t n = recv(r->fd, buf, sizeof(buf), 0);

        if (n > 0) {
            t_buf_add(&r->in, buf, (size_t) n);
        } else if (n == 0) {
            r->eof = 1;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            r->reset = 1;
        }
    }
} /* t_raw_io */

static inline int
t_raw_closed(struct t_raw *r)
{
    return r->eof || r->reset;
} /* t_raw_closed */

/* A plain listening socket on 127.0.0.1, ephemeral port. */
static inline void
t_rawsrv_open(struct t_rawsrv *s)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int one = 1;

    memset(s, 0, sizeof(*s));
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    T_OK(s->lfd >= 0);
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    T_EQ(bind(s->lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    T_EQ(listen(s->lfd, 16), 0);
    T_EQ(getsockname(s->lfd, (struct sockaddr *) &sa, &len), 0);
    s->port = ntohs(sa.sin_port);
    t_set_nonblock(s->lfd);
    for (int i = 0; i < 4; i++) {
        if (!t_rawsrvs[i]) {
            t_rawsrvs[i] = s;
            return;
        }
    }
    T_FAIL("too many raw servers");
} /* t_rawsrv_open */

static inline void
t_rawsrv_io(struct t_rawsrv *s)
{
    for (;;) {
        int fd, one = 1;

        if (s->nconns >= 16) {
            return;
        }
        fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        t_raw_init_fd(&s->conns[s->nconns++], fd);
    }
} /* t_rawsrv_io */

static inline void
t_rawsrv_close(struct t_rawsrv *s)
{
    for (int i = 0; i < s->nconns; i++) {
        t_raw_close(&s->conns[i]);
    }
    for (int i = 0; i < 4; i++) {
        if (t_rawsrvs[i] == s) {
            t_rawsrvs[i] = NULL;
        }
    }
    close(s->lfd);
    s->lfd = -1;
} /* t_rawsrv_close */

/* Drive every raw peer once (nonblocking). */
static inline void
t_raw_all_io(void)
{
    for (int i = 0; i < 4; i++) {
        if (t_rawsrvs[i]) {
            t_rawsrv_io(t_rawsrvs[i]);
        }
    }
    for (int i = 0; i < T_RAW_MAX; i++) {
        if (t_raws[i]) {
            t_raw_io(t_raws[i]);
        }
    }
} /* t_raw_all_io */

/*
 * Run loop passes (and the raw peers) until cond holds; fail after
 * timeout_ms.
 */
#define T_HPUMP(evpl, cond, timeout_ms)                                                    \
    do {                                                                                   \
        uint64_t t_deadline_ = t_now_ns() + (uint64_t) (timeout_ms) *1000000ull;           \
        for (;;) {                                                                         \
            t_raw_all_io();                                                                \
            if (cond) {                                                                    \
                break;                                                                     \
            }                                                                              \
            if (t_now_ns() > t_deadline_) {                                                \
                T_FAIL("timed out after %d ms waiting for %s", (int) (timeout_ms), #cond); \
            }                                                                              \
            evpl_continue(evpl);                                                           \
        }                                                                                  \
    } while (0)

/* Run passes and the raw peers for ms milliseconds. */
static inline void
t_hpump_for(struct evpl *evpl, unsigned int ms)
{
    uint64_t deadline = t_now_ns() + (uint64_t) ms * 1000000ull;

    while (t_now_ns() < deadline) {
        t_raw_all_io();
        evpl_continue(evpl);
    }
    t_raw_all_io();
} /* t_hpump_for */

/* ------------------------------------------------------------------ */
/* parsing what the library wrote                                      */
/* ------------------------------------------------------------------ */

#define T_MSG_MAXH 128

struct t_msg {
    char start[8192]; /* start line without CRLF */
    int nh;
    char *hn[T_MSG_MAXH], *hv[T_MSG_MAXH];
    int ntr;
    char *tn[T_MSG_MAXH], *tv[T_MSG_MAXH];
    struct t_buf head; /* the raw head bytes including the blank line */
    struct t_buf body; /* decoded body */
    int chunked, close_delimited;
    int64_t clen;
    int nchunks;
    int status;
};

static inline void
t_msg_free(struct t_msg *m)
{
    for (int i = 0; i < m->nh; i++) {
        free(m->hn[i]);
        free(m->hv[i]);
    }
    for (int i = 0; i < m->ntr; i++) {
        free(m->tn[i]);
        free(m->tv[i]);
    }
    t_buf_free(&m->head);
    t_buf_free(&m->body);
    memset(m, 0, sizeof(*m));
} /* t_msg_free */

/* One CRLF-terminated line starting at p (< end): its length without CRLF,
 * -1 when incomplete, -2 on a bare LF (the library must write CRLF). */
static inline ssize_t
t_line(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t) (end - p));

    if (!nl) {
        return -1;
    }
    if (nl == p || nl[-1] != '\r') {
        return -2;
    }
    return nl - 1 - p;
} /* t_line */

static inline const char *
t_find(char **names, char **values, int n, const char *name, int *count)
{
    const char *v = NULL;

    if (count) {
        *count = 0;
    }
    for (int i = 0; i < n; i++) {
        if (strcasecmp(names[i], name) == 0) {
            if (!v) {
                v = values[i];
            }
            if (count) {
                (*count)++;
            }
        }
    }
    return v;
} /* t_find */

static inline const char *
t_msg_header(struct t_msg *m, const char *name)
{
    return t_find(m->hn, m->hv, m->nh, name, NULL);
} /* t_msg_header */

static inline int
t_msg_header_count(struct t_msg *m, const char *name)
{
    int c;

    t_find(m->hn, m->hv, m->nh, name, &c);
    return c;
} /* t_msg_header_count */

static inline const char *
t_msg_trailer(struct t_msg *m, const char *name)
{
    return t_find(m->tn, m->tv, m->ntr, name, NULL);
} /* t_msg_trailer */

/* field lines from p until the blank line; returns bytes used, 0 incomplete,
 * -1 malformed */
static inline ssize_t
t_parse_fields(const char *p, const char *end, char **names, char **values, int *n)
{
    const char *s = p;

    for (;;) {
        ssize_t l = t_line(p, end);
        const char *colon;
        size_t vs;

        if (l == -1) {
            return 0;
        }
        if (l < 0) {
            return -1;
        }
        if (l == 0) {
            return p + 2 - s;
        }
        colon = memchr(p, ':', (size_t) l);
        if (!colon || colon == p || *n >= T_MSG_MAXH) {
            return -1;
        }
        names[*n] = strndup(p, (size_t) (colon - p));
        vs = (size_t) (colon + 1 - p);
        while ((ssize_t) vs < l && (p[vs] == ' ' || p[vs] == '\t')) {
            vs++;
        }
        values[*n] = strndup(p + vs, (size_t) l - vs);
        (*n)++;
        p += l + 2;
    }
} /* t_parse_fields */

/*
 * Parse one message at buf[0..len).  is_request: a request (no body unless
 * framed); else a response: no body for 1xx/204/304 or when no_body (a HEAD
 * request), close-delimited when unframed (complete only once eof).  Returns
 * the bytes used (>0), 0 when incomplete, -1 when malformed.
 */
static inline ssize_t
t_msg_parse(const char *buf, size_t len, int is_request, int no_body, int eof, struct t_msg *m)
{
    const char *p = buf, *end = buf + len;
    ssize_t l, used;
    const char *te, *cl;

    t_msg_free(m);
    l = t_line(p, end);
    if (l == -1) {
        return 0;
    }
    if (l < 0 || (size_t) l >= sizeof(m->start)) {
        return -1;
    }
    memcpy(m->start, p, (size_t) l);
    m->start[l] = '\0';
    p += l + 2;
    used = t_parse_fields(p, end, m->hn, m->hv, &m->nh);
    if (used <= 0) {
        int r = (int) used;

        t_msg_free(m);
        return r;
    }
    p += used;
    t_buf_add(&m->head, buf, (size_t) (p - buf));
    if (!is_request) {
        if (strncmp(m->start, "HTTP/1.", 7) != 0 || strlen(m->start) < 12) {
            t_msg_free(m);
            return -1;
        }
        m->status = atoi(m->start + 9);
        if (m->status < 200 || m->status == 204 || m->status == 304) {
            no_body = 1;
        }
    }
    m->clen = -1;
    te = t_msg_header(m, "Transfer-Encoding");
    cl = t_msg_header(m, "Content-Length");
    if (no_body) {
        return p - buf;
    }
    if (te && strcasecmp(te, "chunked") == 0) {
        m->chunked = 1;
        for (;;) {
            char *e;
            unsigned long sz;

            l = t_line(p, end);
            if (l == -1) {
                return 0;
            }
            if (l <= 0) {
                return -1;
            }
            sz = strtoul(p, &e, 16);
            if (e == p || (e < p + l && *e != ';')) {
                return -1;
            }
            p += l + 2;
            if (sz == 0) {
                used = t_parse_fields(p, end, m->tn, m->tv, &m->ntr);
                if (used <= 0) {
                    return used;
                }
                p += used;
                return p - buf;
            }
            if ((size_t) (end - p) < sz + 2) {
                return 0;
            }
            if (p[sz] != '\r' || p[sz + 1] != '\n') {
                return -1;
            }
            t_buf_add(&m->body, p, sz);
            m->nchunks++;
            p += sz + 2;
        }
    }
    if (cl) {
        m->clen = strtoll(cl, NULL, 10);
        if ((int64_t) (end - p) < m->clen) {
            return 0;
        }
        t_buf_add(&m->body, p, (size_t) m->clen);
        return p + m->clen - buf;
    }
    if (is_request) {
        return p - buf;
    }
    m->close_delimited = 1;
    if (!eof) {
        return 0;
    }
    t_buf_add(&m->body, p, (size_t) (end - p));
    return end - buf;
} /* t_msg_parse */

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static inline int
t_is_imf_fixdate(const char *v)
{
    static const char *days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int ok = 0;

    if (strlen(v) != 29) {
        return 0;
    }
    for (int i = 0; i < 7; i++) {
        ok |= strncmp(v, days[i], 3) == 0;
    }
    if (!ok || v[3] != ',' || v[4] != ' ' || !isdigit((unsigned char) v[5]) ||
        !isdigit((unsigned char) v[6]) || v[7] != ' ' || v[11] != ' ') {
        return 0;
    }
    ok = 0;
    for (int i = 0; i < 12; i++) {
        ok |= strncmp(v + 8, months[i], 3) == 0;
    }
    if (!ok) {
        return 0;
    }
    for (int i = 12; i < 16; i++) {
        if (!isdigit((unsigned char) v[i])) {
            return 0;
        }
    }
    if (v[16] != ' ' || v[19] != ':' || v[22] != ':' || strcmp(v + 25, " GMT") != 0) {
        return 0;
    }
    for (int i = 17; i < 25; i += 3) {
        if (!isdigit((unsigned char) v[i]) || !isdigit((unsigned char) v[i + 1])) {
            return 0;
        }
    }
    return 1;
} /* t_is_imf_fixdate */

/*
 * The head of m with every "Date: <IMF-fixdate>" value replaced by
 * "<DATE>" (failing when a Date value has another shape).  Static storage.
 */
static inline const char *
t_msg_head_masked(struct t_msg *m)
{
    static char out[16384];
    const char *p = m->head.p, *end = m->head.p + m->head.len;
    size_t k = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        size_t n = (size_t) (nl + 1 - p);

        T_OK(nl != NULL);
        if (n > 6 && strncasecmp(p, "Date: ", 6) == 0) {
            char v[64] = "";
            size_t vl = n - 8;

            if (vl < sizeof(v)) {
                memcpy(v, p + 6, vl);
                v[vl] = '\0';
            }
            if (!t_is_imf_fixdate(v)) {
                T_FAIL("Date value not an IMF-fixdate: \"%s\"", t_esc(p + 6, n - 6));
            }
            k += (size_t) snprintf(out + k, sizeof(out) - k, "Date: <DATE>\r\n");
        } else {
            T_OK(k + n < sizeof(out));
            memcpy(out + k, p, n);
            k += n;
        }
        p += n;
    }
    out[k] = '\0';
    return out;
} /* t_msg_head_masked */

static struct evpl *t_evpl; /* the loop the helpers pump */

/*
 * Wait for one complete response on r (no_body: it answers a HEAD), parse
 * it into m and consume its bytes.
 */
static inline void
t_raw_read_msg(struct t_raw *r, int is_request, int no_body, struct t_msg *m)
{
    ssize_t used = 0;

    T_HPUMP(t_evpl,
            (used = t_msg_parse(r->in.p ? r->in.p : "", r->in.len, is_request, no_body,
                                t_raw_closed(r), m)) != 0 ||
                (t_raw_closed(r) && r->in.len == 0),
            10000);
    if (used <= 0) {
        T_FAIL("no complete %s on the connection (closed %d, %zu bytes: \"%s\")",
               is_request ? "request" : "response", t_raw_closed(r), r->in.len,
               t_esc(t_buf_str(&r->in), r->in.len));
    }
    t_buf_consume(&r->in, (size_t) used);
} /* t_raw_read_msg */

/*
 * Read one response and compare: head (Date masked; exactly one Date unless
 * dates == 0, then none) and decoded body.
 */
static inline void
t_expect_response(struct t_raw *r, int no_body, const char *want_head, const char *want_body)
{
    struct t_msg m;

    memset(&m, 0, sizeof(m));
    t_raw_read_msg(r, 0, no_body, &m);
    {
        const char *masked = t_msg_head_masked(&m);

        T_BYTES_EQ(masked, strlen(masked), want_head);
    }
    if (strstr(want_head, "Date: <DATE>")) {
        T_EQ(t_msg_header_count(&m, "Date"), 1);
    }
    T_BYTES_EQ(t_buf_str(&m.body), m.body.len, want_body);
    t_msg_free(&m);
} /* t_expect_response */

/*
 * §3.4 lists the fields as "Date, Content-Length: 0, Connection: close";
 * §3.2's general order would put Connection before the framing header.
 * Both orders are accepted; nothing else is.
 */
static inline void
t_expect_rejection(struct t_raw *c, int code)
{
    const char *reason = code == 400 ? "Bad Request" : "Not Implemented";
    char a[256], b[256];
    struct t_msg m = {0};
    const char *masked;

    snprintf(a, sizeof(a),
             "HTTP/1.1 %d %s\r\nDate: <DATE>\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
             code, reason);
    snprintf(b, sizeof(b),
             "HTTP/1.1 %d %s\r\nDate: <DATE>\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
             code, reason);
    t_raw_read_msg(c, 0, 0, &m);
    masked = t_msg_head_masked(&m);
    if (strcmp(masked, a) == 0) {
        T_BYTES_EQ(masked, strlen(masked), a);
    } else {
        T_BYTES_EQ(masked, strlen(masked), b);
    }
    T_EQ(t_msg_header_count(&m, "Date"), 1);
    T_EQ_U(m.body.len, 0);
    t_msg_free(&m);
}

/* Wait until the connection is closed by the server and nothing more came. */
static inline void
t_expect_closed(struct t_raw *r)
{
    T_HPUMP(t_evpl, t_raw_closed(r), 10000);
    if (r->in.len) {
        T_FAIL("unexpected bytes before close: \"%s\"", t_esc(r->in.p, r->in.len));
    }
    fprintf(stderr, "  ok: connection closed (eof %d reset %d)\n", r->eof, r->reset);
} /* t_expect_closed */

/* Check for ms that the connection stays open and silent. */
static inline void
t_expect_silent_open(struct t_raw *r, unsigned int ms)
{
    t_hpump_for(t_evpl, ms);
    if (r->in.len) {
        T_FAIL("unexpected bytes: \"%s\"", t_esc(r->in.p, r->in.len));
    }
    T_EQ(t_raw_closed(r), 0);
} /* t_expect_silent_open */

/* ------------------------------------------------------------------ */
/* body helpers                                                        */
/* ------------------------------------------------------------------ */

/* Stage len bytes as library-owned iovecs. */
static inline void
t_add_bytes(struct evpl *evpl, struct evpl_http_request *req, const void *data, size_t len)
{
    const char *p = data;

    while (len) {
        struct evpl_iovec iov[16]; /* 64 KiB in buffers as small as 4 KiB */
        size_t n = len > (64u << 10) ? (64u << 10) : len;
        int niov = evpl_iovec_alloc(evpl, (unsigned int) n, 0, 16, 0, iov);
        size_t off = 0;

        T_OK(niov > 0);
        for (int i = 0; i < niov; i++) {
            memcpy(iov[i].data, p + off, iov[i].length);
            off += iov[i].length;
        }
        T_EQ_U(off, n);
        evpl_http_request_add_datav(req, iov, niov);
        p += n;
        len -= n;
    }
} /* t_add_bytes */

static inline void
t_add_str(struct evpl *evpl, struct evpl_http_request *req, const char *s)
{
    t_add_bytes(evpl, req, s, strlen(s));
} /* t_add_str */

static struct evpl_iovec t_take_iov[4096];

/* Take every buffered body byte into b; returns the bytes taken. */
static inline uint64_t
t_take_all(struct evpl *evpl, struct evpl_http_request *req, struct t_buf *b)
{
    uint64_t avail = evpl_http_request_get_data_avail(req);
    int niov;
    uint64_t got = 0;

    if (avail == 0) {
        return 0;
    }
    T_OK(avail < (1u << 31));
    niov = evpl_http_request_get_datav(evpl, req, t_take_iov, (int) avail);
    if (niov <= 0 || niov > 4096) {
        T_FAIL("get_datav(%" PRIu64 ") returned %d", avail, niov);
    }
    for (int i = 0; i < niov; i++) {
        t_buf_add(b, t_take_iov[i].data, t_take_iov[i].length);
        got += t_take_iov[i].length;
    }
    evpl_iovecs_release(evpl, t_take_iov, niov);
    if (got != avail) {
        T_FAIL("get_datav(%" PRIu64 ") moved %" PRIu64 " bytes", avail, got);
    }
    T_EQ_U(evpl_http_request_get_data_avail(req), 0);
    return got;
} /* t_take_all */

static inline void
t_fields_cb(const char *name, const char *value, void *priv)
{
    struct t_buf *b = priv;

    t_buf_adds(b, name);
    t_buf_adds(b, ": ");
    t_buf_adds(b, value);
    t_buf_adds(b, "\n");
} /* t_fields_cb */

/* ------------------------------------------------------------------ */
/* server application fixture                                          */
/* ------------------------------------------------------------------ */

#define T_EV_DISPATCH 100

struct t_app;

struct t_sreq {
    struct t_app *app;
    struct evpl_http_request *req; /* NULL once terminal */
    int idx;
    char ev[256]; /* 'D' dispatch, 'd' RECEIVE_DATA, 'C' RECEIVE_COMPLETE,
                   * 'W' WANT_DATA, 'R' RESPONSE_COMPLETE, 'F' FAILED, 'H'
                   * RESPONSE_HEADERS (never on a server); runs of d and W are
                   * collapsed */
    int nev;
    int n_data, n_want, n_complete, n_rcomplete, n_failed, n_bad;
    int failed_status;
    int type;
    char url[8192];
    int url_len;
    struct t_buf body;     /* taken with get_datav */
    struct t_buf headers;  /* received fields, "name: value\n" */
    struct t_buf trailers; /* received trailers at RECEIVE_COMPLETE */
    int responded;
    int want_step; /* WANT_DATA handler state */
    void *user;
};

#define T_APP_MAXREQ 128

struct t_app {
    struct evpl *evpl;
    struct evpl_http_agent *agent;
    struct evpl_http_server *server;
    struct evpl_listener *listener;
    struct evpl_endpoint *ep;
    struct t_sreq reqs[T_APP_MAXREQ];
    int nreqs;
    int drain; /* take the body on RECEIVE_DATA / RECEIVE_COMPLETE (default 1) */
    /* behaviour: called after the bookkeeping for dispatch (T_EV_DISPATCH) and
     * every notification; NULL -> t_app_default_hook */
    void (*hook)(struct t_app *a, struct t_sreq *r, int type);
    void *user;
    int errors;
};

static inline void
t_sreq_event(struct t_sreq *r, char e)
{
    if ((e == 'd' || e == 'W') && r->nev && r->ev[r->nev - 1] == e) {
        return;
    }
    if (r->nev < (int) sizeof(r->ev) - 1) {
        r->ev[r->nev++] = e;
        r->ev[r->nev] = '\0';
    }
} /* t_sreq_event */

/* the default response: 200, "hello world" length-framed, on RECEIVE_COMPLETE */
static inline void
t_respond_simple(struct t_sreq *r, int status, const char *body)
{
    struct evpl_http_request *req = r->req;

    T_OK(req != NULL);
    if (body) {
        evpl_http_server_set_response_length(req, strlen(body));
        t_add_str(r->app->evpl, req, body);
    }
    r->responded = 1;
    evpl_http_server_dispatch_default(req, status);
} /* t_respond_simple */

static inline void
t_app_default_hook(struct t_app *a, struct t_sreq *r, int type)
{
    (void) a;
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        t_respond_simple(r, 200, "hello world");
    }
} /* t_app_default_hook */

static inline void
t_app_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
             enum evpl_http_notify_type type, enum evpl_http_request_type request_type,
             const char *uri, void *notify_data, void *private_data)
{
    struct t_sreq *r = notify_data;
    struct t_app *a = private_data;

    if (a == NULL || r == NULL || r->app != a) {
        fprintf(stderr, "notify: wrong notify_data %p / private_data %p\n", notify_data,
                private_data);
        exit(1);
    }
    if (evpl != a->evpl || agent != a->agent) {
        fprintf(stderr, "notify: wrong evpl/agent\n");
        a->errors++;
    }
    if (r->req == NULL) {
        fprintf(stderr, "notify %d after the terminal notification (request %d)\n", type, r->idx);
        a->errors++;
        r->n_bad++;
        return;
    }
    if (request != r->req) {
        fprintf(stderr, "notify: request pointer changed\n");
        a->errors++;
    }
    if ((int) request_type != r->type || !uri || strcmp(uri, r->url) != 0) {
        fprintf(stderr, "notify: request_type %d uri \"%s\", expected %d \"%s\"\n",
                (int) request_type, uri ? uri : "(null)", r->type, r->url);
        a->errors++;
    }
    switch (type) {
        case EVPL_HTTP_NOTIFY_RECEIVE_DATA:
            t_sreq_event(r, 'd');
            r->n_data++;
            if (a->drain) {
                t_take_all(evpl, request, &r->body);
            }
            break;
        case EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE:
            t_sreq_event(r, 'C');
            r->n_complete++;
            if (a->drain) {
                t_take_all(evpl, request, &r->body);
            }
            evpl_http_request_trailer_iterate(request, t_fields_cb, &r->trailers);
            break;
        case EVPL_HTTP_NOTIFY_WANT_DATA:
            t_sreq_event(r, 'W');
            r->n_want++;
            break;
        case EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE:
            t_sreq_event(r, 'R');
            r->n_rcomplete++;
            break;
        case EVPL_HTTP_NOTIFY_FAILED:
            t_sreq_event(r, 'F');
            r->n_failed++;
            r->failed_status = evpl_http_request_status(request);
            break;
        default:
            t_sreq_event(r, '?');
            a->errors++;
            break;
    }
    if (a->hook) {
        a->hook(a, r, (int) type);
    } else {
        t_app_default_hook(a, r, (int) type);
    }
    if (type == EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE || type == EVPL_HTTP_NOTIFY_FAILED) {
        r->req = NULL; /* freed when this callback returns */
    }
} /* t_app_notify */

static inline void
t_app_dispatch(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
               evpl_http_notify_callback_t *notify_callback, void **notify_data, void *private_data)
{
    struct t_app *a = private_data;
    struct t_sreq *r;
    const char *url;
    int len = -1;

    if (a->nreqs >= T_APP_MAXREQ) {
        T_FAIL("too many requests dispatched");
    }
    r = &a->reqs[a->nreqs];
    memset(r, 0, sizeof(*r));
    r->idx = a->nreqs++;
    r->app = a;
    r->req = request;
    if (evpl != a->evpl || agent != a->agent) {
        fprintf(stderr, "dispatch: wrong evpl/agent\n");
        a->errors++;
    }
    r->type = (int) evpl_http_request_type(request);
    url = evpl_http_request_url(request, &len);
    T_OK(url != NULL);
    if (len != (int) strlen(url)) {
        fprintf(stderr, "dispatch: url len %d vs strlen %zu\n", len, strlen(url));
        a->errors++;
    }
    snprintf(r->url, sizeof(r->url), "%s", url);
    r->url_len = len;
    evpl_http_request_header_iterate(request, t_fields_cb, &r->headers);
    t_sreq_event(r, 'D');
    *notify_callback = t_app_notify;
    *notify_data = r;
    if (a->hook) {
        a->hook(a, r, T_EV_DISPATCH);
    }
} /* t_app_dispatch */

/* The TCP protocol the fixtures' server and client use: T_HTTP_PROTO
 * (STREAM_SOCKET_TCP or STREAM_IO_URING_TCP; the raw peers speak TCP to
 * either), kernel sockets by default. */
static inline enum evpl_protocol_id
t_http_proto(void)
{
    const char *name = getenv("T_HTTP_PROTO");
    enum evpl_protocol_id id = EVPL_STREAM_SOCKET_TCP;

    if (name && *name) {
        T_EQ(evpl_protocol_lookup(&id, name), 0);
        if (!evpl_protocol_available(id)) {
            T_SKIP("%s unavailable here", name);
        }
    }
    return id;
} /* t_http_proto */

/* A loop (wait 5 ms), an agent, a TCP listener on 127.0.0.1 and a server. */
static inline void
t_app_start(struct t_app *a)
{
    memset(a, 0, sizeof(*a));
    a->drain = 1;
    a->evpl = t_net_loop();
    t_evpl = a->evpl;
    a->agent = evpl_http_init(a->evpl);
    T_OK(a->agent != NULL);
    a->ep = t_endpoint(EVPL_STREAM_SOCKET_TCP);
    a->listener = t_listen(t_http_proto(), a->ep);
    a->server = evpl_http_attach(a->agent, a->listener, t_app_dispatch, a);
    T_OK(a->server != NULL);
} /* t_app_start */

/* Every dispatched request got exactly one terminal notification, last. */
static inline void
t_app_check_terminal(struct t_app *a)
{
    for (int i = 0; i < a->nreqs; i++) {
        struct t_sreq *r = &a->reqs[i];

        if (r->n_rcomplete + r->n_failed != 1 || r->n_bad) {
            T_FAIL("request %d (%s): %d RESPONSE_COMPLETE, %d FAILED, %d after terminal "
                   "(events %s)",
                   i, r->url, r->n_rcomplete, r->n_failed, r->n_bad, r->ev);
        }
    }
    T_EQ(a->errors, 0);
} /* t_app_check_terminal */

/* What the server side's requests recorded (bodies, fields). */
static inline void
t_app_free_reqs(struct t_app *a)
{
    for (int i = 0; i < a->nreqs; i++) {
        t_buf_free(&a->reqs[i].body);
        t_buf_free(&a->reqs[i].headers);
        t_buf_free(&a->reqs[i].trailers);
    }
} /* t_app_free_reqs */

static inline void
t_app_stop(struct t_app *a)
{
    for (int i = 0; i < T_RAW_MAX; i++) {
        if (t_raws[i]) {
            t_raw_close(t_raws[i]);
        }
    }
    evpl_http_server_destroy(a->agent, a->server);
    evpl_http_destroy(a->agent);
    evpl_listener_destroy(a->listener);
    evpl_destroy(a->evpl);
    evpl_endpoint_close(a->ep);
    t_app_check_terminal(a);
    t_app_free_reqs(a);
} /* t_app_stop */

#define T_EV_EQ(r, want)                                                              \
    do {                                                                              \
        if (strcmp((r)->ev, (want)) != 0) {                                           \
            T_FAIL("request %d events: \"%s\" vs \"%s\"", (r)->idx, (r)->ev, (want)); \
        }                                                                             \
        fprintf(stderr, "  ok: request %d events %s\n", (r)->idx, (want));            \
    } while (0)

/* ------------------------------------------------------------------ */
/* client fixture                                                      */
/* ------------------------------------------------------------------ */

struct t_client;

struct t_creq {
    struct t_client *cl;
    struct evpl_http_request *req; /* NULL once terminal */
    int idx;
    char ev[256]; /* 'W' WANT_DATA, 'S' RESPONSE_COMPLETE (sent), 'H'
                   * RESPONSE_HEADERS, 'd' RECEIVE_DATA, 'C' RECEIVE_COMPLETE,
                   * 'F' FAILED; runs of d and W collapsed */
    int nev;
    int n_want, n_sent, n_headers, n_data, n_complete, n_failed, n_bad;
    int status_headers, status_final;
    int in_dispatch; /* set around evpl_http_request_dispatch */
    int failed_in_dispatch;
    int type;
    char url[8192];
    struct t_buf body;
    struct t_buf headers;  /* response fields at RESPONSE_HEADERS */
    struct t_buf trailers; /* response trailers at RECEIVE_COMPLETE */
    char hdr_probe[256];   /* evpl_http_response_header(probe_name) at RESPONSE_HEADERS */
    const char *probe_name;
    void (*hook)(struct t_creq *r, int type);
    int want_step;
    void *user;
};

#define T_CL_MAXREQ 64

struct t_client {
    struct evpl *evpl;
    struct evpl_http_agent *agent;
    struct evpl_http_conn *conn;
    struct evpl_endpoint *ep;
    struct t_creq reqs[T_CL_MAXREQ];
    int nreqs;
    int errors;
};

static inline void
t_creq_event(struct t_creq *r, char e)
{
    if ((e == 'd' || e == 'W') && r->nev && r->ev[r->nev - 1] == e) {
        return;
    }
    if (r->nev < (int) sizeof(r->ev) - 1) {
        r->ev[r->nev++] = e;
        r->ev[r->nev] = '\0';
    }
} /* t_creq_event */

static inline void
t_client_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
                enum evpl_http_notify_type type, enum evpl_http_request_type request_type,
                const char *uri, void *notify_data, void *private_data)
{
    struct t_creq *r = notify_data;
    struct t_client *c = private_data;

    if (!c || !r || r->cl != c) {
        fprintf(stderr, "client notify: wrong notify_data %p / private_data %p\n", notify_data,
                private_data);
        exit(1);
    }
    if (evpl != c->evpl || agent != c->agent) {
        fprintf(stderr, "client notify: wrong evpl/agent\n");
        c->errors++;
    }
    if (r->req == NULL) {
        fprintf(stderr, "client notify %d after the terminal notification (request %d)\n", type,
                r->idx);
        r->n_bad++;
        c->errors++;
        return;
    }
    if (request != r->req) {
        fprintf(stderr, "client notify: request pointer changed\n");
        c->errors++;
    }
    if ((int) request_type != r->type || !uri || strcmp(uri, r->url) != 0) {
        fprintf(stderr, "client notify: request_type %d uri \"%s\", expected %d \"%s\"\n",
                (int) request_type, uri ? uri : "(null)", r->type, r->url);
        c->errors++;
    }
    switch (type) {
        case EVPL_HTTP_NOTIFY_WANT_DATA:
            t_creq_event(r, 'W');
            r->n_want++;
            break;
        case EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE:
            t_creq_event(r, 'S');
            r->n_sent++;
            break;
        case EVPL_HTTP_NOTIFY_RESPONSE_HEADERS:
            t_creq_event(r, 'H');
            r->n_headers++;
            r->status_headers = evpl_http_request_status(request);
            evpl_http_response_header_iterate(request, t_fields_cb, &r->headers);
            if (r->probe_name) {
                const char *v = evpl_http_response_header(request, r->probe_name);

                snprintf(r->hdr_probe, sizeof(r->hdr_probe), "%s", v ? v : "(null)");
            }
            break;
        case EVPL_HTTP_NOTIFY_RECEIVE_DATA:
            t_creq_event(r, 'd');
            r->n_data++;
            t_take_all(evpl, request, &r->body);
            break;
        case EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE:
            t_creq_event(r, 'C');
            r->n_complete++;
            t_take_all(evpl, request, &r->body);
            evpl_http_request_trailer_iterate(request, t_fields_cb, &r->trailers);
            r->status_final = evpl_http_request_status(request);
            break;
        case EVPL_HTTP_NOTIFY_FAILED:
            t_creq_event(r, 'F');
            r->n_failed++;
            r->status_final = evpl_http_request_status(request);
            if (r->in_dispatch) {
                r->failed_in_dispatch = 1;
            }
            break;
        default:
            t_creq_event(r, '?');
            c->errors++;
            break;
    }
    if (r->hook) {
        r->hook(r, (int) type);
    }
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE || type == EVPL_HTTP_NOTIFY_FAILED) {
        r->req = NULL;
    }
} /* t_client_notify */

/* A loop, an agent and one connection to 127.0.0.1:port (HTTP/1). */
static inline void
t_client_start(struct t_client *c, int port)
{
    memset(c, 0, sizeof(*c));
    c->evpl = t_net_loop();
    t_evpl = c->evpl;
    c->agent = evpl_http_init(c->evpl);
    T_OK(c->agent != NULL);
    c->ep = evpl_endpoint_create("127.0.0.1", port);
    T_OK(c->ep != NULL);
    c->conn = evpl_http_client_connect(c->agent, t_http_proto(), c->ep, EVPL_HTTP_VERSION_HTTP1, c);
    T_OK(c->conn != NULL);
} /* t_client_start */

/* A new request record on conn (the caller adds headers etc., then
 * t_creq_dispatch). */
static inline struct t_creq *
t_creq_new(struct t_client *c, struct evpl_http_conn *conn, enum evpl_http_request_type method,
           const char *url)
{
    struct t_creq *r;

    T_OK(c->nreqs < T_CL_MAXREQ);
    r = &c->reqs[c->nreqs];
    memset(r, 0, sizeof(*r));
    r->idx = c->nreqs++;
    r->cl = c;
    r->type = (int) method;
    snprintf(r->url, sizeof(r->url), "%s", url);
    r->req = evpl_http_request_create(conn, method, url);
    T_OK(r->req != NULL);
    return r;
} /* t_creq_new */

static inline void
t_creq_dispatch(struct t_creq *r)
{
    r->in_dispatch = 1;
    evpl_http_request_dispatch(r->req, t_client_notify, r);
    r->in_dispatch = 0;
} /* t_creq_dispatch */

static inline int
t_creq_done(struct t_creq *r)
{
    return r->n_complete + r->n_failed > 0;
} /* t_creq_done */

static inline void
t_client_check_terminal(struct t_client *c)
{
    for (int i = 0; i < c->nreqs; i++) {
        struct t_creq *r = &c->reqs[i];

        if (r->n_complete + r->n_failed != 1 || r->n_bad) {
            T_FAIL("client request %d (%s): %d RECEIVE_COMPLETE, %d FAILED, %d after terminal "
                   "(events %s)",
                   i, r->url, r->n_complete, r->n_failed, r->n_bad, r->ev);
        }
    }
    T_EQ(c->errors, 0);
} /* t_client_check_terminal */

static inline void
t_client_free_reqs(struct t_client *c)
{
    for (int i = 0; i < c->nreqs; i++) {
        t_buf_free(&c->reqs[i].body);
        t_buf_free(&c->reqs[i].headers);
        t_buf_free(&c->reqs[i].trailers);
    }
} /* t_client_free_reqs */

/* The end of a client test against a raw server: every request had its
 * terminal notification; agent, loop, endpoint, server and records go. */
static inline void
t_client_finish(struct t_client *c, struct t_rawsrv *rs)
{
    t_client_check_terminal(c);
    evpl_http_destroy(c->agent);
    evpl_destroy(c->evpl);
    evpl_endpoint_close(c->ep);
    t_rawsrv_close(rs);
    t_client_free_reqs(c);
} /* t_client_finish */

#define T_CEV_EQ(r, want)                                                                    \
    do {                                                                                     \
        if (strcmp((r)->ev, (want)) != 0) {                                                  \
            T_FAIL("client request %d events: \"%s\" vs \"%s\"", (r)->idx, (r)->ev, (want)); \
        }                                                                                    \
        fprintf(stderr, "  ok: client request %d events %s\n", (r)->idx, (want));            \
    } while (0)
