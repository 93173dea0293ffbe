/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The stream receive buffer API (net.md §8) over every stream protocol:
 * §14 statements 23, 24, 25, 26, 27 (segmented part), 28, 29.
 */
/* MATRIX: stream */
/* ALSO_MECH: io_uring */
#include "t_net.h"

#define SEED 9

static struct evpl *evpl;
static enum evpl_protocol_id proto;
static struct evpl_endpoint *ep;
static struct t_server srv;
static struct t_conn c;
static struct t_conn *s;
static uint64_t sent_off;     /* pattern offset the client has sent up to */
static uint64_t consumed_off; /* pattern offset the server has consumed */
static uint8_t big[8 << 20];

static int
buffered(void)
{
    int n = evpl_peek(evpl, s->bind, big, sizeof(big));

    T_GE(n, 0);
    return n;
}

static void
send_chunk(size_t len)
{
    uint8_t *b = malloc(len);

    t_pattern_fill(SEED, sent_off, b, len);
    evpl_send(evpl, c.bind, b, (unsigned int) len);
    sent_off += len;
    free(b);
}

/* Send len bytes and wait until the server has all of them buffered. */
static void
send_wait(size_t len)
{
    int before = s->nrecv_data;

    send_chunk(len);
    T_PUMP(evpl, s->nrecv_data > before && (uint64_t) buffered() == sent_off - consumed_off, 5000);
}

static void
check(const uint8_t *p, size_t len)
{
    int64_t bad = t_pattern_check(SEED, consumed_off, p, len);

    if (bad >= 0) {
        T_FAIL("byte %lld of a %zu-byte read at stream offset %llu differs", (long long) bad, len,
               (unsigned long long) consumed_off);
    }
    consumed_off += len;
}

static void
recvv_leak(void *arg)
{
    struct evpl_iovec iov[4];
    int len, n;

    send_wait(1000);
    n = evpl_recvv(evpl, s->bind, iov, 4, 1000, &len);
    T_GE(n, 1);
    if (arg) {
        evpl_iovecs_release(evpl, iov, n); /* the control: balanced */
    }
    /* otherwise never released: the exit-time leak check must abort (28) */
    exit(0);
}

