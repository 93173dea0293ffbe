/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * RPCSEC_GSS on the server (RFC 2203, rpc2.md §8) against a raw TCP peer,
 * with a toy mechanism whose MIC the test computes too: context creation
 * in one and two legs, DATA calls with service none and integrity, the
 * reply verifiers, bad verifiers and checksums, replays, sequence numbers
 * past MAXSEQ, privacy refused, DESTROY, unknown handles, a failing
 * mechanism, and contexts destroyed with their connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc2_test_xdr.h"
#include <evpl/evpl_rpc2_gss.h>

#define MIC_LEN 8

static struct evpl *t_evpl;

#include "t_rpc2_raw.h"
static struct RT_V1 sprog;
static int accept_fail, legs_needed = 1;
static int contexts_alive, destroyed;
static char seen_principal[256];
static uint32_t seen_service;

/* ---- the toy mechanism ---- */

static void
toy_mic(const void *msg, size_t len, uint8_t out[MIC_LEN])
{
    const uint8_t *p = msg;
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    for (int i = 0; i < MIC_LEN; i++) {
        out[i] = (uint8_t) (h >> (56 - 8 * i));
    }
}

struct toy_ctx {
    int legs;
};

static int
toy_accept(void *arg, void **ctx, const void *in, size_t in_len, void **out, size_t *out_len,
           int *complete, char *principal, size_t principal_sz)
{
    struct toy_ctx *c = *ctx;

    if (!c) {
        c = calloc(1, sizeof(*c));
        *ctx = c;
        contexts_alive++;
    }
    c->legs++;
    *out = malloc(5);
    memcpy(*out, "TOKEN", 5); /* not a multiple of 4: padded on the wire */
    *out_len = 5;
    if (accept_fail) {
        return -1; /* with a token: it must not be sent, nor leak */
    }
    *complete = c->legs >= legs_needed;
    if (*complete) {
        snprintf(principal, principal_sz, "alice@EXAMPLE.TEST");
    }
    return 0;
}

static int
toy_get_mic(void *arg, void *ctx, const void *msg, size_t len, void **mic, size_t *mic_len)
{
    *mic = malloc(MIC_LEN);
    toy_mic(msg, len, *mic);
    *mic_len = MIC_LEN;
    return 0;
}

static int
toy_verify_mic(void *arg, void *ctx, const void *msg, size_t len, const void *mic, size_t mic_len)
{
    uint8_t want[MIC_LEN];

    toy_mic(msg, len, want);
    return mic_len == MIC_LEN && memcmp(want, mic, MIC_LEN) == 0 ? 0 : -1;
}

static int
toy_wrap(void *arg, void *ctx, const void *in, size_t in_len, void **out, size_t *out_len)
{
    return -1;
}

static void
toy_destroy(void *arg, void *ctx)
{
    free(ctx);
    contexts_alive--;
    destroyed++;
}

static const struct evpl_rpc2_gss_provider toy = {
    .accept = toy_accept,
    .get_mic = toy_get_mic,
    .verify_mic = toy_verify_mic,
    .wrap = toy_wrap,
    .unwrap = toy_wrap,
    .destroy = toy_destroy,
};

static void
s_greet(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Hello *args,
        struct evpl_rpc2_encoding *enc, void *private_data)
{
    Hello r;

    T_EQ(cred->flavor, EVPL_RPC2_AUTH_RPCSEC_GSS);
    snprintf(seen_principal, sizeof(seen_principal), "%s", cred->gss.principal);
    seen_service = cred->gss.service;
    r.id = args->id + 1;
    xdr_set_str_static(&r, greeting, args->greeting.str, args->greeting.len);
    T_EQ(sprog.send_reply_GREET(evpl, NULL, &r, enc), 0);
}

/* ---- a raw peer ---- */

