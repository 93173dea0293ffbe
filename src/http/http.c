/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * libevpl_http: HTTP/1.0 and HTTP/1.1, server and client, on the public
 * evpl API only (spec http.md).
 *
 * One agent per loop.  A connection (server or client side) is a bind
 * without a segment callback: head blocks are found by peeking at the
 * bind's receive buffer and copied once; bodies are taken by reference
 * (evpl_recvv) and handed to the application as the same iovecs.
 *
 * Requests of a connection form one FIFO: on a server the requests read
 * and not yet answered (responses go out strictly in that order), on a
 * client the requests dispatched and not yet answered (written in order,
 * responses matched in order).  Every write happens in the connection's
 * deferral, never inside an API call the application makes, so no
 * notification re-enters the application and no request is freed under
 * it.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <evpl/evpl_http.h>

#include "core/next_pass.h"
#include "mem/size.h"
#include "net/hold.h"

#ifdef HAVE_NGHTTP2
#include <nghttp2/nghttp2.h>
#endif

#define HTTP_LINE_MAX   4095        /* request/status, header, chunk lines */
#define HTTP_READ_AHEAD 8           /* complete requests read ahead (server) */
#define HTTP_BODY_IOV   1023        /* buffered body pieces before reading pauses */
#define HTTP_BODY_BYTES (16u << 20) /* ... or buffered body bytes */
#define HTTP_SEND_HIGH  (1u << 20)  /* bytes in the transport before WANT_DATA waits */
/* ... and before a server stops parsing pipelined request heads: answers
 * the transport could not hand to the kernel mean the client is not
 * keeping up, and what would be parsed could only add to them (64 clients
 * that pipeline and read nothing held ~1.7 MiB each with HTTP_SEND_HIGH
 * here; nginx stops at what its socket takes) */
#define HTTP_HEAD_HIGH (256u << 10)
#define HTTP_NAME_MAX  255
#define HTTP_VALUE_MAX 16383
#define HTTP_RESERVE   256 /* of the header budget, for library-made lines */
/* Read work one connection may do in a loop pass (a request head, a chunk
 * or trailer line, an HTTP/2 frame: 1 each); the rest waits for the next
 * pass, so a peer that pipelines thousands of requests or sends one-byte
 * chunks or frames cannot hold the loop from the others.  All of an
 * agent's connections together do HTTP_AGENT_WORK, past which each may
 * still do HTTP_MIN_WORK (a pass is bounded however many connections
 * send at once, and none waits for ever behind the others).  Once the
 * peer has closed, what the connection holds is read at once (there is
 * no later pass), on a server up to HTTP_DRAIN_WORK; the rest is
 * dropped. */
#define HTTP_PASS_WORK  256
#define HTTP_AGENT_WORK 1024
#define HTTP_MIN_WORK   16
#define HTTP_DRAIN_WORK 4096
/* Unparsed input a server connection's transport reads ahead, at most
 * (and at least 4 heads), in place of stream_recv_limit (64 MiB by
 * default) when that is more: bodies are taken by reference as they come
 * and HTTP/2 frames fed as they come, so this is reached only when
 * parsing stops (a client that pipelines and does not read its answers,
 * a body the application does not take) or the client sends faster than
 * a pass's share of work; TCP then pushes back (16 MiB per connection
 * let 16 clients that pipeline and never read hold 300 MB: helper-88;
 * 1 MiB let 64 hold 141 buffers, 296 MB, with the buffers their bytes
 * pinned).  256 KiB is still a thousand pipelined requests, more than
 * a pass serves.  Clients keep the global limit: they chose their
 * server. */
#define HTTP_RECV_LIMIT (256u << 10)

#define http_error(...) evpl_log_message("error", "http", __FILE__, __LINE__, __VA_ARGS__)
#define http_debug(...) evpl_log_message("debug", "http", __FILE__, __LINE__, __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* field lists: "name\0value\0" pairs in one buffer                     */

struct hfields {
    char *buf;
    uint32_t len, cap;
    uint32_t n;
    uint32_t wire; /* name + ": " + value + CRLF, summed */
};

static int
hf_reserve(struct hfields *h, uint32_t more)
{
    if (h->len + more <= h->cap) {
        return 0;
    }
    uint32_t cap = h->cap ? h->cap : 256;

    while (cap < h->len + more) {
        cap *= 2;
    }
    char *b = realloc(h->buf, cap);

    if (!b) {
        return -1;
    }
    h->buf = b;
    h->cap = cap;
    return 0;
} /* hf_reserve */

static int
hf_add(struct hfields *h, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (hf_reserve(h, (uint32_t) (nlen + vlen + 2))) {
        return -1;
    }
    memcpy(h->buf + h->len, name, nlen);
    h->buf[h->len + nlen] = '\0';
    h->len += (uint32_t) nlen + 1;
    memcpy(h->buf + h->len, value, vlen);
    h->buf[h->len + vlen] = '\0';
    h->len += (uint32_t) vlen + 1;
    h->n++;
    h->wire += (uint32_t) (nlen + vlen + 4);
    return 0;
} /* hf_add */

/* obs-fold: append " text" to the last value (it ends the buffer) */
static int
hf_fold(struct hfields *h, const char *text, size_t tlen)
{
    if (hf_reserve(h, (uint32_t) tlen + 1)) {
        return -1;
    }
    h->buf[h->len - 1] = ' ';
    memcpy(h->buf + h->len, text, tlen);
    h->len += (uint32_t) tlen;
    h->buf[h->len++] = '\0';
    h->wire += (uint32_t) tlen + 1;
    return 0;
} /* hf_fold */

static void
hf_free(struct hfields *h)
{
    free(h->buf);
    memset(h, 0, sizeof(*h));
} /* hf_free */

/* the next name after value, or NULL at the end */
static inline const char *
hf_next(const struct hfields *h, const char *value)
{
    const char *n = value + strlen(value) + 1;

    return n < h->buf + h->len ? n : NULL;
} /* hf_next */

#define HF_FOREACH(h, name, value)                                  \
    for (const char *name = (h)->len ? (h)->buf : NULL,             \
                    *value = name ? name + strlen(name) + 1 : NULL; \
         name; name = hf_next((h), value), value = name ? name + strlen(name) + 1 : NULL)

/* ASCII case-insensitive equality, with a cheap first-letter test */
static inline int
name_is(const char *name, const char *want)
{
    return ((name[0] ^ want[0]) & ~0x20) == 0 && strcasecmp(name, want) == 0;
} /* name_is */

static const char *
hf_get(const struct hfields *h, const char *want)
{
    if (!want || !*want) {
        return NULL;
    }
    HF_FOREACH(h, name, value)
    {
        if (name_is(name, want)) {
            return value;
        }
    }
    return NULL;
} /* hf_get */

static unsigned int
hf_count(const struct hfields *h, const char *want)
{
    unsigned int n = 0;

    HF_FOREACH(h, name, value)
    {
        n += name_is(name, want);
    }
    return n;
} /* hf_count */

static void
hf_iterate(const struct hfields *h, evpl_http_request_header_cb_t cb, void *priv)
{
    if (!cb) {
        return;
    }
    HF_FOREACH(h, name, value)
    {
        cb(name, value, priv);
    }
} /* hf_iterate */

/* an outbound head being written: appends that stop at the capacity */
struct obuf {
    char *p;
    size_t off, cap;
    int over;
};

static inline void
ob_put(struct obuf *b, const char *s, size_t n)
{
    if (b->off + n > b->cap) {
        b->over = 1;
        return;
    }
    memcpy(b->p + b->off, s, n);
    b->off += n;
} /* ob_put */

static inline void
ob_str(struct obuf *b, const char *s)
{
    ob_put(b, s, strlen(s));
} /* ob_str */

static inline void
ob_u64(struct obuf *b, uint64_t v)
{
    char t[20];
    int n = 0;

    do {
        t[19 - n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v);
    ob_put(b, t + 20 - n, (size_t) n);
} /* ob_u64 */

/* "name: value\r\n" for every field */
static void
ob_fields(struct obuf *b, const struct hfields *h)
{
    HF_FOREACH(h, name, value)
    {
        ob_str(b, name);
        ob_put(b, ": ", 2);
        ob_str(b, value);
        ob_put(b, "\r\n", 2);
    }
} /* ob_fields */

/* ------------------------------------------------------------------ */
/* iovec queues                                                         */

struct iovq;
static int iovq_push(struct iovq *q, const struct evpl_iovec *iov);

struct iovq {
    struct evpl_iovec *v;
    uint32_t head, count, cap; /* cap: power of two */
    uint64_t bytes;
};

/*
 * Append a received piece; one that continues the last piece in the same
 * buffer extends it (its reference is dropped), so a body read in many
 * small reads is still a few pieces.
 */
static int
iovq_append(struct evpl *evpl, struct iovq *q, struct evpl_iovec *iov)
{
    if (q->count) {
        struct evpl_iovec *t = &q->v[(q->head + q->count - 1) & (q->cap - 1)];

        if (t->ref == iov->ref && !(t->ref->flags & EVPL_IOVEC_FLAG_GLOBAL) &&
            (char *) t->data + t->length == (char *) iov->data &&
            (uint64_t) t->length + iov->length <= UINT32_MAX) {
            t->length += iov->length;
            q->bytes += iov->length;
            evpl_iovec_release(evpl, iov);
            return 0;
        }
    }
    return iovq_push(q, iov);
} /* iovq_append */

static int
iovq_push(struct iovq *q, const struct evpl_iovec *iov)
{
    if (q->count == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 8;
        struct evpl_iovec *v = malloc(sizeof(*v) * cap);

        if (!v) {
            return -1;
        }
        for (uint32_t i = 0; i < q->count; i++) {
            v[i] = q->v[(q->head + i) & (q->cap - 1)];
        }
        free(q->v);
        q->v = v;
        q->cap = cap;
        q->head = 0;
    }
    q->v[(q->head + q->count) & (q->cap - 1)] = *iov;
    q->count++;
    q->bytes += iov->length;
    return 0;
} /* iovq_push */

static inline struct evpl_iovec *
iovq_front(struct iovq *q)
{
    return &q->v[q->head];
} /* iovq_front */

static inline void
iovq_pop(struct iovq *q)
{
    q->bytes -= q->v[q->head].length;
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
} /* iovq_pop */

/* release every piece, keep the array */
static void
iovq_reset(struct evpl *evpl, struct iovq *q)
{
    while (q->count) {
        evpl_iovec_release(evpl, iovq_front(q));
        iovq_pop(q);
    }
    q->head = 0;
} /* iovq_reset */

static void
iovq_clear(struct evpl *evpl, struct iovq *q)
{
    while (q->count) {
        evpl_iovec_release(evpl, iovq_front(q));
        iovq_pop(q);
    }
    free(q->v);
    memset(q, 0, sizeof(*q));
} /* iovq_clear */

/*
 * Move up to len bytes from the front of q into out[0..max-1] (owned
 * references; a piece is split where len ends).  Returns the iovecs
 * filled; *taken (if set) the bytes.
 */
static int
iovq_take(struct iovq *q, struct evpl_iovec *out, int max, uint64_t len, uint64_t *taken)
{
    int n = 0;
    uint64_t got = 0;

    while (q->count && got < len && n < max) {
        struct evpl_iovec *f = iovq_front(q);
        uint64_t want = len - got;

        if (f->length <= want) {
            got += f->length;
            out[n++] = *f;
            iovq_pop(q);
        } else {
            evpl_iovec_clone_segment(&out[n++], f, 0, (unsigned int) want);
            f->data = (char *) f->data + want;
            f->length -= (unsigned int) want;
            q->bytes -= want;
            got += want;
        }
    }
    if (taken) {
        *taken = got;
    }
    return n;
} /* iovq_take */

/* ------------------------------------------------------------------ */
/* objects                                                              */

enum body_mode {
    BODY_NONE,
    BODY_LENGTH,
    BODY_CHUNKED,
    BODY_CLOSE, /* until the connection ends */
};

enum rx_state {
    RX_HEAD,
    RX_BODY,       /* rx_left bytes of a length-framed body */
    RX_CHUNK_SIZE, /* a chunk-size line */
    RX_CHUNK_DATA, /* rx_left bytes of chunk data */
    RX_CHUNK_END,  /* the CRLF after chunk data */
    RX_TRAILER,    /* trailer lines up to an empty one */
    RX_CLOSE_BODY, /* everything until the connection ends (client) */
    RX_STOP,       /* nothing more is read */
};

struct evpl_http_request {
    struct evpl_http_conn *conn;
    struct evpl_http_request *next; /* conn FIFO, or the created list */
    enum evpl_http_request_type type;
    char *url;
    int url_len;
    evpl_http_notify_callback_t notify;
    void *notify_data;
    int status;

    unsigned int minor : 1;           /* HTTP/1.0 (0) or 1.1 (1) request */
    unsigned int keepalive : 1;       /* server: the connection persists */
    unsigned int expect_continue : 1; /* server: 100 Continue owed */
    unsigned int dispatched : 1;      /* server: dispatch_default; client: dispatch */
    unsigned int in_complete : 1;     /* inbound message fully received */
    unsigned int hdr_sent : 1;        /* outbound head written */
    unsigned int out_ended : 1;       /* the application ended the body */
    unsigned int out_done : 1;        /* outbound message entirely queued */
    unsigned int suppress : 1;        /* HEAD / 304: body bytes not sent */
    unsigned int h2_want : 1;         /* HTTP/2: body ran dry, WANT_DATA owed */
    unsigned int h2_deferred : 1;     /* HTTP/2: the stream's data is deferred */
    unsigned int h2_data : 1;         /* HTTP/2: body arrived since the last hint */
    int32_t stream_id;                /* HTTP/2 */
    int h2_status;                    /* HTTP/2 client: :status being received */
    uint64_t h2_held;                 /* HTTP/2: received bytes not credited to the stream */
    uint64_t h2_counted;              /* HTTP/2: its bytes in the conn's h2_buffered */
    uint64_t h2_field_bytes;          /* HTTP/2: received field bytes (budget) */
    unsigned int h2_too_big : 1;      /* HTTP/2: reset for oversized fields */
    unsigned int h2_malformed : 1;    /* HTTP/2: the peer's message broke the rules */
    unsigned int h2_bad_host : 1;     /* HTTP/2: Host fields that disagree, or a bad one */
    unsigned int h2_remote_done : 1;  /* HTTP/2: the peer ended its side */
    struct evpl_iovec h2_fill;        /* HTTP/2: buffer received data is copied to */
    unsigned int h2_fill_used;

    int framing; /* 0 none, 1 length, 2 chunked (requested) */
    enum body_mode out_mode;
    uint64_t out_length;  /* requested Content-Length */
    uint64_t out_added;   /* body bytes the application added */
    uint64_t out_written; /* body bytes handed to the transport */

    struct hfields in_hdr, in_trl, out_hdr, out_trl;
    struct iovq in_body, out_body;
};

struct evpl_http_server {
    struct evpl_http_agent *agent;
    struct evpl_listener_binding *binding;
    evpl_http_dispatch_callback_t dispatch;
    void *private_data;
    struct evpl_http_server *next;
};

struct evpl_http_conn {
    struct evpl_http_agent *agent;
    struct evpl_http_server *server; /* NULL on clients, or once destroyed */
    void *private_data;              /* client's, or the server's */
    struct evpl_bind *bind;          /* NULL once DISCONNECTED */
    struct evpl_http_conn *next, *prev;

    struct evpl_http_request *head, *tail; /* FIFO */
    struct evpl_http_request *wr;          /* client: next to write */
    struct evpl_http_request *created;     /* client: created, not dispatched */
    unsigned int nqueued;

    enum rx_state rx;
    enum body_mode rx_mode;
    uint64_t rx_left;
    int reject; /* server: status owed before closing */

    unsigned int is_client : 1;
    unsigned int tls : 1;
    unsigned int closing : 1; /* evpl_close / evpl_finish issued */
    unsigned int retired : 1; /* client: the peer went; handle kept */
    unsigned int user_closed : 1;
    unsigned int rx_paused : 1; /* stopped reading: resume in service */
    unsigned int rx_stuck : 1;  /* ... because HTTP_HEAD_HIGH is unsent */
    unsigned int draining : 1;  /* the transport ended: read what is left */
    unsigned int rx_last : 1;   /* client: the server closes after this response */
    unsigned int settled : 1;   /* HTTP/1 or HTTP/2 decided */
    unsigned int h2_failed : 1; /* HTTP/2 protocol error: GOAWAY, close */
    unsigned int h2_calm : 1;   /* ... for a flood: ENHANCE_YOUR_CALM */
#ifdef HAVE_NGHTTP2
    nghttp2_session *h2;
    uint64_t h2_buffered;  /* server: request body bytes received, not yet taken */
    uint64_t h2_conn_held; /* received bytes not credited to the connection */
    /* frames that cost us work and do nothing, against frames that do
     * (HEADERS either way, DATA sent): h2_begin_frame_cb */
    uint32_t h2_empty; /* DATA frames with no payload since one with, or a HEADERS */
    uint64_t h2_priority, h2_window_updates, h2_substance;
    uint64_t h2_skip; /* input bytes to the next frame header (h2_slice) */
#else
    void *h2;
#endif

    int depth; /* nesting of our own processing (callbacks may close) */
    uint64_t unsent;
    struct evpl_deferral service;
    struct evpl_deferral resume; /* reading again in the next pass */
    struct evpl__budget work;    /* read work done in a pass (HTTP_PASS_WORK) */
    char host[EVPL_ADDRESS_STRLEN + 16];
};

struct evpl_http_agent {
    struct evpl *evpl;
    unsigned int max_hdr;
    struct evpl_http_conn *conns;
    struct evpl_http_server *servers;
    char *scratch; /* max_hdr bytes: one head, copied out of the bind */
    struct evpl_http_request *free_reqs;
    unsigned int nfree;
    void *h2_free[9]; /* HTTP/2 allocator free lists (H2_MEM_CLASSES) */
    unsigned int h2_nfree[9];
    char *out; /* an outbound head */
    size_t out_cap;
    time_t date_at;
    char date[40];
    struct evpl__budget work; /* read work all connections did (HTTP_AGENT_WORK) */
};

static void conn_service(struct evpl *evpl, void *arg);
static void conn_resume(struct evpl *evpl, void *arg);
static void h2_read(struct evpl_http_conn *c);
static void h2_flush(struct evpl_http_conn *c);
static int h2_detect(struct evpl_http_conn *c);
static void h2_goaway(struct evpl_http_conn *c);
#ifdef HAVE_NGHTTP2
static int h2_start(struct evpl_http_conn *c);
#endif
static void h2_resume(struct evpl_http_request *r);
static void h2_taken(struct evpl_http_request *r);
#ifdef HAVE_NGHTTP2
static void h2_uncount(struct evpl_http_request *r, uint64_t remaining);
#endif
static void conn_release(struct evpl_http_conn *c);
static int body_take(struct evpl_http_conn *c, struct evpl_http_request *r, int all);
static void client_read(struct evpl_http_conn *c);
static void server_read(struct evpl_http_conn *c);
static void conn_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify,
                        void *priv);

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static const char *const method_wire[] = {"GET", "GET", "HEAD", "POST", "PUT", "DELETE"};
static const char *const method_name[] = {"Unknown", "Get", "Head", "Post", "Put", "Delete"};

