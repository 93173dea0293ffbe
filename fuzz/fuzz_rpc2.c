/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * libFuzzer target for the RPC2 module: record marking, RPC and
 * RPC-over-RDMA headers, credentials (AUTH_SYS, RPCSEC_GSS) and the
 * generated XDR decoders, through the public API only.  The first input
 * byte picks what the rest is:
 *
 *   bit 0 clear: bytes a peer sends to our server; set: bytes our client
 *         receives after making three calls (its replies)
 *   bit 1 clear: over STREAM_INPROC (a byte stream, record marked); set:
 *         over DATAGRAM_INPROC (RPC-over-RDMA), the rest cut into messages
 *         by a 2-byte big-endian length before each
 *   bits 2-7: stream write size, 3 bytes per step (0: all at once)
 *
 * Invariants (abort on violation): every call the client makes completes
 * exactly once, every call a handler receives is answered, nothing leaks
 * (ASan), nothing hangs.  Built with clang -fsanitize=fuzzer (make fuzz);
 * otherwise main() replays the files named on the command line.
 */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rpc2_test_xdr.h"
#include <evpl/evpl_rpc2_gss.h>

static struct evpl *evpl;
static struct evpl_listener *peer_listener;
static struct evpl_endpoint *stream_ep, *dgram_ep, *peer_stream_ep, *peer_dgram_ep;
static struct evpl_rpc2_server *stream_server, *dgram_server;
static struct evpl_rpc2_thread *thread;
static struct RT_V1 sprog, cprog;
static uint64_t activity;
static int calls_made, calls_done, handled, answered;

static void
check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_rpc2: invariant broken: %s\n", what);
        abort();
    }
}

/* ---- server handlers: answer everything at once ---- */

static void
answer_hello(struct evpl *e, Hello *args, struct evpl_rpc2_encoding *enc,
             int (*send)(struct evpl *, const struct evpl_rpc2_verf *, struct Hello *,
                         struct evpl_rpc2_encoding *))
{
    Hello r;

    activity++;
    handled++;
    r.id = args ? args->id : 0;
    if (args) {
        xdr_set_str_static(&r, greeting, args->greeting.str, args->greeting.len);
    } else {
        xdr_set_str_static(&r, greeting, "", 0);
    }
    if (send(e, NULL, &r, enc) == 0) {
        answered++;
    }
}

static void
s_greet(struct evpl *e, struct evpl_rpc2_conn *c, struct evpl_rpc2_cred *cred, Hello *a,
        struct evpl_rpc2_encoding *enc, void *p)
{
    if (cred->flavor == EVPL_RPC2_AUTH_SYS) {
        check(cred->authsys.num_gids <= EVPL_RPC2_AUTH_SYS_MAX_GIDS, "gids");
        check(cred->authsys.machinename_len >= 0 && cred->authsys.machinename_len <= 255,
              "machinename");
    }
    answer_hello(e, a, enc, sprog.send_reply_GREET);
}

static void
s_strict(struct evpl *e, struct evpl_rpc2_conn *c, struct evpl_rpc2_cred *cred, Strict *a,
         struct evpl_rpc2_encoding *enc, void *p)
{
    check(a->flag <= 1 && a->c >= RED && a->c <= BLUE && a->small.len <= 8, "strict decoding");
    answer_hello(e, NULL, enc, sprog.send_reply_STRICT);
}

static void
s_blob(struct evpl *e, struct evpl_rpc2_conn *c, struct evpl_rpc2_cred *cred, Blob *a,
       struct evpl_rpc2_encoding *enc, void *p)
{
    Blob r;

    activity++;
    handled++;
    evpl_rpc2_encoding_take_read_chunk(enc, NULL, NULL);
    r.tag = a->tag;
    xdr_set_ref(&r, data, a->data.iov, a->data.niov, a->data.length);
    if (sprog.send_reply_ECHO_BLOB(e, NULL, &r, enc) == 0) {
        answered++;
    }
}

