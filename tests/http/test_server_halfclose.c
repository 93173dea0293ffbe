/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A request followed at once by the client's FIN (shutdown(SHUT_WR), as
 * "nc -N" does).  The peer's EOF makes the library close the connection
 * (net.md, peer-initiated close: not a half-close), and what is sent after
 * that is dropped.  http.md §3.1: RESPONSE_COMPLETE means the response was
 * queued to the transport; a connection lost before that gives FAILED with
 * EVPL_HTTP_ERROR_CONN_LOST.  So the application must never be told
 * RESPONSE_COMPLETE for a response that went nowhere: each round ends
 * either with the whole response at the client and RESPONSE_COMPLETE, or
 * with nothing at the client and FAILED.  (Which one depends on whether the
 * EOF is seen in the pass that reads the request: both happen.)
 *
 * The same for a request answered late, from a timer; over HTTP/2 (a raw
 * h2c client played by nghttp2); and for a rejected request line (no
 * dispatch, the 400 may or may not go out, nothing hangs).
 */
#include "t_h2.h"

enum { ROUNDS = 40 };

static struct t_app app;
static int late; /* answer from a timer rather than from RECEIVE_COMPLETE */
static struct evpl_timer timer = {0};
static struct t_sreq *pending;

static void
answer_late(struct evpl *evpl, struct evpl_timer *t)
{
    (void) evpl;
    (void) t;
    if (pending && pending->req) {
        t_respond_simple(pending, 200, "hello world");
    }
    pending = NULL;
} /* answer_late */

static void
hook(struct t_app *a, struct t_sreq *r, int type)
{
    if (type != EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        if ((type == EVPL_HTTP_NOTIFY_FAILED || type == EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE) &&
            pending == r) {
            pending = NULL;
        }
        return;
    }
    if (late) {
        pending = r;
        evpl_add_oneshot_timer(a->evpl, &timer, answer_late, 1000); /* 1 ms */
    } else {
        t_respond_simple(r, 200, "hello world");
    }
} /* hook */

static int
has_response(const struct t_raw *c)
{
    static const char want[] = "HTTP/1.1 200 OK\r\n";

    return c->in.len >= sizeof(want) - 1 && memcmp(c->in.p, want, sizeof(want) - 1) == 0 &&
           c->in.len >= 11 && memcmp(c->in.p + c->in.len - 11, "hello world", 11) == 0;
} /* has_response */

static void
round_trip(int i, int *completed, int *failed)
{
    struct t_raw c;
    struct t_sreq *r;
    int before = app.nreqs;

    t_raw_open(&c, app.ep);
    t_raw_sends(&c, "GET /r HTTP/1.1\r\nHost: x\r\n\r\n");
    t_raw_io(&c);
    T_OK(!t_raw_out_pending(&c));
    T_OK(shutdown(c.fd, SHUT_WR) == 0);
    T_HPUMP(app.evpl, app.nreqs == before + 1 && app.reqs[before].req == NULL, 5000);
    r = &app.reqs[before];
    /* the client reads whatever came until the server's end is closed */
    T_HPUMP(app.evpl, (t_raw_io(&c), t_raw_closed(&c)), 5000);
    if (r->n_rcomplete) {
        if (!has_response(&c)) {
            T_FAIL("round %d: RESPONSE_COMPLETE (events %s), but the client got %zu bytes", i,
                   r->ev, c.in.len);
        }
        ++*completed;
    } else {
        T_EQ(r->n_failed, 1);
        T_EQ(r->failed_status, EVPL_HTTP_ERROR_CONN_LOST);
        if (has_response(&c)) {
            T_FAIL("round %d: FAILED (events %s), but the client got the response", i, r->ev);
        }
        ++*failed;
    }
    t_raw_close(&c);
} /* round_trip */

