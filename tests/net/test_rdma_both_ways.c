/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Two ends of one connection push one-sided traffic at each other at once
 * (rdma.md §3/§4: every operation completes while both loops run): each
 * end issues N writes and N reads of CHUNK bytes to the other in one
 * pass, far more than the stream receive limit (64 KiB here) and than the
 * kernel's socket buffers.  Every operation reports 0 and the bytes are
 * right.  (DATAGRAM_TCP_RDMA used to stop reading its socket while its own
 * outgoing traffic was above the limit: both ends stopped, neither socket
 * drained, and nothing ever completed.)
 *
 * Then each end issues M small writes and M small reads at once: more
 * operations than either end keeps on the wire awaiting replies, and more
 * replies than the bound at which an end stops reading a peer that does
 * not read its replies (an end that counted its own requests against
 * that bound, or that put no limit on the replies its peer could owe it,
 * stopped reading while its peer did the same).
 *
 * An operation on memory the library did not allocate (an iovec with no
 * reference) fails alone with EINVAL, after the call, and the connection
 * goes on.
 *
 * Then one end issues N writes and the other closes in the same pass:
 * every operation completes exactly once, before its bind's DISCONNECTED,
 * with 0 or the status of an operation the connection's end cut short
 * (rdma.md §3: EIO on RDMA CM, whose requests come back as flush errors;
 * ECONNRESET elsewhere).
 */
/* MATRIX: cdatagram */
#include "t_net.h"

#define N     40
#define CHUNK (512u << 10)

static int statuses[3]; /* 0, the cut-short status, anything else */
static int cut_status, done_after_disconnect;
static struct t_conn *closing_peer_of;

static void
cut_done(int status, void *priv)
{
    (void) priv;
    statuses[status == 0 ? 0 : status == cut_status ? 1 : 2]++;
    done_after_disconnect += closing_peer_of->disconnected;
}

struct side {
    struct evpl_bind *bind;
    struct evpl_iovec dst[N]; /* the peer writes here */
    struct evpl_iovec src[N]; /* the peer reads from here */
    struct evpl_iovec out[N]; /* what this end writes */
    struct evpl_iovec in[N];  /* where this end's reads land */
    uint32_t dst_key[N], src_key[N];
    uint64_t dst_addr[N], src_addr[N];
    int done, bad, einval;
};

static void
op_done(int status, void *priv)
{
    struct side *s = priv;

    s->done++;
    s->bad += status != 0;
    s->einval += status == EINVAL;
}

#define M     6000
#define SMALL 4096u
#define SLOTS 16u

/* the small phase: one region each way, written and read in SMALL slots */
struct small {
    struct evpl_iovec dst, src, out, in;
    uint32_t dst_key, src_key;
    uint64_t dst_addr, src_addr;
    int done, bad;
};

static void
small_done(int status, void *priv)
{
    struct small *s = priv;

    s->done++;
    s->bad += status != 0;
}

static void
one_iovec(struct evpl *evpl, struct evpl_iovec *v)
{
    T_EQ(evpl_iovec_alloc(evpl, CHUNK, 0, 1, 0, v), 1);
}

static void
prepare(struct evpl *evpl, struct side *s, uint64_t seed)
{
    for (int i = 0; i < N; i++) {
        one_iovec(evpl, &s->dst[i]);
        one_iovec(evpl, &s->src[i]);
        one_iovec(evpl, &s->out[i]);
        one_iovec(evpl, &s->in[i]);
        memset(s->dst[i].data, 0, CHUNK);
        t_pattern_fill(seed, (uint64_t) i * CHUNK, s->src[i].data, CHUNK);
        t_pattern_fill(seed + 1, (uint64_t) i * CHUNK, s->out[i].data, CHUNK);
        evpl_rdma_get_address(evpl, s->bind, &s->dst[i], &s->dst_key[i], &s->dst_addr[i]);
        evpl_rdma_get_address(evpl, s->bind, &s->src[i], &s->src_key[i], &s->src_addr[i]);
        T_NE(s->dst_key[i], 0);
    }
}

static void
issue(struct evpl *evpl, struct side *s, struct side *peer)
{
    for (int i = 0; i < N; i++) {
        evpl_rdma_write(evpl, s->bind, peer->dst_key[i], peer->dst_addr[i], &s->out[i], 1, 0,
                        op_done, s);
        evpl_rdma_read(evpl, s->bind, peer->src_key[i], peer->src_addr[i], &s->in[i], 1, op_done,
                       s);
    }
}

