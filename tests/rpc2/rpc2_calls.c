/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * RPC2 calls over one protocol (T_PROTO; rpc2.md §11 statements 1-4, 6,
 * 8-11, 13): arguments and results both ways, AUTH_SYS credentials, the
 * accept_stat errors, strict decoding, zero-copy payloads (read and write
 * chunks on RDMA-capable protocols) without leaking buffers, a reply sent
 * later from a timer, CONN_LOST for calls left unanswered, and the order
 * of connection notifications.
 */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc2_test_xdr.h"
#include "t_net.h"

#define BLOB_SIZE   (1u << 20)
#define BLOB_ROUNDS 12
#define HOLD_CALLS  3

static struct evpl *t_evpl;
static struct RT_V1 sprog;       /* served */
static struct RT_V1 cprog;       /* the same program as a client calls it */
static struct RT_LOOSE_V1 loose; /* looser argument types, higher procedures */
static struct RT_V2 v2;
static struct RT_OTHER_V1 other;

#define DEPTH_SERVER "evpl_rpc2_queue_depth{role=\"server\",thread=\"0\"}"
#define DEPTH_CLIENT "evpl_rpc2_queue_depth{role=\"client\",thread=\"0\"}"

static int tstate, astate; /* addresses only: the private data pointers */

/* ---- notifications ---- */

#define MAX_EVENTS 32
static struct {
    struct evpl_rpc2_conn *conn;
    unsigned int type;
    void *arg;
} events[MAX_EVENTS];
static int nevents;
static int client_lost_at_disconnect = -1;
static struct evpl_rpc2_conn *client_conn;

static int lost;       /* CONN_LOST completions */
static int retry_once; /* a CONN_LOST callback calls again */
static struct evpl_rpc2_conn *retry_conn;

static void
on_notify(struct evpl_rpc2_thread *thread, struct evpl_rpc2_conn *conn, struct evpl_rpc2_notify *n,
          void *arg)
{
    T_OK(nevents < MAX_EVENTS);
    events[nevents].conn = conn;
    events[nevents].type = n->notify_type;
    events[nevents].arg = arg;
    nevents++;
    if (conn == client_conn && n->notify_type == EVPL_RPC2_NOTIFY_DISCONNECTED) {
        client_lost_at_disconnect = lost;
    }
}

/* ---- server handlers ---- */

static char reply_text[128];
static struct evpl_rpc2_encoding *later_enc;
static uint32_t later_id;
static struct evpl_timer later_timer;
static struct evpl_rpc2_encoding *held[HOLD_CALLS];
static int nheld;
static uint64_t server_blob_bytes;

static void
s_greet(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Hello *args,
        struct evpl_rpc2_encoding *enc, void *private_data)
{
    Hello r;

    T_EQ_PTR(private_data, &astate);
    T_EQ(cred->flavor, EVPL_RPC2_AUTH_NONE);
    snprintf(reply_text, sizeof(reply_text), "re: %.*s", (int) args->greeting.len,
             args->greeting.str);
    r.id = args->id + 1;
    xdr_set_str_static(&r, greeting, reply_text, strlen(reply_text));
    T_EQ(sprog.send_reply_GREET(evpl, NULL, &r, enc), 0);
}

static void
s_strict(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Strict *args,
         struct evpl_rpc2_encoding *enc, void *private_data)
{
    Hello r;

    T_OK(args->flag <= 1);
    T_OK(args->c >= RED && args->c <= BLUE);
    T_OK(args->small.len <= 8);
    r.id = args->flag + 10 * (uint32_t) args->c + 100 * args->small.len;
    xdr_set_str_static(&r, greeting, "strict", 6);
    T_EQ(sprog.send_reply_STRICT(evpl, NULL, &r, enc), 0);
}

static int echo_write_chunk = 1; /* calls to s_echo_blob offer a write chunk */

static void
s_echo_blob(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Blob *args,
            struct evpl_rpc2_encoding *enc, void *private_data)
{
    Blob r;
    uint32_t off = 0;

    if (conn->rdma) {
        /* the payload came by RDMA read; the result goes by RDMA write */
        T_OK(enc->read_chunk != NULL);
        T_EQ(enc->read_chunk->length, args->data.length);
        if (echo_write_chunk) {
            T_OK(enc->write_chunk != NULL);
            T_GE(enc->write_chunk->max_length, args->data.length);
        } else {
            T_OK(enc->write_chunk == NULL);
        }
    } else {
        T_OK(enc->read_chunk == NULL);
    }
    /* the portable ownership sequence (rpc2.md §7) */
    evpl_rpc2_encoding_take_read_chunk(enc, NULL, NULL);
    for (int i = 0; i < args->data.niov; i++) {
        const unsigned char *p = evpl_iovec_data(&args->data.iov[i]);

        for (uint32_t j = 0; j < evpl_iovec_length(&args->data.iov[i]); j += 4093) {
            T_EQ(p[j], (unsigned char) (args->tag + off + j));
        }
        off += evpl_iovec_length(&args->data.iov[i]);
    }
    T_EQ(off, args->data.length);
    server_blob_bytes += off;
    r.tag = args->tag;
    /* the reply takes the references (marshalling moves them) */
    xdr_set_ref(&r, data, args->data.iov, args->data.niov, args->data.length);
    T_EQ(sprog.send_reply_ECHO_BLOB(evpl, NULL, &r, enc), 0);
}

