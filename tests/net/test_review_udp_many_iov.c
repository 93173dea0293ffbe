/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A datagram made of more iovecs than one send carries (the kernel takes
 * 1024 a message) is one message like any other (net.md §7 rule 2): it
 * arrives whole and in order between the datagrams around it.  Review
 * regression first: it made udp_flush's batch loop build zero messages
 * and spin inside one evpl_continue; then it was dropped and reported as
 * sent (helper-111).  Now UDP copies it into buffers of its own.  Then
 * the same from another process whose buffers (4 KiB) are smaller than
 * the datagram (8 KB): the copy takes several.
 */
/* MATRIX: datagram */
#include "t_net.h"

enum { NIOV = 1100 };

/* 1100 pieces of 1..max bytes, each its own buffer; want gets the bytes */
static int
pieces(struct evpl *evpl, struct evpl_iovec *iov, int max, uint8_t *want)
{
    int len = 0;

    for (int i = 0; i < NIOV; i++) {
        int n = 1 + i % max;

        T_EQ(evpl_iovec_alloc(evpl, (unsigned) n, 0, 1, 0, &iov[i]), 1);
        for (int k = 0; k < n; k++) {
            want[len] = (uint8_t) ('a' + (i + k) % 26);
            ((uint8_t *) iov[i].data)[k] = want[len];
            len++;
        }
    }
    return len;
} /* pieces */

/* The other process: 4 KiB buffers, one 8 KB datagram to the port named. */
static int
sender(enum evpl_protocol_id proto, int port)
{
    static struct evpl_iovec iov[NIOV];
    static uint8_t want[NIOV * 14];
    struct evpl_endpoint *to, *me;
    struct evpl *evpl;
    struct evpl_bind *b;
    struct t_conn c;
    int len;

    evpl = t_net_loop();
    to = evpl_endpoint_create("127.0.0.1", port);
    me = t_endpoint(proto);
    t_conn_init(&c);
    c.owner = pthread_self();
    b = evpl_bind(evpl, proto, me, t_conn_notify, &c);
    T_OK(b != NULL);
    evpl_bind_request_send_notifications(evpl, b);
    len = pieces(evpl, iov, 13, want);
    T_GT(len, 4096);
    evpl_sendtoepv(evpl, b, to, iov, NIOV, len, EVPL_SEND_FLAG_TAKE_REF);
    T_PUMP(evpl, c.sent_msgs == 1, 5000);
    evpl_close(evpl, b);
    T_PUMP(evpl, c.disconnected, 5000);
    t_conn_free(&c);
    evpl_destroy(evpl);
    evpl_endpoint_close(me);
    evpl_endpoint_close(to);
    return 0;
} /* sender */

int
main(int argc, char **argv)
{
    static struct evpl_iovec iov[NIOV];
    static uint8_t want[NIOV * 14 + 16];
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct evpl_bind *b;
    struct t_conn c;
    enum evpl_protocol_id proto;
    size_t len = 0, got;
    pid_t pid;
    int status;
    char port[16];

    t_net_guard(20);
    if (getenv("T_MANY_IOV_PORT")) {
        t_init_memory_cap(4096, 256); /* before anything initialises */
        proto = t_proto(T_NET_KIND_DATAGRAM);
        return sender(proto, atoi(getenv("T_MANY_IOV_PORT")));
    }
    proto = t_proto(T_NET_KIND_DATAGRAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    t_conn_init(&c);
    c.owner = pthread_self();
    c.keep_msgs = 1;
    b = evpl_bind(evpl, proto, ep, t_conn_notify, &c);
    T_OK(b != NULL);
    c.bind = b;
    c.evpl = evpl;

    memcpy(want, "before", 6);
    len = 6 + (size_t) pieces(evpl, iov, 6, want + 6);
    memcpy(want + len, "after!!", 7);
    evpl_sendtoep(evpl, b, ep, "before", 6);
    evpl_sendtoepv(evpl, b, ep, iov, NIOV, (int) (len - 6), EVPL_SEND_FLAG_TAKE_REF);
    evpl_sendtoep(evpl, b, ep, "after!!", 7);
    len += 7;

    /* hung inside evpl_continue once (the alarm fires) */
    if (t_proto_is_rdmacm(proto)) {
        /* RDMA UD: a message is at most one MTU (1 KiB on soft-RoCE);
         * only the queue moving on is asked of it */
        T_PUMP(evpl, c.nmsg_len >= 2 && c.msg_len[c.nmsg_len - 1] == 7, 5000);
        T_EQ(c.msg_len[0], 6);
        goto out;
    }
    T_PUMP(evpl, c.nmsg_len == 3, 5000);
    T_EQ(c.msg_len[0], 6);
    T_EQ(c.msg_len[1], len - 13);
    T_EQ(c.msg_len[2], 7);
    T_EQ_U(c.rxlen, len);
    T_OK(memcmp(c.rx, want, len) == 0);

    /* from a process of small buffers */
    snprintf(port, sizeof(port), "%d", evpl_endpoint_port(ep));
    setenv("T_MANY_IOV_PORT", port, 1);
    fflush(stdout);
    pid = fork();
    T_OK(pid >= 0);
    if (pid == 0) {
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    unsetenv("T_MANY_IOV_PORT");
    got = c.rxlen;
    T_PUMP(evpl, c.nmsg_len == 4, 10000);
    T_EQ(waitpid(pid, &status, 0), pid);
    T_OK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    len = (size_t) pieces(evpl, iov, 13, want);
    for (int i = 0; i < NIOV; i++) {
        evpl_iovec_release(evpl, &iov[i]);
    }
    T_EQ(c.msg_len[3], len);
    T_EQ_U(c.rxlen - got, len);
    T_OK(memcmp(c.rx + got, want, len) == 0);

out:
    T_EQ(c.errors, 0);
    evpl_close(evpl, b);
    T_PUMP(evpl, c.disconnected, 5000);
    t_conn_free(&c);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
