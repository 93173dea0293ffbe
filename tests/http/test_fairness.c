/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * One peer cannot hold a server's loop (helper-85's HTTP attack run):
 *  - a connection's read work is bounded per loop pass: 3000 pipelined
 *    requests are dispatched at most 256 per pass (all 3000 in one or two
 *    passes before), as are 3000 responses at a client, a body of 4000 one-byte chunks and an HTTP/2 stream
 *    of 3000 one-byte DATA frames arrive at most 256 bytes per pass,
 *    and everything is still answered, in order; input that stopped at a
 *    pass's share is still read whole when the peer closes behind it
 *    (the FIN cases: helper-87 saw the rest dropped at DISCONNECTED, on
 *    both sides and both versions);
 *  - HTTP/2 frames that do nothing end the connection with GOAWAY
 *    ENHANCE_YOUR_CALM (nghttp2 1.52 counts none of them): more than 16
 *    empty DATA frames in a row (a HEADERS frame, e.g. trailers after a
 *    body that ended empty, breaks the run), more PRIORITY or WINDOW_UPDATE frames
 *    than 100 per HEADERS and DATA frame exchanged (plus 100); up to the
 *    limit the connection is served.
 */
#include "t_h2.h"

#include <fcntl.h>

#define PASS_WORK  256  /* HTTP_PASS_WORK */
#define AGENT_WORK 1024 /* HTTP_AGENT_WORK */
#define MIN_WORK   16   /* HTTP_MIN_WORK */
#define DRAIN_WORK 4096 /* HTTP_DRAIN_WORK */

static struct evpl_http_request *cur;
static int dispatched, completed, failed;
static uint64_t body_total;
static struct t_buf body; /* what the application took, in order */

static void
app_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
           enum evpl_http_notify_type type, enum evpl_http_request_type rt, const char *uri,
           void *nd, void *pd)
{
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_DATA) {
        t_take_all(evpl, request, &body);
    } else if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        completed++;
        t_take_all(evpl, request, &body);
        body_total = body.len;
        cur = NULL;
        evpl_http_server_dispatch_default(request, 200);
    } else if (type == EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE || type == EVPL_HTTP_NOTIFY_FAILED) {
        failed += type == EVPL_HTTP_NOTIFY_FAILED;
        if (cur == request) {
            cur = NULL;
        }
    }
}

static void
app_dispatch(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
             evpl_http_notify_callback_t *cb, void **nd, void *pd)
{
    dispatched++;
    cur = request; /* its body is counted per pass */
    *cb = app_notify;
}

struct rig {
    struct evpl *evpl;
    struct evpl_http_agent *agent;
    struct evpl_endpoint *ep;
    struct evpl_listener *l;
    struct evpl_http_server *server;
};

static void
rig_open(struct rig *g)
{
    g->evpl = t_net_loop();
    t_evpl = g->evpl;
    g->agent = evpl_http_init(g->evpl);
    g->ep = t_endpoint(EVPL_STREAM_SOCKET_TCP);
    g->l = t_listen(EVPL_STREAM_SOCKET_TCP, g->ep);
    g->server = evpl_http_attach(g->agent, g->l, app_dispatch, NULL);
    cur = NULL;
    dispatched = completed = failed = 0;
    body_total = 0;
    t_buf_free(&body);
}

static void
rig_close(struct rig *g)
{
    evpl_http_server_destroy(g->agent, g->server);
    evpl_http_destroy(g->agent);
    evpl_listener_destroy(g->l);
    evpl_destroy(g->evpl);
}

/* Count the server's passes until done() holds, from before the first
 * byte arrives: the most requests dispatched and the most body bytes that
 * arrived in any one pass. */
struct per_pass {
    int max_dispatched;
    uint64_t max_bytes;
    int passes;
};

/* The body taken is n bytes of 'z'. */
static void
check_body(uint64_t n)
{
    T_EQ_U(body.len, n);
    for (uint64_t i = 0; i < n; i++) {
        T_EQ(body.p[i], 'z');
    }
}