static inline int
is_ws(char ch)
{
    return ch == ' ' || ch == '\t';
} /* is_ws */

static int
is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
} /* is_tchar */

/* A Host value: uri-host [":" port] (RFC 9110 7.2), so no whitespace,
 * controls, or characters that delimit other URI parts. */
static int
host_value_ok(const char *v)
{
    for (; *v; v++) {
        unsigned char ch = (unsigned char) *v;

        if (ch <= 0x20 || ch >= 0x7f || strchr("\"#/<>?@\\^`{|}", ch)) {
            return 0;
        }
    }
    return 1;
} /* host_value_ok */

static const char *
reason_phrase(int status)
{
    switch (status) {
        case 100:
            return "Continue";
        case 101:
            return "Switching Protocols";
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 202:
            return "Accepted";
        case 203:
            return "Non-Authoritative Information";
        case 204:
            return "No Content";
        case 205:
            return "Reset Content";
        case 206:
            return "Partial Content";
        case 300:
            return "Multiple Choices";
        case 301:
            return "Moved Permanently";
        case 302:
            return "Found";
        case 303:
            return "See Other";
        case 304:
            return "Not Modified";
        case 305:
            return "Use Proxy";
        case 307:
            return "Temporary Redirect";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 402:
            return "Payment Required";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 406:
            return "Not Acceptable";
        case 407:
            return "Proxy Authentication Required";
        case 408:
            return "Request Timeout";
        case 409:
            return "Conflict";
        case 410:
            return "Gone";
        case 411:
            return "Length Required";
        case 412:
            return "Precondition Failed";
        case 413:
            return "Payload Too Large";
        case 414:
            return "URI Too Long";
        case 415:
            return "Unsupported Media Type";
        case 416:
            return "Range Not Satisfiable";
        case 417:
            return "Expectation Failed";
        case 426:
            return "Upgrade Required";
        case 500:
            return "Internal Server Error";
        case 501:
            return "Not Implemented";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "Unknown";
    } /* switch */
} /* reason_phrase */

/* IMF-fixdate, recomputed once a second */
static const char *
agent_date(struct evpl_http_agent *a)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;

    if (now != a->date_at || !a->date[0]) {
        gmtime_r(&now, &tm);
        snprintf(a->date, sizeof(a->date), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        a->date_at = now;
    }
    return a->date;
} /* agent_date */

/* decimal, digits only, no overflow */
static int
parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (!*s) {
        return -1;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }
        if (v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10) {
            return -1;
        }
        v = v * 10 + (uint64_t) (*s - '0');
    }
    *out = v;
    return 0;
} /* parse_u64 */

/* does the comma list in value hold token (case-insensitive)? */
static int
list_has(const char *value, const char *token)
{
    size_t tl = strlen(token);

    while (value && *value) {
        while (*value == ',' || is_ws(*value)) {
            value++;
        }
        const char *end = value;

        while (*end && *end != ',') {
            end++;
        }
        const char *e = end;

        while (e > value && is_ws(e[-1])) {
            e--;
        }
        if ((size_t) (e - value) == tl && strncasecmp(value, token, tl) == 0) {
            return 1;
        }
        value = end;
    }
    return 0;
} /* list_has */

/*
 * Message framing from the fields (both directions).  Returns 0 and sets
 * *mode / *length; -1 for a malformed or conflicting framing (400 / bad
 * response); -2 for an unsupported coding with chunked final (501).  With
 * no framing field at all *mode = BODY_NONE.
 */
static int
parse_framing(const struct hfields *h, enum body_mode *mode, uint64_t *length, int *has_te)
{
    int have_cl = 0, te = 0, chunked_last = 0, other = 0, chunked_early = 0;
    uint64_t cl = 0, v;

    HF_FOREACH(h, name, value)
    {
        if (name_is(name, "Content-Length")) {
            if (parse_u64(value, &v) || (have_cl && v != cl)) {
                return -1;
            }
            cl = v;
            have_cl = 1;
        } else if (name_is(name, "Transfer-Encoding")) {
            const char *p = value;
            /* repeated field lines are one list: a chunked ending an
             * earlier line is followed by any coding on this one */
            int before = chunked_last;

            te = 1;
            /* an empty field, or one ending in a comma, leaves no final coding */
            chunked_last = 0;
            while (*p) {
                while (*p == ',' || is_ws(*p)) {
                    p++;
                }
                if (!*p) {
                    break;
                }
                const char *end = p;

                while (*end && *end != ',' && *end != ';') {
                    end++;
                }
                const char *e = end;

                while (e > p && is_ws(e[-1])) {
                    e--;
                }
                if (chunked_last || before) {
                    chunked_early = 1; /* chunked followed by another coding */
                }
                before = 0;
                if ((size_t) (e - p) == 7 && strncasecmp(p, "chunked", 7) == 0) {
                    chunked_last = 1;
                } else {
                    chunked_last = 0;
                    other = 1;
                }
                while (*end && *end != ',') {
                    end++; /* transfer parameters */
                }
                p = end;
            }
        }
    }
    *has_te = te;
    *length = 0;
    if (te) {
        if (have_cl) {
            return -1;
        }
        if (!chunked_last || chunked_early) {
            *mode = BODY_CLOSE; /* meaningful to clients only */
            return -1;
        }
        *mode = BODY_CHUNKED;
        return other ? -2 : 0;
    }
    if (have_cl) {
        *mode = BODY_LENGTH;
        *length = cl;
        return 0;
    }
    *mode = BODY_NONE;
    return 0;
} /* parse_framing */

/* ------------------------------------------------------------------ */
/* requests                                                             */

/* Requests are recycled per agent, with their field and iovec arrays. */
#define HTTP_FREE_REQS 256
#define HTTP_KEEP_BUF  4096

static struct evpl_http_request *
req_alloc(struct evpl_http_conn *c)
{
    struct evpl_http_agent *a = c->agent;
    struct evpl_http_request *r = a->free_reqs;

    if (r) {
        struct hfields h[4] = {r->in_hdr, r->in_trl, r->out_hdr, r->out_trl};
        struct iovq q[2] = {r->in_body, r->out_body};

        a->free_reqs = r->next;
        a->nfree--;
        memset(r, 0, sizeof(*r));
        r->in_hdr = h[0];
        r->in_trl = h[1];
        r->out_hdr = h[2];
        r->out_trl = h[3];
        r->in_body = q[0];
        r->out_body = q[1];
    } else if ((r = calloc(1, sizeof(*r))) == NULL) {
        return NULL;
    }
    r->conn = c;
    r->minor = 1;
    return r;
} /* req_alloc */

/* the memory of a request (its url is freed already) */
static void
req_destroy(struct evpl *evpl, struct evpl_http_request *r)
{
    iovq_clear(evpl, &r->in_body);
    iovq_clear(evpl, &r->out_body);
    hf_free(&r->in_hdr);
    hf_free(&r->in_trl);
    hf_free(&r->out_hdr);
    hf_free(&r->out_trl);
    free(r);
} /* req_destroy */

/* empty, keeping a small buffer for the next request */
static void
hf_reset(struct hfields *h)
{
    if (h->cap > HTTP_KEEP_BUF) {
        hf_free(h);
    }
    h->len = h->n = h->wire = 0;
} /* hf_reset */

static void
req_free(struct evpl_http_request *r)
{
    struct evpl_http_agent *a = r->conn->agent;
    struct evpl *evpl = a->evpl;

#ifdef HAVE_NGHTTP2
    if (r->conn->h2) {
        if (r->stream_id) {
            nghttp2_session_set_stream_user_data(r->conn->h2, r->stream_id, NULL);
        }
        h2_taken(r); /* held body: the connection's window still opens */
    }
    if (r->h2_counted) {
        h2_uncount(r, 0); /* its unread body goes with it */
    }
#endif
    if (r->h2_fill.data) {
        evpl_iovec_release(evpl, &r->h2_fill);
    }
    free(r->url);
    if (a->nfree < HTTP_FREE_REQS && r->in_body.cap <= 64 && r->out_body.cap <= 64) {
        iovq_reset(evpl, &r->in_body);
        iovq_reset(evpl, &r->out_body);
        hf_reset(&r->in_hdr);
        hf_reset(&r->in_trl);
        hf_reset(&r->out_hdr);
        hf_reset(&r->out_trl);
        r->next = a->free_reqs;
        a->free_reqs = r;
        a->nfree++;
        return;
    }
    req_destroy(evpl, r);
} /* req_free */

static void
req_notify(struct evpl_http_request *r, enum evpl_http_notify_type type)
{
    struct evpl_http_conn *c = r->conn;

    if (r->notify) {
        r->notify(c->agent->evpl, c->agent, r, type, r->type, r->url, r->notify_data,
                  c->private_data);
    }
} /* req_notify */

/* may more body be buffered for r? */
static inline int
body_room(const struct evpl_http_request *r)
{
    return r->in_body.count < HTTP_BODY_IOV && r->in_body.bytes < HTTP_BODY_BYTES;
} /* body_room */

static void
fifo_push(struct evpl_http_conn *c, struct evpl_http_request *r)
{
    r->next = NULL;
    if (c->tail) {
        c->tail->next = r;
    } else {
        c->head = r;
    }
    c->tail = r;
    c->nqueued++;
} /* fifo_push */

static void
fifo_remove(struct evpl_http_conn *c, struct evpl_http_request *r)
{
    struct evpl_http_request **pp = &c->head, *prev = NULL;

    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp) {
        return;
    }
    *pp = r->next;
    if (c->tail == r) {
        c->tail = prev;
    }
    if (c->wr == r) {
        c->wr = r->next;
    }
    c->nqueued--;
} /* fifo_remove */

/* The last notification a request gets; it is freed after. */
static void
req_end(struct evpl_http_request *r, enum evpl_http_notify_type type, int status)
{
    struct evpl_http_conn *c = r->conn;

    fifo_remove(c, r);
    if (type == EVPL_HTTP_NOTIFY_FAILED) {
        r->status = status;
    }
    req_notify(r, type);
    req_free(r);
} /* req_end */

/* ------------------------------------------------------------------ */
/* connections                                                          */

static void
conn_enter(struct evpl_http_conn *c)
{
    c->depth++;
} /* conn_enter */

/* Leave our processing; a connection that is gone is freed here. */
static void
conn_leave(struct evpl_http_conn *c)
{
    if (--c->depth == 0 && !c->bind && (c->user_closed || !c->is_client)) {
        conn_release(c);
    }
} /* conn_leave */

static inline int
conn_live(const struct evpl_http_conn *c)
{
    return c->bind && !c->closing;
} /* conn_live */

/* conn_live, and what we write can still reach the peer: the library has
 * not closed the bind for us either (the peer's EOF or an error does, and
 * drops what is sent after; DISCONNECTED comes on a later pass, and what
 * was received can still be read until then) */
static inline int
conn_writable(struct evpl_http_conn *c)
{
    return conn_live(c) && !evpl_bind_is_closing(c->bind);
} /* conn_writable */

static void
conn_kick(struct evpl_http_conn *c)
{
    if (c->bind) {
        evpl_defer(c->agent->evpl, &c->service);
    }
} /* conn_kick */

/* Units of read work c may still do in this pass (HTTP_PASS_WORK). */
static unsigned int
conn_work_left(struct evpl_http_conn *c)
{
    struct evpl_http_agent *a = c->agent;
    uint64_t pass = evpl__pass(a->evpl);

    if (c->draining) {
        /* (a client reads all its server sent: it chose the server) */
        return evpl__budget_left(pass, &c->work, c->is_client ? UINT32_MAX : HTTP_DRAIN_WORK,
                                 &a->work, UINT32_MAX, 0);
    }
    return evpl__budget_left(pass, &c->work, HTTP_PASS_WORK, &a->work, HTTP_AGENT_WORK,
                             HTTP_MIN_WORK);
} /* conn_work_left */

/* Count cost against the read work of c and its agent for this pass.  0
 * when none was left: the caller stops reading, and it goes on from the
 * next pass (or, once the peer has closed, not at all). */
static int
conn_work(struct evpl_http_conn *c, unsigned int cost)
{
    if (!conn_work_left(c)) {
        if (c->draining) {
            http_debug("the peer closed with more than %u units of input unread: dropped",
                       HTTP_DRAIN_WORK);
        } else if (c->bind) {
            evpl__defer_next(c->agent->evpl, &c->resume);
        }
        return 0;
    }
    evpl__budget_spend(evpl__pass(c->agent->evpl), &c->work, &c->agent->work, cost);
    return 1;
} /* conn_work */

/* A server connection whose client does not read its answers (rx_stuck:
 * parsing waits for HTTP_HEAD_HIGH to drain) reads no further ahead than
 * one head, and what it read ahead moves out of the receive buffers it
 * shares with other connections (evpl__bind_compact_recv): it cannot be
 * served before the client reads, and meanwhile it would hold those
 * buffers whole.  The rest waits in the kernel, and TCP pushes back. */
static void
conn_recv_limit(struct evpl_http_conn *c)
{
    uint64_t heads = 4 * (uint64_t) c->agent->max_hdr;
    uint64_t limit = heads > HTTP_RECV_LIMIT ? heads : HTTP_RECV_LIMIT;

    if (c->rx_stuck) {
        limit = c->agent->max_hdr;
    }
    evpl__bind_set_recv_limit(c->agent->evpl, c->bind, limit);
} /* conn_recv_limit */

static void
conn_rx_stuck(struct evpl_http_conn *c, int stuck)
{
    if (!c->bind) {
        return;
    }
    /* (what arrives while stuck is moved too: helper-94 found a read in
     * progress left up to 64 KiB in a shared buffer) */
    if (c->rx_stuck != (unsigned int) stuck) {
        c->rx_stuck = (unsigned int) stuck;
        conn_recv_limit(c);
        evpl__bind_compact_recv(c->agent->evpl, c->bind, stuck);
    }
} /* conn_rx_stuck */

static void
conn_send(struct evpl_http_conn *c, const void *data, size_t len)
{
    evpl_send(c->agent->evpl, c->bind, data, (unsigned int) len);
    c->unsent += len;
} /* conn_send */

static void
conn_sendv(struct evpl_http_conn *c, struct evpl_iovec *iov, int niov, uint64_t len)
{
    evpl_sendv(c->agent->evpl, c->bind, iov, niov, (int) len, EVPL_SEND_FLAG_TAKE_REF);
    c->unsent += len;
} /* conn_sendv */

