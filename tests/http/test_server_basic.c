/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * HTTP/1.x server basics against a raw TCP client, exact response bytes
 * (Date masked, its shape checked): http.md §3.1-§3.3, §5 and §8 statements
 * 1 (three ways of adding the body), 2, 3, 9, 10, 11, 17 (one terminal
 * notification per request); request accessors; response trailers
 * (chunked: sent, length-framed: dropped); application Date; reason
 * phrases; HTTP/1.0 + chunked -> close-delimited; Connection: close.
 */
#include "t_http.h"

static struct t_app app;

static int
path_is(struct t_sreq *r, const char *p)
{
    return strcmp(r->url, p) == 0;
}

static void
hook(struct t_app *a, struct t_sreq *r, int type)
{
    struct evpl_http_request *req = r->req;
    struct evpl *evpl = a->evpl;

    if (type == T_EV_DISPATCH) {
        if (path_is(r, "/acc?x=1&y=%20")) {
            struct t_buf b = {0};

            T_EQ(evpl_http_request_type(req), EVPL_HTTP_REQUEST_TYPE_GET);
            T_STR_EQ(evpl_http_request_type_to_string(req), "Get");
            T_STR_EQ(evpl_http_request_header(req, "HOST"), "example.com");
            T_STR_EQ(evpl_http_request_header(req, "x-multi"), "one");
            T_OK(evpl_http_request_header(req, "X-Absent") == NULL);
            T_EQ(evpl_http_request_protocol(req), EVPL_HTTP_PROTOCOL_HTTP1);
            T_EQ(r->url_len, 14);
            evpl_http_request_header_iterate(req, t_fields_cb, &b);
            T_STR_EQ(t_buf_str(&b), "Host: example.com\nX-Multi: one\nX-Multi: two\nAccept: */*\n");
            t_buf_free(&b);
            /* on a server, the trailer accessors see nothing for a bodiless GET */
            T_OK(evpl_http_request_trailer(req, "X-T") == NULL);
            T_EQ_U(evpl_http_request_get_data_avail(req), 0);
        }
        if (path_is(r, "/post")) {
            T_EQ(evpl_http_request_type(req), EVPL_HTTP_REQUEST_TYPE_POST);
            T_STR_EQ(evpl_http_request_type_to_string(req), "Post");
        }
        if (path_is(r, "/put")) {
            T_EQ(evpl_http_request_type(req), EVPL_HTTP_REQUEST_TYPE_PUT);
            T_STR_EQ(evpl_http_request_type_to_string(req), "Put");
        }
        if (path_is(r, "/delete")) {
            T_EQ(evpl_http_request_type(req), EVPL_HTTP_REQUEST_TYPE_DELETE);
            T_STR_EQ(evpl_http_request_type_to_string(req), "Delete");
        }
        if (path_is(r, "/head100")) {
            T_EQ(evpl_http_request_type(req), EVPL_HTTP_REQUEST_TYPE_HEAD);
            T_STR_EQ(evpl_http_request_type_to_string(req), "Head");
        }
        return;
    }

    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        if (path_is(r, "/s1a")) {
            /* statement 1, body staged before dispatch_default */
            T_EQ(evpl_http_request_add_header(req, "X-Test", "yes"), 0);
            T_STR_EQ(evpl_http_response_header(req, "x-test"), "yes");
            evpl_http_server_set_response_length(req, 11);
            t_add_str(evpl, req, "hello world");
            evpl_http_server_dispatch_default(req, 200);
        } else if (path_is(r, "/s1b")) {
            /* statement 1 literally: dispatch, then add the 11 bytes */
            T_EQ(evpl_http_request_add_header(req, "X-Test", "yes"), 0);
            evpl_http_server_set_response_length(req, 11);
            evpl_http_server_dispatch_default(req, 200);
            if (r->req) {
                t_add_str(evpl, req, "hello world");
            }
        } else if (path_is(r, "/s1c")) {
            /* body only from WANT_DATA */
            T_EQ(evpl_http_request_add_header(req, "X-Test", "yes"), 0);
            evpl_http_server_set_response_length(req, 11);
            evpl_http_server_dispatch_default(req, 200);
        } else if (path_is(r, "/chunked") || path_is(r, "/chunked10")) {
            evpl_http_server_set_response_chunked(req);
            evpl_http_server_dispatch_default(req, 200);
        } else if (path_is(r, "/trailer")) {
            evpl_http_server_set_response_chunked(req);
            t_add_str(evpl, req, "abc");
            T_EQ(evpl_http_request_add_trailer(req, "X-Checksum", "123"), 0);
            T_EQ(evpl_http_request_add_trailer(req, "Bad Name", "v"), -1);
            T_EQ(evpl_http_request_add_trailer(req, "X-Inj", "a\r\nB: c"), -1);
            T_EQ(evpl_http_request_add_trailer(req, "X-Second", "two"), 0);
            evpl_http_request_add_datav(req, NULL, 0);
            /* after the body ended */
            T_EQ(evpl_http_request_add_trailer(req, "X-Late", "1"), -1);
            evpl_http_server_dispatch_default(req, 200);
        } else if (path_is(r, "/trailer-cl")) {
            evpl_http_server_set_response_length(req, 3);
            T_EQ(evpl_http_request_add_trailer(req, "X-Dropped", "1"), 0);
            t_add_str(evpl, req, "abc");
            evpl_http_server_dispatch_default(req, 200);
        } else if (strncmp(r->url, "/status/", 8) == 0) {
            evpl_http_server_dispatch_default(req, atoi(r->url + 8));
        } else if (path_is(r, "/head100")) {
            evpl_http_server_set_response_length(req, 100);
            evpl_http_server_dispatch_default(req, 200);
        } else if (path_is(r, "/nocontent")) {
            evpl_http_server_set_response_length(req, 5);
            t_add_str(evpl, req, "abcde");
            evpl_http_server_dispatch_default(req, 204);
        } else if (path_is(r, "/nocontent-chunked")) {
            evpl_http_server_set_response_chunked(req);
            t_add_str(evpl, req, "abcde");
            evpl_http_request_add_datav(req, NULL, 0);
            evpl_http_server_dispatch_default(req, 204);
        } else if (path_is(r, "/notmodified")) {
            evpl_http_server_set_response_length(req, 10);
            t_add_str(evpl, req, "0123456789");
            evpl_http_server_dispatch_default(req, 304);
        } else if (path_is(r, "/inject")) {
            /* statement 11 */
            T_EQ(evpl_http_request_add_header(req, "X-A", "v\r\nInjected: 1"), -1);
            T_EQ(evpl_http_request_add_header(req, "Bad Name", "v"), -1);
            T_EQ(evpl_http_request_add_header(req, "", "v"), -1);
            T_EQ(evpl_http_request_add_header(req, "X-B", "v\rw"), -1);
            T_EQ(evpl_http_request_add_header(req, "X-C", "v\nw"), -1);
            T_EQ(evpl_http_request_add_header(req, "X:D", "v"), -1);
            T_EQ(evpl_http_request_add_header(req, "X(E)", "v"), -1);
            T_EQ(evpl_http_request_add_header(req, "X\"F", "v"), -1);
            T_EQ(evpl_http_request_add_header(req, "X-\xc3\xa9", "v"), -1);
            T_OK(evpl_http_response_header(req, "X-A") == NULL);
            T_OK(evpl_http_response_header(req, "Injected") == NULL);
            T_EQ(evpl_http_request_add_header(req, "X-Ok!#$%&'*+-.^_`|~09", "v"), 0);
            T_EQ(evpl_http_request_add_header(req, "X-Empty", ""), 0);
            evpl_http_server_dispatch_default(req, 200);
        } else if (path_is(r, "/order")) {
            T_EQ(evpl_http_request_add_header(req, "X-1", "a"), 0);
            T_EQ(evpl_http_request_add_header(req, "X-2", "b"), 0);
            T_EQ(evpl_http_request_add_header(req, "X-1", "c"), 0);
            T_STR_EQ(evpl_http_response_header(req, "x-1"), "a");
            evpl_http_server_dispatch_default(req, 201);
        } else if (path_is(r, "/appdate")) {
            T_EQ(evpl_http_request_add_header(req, "X-Before", "1"), 0);
            T_EQ(evpl_http_request_add_header(req, "Date", "Sun, 06 Nov 1994 08:49:37 GMT"), 0);
            evpl_http_server_dispatch_default(req, 200);
        } else if (path_is(r, "/post") || path_is(r, "/put") || path_is(r, "/delete")) {
            char b[64];

            snprintf(b, sizeof(b), "got %zu: %s", r->body.len, t_buf_str(&r->body));
            t_respond_simple(r, 200, b);
        } else {
            t_respond_simple(r, 200, "hello world");
        }
        return;
    }

    if (type == EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE) {
        /* §4.2: on a server, the response fields, with the internal Connection */
        if (path_is(r, "/x10") || path_is(r, "/close1")) {
            const char *v = evpl_http_response_header(req, "connection");

            T_OK(v != NULL);
            T_STR_EQ(v, "close");
        } else if (path_is(r, "/ka1")) {
            const char *v = evpl_http_response_header(req, "Connection");

            T_OK(v != NULL);
            T_STR_EQ(v, "keep-alive");
        } else if (path_is(r, "/s1a")) {
            struct t_buf b = {0};

            evpl_http_response_header_iterate(req, t_fields_cb, &b);
            T_OK(strstr(t_buf_str(&b), "X-Test: yes\n") != NULL);
            t_buf_free(&b);
        }
        return;
    }

    if (type == EVPL_HTTP_NOTIFY_WANT_DATA) {
        if (path_is(r, "/s1c") && r->want_step == 0) {
            r->want_step++;
            t_add_str(evpl, req, "hello world");
        } else if (path_is(r, "/chunked")) {
            /* statement 2: WANT_DATA until the body is ended */
            static const char *parts[] = {"hello", " world"};

            if (r->want_step < 2) {
                t_add_str(evpl, req, parts[r->want_step]);
            } else if (r->want_step == 2) {
                evpl_http_request_add_datav(req, NULL, 0);
            }
            r->want_step++;
        } else if (path_is(r, "/chunked10")) {
            /* sixteen 4 KiB pieces then the end */
            if (r->want_step < 16) {
                char buf[4096];

                memset(buf, 'a' + r->want_step, sizeof(buf));
                t_add_bytes(evpl, req, buf, sizeof(buf));
            } else if (r->want_step == 16) {
                evpl_http_request_add_datav(req, NULL, 0);
            }
            r->want_step++;
        }
    }
}