static void
pump_counting(struct rig *g, int (*done)(void), struct per_pass *pp)
{
    uint64_t deadline = t_now_ns() + 30000000000ull;
    memset(pp, 0, sizeof(*pp));
    while (!done()) {
        int d0 = dispatched;
        uint64_t b0 = body.len + (cur ? evpl_http_request_get_data_avail(cur) : 0);

        T_OK(t_now_ns() < deadline);
        t_raw_all_io();
        evpl_continue(g->evpl);
        pp->passes++;
        if (dispatched - d0 > pp->max_dispatched) {
            pp->max_dispatched = dispatched - d0;
        }
        uint64_t seen = body.len + (cur ? evpl_http_request_get_data_avail(cur) : 0);
        if (seen > b0 && seen - b0 > pp->max_bytes) {
            pp->max_bytes = seen - b0;
        }
    }
}

/* ---- HTTP/1.1: pipelined requests ---- */

#define NPIPE 3000

#define NPIPE_CONNS 8

static struct t_raw *pipe_raw;
static int pipe_conns;

static int
pipe_done(void)
{
    static const char marker[] = "HTTP/1.1 200 OK\r\n";
    int n = 0;

    for (int k = 0; k < pipe_conns; k++) {
        const struct t_raw *raw = &pipe_raw[k];

        for (size_t i = 0; i + sizeof(marker) - 1 <= raw->in.len; i++) {
            if (memcmp(raw->in.p + i, marker, sizeof(marker) - 1) == 0) {
                n++;
            }
        }
    }
    return n == NPIPE * pipe_conns;
}

/* nconn connections each send NPIPE requests in one write: at most
 * PASS_WORK dispatched per pass for one, AGENT_WORK (plus MIN_WORK each)
 * for all together. */
static void
pipelined(int nconn)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    struct rig g;
    struct t_raw raw[NPIPE_CONNS];
    struct per_pass pp;
    struct t_buf all = {0};
    int bound = nconn == 1 ? PASS_WORK : AGENT_WORK + nconn * MIN_WORK;

    fprintf(stderr, "-- HTTP/1.1: %d requests pipelined in one write, on %d connection(s)\n", NPIPE,
            nconn);
    rig_open(&g);
    for (int i = 0; i < NPIPE; i++) {
        t_buf_adds(&all, req);
    }
    for (int k = 0; k < nconn; k++) {
        t_raw_open(&raw[k], g.ep);
        t_raw_send(&raw[k], all.p, all.len);
    }
    t_buf_free(&all);
    pipe_raw = raw;
    pipe_conns = nconn;
    pump_counting(&g, pipe_done, &pp);
    fprintf(stderr, "  %d dispatched, at most %d in one pass, %d passes\n", dispatched,
            pp.max_dispatched, pp.passes);
    T_EQ(dispatched, NPIPE * nconn);
    T_EQ(completed, NPIPE * nconn);
    T_OK(pp.max_dispatched <= bound);
    for (int k = 0; k < nconn; k++) {
        t_raw_close(&raw[k]);
    }
    rig_close(&g);
}

/* ---- HTTP/1.1 client: pipelined responses ---- */

static int c_complete;

static void
c_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
         enum evpl_http_notify_type type, enum evpl_http_request_type rt, const char *uri, void *nd,
         void *pd)
{
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        T_EQ(evpl_http_request_status(request), 200);
        c_complete++;
    } else if (type == EVPL_HTTP_NOTIFY_FAILED) {
        T_FAIL("request failed");
    }
}