/* Hand len bytes from the front of q to the transport, by reference. */
static void
iovq_send(struct evpl_http_conn *c, struct iovq *q, uint64_t len)
{
    struct evpl_iovec batch[32];

    while (len && q->count) {
        uint64_t taken;
        int n = iovq_take(q, batch, 32, len, &taken);

        conn_sendv(c, batch, n, taken);
        len -= taken;
    }
} /* iovq_send */

/* Stop reading and close: at once (evpl_close), or once what is queued
 * has been sent (evpl_finish).  DISCONNECTED finishes the work. */
static void
conn_end(struct evpl_http_conn *c, int graceful)
{
    if (c->bind && !c->closing) {
        c->closing = 1;
        if (graceful) {
            evpl_finish(c->agent->evpl, c->bind);
        } else {
            evpl_close(c->agent->evpl, c->bind);
        }
    }
    c->rx = RX_STOP;
} /* conn_end */

#define conn_abort(c)  conn_end((c), 0)
#define conn_finish(c) conn_end((c), 1)

static void
conn_link(struct evpl_http_agent *a, struct evpl_http_conn *c)
{
    c->agent = a;
    c->next = a->conns;
    if (a->conns) {
        a->conns->prev = c;
    }
    a->conns = c;
    evpl_deferral_init(&c->service, conn_service, c);
    evpl_deferral_init(&c->resume, conn_resume, c);
} /* conn_link */

static void
conn_release(struct evpl_http_conn *c)
{
    struct evpl_http_agent *a = c->agent;

    while (c->head) {
        struct evpl_http_request *r = c->head;

        fifo_remove(c, r);
        req_free(r);
    }
    while (c->created) {
        struct evpl_http_request *r = c->created;

        c->created = r->next;
        req_free(r);
    }
    evpl_remove_deferral(a->evpl, &c->service);
    evpl_remove_deferral(a->evpl, &c->resume);
#ifdef HAVE_NGHTTP2
    if (c->h2) {
        nghttp2_session_del(c->h2);
    }
#endif
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        a->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    free(c);
} /* conn_release */

/* The transport is gone: every outstanding request ends. */
static void
conn_lost(struct evpl_http_conn *c, int status)
{
    if (c->bind && !c->closing && (c->h2 || (c->rx != RX_STOP && (c->head || !c->is_client)))) {
        /* what is still buffered (reading may have paused, or stopped at
         * a pass's share of work) can complete requests and responses:
         * read it all, past the buffering limits and the pass's share */
        c->draining = 1;
        if (c->h2) {
            h2_read(c);
        } else if (c->is_client) {
            client_read(c);
        } else {
            server_read(c);
        }
    }
    int close_body = c->rx == RX_CLOSE_BODY;

    c->bind = NULL;
    c->rx = RX_STOP;
    if (c->is_client) {
        c->retired = 1;
        if (c->head && close_body && !c->user_closed && status == 0) {
            /* close-delimited response: the peer's orderly close is its
             * end (not a reset, a TLS close without close_notify, or the
             * application's close: then the body may be cut, FAILED
             * below; RFC 9112 §8) */
            c->head->in_complete = 1;
            req_end(c->head, EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE, 0);
        }
    }
    while (c->head) {
        req_end(c->head, EVPL_HTTP_NOTIFY_FAILED, EVPL_HTTP_ERROR_CONN_LOST);
    }
} /* conn_lost */

/* ------------------------------------------------------------------ */
/* head blocks                                                          */

/*
 * Find a complete head (start line + fields + empty line) at the front of
 * the bind's buffer, skipping empty lines before it.  Returns its length
 * (copied to the agent's scratch), 0 when more bytes are needed, -1 when
 * a line or the whole block is over the limits.  *start_end: where the
 * start line ends (past its LF) once it is complete, else 0.
 */
static int head_find_copy(struct evpl_http_conn *c, uint32_t limit, uint32_t *start_end);

static int
head_find(struct evpl_http_conn *c, uint32_t limit, uint32_t *start_end)
{
    struct evpl_http_agent *a = c->agent;
    struct evpl_iovec v[32];
    int n = evpl_peekv(a->evpl, c->bind, v, 32, (int) limit);
    uint32_t off = 0, line = 0; /* bytes scanned; of them, the current line's */
    int prev_cr = 0, seen = 0;

    *start_end = 0;

    /* scanned where it lies (views of the receive buffer): only the head
     * found is copied */
    for (int k = 0; k < n; k++) {
        const char *p = evpl_iovec_data(&v[k]), *end = p + evpl_iovec_length(&v[k]);

        while (p < end) {
            const char *lf = memchr(p, '\n', (size_t) (end - p));

            if (!lf) {
                line += (uint32_t) (end - p);
                off += (uint32_t) (end - p);
                prev_cr = end[-1] == '\r';
                if (line > HTTP_LINE_MAX + 1) {
                    return -1;
                }
                break;
            }
            uint32_t seg = (uint32_t) (lf - p);
            int cr = seg ? lf[-1] == '\r' : prev_cr;

            line += seg;
            off += seg + 1;
            if (line - (cr && line ? 1 : 0) > HTTP_LINE_MAX) {
                return -1;
            }
            if (line - (cr && line ? 1 : 0) == 0) {
                if (seen) {
                    return evpl_peek(a->evpl, c->bind, a->scratch, (int) off) == (int) off
                               ? (int) off
                               : -1;
                }
            } else if (!seen) {
                seen = 1;
                *start_end = off;
            }
            line = 0;
            prev_cr = 0;
            p = lf + 1;
        }
    }
    if (off >= limit) {
        return -1;
    }
    /* more pieces than views: look again by copying */
    return n == 32 ? head_find_copy(c, limit, start_end) : 0;
} /* head_find */

/* head_find for a head spread over many pieces: scan a copy */
static int
head_find_copy(struct evpl_http_conn *c, uint32_t limit, uint32_t *start_end)
{
    struct evpl_http_agent *a = c->agent;
    int got = evpl_peek(a->evpl, c->bind, a->scratch, (int) limit);
    uint32_t line = 0;
    int seen = 0;

    /* as head_find: a line's content is its bytes less one CR before LF */
    for (int i = 0; i < got; i++) {
        if (a->scratch[i] == '\n') {
            uint32_t content = line - (line && a->scratch[i - 1] == '\r');

            if (content > HTTP_LINE_MAX) {
                return -1;
            }
            if (content == 0 && seen) {
                return i + 1;
            }
            if (content && !seen) {
                seen = 1;
                *start_end = (uint32_t) i + 1;
            }
            line = 0;
        } else if (++line > HTTP_LINE_MAX + 1) {
            return -1;
        }
    }
    return got <= 0 || (uint32_t) got < limit ? 0 : -1; /* all there is, or over the limit */
} /* head_find_copy */

/* One line of [p, end): sets *next past its LF, returns its length less CR. */
static size_t
line_take(const char *p, const char *end, const char **next)
{
    const char *lf = memchr(p, '\n', (size_t) (end - p));
    size_t n;

    if (!lf) {
        lf = end;
    }
    n = (size_t) (lf - p);
    if (n && p[n - 1] == '\r') {
        n--;
    }
    *next = lf < end ? lf + 1 : end;
    return n;
} /* line_take */

/*
 * Parse field lines [p, end) into h (the empty line ending the block is
 * not part of it).  strict: -1 on a malformed line; otherwise (trailers)
 * malformed or over-budget lines are dropped.
 */
static int
fields_parse(struct hfields *h, const char *p, const char *end, int strict, uint32_t budget)
{
    while (p < end) {
        const char *next;
        size_t n = line_take(p, end, &next);

        if (n == 0) {
            break;
        }
        if (memchr(p, '\0', n) || memchr(p, '\r', n)) {
            /* NUL is never valid in a field (RFC 9110 5.5), nor a CR that
             * does not end the line (RFC 9112 2.2: a peer that ends lines
             * at a bare CR would read another field there) */
            if (strict) {
                return -1;
            }
            p = next;
            continue;
        }
        if (is_ws(p[0])) {
            /* obsolete line folding */
            size_t s = 0;

            while (s < n && is_ws(p[s])) {
                s++;
            }
            while (n > s && is_ws(p[n - 1])) {
                n--;
            }
            if (!h->n) {
                if (strict) {
                    return -1;
                }
            } else if (h->wire + n - s + 1 <= budget && hf_fold(h, p + s, n - s)) {
                return -1;
            }
            p = next;
            continue;
        }
        const char *colon = memchr(p, ':', n);

        if (!colon || colon == p || is_ws(colon[-1])) {
            if (strict) {
                return -1;
            }
            p = next;
            continue;
        }
        size_t nlen = (size_t) (colon - p);
        const char *v = colon + 1, *ve = p + n;
        size_t k = 0;

        /* a field name is a token (RFC 9110 5.1): "Content-Length\v" is
         * not an unknown field, another reader may take it for the real one */
        while (k < nlen && is_tchar((unsigned char) p[k])) {
            k++;
        }
        if (k < nlen) {
            if (strict) {
                return -1;
            }
            p = next;
            continue;
        }

        while (v < ve && is_ws(*v)) {
            v++;
        }
        while (ve > v && is_ws(ve[-1])) {
            ve--;
        }
        if (!strict && h->wire + nlen + (size_t) (ve - v) + 4 > budget) {
            p = next;
            continue;
        }
        if (hf_add(h, p, nlen, v, (size_t) (ve - v))) {
            return -1;
        }
        p = next;
    }
    return 0;
} /* fields_parse */

/* ------------------------------------------------------------------ */
/* bodies                                                               */

/* Take up to rx_left (or all, for a close-delimited body) bytes of body
 * (past the buffering limits once the connection ended: draining). */
static int
body_take(struct evpl_http_conn *c, struct evpl_http_request *r, int all)
{
    struct evpl *evpl = c->agent->evpl;
    struct evpl_iovec iov[64];
    int taken = 0;

    while (all || c->rx_left) {
        if (!body_room(r) && !c->draining) {
            c->rx_paused = 1;
            break;
        }
        int room = c->draining ? 64 : HTTP_BODY_IOV - (int) r->in_body.count;
        int max = all || c->rx_left > INT32_MAX ? INT32_MAX : (int) c->rx_left;
        int len = 0;
        int n = evpl_recvv(evpl, c->bind, iov, room < 64 ? room : 64, max, &len);

        if (n <= 0) {
            break;
        }
        for (int i = 0; i < n; i++) {
            if (iovq_append(evpl, &r->in_body, &iov[i])) {
                for (int j = i; j < n; j++) {
                    evpl_iovec_release(evpl, &iov[j]);
                }
                return -1;
            }
        }
        if (!all) {
            c->rx_left -= (uint64_t) len;
        }
        taken += len;
    }
    return taken;
} /* body_take */

/*
 * Read the body of r (rx state machine past the head).  Returns 1 when
 * the message is complete, 0 when more bytes are needed (or reading is
 * paused), -1 on malformed chunking (the caller rejects).
 */
static int
body_read(struct evpl_http_conn *c, struct evpl_http_request *r, int *got_data)
{
    struct evpl_http_agent *a = c->agent;

    for (;;) {
        switch (c->rx) {
            case RX_BODY:
            case RX_CHUNK_DATA:
            case RX_CLOSE_BODY: {
                int n = body_take(c, r, c->rx == RX_CLOSE_BODY);

                if (n < 0) {
                    return -1;
                }
                *got_data |= n > 0;
                if (c->rx == RX_CLOSE_BODY || c->rx_left) {
                    return 0;
                }
                if (c->rx == RX_BODY) {
                    return 1;
                }
                c->rx = RX_CHUNK_END;
                break;
            }
            case RX_CHUNK_END: {
                char crlf[2];
                int got = evpl_peek(a->evpl, c->bind, crlf, 2);

                if (got >= 1 && crlf[0] == '\n') {
                    evpl_consume(a->evpl, c->bind, 1);
                } else if (got == 2 && crlf[0] == '\r' && crlf[1] == '\n') {
                    evpl_consume(a->evpl, c->bind, 2);
                } else if (got == 2 || (got == 1 && crlf[0] != '\r')) {
                    return -1;
                } else {
                    return 0;
                }
                c->rx = RX_CHUNK_SIZE;
                break;
            }
            case RX_CHUNK_SIZE:
            case RX_TRAILER: {
                if (!conn_work(c, 1)) {
                    return 0;
                }
                int got = evpl_peek(a->evpl, c->bind, a->scratch, HTTP_LINE_MAX + 2);

                if (got <= 0) {
                    return 0;
                }
                char *lf = memchr(a->scratch, '\n', (size_t) got);

                if (!lf) {
                    return got >= HTTP_LINE_MAX + 2 ? -1 : 0;
                }
                size_t n = (size_t) (lf - a->scratch);

                evpl_consume(a->evpl, c->bind, (int) n + 1);
                if (n && a->scratch[n - 1] == '\r') {
                    n--;
                }
                if (n > HTTP_LINE_MAX) {
                    return -1;
                }
                if (c->rx == RX_TRAILER) {
                    if (n == 0) {
                        return 1;
                    }
                    /* a trailer line; the section shares the header budget */
                    fields_parse(&r->in_trl, a->scratch, a->scratch + n, 0, a->max_hdr);
                    break;
                }
                /* chunk-size [; ext] */
                uint64_t size = 0;
                size_t i = 0;

                while (i < n && isxdigit((unsigned char) a->scratch[i])) {
                    int d = isdigit((unsigned char) a->scratch[i])
                                ? a->scratch[i] - '0'
                                : (tolower((unsigned char) a->scratch[i]) - 'a' + 10);

                    if (size > (UINT64_MAX >> 4)) {
                        return -1;
                    }
                    size = (size << 4) | (uint64_t) d;
                    i++;
                }
                if (i == 0 || memchr(a->scratch, '\r', n)) {
                    return -1; /* (a bare CR: RFC 9112 2.2) */
                }
                size_t digits = i;

                while (i < n && is_ws(a->scratch[i])) {
                    i++;
                }
                /* whitespace only before ';' (BWS), and no control bytes in
                 * the extension: readers that disagree on a chunk's size
                 * are how requests are smuggled */
                if ((i < n && a->scratch[i] != ';') || (i == n && i > digits)) {
                    return -1;
                }
                for (size_t k = i; k < n; k++) {
                    unsigned char ch = (unsigned char) a->scratch[k];

                    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                        return -1;
                    }
                }
                if (size == 0) {
                    c->rx = RX_TRAILER;
                } else {
                    c->rx = RX_CHUNK_DATA;
                    c->rx_left = size;
                }
                break;
            }
            default:
                return 0;
        } /* switch */
    }
} /* body_read */

/* body_read, then the RECEIVE_DATA hint when body arrived; 0 also when
 * the application closed the connection in that callback */
static int
body_step(struct evpl_http_conn *c, struct evpl_http_request *r)
{
    int got = 0;
    int rc = body_read(c, r, &got);

    if (got && r->in_body.count) {
        req_notify(r, EVPL_HTTP_NOTIFY_RECEIVE_DATA);
        if (!conn_live(c)) {
            return 0;
        }
    }
    return rc;
} /* body_step */

/* ------------------------------------------------------------------ */
/* server side                                                          */

static void
server_reject(struct evpl_http_conn *c, int status)
{
    if (!c->reject) {
        c->reject = status;
    }
    c->rx = RX_STOP;
    conn_kick(c);
} /* server_reject */

/* A request line's tokens (views of the line) and minor version */
struct reqline {
    const char *tok[4]; /* (a fourth: room to see one too many) */
    size_t tlen[4];
    uint64_t minor;
};

/*
 * Check a request line [p, p + n) (no CR LF) against every rule that makes
 * it a 400: method SP target SP HTTP/<digits>.<digits> with major 1.
 * Returns 0 with rl filled, -1 when malformed.
 */
static int
reqline_parse(const char *p, size_t n, struct reqline *rl)
{
    if (n == 0 || is_ws(p[0]) || memchr(p, '\0', n) || memchr(p, '\r', n)) {
        return -1;
    }
    /* method SP target SP version, runs of SP/HT between */
    const char **tok = rl->tok;
    size_t *tlen = rl->tlen;
    int ntok = 0;
    const char *q = p, *qe = p + n;

    while (q < qe) {
        while (q < qe && is_ws(*q)) {
            q++;
        }
        if (q == qe) {
            break;
        }
        if (ntok == 4) {
            return -1;
        }
        tok[ntok] = q;
        while (q < qe && !is_ws(*q)) {
            q++;
        }
        tlen[ntok] = (size_t) (q - tok[ntok]);
        ntok++;
    }
    if (ntok != 3) {
        return -1;
    }
    /* no control bytes in the target (RFC 9112 3.2; bytes above 0x7f are
     * let through, as raw UTF-8 paths are common) */
    for (size_t k = 0; k < tlen[1]; k++) {
        unsigned char ch = (unsigned char) tok[1][k];

        if (ch <= 0x20 || ch == 0x7f) {
            return -1;
        }
    }
    /* HTTP/<digits>.<digits>, major 1 */
    const char *v = tok[2], *ve = tok[2] + tlen[2];
    uint64_t major = 0, minor = 0;
    int dm = 0, dn = 0;

    if (tlen[2] < 8 || memcmp(v, "HTTP/", 5) != 0) {
        return -1;
    }
    v += 5;
    while (v < ve && isdigit((unsigned char) *v)) {
        major = major < 1000 ? major * 10 + (uint64_t) (*v - '0') : major;
        v++;
        dm++;
    }
    if (!dm || v == ve || *v != '.') {
        return -1;
    }
    v++;
    while (v < ve && isdigit((unsigned char) *v)) {
        minor = minor < 1000 ? minor * 10 + (uint64_t) (*v - '0') : minor;
        v++;
        dn++;
    }
    if (!dn || v != ve || major != 1) {
        return -1;
    }
    rl->minor = minor;
    return 0;
} /* reqline_parse */

