/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Client response failures (http.md §4.2): each row on a fresh connection
 * to a raw server that reads the GET and answers with scripted bytes
 * (then maybe closes or resets).  FAILED with EVPL_HTTP_ERROR_BAD_RESPONSE
 * for an unparseable status line (statement 13: "HTTP/1.1 abc OK"),
 * leading whitespace, a malformed header line, bad or conflicting
 * Content-Length, both Content-Length and Transfer-Encoding, a header block
 * over the limit (statement 12, client), malformed chunking;
 * EVPL_HTTP_ERROR_CONN_LOST when the server closes without answering
 * (statement 13) or in the middle of the head or body, and when it resets a
 * close-delimited body (only an orderly close ends one).  Exactly one
 * terminal notification (statement 17); evpl_http_request_status reports
 * the negative reason on FAILED.  Also: a reason-less status line is fine;
 * a response arriving when no request is pending closes the connection.
 */
#include "t_http.h"

struct row {
    const char *what;
    char *resp;
    int then;         /* 0 keep open, 1 close, 2 reset */
    int expect;       /* final status: 200.., or EVPL_HTTP_ERROR_* */
    int headers;      /* RESPONSE_HEADERS expected: 0 / 1 */
    const char *body; /* expected body when it completes */
};

static struct t_client cl;
static struct t_rawsrv rs;

static char *
big_head(void)
{
    struct t_buf b = {0};

    t_buf_adds(&b, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 10; i++) {
        char name[32];

        snprintf(name, sizeof(name), "X-Pad-%d: ", i);
        t_buf_adds(&b, name);
        for (int k = 0; k < 1000; k++) {
            t_buf_add(&b, "p", 1);
        }
        t_buf_adds(&b, "\r\n");
    }
    t_buf_adds(&b, "Content-Length: 0\r\n\r\n");
    return b.p;
}

static void
run_row(struct row *row, int i)
{
    struct t_raw *s;
    struct t_creq *r;
    char want[256];

    fprintf(stderr, "-- row %d: %s -> %d\n", i, row->what, row->expect);
    t_rawsrv_open(&rs);
    t_client_start(&cl, rs.port);
    r = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, "/x");
    t_creq_dispatch(r);
    T_HPUMP(cl.evpl, rs.nconns == 1, 5000);
    s = &rs.conns[0];
    {
        struct t_msg m = {0};

        t_raw_read_msg(s, 1, 0, &m);
        snprintf(want, sizeof(want),
                 "GET /x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 0\r\n\r\n", rs.port);
        T_BYTES_EQ(m.head.p, m.head.len, want);
        t_msg_free(&m);
    }
    t_raw_sends(s, row->resp);
    T_HPUMP(cl.evpl, !t_raw_out_pending(s) || t_raw_closed(s), 5000);
    if (row->then == 1) {
        t_raw_close(s);
    } else if (row->then == 2) {
        t_hpump_for(cl.evpl, 20);
        t_raw_abort(s);
    }
    T_HPUMP(cl.evpl, t_creq_done(r), 5000);
    t_hpump_for(cl.evpl, 20);
    fprintf(stderr, "  events %s, status %d\n", r->ev, r->status_final);
    T_EQ(r->n_complete + r->n_failed, 1);
    T_EQ(r->status_final, row->expect);
    if (row->expect < 0) {
        T_EQ(r->n_failed, 1);
    } else {
        T_EQ(r->n_complete, 1);
        T_BYTES_EQ(t_buf_str(&r->body), r->body.len, row->body);
    }
    T_EQ(r->n_headers, row->headers);
    if (row->headers) {
        T_EQ(r->status_headers, 200);
    }
    evpl_http_client_close(cl.agent, cl.conn);
    t_client_finish(&cl, &rs);
}

/* A response nobody asked for closes the connection; a later dispatch
 * fails synchronously (the connection is retired). */
static void
unsolicited(void)
{
    struct t_raw *s;
    struct t_creq *r;

    fprintf(stderr, "-- unsolicited response\n");
    t_rawsrv_open(&rs);
    t_client_start(&cl, rs.port);
    T_HPUMP(cl.evpl, rs.nconns == 1, 5000);
    s = &rs.conns[0];
    t_hpump_for(cl.evpl, 50);
    t_raw_sends(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    T_HPUMP(cl.evpl, t_raw_closed(s), 5000);
    fprintf(stderr, "  ok: the client closed the connection\n");
    t_hpump_for(cl.evpl, 50);
    r = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, "/late");
    t_creq_dispatch(r);
    T_EQ(r->n_failed, 1);
    T_EQ(r->failed_in_dispatch, 1);
    evpl_http_client_close(cl.agent, cl.conn);
    t_client_finish(&cl, &rs);
}

/* A response that says it is the last (Connection: close, or HTTP/1.0
 * without keep-alive) completes; the request queued behind it fails
 * (CONN_LOST) and the client closes the connection, even though the
 * server keeps it open (it used to wait for the server's close). */