static void
client_responses(void)
{
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    struct evpl *evpl = t_net_loop();
    struct evpl_http_agent *agent = evpl_http_init(evpl);
    struct t_rawsrv rs;
    struct evpl_endpoint *ep;
    struct evpl_http_conn *conn;
    struct t_buf all = {0};
    int max = 0, passes = 0;
    uint64_t deadline = t_now_ns() + 30000000000ull;

    fprintf(stderr, "-- HTTP/1.1 client: %d responses arriving in one write\n", NPIPE);
    t_evpl = evpl;
    c_complete = 0;
    t_rawsrv_open(&rs);
    ep = evpl_endpoint_create("127.0.0.1", rs.port);
    conn =
        evpl_http_client_connect(agent, EVPL_STREAM_SOCKET_TCP, ep, EVPL_HTTP_VERSION_HTTP1, NULL);
    for (int i = 0; i < NPIPE; i++) {
        struct evpl_http_request *r =
            evpl_http_request_create(conn, EVPL_HTTP_REQUEST_TYPE_GET, "/");

        T_OK(r != NULL);
        evpl_http_request_dispatch(r, c_notify, NULL);
    }
    T_HPUMP(evpl, rs.nconns == 1 && rs.conns[0].in.len >= NPIPE * 20, 10000);
    for (int i = 0; i < NPIPE; i++) {
        t_buf_adds(&all, resp);
    }
    t_raw_send(&rs.conns[0], all.p, all.len);
    t_buf_free(&all);
    while (c_complete < NPIPE) {
        int c0 = c_complete;

        T_OK(t_now_ns() < deadline);
        t_raw_all_io();
        evpl_continue(evpl);
        passes++;
        if (c_complete - c0 > max) {
            max = c_complete - c0;
        }
    }
    fprintf(stderr, "  %d answered, at most %d in one pass, %d passes\n", c_complete, max, passes);
    T_OK(max <= PASS_WORK);
    evpl_http_client_close(agent, conn);
    evpl_http_destroy(agent);
    t_rawsrv_close(&rs);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
}

/* ---- HTTP/1.1: one-byte chunks ---- */

#define NCHUNK 4000

static int
request_done(void)
{
    return completed == 1;
}

/* One request whose body of n 'z' bytes is in `input`, sent in one write:
 * the body arrives whole, at most PASS_WORK bytes per pass; then the
 * response is awaited (answered(raw)). */
static void
body_per_pass(struct t_buf *input, uint64_t n, int (*answered)(struct t_raw *raw))
{
    struct rig g;
    struct t_raw raw;
    struct per_pass pp;

    rig_open(&g);
    t_raw_open(&raw, g.ep);
    t_raw_send(&raw, input->p, input->len);
    t_buf_free(input);
    pump_counting(&g, request_done, &pp);
    fprintf(stderr, "  %" PRIu64 " bytes, at most %" PRIu64 " in one pass, %d passes\n", body_total,
            pp.max_bytes, pp.passes);
    check_body(n);
    T_OK(pp.max_bytes <= PASS_WORK);
    T_HPUMP(g.evpl, answered(&raw), 5000);
    t_raw_close(&raw);
    rig_close(&g);
}

/* The same input, then the client's FIN, all before the server reads:
 * the transport ends, and what it held is still read whole (it stopped
 * at the pass's share of work; the next pass brings DISCONNECTED). */
static void
body_then_fin(struct t_buf *input, uint64_t n)
{
    struct rig g;
    int fd;

    rig_open(&g);
    fd = t_raw_connect(g.ep);
    T_OK(fd >= 0);
    T_EQ((int) send(fd, input->p, input->len, MSG_NOSIGNAL), (int) input->len);
    T_OK(shutdown(fd, SHUT_WR) == 0);
    t_buf_free(input);
    T_HPUMP(g.evpl, completed == 1, 5000);
    check_body(n);
    fprintf(stderr, "  ok: %" PRIu64 " bytes, complete\n", n);
    close(fd);
    rig_close(&g);
}

static int
h1_answered(struct t_raw *raw)
{
    if (raw->in.len < 15) {
        return 0;
    }
    T_BYTES_EQ(raw->in.p, 15, "HTTP/1.1 200 OK");
    return 1;
}