/* reqline_parse on the first non-empty line of [p, end); *next: past it */
static int
reqline_take(const char *p, const char *end, struct reqline *rl, const char **next)
{
    size_t n;

    while ((n = line_take(p, end, next)) == 0 && *next < end) {
        p = *next;
    }
    return reqline_parse(p, n, rl);
} /* reqline_take */

/* Whether the complete start line ending at start_end (past its LF, after
 * any empty lines) of a head still incomplete is a valid request line */
static int
server_start_line_ok(struct evpl_http_conn *c, uint32_t start_end)
{
    struct evpl_http_agent *a = c->agent;
    const char *next;
    struct reqline rl;

    return evpl_peek(a->evpl, c->bind, a->scratch, (int) start_end) == (int) start_end &&
           reqline_take(a->scratch, a->scratch + start_end, &rl, &next) == 0;
} /* server_start_line_ok */

/*
 * Parse one request head (len bytes in scratch).  Returns the request, or
 * NULL with *status set (400 / 501) or 0 on allocation failure.
 */
static struct evpl_http_request *
server_parse_head(struct evpl_http_conn *c, int len, int *status)
{
    struct evpl_http_agent *a = c->agent;
    const char *end = a->scratch + len, *next;
    struct reqline rl;

    *status = 400;
    if (reqline_take(a->scratch, end, &rl, &next)) {
        return NULL;
    }

    const char *const *tok = rl.tok;
    const size_t *tlen = rl.tlen;
    uint64_t minor = rl.minor;

    enum evpl_http_request_type type = EVPL_HTTP_REQUEST_TYPE_UNKNOWN;

    for (int i = EVPL_HTTP_REQUEST_TYPE_GET; i <= EVPL_HTTP_REQUEST_TYPE_DELETE; i++) {
        if (tlen[0] == strlen(method_wire[i]) && memcmp(tok[0], method_wire[i], tlen[0]) == 0) {
            type = (enum evpl_http_request_type) i;
        }
    }
    if (type == EVPL_HTTP_REQUEST_TYPE_UNKNOWN) {
        *status = 501;
        return NULL;
    }

    struct evpl_http_request *r = req_alloc(c);

    if (!r) {
        *status = 0;
        return NULL;
    }
    r->type = type;
    r->minor = minor > 0;
    r->url = strndup(tok[1], tlen[1]);
    r->url_len = (int) tlen[1];
    if (!r->url) {
        *status = 0;
        goto bad;
    }
    if (fields_parse(&r->in_hdr, next, end, 1, UINT32_MAX)) {
        goto bad;
    }

    enum body_mode mode = BODY_NONE;
    uint64_t length = 0;
    int te = 0, rc = parse_framing(&r->in_hdr, &mode, &length, &te);

    if (rc == -2) {
        *status = 501;
    }
    if (rc || (te && !r->minor)) {
        goto bad;
    }
    /* one Host at most at any version, exactly one from 1.1 (RFC 9112
     * 3.2), and a value that can be a host[:port] */
    int hosts = hf_count(&r->in_hdr, "Host");

    if (hosts > 1 || (r->minor && hosts != 1)) {
        goto bad;
    }
    HF_FOREACH(&r->in_hdr, hname, hvalue)
    {
        if (name_is(hname, "Host") && !host_value_ok(hvalue)) {
            goto bad;
        }
    }
    if (!r->minor && type == EVPL_HTTP_REQUEST_TYPE_POST && mode != BODY_LENGTH) {
        goto bad;
    }

    const char *conn_hdr = NULL;

    HF_FOREACH(&r->in_hdr, name, value)
    {
        if (name_is(name, "Connection")) {
            if (list_has(value, "close")) {
                conn_hdr = "close";
            } else if (list_has(value, "keep-alive") && !conn_hdr) {
                conn_hdr = "keep-alive";
            }
        }
    }
    if (conn_hdr && strcmp(conn_hdr, "close") == 0) {
        r->keepalive = 0;
    } else {
        r->keepalive = r->minor || conn_hdr != NULL;
    }
    if (r->minor) {
        const char *e = hf_get(&r->in_hdr, "Expect");

        r->expect_continue = e && strcasecmp(e, "100-continue") == 0;
    }
    c->rx_mode = mode;
    c->rx_left = length;
    return r;
bad:
    req_free(r);
    return NULL;
} /* server_parse_head */

/* The request being received (the last in the FIFO) failed with the
 * connection's rejection. */
static void
server_body_failed(struct evpl_http_conn *c, struct evpl_http_request *r)
{
    req_end(r, EVPL_HTTP_NOTIFY_FAILED, EVPL_HTTP_ERROR_CONN_LOST);
    server_reject(c, 400);
} /* server_body_failed */

/* A request is all in: the application hears it, the response may go. */
static void
server_received(struct evpl_http_conn *c, struct evpl_http_request *r)
{
    r->in_complete = 1;
    c->rx = r->keepalive ? RX_HEAD : RX_STOP; /* (not kept: later requests ignored) */
    req_notify(r, EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE);
    conn_kick(c);
} /* server_received */

static void
server_read(struct evpl_http_conn *c)
{
    struct evpl_http_agent *a = c->agent;

    if (!c->settled && (!c->bind || !h2_detect(c))) {
        return;
    }
    if (c->h2) {
        h2_read(c);
        return;
    }

    while (conn_live(c) && c->rx != RX_STOP) {
        if (c->rx == RX_HEAD) {
            /* (responses piling up unsent: a client that pipelines and
             * never reads would otherwise have them queued without end) */
            if (c->nqueued >= HTTP_READ_AHEAD || !c->server || c->unsent >= HTTP_HEAD_HIGH) {
                c->rx_paused = c->nqueued >= HTTP_READ_AHEAD || c->unsent >= HTTP_HEAD_HIGH;
                conn_rx_stuck(c, c->server && c->unsent >= HTTP_HEAD_HIGH);
                if (!c->server && !c->nqueued) {
                    conn_finish(c);
                }
                return;
            }
            conn_rx_stuck(c, 0);
            if (!conn_work(c, 1)) {
                return;
            }
            uint32_t start_end;
            int len = head_find(c, a->max_hdr, &start_end);

            if (len == 0) {
                /* a bad request line is answered without waiting for a
                 * header block that may never come (an HTTP/0.9 simple
                 * request has none) */
                if (start_end && !server_start_line_ok(c, start_end)) {
                    server_reject(c, 400);
                }
                return;
            }
            int status = 400;
            struct evpl_http_request *r = len > 0 ? server_parse_head(c, len, &status) : NULL;

            if (!r) {
                if (status == 0) {
                    conn_abort(c); /* out of memory */
                } else {
                    server_reject(c, status);
                }
                return;
            }
            evpl_consume(a->evpl, c->bind, len);
            fifo_push(c, r);
            c->rx = c->rx_mode == BODY_LENGTH && c->rx_left
                        ? RX_BODY
                        : (c->rx_mode == BODY_CHUNKED ? RX_CHUNK_SIZE : RX_HEAD);
            if (c->rx == RX_HEAD) {
                r->in_complete = 1;
            }
            if (r->expect_continue && r == c->head) {
                conn_kick(c);
            }

            c->server->dispatch(a->evpl, a, r, &r->notify, &r->notify_data,
                                c->server->private_data);
            if (!conn_live(c)) {
                return;
            }
            if (r->in_complete) {
                server_received(c, r);
            }
            continue;
        }

        struct evpl_http_request *r = c->tail;
        int rc = body_step(c, r);

        if (rc < 0) {
            server_body_failed(c, r);
            return;
        }
        if (rc == 0) {
            return;
        }
        server_received(c, r);
    }
} /* server_read */

/* Fix the framing of a server response at its first write. */
static void
server_frame(struct evpl_http_request *r)
{
    if (r->status < 100 || r->status > 599) {
        http_error("response status %d is not 100..599, sending 500", r->status);
        r->status = 500;
    }
    if (r->status < 200 || r->status == 204) {
        r->out_mode = BODY_NONE;
        r->suppress = 1;
    } else if (r->framing == 2) {
        r->out_mode = r->minor ? BODY_CHUNKED : BODY_CLOSE;
    } else {
        r->out_mode = BODY_LENGTH;
        if (r->framing != 1) {
            r->out_length = 0;
        }
    }
    if (r->type == EVPL_HTTP_REQUEST_TYPE_HEAD || r->status == 304) {
        r->suppress = 1;
    }
    if (r->out_mode == BODY_CLOSE) {
        r->keepalive = 0;
    }
} /* server_frame */

/* The response head, into buf (sized by the header budget + reserve). */
static int
server_head(struct evpl_http_conn *c, struct evpl_http_request *r, char *buf, size_t cap)
{
    struct obuf b = {buf, 0, cap, 0};

    ob_put(&b, r->minor ? "HTTP/1.1 " : "HTTP/1.0 ", 9);
    ob_u64(&b, (uint64_t) r->status);
    ob_put(&b, " ", 1);
    ob_str(&b, reason_phrase(r->status));
    ob_put(&b, "\r\n", 2);
    if (!hf_get(&r->out_hdr, "Date")) {
        ob_put(&b, "Date: ", 6);
        ob_str(&b, agent_date(c->agent));
        ob_put(&b, "\r\n", 2);
    }
    if (!r->keepalive) {
        hf_add(&r->out_hdr, "Connection", 10, "close", 5);
    } else if (!r->minor) {
        hf_add(&r->out_hdr, "Connection", 10, "keep-alive", 10);
    }
    ob_fields(&b, &r->out_hdr);
    if (r->out_mode == BODY_CHUNKED) {
        ob_put(&b, "Transfer-Encoding: chunked\r\n", 28);
    } else if (r->out_mode == BODY_LENGTH) {
        ob_put(&b, "Content-Length: ", 16);
        ob_u64(&b, r->out_length);
        ob_put(&b, "\r\n", 2);
    }
    ob_put(&b, "\r\n", 2);
    return b.over ? -1 : (int) b.off;
} /* server_head */

/* Send the staged body of r as far as its framing allows. */
static void
body_flush(struct evpl_http_conn *c, struct evpl_http_request *r)
{
    struct evpl *evpl = c->agent->evpl;
    struct iovq *q = &r->out_body;

    if (r->suppress || r->out_mode == BODY_NONE) {
        iovq_clear(evpl, q);
        r->out_done = 1;
        return;
    }
    if (q->count) {
        uint64_t bytes = q->bytes;

        if (r->out_mode == BODY_LENGTH && r->out_written + bytes > r->out_length) {
            bytes = r->out_length - r->out_written; /* more than declared: cut */
        }
        if (bytes && r->out_mode == BODY_CHUNKED) {
            char line[24];
            int n = snprintf(line, sizeof(line), "%" PRIx64 "\r\n", bytes);

            conn_send(c, line, (size_t) n);
        }
        iovq_send(c, q, bytes);
        if (r->out_mode == BODY_LENGTH && q->count) {
            iovq_clear(evpl, q); /* beyond the declared length */
        }
        if (bytes && r->out_mode == BODY_CHUNKED) {
            conn_send(c, "\r\n", 2);
        }
        r->out_written += bytes;
    }
    if (r->out_mode == BODY_LENGTH && r->out_written == r->out_length) {
        r->out_done = 1;
    } else if (r->out_ended) {
        if (r->out_mode == BODY_CHUNKED) {
            /* last chunk, trailer section, end */
            size_t cap = r->out_trl.wire + 8, off = 3;
            char *buf = malloc(cap);

            if (!buf) {
                conn_abort(c);
                return;
            }
            memcpy(buf, "0\r\n", 3);
            HF_FOREACH(&r->out_trl, name, value)
            {
                off += (size_t) snprintf(buf + off, cap - off, "%s: %s\r\n", name, value);
            }
            memcpy(buf + off, "\r\n", 2);
            conn_send(c, buf, off + 2);
            free(buf);
        } else if (r->out_mode == BODY_LENGTH) {
            /* ended short of its declared length: the framing is broken */
            r->keepalive = 0;
            if (r->conn->is_client) {
                conn_finish(c);
            }
        }
        r->out_done = 1;
    }
} /* body_flush */

static void
server_flush(struct evpl_http_conn *c)
{
    struct evpl_http_agent *a = c->agent;

    while (conn_writable(c) && c->head) {
        struct evpl_http_request *r = c->head;

        if (r->expect_continue && !r->hdr_sent) {
            r->expect_continue = 0;
            conn_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        }
        if (!r->in_complete || !r->dispatched) {
            return;
        }
        if (!r->hdr_sent) {
            server_frame(r);
            int n = server_head(c, r, a->out, a->out_cap);

            if (n < 0) {
                http_error("response head does not fit the header budget");
                conn_abort(c);
                return;
            }
            conn_send(c, a->out, (size_t) n);
            r->hdr_sent = 1;
        }
        body_flush(c, r);
        if (!r->out_done) {
            if (c->unsent < HTTP_SEND_HIGH) {
                req_notify(r, EVPL_HTTP_NOTIFY_WANT_DATA);
            }
            return;
        }
        int keep = r->keepalive;

        req_end(r, EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE, 0);
        if (!keep) {
            conn_finish(c);
            return;
        }
        if (c->rx_paused) {
            c->rx_paused = 0;
            server_read(c);
        }
    }
    if (!c->server && !c->head && conn_writable(c) && !c->reject) {
        conn_finish(c); /* its server is gone */
    }
    if (c->reject && !c->head && conn_writable(c)) {
        char buf[160];
        int n = snprintf(buf, sizeof(buf),
                         "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n",
                         c->reject, reason_phrase(c->reject), agent_date(a));

        conn_send(c, buf, (size_t) n);
        conn_finish(c);
    }
} /* server_flush */

static void
orphan_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify, void *priv)
{
} /* orphan_notify */

static void
server_accept(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *notify_callback,
              evpl_segment_callback_t *segment_callback, void **conn_private_data,
              void *private_data)
{
    struct evpl_http_server *s = private_data;
    struct evpl_http_conn *c = calloc(1, sizeof(*c));

    *notify_callback = conn_notify;
    *segment_callback = NULL;
    *conn_private_data = c;
    if (!c) {
        /* no memory: the connection ends at once */
        evpl_close(evpl, bind);
        *notify_callback = orphan_notify;
        return;
    }
    conn_link(s->agent, c);
    c->server = s;
    c->private_data = s->private_data;
    c->bind = bind;
    c->rx = RX_HEAD;
    conn_recv_limit(c);
    evpl_bind_request_send_notifications(evpl, bind);
} /* server_accept */

/* ------------------------------------------------------------------ */
/* client side                                                          */

static void
client_fail_head(struct evpl_http_conn *c, int status)
{
    if (c->head) {
        req_end(c->head, EVPL_HTTP_NOTIFY_FAILED, status);
    }
    conn_abort(c);
} /* client_fail_head */

/* Parse a response head; 1 = a final response for c->head, 0 = an
 * interim (1xx) response skipped, -1 = bad response. */
