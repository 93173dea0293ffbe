/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Server request and response bodies (http.md §3.1, §3.2, §5):
 *  - a 1 MiB POST with Content-Length arriving over many reads, taken with
 *    evpl_http_request_get_datav in odd-sized pieces (exact pattern); a
 *    get_datav of more than get_data_avail returns -1 and takes nothing
 *    (the documented fix of the upstream QUIRK); rule 7 (drain at
 *    RECEIVE_COMPLETE);
 *  - statement 8: chunked POST with a trailer section, then the next
 *    request on the connection;
 *  - 300 one-byte chunks taken with one get_datav into an array of
 *    EVPL_HTTP_DATAV_MAX: it fills no more than that (each chunk was a
 *    piece, and the call wrote 300 iovecs past the array: helper-85 crashed
 *    examples/http_hello.c this way), and the bytes are all there in order;
 *  - rule 4: a response prepared at dispatch is not written before the body
 *    has been received;
 *  - a 1 MiB chunked response produced from WANT_DATA over a keep-alive
 *    connection, then a second request;
 *  - connection lost before the response / in the middle of the body ->
 *    FAILED with EVPL_HTTP_ERROR_CONN_LOST (statement 17: exactly one).
 */
#include "t_http.h"

#define BIG    (1u << 20)
#define PIECE  7777u
#define SEED   0x5eedu
#define RSEED  0xbeefu
#define RPIECE 65536u

static struct t_app app;
static int checked_overtake;

static void
take_pieces(struct evpl *evpl, struct t_sreq *r)
{
    struct evpl_http_request *req = r->req;

    /* exactly PIECE bytes at a time while that much is buffered */
    while (evpl_http_request_get_data_avail(req) >= PIECE) {
        uint64_t before = evpl_http_request_get_data_avail(req);
        int niov = evpl_http_request_get_datav(evpl, req, t_take_iov, (int) PIECE);
        uint64_t got = 0;

        if (niov <= 0) {
            T_FAIL("get_datav(%u) with %" PRIu64 " buffered returned %d", PIECE, before, niov);
        }
        for (int i = 0; i < niov; i++) {
            t_buf_add(&r->body, t_take_iov[i].data, t_take_iov[i].length);
            got += t_take_iov[i].length;
        }
        evpl_iovecs_release(evpl, t_take_iov, niov);
        T_EQ_U(got, PIECE);
        T_EQ_U(evpl_http_request_get_data_avail(req), before - PIECE);
    }
}

static void
hook(struct t_app *a, struct t_sreq *r, int type)
{
    struct evpl *evpl = a->evpl;
    struct evpl_http_request *req = r->req;

    if (strcmp(r->url, "/tiny") == 0) {
        if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
            struct evpl_iovec iov[EVPL_HTTP_DATAV_MAX + 1];
            uint64_t avail = evpl_http_request_get_data_avail(req), got = 0;
            int n;

            memset(&iov[EVPL_HTTP_DATAV_MAX], 0x5a, sizeof(iov[0]));
            n = evpl_http_request_get_datav(evpl, req, iov, (int) avail);
            T_GE(n, 1);
            T_LE(n, EVPL_HTTP_DATAV_MAX);
            for (size_t i = 0; i < sizeof(iov[0]); i++) {
                T_EQ(((unsigned char *) &iov[EVPL_HTTP_DATAV_MAX])[i], 0x5a);
            }
            for (int i = 0; i < n; i++) {
                t_buf_add(&r->body, iov[i].data, iov[i].length);
                got += iov[i].length;
            }
            evpl_iovecs_release(evpl, iov, n);
            T_EQ_U(got, avail);
            T_EQ_U(evpl_http_request_get_data_avail(req), 0);
            fprintf(stderr, "  ok: %" PRIu64 " bytes in %d iovecs\n", got, n);
            t_respond_simple(r, 200, "tiny");
        }
        return;
    }
    if (strcmp(r->url, "/big") != 0 &&
        (type == EVPL_HTTP_NOTIFY_RECEIVE_DATA || type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE)) {
        t_take_all(evpl, req, &r->body);
    }
    if (strcmp(r->url, "/big") == 0) {
        if (type == EVPL_HTTP_NOTIFY_RECEIVE_DATA) {
            uint64_t avail = evpl_http_request_get_data_avail(req);

            if (avail > 0 && !checked_overtake) {
                /* more than buffered: -1, nothing taken */
                T_EQ(evpl_http_request_get_datav(evpl, req, t_take_iov, (int) avail + 1), -1);
                T_EQ_U(evpl_http_request_get_data_avail(req), avail);
                checked_overtake = 1;
                fprintf(stderr, "  ok: get_datav(avail %" PRIu64 " + 1) = -1, nothing taken\n",
                        avail);
            }
            take_pieces(evpl, r);
        } else if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
            char b[64];

            take_pieces(evpl, r);
            t_take_all(evpl, req, &r->body);
            snprintf(b, sizeof(b), "got %zu", r->body.len);
            t_respond_simple(r, 200, b);
        }
        return;
    }
    if (strcmp(r->url, "/early") == 0) {
        if (type == T_EV_DISPATCH) {
            /* the response, complete, before any body byte was read */
            t_respond_simple(r, 200, "early");
        }
        return;
    }
    if (strcmp(r->url, "/hold") == 0) {
        return; /* never answered */
    }
    if (strcmp(r->url, "/global") == 0) {
        static struct evpl_iovec g; /* the application's, until the request ends */

        if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
            struct evpl_iovec v;

            evpl_iovec_alloc_global(evpl, &g);
            T_OK(g.data != NULL);
            memset(g.data, '#', 100);
            memcpy(g.data, "global body", 11);
            /* more than the declared length: the rest is cut */
            v = g;
            v.length = 100;
            evpl_http_server_set_response_length(req, 11);
            evpl_http_request_add_datav(req, &v, 1);
            evpl_http_server_dispatch_default(req, 200);
        } else if (type == EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE || type == EVPL_HTTP_NOTIFY_FAILED) {
            evpl_iovec_release(evpl, &g); /* its one release (memory.md §2) */
        }
        return;
    }
    if (strcmp(r->url, "/bigresp") == 0) {
        if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
            evpl_http_server_set_response_chunked(req);
            evpl_http_server_dispatch_default(req, 200);
        } else if (type == EVPL_HTTP_NOTIFY_WANT_DATA) {
            uint64_t off = (uint64_t) r->want_step * RPIECE;

            if (off < BIG) {
                static char buf[RPIECE];

                t_pattern_fill(RSEED, off, buf, RPIECE);
                t_add_bytes(evpl, req, buf, RPIECE);
            } else if (off == BIG) {
                T_EQ(evpl_http_request_add_trailer(req, "X-Pieces", "16"), 0);
                evpl_http_request_add_datav(req, NULL, 0);
            }
            r->want_step++;
        }
        return;
    }
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        char b[256];

        snprintf(b, sizeof(b), "%zu:%s", r->body.len, t_buf_str(&r->body));
        t_respond_simple(r, 200, b);
    }
}