static uint8_t *
put_opaque(uint8_t *p, const void *d, uint32_t len)
{
    p = put32(p, len);
    if (len) {
        memcpy(p, d, len);
    }
    p += len;
    while (len & 3) {
        *p++ = 0;
        len++;
    }
    return p;
}

/* One reply record within ms (its body, without the mark), or -1. */
static int
raw_reply(int fd, uint8_t *buf, size_t max, unsigned int ms)
{
    size_t have = 0, want = 4;
    uint64_t deadline = t_now_ns() + (uint64_t) ms * 1000000ull;

    while (have < want) {
        ssize_t n = recv(fd, buf + have, want - have, 0);

        if (n > 0) {
            have += (size_t) n;
            if (have == 4 && want == 4) {
                want = 4 + (get32(buf) & 0x7fffffffu);
                T_OK(want <= max);
            }
            continue;
        }
        T_OK(n < 0 && errno == EAGAIN);
        if (t_now_ns() > deadline) {
            T_EQ(have, 0);
            return -1;
        }
        evpl_continue(t_evpl);
    }
    memmove(buf, buf + 4, want - 4);
    return (int) want - 4;
}

struct call {
    uint32_t xid, gproc, seq, svc, proc;
    const uint8_t *handle;
    uint32_t hlen;
    int bad_verifier;
    const uint8_t *args;
    uint32_t args_len;
    int integrity_bad_seq, integrity_bad_mic;
};

/* Send a call with an RPCSEC_GSS credential; the verifier is the toy MIC
 * of the header (or AUTH_NONE for context creation). */
static void
gss_send(int fd, const struct call *c)
{
    uint8_t msg[2048], *p = msg + 4, *cred_len, mic[MIC_LEN];

    p = put32(p, c->xid);
    p = put32(p, 0);
    p = put32(p, 2);
    p = put32(p, 0x20001234);
    p = put32(p, 1);
    p = put32(p, c->proc);
    p = put32(p, EVPL_RPC2_AUTH_RPCSEC_GSS);
    cred_len = p;
    p += 4;
    p = put32(p, 1); /* version */
    p = put32(p, c->gproc);
    p = put32(p, c->seq);
    p = put32(p, c->svc);
    p = put_opaque(p, c->handle, c->hlen);
    put32(cred_len, (uint32_t) (p - cred_len - 4));
    if (c->gproc == 1 || c->gproc == 2) {
        p = put32(p, 0);
        p = put32(p, 0);
    } else {
        toy_mic(msg + 4, (size_t) (p - msg - 4), mic);
        if (c->bad_verifier) {
            mic[0] ^= 1;
        }
        p = put32(p, EVPL_RPC2_AUTH_RPCSEC_GSS);
        p = put_opaque(p, mic, MIC_LEN);
    }
    if (c->svc == EVPL_RPC2_GSS_SVC_INTEGRITY && c->gproc == 0) {
        uint8_t body[512], *b = body;

        b = put32(b, c->integrity_bad_seq ? c->seq + 1 : c->seq);
        memcpy(b, c->args, c->args_len);
        b += c->args_len;
        p = put_opaque(p, body, (uint32_t) (b - body));
        toy_mic(body, (size_t) (b - body), mic);
        if (c->integrity_bad_mic) {
            mic[3] ^= 0x10;
        }
        p = put_opaque(p, mic, MIC_LEN);
    } else if (c->args_len) {
        memcpy(p, c->args, c->args_len);
        p += c->args_len;
    }
    put32(msg, 0x80000000u | (uint32_t) (p - msg - 4));
    raw_send(fd, msg, (size_t) (p - msg));
}

static const uint8_t greet_args[] = {0, 0, 0, 7, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0};
static const uint8_t token_args[] = {0, 0, 0, 3, 'a', 'b', 'c', 0};