static int
client_parse_head(struct evpl_http_conn *c, int len)
{
    struct evpl_http_agent *a = c->agent;
    struct evpl_http_request *r = c->head;
    const char *p = a->scratch, *end = a->scratch + len, *next;
    size_t n;

    while ((n = line_take(p, end, &next)) == 0 && next < end) {
        p = next;
    }
    /* HTTP/1.<digits> SP <3 digits> [SP reason] */
    size_t i = 7;

    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || !isdigit((unsigned char) p[7])) {
        return -1;
    }
    while (i < n && isdigit((unsigned char) p[i])) {
        i++;
    }
    if (i + 4 > n || p[i] != ' ' || !isdigit((unsigned char) p[i + 1]) ||
        !isdigit((unsigned char) p[i + 2]) || !isdigit((unsigned char) p[i + 3]) ||
        (i + 4 < n && p[i + 4] != ' ')) {
        return -1;
    }
    int status = (p[i + 1] - '0') * 100 + (p[i + 2] - '0') * 10 + (p[i + 3] - '0');

    if (status < 100 || status > 599) {
        return -1;
    }
    struct hfields h = {0};

    if (fields_parse(&h, next, end, 1, UINT32_MAX)) {
        hf_free(&h);
        return -1;
    }
    if (status == 101) {
        hf_free(&h);
        return -1; /* switching protocols: we never ask to (no Upgrade) */
    }
    if (status < 200) {
        hf_free(&h);
        return 0;
    }
    enum body_mode mode = BODY_NONE;
    uint64_t length = 0;
    int te = 0, rc = parse_framing(&h, &mode, &length, &te);
    /* the last response on this connection (RFC 9112 9.3, 9.6): HTTP/1.0
     * without keep-alive, or Connection: close */
    int v10 = i == 8 && p[7] == '0', keep = !v10;

    HF_FOREACH(&h, name, value)
    {
        if (name_is(name, "Connection")) {
            if (list_has(value, "close")) {
                keep = 0;
                break;
            }
            if (list_has(value, "keep-alive")) {
                keep = 1;
            }
        }
    }
    if (v10 && te && !hf_get(&h, "Content-Length")) {
        /* framing an HTTP/1.0 peer cannot have meant: read to the close,
         * and the connection is not used again (RFC 9112 6.1) */
        rc = 0;
        mode = BODY_CLOSE;
        keep = 0;
    }
    c->rx_last = !keep;

    if (rc == -1 && !(te && !hf_get(&h, "Content-Length") && mode == BODY_CLOSE)) {
        hf_free(&h);
        return -1;
    }
    if (rc == -2) {
        mode = BODY_CHUNKED; /* other codings before chunked: still chunked */
    }
    if (mode == BODY_NONE) {
        mode = BODY_CLOSE; /* no length: until the connection closes */
    }
    if (r->type == EVPL_HTTP_REQUEST_TYPE_HEAD || status == 204 || status == 304) {
        mode = BODY_NONE;
    }
    hf_free(&r->in_hdr);
    r->in_hdr = h;
    r->status = status;
    c->rx_mode = mode;
    c->rx_left = length;
    return 1;
} /* client_parse_head */

/* A response is all in: its request ends (a request answered before it
 * was all written leaves the connection unusable: closed). */
static void
client_received(struct evpl_http_conn *c, struct evpl_http_request *r)
{
    r->in_complete = 1;
    c->rx = RX_HEAD;
    if (c->wr == r) {
        conn_abort(c);
    } else if (c->rx_last) {
        /* the server closes after it: the requests behind it fail
         * (CONN_LOST) when the connection is gone (at once: what is still
         * queued for the server is not wanted) */
        conn_abort(c);
    }
    req_end(r, EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE, 0);
} /* client_received */

static void
client_read(struct evpl_http_conn *c)
{
    struct evpl_http_agent *a = c->agent;

    if (c->h2) {
        h2_read(c);
        return;
    }

    while (c->bind && !c->closing && c->rx != RX_STOP) {
        if (c->rx == RX_HEAD) {
            if (!conn_work(c, 1)) {
                return;
            }
            uint32_t start_end;
            int len = head_find(c, a->max_hdr, &start_end);

            if (len == 0) {
                return;
            }
            if (!c->head) {
                http_debug("response with no request outstanding: closing");
                conn_abort(c);
                return;
            }
            int rc = len > 0 ? client_parse_head(c, len) : -1;

            if (rc < 0) {
                client_fail_head(c, EVPL_HTTP_ERROR_BAD_RESPONSE);
                return;
            }
            evpl_consume(a->evpl, c->bind, len);
            if (rc == 0) {
                continue;
            }
            struct evpl_http_request *r = c->head;

            switch (c->rx_mode) {
                case BODY_LENGTH:
                    c->rx = c->rx_left ? RX_BODY : RX_HEAD;
                    break;
                case BODY_CHUNKED:
                    c->rx = RX_CHUNK_SIZE;
                    break;
                case BODY_CLOSE:
                    c->rx = RX_CLOSE_BODY;
                    break;
                default:
                    c->rx = RX_HEAD;
                    break;
            } /* switch */
            req_notify(r, EVPL_HTTP_NOTIFY_RESPONSE_HEADERS);
            if (!c->bind || c->closing) {
                return;
            }
            if (c->rx == RX_HEAD) {
                client_received(c, r); /* no body */
            }
            continue;
        }
        struct evpl_http_request *r = c->head;
        int rc = body_step(c, r);

        if (rc < 0) {
            client_fail_head(c, EVPL_HTTP_ERROR_BAD_RESPONSE);
            return;
        }
        if (rc == 0) {
            return;
        }
        client_received(c, r);
    }
} /* client_read */

static int
client_head(struct evpl_http_conn *c, struct evpl_http_request *r, char *buf, size_t cap)
{
    struct obuf b = {buf, 0, cap, 0};

    ob_str(&b, method_wire[r->type]);
    ob_put(&b, " ", 1);
    ob_str(&b, r->url);
    ob_put(&b, " HTTP/1.1\r\n", 11);
    if (!hf_get(&r->out_hdr, "Host")) {
        ob_put(&b, "Host: ", 6);
        ob_str(&b, c->host);
        ob_put(&b, "\r\n", 2);
    }
    ob_fields(&b, &r->out_hdr);
    if (r->out_mode == BODY_CHUNKED) {
        ob_put(&b, "Transfer-Encoding: chunked\r\n", 28);
    } else {
        ob_put(&b, "Content-Length: ", 16);
        ob_u64(&b, r->out_length);
        ob_put(&b, "\r\n", 2);
    }
    ob_put(&b, "\r\n", 2);
    return b.over ? -1 : (int) b.off;
} /* client_head */

static void
client_flush(struct evpl_http_conn *c)
{
    struct evpl_http_agent *a = c->agent;

    while (conn_writable(c) && c->settled && c->wr) {
        struct evpl_http_request *r = c->wr;

        if (!r->hdr_sent) {
            int n = client_head(c, r, a->out, a->out_cap);

            if (n < 0) {
                http_error("request head does not fit the header budget");
                req_end(r, EVPL_HTTP_NOTIFY_FAILED, EVPL_HTTP_ERROR_CONN_LOST);
                continue;
            }
            conn_send(c, a->out, (size_t) n);
            r->hdr_sent = 1;
        }
        body_flush(c, r);
        if (!r->out_done) {
            if (c->unsent < HTTP_SEND_HIGH) {
                req_notify(r, EVPL_HTTP_NOTIFY_WANT_DATA);
            }
            return;
        }
        c->wr = r->next;
        req_notify(r, EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE);
    }
} /* client_flush */

static void
conn_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *notify, void *priv)
{
    struct evpl_http_conn *c = priv;
    struct evpl_http_request *w;

    conn_enter(c);
    switch (notify->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            /* a TLS client settles on HTTP/1 or 2 here (servers: h2_detect) */
            if (c->is_client && !c->settled) {
                c->settled = 1;
#ifdef HAVE_NGHTTP2
                const char *proto = evpl_bind_get_alpn(bind);

                if (proto && strcmp(proto, "h2") == 0 && h2_start(c)) {
                    http_error("cannot start an HTTP/2 session");
                    conn_abort(c);
                }
#endif
                conn_kick(c);
            }
            break;
        case EVPL_NOTIFY_RECV_DATA:
            if (c->is_client) {
                client_read(c);
            } else {
                server_read(c);
            }
            break;
        case EVPL_NOTIFY_SENT:
            /* a body waiting for the transport goes on */
            c->unsent = c->unsent > notify->sent.bytes ? c->unsent - notify->sent.bytes : 0;
            w = c->is_client ? c->wr : c->head;
            if (c->h2 || c->rx_paused || (w && w->hdr_sent && !w->out_done)) {
                conn_kick(c);
            }
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            if (notify->notify_status) {
                http_debug("connection lost: %s", strerror(-notify->notify_status));
            }
            conn_lost(c, notify->notify_status);
            break;
        default:
            break;
    } /* switch */
    conn_leave(c);
} /* conn_notify */

/* ------------------------------------------------------------------ */
/* HTTP/2 (nghttp2)                                                     */

#ifdef HAVE_NGHTTP2

#define H2_MAX_FIELDS    64
#define H2_STREAM_WINDOW (1 << 20)
#define H2_CONN_WINDOW   (16 << 20)
/* Body bytes all the streams of a connection may hold unread before the
 * connection's window stops being credited: without it, 100 streams of
 * 16 MiB each (body_room) could hold 1.6 GB on one connection.  With its
 * window that is at most 80 MiB (an HTTP/1 connection: 16 MiB plus the
 * 1 MiB read ahead), room for applications that read several bodies
 * only once they are complete. */
#define H2_CONN_BUFFER    (64u << 20)
#define H2_MAX_CONCURRENT 100
/* Flood limits (nghttp2 1.52 has none for these): more than H2_EMPTY_RUN
 * DATA frames in a row with no payload and no END_STREAM, or more
 * PRIORITY or WINDOW_UPDATE frames than H2_PER_SUBSTANCE times one more
 * than the HEADERS frames (either way) and DATA frames sent, end the
 * connection with GOAWAY ENHANCE_YOUR_CALM.  A peer that reads a download credits
 * at most 2 windows per DATA frame; one that sets priorities, a few per
 * stream. */
#define H2_EMPTY_RUN     16
#define H2_PER_SUBSTANCE 100

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/*
 * nghttp2's many small allocations (streams, frames, header blocks) come
 * from per-agent free lists of power-of-two blocks, 32 B to 8 KiB; a
 * 16-byte header remembers the class.  Sessions live on the agent's loop
 * only, so no locking.
 */
#define H2_MEM_CLASSES 9 /* 32 << 0 .. 32 << 8 */
#define H2_MEM_KEEP    512
#define H2_MEM_HDR     16

struct h2_block {
    union {
        struct h2_block *next;
        uint32_t cls;
    };
    char pad[H2_MEM_HDR - sizeof(void *)];
};

static void *
h2_mem_malloc(size_t size, void *ud)
{
    struct evpl_http_agent *a = ud;
    uint32_t cls = 0;
    struct h2_block *b;

    while (cls < H2_MEM_CLASSES && ((size_t) 32 << cls) < size) {
        cls++;
    }
    if (cls < H2_MEM_CLASSES && (b = a->h2_free[cls]) != NULL) {
        a->h2_free[cls] = b->next;
        a->h2_nfree[cls]--;
    } else {
        b = malloc(H2_MEM_HDR + (cls < H2_MEM_CLASSES ? (size_t) 32 << cls : size));
        if (!b) {
            return NULL;
        }
    }
    b->cls = cls;
    return (char *) b + H2_MEM_HDR;
} /* h2_mem_malloc */

static void
h2_mem_free(void *ptr, void *ud)
{
    struct evpl_http_agent *a = ud;
    struct h2_block *b;
    uint32_t cls;

    if (!ptr) {
        return;
    }
    b = (struct h2_block *) ((char *) ptr - H2_MEM_HDR);
    cls = b->cls;
    if (cls < H2_MEM_CLASSES && a->h2_nfree[cls] < H2_MEM_KEEP) {
        b->next = a->h2_free[cls];
        a->h2_free[cls] = b;
        a->h2_nfree[cls]++;
        return;
    }
    free(b);
} /* h2_mem_free */

static void *
h2_mem_calloc(size_t nmemb, size_t size, void *ud)
{
    void *p;

    if (size && nmemb > SIZE_MAX / size) {
        return NULL;
    }
    p = h2_mem_malloc(nmemb * size, ud);
    if (p) {
        memset(p, 0, nmemb * size);
    }
    return p;
} /* h2_mem_calloc */

static void *
h2_mem_realloc(void *ptr, size_t size, void *ud)
{
    struct h2_block *b;
    size_t have;
    void *p;

    if (!ptr) {
        return h2_mem_malloc(size, ud);
    }
    b = (struct h2_block *) ((char *) ptr - H2_MEM_HDR);
    if (b->cls < H2_MEM_CLASSES) {
        have = (size_t) 32 << b->cls;
        if (size <= have) {
            return ptr;
        }
    } else {
        /* an outsized block: its size is not kept, so grow it in place */
        struct h2_block *nb = realloc(b, H2_MEM_HDR + size);

        if (!nb) {
            return NULL;
        }
        nb->cls = H2_MEM_CLASSES;
        return (char *) nb + H2_MEM_HDR;
    }
    p = h2_mem_malloc(size, ud);
    if (p) {
        memcpy(p, ptr, have);
        h2_mem_free(ptr, ud);
    }
    return p;
} /* h2_mem_realloc */

static void
h2_mem_drop(struct evpl_http_agent *a)
{
    for (int i = 0; i < H2_MEM_CLASSES; i++) {
        while (a->h2_free[i]) {
            struct h2_block *b = a->h2_free[i];

            a->h2_free[i] = b->next;
            free(b);
        }
        a->h2_nfree[i] = 0;
    }
} /* h2_mem_drop */

static ssize_t
h2_send_cb(nghttp2_session *session, const uint8_t *data, size_t length, int flags, void *user)
{
    struct evpl_http_conn *c = user;

    if (!conn_live(c)) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (!conn_writable(c)) {
        return NGHTTP2_ERR_WOULDBLOCK; /* nothing completes; DISCONNECTED fails it */
    }
    if (c->unsent >= HTTP_SEND_HIGH && !c->h2_failed) {
        /* the peer is not reading: frames wait in nghttp2, whose limit on
         * queued control frames (SETTINGS and PING floods) then applies.
         * Reading goes on (unlike HTTP/1): both ends of a full-duplex
         * connection may be sending, and DATA is bounded by flow control.
         * Once the session failed, what it still sends (the GOAWAY after
         * the frames held here) is bounded and goes out. */
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    conn_send(c, data, length);
    return (ssize_t) length;
} /* h2_send_cb */

/* A DATA frame: the 9-byte header copied, the payload by reference. */
static int
h2_send_data_cb(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                size_t length, nghttp2_data_source *source, void *user)
{
    struct evpl_http_conn *c = user;
    struct evpl_http_request *r =
        nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);

    if (!conn_live(c)) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (!conn_writable(c)) {
        return NGHTTP2_ERR_WOULDBLOCK; /* nothing completes; DISCONNECTED fails it */
    }
    if (!r) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* its request is gone: reset */
    }
    if (c->unsent >= HTTP_SEND_HIGH && !c->h2_failed) {
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    conn_send(c, framehd, 9);
    if (frame->data.padlen > 0) {
        uint8_t pad[256] = {(uint8_t) (frame->data.padlen - 1)};

        conn_send(c, pad, 1);
        iovq_send(c, &r->out_body, length);
        conn_send(c, pad + 1, frame->data.padlen - 1);
    } else {
        iovq_send(c, &r->out_body, length);
    }
    r->out_written += length;
    return 0;
} /* h2_send_data_cb */

/* Is the outbound body of r complete once `more` further bytes are sent? */
static int
h2_body_ends(struct evpl_http_request *r, uint64_t more)
{
    if (r->out_mode == BODY_LENGTH) {
        return r->out_written + more >= r->out_length ||
               (r->out_ended && more == r->out_body.bytes);
    }
    return r->out_ended && more == r->out_body.bytes;
} /* h2_body_ends */

static size_t h2_nva(struct hfields *h, nghttp2_nv *nv, size_t n, size_t max, int drop_host);

static ssize_t
h2_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
           uint32_t *data_flags, nghttp2_data_source *source, void *user)
{
    struct evpl_http_request *r = nghttp2_session_get_stream_user_data(session, stream_id);
    uint64_t avail;

    if (!r) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* its request is gone: reset */
    }
    avail = r->out_body.bytes;

    if (r->out_mode == BODY_LENGTH && r->out_written + avail > r->out_length) {
        avail = r->out_length - r->out_written;
    }
    if (avail > length) {
        avail = length;
    }
    if (!avail && !h2_body_ends(r, 0)) {
        r->h2_want = 1; /* WANT_DATA after this send */
        r->h2_deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (avail) {
        *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    }
    if (h2_body_ends(r, avail)) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (r->out_trl.n) {
            nghttp2_nv nv[H2_MAX_FIELDS];
            size_t n = h2_nva(&r->out_trl, nv, 0, H2_MAX_FIELDS, 0);

            if (nghttp2_submit_trailer(session, stream_id, nv, n) == 0) {
                *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            }
        }
    }
    return (ssize_t) avail;
} /* h2_read_cb */

static int
h2_forbidden(const char *name)
{
    static const char *const drop[] = {"connection", "keep-alive",     "proxy-connection",
                                       "upgrade",    "content-length", "transfer-encoding"};

    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
        if (strcasecmp(name, drop[i]) == 0) {
            return 1;
        }
    }
    return 0;
} /* h2_forbidden */

