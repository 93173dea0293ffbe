/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * UDP receive when buffer memory allows fewer receive slots than a batch:
 * a read that fills every slot offered has not drained the socket, so the
 * datagrams still queued are read on the following rounds and passes
 * without waiting for another one to arrive (the readable state used to
 * be dropped whenever fewer than a batch came in, and an edge-triggered
 * loop then slept on datagrams already in the socket).
 *
 * Memory: one slab of 16 buffers of 64 KiB, a slot per buffer
 * (max_datagram_size 64 KiB), a batch of 32; a raw socket sends 40 small
 * datagrams at once, nothing more.
 */
#include "t_net.h"

#define NDGRAM 40

static int received;

static void
on_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    if (n->notify_type == EVPL_NOTIFY_RECV_MSG) {
        received++;
        evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
    }
}

int
main(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct evpl_bind *bind;
    struct sockaddr_storage ss;
    socklen_t sl;
    char msg[100];
    int fd;

    t_net_guard(60);
    evpl_global_config_set_buffer_size(cfg, 65536);
    evpl_global_config_set_slab_size(cfg, 16 * 65536);
    evpl_global_config_set_max_slabs(cfg, 1);
    evpl_global_config_set_max_datagram_size(cfg, 65536);
    evpl_global_config_set_max_datagram_batch(cfg, 32);
    evpl_init(cfg);

    evpl = t_net_loop();
    ep = t_endpoint(EVPL_DATAGRAM_SOCKET_UDP);
    bind = evpl_bind(evpl, EVPL_DATAGRAM_SOCKET_UDP, ep, on_notify, NULL);
    T_OK(bind != NULL);
    t_pump_for(evpl, 20); /* slots taken, the socket armed */

    sl = t_endpoint_sockaddr(ep, &ss);
    fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    T_OK(fd >= 0);
    memset(msg, 'u', sizeof(msg));
    for (int i = 0; i < NDGRAM; i++) {
        T_EQ(sendto(fd, msg, sizeof(msg), 0, (struct sockaddr *) &ss, sl), (ssize_t) sizeof(msg));
    }
    T_PUMP(evpl, received == NDGRAM, 3000);
    t_pump_for(evpl, 20);
    T_EQ(received, NDGRAM);
    close(fd);

    evpl_close(evpl, bind);
    t_pump_for(evpl, 20);
    evpl_destroy(evpl);
    return 0;
}
