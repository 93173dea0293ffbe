/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * NUL bytes (found by fuzz/fuzz_http.c: a field value holding NUL broke
 * the field store).  RFC 9110 5.5: never valid in a field.  A header line
 * or request line with NUL is rejected with 400 before dispatch; a trailer
 * line with NUL is dropped (trailer lines that do not parse are dropped,
 * http.md §3.4) and the request completes with the other trailers.
 */
#include "t_http.h"

static struct t_app app;

static void
reject(const char *what, const char *req, size_t len)
{
    struct t_raw c;
    int before = app.nreqs;

    fprintf(stderr, "-- %s\n", what);
    t_raw_open(&c, app.ep);
    t_raw_send(&c, req, len);
    t_expect_rejection(&c, 400);
    t_expect_closed(&c);
    T_EQ(app.nreqs, before);
    t_raw_close(&c);
}

int
main(void)
{
    static const char value[] = "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n";
    static const char name[] = "GET / HTTP/1.1\r\nHost: x\r\nX\0A: ab\r\n\r\n";
    static const char target[] = "GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char fold[] = "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\0c\r\n\r\n";
    static const char trailer[] =
        "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n0\r\nT-Bad: a\0b\r\nT-Good: ok\r\n\r\n";
    struct t_raw c;

    t_app_start(&app);
    reject("NUL in a field value", value, sizeof(value) - 1);
    reject("NUL in a field name", name, sizeof(name) - 1);
    reject("NUL in the request target", target, sizeof(target) - 1);
    reject("NUL in a continuation line", fold, sizeof(fold) - 1);

    fprintf(stderr, "-- NUL in a trailer line: that line is dropped\n");
    t_raw_open(&c, app.ep);
    t_raw_send(&c, trailer, sizeof(trailer) - 1);
    t_expect_response(&c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 11\r\n\r\n",
                      "hello world");
    T_EQ(app.nreqs, 1);
    T_BYTES_EQ(app.reqs[0].body.p, app.reqs[0].body.len, "abc");
    T_BYTES_EQ(app.reqs[0].trailers.p, app.reqs[0].trailers.len, "T-Good: ok\n");
    t_raw_close(&c);
    t_app_stop(&app);
    fprintf(stderr, "PASS\n");
    return 0;
}