static void
s_whoami(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred,
         struct evpl_rpc2_encoding *enc, void *private_data)
{
    Who w;

    memset(&w, 0, sizeof(w));
    w.flavor = cred->flavor;
    if (cred->flavor == EVPL_RPC2_AUTH_SYS) {
        w.uid = cred->authsys.uid;
        w.gid = cred->authsys.gid;
        w.num_gids = cred->authsys.num_gids;
        w.gids = cred->authsys.gids;
        xdr_set_str_static(&w, machine, cred->authsys.machinename,
                           (uint32_t) cred->authsys.machinename_len);
    } else {
        xdr_set_str_static(&w, machine, "", 0);
    }
    T_EQ(sprog.send_reply_WHOAMI(evpl, NULL, &w, enc), 0);
}

static void
later_fire(struct evpl *evpl, struct evpl_timer *timer)
{
    Hello r;

    r.id = later_id * 2;
    xdr_set_str_static(&r, greeting, "later", 5);
    T_EQ(sprog.send_reply_LATER(evpl, NULL, &r, later_enc), 0);
    later_enc = NULL;
}

static void
s_later(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Hello *args,
        struct evpl_rpc2_encoding *enc, void *private_data)
{
    /* the encoding and the arguments stay valid until the reply */
    later_enc = enc;
    later_id = args->id;
    evpl_add_oneshot_timer(evpl, &later_timer, later_fire, 20000);
}

static void
s_hold(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Hello *args,
       struct evpl_rpc2_encoding *enc, void *private_data)
{
    T_OK(nheld < HOLD_CALLS);
    held[nheld++] = enc;
}

/* builtins as the argument and result (rpc2.md §9.4: xdr_string *, bool
 * by value) */
static void
s_shout(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred,
        xdr_string *args, struct evpl_rpc2_encoding *enc, void *private_data)
{
    char up[64];
    xdr_string r;

    T_OK(args->len < sizeof(up));
    for (uint32_t i = 0; i < args->len; i++) {
        up[i] = (char) toupper((unsigned char) args->str[i]);
    }
    r.str = up;
    r.len = args->len;
    T_EQ(sprog.send_reply_SHOUT(evpl, NULL, &r, enc), 0);
}

static void
s_flip(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, xdr_bool args,
       struct evpl_rpc2_encoding *enc, void *private_data)
{
    T_EQ(sprog.send_reply_FLIP(evpl, NULL, !args, enc), 0);
}

/* ---- client callbacks ---- */

struct result {
    int done;
    int status;
    uint32_t id;
    char text[128];
    Who who;
    uint32_t gids[16];
    char machine[256];
};

static void
c_hello(struct evpl *evpl, const struct evpl_rpc2_verf *verf, Hello *reply, int status,
        void *private_data)
{
    struct result *r = private_data;

    T_EQ(r->done, 0); /* exactly one completion per call */
    T_OK(verf != NULL);
    r->done = 1;
    r->status = status;
    if (status == EVPL_RPC2_REPLY_CONN_LOST) {
        lost++;
        if (retry_once) {
            /* a call made on the dying connection from its own CONN_LOST
             * callback completes too (CONN_LOST), before DISCONNECTED */
            static struct result again;
            Hello h = {.id = 77};

            retry_once = 0;
            xdr_set_str_static(&h, greeting, "again", 5);
            cprog.send_call_GREET(&cprog.rpc2, evpl, retry_conn, NULL, &h, 0, 0, NULL, 0, 0,
                                  c_hello, &again);
        }
    }
    if (status == 0) {
        T_OK(reply != NULL);
        r->id = reply->id;
        snprintf(r->text, sizeof(r->text), "%.*s", (int) reply->greeting.len, reply->greeting.str);
    }
}

static void
c_shout(struct evpl *evpl, const struct evpl_rpc2_verf *verf, xdr_string *reply, int status,
        void *private_data)
{
    struct result *r = private_data;

    r->done = 1;
    r->status = status;
    if (status == 0) {
        snprintf(r->text, sizeof(r->text), "%.*s", (int) reply->len, reply->str);
    }
}

static void
c_flip(struct evpl *evpl, const struct evpl_rpc2_verf *verf, xdr_bool reply, int status,
       void *private_data)
{
    struct result *r = private_data;

    r->done = 1;
    r->status = status;
    r->id = reply;
}

static void
c_null(struct evpl *evpl, const struct evpl_rpc2_verf *verf, int status, void *private_data)
{
    struct result *r = private_data;

    T_EQ(r->done, 0);
    T_OK(verf != NULL);
    r->done = 1;
    r->status = status;
}

static void
c_who(struct evpl *evpl, const struct evpl_rpc2_verf *verf, Who *reply, int status,
      void *private_data)
{
    struct result *r = private_data;

    r->done = 1;
    r->status = status;
    if (status == 0) {
        r->who = *reply;
        T_OK(reply->num_gids <= 16);
        if (reply->num_gids) {
            memcpy(r->gids, reply->gids, reply->num_gids * sizeof(uint32_t));
        }
        snprintf(r->machine, sizeof(r->machine), "%.*s", (int) reply->machine.len,
                 reply->machine.str);
    }
}

