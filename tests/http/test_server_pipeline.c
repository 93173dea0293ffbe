/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Pipelining (http.md §3.1 rules 4, 5; §8 statement 6): requests sent in
 * one write get their responses in request order, also when the
 * application answers a later request first (the later response is neither
 * written nor completed before the earlier one); the server reads ahead at
 * most 8 complete requests and resumes parsing as responses complete;
 * pipelined requests with bodies (length and chunked) stay in sync.
 */
#include "t_http.h"

static struct t_app app;
static int hold; /* when set, the application answers from main() */

static void
hook(struct t_app *a, struct t_sreq *r, int type)
{
    (void) a;
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE && !hold) {
        char b[256];

        snprintf(b, sizeof(b), "%.64s:%.64s", r->url, t_buf_str(&r->body));
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

int
main(void)
{
    struct t_raw c;

    t_net_guard(60);
    t_app_start(&app);
    app.hook = hook;

    fprintf(stderr, "-- statement 6: two requests in one write\n");
    t_raw_open(&c, app.ep);
    t_raw_sends(&c, "GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_body(&c, "/one:");
    expect_body(&c, "/two:");
    T_EQ(app.nreqs, 2);

    fprintf(stderr, "-- bodies in the pipeline\n");
    t_raw_sends(&c, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                    "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                    "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "2\r\nxy\r\n1\r\nz\r\n0\r\n\r\n"
                    "DELETE /d HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_body(&c, "/a:abc");
    expect_body(&c, "/b:");
    expect_body(&c, "/c:xyz");
    expect_body(&c, "/d:");

    fprintf(stderr, "-- the second request answered first\n");
    hold = 1;
    {
        int base = app.nreqs;
        struct t_sreq *r1, *r2;

        t_raw_sends(&c, "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\n");
        T_HPUMP(app.evpl, app.nreqs == base + 2 && app.reqs[base + 1].n_complete == 1, 5000);
        r1 = &app.reqs[base];
        r2 = &app.reqs[base + 1];
        T_STR_EQ(r1->url, "/p1");
        T_STR_EQ(r2->url, "/p2");
        T_EQ(r1->n_complete, 1);
        t_respond_simple(r2, 200, "second");
        t_expect_silent_open(&c, 150);
        T_EQ(r2->n_rcomplete, 0);
        t_respond_simple(r1, 200, "first");
        expect_body(&c, "first");
        expect_body(&c, "second");
        T_HPUMP(app.evpl, r1->req == NULL && r2->req == NULL, 5000);
        T_EV_EQ(r1, "DCR");
        T_EV_EQ(r2, "DCR");
    }

    fprintf(stderr, "-- read-ahead of at most 8 requests\n");
    {
        int base = app.nreqs, n;
        struct t_buf all = {0};

        for (int i = 0; i < 12; i++) {
            char b[64];

            snprintf(b, sizeof(b), "GET /r%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
            t_buf_adds(&all, b);
        }
        t_raw_send(&c, all.p, all.len);
        t_buf_free(&all);
        T_HPUMP(app.evpl, app.nreqs >= base + 2, 5000);
        t_hpump_for(app.evpl, 200);
        n = app.nreqs - base;
        fprintf(stderr, "  dispatched with none answered: %d\n", n);
        T_LE(n, 8);
        T_GE(n, 2);
        T_EQ_U(c.in.len, 0);
        /* answer in order as they arrive: parsing resumes */
        for (int i = 0; i < 12; i++) {
            char want[32];

            T_HPUMP(app.evpl, app.nreqs > base + i && app.reqs[base + i].n_complete == 1, 5000);
            T_LE(app.nreqs - base, i + 8);
            snprintf(want, sizeof(want), "/r%d", i);
            T_STR_EQ(app.reqs[base + i].url, want);
            t_respond_simple(&app.reqs[base + i], 200, want);
        }
        for (int i = 0; i < 12; i++) {
            char want[32];

            snprintf(want, sizeof(want), "/r%d", i);
            expect_body(&c, want);
        }
        T_EQ(app.nreqs, base + 12);
    }
    hold = 0;

    T_HPUMP(app.evpl, app.reqs[app.nreqs - 1].req == NULL, 5000);
    t_raw_close(&c);
    t_app_stop(&app);
    fprintf(stderr, "PASS\n");
    return 0;
}
