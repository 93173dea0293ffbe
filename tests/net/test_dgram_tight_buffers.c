/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Datagrams as large as max_datagram_size when buffer_size is no larger
 * (core.md allows buffer_size == max_datagram_size), over every datagram
 * protocol: every datagram up to the largest UDP/IPv4 payload arrives
 * whole (io_uring UDP: no room for its multishot header in such a buffer,
 * so it receives with single-shot requests).
 */
/* MATRIX: datagram */
/* ALSO_MECH: io_uring */
#include "t_net.h"

int
main(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    static const unsigned sizes[] = {0, 1, 65360, 65368, 65369, 65400, 65507};
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    static char buf[65536];
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *epa, *epb;
    struct t_conn a, b;

    t_net_guard(60);
    evpl_global_config_set_buffer_size(cfg, 65536);
    evpl_global_config_set_max_datagram_size(cfg, 65536);
    evpl_init(cfg);
    proto = t_proto(T_NET_KIND_DATAGRAM);
    if (evpl_protocol_is_local(proto)) {
        T_SKIP("the sizes are UDP's");
    }
    evpl = t_net_loop();
    t_dgram_pair(evpl, proto, &epa, &epb, &a, &b);

    /* one at a time: a burst of 64 KiB datagrams could overrun the socket
     * buffer, which is not what this is about */
    for (int i = 0; i < N; i++) {
        t_pattern_fill(7 + (uint64_t) i, 0, buf, sizes[i]);
        evpl_sendtoep(evpl, b.bind, epa, buf, sizes[i]);
        T_PUMP(evpl, a.nrecv_msg == i + 1, 5000);
    }
    {
        size_t off = 0;

        for (int i = 0; i < N; i++) {
            T_EQ(a.msg_len[i], sizes[i]);
            T_EQ(t_pattern_check(7 + (uint64_t) i, 0, a.rx + off, sizes[i]), -1);
            off += sizes[i];
        }
    }
    /* and replies come back the same way */
    for (int i = 0; i < 3; i++) {
        evpl_sendtoep(evpl, a.bind, epb, buf, 65000);
        T_PUMP(evpl, b.nrecv_msg == i + 1, 5000);
    }
    T_EQ(a.errors + b.errors, 0);
    t_close_pair(evpl, &a, &b);
    evpl_endpoint_close(epa);
    evpl_endpoint_close(epb);
    evpl_destroy(evpl);
    return 0;
}
