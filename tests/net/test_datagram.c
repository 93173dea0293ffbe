/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Unconnected datagram binds over every datagram protocol: net.md §14
 * statements 4, 10 (datagram), 12, 27 (datagram part), 30, 35, 37 (datagram
 * part), 39, 40 (the UDP part); issue item (i): boundaries kept, replies to recv_msg.addr from
 * inside the callback, a few hundred datagrams sent in one pass (sendmmsg
 * batching) all arrive; evpl_bind on a port in use returns NULL (DESIGN §9).
 */
/* MATRIX: datagram */
/* ALSO_MECH: io_uring */
#include "t_net.h"

static struct evpl *evpl;
static enum evpl_protocol_id proto;

/* 35: answer every datagram to its sender, from inside the callback */
static void
reply_hook(struct t_conn *c, struct evpl_notify *n)
{
    if (n->notify_type == EVPL_NOTIFY_RECV_MSG) {
        char r[64];
        int len = snprintf(r, sizeof(r), "reply-%u", n->recv_msg.length);

        evpl_sendto(c->evpl, c->bind, n->recv_msg.addr, r, (unsigned int) len);
    }
}

/* the i-th datagram's length: up to 2184 bytes, under a path MTU over UD
 * (soft-RoCE on a 1500-byte link: 1024) */
static unsigned int
dlen(int i)
{
    return 1 + (unsigned int) (i * 37) % (proto == EVPL_DATAGRAM_RDMACM_UD ? 1000 : 16384);
}

static struct evpl_bind *
dbind(struct evpl_endpoint *e, struct t_conn *c)
{
    struct evpl_bind *b;

    t_conn_init(c);
    c->owner = pthread_self();
    c->check_owner = 1;
    b = evpl_bind(evpl, proto, e, t_conn_notify, c);
    T_OK(b != NULL);
    c->bind = b;
    c->evpl = evpl;
    return b;
}

/* 37 (datagram part): iovecs that hold fewer bytes than length abort,
 * also in the send forms that have no destination to send to */
static struct evpl_bind *short_bind;

static void
sendv_short(void *arg)
{
    struct evpl_iovec iov;

    T_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, 0, &iov), 1);
    if (arg) {
        evpl_sendtov(evpl, short_bind, NULL, &iov, 1, 101, 0);
    } else {
        evpl_sendv(evpl, short_bind, &iov, 1, 101, 0);
    }
    _exit(0);
}

