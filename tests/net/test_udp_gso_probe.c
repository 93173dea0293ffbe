/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A run of equal datagrams sent to an address the socket cannot reach (an
 * IPv6 one from an IPv4 bind) fails as one grouped send (UDP_SEGMENT).
 * That is the address's fault, not segmentation's: the datagrams are
 * dropped, and the bind keeps grouping its later runs.  It turned
 * segmentation off for good on any failed grouped send (helper-111),
 * which the "UDP_SEGMENT refused" log line says.  The datagrams after the
 * bad run all arrive.
 *
 * Then (root: a private network namespace whose loopback has a 1000-byte
 * MTU) a run of 1400-byte datagrams, larger than the MTU.  Whether the
 * kernel segments it is its call (6.18 refuses, 6.1 does not); refused,
 * it goes datagram by datagram as IP fragments, and the bind stops
 * grouping (one "refused" line at most).  Every datagram arrives.
 */
/* MATRIX: datagram */
/* MATRIX_ONLY: DATAGRAM_SOCKET_UDP DATAGRAM_IO_URING_UDP */
/* ALSO_MECH: io_uring */
#include <net/if.h>
#include <stdarg.h>
#include <sys/ioctl.h>

#include "t_net.h"

/* The loopback's MTU, in this (private) namespace. */
static void
lo_mtu(int mtu)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    T_OK(fd >= 0);
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    ifr.ifr_mtu = mtu;
    T_EQ(ioctl(fd, SIOCSIFMTU, &ifr), 0);
    close(fd);
} /* lo_mtu */

int
main(void)
{
    struct evpl_endpoint *ep_a, *ep_b, *bad;
    struct evpl_bind *a, *b;
    struct t_conn ca, cb;
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    char payload[1400];
    int netns;

    t_net_guard(20);
    netns = t_private_netns() == 0;
    t_count_log_lines("UDP_SEGMENT refused");
    proto = t_proto(T_NET_KIND_DATAGRAM);
    evpl = t_net_loop();
    ep_a = t_endpoint(proto);
    ep_b = t_endpoint(proto);
    bad = evpl_endpoint_create("::1", t_free_port(SOCK_DGRAM));
    t_conn_init(&ca);
    t_conn_init(&cb);
    ca.owner = cb.owner = pthread_self();
    cb.keep_msgs = 1;
    a = evpl_bind(evpl, proto, ep_a, t_conn_notify, &ca);
    b = evpl_bind(evpl, proto, ep_b, t_conn_notify, &cb);
    T_OK(a != NULL && b != NULL);

    memset(payload, 'p', sizeof(payload));
    for (int round = 0; round < 3; round++) {
        int before = cb.nmsg_len;

        for (int i = 0; i < 8; i++) {
            evpl_sendtoep(evpl, a, bad, payload, 200);
        }
        for (int i = 0; i < 8; i++) {
            evpl_sendtoep(evpl, a, ep_b, payload, 200);
        }
        T_PUMP(evpl, cb.nmsg_len == before + 8, 5000);
    }
    T_EQ(t_log_lines, 0);
    T_EQ_U(cb.rxlen, 3 * 8 * 200);

    if (netns) {
        lo_mtu(1000);
        for (int round = 0; round < 2; round++) {
            int before = cb.nmsg_len;

            for (int i = 0; i < 8; i++) {
                evpl_sendtoep(evpl, a, ep_b, payload, 1400);
            }
            T_PUMP(evpl, cb.nmsg_len == before + 8, 5000);
        }
        /* whether such a run is refused is the kernel's call (6.18
         * refuses it, Debian 12's 6.1 segments it): every datagram
         * arrives either way, and a refusal is found once */
        fprintf(stderr, "path MTU 1000, 1400-byte run: %s\n",
                t_log_lines ? "segmentation refused, sent one by one" : "segmented");
        T_LE(t_log_lines, 1);
        T_EQ_U(cb.rxlen, 3 * 8 * 200 + 2 * 8 * 1400);
    } else {
        fprintf(stderr, "not root: the path-MTU part is skipped\n");
    }

    evpl_close(evpl, a);
    evpl_close(evpl, b);
    T_PUMP(evpl, ca.disconnected && cb.disconnected, 5000);
    T_EQ(ca.errors + cb.errors, 0);
    t_conn_free(&ca);
    t_conn_free(&cb);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep_a);
    evpl_endpoint_close(ep_b);
    evpl_endpoint_close(bad);
    return 0;
}
