/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Issue item (g) over every stream protocol: 1,000 connections on one loop
 * (2,000 binds: both ends live here).  Each sends a tagged message, gets it
 * back, and all close with exactly one DISCONNECTED each (net.md §14
 * statements 2, 4).  Needs RLIMIT_NOFILE >= 4096 (skipped otherwise).
 */
/* MATRIX: stream */
/* ALSO_MECH: io_uring */
#include "t_net.h"

#define NMAX 1000
#define N    ((int) t_vm_scale(NMAX, 10)) /* 100 in the VM */

static struct t_conn cl[NMAX];

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct rlimit rl;
    int connected, done;

    t_net_guard(60);
    T_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 4096) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        if (rl.rlim_cur < 4096 || setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            T_SKIP("RLIMIT_NOFILE cannot be raised to 4096");
        }
    }
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.segment = t_segment_be32;
    srv.echo_msgs = 1;
    srv.keep_msgs = 1;
    t_server_start(&srv, evpl, proto, ep, N);

    /* in batches of 16, each accepted and connected before the next: an
     * AF_UNIX non-blocking connect fails with EAGAIN while the backlog is
     * full, and TLS handshakes all started at once finish one after the
     * other (a slow guest took more than the 10 s handshake timeout for
     * the last batch of 100) */
    for (int i = 0; i < N; i++) {
        t_connect(evpl, proto, ep, &cl[i], t_segment_be32);
        if (i % 16 == 15) {
            T_PUMP(evpl,
                   (connected = 0, ({
                        for (int k = 0; k <= i; k++)
                            connected += cl[k].connected;
                    }),
                    srv.n == i + 1 && connected == i + 1),
                   30000);
        }
    }
    {
        uint64_t deadline = t_now_ns() + 30ull * 1000000000ull;
        int failed;

        for (;;) {
            connected = failed = 0;
            for (int i = 0; i < N; i++) {
                connected += cl[i].connected;
                failed += cl[i].disconnected;
            }
            if ((connected == N && srv.n == N) || t_now_ns() > deadline) {
                break;
            }
            evpl_continue(evpl);
        }
        if (connected != N || srv.n != N) {
            int st = 0;

            for (int i = 0; i < N; i++) {
                if (cl[i].disconnected) {
                    st = cl[i].disconnect_status;
                }
            }
            T_FAIL("after 30 s: %d clients connected, %d disconnected (status %d), %d accepted",
                   connected, failed, st, srv.n);
        }
    }
    for (int i = 0; i < N; i++) {
        uint8_t m[8];

        t_put_be32(m, 8);
        t_put_be32(m + 4, (uint32_t) i);
        evpl_send(evpl, cl[i].bind, m, 8);
    }
    T_PUMP(evpl,
           (done = 0, ({
                for (int i = 0; i < N; i++)
                    done += cl[i].nrecv_msg;
            }),
            done == N),
           30000);
    for (int i = 0; i < N; i++) {
        T_EQ(cl[i].nrecv_msg, 1);
        T_EQ(t_get_be32(cl[i].rx + 4), i);
        evpl_close(evpl, cl[i].bind);
    }
    T_PUMP(evpl,
           (done = 0, ({
                for (int i = 0; i < N; i++)
                    done += cl[i].disconnected + srv.conns[i].disconnected;
            }),
            done == 2 * N),
           30000);
    t_pump_for(evpl, 20);
    for (int i = 0; i < N; i++) {
        T_EQ(cl[i].disconnected, 1);
        T_EQ(srv.conns[i].disconnected, 1);
        T_EQ(cl[i].connected, 1);
        T_EQ(srv.conns[i].connected, 1);
        T_EQ(cl[i].errors + srv.conns[i].errors, 0);
        T_EQ(cl[i].cb_after_disconnect + srv.conns[i].cb_after_disconnect, 0);
        t_conn_free(&cl[i]);
    }
    evpl_listener_detach(evpl, srv.binding);
    srv.binding = NULL;
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