int
main(void)
{
    struct evpl_endpoint *epa, *epb;
    struct t_conn a, b;
    char str[EVPL_ADDRESS_STRLEN];
    char buf[16384];

    t_net_guard(60);
    proto = t_proto(T_NET_KIND_DATAGRAM);
    evpl = t_net_loop();
    epa = t_endpoint(proto);
    epb = t_endpoint(proto);

    dbind(epa, &a);
    dbind(epb, &b);
    t_pump_for(evpl, 30);
    /* 12: never CONNECTED */
    T_EQ(a.connected + b.connected, 0);
    T_EQ(a.nevents + b.nevents, 0);

    /* 40: an unconnected bind reports (NULL) as remote, its endpoint as local */
    evpl_bind_get_remote_address(a.bind, str, sizeof(str));
    T_STR_EQ(str, "(NULL)");
    evpl_bind_get_local_address(a.bind, str, sizeof(str));
    snprintf(buf, sizeof(buf), "%s:%d", t_proto_is_rdmacm(proto) ? t_rdma_addr() : "127.0.0.1",
             evpl_endpoint_port(epa));
    T_STR_EQ(str, buf);
    T_EQ((int) evpl_bind_get_protocol(a.bind), (int) proto);
    T_EQ(evpl_bind_is_rdma(a.bind), 0);

    /* 27: the stream receive calls fail with EINVAL on a datagram bind */
    {
        struct evpl_iovec iov[2];
        int len;

        errno = 0;
        T_EQ(evpl_recv(evpl, a.bind, buf, 10, 0), -1);
        T_EQ(errno, EINVAL);
        errno = 0;
        T_EQ(evpl_recvv(evpl, a.bind, iov, 2, 10, &len), -1);
        T_EQ(errno, EINVAL);
        errno = 0;
        T_EQ(evpl_peek(evpl, a.bind, buf, 10), -1);
        T_EQ(errno, EINVAL);
        errno = 0;
        T_EQ(evpl_peekv(evpl, a.bind, iov, 2, 10), -1);
        T_EQ(errno, EINVAL);
    }

    short_bind = a.bind;
    T_EQ(t_child_signal(sendv_short, NULL), SIGABRT);
    T_EQ(t_child_signal(sendv_short, &a), SIGABRT);

    /* an OS-refused bind (port in use) returns NULL */
    {
        struct t_conn d;

        t_conn_init(&d);
        T_OK(evpl_bind(evpl, proto, epa, t_conn_notify, &d) == NULL);
        T_EQ(d.nevents, 0);
    }

    /* 30, 39: every send is one message, same length and content, never
     * coalesced or split; SENT counts bytes and messages */
    evpl_bind_request_send_notifications(evpl, b.bind);
    {
        enum { N = 60 };
        uint64_t total = 0;

        for (int i = 0; i < N; i++) {
            unsigned int len = dlen(i);
            struct evpl_iovec iov[2];
            int niov;

            t_pattern_fill(50 + (uint64_t) i, 0, buf, len);
            switch (i % 3) {
                case 0:
                    evpl_sendtoep(evpl, b.bind, epa, buf, len);
                    break;
                case 1:
                    niov = evpl_iovec_alloc(evpl, len, 0, 2, 0, iov);
                    T_GE(niov, 1);
                    memcpy(iov[0].data, buf, len);
                    evpl_sendtoepv(evpl, b.bind, epa, iov, niov, (int) len, 0);
                    evpl_iovecs_release(evpl, iov, niov);
                    break;
                default:
                    niov = evpl_iovec_alloc(evpl, len, 0, 2, 0, iov);
                    T_GE(niov, 1);
                    memcpy(iov[0].data, buf, len);
                    evpl_sendtoepv(evpl, b.bind, epa, iov, niov, (int) len,
                                   EVPL_SEND_FLAG_TAKE_REF);
                    break;
            }
            total += len;
        }
        T_EQ(b.nsent, 0); /* 38: nothing synchronous */
        T_PUMP(evpl, a.nrecv_msg >= N && b.sent_msgs >= N, 5000);
        t_pump_for(evpl, 30);
        T_EQ(a.nrecv_msg, N); /* loopback: no loss expected */
        {
            size_t off = 0;

            for (int i = 0; i < N; i++) {
                T_EQ(a.msg_len[i], (int) dlen(i));
                T_EQ(t_pattern_check(50 + (uint64_t) i, 0, a.rx + off, a.msg_len[i]), -1);
                off += a.msg_len[i];
            }
        }
        T_EQ_U(b.sent_bytes, total);
        T_EQ_U(b.sent_msgs, N);
        T_EQ(a.max_niov, 1); /* a UDP datagram is one iovec */
    }

    /* 39 when the kernel refuses one (too big for UDP: EMSGSIZE; over UD,
     * larger than a packet, refused by the library): it is
     * dropped alone, and still counted in SENT, like every send */
    {
        static char big[70000];
        uint64_t bytes0 = b.sent_bytes, msgs0 = b.sent_msgs;
        int recv0 = a.nrecv_msg;

        evpl_sendtoep(evpl, b.bind, epa, buf, 10);
        evpl_sendtoep(evpl, b.bind, epa, big, sizeof(big));
        evpl_sendtoep(evpl, b.bind, epa, buf, 30);
        T_PUMP(evpl, b.sent_msgs >= msgs0 + 3 && a.nrecv_msg >= recv0 + 2, 5000);
        t_pump_for(evpl, 30);
        T_EQ_U(b.sent_msgs - msgs0, 3);
        T_EQ_U(b.sent_bytes - bytes0, 10 + sizeof(big) + 30);
        T_EQ(a.nrecv_msg, recv0 + 2);
        T_EQ(a.msg_len[recv0], 10);
        T_EQ(a.msg_len[recv0 + 1], 30);
        T_EQ(b.disconnected, 0); /* the bind lives on */
    }

    /* 35: replies to recv_msg.addr from inside the callback reach the sender */
    a.hook = reply_hook;
    {
        int before = b.nrecv_msg;

        for (int i = 0; i < 20; i++) {
            evpl_sendtoep(evpl, b.bind, epa, buf, (unsigned int) (10 + i));
        }
        T_PUMP(evpl, b.nrecv_msg == before + 20, 5000);
        /* the replies carry the right lengths, in order */
        {
            size_t off = 0;

            for (int i = 0; i < b.nmsg_len; i++) {
                char want[64];
                int len = snprintf(want, sizeof(want), "reply-%d", 10 + i);

                T_EQ(b.msg_len[i], len);
                T_OK(memcmp(b.rx + off, want, (size_t) len) == 0);
                off += b.msg_len[i];
            }
        }
    }
    a.hook = NULL;

    /*
     * (i): a few hundred small datagrams sent in one pass all arrive.  The
     * receiver runs on the same thread, so the whole burst sits in its
     * socket buffer first: with the default rmem (212992 bytes) Linux keeps
     * about 256 small loopback datagrams and drops the rest (RcvbufErrors),
     * whatever the library does; 200 stays clear of that.
     */
    {
        enum { M = 200 };
        int before = a.nrecv_msg;

        for (int i = 0; i < M; i++) {
            uint32_t v = (uint32_t) i;

            evpl_sendtoep(evpl, b.bind, epa, &v, sizeof(v));
        }
        T_PUMP(evpl, a.nrecv_msg >= before + M, 5000);
        t_pump_for(evpl, 30);
        T_EQ(a.nrecv_msg, before + M);
        {
            /* each one whole, in order */
            size_t off = a.rxlen - (size_t) M * 4;

            for (int i = 0; i < M; i++) {
                uint32_t v;

                T_EQ(a.msg_len[before + i], 4);
                memcpy(&v, a.rx + off + (size_t) i * 4, 4);
                T_EQ(v, i);
            }
        }
    }

    /* 10: finish with datagrams queued delivers them, then DISCONNECTED */
    {
        int before = a.nrecv_msg;

        for (int i = 0; i < 10; i++) {
            evpl_sendtoep(evpl, b.bind, epa, "last", 4);
        }
        evpl_finish(evpl, b.bind);
        T_OK(evpl_bind_is_closing(b.bind) != 0);
        T_PUMP(evpl, b.disconnected && a.nrecv_msg >= before + 10, 5000);
        T_EQ(a.nrecv_msg, before + 10);
    }

    /* 12, 4: close delivers exactly one DISCONNECTED, not synchronously */
    evpl_close(evpl, a.bind);
    evpl_close(evpl, a.bind);
    T_EQ(a.disconnected, 0);
    T_PUMP(evpl, a.disconnected, 5000);
    t_pump_for(evpl, 30);
    T_EQ(a.disconnected, 1);
    T_EQ(b.disconnected, 1);
    T_EQ(a.cb_after_disconnect + b.cb_after_disconnect, 0);
    T_EQ(a.connected + b.connected, 0);
    T_EQ(a.errors + b.errors, 0);

    /* DESIGN §9: IPv6 literals work ("::1"; RDMA CM: the device's IPv4 address only) */
    if (!t_proto_is_rdmacm(proto)) {
        struct evpl_endpoint *e6a =
            evpl_endpoint_create("::1", t_free_port_af(AF_INET6, SOCK_DGRAM));
        struct evpl_endpoint *e6b =
            evpl_endpoint_create("::1", t_free_port_af(AF_INET6, SOCK_DGRAM));
        struct t_conn x, y;

        dbind(e6a, &x);
        dbind(e6b, &y);
        evpl_bind_get_local_address(x.bind, str, sizeof(str));
        snprintf(buf, sizeof(buf), "[::1]:%d", evpl_endpoint_port(e6a));
        T_STR_EQ(str, buf);
        x.hook = reply_hook;
        evpl_sendtoep(evpl, y.bind, e6a, "v6", 2);
        T_PUMP(evpl, y.nrecv_msg == 1, 5000);
        T_EQ(x.nrecv_msg, 1);
        t_close_pair(evpl, &x, &y);
        evpl_endpoint_close(e6a);
        evpl_endpoint_close(e6b);
    }

    /* core 15: evpl_destroy delivers DISCONNECTED to an open datagram bind */
    {
        struct evpl_endpoint *e = t_endpoint(proto);
        struct t_conn z;

        dbind(e, &z);
        evpl_destroy(evpl);
        T_EQ(z.disconnected, 1);
        evpl_endpoint_close(e);
        t_conn_free(&z);
    }

    t_conn_free(&a);
    t_conn_free(&b);
    evpl_endpoint_close(epa);
    evpl_endpoint_close(epb);
    return 0;
}
