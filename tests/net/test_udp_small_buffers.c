/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * buffer_size smaller than max_datagram_size (core.md: upstream breaks;
 * we receive into whole buffers): datagrams that fit a buffer arrive
 * whole, a larger one is dropped (never delivered cut), and the bind keeps
 * receiving.  The socket backend used to receive nothing at all here.
 */
/* MATRIX: datagram */
/* ALSO_MECH: io_uring */
#include "t_net.h"

/* (test_udp_max_datagram.c: the same with its own sizes) */
#ifndef T_BUFFER_SIZE
#define T_BUFFER_SIZE  16384
#define T_MAX_DATAGRAM 65535
#endif
/* the largest datagram received */
#define T_LIMIT (T_BUFFER_SIZE < T_MAX_DATAGRAM ? T_BUFFER_SIZE : T_MAX_DATAGRAM)

int
main(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    static const unsigned sizes[] = {100, T_LIMIT - 384, T_LIMIT, T_LIMIT + 1, T_LIMIT + 3616, 1};
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    static char buf[T_LIMIT + 3616];
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *epa, *epb;
    struct t_conn a, b;
    size_t off = 0;
    int k = 0;

    t_net_guard(60);
    evpl_global_config_set_buffer_size(cfg, T_BUFFER_SIZE);
    evpl_global_config_set_max_datagram_size(cfg, T_MAX_DATAGRAM);
    evpl_init(cfg);
    proto = t_proto(T_NET_KIND_DATAGRAM);
    if (evpl_protocol_is_local(proto)) {
        T_SKIP("the sizes are UDP's");
    }
    evpl = t_net_loop();
    t_dgram_pair(evpl, proto, &epa, &epb, &a, &b);

    for (int i = 0; i < N; i++) {
        t_pattern_fill(11 + (uint64_t) i, 0, buf, sizes[i]);
        evpl_sendtoep(evpl, b.bind, epa, buf, sizes[i]);
        if (sizes[i] > T_LIMIT) {
            t_pump_for(evpl, 100); /* dropped: nothing arrives */
            T_EQ(a.nrecv_msg, k);
            continue;
        }
        k++;
        T_PUMP(evpl, a.nrecv_msg == k, 5000);
    }
    for (int i = 0, j = 0; i < N; i++) {
        if (sizes[i] > T_LIMIT) {
            continue;
        }
        T_EQ(a.msg_len[j], sizes[i]);
        T_EQ(t_pattern_check(11 + (uint64_t) i, 0, a.rx + off, sizes[i]), -1);
        off += sizes[i];
        j++;
    }
    T_EQ(a.errors + b.errors, 0);
    t_close_pair(evpl, &a, &b);
    evpl_endpoint_close(epa);
    evpl_endpoint_close(epb);
    evpl_destroy(evpl);
    fprintf(stderr, "PASS\n");
    return 0;
}
