/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * RPC2 server flow control (docs/BEHAVIOUR.md, RPC2): a connection stops
 * being read while its replies pile up unsent (a client that calls and
 * never reads) or while 1024 of its calls are being served (a handler that
 * answers later); nothing is lost, and every call is answered, in order,
 * once the client reads or the handler replies.  Before, the server read
 * and dispatched everything: a client that never read made it queue
 * replies without bound (1.3 GB for 20,000 calls of 64 KiB results), and
 * held calls were unbounded too.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc2_test_xdr.h"

static struct evpl *t_evpl;

#include "t_rpc2_raw.h"

#define TEXT      4000  /* greeting bytes: calls and replies of ~4 KiB */
#define NCALLS    40000 /* ~160 MB each way */
#define NHOLD     1500  /* calls whose handler holds them */
#define SERVE_MAX 1024  /* RPC2_SERVING_MAX */
#define RECV_LIM  (4u << 20)
#define DEPTH     "evpl_rpc2_queue_depth{role=\"server\",thread=\"0\"}"

static struct RT_V1 sprog;
static int ngreet, nheld;
static struct evpl_rpc2_encoding *held[NHOLD];

static void
s_greet(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Hello *args,
        struct evpl_rpc2_encoding *enc, void *private_data)
{
    Hello r;

    r.id = args->id + 1;
    /* (a long greeting is answered short: inline replies stop at 128 KiB) */
    xdr_set_str_static(&r, greeting, args->greeting.str,
                       args->greeting.len > TEXT ? 4 : args->greeting.len);
    T_EQ(sprog.send_reply_GREET(evpl, NULL, &r, enc), 0);
    ngreet++;
}

static void
s_hold(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Hello *args,
       struct evpl_rpc2_encoding *enc, void *private_data)
{

    T_OK(nheld < NHOLD);
    held[nheld++] = enc;
}

/* n calls of procedure proc, each one record: xid i + 1, Hello{id i,
 * text bytes} (text a multiple of 4) */
static unsigned char *
calls_of(int n, uint32_t proc, uint32_t text, size_t *len)
{
    size_t one = 4 + 40 + 8 + text;
    unsigned char *buf = malloc(one * (size_t) n), *p = buf, *args = malloc(8 + text);

    T_OK(buf != NULL && args != NULL);
    memset(args + 8, 'a', text);
    put32(args + 4, text);
    for (int i = 0; i < n; i++) {
        put32(args, (uint32_t) i);
        put32(p, 0x80000000u | (uint32_t) (one - 4));
        T_EQ(call_msg(p + 4, (uint32_t) i + 1, 2, 0x20001234, 1, proc, 0, 0, args, 8 + text),
             one - 4);
        p += one;
    }
    free(args);
    *len = one * (size_t) n;
    return buf;
}

static unsigned char *
calls(int n, uint32_t proc, size_t *len)
{
    return calls_of(n, proc, TEXT, len);
}

/* Send the rest of buf and read n replies; returns how many had
 * accept_stat PROC_UNAVAIL.  in_order: each is the GREET reply to call
 * i + 1 (xid i + 1, id i + 1, TEXT bytes), in order. */
static int
exchange(int fd, const unsigned char *buf, size_t len, size_t off, int n, int in_order)
{
    static unsigned char in[1 << 16];
    size_t have = 0;
    int got = 0, unavail = 0;
    uint64_t deadline = t_now_ns() + 60000000000ull;

    while (got < n) {
        ssize_t k;

        T_OK(t_now_ns() < deadline);
        if (off < len) {
            k = send(fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (k > 0) {
                off += (size_t) k;
            }
        }
        k = recv(fd, in + have, sizeof(in) - have, MSG_DONTWAIT);
        if (k > 0) {
            have += (size_t) k;
        } else {
            T_OK(k < 0 && errno == EAGAIN);
            evpl_continue(t_evpl);
        }
        /* whole records: mark, xid, REPLY, accepted, verifier, stat, id */
        while (have >= 4) {
            uint32_t mark = get32(in), rl = mark & 0x7fffffffu;

            T_OK(mark & 0x80000000u);
            T_OK(rl + 4 <= sizeof(in));
            if (have < rl + 4) {
                break;
            }
            T_GE(rl, 24);
            T_EQ(get32(in + 8), 1); /* REPLY */
            unavail += get32(in + 24) == 3;
            if (in_order) {
                T_EQ(get32(in + 4), (uint32_t) got + 1);  /* xid */
                T_EQ(get32(in + 24), 0);                  /* SUCCESS */
                T_EQ(get32(in + 28), (uint32_t) got + 1); /* id + 1 */
                T_EQ(get32(in + 32), TEXT);
            }
            got++;
            memmove(in, in + 4 + rl, have - 4 - rl);
            have -= 4 + rl;
        }
    }
    T_EQ(off, len);
    T_EQ(have, 0);
    return unavail;
}

static void
release_held(int from, int to)
{
    for (int i = from; i < to; i++) {
        Hello h = {.id = 0};

        xdr_set_str_static(&h, greeting, "x", 1);
        T_EQ(sprog.send_reply_HOLD(t_evpl, NULL, &h, held[i]), 0);
    }
}

/* Resets the peak resident set (VmHWM); 0, or -1 where the kernel cannot. */
static int
rss_peak_reset(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    int ok;

    if (!f) {
        return -1;
    }
    ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int64_t
rss_kb(const char *field)
{
    char line[256];
    int64_t kb = -1;
    FILE *f = fopen("/proc/self/status", "r");

    T_OK(f != NULL);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, strlen(field)) == 0) {
            kb = strtoll(line + strlen(field), NULL, 10);
        }
    }
    fclose(f);
    T_GE(kb, 0);
    return kb;
}