static void
s_whoami(struct evpl *e, struct evpl_rpc2_conn *c, struct evpl_rpc2_cred *cred,
         struct evpl_rpc2_encoding *enc, void *p)
{
    Who w;

    activity++;
    handled++;
    memset(&w, 0, sizeof(w));
    w.flavor = cred->flavor;
    xdr_set_str_static(&w, machine, "", 0);
    if (sprog.send_reply_WHOAMI(e, NULL, &w, enc) == 0) {
        answered++;
    }
}

static void
s_later(struct evpl *e, struct evpl_rpc2_conn *c, struct evpl_rpc2_cred *cred, Hello *a,
        struct evpl_rpc2_encoding *enc, void *p)
{
    answer_hello(e, a, enc, sprog.send_reply_LATER);
}

static void
s_hold(struct evpl *e, struct evpl_rpc2_conn *c, struct evpl_rpc2_cred *cred, Hello *a,
       struct evpl_rpc2_encoding *enc, void *p)
{
    answer_hello(e, a, enc, sprog.send_reply_HOLD);
}

/* a mechanism that accepts everything, so GSS parsing is reached */
static int
g_accept(void *arg, void **ctx, const void *in, size_t len, void **out, size_t *out_len,
         int *complete, char *principal, size_t sz)
{
    *ctx = (void *) 1;
    *complete = 1;
    snprintf(principal, sz, "fuzz@TEST");
    return 0;
}

static int
g_mic(void *arg, void *ctx, const void *msg, size_t len, void **mic, size_t *mic_len)
{
    *mic = malloc(4);
    memset(*mic, 0x5a, 4);
    *mic_len = 4;
    return 0;
}

static int
g_verify(void *arg, void *ctx, const void *msg, size_t len, const void *mic, size_t mic_len)
{
    return mic_len == 4 ? 0 : -1;
}

static int
g_wrap(void *arg, void *ctx, const void *in, size_t len, void **out, size_t *out_len)
{
    return -1;
}

static void
g_destroy(void *arg, void *ctx)
{
}

static const struct evpl_rpc2_gss_provider gss = {g_accept, g_mic,  g_verify,
                                                  g_wrap,   g_wrap, g_destroy};

/* ---- client callbacks ---- */

static void
c_hello(struct evpl *e, const struct evpl_rpc2_verf *v, Hello *r, int status, void *p)
{
    activity++;
    calls_done++;
    check(status != 0 || r != NULL, "a result with status 0");
}

static void
c_blob(struct evpl *e, const struct evpl_rpc2_verf *v, Blob *r, int status, void *p)
{
    activity++;
    calls_done++;
    if (status == 0) {
        for (int i = 0; i < r->data.niov; i++) {
            evpl_iovec_release(e, &r->data.iov[i]);
        }
    }
}

static void
c_who(struct evpl *e, const struct evpl_rpc2_verf *v, Who *r, int status, void *p)
{
    activity++;
    calls_done++;
}

/* the client connection ends (the library closes it on bad input) */
static struct evpl_rpc2_conn *client_conn;
static int client_gone;

static void
on_notify(struct evpl_rpc2_thread *t, struct evpl_rpc2_conn *conn, struct evpl_rpc2_notify *n,
          void *private_data)
{
    activity++;
    if (conn == client_conn && n->notify_type == EVPL_RPC2_NOTIFY_DISCONNECTED) {
        client_gone = 1;
        client_conn = NULL;
    }
}

/* ---- the raw peer ---- */

struct peer {
    int up, gone;
    struct evpl_bind *bind;
};

static struct peer peer;

static void
peer_notify(struct evpl *e, struct evpl_bind *bind, struct evpl_notify *n, void *private_data)
{
    struct peer *p = private_data;
    char buf[4096];

    activity++;
    switch (n->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            p->up = 1;
            break;
        case EVPL_NOTIFY_RECV_DATA:
            while (evpl_recv(e, bind, buf, sizeof(buf), 0) > 0) {
            }
            break;
        case EVPL_NOTIFY_RECV_MSG:
            for (unsigned int i = 0; i < n->recv_msg.niov; i++) {
                evpl_iovec_release(e, &n->recv_msg.iovec[i]);
            }
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            p->gone = 1;
            break;
        default:
            break;
    }
}