static void
get(struct t_raw *c, const char *path)
{
    char buf[512];

    snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: example.com\r\n\r\n", path);
    t_raw_sends(c, buf);
}

static struct t_sreq *
last_req(void)
{
    T_GT(app.nreqs, 0);
    return &app.reqs[app.nreqs - 1];
}

#define OK_HELLO "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 11\r\n\r\n"

int
main(void)
{
    struct t_raw c, c2;

    t_net_guard(60);
    t_app_start(&app);
    app.hook = hook;

    fprintf(stderr, "-- accessors and statement 1 (three ways)\n");
    t_raw_open(&c, app.ep);
    t_raw_sends(&c, "GET /acc?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nX-Multi: one\r\n"
                    "X-Multi: two\r\nAccept: */*\r\n\r\n");
    t_expect_response(&c, 0, OK_HELLO, "hello world");
    T_EV_EQ(last_req(), "DCR");

    get(&c, "/s1a");
    t_expect_response(
        &c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nX-Test: yes\r\nContent-Length: 11\r\n\r\n",
        "hello world");
    T_EV_EQ(last_req(), "DCR");

    get(&c, "/s1b");
    t_expect_response(
        &c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nX-Test: yes\r\nContent-Length: 11\r\n\r\n",
        "hello world");
    T_HPUMP(app.evpl, last_req()->req == NULL, 5000);
    if (strcmp(last_req()->ev, "DCR") != 0) {
        T_EV_EQ(last_req(), "DCWR");
    }

    get(&c, "/s1c");
    t_expect_response(
        &c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nX-Test: yes\r\nContent-Length: 11\r\n\r\n",
        "hello world");
    T_HPUMP(app.evpl, last_req()->req == NULL, 5000);
    T_EV_EQ(last_req(), "DCWR");

    fprintf(stderr, "-- statement 2: chunked response, then the connection is reused\n");
    get(&c, "/chunked");
    {
        struct t_msg m = {0};
        const char *masked;

        t_raw_read_msg(&c, 0, 0, &m);
        masked = t_msg_head_masked(&m);
        T_BYTES_EQ(masked, strlen(masked),
                   "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nTransfer-Encoding: chunked\r\n\r\n");
        T_BYTES_EQ(m.body.p, m.body.len, "hello world");
        T_EQ(m.ntr, 0); /* ended by 0\r\n\r\n */
        t_msg_free(&m);
    }
    T_HPUMP(app.evpl, last_req()->req == NULL, 5000);
    T_EV_EQ(last_req(), "DCWR");
    T_GE(last_req()->n_want, 3);
    T_EQ(last_req()->want_step, 3);

    get(&c, "/chunked10");
    {
        struct t_msg m = {0};

        t_raw_read_msg(&c, 0, 0, &m);
        T_EQ_U(m.body.len, 16 * 4096);
        for (int i = 0; i < 16; i++) {
            for (int k = 0; k < 4096; k++) {
                if (m.body.p[i * 4096 + k] != 'a' + i) {
                    T_FAIL("chunked10 body byte %d", i * 4096 + k);
                }
            }
        }
        t_msg_free(&m);
    }
    get(&c, "/after-chunked");
    t_expect_response(&c, 0, OK_HELLO, "hello world");

    fprintf(stderr, "-- response trailers\n");
    get(&c, "/trailer");
    {
        struct t_msg m = {0};
        const char *masked;

        t_raw_read_msg(&c, 0, 0, &m);
        masked = t_msg_head_masked(&m);
        T_BYTES_EQ(masked, strlen(masked),
                   "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nTransfer-Encoding: chunked\r\n\r\n");
        T_BYTES_EQ(m.body.p, m.body.len, "abc");
        T_EQ(m.ntr, 2);
        T_STR_EQ(m.tn[0], "X-Checksum");
        T_STR_EQ(m.tv[0], "123");
        T_STR_EQ(m.tn[1], "X-Second");
        T_STR_EQ(m.tv[1], "two");
        t_msg_free(&m);
    }
    get(&c, "/trailer-cl");
    t_expect_response(&c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 3\r\n\r\n", "abc");

    fprintf(stderr, "-- statement 9 and reason phrases\n");
    get(&c, "/status/700");
    t_expect_response(
        &c, 0, "HTTP/1.1 500 Internal Server Error\r\nDate: <DATE>\r\nContent-Length: 0\r\n\r\n",
        "");
    get(&c, "/status/99");
    t_expect_response(
        &c, 0, "HTTP/1.1 500 Internal Server Error\r\nDate: <DATE>\r\nContent-Length: 0\r\n\r\n",
        "");
    get(&c, "/status/404");
    t_expect_response(&c, 0, "HTTP/1.1 404 Not Found\r\nDate: <DATE>\r\nContent-Length: 0\r\n\r\n",
                      "");
    get(&c, "/status/299");
    t_expect_response(&c, 0, "HTTP/1.1 299 Unknown\r\nDate: <DATE>\r\nContent-Length: 0\r\n\r\n",
                      "");
    get(&c, "/status/501");
    t_expect_response(
        &c, 0, "HTTP/1.1 501 Not Implemented\r\nDate: <DATE>\r\nContent-Length: 0\r\n\r\n", "");

    fprintf(stderr, "-- statement 10: HEAD, 204, 304\n");
    t_raw_sends(&c, "HEAD /head100 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    t_expect_response(&c, 1, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 100\r\n\r\n", "");
    T_HPUMP(app.evpl, last_req()->req == NULL, 5000);
    T_EV_EQ(last_req(), "DCR");
    get(&c, "/nocontent");
    t_expect_response(&c, 0, "HTTP/1.1 204 No Content\r\nDate: <DATE>\r\n\r\n", "");
    get(&c, "/nocontent-chunked");
    t_expect_response(&c, 0, "HTTP/1.1 204 No Content\r\nDate: <DATE>\r\n\r\n", "");
    get(&c, "/notmodified");
    t_expect_response(
        &c, 0, "HTTP/1.1 304 Not Modified\r\nDate: <DATE>\r\nContent-Length: 10\r\n\r\n", "");
    /* no stray body bytes: the next response starts right away */
    get(&c, "/after-304");
    t_expect_response(&c, 0, OK_HELLO, "hello world");
    T_EQ_U(c.in.len, 0);

    fprintf(stderr, "-- statement 11, header order, application Date\n");
    get(&c, "/inject");
    t_expect_response(&c, 0,
                      "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nX-Ok!#$%&'*+-.^_`|~09: v\r\n"
                      "X-Empty: \r\nContent-Length: 0\r\n\r\n",
                      "");
    get(&c, "/order");
    t_expect_response(&c, 0,
                      "HTTP/1.1 201 Created\r\nDate: <DATE>\r\nX-1: a\r\nX-2: b\r\nX-1: "
                      "c\r\nContent-Length: 0\r\n\r\n",
                      "");
    get(&c, "/appdate");
    {
        struct t_msg m = {0};

        t_raw_read_msg(&c, 0, 0, &m);
        T_BYTES_EQ(m.head.p, m.head.len,
                   "HTTP/1.1 200 OK\r\nX-Before: 1\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                   "Content-Length: 0\r\n\r\n");
        t_msg_free(&m);
    }

    fprintf(stderr, "-- request bodies by method\n");
    t_raw_sends(&c, "POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    t_expect_response(&c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 12\r\n\r\n",
                      "got 5: hello");
    t_raw_sends(&c, "PUT /put HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    t_expect_response(&c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 10\r\n\r\n",
                      "got 3: abc");
    t_raw_sends(&c, "DELETE /delete HTTP/1.1\r\nHost: a\r\n\r\n");
    t_expect_response(&c, 0, "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nContent-Length: 7\r\n\r\n",
                      "got 0: ");
    T_EQ(t_raw_closed(&c), 0);
    t_raw_close(&c);

    fprintf(stderr, "-- statement 3: HTTP/1.0 without keep-alive closes\n");
    t_raw_open(&c, app.ep);
    t_raw_sends(&c, "GET /x10 HTTP/1.0\r\n\r\n");
    t_expect_response(
        &c, 0, "HTTP/1.0 200 OK\r\nDate: <DATE>\r\nConnection: close\r\nContent-Length: 11\r\n\r\n",
        "hello world");
    t_expect_closed(&c);
    t_raw_close(&c);

    fprintf(stderr, "-- statement 3: HTTP/1.0 with keep-alive stays open\n");
    t_raw_open(&c, app.ep);
    t_raw_sends(&c, "GET /ka1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    t_expect_response(
        &c, 0,
        "HTTP/1.0 200 OK\r\nDate: <DATE>\r\nConnection: keep-alive\r\nContent-Length: 11\r\n\r\n",
        "hello world");
    t_expect_silent_open(&c, 150);
    t_raw_sends(&c, "GET /ka2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    t_expect_response(
        &c, 0,
        "HTTP/1.0 200 OK\r\nDate: <DATE>\r\nConnection: keep-alive\r\nContent-Length: 11\r\n\r\n",
        "hello world");
    /* the third without it: closed after the response */
    t_raw_sends(&c, "GET /ka3 HTTP/1.0\r\n\r\n");
    t_expect_response(
        &c, 0, "HTTP/1.0 200 OK\r\nDate: <DATE>\r\nConnection: close\r\nContent-Length: 11\r\n\r\n",
        "hello world");
    t_expect_closed(&c);
    t_raw_close(&c);

    fprintf(stderr, "-- HTTP/1.0 + chunked requested: close-delimited\n");
    t_raw_open(&c, app.ep);
    t_raw_sends(&c, "GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    {
        struct t_msg m = {0};
        const char *masked;

        t_raw_read_msg(&c, 0, 0, &m);
        masked = t_msg_head_masked(&m);
        T_BYTES_EQ(masked, strlen(masked),
                   "HTTP/1.0 200 OK\r\nDate: <DATE>\r\nConnection: close\r\n\r\n");
        T_EQ(m.close_delimited, 1);
        T_BYTES_EQ(m.body.p, m.body.len, "hello world");
        t_msg_free(&m);
    }
    t_raw_close(&c);

    fprintf(stderr, "-- HTTP/1.1 Connection: close; later pipelined requests ignored\n");
    t_raw_open(&c2, app.ep);
    {
        int before = app.nreqs;

        t_raw_sends(&c2, "GET /close1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                         "GET /ignored HTTP/1.1\r\nHost: a\r\n\r\n");
        t_expect_response(
            &c2, 0,
            "HTTP/1.1 200 OK\r\nDate: <DATE>\r\nConnection: close\r\nContent-Length: 11\r\n\r\n",
            "hello world");
        t_expect_closed(&c2);
        t_hpump_for(app.evpl, 50);
        T_EQ(app.nreqs, before + 1);
        T_STR_EQ(last_req()->url, "/close1");
    }
    t_raw_close(&c2);

    T_HPUMP(app.evpl, last_req()->req == NULL, 5000);
    t_app_stop(&app);
    fprintf(stderr, "PASS\n");
    return 0;
}