/* Establish a context; returns the handle length (handle in *handle). */
static uint32_t
establish(int fd, uint8_t *handle, uint32_t *xid)
{
    uint8_t r[1024], seqw[4], mic[MIC_LEN];
    struct call c = {.gproc = 1, .svc = 1, .args = token_args, .args_len = sizeof(token_args)};
    uint32_t hlen = 0;
    int n;

    for (int leg = 0; leg < legs_needed; leg++) {
        c.xid = (*xid)++;
        c.gproc = leg == 0 ? 1 : 2;
        c.handle = handle;
        c.hlen = hlen;
        gss_send(fd, &c);
        n = raw_reply(fd, r, sizeof(r), 5000);
        T_OK(n > 0);
        T_EQ(get32(r + 8), 0); /* MSG_ACCEPTED */
        if (leg + 1 < legs_needed) {
            T_EQ(get32(r + 12), 0); /* verifier: AUTH_NONE until complete */
            T_EQ(get32(r + 20), 0); /* SUCCESS */
            hlen = get32(r + 24);
            memcpy(handle, r + 28, hlen);
            T_EQ(get32(r + 28 + hlen), 1); /* CONTINUE_NEEDED */
            continue;
        }
        /* verifier: the MIC of the window */
        T_EQ(get32(r + 12), EVPL_RPC2_AUTH_RPCSEC_GSS);
        T_EQ(get32(r + 16), MIC_LEN);
        put32(seqw, 64);
        toy_mic(seqw, 4, mic);
        T_OK(memcmp(r + 20, mic, MIC_LEN) == 0);
        T_EQ(get32(r + 28), 0); /* SUCCESS */
        hlen = get32(r + 32);
        T_OK(hlen > 0 && hlen <= 32);
        memcpy(handle, r + 36, hlen);
        T_EQ(get32(r + 36 + hlen), 0);  /* GSS_S_COMPLETE */
        T_EQ(get32(r + 44 + hlen), 64); /* window */
        T_EQ(get32(r + 48 + hlen), 5);  /* the mechanism's token */
        T_OK(memcmp(r + 52 + hlen, "TOKEN\0\0\0", 8) == 0);
    }
    return hlen;
}

/* A DATA call of GREET; returns the reply length (-1: none). */
static int
data_call(int fd, struct call *c, uint8_t *r, size_t max, unsigned int ms)
{
    c->gproc = 0;
    c->proc = 1;
    c->args = greet_args;
    c->args_len = sizeof(greet_args);
    gss_send(fd, c);
    return raw_reply(fd, r, max, ms);
}

static void
check_reply_verifier(const uint8_t *r, uint32_t seq)
{
    uint8_t s[4], mic[MIC_LEN];

    T_EQ(get32(r + 8), 0);
    T_EQ(get32(r + 12), EVPL_RPC2_AUTH_RPCSEC_GSS);
    T_EQ(get32(r + 16), MIC_LEN);
    put32(s, seq);
    toy_mic(s, 4, mic);
    T_OK(memcmp(r + 20, mic, MIC_LEN) == 0);
}

static void
check_denied(const uint8_t *r, int n, uint32_t stat)
{
    T_EQ(n, 20);
    T_EQ(get32(r + 8), 1);  /* MSG_DENIED */
    T_EQ(get32(r + 12), 1); /* AUTH_ERROR */
    T_EQ(get32(r + 16), stat);
}

