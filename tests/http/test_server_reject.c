/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The server's rejection table (http.md §3.4), each row on a fresh raw
 * connection: the exact response "HTTP/1.1 <code> <reason>", Date,
 * "Connection: close", "Content-Length: 0", no body, then the connection
 * closes; the dispatch callback is never called (§3.1 rule 3) - except
 * for rows rejected while reading the body, where the dispatched request
 * receives FAILED (and never RESPONSE_COMPLETE).  §8 statements 4, 5, 12
 * (server side), 17.  A valid request on the same server afterwards still
 * works.
 */
#include "t_http.h"

static struct t_app app;

struct row {
    const char *what;
    char *req;
    int code;
    int dispatched; /* rejected while reading a dispatched request's body */
};

static char *
mk(const char *a, char fill, size_t n, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + n + lb + 1);

    T_OK(s != NULL);
    memcpy(s, a, la);
    memset(s + la, fill, n);
    memcpy(s + la + n, b, lb + 1);
    return s;
}

static char *
big_block(void)
{
    /* 10 header lines of ~1000 bytes: each line fine, the block > 8192 */
    struct t_buf b = {0};

    t_buf_adds(&b, "GET /big HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 10; i++) {
        char name[32];

        snprintf(name, sizeof(name), "X-Pad-%d: ", i);
        t_buf_adds(&b, name);
        for (int k = 0; k < 1000; k++) {
            t_buf_add(&b, "p", 1);
        }
        t_buf_adds(&b, "\r\n");
    }
    t_buf_adds(&b, "\r\n");
    return b.p;
}

#define S(x) strdup(x)

static void
check_ok_request(void)
{
    struct t_raw c;

    t_raw_open(&c, app.ep);
    t_raw_sends(&c, "GET /fine HTTP/1.1\r\nHost: x\r\n\r\n");
    t_expect_response(&c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 11\r\n\r\n",
                      "hello world");
    t_raw_close(&c);
}

static void
run_row(struct row *row, int i)
{
    struct t_raw c;
    int before;

    t_app_start(&app);
    app.hook = NULL; /* default: 200 "hello world" on RECEIVE_COMPLETE */
    before = app.nreqs;
    fprintf(stderr, "-- row %d: %s -> %d%s\n", i, row->what, row->code,
            row->dispatched ? " (after dispatch)" : "");
    t_raw_open(&c, app.ep);
    t_raw_sends(&c, row->req);
    t_expect_rejection(&c, row->code);
    t_expect_closed(&c);
    t_hpump_for(app.evpl, 20);
    if (row->dispatched) {
        struct t_sreq *r;

        T_EQ(app.nreqs, before + 1);
        r = &app.reqs[before];
        T_HPUMP(app.evpl, r->req == NULL, 5000);
        T_EQ(r->n_failed, 1);
        T_EQ(r->n_rcomplete, 0);
        T_EQ(r->n_complete, 0);
        fprintf(stderr, "  ok: dispatched request failed (events %s)\n", r->ev);
    } else {
        T_EQ(app.nreqs, before);
    }
    t_raw_close(&c);
    /* the server still works */
    check_ok_request();
    t_app_stop(&app);
}

