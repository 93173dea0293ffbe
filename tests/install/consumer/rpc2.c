/* SPDX-License-Identifier: LGPL-2.1-only */
/* An RPC client and server built against the installed package. */
#include <stdio.h>
#include <string.h>

#include "rpc2_xdr.h"

static struct PING_V1 prog;
static int done;

static void
ping(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Ping *args,
     struct evpl_rpc2_encoding *enc, void *private_data)
{
    Ping r = *args;

    r.seq++;
    prog.send_reply_PING(evpl, NULL, &r, enc);
}

static void
pong(struct evpl *evpl, const struct evpl_rpc2_verf *verf, Ping *reply, int status, void *arg)
{
    done = status == 0 && reply->seq == 2 && reply->note.len == 5 &&
                   memcmp(reply->note.str, "hello", 5) == 0
               ? 1
               : -1;
}

int
main(void)
{
    struct evpl_rpc2_program *programs[1] = {&prog.rpc2};
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct evpl_rpc2_server *server;
    struct evpl_rpc2_thread *thread;
    struct evpl_rpc2_conn *conn;
    Ping p;

    evpl_init(NULL);
    evpl = evpl_create(NULL);
    PING_V1_init(&prog);
    prog.recv_call_PING = ping;
    ep = evpl_endpoint_create_inproc("install-rpc2");
    server = evpl_rpc2_server_init(programs, 1);
    if (evpl_rpc2_server_start(server, EVPL_STREAM_INPROC, ep) != 0) {
        return 1;
    }
    thread = evpl_rpc2_thread_init(evpl, programs, 1, NULL, NULL);
    evpl_rpc2_server_attach(thread, server, NULL);
    conn = evpl_rpc2_client_connect(thread, EVPL_STREAM_INPROC, ep, NULL, 0, NULL);
    p.seq = 1;
    xdr_set_str_static(&p, note, "hello", 5);
    prog.send_call_PING(&prog.rpc2, evpl, conn, NULL, &p, 0, 0, NULL, 0, 0, pong, NULL);
    while (!done) {
        evpl_continue(evpl);
    }
    evpl_rpc2_client_disconnect(thread, conn);
    evpl_rpc2_server_stop(server);
    evpl_rpc2_server_detach(thread, server);
    evpl_rpc2_thread_destroy(thread);
    evpl_rpc2_server_destroy(server);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
    printf("rpc2 consumer: %s\n", done == 1 ? "ok" : "FAILED");
    return done == 1 ? 0 : 1;
}