static void
peer_attach(struct evpl *e, struct evpl_bind *bind, evpl_notify_callback_t *notify_callback,
            evpl_segment_callback_t *segment_callback, void **conn_private_data, void *private_data)
{
    *notify_callback = peer_notify;
    *conn_private_data = &peer;
    peer.up = 1;
    peer.bind = bind;
}

static void
setup(void)
{
    struct evpl_global_config *config = evpl_global_config_init();
    struct evpl_thread_config *tc;
    struct evpl_rpc2_program *programs[1] = {&sprog.rpc2};

    evpl_global_config_set_rpc2_max_message_size(config, 1 << 20);
    evpl_init(config);
    tc = evpl_thread_config_init();
    evpl_thread_config_set_wait_ms(tc, 0); /* passes are counted: never sleep */
    evpl = evpl_create(tc);
    evpl_thread_config_release(tc);
    RT_V1_init(&sprog);
    RT_V1_init(&cprog);
    sprog.recv_call_GREET = s_greet;
    sprog.recv_call_STRICT = s_strict;
    sprog.recv_call_ECHO_BLOB = s_blob;
    sprog.recv_call_WHOAMI = s_whoami;
    sprog.recv_call_LATER = s_later;
    sprog.recv_call_HOLD = s_hold;
    stream_ep = evpl_endpoint_create_inproc("fuzz-rpc2-stream");
    dgram_ep = evpl_endpoint_create_inproc("fuzz-rpc2-dgram");
    peer_stream_ep = evpl_endpoint_create_inproc("fuzz-rpc2-peer-stream");
    peer_dgram_ep = evpl_endpoint_create_inproc("fuzz-rpc2-peer-dgram");
    stream_server = evpl_rpc2_server_init(programs, 1);
    dgram_server = evpl_rpc2_server_init(programs, 1);
    check(evpl_rpc2_server_start(stream_server, EVPL_STREAM_INPROC, stream_ep) == 0, "listen");
    check(evpl_rpc2_server_start(dgram_server, EVPL_DATAGRAM_INPROC, dgram_ep) == 0, "listen");
    thread = evpl_rpc2_thread_init(evpl, programs, 1, on_notify, NULL);
    evpl_rpc2_set_gss_provider(thread, &gss, NULL);
    evpl_rpc2_server_attach(thread, stream_server, NULL);
    evpl_rpc2_server_attach(thread, dgram_server, NULL);
    peer_listener = evpl_listener_create();
    check(evpl_listen(peer_listener, EVPL_STREAM_INPROC, peer_stream_ep) == 0, "listen");
    check(evpl_listen(peer_listener, EVPL_DATAGRAM_INPROC, peer_dgram_ep) == 0, "listen");
}

/* the loop until nothing happens for a while, or a bound */
static void
settle(void)
{
    uint64_t last = activity;
    int quiet = 0;

    for (int i = 0; i < 200000 && quiet < 64; i++) {
        evpl_continue(evpl);
        if (activity != last) {
            last = activity;
            quiet = 0;
        } else {
            quiet++;
        }
    }
}