static int blob_done;
static uint64_t client_blob_bytes;
static int blob_lent;

static uint32_t blob_size = BLOB_SIZE; /* what c_blob expects */

static void
c_blob(struct evpl *evpl, const struct evpl_rpc2_verf *verf, Blob *reply, int status,
       void *private_data)
{
    uint32_t tag = (uint32_t) (uintptr_t) private_data, off = 0;

    T_EQ(status, 0);
    T_EQ(reply->tag, tag);
    T_EQ(reply->data.length, blob_size);
    for (int i = 0; i < reply->data.niov; i++) {
        const unsigned char *p = evpl_iovec_data(&reply->data.iov[i]);

        for (uint32_t j = 0; j < evpl_iovec_length(&reply->data.iov[i]); j += 4093) {
            T_EQ(p[j], (unsigned char) (tag + off + j));
        }
        off += evpl_iovec_length(&reply->data.iov[i]);
    }
    T_EQ(off, blob_size);
    client_blob_bytes += off;
    /* release unless we lent the buffer (rpc2.md §7) */
    if (!blob_lent) {
        for (int i = 0; i < reply->data.niov; i++) {
            evpl_iovec_release(evpl, &reply->data.iov[i]);
        }
    }
    blob_done++;
}

static int blob_lost;

static void
c_blob_lost(struct evpl *evpl, const struct evpl_rpc2_verf *verf, Blob *reply, int status,
            void *private_data)
{
    T_EQ(status, EVPL_RPC2_REPLY_CONN_LOST);
    blob_lost++;
}

/* ---- helpers ---- */

/* BLOB_SIZE bytes, byte i = tag + i, in one buffer */
static void
blob_fill(struct evpl_iovec *iov, uint32_t tag)
{
    unsigned char *p;

    T_EQ(evpl_iovec_alloc(t_evpl, BLOB_SIZE, 8, 1, 0, iov), 1);
    p = evpl_iovec_data(iov);
    for (uint32_t j = 0; j < BLOB_SIZE; j++) {
        p[j] = (unsigned char) (tag + j);
    }
}

static struct result
greet(struct evpl_rpc2_conn *conn, uint32_t id, const char *text)
{
    struct result r = {0};
    Hello h;

    h.id = id;
    xdr_set_str_static(&h, greeting, text, strlen(text));
    cprog.send_call_GREET(&cprog.rpc2, t_evpl, conn, NULL, &h, 0, 0, NULL, 0, 0, c_hello, &r);
    T_EQ(r.done, 0); /* never completed inside the call */
    T_PUMP(t_evpl, r.done, 10000);
    return r;
}

static int
strict_loose(struct evpl_rpc2_conn *conn, uint32_t flag, uint32_t c, uint32_t small_len,
             uint32_t *id)
{
    struct result r = {0};
    static uint8_t bytes[16];
    Loose l;

    l.flag = flag;
    l.c = c;
    l.small.len = small_len;
    l.small.data = bytes;
    loose.send_call_STRICT_LOOSE(&loose.rpc2, t_evpl, conn, NULL, &l, 0, 0, NULL, 0, 0, c_hello,
                                 &r);
    T_PUMP(t_evpl, r.done, 10000);
    if (id) {
        *id = r.id;
    }
    return r.status;
}

/* An echo of BLOB_SIZE bytes in `pieces` iovecs (a read chunk of that
 * many segments on RPC-over-RDMA). */
static void
blob_round_pieces(struct evpl_rpc2_conn *conn, uint32_t tag, struct evpl_iovec *lend, int pieces)
{
    struct evpl_iovec iov[4];
    uint32_t off = 0;
    Blob b;
    int before = blob_done;

    for (int k = 0; k < pieces; k++) {
        uint32_t len = k + 1 < pieces ? BLOB_SIZE / (uint32_t) pieces : BLOB_SIZE - off;
        unsigned char *p;

        T_EQ(evpl_iovec_alloc(t_evpl, len, 8, 1, 0, &iov[k]), 1);
        p = evpl_iovec_data(&iov[k]);
        for (uint32_t j = 0; j < len; j++) {
            p[j] = (unsigned char) (tag + off + j);
        }
        off += len;
    }
    b.tag = tag;
    xdr_set_ref(&b, data, iov, pieces, BLOB_SIZE);
    blob_lent = lend != NULL;
    /* ddp: a read chunk for the argument, a write chunk for the result,
     * where the connection speaks RPC-over-RDMA (ignored on streams) */
    cprog.send_call_ECHO_BLOB(&cprog.rpc2, t_evpl, conn, NULL, &b, 1, BLOB_SIZE + 4096, lend,
                              lend ? 1 : 0, 0, c_blob, (void *) (uintptr_t) tag);
    T_PUMP(t_evpl, blob_done == before + 1, 20000);
}

static void
blob_round(struct evpl_rpc2_conn *conn, uint32_t tag, struct evpl_iovec *lend)
{
    blob_round_pieces(conn, tag, lend, 1);
}

