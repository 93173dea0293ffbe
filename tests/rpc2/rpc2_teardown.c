/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Teardown while work is under way.
 *
 * 1. evpl_rpc2_server_destroy while a connection its listener accepted is
 * still queued for an attached loop (rpc2.md §3: destroy "stops it first
 * if needed"; detaching first is asked only before thread_destroy).  The
 * loop hands the connection over after the server is gone: it must not
 * read the freed server (it did, for the program list: helper-108), and
 * the connection is served with the programs the server had.
 * 2. evpl_rpc2_thread_destroy while the application holds a call it will
 *    answer later (rpc2.md §9: a reply "immediately or later"): the reply
 *    after it is dropped, and frees what is left (it read the freed
 *    thread: helper-108); what the call held went back at the destroy.
 */
#include <signal.h>
#include <stdio.h>

#include "rpc2_test_xdr.h"
#include "t_net.h"

static int nev[8];
static struct evpl_rpc2_thread *serving;
static struct RT_V1 sprog, cprog;
static int reply_id = -1, reply_status = 1;

static void
on_notify(struct evpl_rpc2_thread *thread, struct evpl_rpc2_conn *conn,
          struct evpl_rpc2_notify *notify, void *private_data)
{
    if (thread == serving && notify->notify_type < 8) {
        nev[notify->notify_type]++; /* the serving side's */
    }
} /* on_notify */

static void
s_greet(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Hello *args,
        struct evpl_rpc2_encoding *enc, void *private_data)
{
    Hello r = {.id = args->id + 1};

    xdr_set_str_static(&r, greeting, "re", 2);
    T_EQ(sprog.send_reply_GREET(evpl, NULL, &r, enc), 0);
} /* s_greet */

static struct evpl_rpc2_encoding *held;

static void
s_hold(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Hello *args,
       struct evpl_rpc2_encoding *enc, void *private_data)
{
    held = enc;
} /* s_hold */

static void
c_hello(struct evpl *evpl, const struct evpl_rpc2_verf *verf, Hello *reply, int status,
        void *private_data)
{
    reply_status = status;
    reply_id = status == 0 ? (int) reply->id : -1;
} /* c_hello */

int
main(void)
{
    struct evpl_global_config *config = evpl_global_config_init();
    struct evpl_rpc2_program *programs[1], *cprograms[1];
    struct evpl_rpc2_thread *thread, *cthread;
    struct evpl_rpc2_server *server;
    struct evpl_rpc2_conn *conn;
    struct evpl_endpoint *ep;
    struct evpl *evpl, *cevpl;
    Hello h = {.id = 41};

    signal(SIGPIPE, SIG_IGN);
    evpl_init(config);
    evpl = t_net_loop();
    cevpl = t_net_loop();
    RT_V1_init(&sprog);
    RT_V1_init(&cprog);
    sprog.recv_call_GREET = s_greet;
    sprog.recv_call_HOLD = s_hold;
    programs[0] = &sprog.rpc2;
    cprograms[0] = &cprog.rpc2;
    server = evpl_rpc2_server_init(programs, 1);
    T_OK(server != NULL);
    ep = t_endpoint(EVPL_STREAM_SOCKET_TCP);
    T_EQ(evpl_rpc2_server_start(server, EVPL_STREAM_SOCKET_TCP, ep), 0);
    thread = evpl_rpc2_thread_init(evpl, programs, 1, on_notify, NULL);
    serving = thread;
    evpl_rpc2_server_attach(thread, server, NULL);
    t_pump_for(evpl, 20);

    /* a client on a loop of its own connects; the listener's thread
     * accepts and queues the connection for the serving loop, which does
     * not run meanwhile */
    cthread = evpl_rpc2_thread_init(cevpl, cprograms, 1, on_notify, NULL);
    conn = evpl_rpc2_client_connect(cthread, EVPL_STREAM_SOCKET_TCP, ep, NULL, 0, NULL);
    T_OK(conn != NULL);
    t_pump_for(cevpl, 100);
    T_EQ(nev[EVPL_RPC2_NOTIFY_ACCEPTED], 0);
    evpl_rpc2_server_destroy(server);

    /* handed over now, and served with the programs the server had */
    xdr_set_str_static(&h, greeting, "hi", 2);
    cprog.send_call_GREET(&cprog.rpc2, cevpl, conn, NULL, &h, 0, 0, NULL, 0, 0, c_hello, NULL);
    for (uint64_t end = t_now_ns() + 5000000000ull; reply_status > 0 && t_now_ns() < end;) {
        evpl_continue(evpl);
        evpl_continue(cevpl);
    }
    T_EQ(reply_status, 0);
    T_EQ(nev[EVPL_RPC2_NOTIFY_ACCEPTED], 1);
    T_EQ(reply_id, 42);

    /* 2: a call held by the application across the thread's end */
    reply_status = 1;
    h.id = 7;
    cprog.send_call_HOLD(&cprog.rpc2, cevpl, conn, NULL, &h, 0, 0, NULL, 0, 0, c_hello, NULL);
    for (uint64_t end = t_now_ns() + 5000000000ull; !held && t_now_ns() < end;) {
        evpl_continue(evpl);
        evpl_continue(cevpl);
    }
    T_OK(held != NULL);
    evpl_rpc2_thread_destroy(thread); /* the serving side: closes conn */
    for (uint64_t end = t_now_ns() + 5000000000ull; reply_status > 0 && t_now_ns() < end;) {
        evpl_continue(cevpl);
    }
    T_EQ(reply_status, EVPL_RPC2_REPLY_CONN_LOST);
    T_EQ(nev[EVPL_RPC2_NOTIFY_DISCONNECTED], 1);
    h.id = 8;
    T_EQ(sprog.send_reply_HOLD(evpl, NULL, &h, held), 0);
    evpl_continue(evpl);

    evpl_rpc2_thread_destroy(cthread);
    evpl_endpoint_close(ep);
    evpl_destroy(cevpl);
    evpl_destroy(evpl);
    fprintf(stderr, "PASS\n");
    return 0;
}