/* the loop until *flag, up to a second (the listener thread hands over) */
static void
wait_for(const int *flag)
{
    struct timespec t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        evpl_continue(evpl);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (!*flag &&
             (t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 1000000000L);
}

static void
feed(struct evpl_bind *bind, int dgram, const uint8_t *data, size_t size, size_t cut)
{
    size_t off = 0;

    while (off < size && !peer.gone) {
        size_t n;

        if (dgram) {
            if (size - off < 2) {
                break;
            }
            n = (size_t) data[off] << 8 | data[off + 1];
            off += 2;
            if (n > size - off) {
                n = size - off;
            }
            if (n == 0) {
                continue;
            }
        } else {
            n = cut && size - off > cut ? cut : size - off;
        }
        evpl_send(evpl, bind, data + off, (unsigned int) n);
        off += n;
        evpl_continue(evpl);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int client_side, dgram;
    size_t cut;

    if (!evpl) {
        setup();
    }
    if (size < 1) {
        return 0;
    }
    client_side = data[0] & 1;
    dgram = (data[0] >> 1) & 1;
    cut = (size_t) (data[0] >> 2) * 3;
    data++;
    size--;
    memset(&peer, 0, sizeof(peer));
    calls_made = calls_done = handled = answered = 0;

    if (!client_side) {
        peer.bind = evpl_connect(evpl, dgram ? EVPL_DATAGRAM_INPROC : EVPL_STREAM_INPROC, NULL,
                                 dgram ? dgram_ep : stream_ep, peer_notify, NULL, &peer);
        wait_for(&peer.up);
        feed(peer.bind, dgram, data, size, cut);
        settle();
        if (!peer.gone) {
            evpl_close(evpl, peer.bind);
        }
        wait_for(&peer.gone);
        settle();
        check(answered == handled, "every call a handler got is answered");
    } else {
        struct evpl_listener_binding *lb =
            evpl_listener_attach(evpl, peer_listener, peer_attach, NULL);
        struct evpl_rpc2_conn *conn =
            evpl_rpc2_client_connect(thread, dgram ? EVPL_DATAGRAM_INPROC : EVPL_STREAM_INPROC,
                                     dgram ? peer_dgram_ep : peer_stream_ep, NULL, 0, NULL);
        struct evpl_rpc2_cred cred = {.flavor = EVPL_RPC2_AUTH_SYS};
        struct evpl_iovec iov;
        Hello h = {.id = 1};
        Blob b = {.tag = 2};

        check(conn != NULL, "connect");
        client_conn = conn;
        client_gone = 0;
        xdr_set_str_static(&h, greeting, "fuzz", 4);
        cprog.send_call_GREET(&cprog.rpc2, evpl, conn, NULL, &h, 0, 0, NULL, 0, 0, c_hello, NULL);
        check(evpl_iovec_alloc(evpl, 64, 8, 1, 0, &iov) == 1, "alloc");
        memset(evpl_iovec_data(&iov), 'z', 64);
        xdr_set_ref(&b, data, &iov, 1, 64);
        cprog.send_call_ECHO_BLOB(&cprog.rpc2, evpl, conn, NULL, &b, 1, 4096, NULL, 0, 4096, c_blob,
                                  NULL);
        cred.authsys.machinename = "m";
        cred.authsys.machinename_len = 1;
        cprog.send_call_WHOAMI(&cprog.rpc2, evpl, conn, &cred, 0, 0, NULL, 0, 0, c_who, NULL);
        calls_made = 3;
        wait_for(&peer.up);
        if (peer.bind) {
            feed(peer.bind, dgram, data, size, cut);
            settle();
        }
        if (!client_gone) {
            evpl_rpc2_client_disconnect(thread, conn); /* the handle lives until DISCONNECTED */
        }
        while (calls_done < calls_made || !client_gone) {
            evpl_continue(evpl);
        }
        settle();
        if (peer.bind && !peer.gone) {
            evpl_close(evpl, peer.bind);
            wait_for(&peer.gone);
        }
        evpl_listener_detach(evpl, lb);
        check(calls_done == calls_made, "one completion per call");
    }
    if (getenv("FUZZ_VERBOSE")) {
        fprintf(stderr, "%s side %s: %d handled, %d calls completed\n",
                client_side ? "client" : "server", dgram ? "rdma" : "stream", handled, calls_done);
    }
    return 0;
}

#define FUZZ_NAME "fuzz_rpc2"

__attribute__((unused)) static void
fuzz_replay_done(void)
{
    /* (the loop and servers live until exit, as under libFuzzer) */
}

#include "fuzz_replay.h"