static void
check(struct side *s, struct side *peer, uint64_t peer_seed)
{
    for (int i = 0; i < N; i++) {
        /* what the peer wrote into s, and what s read from the peer */
        T_EQ(t_pattern_check(peer_seed + 1, (uint64_t) i * CHUNK, s->dst[i].data, CHUNK), -1);
        T_EQ(t_pattern_check(peer_seed, (uint64_t) i * CHUNK, s->in[i].data, CHUNK), -1);
    }
    (void) peer;
}

static void
release(struct evpl *evpl, struct side *s)
{
    for (int i = 0; i < N; i++) {
        evpl_iovec_release(evpl, &s->dst[i]);
        evpl_iovec_release(evpl, &s->src[i]);
        evpl_iovec_release(evpl, &s->out[i]);
        evpl_iovec_release(evpl, &s->in[i]);
    }
}

int
main(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    enum evpl_protocol_id proto;
    static struct side a, b;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c;

    t_net_guard(180);
    evpl_global_config_set_stream_recv_limit(gc, 64u << 10);
    evpl_init(gc);
    proto = t_proto(T_NET_KIND_CDGRAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.keep_msgs = 1;
    t_server_start(&srv, evpl, proto, ep, 1);
    t_connect(evpl, proto, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 10000);
    if (!evpl_bind_is_rdma(c.bind)) {
        T_SKIP("no one-sided operations on this protocol");
    }
    a.bind = c.bind;
    b.bind = srv.conns[0].bind;
    prepare(evpl, &a, 100);
    prepare(evpl, &b, 200);

    issue(evpl, &a, &b);
    issue(evpl, &b, &a);
    T_PUMP(evpl, a.done == 2 * N && b.done == 2 * N, 60000);
    T_EQ(a.bad, 0);
    T_EQ(b.bad, 0);
    check(&a, &b, 200);
    check(&b, &a, 100);
    T_EQ(c.disconnected, 0);
    T_EQ(srv.conns[0].disconnected, 0);

    /* a write and a read whose local iovec overlaps the remote range (one
     * process may hand itself a key to memory it also uses): the bytes
     * land as a move would put them (in-process copied them with memcpy
     * on overlapping memory: helper-81).  Not on RDMA CM: a device's DMA
     * makes no such promise */
    if (!t_proto_is_rdmacm(proto)) {
        static unsigned char want[4096];
        struct evpl_iovec x, part;
        uint32_t key;
        uint64_t addr;
        int before = a.done;

        T_EQ(evpl_iovec_alloc(evpl, 8192, 0, 1, 0, &x), 1);
        evpl_rdma_get_address(evpl, a.bind, &x, &key, &addr);
        t_pattern_fill(500, 0, x.data, 8192);
        memcpy(want, x.data, sizeof(want));
        part = x; /* x[0, 4096) written to x + 100 */
        part.length = sizeof(want);
        evpl_rdma_write(evpl, a.bind, key, addr + 100, &part, 1, 0, op_done, &a);
        T_PUMP(evpl, a.done == before + 1, 10000);
        T_EQ(a.bad, 0);
        T_OK(memcmp((char *) x.data + 100, want, sizeof(want)) == 0);
        t_pattern_fill(501, 0, x.data, 8192);
        memcpy(want, x.data, sizeof(want));
        part.data = (char *) x.data + 100; /* x[0, 4096) read into x + 100 */
        evpl_rdma_read(evpl, a.bind, key, addr, &part, 1, op_done, &a);
        T_PUMP(evpl, a.done == before + 2, 10000);
        T_EQ(a.bad, 0);
        T_OK(memcmp((char *) x.data + 100, want, sizeof(want)) == 0);
        evpl_iovec_release(evpl, &x);
        a.done -= 2;
    }

    /* many small operations both ways: every slot of a region is written
     * with the same bytes, so the result does not depend on the order */
    {
        static struct small sa, sb;
        struct small *ends[2] = {&sa, &sb};
        struct evpl_bind *binds[2] = {a.bind, b.bind};
        int m = (int) t_vm_scale(M, 4); /* (emulated CPUs: the window is TCP-RDMA's) */

        for (int e = 0; e < 2; e++) {
            struct small *s = ends[e];

            T_EQ(evpl_iovec_alloc(evpl, SMALL * SLOTS, 0, 1, 0, &s->dst), 1);
            T_EQ(evpl_iovec_alloc(evpl, SMALL * SLOTS, 0, 1, 0, &s->src), 1);
            T_EQ(evpl_iovec_alloc(evpl, SMALL, 0, 1, 0, &s->out), 1);
            T_EQ(evpl_iovec_alloc(evpl, SMALL, 0, 1, 0, &s->in), 1);
            memset(s->dst.data, 0, SMALL * SLOTS);
            memset(s->in.data, 0, SMALL);
            for (unsigned k = 0; k < SLOTS; k++) {
                t_pattern_fill(300 + (uint64_t) e, 0, (char *) s->src.data + k * SMALL, SMALL);
            }
            t_pattern_fill(400 + (uint64_t) e, 0, s->out.data, SMALL);
            evpl_rdma_get_address(evpl, binds[e], &s->dst, &s->dst_key, &s->dst_addr);
            evpl_rdma_get_address(evpl, binds[e], &s->src, &s->src_key, &s->src_addr);
        }
        for (int i = 0; i < m; i++) {
            for (int e = 0; e < 2; e++) {
                struct small *s = ends[e], *p = ends[!e];
                uint64_t off = (uint64_t) (i % SLOTS) * SMALL;

                evpl_rdma_write(evpl, binds[e], p->dst_key, p->dst_addr + off, &s->out, 1, 0,
                                small_done, s);
                evpl_rdma_read(evpl, binds[e], p->src_key, p->src_addr + off, &s->in, 1, small_done,
                               s);
            }
        }
        T_PUMP(evpl, sa.done == 2 * m && sb.done == 2 * m, 60000);
        for (int e = 0; e < 2; e++) {
            struct small *s = ends[e];

            T_EQ(s->bad, 0);
            /* what the peer wrote into every slot, what this end read */
            for (unsigned k = 0; k < SLOTS; k++) {
                T_EQ(t_pattern_check(400 + (uint64_t) !e, 0, (char *) s->dst.data + k * SMALL,
                                     SMALL),
                     -1);
            }
            T_EQ(t_pattern_check(300 + (uint64_t) !e, 0, s->in.data, SMALL), -1);
            evpl_iovec_release(evpl, &s->dst);
            evpl_iovec_release(evpl, &s->src);
            evpl_iovec_release(evpl, &s->out);
            evpl_iovec_release(evpl, &s->in);
        }
        T_EQ(c.disconnected, 0);
    }

    /* not library memory */
    {
        static char plain[64];
        struct evpl_iovec v = {.data = plain, .length = sizeof(plain), .ref = NULL};
        int before = a.done, bad = a.bad;

        evpl_rdma_read(evpl, a.bind, b.src_key[0], b.src_addr[0], &v, 1, op_done, &a);
        evpl_rdma_write(evpl, a.bind, b.dst_key[0], b.dst_addr[0], &v, 1, EVPL_RDMA_FLAG_TAKE_REF,
                        op_done, &a);
        T_EQ(a.done, before); /* never inside the call */
        T_PUMP(evpl, a.done == before + 2, 5000);
        T_EQ(a.bad, bad + 2);
        T_EQ(a.einval, 2);
        /* and the connection still carries operations */
        evpl_rdma_read(evpl, a.bind, b.src_key[1], b.src_addr[1], &a.in[1], 1, op_done, &a);
        T_PUMP(evpl, a.done == before + 3, 10000);
        T_EQ(a.bad, bad + 2);
        T_EQ(c.disconnected, 0);
    }

    /* the server end closes while the client's writes are on their way */
    cut_status = t_proto_is_rdmacm(proto) ? EIO : ECONNRESET;
    closing_peer_of = &c;
    for (int i = 0; i < N; i++) {
        evpl_rdma_write(evpl, c.bind, b.dst_key[i], b.dst_addr[i], &a.out[i], 1, 0, cut_done, NULL);
    }
    evpl_close(evpl, srv.conns[0].bind);
    T_PUMP(evpl, c.disconnected && srv.conns[0].disconnected, 30000);
    fprintf(stderr, "peer closed: %d completed, %d cut short (status %d)\n", statuses[0],
            statuses[1], cut_status);
    T_EQ(statuses[0] + statuses[1] + statuses[2], N);
    T_EQ(statuses[2], 0);
    T_EQ(done_after_disconnect, 0);
    release(evpl, &a);
    release(evpl, &b);
    t_conn_free(&c);
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