static void
last_response(const char *resp)
{
    struct t_raw *s;
    struct t_creq *r1, *r2;

    fprintf(stderr, "-- last response: %.40s...\n", resp);
    t_rawsrv_open(&rs);
    t_client_start(&cl, rs.port);
    r1 = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, "/one");
    t_creq_dispatch(r1);
    r2 = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, "/two");
    t_creq_dispatch(r2);
    T_HPUMP(cl.evpl, rs.nconns == 1, 5000);
    s = &rs.conns[0];
    {
        struct t_msg m = {0};

        t_raw_read_msg(s, 1, 0, &m);
        t_msg_free(&m);
    }
    t_raw_sends(s, resp);
    T_HPUMP(cl.evpl, t_creq_done(r1) && t_creq_done(r2), 5000);
    T_EQ(r1->n_complete, 1);
    T_EQ(r1->status_final, 200);
    T_BYTES_EQ(t_buf_str(&r1->body), r1->body.len, "ok");
    T_EQ(r2->n_failed, 1);
    T_EQ(r2->status_final, EVPL_HTTP_ERROR_CONN_LOST);
    T_HPUMP(cl.evpl, t_raw_closed(s), 5000);
    fprintf(stderr, "  ok: the client closed the connection\n");
    evpl_http_client_close(cl.agent, cl.conn);
    t_client_finish(&cl, &rs);
}

#define BAD  EVPL_HTTP_ERROR_BAD_RESPONSE
#define LOST EVPL_HTTP_ERROR_CONN_LOST
#define S(x) strdup(x)

int
main(void)
{
    struct row rows[] = {
        {"status abc (statement 13)", S("HTTP/1.1 abc OK\r\n\r\n"), 0, BAD, 0, NULL},
        {"status 99", S("HTTP/1.1 99 Low\r\nContent-Length: 0\r\n\r\n"), 0, BAD, 0, NULL},
        {"status 600", S("HTTP/1.1 600 High\r\nContent-Length: 0\r\n\r\n"), 0, BAD, 0, NULL},
        {"status 2000", S("HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"), 0, BAD, 0, NULL},
        {"status 20", S("HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n"), 0, BAD, 0, NULL},
        {"leading whitespace", S(" HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 0, BAD, 0, NULL},
        {"HTTP/2.0 status line", S("HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"), 0, BAD, 0,
         NULL},
        {"not HTTP", S("HTTX/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 0, BAD, 0, NULL},
        {"header line without colon", S("HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 0\r\n\r\n"),
         0, BAD, 0, NULL},
        {"Content-Length abc", S("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"), 0, BAD, 0,
         NULL},
        {"two Content-Length",
         S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), 0, BAD, 0,
         NULL},
        {"Content-Length and Transfer-Encoding",
         S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
         0, BAD, 0, NULL},
        {"header block over the limit (statement 12)", big_head(), 0, BAD, 0, NULL},
        {"malformed chunk size",
         S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"), 0, BAD,
         1, NULL},
        {"chunk data without CRLF",
         S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"), 0, BAD, 1,
         NULL},
        {"closed without answer (statement 13)", S(""), 1, LOST, 0, NULL},
        {"closed inside the status line", S("HTTP/1.1 200 O"), 1, LOST, 0, NULL},
        {"closed inside the header block", S("HTTP/1.1 200 OK\r\nContent-Le"), 1, LOST, 0, NULL},
        {"closed in the body", S("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"), 1, LOST, 1,
         NULL},
        {"reset in the body", S("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"), 2, LOST, 1,
         NULL},
        {"close-delimited, closed (its end)", S("HTTP/1.0 200 OK\r\n\r\nabc"), 1, 200, 1, "abc"},
        {"close-delimited, reset in the body", S("HTTP/1.0 200 OK\r\n\r\nabc"), 2, LOST, 1, NULL},
        {"close-delimited 1.1, reset in the body", S("HTTP/1.1 200 OK\r\n\r\nabc"), 2, LOST, 1,
         NULL},
        {"closed in a chunk", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"), 1,
         LOST, 1, NULL},
        {"closed before the last chunk",
         S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"), 1, LOST, 1,
         NULL},
        {"reason phrase omitted (valid)", S("HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"), 0, 200,
         1, "ok"},
        {"HTTP/1.0 with length (valid)", S("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"), 0,
         200, 1, "ok"},
        {"101 never asked for", S("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n\x01\x02"),
         0, BAD, 0, NULL},
        {"bare CR in a field",
         S("HTTP/1.1 200 OK\r\nX-P: a\rContent-Length: 0\r\nContent-Length: 2\r\n\r\nok"), 0, BAD,
         0, NULL},
        {"HTTP/1.0 with Transfer-Encoding and Content-Length",
         S("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok"), 0, BAD,
         0, NULL},
        {"HTTP/1.0 with Transfer-Encoding: read to the close",
         S("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"), 1, 200, 1,
         "2\r\nok\r\n0\r\n\r\n"},
    };
    int nrows = (int) (sizeof(rows) / sizeof(rows[0]));
    int failed = 0;
    pid_t pid;
    int status;

    t_net_guard(300);
    for (int i = 0; i <= nrows + 2; i++) {
        fflush(stderr);
        pid = fork();
        T_OK(pid >= 0);
        if (pid == 0) {
            t_net_guard(30);
            if (i == nrows) {
                unsolicited();
            } else if (i == nrows + 1) {
                last_response(
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
            } else if (i == nrows + 2) {
                last_response("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
            } else {
                run_row(&rows[i], i);
            }
            exit(0);
        }
        T_EQ(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "ROW FAILED: %d (%s)\n", i,
                    i < nrows ? rows[i].what : "unsolicited/last");
            failed++;
        }
        if (i < nrows) {
            free(rows[i].resp);
        }
    }
    if (failed) {
        T_FAIL("%d of %d rows failed", failed, nrows + 3);
    }
    fprintf(stderr, "PASS\n");
    return 0;
}
