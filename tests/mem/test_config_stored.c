/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * core.md §2: setters store what they are given.  evpl_get_slab_size
 * returns the configured slab size even when it is not a whole number of
 * buffers (memory.md §7), and the slab evpl_slab_alloc hands out is at
 * least that large.  Sizes and depths of 0, an unknown clock mode and a
 * negative poll_iterations are stored without aborting anything; the loop
 * and the allocator work with them (the unusable ones take their defaults
 * at evpl_init), and a UDP datagram still crosses.
 */
#include <evpl/evpl.h>

#include <sys/socket.h>

#include "t.h"

#define BUF (64u * 1024)

static int got;

static void
notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) bind, (void) priv;
    if (n->notify_type == EVPL_NOTIFY_RECV_MSG) {
        got = (int) n->recv_msg.length;
        T_OK(memcmp(n->recv_msg.iovec[0].data, "stored", 6) == 0);
        evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
    }
}

int
main(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    struct evpl_thread_config *tc;
    struct evpl_endpoint *a, *b;
    struct evpl_bind *ba, *bb;
    struct evpl_iovec iov[4];
    struct evpl *evpl;
    void *priv;
    char *slab;

    evpl_global_config_set_buffer_size(cfg, BUF);
    evpl_global_config_set_slab_size(cfg, 2 * BUF + BUF / 2); /* 2.5 buffers */
    evpl_global_config_set_max_datagram_size(cfg, 0);
    evpl_global_config_set_max_datagram_batch(cfg, 0);
    evpl_global_config_set_max_num_iovec(cfg, 0);
    evpl_global_config_set_max_pending(cfg, 0);
    evpl_global_config_set_io_uring_entries(cfg, 0);
    evpl_global_config_set_libaio_max_pending(cfg, 0);
    evpl_global_config_set_hf_time_mode(cfg, 7);
    evpl_init(cfg);

    T_EQ_U(evpl_get_slab_size(), 2 * BUF + BUF / 2);
    slab = evpl_slab_alloc(&priv);
    T_OK(slab != NULL);
    memset(slab, 0x5a, 2 * BUF + BUF / 2); /* the whole configured size is there */
    T_EQ(slab[2 * BUF + BUF / 2 - 1], 0x5a);

    tc = evpl_thread_config_init();
    evpl_thread_config_set_poll_iterations(tc, -5);
    evpl_thread_config_set_wait_ms(tc, 1);
    evpl = evpl_create(tc);

    /* two buffers per slab: a third allocation maps a second slab */
    for (int i = 0; i < 3; i++) {
        T_EQ(evpl_iovec_alloc(evpl, BUF, 0, 1, 0, &iov[i]), 1);
        memset(iov[i].data, i, BUF);
    }
    for (int i = 0; i < 3; i++) {
        T_EQ(((unsigned char *) iov[i].data)[BUF - 1], i);
        evpl_iovec_release(evpl, &iov[i]);
    }

    a = evpl_endpoint_create("127.0.0.1", t_free_port(SOCK_DGRAM));
    b = evpl_endpoint_create("127.0.0.1", t_free_port(SOCK_DGRAM));
    ba = evpl_bind(evpl, EVPL_DATAGRAM_SOCKET_UDP, a, notify, NULL);
    bb = evpl_bind(evpl, EVPL_DATAGRAM_SOCKET_UDP, b, notify, NULL);
    T_OK(ba != NULL && bb != NULL);
    evpl_sendtoep(evpl, ba, b, "stored", 6);
    for (int i = 0; i < 5000 && !got; i++) {
        evpl_continue(evpl);
    }
    T_EQ(got, 6);

    evpl_close(evpl, ba);
    evpl_close(evpl, bb);
    evpl_destroy(evpl);
    evpl_endpoint_close(a);
    evpl_endpoint_close(b);
    return 0;
}