static int
count_events(struct evpl_rpc2_conn *conn, unsigned int type)
{
    int n = 0;

    for (int i = 0; i < nevents; i++) {
        n += events[i].conn == conn && events[i].type == type;
    }
    return n;
}

int
main(void)
{
    struct evpl_global_config *config = evpl_global_config_init();
    struct evpl_rpc2_program *programs[1];
    enum evpl_protocol_id proto;
    struct evpl_rpc2_server *server;
    struct evpl_rpc2_thread *thread;
    struct evpl_rpc2_conn *conn, *sconn = NULL;
    struct evpl_endpoint *ep;
    struct evpl_rpc2_cred cred;
    uint32_t gids[3] = {4, 5, 6}, id;
    struct result r, held_r[HOLD_CALLS];
    int64_t base, slack;

    signal(SIGPIPE, SIG_IGN);
    evpl_global_config_set_tls_verify_peer(config, 0);
    evpl_init(config);
    proto = t_proto(T_NET_KIND_STREAM | T_NET_KIND_CDGRAM);
    t_evpl = t_net_loop();

    RT_V1_init(&sprog);
    RT_V1_init(&cprog);
    RT_LOOSE_V1_init(&loose);
    RT_V2_init(&v2);
    RT_OTHER_V1_init(&other);
    sprog.recv_call_GREET = s_greet;
    sprog.recv_call_STRICT = s_strict;
    sprog.recv_call_ECHO_BLOB = s_echo_blob;
    sprog.recv_call_WHOAMI = s_whoami;
    sprog.recv_call_LATER = s_later;
    sprog.recv_call_HOLD = s_hold;
    sprog.recv_call_SHOUT = s_shout;
    sprog.recv_call_FLIP = s_flip;
    programs[0] = &sprog.rpc2;

    server = evpl_rpc2_server_init(programs, 1);
    T_OK(server != NULL);
    T_OK(sprog.rpc2.send_reply_dispatch != NULL); /* set by server_init */
    ep = t_endpoint(proto);
    T_EQ(evpl_rpc2_server_start(server, proto, ep), 0);
    thread = evpl_rpc2_thread_init(t_evpl, programs, 1, on_notify, &tstate);
    evpl_rpc2_server_attach(thread, server, &astate);
    /* core.md §7: the thread's evpl_rpc2_queue_depth series (the first
     * rpc2 thread of this process: id 0) */
    T_EQ(t_metric(DEPTH_SERVER), 0);
    T_EQ(t_metric(DEPTH_CLIENT), 0);

    conn = evpl_rpc2_client_connect(thread, proto, ep, NULL, 0, NULL);
    T_OK(conn != NULL);
    client_conn = conn;
    T_EQ(conn->thread == thread, 1);
    T_EQ(conn->protocol, proto);
    T_EQ(conn->rdma, !evpl_protocol_is_stream(proto));
    /* RDMA CM cuts its posted receives from buffers of its own, back to
     * back: as receives complete and are posted again, the buffer being
     * cut moves on, so a couple more can be in use than at the baseline
     * (before, receives were cut from the loop's current buffer and each
     * pinned one that also held a 1 MiB payload: up to the queue depth) */
    slack = t_proto_is_rdmacm(proto) ? 4 : 2;

    /* calls made right after connecting, before CONNECTED: on RDMA CM the
     * keys of the buffers a call advertises exist only once the connection
     * has its device, so the library holds them until then (rpc2.md §3, §6
     * asks applications to wait; we do not need them to).  A call with
     * read, write and reply chunks, and a plain call behind it. */
    {
        struct evpl_iovec iov;
        Blob b;
        Hello h = {.id = 7};

        blob_fill(&iov, 200);
        b.tag = 200;
        xdr_set_ref(&b, data, &iov, 1, BLOB_SIZE);
        blob_lent = 0;
        cprog.send_call_ECHO_BLOB(&cprog.rpc2, t_evpl, conn, NULL, &b, 1, BLOB_SIZE + 4096, NULL, 0,
                                  4096, c_blob, (void *) (uintptr_t) 200);
        memset(&r, 0, sizeof(r));
        xdr_set_str_static(&h, greeting, "early", 5);
        cprog.send_call_GREET(&cprog.rpc2, t_evpl, conn, NULL, &h, 0, 0, NULL, 0, 0, c_hello, &r);
        T_EQ(blob_done + r.done, 0);
        T_PUMP(t_evpl, blob_done == 1 && r.done, 20000);
        T_EQ(r.status, 0);
        T_EQ(r.id, 8);
        T_STR_EQ(r.text, "re: early");
        T_EQ(count_events(conn, EVPL_RPC2_NOTIFY_CONNECTED), 1);
    }
    fprintf(stderr, "ok: calls with chunks made before CONNECTED\n");

    /* 1, 2: a call with arguments and a result */
    r = greet(conn, 42, "Hello from client!");
    T_EQ(r.status, 0);
    T_EQ(r.id, 43);
    T_STR_EQ(r.text, "re: Hello from client!");
    for (int i = 0; i < 50; i++) {
        r = greet(conn, (uint32_t) i, "again");
        T_EQ(r.status, 0);
        T_EQ(r.id, (uint32_t) i + 1);
    }
    fprintf(stderr, "ok: GREET (51 calls)\n");

    /* 4: procedure 0, declared by nobody and handled by nobody, succeeds */
    memset(&r, 0, sizeof(r));
    T_OK(sprog.recv_call_RT_V1_NULL == NULL);
    cprog.send_call_RT_V1_NULL(&cprog.rpc2, t_evpl, conn, NULL, 0, 0, NULL, 0, 0, c_null, &r);
    T_PUMP(t_evpl, r.done, 10000);
    T_EQ(r.status, 0);
    fprintf(stderr, "ok: NULL procedure\n");

    /* 6: AUTH_SYS reaches the handler, machinename counted not terminated */
    memset(&cred, 0, sizeof(cred));
    cred.flavor = EVPL_RPC2_AUTH_SYS;
    cred.authsys.uid = 1000;
    cred.authsys.gid = 100;
    cred.authsys.num_gids = 3;
    cred.authsys.gids = gids;
    cred.authsys.machinename = "host-a-and-more";
    cred.authsys.machinename_len = 6;
    memset(&r, 0, sizeof(r));
    cprog.send_call_WHOAMI(&cprog.rpc2, t_evpl, conn, &cred, 0, 0, NULL, 0, 0, c_who, &r);
    T_PUMP(t_evpl, r.done, 10000);
    T_EQ(r.status, 0);
    T_EQ(r.who.flavor, EVPL_RPC2_AUTH_SYS);
    T_EQ(r.who.uid, 1000);
    T_EQ(r.who.gid, 100);
    T_EQ(r.who.num_gids, 3);
    T_EQ(r.gids[0], 4);
    T_EQ(r.gids[2], 6);
    T_STR_EQ(r.machine, "host-a");
    memset(&r, 0, sizeof(r));
    cprog.send_call_WHOAMI(&cprog.rpc2, t_evpl, conn, NULL, 0, 0, NULL, 0, 0, c_who, &r);
    T_PUMP(t_evpl, r.done, 10000);
    T_EQ(r.status, 0);
    T_EQ(r.who.flavor, EVPL_RPC2_AUTH_NONE);
    fprintf(stderr, "ok: AUTH_SYS and AUTH_NONE credentials\n");

    /* 3, 9: accept_stat errors and strict decoding */
    T_EQ(strict_loose(conn, 1, 2, 8, &id), 0);
    T_EQ(id, 1 + 20 + 800);
    T_EQ(strict_loose(conn, 2, 2, 8, NULL), 4); /* bool 2 */
    T_EQ(strict_loose(conn, 0, 7, 0, NULL), 4); /* enum value not declared */
    T_EQ(strict_loose(conn, 0, 1, 9, NULL), 4); /* opaque<8> of 9 bytes */
    T_EQ(strict_loose(conn, 0, 3, 0, &id), 0);  /* and still usable */
    T_EQ(id, 30);
    memset(&r, 0, sizeof(r));
    {
        Hello h = {.id = 1};

        xdr_set_str_static(&h, greeting, "x", 1);
        loose.send_call_BEYOND(&loose.rpc2, t_evpl, conn, NULL, &h, 0, 0, NULL, 0, 0, c_hello, &r);
        T_PUMP(t_evpl, r.done, 10000);
        T_EQ(r.status, 3); /* PROC_UNAVAIL: above maxproc */
        memset(&r, 0, sizeof(r));
        cprog.send_call_UNSET(&cprog.rpc2, t_evpl, conn, NULL, &h, 0, 0, NULL, 0, 0, c_hello, &r);
        T_PUMP(t_evpl, r.done, 10000);
        T_EQ(r.status, 3); /* PROC_UNAVAIL: no handler */
        memset(&r, 0, sizeof(r));
        v2.send_call_GREET_V2(&v2.rpc2, t_evpl, conn, NULL, &h, 0, 0, NULL, 0, 0, c_hello, &r);
        T_PUMP(t_evpl, r.done, 10000);
        T_EQ(r.status, 2); /* PROG_MISMATCH */
        memset(&r, 0, sizeof(r));
        other.send_call_GREET_OTHER(&other.rpc2, t_evpl, conn, NULL, &h, 0, 0, NULL, 0, 0, c_hello,
                                    &r);
        T_PUMP(t_evpl, r.done, 10000);
        T_EQ(r.status, 1); /* PROG_UNAVAIL */
    }
    fprintf(stderr, "ok: PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS\n");

    /* 10: zero-copy payloads both ways; no buffer left behind */
    /* warm-up: the pools settle (receive buffers posted to a device, the
     * loop's current buffers); the exit check counts every reference too */
    for (uint32_t i = 0; i < 4; i++) {
        blob_round_pieces(conn, 1 + i, NULL, 1 + (int) (i % 3));
    }
    base = t_metric("evpl_allocator_buffers_in_use");
    for (uint32_t i = 0; i < BLOB_ROUNDS; i++) {
        /* one to three pieces: a read chunk of several segments */
        blob_round_pieces(conn, 7 + i, NULL, 1 + (int) (i % 3));
    }
    T_EQ(server_blob_bytes, (uint64_t) (BLOB_ROUNDS + 5) * BLOB_SIZE); /* and the early one */
    T_EQ(client_blob_bytes, (uint64_t) (BLOB_ROUNDS + 5) * BLOB_SIZE);
    T_LE(t_metric("evpl_allocator_buffers_in_use"), base + slack);
    if (conn->rdma) {
        /* a result written into a buffer the caller lends */
        struct evpl_iovec mine;

        T_EQ(evpl_iovec_alloc(t_evpl, BLOB_SIZE + 4096, 8, 1, 0, &mine), 1);
        blob_round(conn, 99, &mine);
        T_OK(memcmp(evpl_iovec_data(&mine), "\x63\x64\x65", 3) == 0); /* 99, 100, 101 */
        evpl_iovec_release(t_evpl, &mine);
    }
    fprintf(stderr, "ok: %d zero-copy echoes of %u bytes%s\n", BLOB_ROUNDS + 4, BLOB_SIZE,
            conn->rdma ? " by RDMA chunks" : "");

    /* chunks larger than a buffer (2 MiB): a 3 MiB argument in two iovecs
     * as a read chunk, echoed into a write chunk of 3 MiB and of 12 MiB
     * (six buffers: more than the request keeps inline, the result in the
     * first two), then as a whole reply into reply chunks of those sizes.
     * On RPC-over-RDMA the read chunk was answered GARBAGE_ARGS and the
     * others completed CONN_LOST, each chunk being asked of one buffer
     * (helper-77). */
    for (int mode = 0; mode < 4; mode++) {
        uint32_t big = 3u << 20, tag = 300 + (uint32_t) mode, off = 0;
        uint32_t chunk = mode & 2 ? 12u << 20 : big + 4096;
        struct evpl_iovec iov[2];
        int before = blob_done;
        Blob b;

        for (int k = 0; k < 2; k++) {
            unsigned char *p;

            T_EQ(evpl_iovec_alloc(t_evpl, big / 2, 8, 1, 0, &iov[k]), 1);
            p = evpl_iovec_data(&iov[k]);
            for (uint32_t j = 0; j < big / 2; j++) {
                p[j] = (unsigned char) (tag + off + j);
            }
            off += big / 2;
        }
        b.tag = tag;
        xdr_set_ref(&b, data, iov, 2, big);
        blob_lent = 0;
        blob_size = big;
        echo_write_chunk = !(mode & 1);
        cprog.send_call_ECHO_BLOB(&cprog.rpc2, t_evpl, conn, NULL, &b, 1,
                                  mode & 1 ? 0 : (int) chunk, NULL, 0, mode & 1 ? (int) chunk : 0,
                                  c_blob, (void *) (uintptr_t) tag);
        T_PUMP(t_evpl, blob_done == before + 1, 20000);
        blob_size = BLOB_SIZE;
        echo_write_chunk = 1;
    }
    if (conn->rdma) {
        /* a chunk of more buffers than a chunk has segments (16) is
         * refused without taking them: RDMA_ERROR, nothing in use after */
        struct result rr = {0};
        Hello h = {.id = 1};
        int64_t in_use = t_metric("evpl_allocator_buffers_in_use");

        xdr_set_str_static(&h, greeting, "w", 1);
        cprog.send_call_GREET(&cprog.rpc2, t_evpl, conn, NULL, &h, 0, 33 << 20, NULL, 0, 0, c_hello,
                              &rr);
        T_PUMP(t_evpl, rr.done, 10000);
        T_EQ(rr.status, EVPL_RPC2_REPLY_RDMA_ERROR);
        T_LE(t_metric("evpl_allocator_buffers_in_use"), in_use);
    }
    fprintf(stderr, "ok: 3 MiB read, write and reply chunks, up to 12 MiB offered\n");

    /* a write chunk offered to a procedure whose result has no payload is
     * left unused: the library releases it (one 2 MiB buffer each here) */
    base = -1;
    for (int i = 0; i < 12; i++) {
        Hello h = {.id = (uint32_t) i};

        memset(&r, 0, sizeof(r));
        xdr_set_str_static(&h, greeting, "w", 1);
        cprog.send_call_GREET(&cprog.rpc2, t_evpl, conn, NULL, &h, 0, 2 * 1024 * 1024 - 64, NULL, 0,
                              0, c_hello, &r);
        T_PUMP(t_evpl, r.done, 10000);
        T_EQ(r.status, 0);
        if (i == 3) {
            base = t_metric("evpl_allocator_buffers_in_use"); /* after a warm-up */
        }
    }
    T_LE(t_metric("evpl_allocator_buffers_in_use"), base + slack);

    /* builtin argument and result types */
    memset(&r, 0, sizeof(r));
    {
        xdr_string arg = {.len = 5, .str = (char *) "quiet"};

        cprog.send_call_SHOUT(&cprog.rpc2, t_evpl, conn, NULL, &arg, 0, 0, NULL, 0, 0, c_shout, &r);
    }
    T_PUMP(t_evpl, r.done, 10000);
    T_EQ(r.status, 0);
    T_STR_EQ(r.text, "QUIET");
    for (uint32_t b = 0; b < 2; b++) {
        memset(&r, 0, sizeof(r));
        r.id = 7;
        cprog.send_call_FLIP(&cprog.rpc2, t_evpl, conn, NULL, b, 0, 0, NULL, 0, 0, c_flip, &r);
        T_PUMP(t_evpl, r.done, 10000);
        T_EQ(r.status, 0);
        T_EQ(r.id, !b);
    }
    fprintf(stderr, "ok: string and bool as argument and result\n");

    /* 11: a reply sent later, from a timer */
    memset(&r, 0, sizeof(r));
    {
        Hello h = {.id = 21};

        xdr_set_str_static(&h, greeting, "wait", 4);
        cprog.send_call_LATER(&cprog.rpc2, t_evpl, conn, NULL, &h, 0, 0, NULL, 0, 0, c_hello, &r);
    }
    T_EQ(t_metric(DEPTH_CLIENT), 1);
    T_PUMP(t_evpl, later_enc != NULL, 10000);
    T_EQ(t_metric(DEPTH_SERVER), 1); /* held until the timer replies */
    T_PUMP(t_evpl, r.done, 10000);
    T_EQ(t_metric(DEPTH_SERVER), 0);
    T_EQ(t_metric(DEPTH_CLIENT), 0);
    T_EQ(r.status, 0);
    T_EQ(r.id, 42);
    T_STR_EQ(r.text, "later");
    fprintf(stderr, "ok: asynchronous reply\n");

    /* 13 (server side so far): ACCEPTED, then CONNECTED */
    for (int i = 0; i < nevents; i++) {
        if (events[i].conn != conn && events[i].type == EVPL_RPC2_NOTIFY_ACCEPTED) {
            int j = i + 1;

            sconn = events[i].conn;
            T_EQ_PTR(events[i].arg, &astate);
            /* its next event is CONNECTED */
            while (j < nevents && events[j].conn != sconn) {
                j++;
            }
            T_OK(j < nevents);
            T_EQ(events[j].type, EVPL_RPC2_NOTIFY_CONNECTED);
        }
    }
    T_OK(sconn != NULL);
    T_EQ(count_events(sconn, EVPL_RPC2_NOTIFY_ACCEPTED), 1);
    T_EQ(count_events(sconn, EVPL_RPC2_NOTIFY_CONNECTED), 1);
    T_EQ(count_events(conn, EVPL_RPC2_NOTIFY_CONNECTED), 1);
    T_EQ(count_events(conn, EVPL_RPC2_NOTIFY_ACCEPTED), 0);

    /* xids wrap (next_xid is public: set as if 2^32 calls had gone by)
     * and never repeat one still pending: a GREET made with the xid of a
     * HOLD the server keeps must not take the HOLD's reply, nor the HOLD
     * the GREET's.  (A repeated xid completed the later call with the
     * earlier one's reply and left the earlier one waiting for ever.) */
    {
        struct result a = {0}, b = {0};
        Hello h = {.id = 10};
        uint32_t x = UINT32_MAX;

        conn->next_xid = x;
        xdr_set_str_static(&h, greeting, "first", 5);
        cprog.send_call_GREET(&cprog.rpc2, t_evpl, conn, NULL, &h, 0, 0, NULL, 0, 0, c_hello, &a);
        T_EQ(conn->next_xid, 1); /* 0 is skipped */
        conn->next_xid = x;      /* x is still pending */
        h.id = 20;
        xdr_set_str_static(&h, greeting, "hold", 4);
        cprog.send_call_HOLD(&cprog.rpc2, t_evpl, conn, NULL, &h, 0, 0, NULL, 0, 0, c_hello, &b);
        T_PUMP(t_evpl, a.done && nheld == 1, 10000);
        T_EQ(a.status, 0);
        T_EQ(a.id, 11);
        T_STR_EQ(a.text, "re: first");
        t_pump_for(t_evpl, 20);
        T_EQ(b.done, 0);
        h.id = 99;
        xdr_set_str_static(&h, greeting, "held", 4);
        T_EQ(sprog.send_reply_HOLD(t_evpl, NULL, &h, held[0]), 0);
        T_PUMP(t_evpl, b.done, 10000);
        T_EQ(b.status, 0);
        T_EQ(b.id, 99);
        T_STR_EQ(b.text, "held");
        nheld = 0;
    }
    fprintf(stderr, "ok: xids wrap past pending calls\n");

    /* 8: calls outstanding when the connection closes: CONN_LOST each,
     * then DISCONNECTED */
    memset(held_r, 0, sizeof(held_r));
    for (int i = 0; i < HOLD_CALLS; i++) {
        Hello h = {.id = (uint32_t) i};

        xdr_set_str_static(&h, greeting, "hold", 4);
        cprog.send_call_HOLD(&cprog.rpc2, t_evpl, conn, NULL, &h, 0, 0, NULL, 0, 0, c_hello,
                             &held_r[i]);
    }
    T_PUMP(t_evpl, nheld == HOLD_CALLS, 10000);
    T_EQ(t_metric(DEPTH_SERVER), HOLD_CALLS);
    T_EQ(t_metric(DEPTH_CLIENT), HOLD_CALLS);
    retry_once = 1;
    retry_conn = conn;
    evpl_rpc2_client_disconnect(thread, conn);
    T_PUMP(t_evpl,
           count_events(conn, EVPL_RPC2_NOTIFY_DISCONNECTED) == 1 &&
               count_events(sconn, EVPL_RPC2_NOTIFY_DISCONNECTED) == 1,
           10000);
    for (int i = 0; i < HOLD_CALLS; i++) {
        T_EQ(held_r[i].done, 1);
        T_EQ(held_r[i].status, EVPL_RPC2_REPLY_CONN_LOST);
    }
    T_EQ(client_lost_at_disconnect, HOLD_CALLS + 1); /* and the call made from a callback */
    /* replies to calls whose connection is gone are dropped */
    for (int i = 0; i < HOLD_CALLS; i++) {
        Hello h = {.id = 0};

        xdr_set_str_static(&h, greeting, "late", 4);
        T_EQ(sprog.send_reply_HOLD(t_evpl, NULL, &h, held[i]), 0);
    }
    t_pump_for(t_evpl, 50);
    T_EQ(t_metric(DEPTH_SERVER), 0);
    T_EQ(t_metric(DEPTH_CLIENT), 0);
    T_EQ(count_events(conn, EVPL_RPC2_NOTIFY_DISCONNECTED), 1);
    T_EQ(count_events(sconn, EVPL_RPC2_NOTIFY_DISCONNECTED), 1);
    for (int i = 0; i < nevents; i++) {
        if (events[i].type != EVPL_RPC2_NOTIFY_ACCEPTED) {
            T_EQ_PTR(events[i].arg, &tstate);
        }
    }
    fprintf(stderr, "ok: CONN_LOST x%d before DISCONNECTED; notifications in order\n", HOLD_CALLS);

    /* a call with chunks on a connection closed before CONNECTED: it
     * completes with CONN_LOST and its buffers go back (the exit leak
     * check) */
    {
        struct evpl_rpc2_conn *early;
        struct evpl_iovec iov;
        Blob b;

        early = evpl_rpc2_client_connect(thread, proto, ep, NULL, 0, NULL);
        T_OK(early != NULL);
        blob_fill(&iov, 9);
        b.tag = 9;
        xdr_set_ref(&b, data, &iov, 1, BLOB_SIZE);
        cprog.send_call_ECHO_BLOB(&cprog.rpc2, t_evpl, early, NULL, &b, 1, BLOB_SIZE + 4096, NULL,
                                  0, 4096, c_blob_lost, NULL);
        evpl_rpc2_client_disconnect(thread, early);
        T_EQ(blob_lost, 0);
        T_PUMP(t_evpl, count_events(early, EVPL_RPC2_NOTIFY_DISCONNECTED) == 1, 10000);
        T_EQ(blob_lost, 1);
        t_pump_for(t_evpl, 50);
        T_EQ(t_metric(DEPTH_CLIENT), 0);
    }
    fprintf(stderr, "ok: a call held for CONNECTED is lost with its connection\n");

    /* 7: a call above rpc2_max_message_size (4 MiB) sent inline: the
     * server closes the connection, the call is CONN_LOST.  On
     * RPC-over-RDMA the bound held for read chunks only and inline
     * messages of any size were served (helper-108). */
    {
        struct evpl_rpc2_conn *over;
        struct evpl_iovec iov[5];
        uint64_t served = server_blob_bytes;
        Blob b;

        over = evpl_rpc2_client_connect(thread, proto, ep, NULL, 0, NULL);
        T_OK(over != NULL);
        T_PUMP(t_evpl, count_events(over, EVPL_RPC2_NOTIFY_CONNECTED) == 1, 10000);
        for (int k = 0; k < 5; k++) {
            blob_fill(&iov[k], 5);
        }
        b.tag = 5;
        xdr_set_ref(&b, data, iov, 5, 5 * BLOB_SIZE);
        blob_lost = 0;
        cprog.send_call_ECHO_BLOB(&cprog.rpc2, t_evpl, over, NULL, &b, 0, 0, NULL, 0, 0,
                                  c_blob_lost, NULL);
        T_PUMP(t_evpl, count_events(over, EVPL_RPC2_NOTIFY_DISCONNECTED) == 1, 20000);
        T_EQ(blob_lost, 1);
        T_EQ_U(server_blob_bytes, served);
        t_pump_for(t_evpl, 50);
        T_EQ(t_metric(DEPTH_CLIENT), 0);
        T_EQ(t_metric(DEPTH_SERVER), 0);
    }
    fprintf(stderr, "ok: an inline call over the size limit closes its connection\n");

    evpl_rpc2_server_stop(server);
    evpl_rpc2_server_detach(thread, server);
    evpl_rpc2_thread_destroy(thread);
    T_EQ(t_metric(DEPTH_SERVER), -1); /* the series went with the thread */
    evpl_rpc2_server_destroy(server);
    evpl_endpoint_close(ep);
    evpl_destroy(t_evpl);
    fprintf(stderr, "PASS\n");
    return 0;
}