static void
chunked_post(struct t_buf *all, int n)
{
    t_buf_adds(all, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < n; i++) {
        t_buf_adds(all, "1\r\nz\r\n");
    }
    t_buf_adds(all, "0\r\n\r\n");
}

/* More input than a closing connection reads (DRAIN_WORK units after the
 * pass's share), then FIN: the rest is dropped and the request fails; the
 * server goes on serving. */
static void
too_much_then_fin(void)
{
    enum { N = 12000 };
    struct rig g;
    struct t_buf all = {0};
    struct t_raw ok;
    int fd;

    fprintf(stderr, "-- HTTP/1.1: a body of %d one-byte chunks, then FIN\n", N);
    chunked_post(&all, N);
    rig_open(&g);
    fd = t_raw_connect(g.ep);
    T_OK(fd >= 0);
    T_EQ((int) send(fd, all.p, all.len, MSG_NOSIGNAL), (int) all.len);
    T_OK(shutdown(fd, SHUT_WR) == 0);
    t_buf_free(&all);
    T_HPUMP(g.evpl, failed == 1, 5000);
    T_EQ(completed, 0);
    T_OK(body.len <= PASS_WORK + DRAIN_WORK);
    fprintf(stderr, "  ok: %zu bytes read, then dropped: the request failed\n", body.len);
    close(fd);
    t_raw_open(&ok, g.ep);
    t_raw_sends(&ok, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    T_HPUMP(g.evpl, h1_answered(&ok), 5000);
    t_raw_close(&ok);
    rig_close(&g);
}

static void
tiny_chunks(int fin)
{
    struct t_buf all = {0};

    fprintf(stderr, "-- HTTP/1.1: a body of %d one-byte chunks in one write%s\n", NCHUNK,
            fin ? ", then FIN" : "");
    chunked_post(&all, NCHUNK);
    if (fin) {
        body_then_fin(&all, NCHUNK);
    } else {
        body_per_pass(&all, NCHUNK, h1_answered);
    }
}

#ifdef T_HAVE_NGHTTP2

/* ---- HTTP/2, raw frames ---- */

static void
frame(struct t_buf *b, int type, int flags, uint32_t sid, const void *payload, size_t len)
{
    unsigned char h[9] = {
        (unsigned char) (len >> 16), (unsigned char) (len >> 8), (unsigned char) len,
        (unsigned char) type,        (unsigned char) flags,      (unsigned char) (sid >> 24),
        (unsigned char) (sid >> 16), (unsigned char) (sid >> 8), (unsigned char) sid};

    t_buf_add(b, h, 9);
    if (len) {
        t_buf_add(b, payload, len);
    }
}

static void
h2_preface(struct t_buf *b)
{
    t_buf_adds(b, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    frame(b, 4, 0, 0, NULL, 0); /* empty SETTINGS */
}

/* HEADERS for POST / (or GET /) on stream sid, END_HEADERS */
static void
h2_request(struct t_buf *b, uint32_t sid, int post, int end_stream)
{
    static const unsigned char post_block[] = {0x83, 0x86, 0x84, 0x41, 7,   'h',
                                               '2',  '.',  't',  'e',  's', 't'};
    unsigned char block[sizeof(post_block)];

    memcpy(block, post_block, sizeof(block));
    if (!post) {
        block[0] = 0x82;
    }
    frame(b, 1, 0x04 | (end_stream ? 0x01 : 0), sid, block, sizeof(block));
}

/* The error code of the GOAWAY a raw connection received; -1 while none. */
static int64_t
goaway_code(const struct t_raw *raw)
{
    const unsigned char *f = t_raw_h2_frame(raw, 0x07, -1);
    const unsigned char *e = f ? f + 9 + 4 : NULL;

    if (!f || (((size_t) f[0] << 16) | ((size_t) f[1] << 8) | f[2]) < 8) {
        return -1;
    }
    return ((int64_t) e[0] << 24) | ((int64_t) e[1] << 16) | ((int64_t) e[2] << 8) | e[3];
}

/* A HEADERS frame on stream sid has arrived (a response). */
static int
response_seen(const struct t_raw *raw, uint32_t sid)
{
    return t_raw_h2_frame(raw, 0x01, sid) != NULL;
}

#define NFRAME 3000

/* answered on stream 1, and no GOAWAY */
static int
h2_answered(struct t_raw *raw)
{
    T_EQ(goaway_code(raw), -1);
    return response_seen(raw, 1);
}

/* n one-byte DATA frames on stream sid, the last with END_STREAM */
static void
tiny_frames(struct t_buf *all, uint32_t sid, int n)
{
    for (int i = 0; i < n; i++) {
        frame(all, 0, i == n - 1 ? 0x01 : 0, sid, "z", 1);
    }
}

static void
h2_tiny_frames(int fin)
{
    struct t_buf all = {0};

    fprintf(stderr, "-- HTTP/2: %d one-byte DATA frames in one write%s\n", NFRAME,
            fin ? ", then FIN" : "");
    h2_preface(&all);
    h2_request(&all, 1, 1, 0);
    tiny_frames(&all, 1, NFRAME);
    if (fin) {
        body_then_fin(&all, NFRAME);
    } else {
        body_per_pass(&all, NFRAME, h2_answered);
    }
}

/* A client: the server's response of n one-byte DATA frames, and its
 * close, arrive before the client reads; the response completes. */
static int h2c_done, h2c_failed;
static struct t_buf h2c_body;

static void
h2c_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
           enum evpl_http_notify_type type, enum evpl_http_request_type rt, const char *uri,
           void *nd, void *pd)
{
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_DATA || type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        t_take_all(evpl, request, &h2c_body);
    }
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        T_EQ(evpl_http_request_status(request), 200);
        h2c_done++;
    } else if (type == EVPL_HTTP_NOTIFY_FAILED) {
        h2c_failed++;
    }
}

