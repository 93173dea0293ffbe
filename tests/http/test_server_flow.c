/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Server flow control and ordering (http.md §3.1 rules 2, 4, 5, 6; §3.2):
 *  - an 8 MiB upload the application does not take in its callbacks:
 *    buffered, then taken from outside the callbacks a piece at a time -
 *    the server resumes reading each time and the body arrives intact;
 *  - a length-framed response whose head goes out at dispatch_default and
 *    whose body is added later from outside the callbacks, in two parts;
 *  - a HEAD answered with a chunked body: the chunked header, no body;
 *  - a rejected request pipelined behind a request whose response is
 *    delayed: 200 first, then the 501 and the close; the first request
 *    completes (RESPONSE_COMPLETE, not FAILED).
 */
#include "t_http.h"

#define UP   (8u << 20)
#define SEED 0x77u

static struct t_app app;

static void
hook(struct t_app *a, struct t_sreq *r, int type)
{
    if (strcmp(r->url, "/up") == 0 || strcmp(r->url, "/held") == 0) {
        return; /* main() does everything */
    }
    if (strcmp(r->url, "/inc") == 0) {
        if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
            evpl_http_server_set_response_length(r->req, 10);
            evpl_http_server_dispatch_default(r->req, 200);
        }
        return;
    }
    if (strcmp(r->url, "/headchunked") == 0) {
        if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
            evpl_http_server_set_response_chunked(r->req);
            t_add_str(a->evpl, r->req, "not sent");
            evpl_http_request_add_datav(r->req, NULL, 0);
            evpl_http_server_dispatch_default(r->req, 200);
        }
        return;
    }
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_DATA || type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        t_take_all(a->evpl, r->req, &r->body);
    }
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        t_respond_simple(r, 200, "hello world");
    }
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
    app.drain = 0;

    fprintf(stderr, "-- 8 MiB upload taken late, from outside the callbacks\n");
    t_raw_open(&c, app.ep);
    {
        char *body = malloc(UP);
        char head[128];
        int rounds = 0;
        uint64_t max_avail = 0;

        T_OK(body != NULL);
        t_pattern_fill(SEED, 0, body, UP);
        snprintf(head, sizeof(head), "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %u\r\n\r\n",
                 UP);
        t_raw_sends(&c, head);
        t_raw_send(&c, body, UP);
        free(body);
        T_HPUMP(app.evpl, app.nreqs == 1, 5000);
        r = &app.reqs[0];
        while (r->n_complete == 0 || evpl_http_request_get_data_avail(r->req) > 0) {
            uint64_t avail;

            T_LT(rounds++, 2000);
            t_hpump_for(app.evpl, 20);
            avail = evpl_http_request_get_data_avail(r->req);
            if (avail > max_avail) {
                max_avail = avail;
            }
            /* take at most 256 KiB per round */
            if (avail > 0) {
                uint64_t n = avail > (256u << 10) ? (256u << 10) : avail;
                int niov = evpl_http_request_get_datav(app.evpl, r->req, t_take_iov, (int) n);
                uint64_t got = 0;

                T_GT(niov, 0);
                for (int i = 0; i < niov; i++) {
                    t_buf_add(&r->body, t_take_iov[i].data, t_take_iov[i].length);
                    got += t_take_iov[i].length;
                }
                evpl_iovecs_release(app.evpl, t_take_iov, niov);
                T_EQ_U(got, n);
            }
        }
        fprintf(stderr, "  %d rounds, at most %" PRIu64 " bytes buffered\n", rounds, max_avail);
        T_EQ_U(r->body.len, UP);
        T_EQ(t_pattern_check(SEED, 0, r->body.p, UP), -1);
        t_respond_simple(r, 200, "uploaded");
        t_expect_response(&c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 8\r\n\r\n",
                          "uploaded");
        T_HPUMP(app.evpl, r->req == NULL, 5000);
        T_EQ(r->n_rcomplete, 1);
    }

    fprintf(stderr, "-- rule 6: 2000 separate 1 KiB reads, never taken: at most ~1023 pieces\n");
    {
        char piece[1024];
        int niov, maxiov = 0;
        uint64_t total = 2000u * 1024u, taken = 0;

        t_raw_sends(&c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2048000\r\n\r\n");
        T_HPUMP(app.evpl,
                last_req()->n_complete == 0 && strcmp(last_req()->url, "/up") == 0 &&
                    last_req()->req != NULL && app.nreqs == 2,
                5000);
        r = last_req();
        for (int i = 0; i < 2000; i++) {
            t_pattern_fill(SEED + 1, (uint64_t) i * 1024, piece, sizeof(piece));
            t_raw_send(&c, piece, sizeof(piece));
            t_raw_io(&c);
            evpl_continue(app.evpl);
        }
        t_hpump_for(app.evpl, 100);
        while (taken < total) {
            uint64_t avail = evpl_http_request_get_data_avail(r->req);

            if (avail == 0) {
                T_EQ(r->n_complete, 0);
                t_hpump_for(app.evpl, 20);
                continue;
            }
            niov = evpl_http_request_get_datav(app.evpl, r->req, t_take_iov, (int) avail);
            T_GT(niov, 0);
            if (niov > maxiov) {
                maxiov = niov;
            }
            for (int i = 0; i < niov; i++) {
                if (t_pattern_check(SEED + 1, taken, t_take_iov[i].data, t_take_iov[i].length) !=
                    -1) {
                    T_FAIL("body differs in the piece at offset %" PRIu64, taken);
                }
                taken += t_take_iov[i].length;
            }
            evpl_iovecs_release(app.evpl, t_take_iov, niov);
        }
        fprintf(stderr, "  at most %d pieces buffered at once\n", maxiov);
        T_LE(maxiov, 1100);
        T_HPUMP(app.evpl, r->n_complete == 1, 5000);
        t_respond_simple(r, 200, "uploaded");
        t_expect_response(&c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 8\r\n\r\n",
                          "uploaded");
        T_HPUMP(app.evpl, r->req == NULL, 5000);
    }

    fprintf(stderr, "-- body added after dispatch_default, from outside the callbacks\n");
    t_raw_sends(&c, "GET /inc HTTP/1.1\r\nHost: x\r\n\r\n");
    T_HPUMP(app.evpl, c.in.p && strstr(c.in.p, "\r\n\r\n") != NULL, 5000);
    r = last_req();
    T_STR_EQ(r->url, "/inc");
    {
        struct t_msg m = {0};

        /* the head alone: the body is not complete */
        T_EQ(t_msg_parse(c.in.p, c.in.len, 0, 0, 0, &m), 0);
        t_msg_free(&m);
        T_OK(strstr(c.in.p, "Content-Length: 10\r\n") != NULL);
        T_OK(r->req != NULL);
        t_add_str(app.evpl, r->req, "01234");
        T_HPUMP(app.evpl, c.in.len >= 5 && memcmp(c.in.p + c.in.len - 5, "01234", 5) == 0, 5000);
        T_EQ(r->n_rcomplete, 0);
        t_add_str(app.evpl, r->req, "56789");
        t_expect_response(&c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 10\r\n\r\n",
                          "0123456789");
        T_HPUMP(app.evpl, r->req == NULL, 5000);
        T_EQ(r->n_rcomplete, 1);
        fprintf(stderr, "  ok: events %s\n", r->ev);
    }

    fprintf(stderr, "-- HEAD with a chunked response\n");
    t_raw_sends(&c, "HEAD /headchunked HTTP/1.1\r\nHost: x\r\n\r\n");
    t_expect_response(&c, 1,
                      "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nTransfer-Encoding: chunked\r\n\r\n", "");
    t_raw_sends(&c, "GET /sync HTTP/1.1\r\nHost: x\r\n\r\n");
    t_expect_response(&c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 11\r\n\r\n",
                      "hello world");
    T_EQ_U(c.in.len, 0);
    t_raw_close(&c);

    fprintf(stderr, "-- a rejected request behind a delayed response\n");
    t_raw_open(&c, app.ep);
    {
        int before = app.nreqs;

        t_raw_sends(&c, "GET /held HTTP/1.1\r\nHost: x\r\n\r\nFROB / HTTP/1.1\r\nHost: x\r\n\r\n");
        T_HPUMP(app.evpl, app.nreqs == before + 1 && last_req()->n_complete == 1, 5000);
        r = last_req();
        t_expect_silent_open(&c, 150);
        t_respond_simple(r, 200, "first");
        t_expect_response(&c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 5\r\n\r\n",
                          "first");
        t_expect_rejection(&c, 501);
        t_expect_closed(&c);
        T_HPUMP(app.evpl, r->req == NULL, 5000);
        T_EQ(r->n_rcomplete, 1);
        T_EQ(r->n_failed, 0);
        T_EQ(app.nreqs, before + 1);
    }
    t_raw_close(&c);

    t_app_stop(&app);
    fprintf(stderr, "PASS\n");
    return 0;
}