/* Append the fields of h (lower-cased in place) to nv[n..max). */
static size_t
h2_nva(struct hfields *h, nghttp2_nv *nv, size_t n, size_t max, int drop_host)
{
    HF_FOREACH(h, name, value)
    {
        const char *v = value;
        size_t vlen;
        int ctl = 0;

        if (n == max || h2_forbidden(name) || (drop_host && strcasecmp(name, "host") == 0)) {
            continue;
        }
        /* whitespace around a value is not part of it (RFC 9110 5.5), and
         * HTTP/2 peers refuse a value with it, or with a control
         * character: the whole message failed there, where HTTP/1 went
         * through (helper-119).  Such a field is left out. */
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        vlen = strlen(v);
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) {
            vlen--;
        }
        for (size_t i = 0; i < vlen; i++) {
            unsigned char ch = (unsigned char) v[i];

            ctl |= (ch < 0x20 && ch != '\t') || ch == 0x7f;
        }
        if (strcasecmp(name, "te") == 0 && (vlen != 8 || strncasecmp(v, "trailers", 8) != 0)) {
            continue; /* (RFC 9113 8.2.2: te only as "trailers") */
        }
        if (ctl) {
            http_error("HTTP/2: field %s has a control character in its value: left out", name);
            continue;
        }
        for (char *p = (char *) name; *p; p++) {
            *p = (char) tolower((unsigned char) *p);
        }
        nv[n].name = (uint8_t *) name;
        nv[n].namelen = strlen(name);
        nv[n].value = (uint8_t *) v;
        nv[n].valuelen = vlen;
        nv[n].flags = NGHTTP2_NV_FLAG_NONE;
        n++;
    }
    return n;
} /* h2_nva */

#define H2_NV(nm, val)                                                          \
    ((nghttp2_nv){(uint8_t *) (nm), (uint8_t *) (val), strlen(nm), strlen(val), \
                  NGHTTP2_NV_FLAG_NONE})

static void
h2_submit_response(struct evpl_http_conn *c, struct evpl_http_request *r)
{
    nghttp2_nv nv[H2_MAX_FIELDS];
    char status[12];
    size_t n = 0;
    nghttp2_data_provider dp = {.source.ptr = r, .read_callback = h2_read_cb};

    r->minor = 1;
    server_frame(r);
    if (r->status < 200) {
        r->status = 500; /* no interim responses as final ones over HTTP/2 */
        r->suppress = 0;
        r->out_mode = BODY_LENGTH;
        r->out_length = 0;
    }
    snprintf(status, sizeof(status), "%d", r->status);
    nv[n++] = H2_NV(":status", status);
    if (!hf_get(&r->out_hdr, "date")) {
        nv[n++] = H2_NV("date", agent_date(c->agent));
    }
    n = h2_nva(&r->out_hdr, nv, n, H2_MAX_FIELDS, 0);
    if (r->suppress || r->out_mode == BODY_NONE ||
        (r->out_mode == BODY_LENGTH && r->out_length == 0 && !r->out_trl.n)) {
        iovq_clear(c->agent->evpl, &r->out_body);
        r->out_done = 1;
        nghttp2_submit_response(c->h2, r->stream_id, nv, n, NULL);
    } else {
        nghttp2_submit_response(c->h2, r->stream_id, nv, n, &dp);
    }
    r->hdr_sent = 1;
} /* h2_submit_response */

static void
h2_submit_request(struct evpl_http_conn *c, struct evpl_http_request *r)
{
    nghttp2_nv nv[H2_MAX_FIELDS];
    size_t n = 0;
    const char *host = hf_get(&r->out_hdr, "host");
    nghttp2_data_provider dp = {.source.ptr = r, .read_callback = h2_read_cb};
    int body = r->out_mode == BODY_CHUNKED || r->out_length || r->out_trl.n;

    nv[n++] = H2_NV(":method", method_wire[r->type]);
    nv[n++] = H2_NV(":scheme", c->tls ? "https" : "http");
    nv[n++] = H2_NV(":path", r->url);
    /* the automatic Host of HTTP/1.1 applies too (upstream sends none,
     * which servers refuse) */
    nv[n++] = H2_NV(":authority", host ? host : c->host);
    n = h2_nva(&r->out_hdr, nv, n, H2_MAX_FIELDS, 1);
    r->hdr_sent = 1;
    int32_t id = nghttp2_submit_request(c->h2, NULL, nv, n, body ? &dp : NULL, r);

    if (id < 0) {
        http_error("HTTP/2 request refused: %s", nghttp2_strerror(id));
        req_end(r, EVPL_HTTP_NOTIFY_FAILED, EVPL_HTTP_ERROR_CONN_LOST);
        return;
    }
    r->stream_id = id;
    if (!body) {
        r->out_done = 1;
    }
} /* h2_submit_request */

static struct evpl_http_request *
h2_req(nghttp2_session *session, int32_t stream_id)
{
    return stream_id ? nghttp2_session_get_stream_user_data(session, stream_id) : NULL;
} /* h2_req */

static int
h2_begin_headers_cb(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct evpl_http_conn *c = user;

    if (c->is_client || frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    struct evpl_http_request *r = req_alloc(c);

    if (!r) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    r->stream_id = frame->hd.stream_id;
    r->keepalive = 1;
    fifo_push(c, r);
    nghttp2_session_set_stream_user_data(session, r->stream_id, r);
    return 0;
} /* h2_begin_headers_cb */

static int
h2_header_cb(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
             size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    struct evpl_http_conn *c = user;
    struct evpl_http_request *r = h2_req(session, frame->hd.stream_id);
    const char *nm = (const char *) name, *v = (const char *) value;
    uint64_t budget;

    if (!r || frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    /* the same budget as HTTP/1 heads (as RFC 7541 counts a field), for
     * headers and trailers each: compression must not multiply it */
    budget =
        c->agent->max_hdr *
        (frame->headers.cat == NGHTTP2_HCAT_HEADERS && (!c->is_client || r->status >= 200) ? 2u
                                                                                           : 1u);
    r->h2_field_bytes += namelen + valuelen + 32;
    if (r->h2_field_bytes > 4 * budget &&
        r->h2_field_bytes > 64 * (uint64_t) (frame->hd.length ? frame->hd.length : 1)) {
        /* an HPACK bomb: small references to a large table entry, each
         * costing nghttp2 a check of the whole value (helper-85: 160 KB
         * sent held the loop 0.2 s).  A block merely over the budget
         * (as sent) is still answered 400 */
        http_error("HTTP/2 header block of %u bytes decodes to over %llu: closing the "
                   "connection",
                   (unsigned) frame->hd.length, (unsigned long long) r->h2_field_bytes);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (r->h2_too_big) {
        return 0; /* a request head over the budget: answered 400 at its end */
    }
    if (r->h2_field_bytes > budget) {
        r->h2_too_big = 1;
        if (!c->is_client && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            /* as an HTTP/1 head over http_max_header_size (http.md
             * statement 12): the rest of the block is skipped, 400 */
            return 0;
        }
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
    }
    if (frame->headers.cat == NGHTTP2_HCAT_HEADERS) {
        /* trailers (or, on a client, the final response after a 1xx) */
        if (!c->is_client || r->status >= 200) {
            hf_add(&r->in_trl, nm, namelen, v, valuelen);
            return 0;
        }
    }
    if (nm[0] == ':') {
        if (c->is_client) {
            if (strcmp(nm, ":status") == 0) {
                /* three digits, 100..599, as HTTP/1 status lines must be:
                 * anything else is a bad response, not an interim one */
                if (valuelen != 3 || v[0] < '1' || v[0] > '5' || v[1] < '0' || v[1] > '9' ||
                    v[2] < '0' || v[2] > '9') {
                    r->h2_malformed = 1;
                    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
                }
                r->h2_status = atoi(v);
            }
        } else if (strcmp(nm, ":method") == 0) {
            r->type = EVPL_HTTP_REQUEST_TYPE_UNKNOWN;
            for (int i = EVPL_HTTP_REQUEST_TYPE_GET; i <= EVPL_HTTP_REQUEST_TYPE_DELETE; i++) {
                if (strcmp(v, method_wire[i]) == 0) {
                    r->type = (enum evpl_http_request_type) i;
                }
            }
        } else if (strcmp(nm, ":path") == 0) {
            free(r->url);
            r->url = strndup(v, valuelen);
            r->url_len = (int) valuelen;
            if (!r->url) {
                return NGHTTP2_ERR_CALLBACK_FAILURE;
            }
        } else if (strcmp(nm, ":authority") == 0) {
            r->h2_bad_host |= !host_value_ok(v);
            hf_add(&r->in_hdr, "Host", 4, v, valuelen);
        }
        return 0;
    }
    if (c->is_client && r->h2_status < 200) {
        return 0; /* fields of an interim response */
    }
    if (!c->is_client && name_is(nm, "host")) {
        /* one Host, as over HTTP/1, where two are a 400: a host field
         * that differs from :authority (RFC 9113 8.3.1) was passed on
         * next to it, and one that is the same is said once (helper-119) */
        const char *have = hf_get(&r->in_hdr, "Host");

        r->h2_bad_host |= !host_value_ok(v) || (have && strcasecmp(have, v) != 0);
        if (have) {
            return 0;
        }
    }
    hf_add(&r->in_hdr, nm, namelen, v, valuelen);
    return 0;
} /* h2_header_cb */

/* Cookie crumbs an HTTP/2 client sent as fields of their own, one field
 * again as HTTP/1 has it (RFC 9113 8.2.3: the application read the first
 * crumb alone: helper-119).  0, or -1 without memory. */
static int
h2_join_cookies(struct hfields *h)
{
    struct hfields joined = {0};
    char *all = NULL;
    size_t len = 0;

    if (hf_count(h, "cookie") < 2) {
        return 0;
    }
    HF_FOREACH(h, name, value)
    {
        if (name_is(name, "cookie")) {
            size_t vlen = strlen(value);
            char *grown = realloc(all, len + vlen + 3);

            if (!grown) {
                free(all);
                hf_free(&joined);
                return -1;
            }
            all = grown;
            if (len) {
                memcpy(all + len, "; ", 2);
                len += 2;
            }
            memcpy(all + len, value, vlen);
            len += vlen;
        }
    }
    HF_FOREACH(h, name, value)
    {
        int cookie = name_is(name, "cookie");

        if ((cookie && all && hf_add(&joined, name, strlen(name), all, len) < 0) ||
            (!cookie && hf_add(&joined, name, strlen(name), value, strlen(value)) < 0)) {
            free(all);
            hf_free(&joined);
            return -1;
        }
        if (cookie) {
            free(all);
            all = NULL; /* (the first crumb's place) */
        }
    }
    hf_free(h);
    *h = joined;
    return 0;
} /* h2_join_cookies */

/*
 * A fresh fill buffer for received DATA: 64 KiB in one piece where the
 * configured buffers are that large; with smaller buffers (buffer_size may
 * be as small as 4 KiB) one whole buffer, and a frame goes in several
 * pieces.
 */
static int
h2_fill_new(struct evpl *evpl, struct evpl_http_request *r)
{
    struct evpl_iovec v[16]; /* 64 KiB of 4 KiB buffers */
    int n;

    if (r->h2_fill.data) {
        evpl_iovec_release(evpl, &r->h2_fill);
        r->h2_fill.data = NULL;
    }
    n = evpl_iovec_alloc(evpl, 65536, 1, 16, 0, v);
    if (n < 1) {
        return -1;
    }
    r->h2_fill = v[0];
    r->h2_fill_used = 0;
    for (int i = 1; i < n; i++) {
        evpl_iovec_release(evpl, &v[i]);
    }
    return 0;
} /* h2_fill_new */

static int
h2_data_cb(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
           size_t len, void *user)
{
    struct evpl_http_conn *c = user;
    struct evpl *evpl = c->agent->evpl;
    struct evpl_http_request *r = h2_req(session, stream_id);
    struct evpl_iovec piece;

    if (!r || r->in_complete) {
        nghttp2_session_consume(session, stream_id, len);
        return 0;
    }
    /* copied into a fill buffer: consecutive frames become one piece */
    for (size_t done = 0, n; done < len; done += n) {
        if (!r->h2_fill.data || r->h2_fill.length - r->h2_fill_used < len - done) {
            if (h2_fill_new(evpl, r) < 0) {
                return NGHTTP2_ERR_CALLBACK_FAILURE;
            }
        }
        n = r->h2_fill.length - r->h2_fill_used;
        if (n > len - done) {
            n = len - done;
        }
        memcpy((char *) r->h2_fill.data + r->h2_fill_used, data + done, n);
        evpl_iovec_clone_segment(&piece, &r->h2_fill, r->h2_fill_used, (unsigned int) n);
        r->h2_fill_used += (unsigned int) n;
        if (iovq_append(evpl, &r->in_body, &piece)) {
            evpl_iovec_release(evpl, &piece);
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
    }
    r->h2_data = 1;
    /* credit the peer at once while little is buffered, by the stream and
     * by the connection as a whole; past that, the windows open only as
     * the application takes data */
    if (!c->is_client) {
        r->h2_counted += len;
        c->h2_buffered += len;
    }
    if (body_room(r)) {
        nghttp2_session_consume_stream(session, stream_id, len);
    } else {
        r->h2_held += len;
    }
    if (c->h2_buffered <= H2_CONN_BUFFER) {
        /* (never counted on a client: it asked for what comes, so its
         * responses are capped only each by its stream) */
        nghttp2_session_consume_connection(session, len);
    } else {
        c->h2_conn_held += len;
    }
    return 0;
} /* h2_data_cb */

/* r's inbound message is complete */
static void
h2_received(struct evpl_http_conn *c, struct evpl_http_request *r)
{
    r->in_complete = 1;
    if (c->is_client) {
        nghttp2_session_set_stream_user_data(c->h2, r->stream_id, NULL);
        if (!r->out_done) {
            /* answered before the request body was all sent: stop sending */
            nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, r->stream_id, NGHTTP2_NO_ERROR);
            conn_kick(c);
        }
        h2_taken(r);
        r->stream_id = 0;
        req_end(r, EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE, 0);
    } else {
        req_notify(r, EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE);
        conn_kick(c);
    }
} /* h2_received */

/* nghttp2 found a frame of ours (a response, at a client) malformed
 * (RFC 9113 8.1.1: no or a bad :status, a body the length or status does
 * not allow, ...): its stream is reset, and the request fails as a bad
 * response, not as a lost connection a retry might mend. */
static int
h2_invalid_frame_cb(nghttp2_session *session, const nghttp2_frame *frame, int lib_error, void *user)
{
    struct evpl_http_conn *c = user;
    struct evpl_http_request *r = frame->hd.stream_id ? h2_req(session, frame->hd.stream_id) : NULL;

    (void) lib_error;
    if (r && c->is_client) {
        r->h2_malformed = 1; /* (a server's request that fails is CONN_LOST) */
    }
    return 0;
} /* h2_invalid_frame_cb */

/* A flood of frames that do nothing: GOAWAY ENHANCE_YOUR_CALM. */
static int
h2_flood(struct evpl_http_conn *c, const char *what)
{
    http_debug("HTTP/2 peer floods %s: closing", what);
    c->h2_calm = 1;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
} /* h2_flood */

static void
h2_empty_data(struct evpl_http_conn *c, size_t payload, uint8_t flags)
{
    if (payload || (flags & NGHTTP2_FLAG_END_STREAM)) {
        c->h2_empty = 0;
    } else {
        c->h2_empty++;
    }
} /* h2_empty_data */

static int
h2_frame_recv_cb(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct evpl_http_conn *c = user;
    struct evpl_http_request *r = h2_req(session, frame->hd.stream_id);
    int end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;

    if (frame->hd.type == NGHTTP2_DATA && (frame->hd.flags & NGHTTP2_FLAG_PADDED)) {
        h2_empty_data(c, frame->hd.length - frame->data.padlen, frame->hd.flags);
        if (c->h2_empty > H2_EMPTY_RUN) {
            return h2_flood(c, "empty DATA frames");
        }
    }
    if (!r) {
        return 0;
    }
    if (end && (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS)) {
        r->h2_remote_done = 1;
    }
    if (frame->hd.type == NGHTTP2_DATA) {
        if (r->h2_data) {
            r->h2_data = 0;
            req_notify(r, EVPL_HTTP_NOTIFY_RECEIVE_DATA);
        }
        if (end && (r = h2_req(session, frame->hd.stream_id)) != NULL) {
            h2_received(c, r);
        }
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    if (!c->is_client && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        if (h2_join_cookies(&r->in_hdr) < 0) {
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        if (r->h2_too_big || r->h2_bad_host || r->type == EVPL_HTTP_REQUEST_TYPE_UNKNOWN ||
            !r->url || !c->server) {
            /* answered here, never seen by the application */
            r->in_complete = 1;
            r->dispatched = 1;
            r->status = !c->server ? 503 : r->h2_too_big || r->h2_bad_host ? 400 : 501;
            conn_kick(c);
            return 0;
        }
        c->server->dispatch(c->agent->evpl, c->agent, r, &r->notify, &r->notify_data,
                            c->server->private_data);
        if (end) {
            h2_received(c, r);
        }
        return 0;
    }
    if (c->is_client && frame->headers.cat != NGHTTP2_HCAT_REQUEST && r->status < 200) {
        if (r->h2_status < 200) {
            hf_free(&r->in_hdr); /* an interim response: skipped */
            r->h2_field_bytes = 0;
            return 0;
        }
        r->status = r->h2_status;
        req_notify(r, EVPL_HTTP_NOTIFY_RESPONSE_HEADERS);
        if ((r = h2_req(session, frame->hd.stream_id)) == NULL) {
            return 0;
        }
    }
    if (end) {
        h2_received(c, r);
    }
    return 0;
} /* h2_frame_recv_cb */

static int
h2_frame_send_cb(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    struct evpl_http_conn *c = user;
    struct evpl_http_request *r = h2_req(session, frame->hd.stream_id);

    if (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) {
        c->h2_substance++;
    }
    if (r && c->is_client && frame->hd.type == NGHTTP2_RST_STREAM &&
        frame->rst_stream.error_code == NGHTTP2_PROTOCOL_ERROR) {
        /* nghttp2 resets a stream whose response broke the rules (a body
         * longer or shorter than its content-length) without calling the
         * invalid-frame callback */
        r->h2_malformed = 1;
    }
    if (!r || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
        (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS)) {
        return 0;
    }
    r->out_done = 1;
    if (c->is_client) {
        req_notify(r, EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE);
    } else {
        nghttp2_session_set_stream_user_data(session, r->stream_id, NULL);
        if (!r->h2_remote_done) {
            /* answered (501/503) while the peer still sends: stop it */
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, r->stream_id, NGHTTP2_NO_ERROR);
        }
        h2_taken(r);
        r->stream_id = 0;
        req_end(r, EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE, 0);
    }
    return 0;
} /* h2_frame_send_cb */

static int
h2_stream_close_cb(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user)
{
    struct evpl_http_request *r = h2_req(session, stream_id);

    if (r) {
        http_debug("HTTP/2 stream %d closed early: %s", stream_id,
                   nghttp2_http2_strerror(error_code));
        /* reset, or closed before our side ended: the header promises FAILED */
        nghttp2_session_set_stream_user_data(session, stream_id, NULL);
        h2_taken(r);
        r->stream_id = 0;
        req_end(r, EVPL_HTTP_NOTIFY_FAILED,
                r->h2_too_big || r->h2_malformed ? EVPL_HTTP_ERROR_BAD_RESPONSE
                                                 : EVPL_HTTP_ERROR_CONN_LOST);
    }
    return 0;
} /* h2_stream_close_cb */

static int
h2_begin_frame_cb(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user)
{
    struct evpl_http_conn *c = user;
    uint64_t allowed = H2_PER_SUBSTANCE * (c->h2_substance + 1);

    (void) session;
    conn_work(c, 1); /* (h2_slice feeds no more frames than are left) */
    switch (hd->type) {
        case NGHTTP2_DATA:
            /* (a padded frame's payload is known when it is all in) */
            if (!(hd->flags & NGHTTP2_FLAG_PADDED)) {
                h2_empty_data(c, hd->length, hd->flags);
            }
            break;
        case NGHTTP2_HEADERS:
            c->h2_substance++;
            c->h2_empty = 0; /* (a body that ended empty, then trailers) */
            break;
        case NGHTTP2_PRIORITY:
            if (++c->h2_priority > allowed) {
                return h2_flood(c, "PRIORITY frames");
            }
            break;
        case NGHTTP2_WINDOW_UPDATE:
            if (++c->h2_window_updates > allowed) {
                return h2_flood(c, "WINDOW_UPDATE frames");
            }
            break;
        default:
            break;
    } /* switch */
    return c->h2_empty > H2_EMPTY_RUN ? h2_flood(c, "empty DATA frames") : 0;
} /* h2_begin_frame_cb */

static int
h2_start(struct evpl_http_conn *c)
{
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    int rv;

    if (nghttp2_session_callbacks_new(&cb)) {
        return -1;
    }
    nghttp2_session_callbacks_set_send_callback(cb, h2_send_cb);
    nghttp2_session_callbacks_set_send_data_callback(cb, h2_send_data_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_begin_headers_cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, h2_header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_data_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_frame_recv_cb);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, h2_frame_send_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_stream_close_cb);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, h2_invalid_frame_cb);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, h2_begin_frame_cb);
    if (nghttp2_option_new(&opt)) {
        nghttp2_session_callbacks_del(cb);
        return -1;
    }
    /* windows open as the application takes body data */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    nghttp2_mem mem = {c->agent, h2_mem_malloc, h2_mem_free, h2_mem_calloc, h2_mem_realloc};

    rv = c->is_client ? nghttp2_session_client_new3(&c->h2, cb, c, opt, &mem)
                      : nghttp2_session_server_new3(&c->h2, cb, c, opt, &mem);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv) {
        c->h2 = NULL;
        return -1;
    }
    /* a server's input begins with the client's magic, not a frame */
    c->h2_skip = c->is_client ? 0 : NGHTTP2_CLIENT_MAGIC_LEN;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_CONCURRENT},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, c->agent->max_hdr},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv,
                            c->is_client ? 4 : 3); /* ENABLE_PUSH is the client's */
    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
    if (!c->is_client && !c->server) {
        h2_goaway(c); /* its server is gone already */
    }
    conn_kick(c);
    return 0;
} /* h2_start */