int
main(void)
{
    uint8_t buf[65536], buf2[65536];
    struct evpl_iovec iov[64];
    int n, len;

    t_net_guard(60);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    srv.autodrain = 0; /* the test drains by hand */
    srv.keep_msgs = 1;
    t_server_start(&srv, evpl, proto, ep, 4);
    t_connect(evpl, proto, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 5000);
    s = &srv.conns[0];

    /* 29: unconsumed data stays; no RECV_DATA until new bytes arrive */
    send_wait(1000);
    T_EQ(s->nrecv_data, 1);
    t_pump_for(evpl, 50);
    T_EQ(s->nrecv_data, 1);
    T_EQ(buffered(), 1000);

    /* several arrivals (separate buffers/iovecs) plus a multi-buffer one */
    send_wait(3000);
    send_wait(20000);
    send_wait(3 * 1024 * 1024 + 5);
    T_GE(s->nrecv_data, 4);
    T_EQ((uint64_t) buffered(), sent_off - consumed_off);

    /* 25: peek returns what recv of the same length returns */
    T_EQ(evpl_peek(evpl, s->bind, buf, 700), 700);
    T_EQ(evpl_recv(evpl, s->bind, buf2, 700, 0), 700);
    T_OK(memcmp(buf, buf2, 700) == 0);
    check(buf2, 700);

    /* 23: a recv spanning the first arrivals' boundaries */
    T_EQ(evpl_recv(evpl, s->bind, buf, 5000, 0), 5000);
    check(buf, 5000);

    /* 25: peek + consume(n) == recv(n) */
    T_EQ(evpl_peek(evpl, s->bind, buf, 9000), 9000);
    T_EQ(evpl_consume(evpl, s->bind, 9000), 0);
    check(buf, 9000);

    /* 28: recvv hands out owned references (released here) */
    n = evpl_recvv(evpl, s->bind, iov, 64, 10000, &len);
    T_GE(n, 1);
    T_EQ(len, 10000);
    {
        int sum = 0;

        for (int i = 0; i < n; i++) {
            check(iov[i].data, iov[i].length);
            sum += (int) iov[i].length;
        }
        T_EQ(sum, 10000);
    }
    evpl_iovecs_release(evpl, iov, n);

    /* recvv with one iovec slot: a partial result, never more than asked */
    n = evpl_recvv(evpl, s->bind, iov, 1, 1 << 30, &len);
    T_EQ(n, 1);
    T_GT(len, 0);
    T_EQ(len, (int) iov[0].length);
    check(iov[0].data, iov[0].length);
    evpl_iovec_release(evpl, &iov[0]);

    /* 28: peekv hands out borrowed views (never released) */
    n = evpl_peekv(evpl, s->bind, iov, 64, 100000);
    T_GE(n, 1);
    {
        uint64_t off = consumed_off;
        int sum = 0;

        for (int i = 0; i < n; i++) {
            T_EQ(t_pattern_check(SEED, off, iov[i].data, iov[i].length), -1);
            off += iov[i].length;
            sum += (int) iov[i].length;
        }
        T_EQ(sum, 100000);
    }

    /* 24: ALL_OR_NONE */
    {
        int have = buffered();

        T_EQ(evpl_recv(evpl, s->bind, big, have + 1, EVPL_RECV_FLAG_ALL_OR_NONE), 0);
        T_EQ(buffered(), have); /* nothing consumed */
        T_EQ(evpl_recv(evpl, s->bind, buf, 4321, EVPL_RECV_FLAG_ALL_OR_NONE), 4321);
        check(buf, 4321);
        T_EQ(buffered(), have - 4321);
    }

    /* 26: consume more than buffered fails and consumes nothing */
    {
        int have = buffered();

        T_EQ(evpl_consume(evpl, s->bind, have + 1), -1);
        T_EQ(buffered(), have);
    }

    /* 23: recv with max > buffered returns everything, in order */
    {
        int have = buffered();
        uint8_t *all = malloc((size_t) have + 100);

        T_EQ(evpl_recv(evpl, s->bind, all, have + 100, 0), have);
        check(all, (size_t) have);
        free(all);
        T_EQ(buffered(), 0);
        T_EQ(evpl_recv(evpl, s->bind, buf, 100, 0), 0); /* empty: 0 */
        n = evpl_recvv(evpl, s->bind, iov, 4, 100, &len);
        T_EQ(n, 0);
        T_EQ(len, 0);
        T_EQ(evpl_peekv(evpl, s->bind, iov, 4, 100), 0);
    }
    T_EQ_U(consumed_off, sent_off);

    /* argument errors (§8 table) */
    errno = 0;
    T_EQ(evpl_recv(evpl, s->bind, buf, 0, 0), -1);
    T_EQ(errno, EINVAL);
    errno = 0;
    T_EQ(evpl_recv(evpl, s->bind, NULL, 10, 0), -1);
    T_EQ(errno, EINVAL);
    errno = 0;
    T_EQ(evpl_recvv(evpl, s->bind, iov, 0, 10, &len), -1);
    T_EQ(errno, EINVAL);
    errno = 0;
    T_EQ(evpl_peek(evpl, s->bind, buf, 0), -1);
    T_EQ(errno, EINVAL);
    errno = 0;
    T_EQ(evpl_peekv(evpl, s->bind, iov, 0, 10), -1);
    T_EQ(errno, EINVAL);
    /* a NULL evpl or bind: EINVAL too (debug builds included) */
    errno = 0;
    T_EQ(evpl_recv(NULL, s->bind, buf, 10, 0), -1);
    T_EQ(errno, EINVAL);
    errno = 0;
    T_EQ(evpl_recvv(NULL, s->bind, iov, 4, 10, &len), -1);
    T_EQ(errno, EINVAL);
    errno = 0;
    T_EQ(evpl_peek(NULL, s->bind, buf, 10), -1);
    T_EQ(errno, EINVAL);
    errno = 0;
    T_EQ(evpl_peekv(NULL, s->bind, iov, 4, 10), -1);
    T_EQ(errno, EINVAL);
    errno = 0;
    T_EQ(evpl_recv(evpl, NULL, buf, 10, 0), -1);
    T_EQ(errno, EINVAL);

    /* 29 again: after draining, new bytes raise a new RECV_DATA */
    {
        int before = s->nrecv_data;

        send_wait(10);
        T_EQ(s->nrecv_data, before + 1);
        T_EQ(evpl_recv(evpl, s->bind, buf, sizeof(buf), 0), 10);
        check(buf, 10);
    }

    /* 28: not releasing recvv's iovecs fails the leak check */
    if (t_proto_forkable) {
        T_EQ(t_child_signal(recvv_leak, "release"), 0);
        T_EQ(t_child_signal(recvv_leak, NULL), SIGABRT);
    }

    /* 27: recv/recvv on a segmented bind fail with EINVAL; peek works */
    {
        struct t_conn c2;

        t_connect(evpl, proto, ep, &c2, t_segment_be32);
        T_PUMP(evpl, c2.connected && srv.n == 2 && srv.conns[1].connected, 5000);
        errno = 0;
        T_EQ(evpl_recv(evpl, c2.bind, buf, 10, 0), -1);
        T_EQ(errno, EINVAL);
        errno = 0;
        T_EQ(evpl_recvv(evpl, c2.bind, iov, 4, 10, &len), -1);
        T_EQ(errno, EINVAL);
        T_EQ(evpl_peek(evpl, c2.bind, buf, 10), 0);
        T_EQ(evpl_peekv(evpl, c2.bind, iov, 4, 10), 0);
        evpl_close(evpl, c2.bind);
        T_PUMP(evpl, c2.disconnected && srv.conns[1].disconnected, 5000);
        t_conn_free(&c2);
    }

    evpl_close(evpl, c.bind);
    T_PUMP(evpl, c.disconnected && s->disconnected, 5000);
    T_EQ(c.errors + s->errors, 0);
    t_server_stop(&srv);
    t_conn_free(&c);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