int
main(void)
{
    struct raw_server rs;
    struct evpl_global_config *config = evpl_global_config_init();
    unsigned char *buf;
    size_t len, off;
    int fd, before;

    signal(SIGPIPE, SIG_IGN);
    evpl_global_config_set_stream_recv_limit(config, RECV_LIM);
    evpl_init(config);
    t_evpl = t_net_loop();
    RT_V1_init(&sprog);
    sprog.recv_call_GREET = s_greet;
    sprog.recv_call_HOLD = s_hold;
    raw_server_start(&rs, &sprog.rpc2);

    /* a client that sends ~160 MB of calls and reads nothing: the server
     * stops reading once 16 MiB of replies waits (plus what the sockets
     * hold), so the client's sends stall long before the end */
    fd = raw_connect(rs.ep);
    buf = calls(NCALLS, 1, &len);
    off = raw_send_until_stalled(fd, buf, len);
    fprintf(stderr, "unread replies: %d calls served, %zu of %zu bytes sent before the stall\n",
            ngreet, off, len);
    T_LT(off, len);
    T_GT(ngreet, 0);
    /* 16 MiB of replies unsent, the server's socket send queue and the
     * client's receive queue (a few MiB each on loopback): far from the
     * 160 MB the calls ask for */
    T_LT((int64_t) ngreet * (TEXT + 40), 48 << 20);
    before = ngreet;
    t_pump_for(t_evpl, 200);
    T_EQ(ngreet, before); /* stalled, not slow */
    /* reading, the client gets every reply, in order */
    T_EQ(exchange(fd, buf, len, off, NCALLS, 1), 0);
    T_EQ(ngreet, NCALLS);
    free(buf);
    close(fd);
    fprintf(stderr, "ok: a client that stops reading is not read; all %d answered once it reads\n",
            NCALLS);

    /* calls held by the handler: at most SERVE_MAX at once per connection */
    fd = raw_connect(rs.ep);
    buf = calls(NHOLD, 6, &len);
    off = raw_send_until_stalled(fd, buf, len);
    T_EQ(off, len); /* 6 MB fit the buffers: the server just stops taking them */
    T_PUMP(t_evpl, nheld == SERVE_MAX, 10000);
    t_pump_for(t_evpl, 200);
    T_EQ(nheld, SERVE_MAX);
    T_EQ(t_metric(DEPTH), SERVE_MAX);
    fprintf(stderr, "held calls: %d of %d taken\n", nheld, NHOLD);
    for (int i = 0; i < NHOLD; i++) {
        Hello h;

        uint64_t deadline = t_now_ns() + 10000000000ull;

        while (i >= nheld) {
            T_OK(t_now_ns() < deadline);
            evpl_continue(t_evpl); /* the rest come as replies free room */
        }
        h.id = (uint32_t) i + 1;
        xdr_set_str_static(&h, greeting, (char *) buf + 52, TEXT);
        T_EQ(sprog.send_reply_HOLD(t_evpl, NULL, &h, held[i]), 0);
    }
    T_EQ(nheld, NHOLD);
    T_EQ(exchange(fd, buf, len, len, NHOLD, 1), 0);
    free(buf);
    close(fd);
    fprintf(stderr, "ok: %d calls in progress at most; all %d answered\n", SERVE_MAX, NHOLD);

    /* released with part of a long call buffered: more than half the
     * receive limit of it, so the pause the hold caused must end on the
     * release, not wait for the buffer to drain (it would not) */
    {
        size_t hl, fl, bl;
        unsigned char *h = calls_of(SERVE_MAX, 6, 100, &hl);
        unsigned char *f = calls_of(1500, 1, 1000, &fl);
        unsigned char *b = calls_of(4, 1, 3900u << 10, &bl);

        nheld = 0;
        ngreet = 0;
        fd = raw_connect(rs.ep);
        raw_send(fd, h, hl);
        T_PUMP(t_evpl, nheld == SERVE_MAX, 10000);
        buf = malloc(fl + bl);
        T_OK(buf != NULL);
        memcpy(buf, f, fl);
        memcpy(buf + fl, b, bl);
        off = raw_send_until_stalled(fd, buf, fl + bl);
        T_EQ(ngreet, 0);

        release_held(0, SERVE_MAX);
        T_EQ(exchange(fd, buf, fl + bl, off, SERVE_MAX + 1500 + 4, 0), 0);
        T_EQ(ngreet, 1504);
        free(h);
        free(f);
        free(b);
        free(buf);
        close(fd);
    }
    fprintf(stderr, "ok: a long call half buffered when a hold ends is read on\n");

    /* the client sends calls behind held ones and shuts its side: the
     * connection closes, and the calls it held back go with it (their
     * replies could not be sent; serving them all would undo the hold) */
    {
        size_t hl, gl;
        unsigned char *h = calls_of(SERVE_MAX, 6, 100, &hl);
        unsigned char *g = calls_of(10, 1, 100, &gl);
        uint64_t deadline = t_now_ns() + 10000000000ull;
        char byte;

        nheld = 0;
        ngreet = 0;
        fd = raw_connect(rs.ep);
        raw_send(fd, h, hl);
        raw_send(fd, g, gl);
        T_PUMP(t_evpl, nheld == SERVE_MAX, 10000);
        t_pump_for(t_evpl, 100);
        T_EQ(ngreet, 0);
        T_EQ(shutdown(fd, SHUT_WR), 0);
        for (;;) {
            ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);

            if (n == 0 || (n < 0 && errno == ECONNRESET)) {
                break;
            }
            T_OK(n < 0 && errno == EAGAIN);
            T_OK(t_now_ns() < deadline);
            evpl_continue(t_evpl); /* until the server closes */
        }
        t_pump_for(t_evpl, 50);
        T_EQ(ngreet, 0);
        T_EQ(t_metric(DEPTH), SERVE_MAX);
        release_held(0, SERVE_MAX); /* to a connection gone: dropped */
        T_EQ(t_metric(DEPTH), 0);
        free(h);
        free(g);
        close(fd);
    }
    fprintf(stderr, "ok: calls held back go with a client that shuts its side\n");

    /* one call in 1-byte fragments (RFC 5531 §11 allows any): what it
     * costs follows its 2 MiB, not its 2 million fragments (one iovec of
     * 24 bytes each and the receive buffers they pinned: ~50 MB more) */
    {
        uint32_t text = 2u << 20;
        size_t one, cl, wl = 0;
        unsigned char *c = calls_of(1, 1, text, &cl), *w;
        int64_t base;
        int measured;

        one = cl - 4;
        w = malloc(one * 5);
        T_OK(w != NULL);
        for (size_t i = 0; i < one; i++) {
            put32(w + wl, (i + 1 == one ? 0x80000000u : 0) | 1u);
            w[wl + 4] = c[4 + i];
            wl += 5;
        }
        ngreet = 0;
        fd = raw_connect(rs.ep);
        base = rss_kb("VmRSS:");
        measured = rss_peak_reset() == 0;
        T_EQ(exchange(fd, w, wl, 0, 1, 0), 0);
        T_EQ(ngreet, 1);
        if (measured) {
            fprintf(stderr, "%zu fragments: peak RSS %lld KiB over %lld KiB\n", one,
                    (long long) (rss_kb("VmHWM:") - base), (long long) base);
            T_LT(rss_kb("VmHWM:") - base, 24 << 10);
        } else {
            fprintf(stderr, "%zu fragments answered; no peak RSS here (clear_refs)\n", one);
        }
        free(c);
        free(w);
        close(fd);
    }
    fprintf(stderr, "ok: a record of tiny fragments costs what its bytes do\n");

    raw_server_stop(&rs);
    evpl_endpoint_close(rs.ep);
    evpl_destroy(t_evpl);
    fprintf(stderr, "PASS\n");
    return 0;
}