static void
h2_client_response_then_close(int n)
{
    static const unsigned char status200 = 0x88; /* :status 200, indexed */
    struct evpl *evpl = t_net_loop();
    struct evpl_http_agent *agent = evpl_http_init(evpl);
    struct t_rawsrv rs;
    struct evpl_endpoint *ep;
    struct evpl_http_conn *conn;
    struct evpl_http_request *r;
    struct t_buf all = {0};
    int fd;

    fprintf(stderr, "-- HTTP/2 client: a response of %d one-byte DATA frames, then close\n", n);
    t_evpl = evpl;
    h2c_done = h2c_failed = 0;
    t_rawsrv_open(&rs);
    ep = evpl_endpoint_create("127.0.0.1", rs.port);
    conn =
        evpl_http_client_connect(agent, EVPL_STREAM_SOCKET_TCP, ep, EVPL_HTTP_VERSION_HTTP2, NULL);
    r = evpl_http_request_create(conn, EVPL_HTTP_REQUEST_TYPE_GET, "/");
    evpl_http_request_dispatch(r, h2c_notify, NULL);
    /* the client's magic, SETTINGS and the request's HEADERS */
    T_HPUMP(evpl, rs.nconns == 1 && rs.conns[0].in.len >= 24 + 9 + 9, 5000);
    t_hpump_for(evpl, 50);
    frame(&all, 4, 0, 0, NULL, 0);          /* SETTINGS */
    frame(&all, 4, 1, 0, NULL, 0);          /* its ACK */
    frame(&all, 1, 0x04, 1, &status200, 1); /* HEADERS */
    tiny_frames(&all, 1, n);
    fd = rs.conns[0].fd;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    T_EQ((int) send(fd, all.p, all.len, MSG_NOSIGNAL), (int) all.len);
    t_buf_free(&all);
    t_raw_close(&rs.conns[0]);
    T_HPUMP(evpl, h2c_done + h2c_failed > 0, 5000);
    T_EQ(h2c_failed, 0);
    T_EQ(h2c_done, 1);
    T_EQ_U(h2c_body.len, (uint64_t) n);
    fprintf(stderr, "  ok: complete, %zu bytes\n", h2c_body.len);
    t_buf_free(&h2c_body);
    evpl_http_client_close(agent, conn);
    evpl_http_destroy(agent);
    t_rawsrv_close(&rs);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
}

