/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Calls in both directions on one connection (an NFSv4.1-style back
 * channel, rpc2.md §3 evpl_rpc2_client_connect): the client serves a
 * program too, and the server's handler calls the client back on the
 * connection the call came in on before it replies.  Over T_PROTO.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc2_test_xdr.h"
#include "t_net.h"

static struct RT_V1 fore; /* the server's program */
static struct RT_V1 back; /* the client's: the same program served the other way */
static int cbstate;
static int back_calls, results;
static uint32_t last_id;

struct pending {
    struct evpl_rpc2_encoding *enc;
    uint32_t id;
};

static void
back_done(struct evpl *evpl, const struct evpl_rpc2_verf *verf, Hello *reply, int status,
          void *private_data)
{
    struct pending *p = private_data;
    Hello r;

    T_EQ(status, 0);
    /* the callback's answer goes into the reply of the original call */
    r.id = p->id * 1000 + reply->id;
    xdr_set_str_static(&r, greeting, "fore", 4);
    T_EQ(fore.send_reply_GREET(evpl, NULL, &r, p->enc), 0);
    free(p);
}

static void
fore_greet(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Hello *args,
           struct evpl_rpc2_encoding *enc, void *private_data)
{
    struct pending *p = calloc(1, sizeof(*p));
    Hello h;

    p->enc = enc;
    p->id = args->id;
    h.id = args->id + 1;
    xdr_set_str_static(&h, greeting, "callback", 8);
    /* call the client on this same connection */
    back.send_call_GREET(&back.rpc2, evpl, conn, NULL, &h, 0, 0, NULL, 0, 0, back_done, p);
}

static void
back_greet(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Hello *args,
           struct evpl_rpc2_encoding *enc, void *private_data)
{
    Hello r;

    T_EQ_PTR(private_data, &cbstate);
    T_EQ(args->greeting.len, 8);
    back_calls++;
    r.id = args->id * 2;
    xdr_set_str_static(&r, greeting, "back", 4);
    T_EQ(back.send_reply_GREET(evpl, NULL, &r, enc), 0);
}

static void
done(struct evpl *evpl, const struct evpl_rpc2_verf *verf, Hello *reply, int status,
     void *private_data)
{
    T_EQ(status, 0);
    last_id = reply->id;
    results++;
}

int
main(void)
{
    struct evpl_rpc2_program *fp[1], *bp[1];
    enum evpl_protocol_id proto;
    struct evpl_rpc2_server *server;
    struct evpl_rpc2_thread *thread;
    struct evpl_rpc2_conn *conn;
    struct evpl_endpoint *ep;
    struct evpl *evpl;

    signal(SIGPIPE, SIG_IGN);
    {
        struct evpl_global_config *config = evpl_global_config_init();

        evpl_global_config_set_tls_verify_peer(config, 0);
        evpl_init(config);
    }
    proto = t_proto(T_NET_KIND_STREAM | T_NET_KIND_CDGRAM);
    evpl = t_net_loop();
    RT_V1_init(&fore);
    RT_V1_init(&back);
    fore.recv_call_GREET = fore_greet;
    back.recv_call_GREET = back_greet;
    fp[0] = &fore.rpc2;
    bp[0] = &back.rpc2;
    server = evpl_rpc2_server_init(fp, 1);
    ep = t_endpoint(proto);
    T_EQ(evpl_rpc2_server_start(server, proto, ep), 0);
    thread = evpl_rpc2_thread_init(evpl, NULL, 0, NULL, NULL);
    evpl_rpc2_server_attach(thread, server, NULL);
    conn = evpl_rpc2_client_connect(thread, proto, ep, bp, 1, &cbstate);
    T_OK(conn != NULL);

    for (uint32_t i = 1; i <= 20; i++) {
        Hello h = {.id = i};

        xdr_set_str_static(&h, greeting, "hi", 2);
        fore.send_call_GREET(&fore.rpc2, evpl, conn, NULL, &h, 0, 0, NULL, 0, 0, done, NULL);
        T_PUMP(evpl, results == (int) i, 10000);
        T_EQ(last_id, i * 1000 + (i + 1) * 2);
    }
    T_EQ(back_calls, 20);
    fprintf(stderr, "ok: 20 calls, each with a call back on the same connection\n");

    evpl_rpc2_client_disconnect(thread, conn);
    evpl_rpc2_server_stop(server);
    evpl_rpc2_server_detach(thread, server);
    evpl_rpc2_thread_destroy(thread);
    evpl_rpc2_server_destroy(server);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
    fprintf(stderr, "PASS\n");
    return 0;
}