int
main(void)
{
    struct raw_server rs;
    uint8_t r[2048], handle[64], h2[64];
    uint32_t hlen, h2len, xid = 1;
    struct call c;
    int fd, n;

    signal(SIGPIPE, SIG_IGN);
    evpl_init(NULL);
    t_evpl = t_net_loop();
    RT_V1_init(&sprog);
    sprog.recv_call_GREET = s_greet;
    raw_server_start(&rs, &sprog.rpc2);
    fd = raw_connect(rs.ep);

    /* without a provider: AUTH_REJECTEDCRED */
    memset(&c, 0, sizeof(c));
    c.xid = xid++;
    c.gproc = 1;
    c.svc = 1;
    c.args = token_args;
    c.args_len = sizeof(token_args);
    gss_send(fd, &c);
    n = raw_reply(fd, r, sizeof(r), 5000);
    check_denied(r, n, 2);

    evpl_rpc2_set_gss_provider(rs.thread, &toy, NULL);

    /* one leg, then a DATA call with service none */
    hlen = establish(fd, handle, &xid);
    memset(&c, 0, sizeof(c));
    c.xid = xid++;
    c.seq = 1;
    c.svc = EVPL_RPC2_GSS_SVC_NONE;
    c.handle = handle;
    c.hlen = hlen;
    n = data_call(fd, &c, r, sizeof(r), 5000);
    T_EQ(n, 24 + MIC_LEN + 16); /* header, verifier, SUCCESS; Hello */
    check_reply_verifier(r, 1);
    T_EQ(get32(r + 28), 0); /* SUCCESS */
    T_EQ(get32(r + 32), 8); /* id + 1 */
    T_STR_EQ(seen_principal, "alice@EXAMPLE.TEST");
    T_EQ(seen_service, EVPL_RPC2_GSS_SVC_NONE);
    fprintf(stderr, "ok: context in one leg, DATA with service none\n");

    /* integrity: arguments and results wrapped with MICs */
    c.xid = xid++;
    c.seq = 2;
    c.svc = EVPL_RPC2_GSS_SVC_INTEGRITY;
    n = data_call(fd, &c, r, sizeof(r), 5000);
    T_OK(n > 0);
    check_reply_verifier(r, 2);
    T_EQ(get32(r + 28), 0);
    {
        uint32_t blen = get32(r + 32);
        uint8_t mic[MIC_LEN];

        T_EQ(blen, 4 + 16);
        T_EQ(get32(r + 36), 2); /* the sequence number leads the body */
        T_EQ(get32(r + 40), 8); /* then the results */
        T_EQ(get32(r + 36 + blen), MIC_LEN);
        toy_mic(r + 36, blen, mic);
        T_OK(memcmp(r + 40 + blen, mic, MIC_LEN) == 0);
    }
    T_EQ(seen_service, EVPL_RPC2_GSS_SVC_INTEGRITY);
    /* a body whose sequence number differs, or whose checksum is bad */
    c.xid = xid++;
    c.seq = 3;
    c.integrity_bad_seq = 1;
    n = data_call(fd, &c, r, sizeof(r), 5000);
    T_OK(n > 0);
    check_reply_verifier(r, 3);
    T_EQ(get32(r + 28), 4); /* GARBAGE_ARGS */
    c.xid = xid++;
    c.seq = 4;
    c.integrity_bad_seq = 0;
    c.integrity_bad_mic = 1;
    n = data_call(fd, &c, r, sizeof(r), 5000);
    T_OK(n > 0);
    T_EQ(get32(r + 28), 4);
    c.integrity_bad_mic = 0;
    fprintf(stderr, "ok: integrity, and its bad checksums\n");

    /* a replay is dropped silently; the window still serves */
    c.svc = EVPL_RPC2_GSS_SVC_NONE;
    c.xid = xid++;
    c.seq = 1;
    T_EQ(data_call(fd, &c, r, sizeof(r), 200), -1);
    c.xid = xid++;
    c.seq = 100;
    T_OK(data_call(fd, &c, r, sizeof(r), 5000) > 0);
    c.xid = xid++;
    c.seq = 30; /* older than the window of 64 below 100 */
    T_EQ(data_call(fd, &c, r, sizeof(r), 200), -1);
    c.xid = xid++;
    c.seq = 50; /* inside it, not seen */
    n = data_call(fd, &c, r, sizeof(r), 5000);
    T_OK(n > 0);
    check_reply_verifier(r, 50);
    /* a sequence number of 2^31 or more: CTXPROBLEM */
    c.xid = xid++;
    c.seq = 0x80000000u;
    n = data_call(fd, &c, r, sizeof(r), 5000);
    check_denied(r, n, 14);
    /* ... unless its header is not signed: CREDPROBLEM, as for any bad
     * verifier (nothing said about the context to an unsigned call) */
    c.xid = xid++;
    c.bad_verifier = 1;
    n = data_call(fd, &c, r, sizeof(r), 5000);
    check_denied(r, n, 13);
    c.bad_verifier = 0;
    /* a bad header verifier */
    c.xid = xid++;
    c.seq = 101;
    c.bad_verifier = 1;
    n = data_call(fd, &c, r, sizeof(r), 5000);
    check_denied(r, n, 13);
    c.bad_verifier = 0;
    /* privacy is refused */
    c.xid = xid++;
    c.seq = 102;
    c.svc = EVPL_RPC2_GSS_SVC_PRIVACY;
    n = data_call(fd, &c, r, sizeof(r), 5000);
    check_denied(r, n, 5);
    fprintf(stderr, "ok: replays dropped, MAXSEQ, bad verifier, privacy refused\n");

    /* a context in two legs; then DESTROY */
    legs_needed = 2;
    h2len = establish(fd, h2, &xid);
    T_EQ(contexts_alive, 2);
    memset(&c, 0, sizeof(c));
    c.xid = xid++;
    c.gproc = 3;
    c.seq = 1;
    c.svc = 1;
    c.handle = h2;
    c.hlen = h2len;
    gss_send(fd, &c);
    n = raw_reply(fd, r, sizeof(r), 5000);
    T_EQ(n, 24 + MIC_LEN);
    check_reply_verifier(r, 1);
    T_EQ(get32(r + 28), 0);
    T_EQ(contexts_alive, 1);
    c.xid = xid++;
    c.seq = 2;
    n = data_call(fd, &c, r, sizeof(r), 5000);
    check_denied(r, n, 13); /* gone */
    /* a second leg naming a context nobody issued: AUTH_BADCRED (RFC 2203
     * §5.2.3.2: no CREDPROBLEM in answer to a context creation) */
    memset(&c, 0, sizeof(c));
    c.xid = xid++;
    c.gproc = 2;
    c.svc = 1;
    c.handle = h2; /* (destroyed above) */
    c.hlen = h2len;
    c.args = token_args;
    c.args_len = sizeof(token_args);
    gss_send(fd, &c);
    n = raw_reply(fd, r, sizeof(r), 5000);
    check_denied(r, n, 1);
    fprintf(stderr, "ok: two legs, DESTROY\n");

    /* a failing mechanism: GSS_S_FAILURE, no token, no context */
    accept_fail = 1;
    legs_needed = 1;
    memset(&c, 0, sizeof(c));
    c.xid = xid++;
    c.gproc = 1;
    c.svc = 1;
    c.args = token_args;
    c.args_len = sizeof(token_args);
    gss_send(fd, &c);
    n = raw_reply(fd, r, sizeof(r), 5000);
    T_OK(n > 0);
    T_EQ(get32(r + 20), 0);         /* SUCCESS: the failure is in the result */
    T_EQ(get32(r + 24), 0);         /* no handle */
    T_EQ(get32(r + 28), 13u << 16); /* GSS_S_FAILURE */
    T_EQ(get32(r + 40), 0);         /* no token */
    T_EQ(contexts_alive, 1);
    accept_fail = 0;

    /* contexts go with the connection that created them */
    close(fd);
    t_pump_for(t_evpl, 100);
    T_EQ(contexts_alive, 0);
    fprintf(stderr, "ok: failures, and contexts destroyed with their connection\n");

    raw_server_stop(&rs);
    evpl_endpoint_close(rs.ep);
    evpl_destroy(t_evpl);
    fprintf(stderr, "PASS (%d contexts destroyed)\n", destroyed);
    return 0;
}