/* 17 requests, each with a body that ends empty before its trailers
 * (HEADERS, an empty DATA frame, HEADERS with END_STREAM): legal, and not
 * a run of empty DATA frames. */
static void
h2_empty_then_trailers(void)
{
    static const unsigned char trailer[] = {0x40, 1, 'x', 1, 'y'}; /* x: y */
    struct rig g;
    struct t_raw raw;
    struct t_buf all = {0};

    fprintf(stderr, "-- HTTP/2: 17 requests each with an empty DATA frame, then trailers\n");
    rig_open(&g);
    t_raw_open(&raw, g.ep);
    h2_preface(&all);
    for (uint32_t sid = 1; sid <= 33; sid += 2) {
        h2_request(&all, sid, 1, 0);
        frame(&all, 0, 0, sid, NULL, 0);
        frame(&all, 1, 0x05, sid, trailer, sizeof(trailer));
    }
    t_raw_send(&raw, all.p, all.len);
    t_buf_free(&all);
    T_HPUMP(g.evpl, completed == 17 && response_seen(&raw, 33), 5000);
    T_EQ(goaway_code(&raw), -1);
    fprintf(stderr, "  ok: all answered\n");
    t_raw_close(&raw);
    rig_close(&g);
}

/* The same reading, with the input arriving 7 bytes at a time (frame
 * headers split across reads) and frames of several sizes, one padded. */
static void
h2_split_input(void)
{
    struct rig g;
    struct t_raw raw;
    struct t_buf all = {0};
    static char zs[5000];
    uint64_t want = 0;
    int fd;

    fprintf(stderr, "-- HTTP/2: DATA frames of 1 to 5000 bytes arriving 7 bytes at a time\n");
    memset(zs, 'z', sizeof(zs));
    rig_open(&g);
    fd = t_raw_connect(g.ep);
    T_OK(fd >= 0);
    T_OK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int)) == 0);
    t_set_nonblock(fd);
    h2_preface(&all);
    h2_request(&all, 1, 1, 0);
    for (int i = 0; i < 200; i++) {
        size_t len = i % 10 == 9 ? 5000 : (size_t) (i % 3) + 1;

        frame(&all, 0, 0, 1, zs, len);
        want += len;
    }
    {
        /* PADDED: pad length 4, 3 bytes of data, 4 of padding */
        static const char padded[8] = {4, 'z', 'z', 'z', 0, 0, 0, 0};

        frame(&all, 0, 0x08 | 0x01, 1, padded, sizeof(padded));
        want += 3;
    }
    for (size_t off = 0; off < all.len; off += 7) {
        size_t n = all.len - off < 7 ? all.len - off : 7;

        T_EQ((int) send(fd, all.p + off, n, MSG_NOSIGNAL), (int) n);
        evpl_continue(g.evpl);
    }
    t_buf_free(&all);
    T_HPUMP(g.evpl, completed == 1, 5000);
    check_body(want);
    t_raw_init_fd(&raw, fd);
    T_HPUMP(g.evpl, response_seen(&raw, 1), 5000);
    T_EQ(goaway_code(&raw), -1);
    t_raw_close(&raw);
    rig_close(&g);
}

enum flood { EMPTY_DATA, PRIORITY, WINDOW_UPDATE };

/* n frames of the kind; 1: the connection must end with
 * ENHANCE_YOUR_CALM (0xb) and the request on stream 1 is not answered;
 * 0: it is answered and there is no GOAWAY. */