static void
expect_body(struct t_raw *c, const char *body)
{
    char head[256];

    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: %zu\r\n\r\n",
             strlen(body));
    t_expect_response(c, 0, head, body);
}

static struct t_sreq *
last_req(void)
{
    T_GT(app.nreqs, 0);
    return &app.reqs[app.nreqs - 1];
}

int
main(void)
{
    struct t_raw c;
    struct t_sreq *r;

    t_net_guard(120);
    t_app_start(&app);
    app.hook = hook;
    app.drain = 0; /* the hook takes the body */
    t_raw_open(&c, app.ep);

    fprintf(stderr, "-- 1 MiB POST with Content-Length\n");
    {
        char *body = malloc(BIG);
        char head[128];

        T_OK(body != NULL);
        t_pattern_fill(SEED, 0, body, BIG);
        snprintf(head, sizeof(head), "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n",
                 BIG);
        t_raw_sends(&c, head);
        t_raw_send(&c, body, BIG);
        free(body);
        expect_body(&c, "got 1048576");
        r = last_req();
        T_EQ_U(r->body.len, BIG);
        T_EQ(t_pattern_check(SEED, 0, r->body.p, BIG), -1);
        T_EQ(checked_overtake, 1);
        T_GE(r->n_data, 1);
        T_HPUMP(app.evpl, r->req == NULL, 5000);
        T_EQ(r->n_rcomplete, 1);
        fprintf(stderr, "  ok: 1 MiB intact, %d RECEIVE_DATA, events %s\n", r->n_data, r->ev);
    }

    fprintf(stderr, "-- statement 8: chunked POST with trailers\n");
    t_raw_sends(&c, "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: tv\r\nX-Other:  o \r\n\r\n");
    expect_body(&c, "11:hello world");
    r = last_req();
    T_STR_EQ(t_buf_str(&r->trailers), "X-Trailer: tv\nX-Other: o\n");
    T_HPUMP(app.evpl, r->req == NULL, 5000);
    /* the connection remains usable */
    t_raw_sends(&c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_body(&c, "0:");
    /* trailer lookups during RECEIVE_COMPLETE (by name, case-insensitive) */
    t_raw_sends(&c, "POST /chunked2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n0\r\nX-Sum: 42\r\n\r\n");
    expect_body(&c, "3:abc");
    T_STR_EQ(t_buf_str(&last_req()->trailers), "X-Sum: 42\n");

    fprintf(stderr, "-- 300 one-byte chunks, one get_datav\n");
    {
        static char req[64 + 300 * 6 + 16];
        size_t len = (size_t) snprintf(
            req, sizeof(req),
            "POST /tiny HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");

        for (int i = 0; i < 300; i++) {
            len += (size_t) snprintf(req + len, sizeof(req) - len, "1\r\n%c\r\n", 'a' + i % 26);
        }
        len += (size_t) snprintf(req + len, sizeof(req) - len, "0\r\n\r\n");
        t_raw_send(&c, req, len);
        expect_body(&c, "tiny");
        r = last_req();
        T_EQ_U(r->body.len, 300);
        for (int i = 0; i < 300; i++) {
            T_EQ(r->body.p[i], 'a' + i % 26);
        }
        T_HPUMP(app.evpl, r->req == NULL, 5000);
    }

    fprintf(stderr, "-- a GLOBAL buffer as the body, longer than declared\n");
    t_raw_sends(&c, "GET /global HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_body(&c, "global body");
    r = last_req();
    T_HPUMP(app.evpl, r->req == NULL, 5000);
    T_EQ(r->n_rcomplete, 1);
    /* the connection goes on; the buffer is the application's to free,
     * once: the exit leak check and the double-release check hold */
    t_raw_sends(&c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_body(&c, "0:");
    fprintf(stderr, "  ok: 11 bytes sent, the rest cut, one release by the application\n");

    fprintf(stderr, "-- rule 4: nothing written before the request is fully received\n");
    t_raw_sends(&c, "POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234");
    T_HPUMP(app.evpl, app.nreqs > 0 && strcmp(last_req()->url, "/early") == 0, 5000);
    t_expect_silent_open(&c, 200);
    r = last_req();
    T_EQ(r->n_rcomplete, 0);
    t_raw_sends(&c, "56789");
    expect_body(&c, "early");
    T_HPUMP(app.evpl, r->req == NULL, 5000);
    T_BYTES_EQ(r->body.p, r->body.len, "0123456789");
    T_EQ(r->ev[0], 'D');
    T_EQ(r->ev[strlen(r->ev) - 1], 'R');
    T_OK(strchr(r->ev, 'C') != NULL);

    fprintf(stderr, "-- 1 MiB chunked response, then another request\n");
    t_raw_sends(&c, "GET /bigresp HTTP/1.1\r\nHost: x\r\n\r\n");
    {
        struct t_msg m = {0};
        const char *masked;

        t_raw_read_msg(&c, 0, 0, &m);
        masked = t_msg_head_masked(&m);
        T_BYTES_EQ(masked, strlen(masked),
                   "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nTransfer-Encoding: chunked\r\n\r\n");
        T_EQ_U(m.body.len, BIG);
        T_EQ(t_pattern_check(RSEED, 0, m.body.p, BIG), -1);
        T_EQ(m.ntr, 1);
        T_STR_EQ(m.tn[0], "X-Pieces");
        T_STR_EQ(m.tv[0], "16");
        fprintf(stderr, "  ok: 1 MiB chunked body intact in %d chunks\n", m.nchunks);
        t_msg_free(&m);
    }
    r = last_req();
    T_HPUMP(app.evpl, r->req == NULL, 5000);
    T_EV_EQ(r, "DCWR");
    t_raw_sends(&c, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_body(&c, "0:");
    t_raw_close(&c);

    fprintf(stderr, "-- connection lost before the response: FAILED (CONN_LOST)\n");
    t_raw_open(&c, app.ep);
    t_raw_sends(&c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    T_HPUMP(app.evpl,
            app.nreqs > 0 && strcmp(last_req()->url, "/hold") == 0 && last_req()->n_complete == 1,
            5000);
    r = last_req();
    t_raw_close(&c);
    T_HPUMP(app.evpl, r->req == NULL, 5000);
    T_EV_EQ(r, "DCF");
    T_EQ(r->failed_status, EVPL_HTTP_ERROR_CONN_LOST);

    fprintf(stderr, "-- connection reset in the middle of the body: FAILED (CONN_LOST)\n");
    t_raw_open(&c, app.ep);
    t_raw_sends(&c, "POST /mid HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789");
    T_HPUMP(app.evpl, app.nreqs > 0 && strcmp(last_req()->url, "/mid") == 0, 5000);
    r = last_req();
    t_hpump_for(app.evpl, 50);
    t_raw_abort(&c);
    T_HPUMP(app.evpl, r->req == NULL, 5000);
    T_EQ(r->n_failed, 1);
    T_EQ(r->n_complete, 0);
    T_EQ(r->failed_status, EVPL_HTTP_ERROR_CONN_LOST);
    fprintf(stderr, "  ok: events %s\n", r->ev);

    t_app_stop(&app);
    fprintf(stderr, "PASS\n");
    return 0;
}