static void
rounds(int answer_late_)
{
    int completed = 0, failed = 0;

    late = answer_late_;
    for (int i = 0; i < ROUNDS; i++) {
        round_trip(i, &completed, &failed);
    }
    fprintf(stderr,
            "  ok: %s answers: %d complete with the response at the client, %d failed "
            "with nothing there\n",
            late ? "late" : "prompt", completed, failed);
} /* rounds */

#ifdef T_HAVE_NGHTTP2
static void
h2_rounds(void)
{
    int completed = 0, failed = 0;

    late = 0;
    for (int i = 0; i < ROUNDS; i++) {
        struct t_raw raw;
        struct t_h2peer peer;
        struct t_sreq *r;
        struct t_h2s *st;
        int32_t id;
        int before = app.nreqs, got;

        t_raw_open(&raw, app.ep);
        t_h2peer_init(&peer, &raw, 0);
        id = t_h2peer_request(&peer, "GET", "/r", NULL, 0, 0);
        t_h2peer_io(&peer);
        t_raw_io(&raw);
        T_OK(!t_raw_out_pending(&raw));
        T_OK(shutdown(raw.fd, SHUT_WR) == 0);
        peer.active = 0; /* it can send no more: collect raw bytes until the close */
        T_H2PUMP(app.evpl, app.nreqs == before + 1 && app.reqs[before].req == NULL, 5000);
        T_H2PUMP(app.evpl, t_raw_closed(&raw), 5000);
        peer.active = 1;
        t_h2peer_io(&peer); /* (what it queues in reply is never sent) */
        st = t_h2s_get(&peer, id);
        got = st->status == 200 && st->end && st->body.len == 11 &&
              memcmp(st->body.p, "hello world", 11) == 0;
        r = &app.reqs[before];
        if (r->n_rcomplete) {
            if (!got) {
                T_FAIL("h2 round %d: RESPONSE_COMPLETE (events %s), but the client has no "
                       "response (status %d, %zu bytes)",
                       i, r->ev, st->status, st->body.len);
            }
            completed++;
        } else {
            T_EQ(r->n_failed, 1);
            T_EQ(r->failed_status, EVPL_HTTP_ERROR_CONN_LOST);
            if (got) {
                T_FAIL("h2 round %d: FAILED (events %s), but the client got the response", i,
                       r->ev);
            }
            failed++;
        }
        t_h2peer_free(&peer);
        t_raw_close(&raw);
    }
    fprintf(stderr,
            "  ok: %d complete with the response at the client, %d failed with "
            "nothing there\n",
            completed, failed);
} /* h2_rounds */
#endif /* T_HAVE_NGHTTP2 */

int
main(void)
{
    t_net_guard(120);
    t_app_start(&app);
    app.hook = hook;

    fprintf(stderr, "-- request, FIN: answered from RECEIVE_COMPLETE\n");
    rounds(0);
    fprintf(stderr, "-- request, FIN: answered 1 ms later\n");
    rounds(1);
#ifdef T_HAVE_NGHTTP2
    fprintf(stderr, "-- HTTP/2 (h2c) request, FIN: answered from RECEIVE_COMPLETE\n");
    h2_rounds();
#endif

    /* a bad request line and FIN: never dispatched, the connection ends */
    fprintf(stderr, "-- bad request line, FIN\n");
    for (int i = 0; i < ROUNDS; i++) {
        struct t_raw c;
        int before = app.nreqs;

        t_raw_open(&c, app.ep);
        t_raw_sends(&c, i % 2 ? "GET /\r\n" : "FROB / HTTP/1.1\r\nHost: x\r\n\r\n");
        t_raw_io(&c);
        T_OK(shutdown(c.fd, SHUT_WR) == 0);
        T_HPUMP(app.evpl, (t_raw_io(&c), t_raw_closed(&c)), 5000);
        T_EQ(app.nreqs, before);
        t_raw_close(&c);
    }
    fprintf(stderr, "  ok: %d connections closed, none dispatched\n", ROUNDS);

    evpl_remove_timer(app.evpl, &timer);
    t_app_stop(&app);
    fprintf(stderr, "PASS\n");
    return 0;
}