int
main(void)
{
    struct row rows[] = {
        /* request line */
        {"request line > 4095", mk("GET /", 'a', 4100, " HTTP/1.1\r\nHost: x\r\n\r\n"), 400, 0},
        {"header line > 4095", mk("GET / HTTP/1.1\r\nHost: x\r\nX-Long: ", 'b', 4100, "\r\n\r\n"),
         400, 0},
        {"leading SP", S(" GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 400, 0},
        {"leading HT", S("\tGET / HTTP/1.1\r\nHost: x\r\n\r\n"), 400, 0},
        {"missing target", S("GET\r\nHost: x\r\n\r\n"), 400, 0},
        {"missing version (HTTP/0.9 simple request)", S("GET /\r\n\r\n"), 400, 0},
        /* a bad request line is answered without waiting for a header
         * block: an HTTP/0.9 simple request is the line alone */
        {"HTTP/0.9 simple request, the line alone", S("GET /\r\n"), 400, 0},
        {"bad version, the line alone", S("GET / HTTP/2.0\r\n"), 400, 0},
        {"bad version, the line and a field", S("GET / HTTP/1.1x\r\nHost: x\r\n"), 400, 0},
        {"version HTTP/1", S("GET / HTTP/1\r\nHost: x\r\n\r\n"), 400, 0},
        {"version HTTP/1.1x", S("GET / HTTP/1.1x\r\nHost: x\r\n\r\n"), 400, 0},
        {"version http/1.1", S("GET / http/1.1\r\nHost: x\r\n\r\n"), 400, 0},
        {"version HTTP/x.1", S("GET / HTTP/x.1\r\nHost: x\r\n\r\n"), 400, 0},
        {"version HTTP/2.0", S("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 400, 0},
        {"version HTTP/0.9", S("GET / HTTP/0.9\r\n\r\n"), 400, 0},
        {"extra token", S("GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n"), 400, 0},
        /* header block */
        {"header block > http_max_header_size (statement 12)", big_block(), 400, 0},
        {"header line without colon", S("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"), 400, 0},
        {"empty field name", S("GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n"), 400, 0},
        {"SP before colon", S("GET / HTTP/1.1\r\nHost: x\r\nX-A : v\r\n\r\n"), 400, 0},
        {"HT before colon", S("GET / HTTP/1.1\r\nHost: x\r\nX-A\t: v\r\n\r\n"), 400, 0},
        {"continuation without a field", S("GET / HTTP/1.1\r\n folded\r\nHost: x\r\n\r\n"), 400, 0},
        /* framing */
        {"Content-Length 1a", S("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1a\r\n\r\n"), 400,
         0},
        {"Content-Length +5", S("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello"),
         400, 0},
        {"Content-Length -1", S("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"), 400,
         0},
        {"Content-Length 0x5", S("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n"), 400,
         0},
        {"Content-Length overflow",
         S("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 400,
         0},
        {"two different Content-Length",
         S("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
         400, 0},
        /* ambiguities another reader could resolve otherwise (smuggling) */
        {"VT in a field name", S("POST / HTTP/1.1\r\nHost: x\r\nContent-Length\v: 3\r\n\r\nabc"),
         400, 0},
        {"SP inside a field name", S("GET / HTTP/1.1\r\nHost: x\r\nX Probe: a\r\n\r\n"), 400, 0},
        {"bare CR in a field", S("GET / HTTP/1.1\r\nHost: x\r\nX-P: a\rContent-Length: 3\r\n\r\n"),
         400, 0},
        {"bare CR in the request line", S("GET /a\rb HTTP/1.1\r\nHost: x\r\n\r\n"), 400, 0},
        {"control byte in the target", S("GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n"), 400, 0},
        {"DEL in the target", S("GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n"), 400, 0},
        {"Host with a space", S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400, 0},
        {"Host with a path", S("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400, 0},
        {"two Host on HTTP/1.0", S("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 400, 0},
        {"HTTP/1.1 without Host (statement 4)", S("GET / HTTP/1.1\r\n\r\n"), 400, 0},
        {"two Host", S("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400, 0},
        {"two identical Host", S("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400, 0},
        {"HTTP/1.0 POST without Content-Length", S("POST / HTTP/1.0\r\n\r\n"), 400, 0},
        {"Transfer-Encoding on HTTP/1.0",
         S("PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, 0},
        {"Transfer-Encoding and Content-Length",
         S("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: "
           "5\r\n\r\n0\r\n\r\n"),
         400, 0},
        {"chunked not final",
         S("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400, 0},
        {"chunked not final (two fields)",
         S("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
           "gzip\r\n\r\n"),
         400, 0},
        {"chunked twice (two fields)",
         S("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
           "chunked\r\n\r\n0\r\n\r\n"),
         400, 0},
        /* 501 */
        {"method FROB (statement 5)", S("FROB / HTTP/1.1\r\nHost: x\r\n\r\n"), 501, 0},
        {"method get (statement 5)", S("get / HTTP/1.1\r\nHost: x\r\n\r\n"), 501, 0},
        {"method Get", S("Get / HTTP/1.1\r\nHost: x\r\n\r\n"), 501, 0},
        {"method PATCH", S("PATCH / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"), 501, 0},
        {"method OPTIONS", S("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), 501, 0},
        {"coding gzip, chunked",
         S("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 501,
         0},
        /* rejected while reading the body of a dispatched request */
        {"malformed chunk size",
         S("POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
           "chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
         400, 1},
        {"empty chunk-size line",
         S("POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
           "chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n"),
         400, 1},
        {"chunk data not followed by CRLF",
         S("POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
           "chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
         400, 1},
        {"chunk size with trailing SP",
         S("POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
           "chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"),
         400, 1},
        {"bare CR in a chunk extension",
         S("POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
           "chunked\r\n\r\n5;a=\rb\r\nhello\r\n0\r\n\r\n"),
         400, 1},
        {"control byte in a chunk extension",
         S("POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
           "chunked\r\n\r\n5;a\x01\r\nhello\r\n0\r\n\r\n"),
         400, 1},
        {"chunk line > 4095",
         mk("POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;", 'e', 4100,
            "\r\nhello\r\n0\r\n\r\n"),
         400, 1},
    };
    int nrows = (int) (sizeof(rows) / sizeof(rows[0]));
    int failed = 0;

    t_net_guard(300);
    /* each row in a child of its own (a fresh loop and server), so that
     * every failing row is reported */
    for (int i = 0; i < nrows; i++) {
        pid_t pid;
        int status;

        fflush(stderr);
        pid = fork();
        T_OK(pid >= 0);
        if (pid == 0) {
            t_net_guard(30);
            run_row(&rows[i], i);
            exit(0);
        }
        T_EQ(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "ROW FAILED: %d (%s)\n", i, rows[i].what);
            failed++;
        }
        free(rows[i].req);
    }
    if (failed) {
        T_FAIL("%d of %d rows failed", failed, nrows);
    }
    fprintf(stderr, "PASS\n");
    return 0;
}
