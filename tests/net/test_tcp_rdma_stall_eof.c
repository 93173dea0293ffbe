/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * DATAGRAM_TCP_RDMA: a peer sends more READ_REQUESTs than we answer while
 * it reads nothing, and shuts its write side down in the same burst.  The
 * requests beyond the bound on owed replies wait, whole, in the receive
 * ring when the EOF is read: that is an orderly end (status 0), unlike a
 * frame cut by the close (-EPROTO, test_tcp_rdma_wire.c).  (The replies
 * owed are dropped with the bind, as on every EOF without evpl_finish:
 * BEHAVIOUR.md.  With the EOF check before 20ffc34, this ended -EPROTO.)
 *
 * For the burst and its EOF to arrive in one read pass, the socket receive
 * buffer must hold all of it: the test raises tcp_rmem in a private network
 * namespace (needs root; skips otherwise).
 */

#include "t_net.h"

#define NREQ  12000 /* the reply bound is ~8200 (512 KiB of 64-byte entries) */
#define FRAME 36    /* header + the 4-byte read length */

static void
set_sysctl(const char *path, const char *value)
{
    FILE *f = fopen(path, "w");

    T_OK(f != NULL);
    T_OK(fputs(value, f) >= 0);
    T_EQ(fclose(f), 0);
} /* set_sysctl */

int
main(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    enum evpl_protocol_id proto = EVPL_DATAGRAM_TCP_RDMA;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn *sc;
    struct evpl_iovec region;
    unsigned char *burst;
    uint32_t key;
    uint64_t addr;
    int fd;

    t_net_guard(60);
    if (t_private_netns() != 0) {
        T_SKIP("needs a private network namespace (root)");
    }
    set_sysctl("/proc/sys/net/ipv4/tcp_rmem", "4096 8388608 16777216");
    /* the bound on owed reply entries follows the receive limit, 512 KiB
     * at the least */
    evpl_global_config_set_stream_recv_limit(gc, 512 << 10);
    evpl_init(gc);
    if (!evpl_protocol_available(proto)) {
        T_SKIP("DATAGRAM_TCP_RDMA unavailable");
    }
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    t_server_start(&srv, evpl, proto, ep, 2);
    fd = t_raw_connect(ep);
    T_OK(fd >= 0);
    T_PUMP(evpl, srv.n == 1 && srv.conns[0].connected, 5000);
    sc = &srv.conns[0];

    T_EQ(evpl_iovec_alloc(evpl, 4096, 0, 1, 0, &region), 1);
    evpl_rdma_get_address(evpl, sc->bind, &region, &key, &addr);
    burst = malloc((size_t) NREQ * FRAME);
    T_OK(burst != NULL);
    for (int i = 0; i < NREQ; i++) {
        uint32_t be = htobe32(16);

        t_trma_hdr(burst + (size_t) i * FRAME, 0x54524D41u, 2 /* READ_REQUEST */, 4, key, addr,
                   (uint64_t) i);
        memcpy(burst + (size_t) i * FRAME + 32, &be, 4);
    }
    /* all of it and the FIN before the loop reads anything */
    t_write_all(fd, burst, (size_t) NREQ * FRAME);
    T_EQ(shutdown(fd, SHUT_WR), 0);

    T_PUMP(evpl, sc->disconnected, 10000);
    T_EQ(sc->disconnect_status, 0);
    close(fd);
    free(burst);
    evpl_iovec_release(evpl, &region);
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
