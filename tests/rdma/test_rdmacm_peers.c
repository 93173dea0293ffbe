/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: rdma */
/*
 * RDMA CM against a misbehaving peer process (bad input: a clear error and
 * a closed connection, never a crash, nothing lost elsewhere).  The peer
 * is a child process configured with receive buffers twice ours, so it
 * sends messages larger than our receive buffers:
 *
 *  - its connection A sends one such message: A ends here with an error
 *    (-EMSGSIZE, or -EIO where the device does not say why), having
 *    delivered nothing;
 *  - its connection B then sends 20 ordinary messages: all arrive, intact
 *    and in order, and B stays up;
 *  - the child is then killed (SIGKILL, no close): B ends with a
 *    DISCONNECTED of its own within the CM's timeouts, nothing leaks.
 *
 * Needs an RDMA device: soft-RoCE in the test VM (tests/vm); skips (77)
 * elsewhere.  Both processes set their configuration before anything else
 * (the fork comes first: a verbs context does not survive one).
 */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "../net/t_net.h"

#define NB   20
#define BIG  100000
#define MINE 65536

static void
child(const char *name, int port, int ready_fd)
{
    enum evpl_protocol_id proto;
    struct evpl_global_config *gc = evpl_global_config_init();
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_conn a, b;
    char go, *big = malloc(BIG), msg[1000];

    /* never outlive the test: a failing parent must not leave us running */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(120);
    evpl_global_config_set_max_datagram_size(gc, 2 * MINE);
    evpl_init(gc);
    T_EQ(evpl_protocol_lookup(&proto, name), 0);
    if (read(ready_fd, &go, 1) != 1) {
        _exit(2);
    }
    evpl = t_net_loop();
    ep = evpl_endpoint_create(t_rdma_addr(), port);
    t_connect(evpl, proto, ep, &a, NULL);
    T_PUMP(evpl, a.connected, 10000);
    t_connect(evpl, proto, ep, &b, NULL);
    T_PUMP(evpl, b.connected, 10000);
    memset(big, 'A', BIG);
    evpl_send(evpl, a.bind, big, BIG);
    t_pump_for(evpl, 200);
    for (int k = 0; k < NB; k++) {
        memset(msg, 'a' + k, sizeof(msg));
        evpl_send(evpl, b.bind, msg, sizeof(msg));
    }
    /* run until killed */
    for (;;) {
        evpl_continue(evpl);
    }
}

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    int port, pfd[2], status = 0;
    pid_t pid;
    const char *name = getenv("T_PROTO");

    t_net_guard(90);
    if (!name ||
        (strcmp(name, "DATAGRAM_RDMACM_RC") != 0 && strcmp(name, "STREAM_RDMACM_RC") != 0) ||
        access("/dev/infiniband/rdma_cm", R_OK | W_OK) != 0) {
        fprintf(stderr, "no RDMA CM protocol or device: skipped\n");
        return 77;
    }
    port = t_free_port(SOCK_STREAM);
    T_EQ(pipe(pfd), 0);
    pid = fork();
    T_OK(pid >= 0);
    if (pid == 0) {
        close(pfd[1]);
        child(name, port, pfd[0]);
        _exit(0);
    }
    close(pfd[0]);

    {
        struct evpl_global_config *gc = evpl_global_config_init();

        evpl_global_config_set_max_datagram_size(gc, MINE);
        evpl_init(gc);
    }
    proto = t_proto(T_NET_KIND_STREAM | T_NET_KIND_CDGRAM);
    evpl = t_net_loop();
    ep = evpl_endpoint_create(t_rdma_addr(), port);
    memset(&srv, 0, sizeof(srv));
    srv.keep_msgs = 1;
    if (evpl_protocol_is_stream(proto)) {
        srv.autodrain = 1;
    }
    t_server_start(&srv, evpl, proto, ep, 2);
    T_EQ(write(pfd[1], "g", 1), 1);

    /* A ends with EMSGSIZE, having delivered nothing; B gets everything */
    T_PUMP(evpl, srv.n == 2 && srv.conns[0].disconnected && srv.conns[1].rxlen == NB * 1000, 30000);
    /* (the device reports it as an error of the receive: soft-RoCE says
     * "local QP operation error", EIO; a length error is EMSGSIZE) */
    T_OK(srv.conns[0].disconnect_status == -EMSGSIZE || srv.conns[0].disconnect_status == -EIO);
    T_EQ(srv.conns[0].rxlen, 0);
    T_EQ(srv.conns[1].disconnected, 0);
    for (int k = 0; k < NB; k++) {
        for (int i = 0; i < 1000; i++) {
            if (srv.conns[1].rx[k * 1000 + i] != 'a' + k) {
                T_FAIL("message %d byte %d: %c", k, i, srv.conns[1].rx[k * 1000 + i]);
            }
        }
    }
    if (!evpl_protocol_is_stream(proto)) {
        T_EQ(srv.conns[1].nmsg_len, NB);
    }

    /* the peer dies without closing: B ends too.  (The loop keeps running
     * while the child exits: the kernel's teardown of its connection waits
     * for our answer to its disconnect request.) */
    kill(pid, SIGKILL);
    T_PUMP(evpl, srv.conns[1].disconnected, 60000);
    T_EQ(waitpid(pid, &status, 0), pid);
    T_EQ(srv.conns[0].errors + srv.conns[1].errors, 0);
    T_EQ(srv.conns[0].cb_after_disconnect + srv.conns[1].cb_after_disconnect, 0);
    t_server_stop(&srv);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
    return 0;
}