static void
h2_flood(enum flood kind, int n, int ends)
{
    static const char *const names[] = {"empty DATA", "PRIORITY", "WINDOW_UPDATE"};
    static const unsigned char prio[5] = {0, 0, 0, 0, 15}; /* on stream 0's tree */
    static const unsigned char incr[4] = {0, 0, 0, 1};     /* one byte of credit */
    struct rig g;
    struct t_raw raw;
    struct t_buf all = {0};

    fprintf(stderr, "-- HTTP/2: %d %s frames%s\n", n, names[kind], ends ? "" : " (allowed)");
    rig_open(&g);
    t_raw_open(&raw, g.ep);
    h2_preface(&all);
    if (kind == EMPTY_DATA) {
        h2_request(&all, 1, 1, 0); /* a POST whose body never comes */
    }
    for (int i = 0; i < n; i++) {
        switch (kind) {
            case EMPTY_DATA:
                frame(&all, 0, 0, 1, NULL, 0);
                break;
            case PRIORITY:
                frame(&all, 2, 0, 3 + 2 * (uint32_t) (i % 50), prio, sizeof(prio));
                break;
            case WINDOW_UPDATE:
                frame(&all, 8, 0, 0, incr, sizeof(incr));
                break;
        } /* switch */
    }
    if (kind == EMPTY_DATA) {
        frame(&all, 0, 0x01, 1, NULL, 0); /* END_STREAM: the request is complete */
    } else {
        h2_request(&all, 1, 0, 1);
    }
    t_raw_send(&raw, all.p, all.len);
    t_buf_free(&all);
    if (ends) {
        T_HPUMP(g.evpl, goaway_code(&raw) >= 0, 5000);
        T_EQ(goaway_code(&raw), 0xb);
        T_HPUMP(g.evpl, t_raw_closed(&raw), 5000);
        T_EQ(response_seen(&raw, 1), 0);
        fprintf(stderr, "  ok: GOAWAY ENHANCE_YOUR_CALM, closed\n");
    } else {
        T_HPUMP(g.evpl, response_seen(&raw, 1), 5000);
        t_hpump_for(g.evpl, 20);
        T_EQ(goaway_code(&raw), -1);
        fprintf(stderr, "  ok: answered\n");
    }
    t_raw_close(&raw);
    rig_close(&g);
}

#endif /* T_HAVE_NGHTTP2 */

/* A case name as the argument runs that case alone. */
static int
want(int argc, char **argv, const char *name)
{
    return argc < 2 || strcmp(argv[1], name) == 0;
}

int
main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (want(argc, argv, "pipelined")) {
        pipelined(1);
        pipelined(NPIPE_CONNS);
    }
    if (want(argc, argv, "client")) {
        client_responses();
    }
    if (want(argc, argv, "chunks")) {
        tiny_chunks(0);
        tiny_chunks(1);
        too_much_then_fin();
    }
#ifdef T_HAVE_NGHTTP2
    if (want(argc, argv, "h2_frames")) {
        h2_tiny_frames(0);
        h2_tiny_frames(1);
    }
    if (want(argc, argv, "h2_client_fin")) {
        h2_client_response_then_close(NFRAME);
        /* past what a server drains after a close: a client reads it all */
        h2_client_response_then_close(6000);
    }
    if (want(argc, argv, "h2_trailers")) {
        h2_empty_then_trailers();
    }
    if (want(argc, argv, "h2_split")) {
        h2_split_input();
    }
    if (want(argc, argv, "h2_empty")) {
        h2_flood(EMPTY_DATA, 16, 0);
        h2_flood(EMPTY_DATA, 17, 1);
    }
    if (want(argc, argv, "h2_priority")) {
        h2_flood(PRIORITY, 100, 0);
        h2_flood(PRIORITY, 101, 1);
    }
    if (want(argc, argv, "h2_window")) {
        h2_flood(WINDOW_UPDATE, 100, 0);
        h2_flood(WINDOW_UPDATE, 101, 1);
    }
#else
    fprintf(stderr, "(built without nghttp2: the HTTP/2 cases are skipped)\n");
#endif
    fprintf(stderr, "PASS\n");
    return 0;
}