static unsigned int
iov_byte(const struct evpl_iovec *v, int n, size_t pos)
{
    for (int i = 0; i < n; pos -= evpl_iovec_length(&v[i]), i++) {
        if (pos < evpl_iovec_length(&v[i])) {
            return ((const unsigned char *) evpl_iovec_data(&v[i]))[pos];
        }
    }
    return 0;
} /* iov_byte */

/*
 * How many of the bytes in v[0..n) to feed the session: what is left of
 * the frame under way (*skip bytes), then whole frames or the start of
 * one, no more than `frames` frame headers, and never part of a header
 * (it waits for the rest: v is the bind's first pieces, all of them or
 * at least 16 bytes, so a header that is in is found from the front).
 * *skip becomes what is left of the last frame fed.  So a pass begins no
 * more frames than the connection's work left, however small.
 */
static size_t
h2_slice(const struct evpl_iovec *v, int n, uint64_t *skip, unsigned int frames)
{
    size_t total = 0, pos = 0;

    for (int i = 0; i < n; i++) {
        total += evpl_iovec_length(&v[i]);
    }
    for (;;) {
        uint64_t step = *skip < total - pos ? *skip : total - pos;

        pos += step;
        *skip -= step;
        if (*skip || !frames || total - pos < 9) {
            return pos;
        }
        frames--;
        *skip = 9 + ((uint64_t) iov_byte(v, n, pos) << 16 |
                     (uint64_t) iov_byte(v, n, pos + 1) << 8 | iov_byte(v, n, pos + 2));
    }
} /* h2_slice */

/* Feed what the bind holds to the session while the pass's read work
 * lasts (each frame begun counts 1, h2_begin_frame_cb). */
static void
h2_read(struct evpl_http_conn *c)
{
    struct evpl *evpl = c->agent->evpl;
    struct evpl_iovec v[16];

    while (conn_live(c) && conn_work(c, 0)) {
        int n = evpl_peekv(evpl, c->bind, v, 16, 1 << 30);
        uint64_t skip = c->h2_skip;
        size_t slice = n > 0 ? h2_slice(v, n, &skip, conn_work_left(c)) : 0;
        size_t total = 0;

        if (slice == 0) {
            break;
        }
        for (int i = 0; total < slice && conn_live(c); i++) {
            size_t len = evpl_iovec_length(&v[i]);
            ssize_t rv;

            if (len > slice - total) {
                len = slice - total;
            }
            rv = nghttp2_session_mem_recv(c->h2, evpl_iovec_data(&v[i]), len);
            if (rv < 0) {
                http_debug("HTTP/2 connection error: %s", nghttp2_strerror((int) rv));
                conn_kick(c); /* GOAWAY, then close */
                c->h2_failed = 1;
                evpl_consume(evpl, c->bind, (int) (total + len));
                return;
            }
            total += len;
        }
        if (!c->bind) {
            return;
        }
        c->h2_skip = skip;
        evpl_consume(evpl, c->bind, (int) total);
    }
    conn_kick(c);
} /* h2_read */

static void
h2_flush(struct evpl_http_conn *c)
{
    if (!c->is_client || c->settled) {
        for (struct evpl_http_request *r = c->head, *next; r && conn_live(c); r = next) {
            next = r->next;
            if (r->hdr_sent) {
                continue;
            }
            if (c->is_client) {
                h2_submit_request(c, r);
            } else if (r->in_complete && r->dispatched) {
                h2_submit_response(c, r);
            }
        }
    }
    if (!conn_live(c)) {
        return;
    }
    if (c->h2_failed) {
        nghttp2_session_terminate_session(c->h2, c->h2_calm ? NGHTTP2_ENHANCE_YOUR_CALM
                                                            : NGHTTP2_PROTOCOL_ERROR);
    }
    int rv = nghttp2_session_send(c->h2);

    if (rv || c->h2_failed) {
        http_debug("HTTP/2 session ends: %s", rv ? nghttp2_strerror(rv) : "protocol error");
        if (c->unsent >= HTTP_SEND_HIGH) {
            /* the peer does not read what is queued (a flood of PINGs
             * whose ACKs it never takes): a graceful close would wait
             * for it for ever */
            conn_abort(c);
        } else {
            conn_finish(c);
        }
        return;
    }
    for (struct evpl_http_request *r = c->head, *next; r && conn_live(c); r = next) {
        next = r->next;
        if (r->h2_want && c->unsent < HTTP_SEND_HIGH) {
            r->h2_want = 0;
            req_notify(r, EVPL_HTTP_NOTIFY_WANT_DATA);
        }
    }
    if (conn_live(c) && !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
        conn_finish(c);
    }
} /* h2_flush */

/* Server going away: no stream after those begun is served, and the
 * connection closes once they are done (want_read and want_write both
 * end then, h2_flush). */
static void
h2_goaway(struct evpl_http_conn *c)
{
    if (c->h2 && conn_live(c)) {
        (void) nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
                                     nghttp2_session_get_last_proc_stream_id(c->h2),
                                     NGHTTP2_NO_ERROR, NULL, 0);
    }
} /* h2_goaway */

/* Server: the first bytes of a connection decide HTTP/1 or h2c. */
static int
h2_detect(struct evpl_http_conn *c)
{
    char buf[sizeof(h2_preface) - 1];
    int got = evpl_peek(c->agent->evpl, c->bind, buf, (int) sizeof(buf));

    if (got <= 0 || memcmp(buf, h2_preface, (size_t) got) != 0) {
        c->settled = 1;
        return got <= 0 ? 0 : 1;
    }
    if (got < (int) sizeof(buf)) {
        return 0; /* a prefix of the preface: wait */
    }
    c->settled = 1;
    if (h2_start(c)) {
        conn_abort(c);
        return 0;
    }
    return 1;
} /* h2_detect */

static void
h2_resume(struct evpl_http_request *r)
{
    if (r->h2_deferred && r->conn->h2 && r->stream_id) {
        r->h2_deferred = 0;
        nghttp2_session_resume_data(r->conn->h2, r->stream_id);
    }
} /* h2_resume */

/* r holds remaining body bytes now (taken, or the request freed): the
 * connection's count follows, and what it held back is credited once the
 * connection is under its cap again. */
static void
h2_uncount(struct evpl_http_request *r, uint64_t remaining)
{
    struct evpl_http_conn *c = r->conn;

    if (r->h2_counted > remaining) {
        c->h2_buffered -= r->h2_counted - remaining;
        r->h2_counted = remaining;
    }
    if (c->h2 && c->h2_conn_held && c->h2_buffered <= H2_CONN_BUFFER) {
        nghttp2_session_consume_connection(c->h2, c->h2_conn_held);
        c->h2_conn_held = 0;
        conn_kick(c);
    }
} /* h2_uncount */

/* The application took body data (or the stream ended): credit what was
 * held back. */
static void
h2_taken(struct evpl_http_request *r)
{
    if (!r->conn->h2) {
        return;
    }
    if (r->h2_held) {
        if (r->stream_id) {
            nghttp2_session_consume_stream(r->conn->h2, r->stream_id, r->h2_held);
            conn_kick(r->conn);
        }
        r->h2_held = 0;
    }
    h2_uncount(r, r->in_body.bytes);
} /* h2_taken */

#else /* !HAVE_NGHTTP2 */

static void
h2_goaway(struct evpl_http_conn *c)
{
} /* h2_goaway */

static void
h2_read(struct evpl_http_conn *c)
{
} /* h2_read */

static void
h2_flush(struct evpl_http_conn *c)
{
} /* h2_flush */

static int
h2_detect(struct evpl_http_conn *c)
{
    c->settled = 1;
    return 1;
} /* h2_detect */

static void
h2_resume(struct evpl_http_request *r)
{
} /* h2_resume */

static void
h2_taken(struct evpl_http_request *r)
{
} /* h2_taken */

#endif /* HAVE_NGHTTP2 */

/* ------------------------------------------------------------------ */
/* the connection's deferral: writes, then reads that were paused       */

static void
conn_service(struct evpl *evpl, void *arg)
{
    struct evpl_http_conn *c = arg;

    conn_enter(c);
    if (c->h2) {
        h2_flush(c);
    } else if (c->is_client) {
        client_flush(c);
        if (c->rx_paused && c->bind && c->head && body_room(c->head)) {
            c->rx_paused = 0;
            client_read(c);
        }
    } else {
        server_flush(c);
        if (c->rx_paused && c->bind &&
            (c->rx != RX_HEAD || (c->nqueued < HTTP_READ_AHEAD && c->unsent < HTTP_HEAD_HIGH)) &&
            (c->rx == RX_HEAD || !c->tail || body_room(c->tail))) {
            c->rx_paused = 0;
            server_read(c);
        }
    }
    conn_leave(c);
} /* conn_service */

/* The next pass after a connection's read work ran out (conn_work). */
static void
conn_resume(struct evpl *evpl, void *arg)
{
    struct evpl_http_conn *c = arg;

    (void) evpl;
    conn_enter(c);
    if (c->bind && !c->rx_paused) {
        if (c->is_client) {
            client_read(c);
        } else {
            server_read(c);
        }
    }
    conn_leave(c);
} /* conn_resume */

/* ------------------------------------------------------------------ */
/* public: agent                                                        */

EVPL_API struct evpl_http_agent *
evpl_http_init(struct evpl *evpl)
{
    struct evpl_http_agent *a = calloc(1, sizeof(*a));
    unsigned int max = evpl_global_config_get_http_max_header_size();

    if (!a) {
        evpl_abort("http", __FILE__, __LINE__, "out of memory creating the HTTP agent");
    }
    a->evpl = evpl;
    a->max_hdr = max < 512 ? 512 : max;
    /* a head, or one chunk/trailer line with its CRLF */
    a->scratch = malloc((a->max_hdr > HTTP_LINE_MAX + 2 ? a->max_hdr : HTTP_LINE_MAX + 2) + 1);
    /* a request line (up to the budget) and fields (up to the budget) */
    a->out_cap = 2 * (size_t) a->max_hdr + HTTP_RESERVE + 512;
    a->out = malloc(a->out_cap);
    if (!a->scratch || !a->out) {
        evpl_abort("http", __FILE__, __LINE__, "out of memory creating the HTTP agent");
    }
    return a;
} /* evpl_http_init */

EVPL_API void
evpl_http_destroy(struct evpl_http_agent *a)
{
    if (!a) {
        return;
    }
    while (a->servers) {
        evpl_http_server_destroy(a, a->servers);
    }
    for (struct evpl_http_conn *c = a->conns, *n; c; c = n) {
        n = c->next;
        c->user_closed = 1;
        if (c->bind) {
            if (!c->closing) {
                c->closing = 1;
                evpl_close(a->evpl, c->bind);
            } else {
                /* finishing: cut it, the agent is going */
                evpl_close(a->evpl, c->bind);
            }
        } else if (!c->depth) {
            conn_release(c);
        }
    }
    while (a->conns) {
        evpl_continue(a->evpl);
    }
    while (a->free_reqs) {
        struct evpl_http_request *r = a->free_reqs;

        a->free_reqs = r->next;
        req_destroy(a->evpl, r);
    }
#ifdef HAVE_NGHTTP2
    h2_mem_drop(a);
#endif
    free(a->scratch);
    free(a->out);
    free(a);
} /* evpl_http_destroy */

EVPL_API enum evpl_http_protocol
evpl_http_request_protocol(struct evpl_http_request *request)
{
    return request->conn->h2 ? EVPL_HTTP_PROTOCOL_HTTP2 : EVPL_HTTP_PROTOCOL_HTTP1;
} /* evpl_http_request_protocol */

