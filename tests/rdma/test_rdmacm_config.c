/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: vm rdma */
/*
 * The RDMA CM settings of core.md §3, each in a process of its own (the
 * protocol table and the memory layout are fixed at evpl_init):
 *
 *  - rdmacm_enabled = 0: none of the three RDMA CM protocols is registered
 *    (unavailable, not found by name, evpl_connect / evpl_bind return NULL);
 *  - by default, with a device present, all three are;
 *  - rdmacm_datagram_size_override = 4096: receive buffers of 4096 bytes,
 *    so a 4096-byte message arrives and a 4097-byte one ends the sending
 *    bind with -EMSGSIZE.
 *
 * Needs an RDMA device: soft-RoCE in the test VM (tests/vm); skips (77)
 * elsewhere.
 */
#include <sys/wait.h>

#include "../net/t_net.h"

static void
disabled(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    enum evpl_protocol_id id;
    struct evpl *evpl;
    struct evpl_endpoint *ep;

    evpl_global_config_set_rdmacm_enabled(gc, 0);
    evpl_init(gc);
    T_EQ(evpl_protocol_available(EVPL_DATAGRAM_RDMACM_RC), 0);
    T_EQ(evpl_protocol_available(EVPL_STREAM_RDMACM_RC), 0);
    T_EQ(evpl_protocol_available(EVPL_DATAGRAM_RDMACM_UD), 0);
    T_EQ(evpl_protocol_lookup(&id, "STREAM_RDMACM_RC"), -1);
    T_EQ(evpl_protocol_lookup(&id, "DATAGRAM_RDMACM_UD"), -1);
    evpl = t_net_loop();
    ep = evpl_endpoint_create(t_rdma_addr(), 7471);
    T_OK(evpl_connect(evpl, EVPL_STREAM_RDMACM_RC, NULL, ep, t_conn_notify, NULL, NULL) == NULL);
    T_OK(evpl_bind(evpl, EVPL_DATAGRAM_RDMACM_UD, ep, t_conn_notify, NULL) == NULL);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
}

static void
size_override(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c;
    char buf[4097];

    evpl_global_config_set_rdmacm_datagram_size_override(gc, 4096);
    evpl_init(gc);
    T_EQ(evpl_protocol_available(EVPL_DATAGRAM_RDMACM_RC), 1);
    T_EQ(evpl_protocol_available(EVPL_STREAM_RDMACM_RC), 1);
    evpl = t_net_loop();
    ep = t_endpoint(EVPL_DATAGRAM_RDMACM_RC);
    memset(&srv, 0, sizeof(srv));
    srv.keep_msgs = 1;
    t_server_start(&srv, evpl, EVPL_DATAGRAM_RDMACM_RC, ep, 1);
    t_connect(evpl, EVPL_DATAGRAM_RDMACM_RC, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 1, 10000);
    memset(buf, 'x', sizeof(buf));
    evpl_send(evpl, c.bind, buf, 4096);
    T_PUMP(evpl, srv.conns[0].nmsg_len == 1, 10000);
    T_EQ(srv.conns[0].msg_len[0], 4096);
    evpl_send(evpl, c.bind, buf, 4097);
    T_PUMP(evpl, c.disconnected && srv.conns[0].disconnected, 10000);
    T_EQ(c.disconnect_status, -EMSGSIZE);
    T_EQ(srv.conns[0].nmsg_len, 1);
    t_conn_free(&c);
    t_server_stop(&srv);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
}

static int
in_child(void (*fn)(void))
{
    pid_t pid = fork();
    int status;

    if (pid == 0) {
        fn();
        exit(0);
    }
    T_OK(pid > 0);
    T_EQ(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int
main(void)
{
    t_net_guard(120);
    /* a CM device file alone is not a device: look for one too */
    if (access("/dev/infiniband/rdma_cm", R_OK | W_OK) != 0 ||
        access("/sys/class/infiniband_verbs/uverbs0", F_OK) != 0) {
        fprintf(stderr, "no RDMA device: skipped\n");
        return 77;
    }
    T_EQ(in_child(disabled), 0);
    T_EQ(in_child(size_override), 0);
    /* the default: registered when a device is present */
    T_EQ(evpl_protocol_available(EVPL_DATAGRAM_RDMACM_RC), 1);
    T_EQ(evpl_protocol_available(EVPL_STREAM_RDMACM_RC), 1);
    T_EQ(evpl_protocol_available(EVPL_DATAGRAM_RDMACM_UD), 1);
    return 0;
}
