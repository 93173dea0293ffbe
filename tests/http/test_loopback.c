/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Our client against our server on one loop (http.md §3, §4, §5): the
 * automatic Host reaches the server as "127.0.0.1:<port>"; a 1 MiB
 * length-framed upload; a 1 MiB chunked upload with a trailer (read by the
 * server at RECEIVE_COMPLETE); a chunked download with trailers (read by
 * the client at RECEIVE_COMPLETE); HEAD; several requests on one keep-alive
 * connection, pipelined; request_type / uri / private_data in every
 * callback; statement 17 on both sides.
 */
#include "t_http.h"

#define BIG   (1u << 20)
#define USEED 0x11u
#define DSEED 0x22u

static struct t_app app;
static struct t_client cl;

static void
server_hook(struct t_app *a, struct t_sreq *r, int type)
{
    struct evpl *evpl = a->evpl;
    struct evpl_http_request *req = r->req;

    if (type == T_EV_DISPATCH) {
        char want[64];

        snprintf(want, sizeof(want), "127.0.0.1:%d", evpl_endpoint_port(a->ep));
        T_STR_EQ(evpl_http_request_header(req, "Host"), want);
        return;
    }
    if (type != EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        if (type == EVPL_HTTP_NOTIFY_WANT_DATA && strcmp(r->url, "/download") == 0) {
            uint64_t off = (uint64_t) r->want_step * 100000u;

            if (off < BIG) {
                uint64_t n = BIG - off < 100000u ? BIG - off : 100000u;
                char *buf = malloc(n);

                t_pattern_fill(DSEED, off, buf, n);
                t_add_bytes(evpl, req, buf, n);
                free(buf);
            } else if (r->want_step < 1000) {
                T_EQ(evpl_http_request_add_trailer(req, "X-Digest", "d1"), 0);
                T_EQ(evpl_http_request_add_trailer(req, "X-Count", "11"), 0);
                evpl_http_request_add_datav(req, NULL, 0);
                r->want_step = 1000;
                return;
            }
            r->want_step++;
        }
        return;
    }
    if (strcmp(r->url, "/download") == 0) {
        evpl_http_server_set_response_chunked(req);
        T_EQ(evpl_http_request_add_header(req, "X-Kind", "download"), 0);
        evpl_http_server_dispatch_default(req, 200);
    } else if (strcmp(r->url, "/head") == 0) {
        evpl_http_server_set_response_length(req, 12345);
        evpl_http_server_dispatch_default(req, 200);
    } else {
        char b[128];
        int64_t bad = -2;

        if (r->body.len == BIG) {
            bad = t_pattern_check(USEED, 0, r->body.p, BIG);
        }
        snprintf(b, sizeof(b), "%.32s len=%zu check=%" PRId64 " trailers=%.64s", r->url,
                 r->body.len, bad, t_buf_str(&r->trailers));
        t_respond_simple(r, 200, b);
    }
}

static char upload[BIG];

static void
upload_hook(struct t_creq *r, int type)
{
    /* the chunked upload: eight 128 KiB pieces from WANT_DATA, then a trailer */
    if (type == EVPL_HTTP_NOTIFY_WANT_DATA) {
        if (r->want_step < 8) {
            t_add_bytes(cl.evpl, r->req, upload + r->want_step * (BIG / 8), BIG / 8);
        } else if (r->want_step == 8) {
            T_EQ(evpl_http_request_add_trailer(r->req, "X-Upload", "done"), 0);
            evpl_http_request_add_datav(r->req, NULL, 0);
        }
        r->want_step++;
    }
}

int
main(void)
{
    struct t_creq *r1, *r2, *r3, *r4;

    t_net_guard(120);
    t_app_start(&app);
    app.hook = server_hook;
    t_pattern_fill(USEED, 0, upload, BIG);

    memset(&cl, 0, sizeof(cl));
    cl.evpl = app.evpl;
    cl.agent = app.agent;
    cl.conn = evpl_http_client_connect(app.agent, EVPL_STREAM_SOCKET_TCP, app.ep,
                                       EVPL_HTTP_VERSION_HTTP1, &cl);
    T_OK(cl.conn != NULL);

    /* four requests dispatched at once on one connection */
    r1 = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_PUT, "/upload-cl");
    evpl_http_client_set_request_length(r1->req, BIG);
    t_add_bytes(cl.evpl, r1->req, upload, BIG);
    t_creq_dispatch(r1);

    r2 = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_POST, "/upload-chunked");
    evpl_http_client_set_request_chunked(r2->req);
    r2->hook = upload_hook;
    t_creq_dispatch(r2);

    r3 = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_GET, "/download");
    r3->probe_name = "x-kind";
    t_creq_dispatch(r3);

    r4 = t_creq_new(&cl, cl.conn, EVPL_HTTP_REQUEST_TYPE_HEAD, "/head");
    r4->probe_name = "content-length";
    t_creq_dispatch(r4);

    T_HPUMP(app.evpl, t_creq_done(r1) && t_creq_done(r2) && t_creq_done(r3) && t_creq_done(r4),
            20000);

    {
        char want[256];

        snprintf(want, sizeof(want), "/upload-cl len=%u check=-1 trailers=", BIG);
        T_BYTES_EQ(r1->body.p, r1->body.len, want);
        snprintf(want, sizeof(want), "/upload-chunked len=%u check=-1 trailers=X-Upload: done\n",
                 BIG);
        T_BYTES_EQ(r2->body.p, r2->body.len, want);
    }
    T_EQ(r1->n_sent, 1);
    T_EQ(r2->n_sent, 1);
    T_GE(r2->n_want, 1);

    T_EQ(r3->status_headers, 200);
    T_STR_EQ(r3->hdr_probe, "download");
    T_EQ_U(r3->body.len, BIG);
    T_EQ(t_pattern_check(DSEED, 0, r3->body.p, BIG), -1);
    T_STR_EQ(t_buf_str(&r3->trailers), "X-Digest: d1\nX-Count: 11\n");

    T_EQ(r4->status_headers, 200);
    T_STR_EQ(r4->hdr_probe, "12345");
    T_EQ_U(r4->body.len, 0);
    T_CEV_EQ(r4, "SHC");

    T_EQ(app.nreqs, 4);
    T_HPUMP(app.evpl, app.reqs[3].req == NULL, 5000);
    for (int i = 0; i < 4; i++) {
        T_EQ(app.reqs[i].n_rcomplete, 1);
    }
    T_EV_EQ(&app.reqs[2], "DCWR");

    evpl_http_client_close(cl.agent, cl.conn);
    t_hpump_for(app.evpl, 30);
    t_client_check_terminal(&cl);
    t_client_free_reqs(&cl);
    t_app_stop(&app);
    fprintf(stderr, "PASS\n");
    return 0;
}