/* ------------------------------------------------------------------ */
/* public: server                                                       */

EVPL_API struct evpl_http_server *
evpl_http_attach(struct evpl_http_agent *agent, struct evpl_listener *listener,
                 evpl_http_dispatch_callback_t dispatch_callback, void *private_data)
{
    struct evpl_http_server *s = calloc(1, sizeof(*s));

    if (!s) {
        evpl_abort("http", __FILE__, __LINE__, "out of memory attaching an HTTP server");
    }
    s->agent = agent;
    s->dispatch = dispatch_callback;
    s->private_data = private_data;
    s->next = agent->servers;
    agent->servers = s;
#ifdef HAVE_NGHTTP2
    evpl_tls_set_alpn("h2,http/1.1"); /* process-wide, as upstream */
#endif
    s->binding = evpl_listener_attach(agent->evpl, listener, server_accept, s);
    return s;
} /* evpl_http_attach */

EVPL_API void
evpl_http_server_destroy(struct evpl_http_agent *agent, struct evpl_http_server *server)
{
    struct evpl_http_server **pp = &agent->servers;

    while (*pp && *pp != server) {
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = server->next;
    }
    if (server->binding) {
        evpl_listener_detach(agent->evpl, server->binding);
    }
    /* connections it accepted finish what they have read, then close */
    for (struct evpl_http_conn *c = agent->conns; c; c = c->next) {
        if (c->server == server) {
            c->server = NULL;
            /* HTTP/1: nothing after the queued requests is read now, so
             * the last one's response says the connection ends (§3.2) */
            if (!c->h2 && c->tail && !c->tail->hdr_sent) {
                c->tail->keepalive = 0;
            }
            /* HTTP/2: GOAWAY names the last stream still served; the
             * session ends when those are done (h2_flush) */
            h2_goaway(c);
            conn_kick(c);
        }
    }
    free(server);
} /* evpl_http_server_destroy */

EVPL_API void
evpl_http_server_set_response_length(struct evpl_http_request *request, uint64_t content_length)
{
    request->framing = 1;
    request->out_length = content_length;
    if (request->out_added >= content_length) {
        request->out_ended = 1;
    }
} /* evpl_http_server_set_response_length */

EVPL_API void
evpl_http_server_set_response_chunked(struct evpl_http_request *request)
{
    request->framing = 2;
} /* evpl_http_server_set_response_chunked */

EVPL_API void
evpl_http_server_dispatch_default(struct evpl_http_request *request, int status)
{
    if (request->dispatched) {
        http_error("evpl_http_server_dispatch_default called twice");
        return;
    }
    request->dispatched = 1;
    request->status = status;
    conn_kick(request->conn);
} /* evpl_http_server_dispatch_default */

/* ------------------------------------------------------------------ */
/* public: shared                                                       */

static int
field_check(const char *name, const char *value)
{
    if (!name || !*name || !value) {
        return -1;
    }
    for (const char *p = name; *p; p++) {
        if (!is_tchar((unsigned char) *p)) {
            return -1;
        }
    }
    if (strpbrk(value, "\r\n")) {
        return -1;
    }
    return 0;
} /* field_check */

static int
field_add(struct evpl_http_request *r, struct hfields *h, const char *name, const char *value,
          unsigned int reserve)
{
    if (field_check(name, value)) {
        return -1;
    }
    size_t nl = strnlen(name, HTTP_NAME_MAX), vl = strnlen(value, HTTP_VALUE_MAX);
    unsigned int max = r->conn->agent->max_hdr;

    if (h->wire + nl + vl + 4 + reserve > max) {
        return -1;
    }
    return hf_add(h, name, nl, value, vl);
} /* field_add */

EVPL_API int
evpl_http_request_add_header(struct evpl_http_request *request, const char *name, const char *value)
{
    if (!request || request->hdr_sent) {
        return -1;
    }
    return field_add(request, &request->out_hdr, name, value, HTTP_RESERVE);
} /* evpl_http_request_add_header */

EVPL_API enum evpl_http_request_type
evpl_http_request_type(struct evpl_http_request *request)
{
    return request->type;
} /* evpl_http_request_type */

EVPL_API const char *
evpl_http_request_type_to_string(struct evpl_http_request *request)
{
    unsigned int t = (unsigned int) request->type;

    return method_name[t <= EVPL_HTTP_REQUEST_TYPE_DELETE ? t : 0];
} /* evpl_http_request_type_to_string */

EVPL_API const char *
evpl_http_request_url(struct evpl_http_request *request, int *len)
{
    if (len) {
        *len = request->url_len;
    }
    return request->url;
} /* evpl_http_request_url */

EVPL_API const char *
evpl_http_request_header(struct evpl_http_request *request, const char *name)
{
    return hf_get(request->conn->is_client ? &request->out_hdr : &request->in_hdr, name);
} /* evpl_http_request_header */

EVPL_API void
evpl_http_request_header_iterate(struct evpl_http_request *request,
                                 evpl_http_request_header_cb_t callback, void *private_data)
{
    hf_iterate(request->conn->is_client ? &request->out_hdr : &request->in_hdr, callback,
               private_data);
} /* evpl_http_request_header_iterate */

EVPL_API int
evpl_http_request_add_trailer(struct evpl_http_request *request, const char *name,
                              const char *value)
{
    if (!request || request->out_ended) {
        return -1;
    }
    /* http.md §5: the whole limit (the library adds no trailer lines) */
    return field_add(request, &request->out_trl, name, value, 0);
} /* evpl_http_request_add_trailer */

EVPL_API const char *
evpl_http_request_trailer(struct evpl_http_request *request, const char *name)
{
    return hf_get(&request->in_trl, name);
} /* evpl_http_request_trailer */

EVPL_API void
evpl_http_request_trailer_iterate(struct evpl_http_request *request,
                                  evpl_http_request_header_cb_t callback, void *private_data)
{
    hf_iterate(&request->in_trl, callback, private_data);
} /* evpl_http_request_trailer_iterate */

EVPL_API uint64_t
evpl_http_request_get_data_avail(struct evpl_http_request *request)
{
    return request->in_body.bytes;
} /* evpl_http_request_get_data_avail */

EVPL_API int
evpl_http_request_get_datav(struct evpl *evpl, struct evpl_http_request *request,
                            struct evpl_iovec *iov, int length)
{
    struct iovq *q = &request->in_body;
    int n = 0, pieces = 0, keep, copies, most;
    uint64_t sum = 0, rest, at = 0, bs = evpl__iovec_buffer_size();

    if (!iov || length < 0 || (uint64_t) length > q->bytes) {
        errno = EINVAL;
        return -1;
    }
    for (uint32_t i = 0; i < q->count && sum < (uint64_t) length; i++) {
        sum += q->v[(q->head + i) & (q->cap - 1)].length;
        pieces++;
    }
    /* at most EVPL_HTTP_DATAV_MAX iovecs; with small buffers, a length of
     * more than that many buffers may take one more than it needs */
    copies = (int) (((uint64_t) length + bs - 1) / bs);
    most = copies + 1 > EVPL_HTTP_DATAV_MAX ? copies + 1 : EVPL_HTTP_DATAV_MAX;
    if (pieces <= most) {
        n = iovq_take(q, iov, INT32_MAX, (uint64_t) length, NULL);
    } else {
        /* more pieces than the caller's array holds (a peer sending tiny
         * chunks wrote past it): the first ones as they are, the rest
         * copied into as few buffers as they fit */
        keep = most - copies;
        for (sum = 0, pieces = 0; pieces < keep; pieces++) {
            sum += q->v[(q->head + (uint32_t) pieces) & (q->cap - 1)].length;
        }
        rest = (uint64_t) length - sum;
        copies = evpl_iovec_alloc(evpl, (unsigned int) rest, 0, (unsigned int) (most - keep), 0,
                                  iov + keep);
        if (copies < 0) {
            errno = ENOMEM;
            return -1;
        }
        n = iovq_take(q, iov, keep, sum, NULL);
        for (struct evpl_iovec *to = iov + keep; rest;) {
            /* the copy buffers are filled in order */
            struct evpl_iovec tmp[16];
            uint64_t taken;
            int got =
                iovq_take(q, tmp, 16, rest < to->length - at ? rest : to->length - at, &taken);

            for (int j = 0; j < got; j++) {
                memcpy((char *) to->data + at, tmp[j].data, tmp[j].length);
                at += tmp[j].length;
                evpl_iovec_release(evpl, &tmp[j]);
            }
            rest -= taken;
            if (at == to->length) {
                to++;
                at = 0;
            }
        }
        n += copies;
    }
    h2_taken(request);
    if (request->conn->rx_paused) {
        conn_kick(request->conn);
    }
    return n;
} /* evpl_http_request_get_datav */

EVPL_API void
evpl_http_request_add_datav(struct evpl_http_request *request, struct evpl_iovec *iov, int niov)
{
    struct evpl_http_conn *c = request->conn;
    struct evpl *evpl = c->agent->evpl;

    /* (the releases here are the library's: a GLOBAL buffer stays the
     * application's to free, memory.md §2) */
    if (request->out_ended) {
        if (niov > 0) {
            http_error("body data added after the body ended: dropped");
            evpl_iovecs_release_internal(evpl, iov, niov);
        }
        return;
    }
    if (niov <= 0) {
        request->out_ended = 1;
    }
    for (int i = 0; i < niov; i++) {
        struct evpl_iovec v = iov[i];
        int copy = v.ref && (v.ref->flags & EVPL_IOVEC_FLAG_GLOBAL) && v.length, rc = 0;

        if (copy) {
            /* the body is written later and may be cut, and every piece
             * this module holds is released as counted: a GLOBAL buffer
             * goes as a counted copy */
            rc = evpl_iovec_alloc(evpl, v.length, 0, 1, 0, &v) == 1 ? 0 : -1;
            if (rc == 0) {
                memcpy(v.data, iov[i].data, v.length);
            }
        }
        if (rc || iovq_push(&request->out_body, &v)) {
            http_error("out of memory staging body data");
            if (copy && rc == 0) {
                evpl_iovec_release(evpl, &v);
            }
            evpl_iovecs_release_internal(evpl, iov + i, niov - i);
            conn_abort(c);
            return;
        }
        request->out_added += v.length;
    }
    if (request->framing == 1 && request->out_added >= request->out_length) {
        request->out_ended = 1;
    }
    h2_resume(request);
    conn_kick(c);
} /* evpl_http_request_add_datav */

/* ------------------------------------------------------------------ */
/* public: client                                                       */

EVPL_API struct evpl_http_conn *
evpl_http_client_connect(struct evpl_http_agent *agent, enum evpl_protocol_id protocol_id,
                         struct evpl_endpoint *endpoint, enum evpl_http_version version,
                         void *private_data)
{
    struct evpl_http_conn *c = calloc(1, sizeof(*c));

    if (!c) {
        evpl_abort("http", __FILE__, __LINE__, "out of memory connecting");
    }
    conn_link(agent, c);
    c->is_client = 1;
    c->private_data = private_data;
    c->rx = RX_HEAD;
    c->tls = protocol_id == EVPL_STREAM_SOCKET_TLS;

    if (evpl_endpoint_is_local(endpoint) || evpl_endpoint_is_inproc(endpoint)) {
        snprintf(c->host, sizeof(c->host), "localhost");
    } else {
        const char *addr = evpl_endpoint_address(endpoint);
        int port = evpl_endpoint_port(endpoint);
        int v6 = addr && strchr(addr, ':') != NULL;

        if (port == (c->tls ? 443 : 80)) {
            snprintf(c->host, sizeof(c->host), v6 ? "[%s]" : "%s", addr ? addr : "");
        } else {
            snprintf(c->host, sizeof(c->host), v6 ? "[%s]:%d" : "%s:%d", addr ? addr : "", port);
        }
    }
    c->bind = evpl_connect(agent->evpl, protocol_id, NULL, endpoint, conn_notify, NULL, c);
    if (!c->bind) {
        /* unavailable protocol or unusable address: a retired handle */
        c->retired = 1;
        c->rx = RX_STOP;
        return c;
    }
    evpl_bind_request_send_notifications(agent->evpl, c->bind);
    c->settled = 1;
#ifdef HAVE_NGHTTP2
    if (c->tls) {
        /* ALPN decides, at CONNECTED; this connection's own offer */
        c->settled = version == EVPL_HTTP_VERSION_HTTP1;
        evpl_bind_set_alpn(c->bind, version == EVPL_HTTP_VERSION_AUTO    ? "h2,http/1.1"
                                    : version == EVPL_HTTP_VERSION_HTTP2 ? "h2"
                                                                         : "");
    } else if (version == EVPL_HTTP_VERSION_HTTP2 && h2_start(c)) {
        http_error("cannot start an HTTP/2 session");
        conn_abort(c);
    }
#else
    if (version == EVPL_HTTP_VERSION_HTTP2) {
        http_debug("HTTP/2 is not built in: speaking HTTP/1.1");
    }
#endif
    return c;
} /* evpl_http_client_connect */

EVPL_API void
evpl_http_client_close(struct evpl_http_agent *agent, struct evpl_http_conn *conn)
{
    if (!conn) {
        return;
    }
    conn->user_closed = 1;
    if (conn->bind) {
        if (!conn->closing) {
            conn->closing = 1;
            evpl_close(agent->evpl, conn->bind);
        }
        return; /* freed on DISCONNECTED */
    }
    if (!conn->depth) {
        conn_release(conn);
    }
} /* evpl_http_client_close */

EVPL_API struct evpl_http_request *
evpl_http_request_create(struct evpl_http_conn *conn, enum evpl_http_request_type method,
                         const char *url)
{
    unsigned int t = (unsigned int) method;

    if (t > EVPL_HTTP_REQUEST_TYPE_DELETE) {
        t = EVPL_HTTP_REQUEST_TYPE_UNKNOWN;
    }
    if (!url || !*url || strlen(method_wire[t]) + strlen(url) + 12 + 256 > conn->agent->max_hdr) {
        return NULL;
    }
    for (const char *p = url; *p; p++) {
        if ((unsigned char) *p <= ' ' || *p == 0x7f) {
            return NULL; /* no spaces or controls: nothing can be injected */
        }
    }
    struct evpl_http_request *r = req_alloc(conn);

    if (!r) {
        return NULL;
    }
    r->type = (enum evpl_http_request_type) t;
    r->url = strdup(url);
    if (!r->url) {
        req_free(r);
        return NULL;
    }
    r->url_len = (int) strlen(url);
    r->out_mode = BODY_LENGTH;
    r->next = conn->created;
    conn->created = r;
    return r;
} /* evpl_http_request_create */

EVPL_API void
evpl_http_client_set_request_length(struct evpl_http_request *request, uint64_t content_length)
{
    request->framing = 1;
    request->out_mode = BODY_LENGTH;
    request->out_length = content_length;
    if (request->out_added >= content_length) {
        request->out_ended = 1;
    }
} /* evpl_http_client_set_request_length */

EVPL_API void
evpl_http_client_set_request_chunked(struct evpl_http_request *request)
{
    request->framing = 2;
    request->out_mode = BODY_CHUNKED;
} /* evpl_http_client_set_request_chunked */

EVPL_API void
evpl_http_request_dispatch(struct evpl_http_request *request,
                           evpl_http_notify_callback_t notify_callback, void *notify_data)
{
    struct evpl_http_conn *c = request->conn;
    struct evpl_http_request **pp = &c->created;

    while (*pp && *pp != request) {
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = request->next;
    }
    request->notify = notify_callback;
    request->notify_data = notify_data;
    request->dispatched = 1;
    if (request->framing == 0) {
        request->out_mode = BODY_LENGTH;
        request->out_length = 0;
    }
    if (request->out_mode == BODY_LENGTH && request->out_added >= request->out_length) {
        request->out_ended = 1;
    }
    if (!c->bind || c->closing) {
        /* retired (or closing): fails here, before returning */
        conn_enter(c);
        request->status = EVPL_HTTP_ERROR_CONN_LOST;
        req_notify(request, EVPL_HTTP_NOTIFY_FAILED);
        req_free(request);
        conn_leave(c);
        return;
    }
    fifo_push(c, request);
    if (!c->wr) {
        c->wr = request;
    }
    conn_kick(c);
} /* evpl_http_request_dispatch */

EVPL_API int
evpl_http_request_status(struct evpl_http_request *request)
{
    return request->status;
} /* evpl_http_request_status */

EVPL_API const char *
evpl_http_response_header(struct evpl_http_request *request, const char *name)
{
    return hf_get(request->conn->is_client ? &request->in_hdr : &request->out_hdr, name);
} /* evpl_http_response_header */

EVPL_API void
evpl_http_response_header_iterate(struct evpl_http_request *request,
                                  evpl_http_request_header_cb_t callback, void *private_data)
{
    hf_iterate(request->conn->is_client ? &request->in_hdr : &request->out_hdr, callback,
               private_data);
} /* evpl_http_response_header_iterate */
