/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: rdma */
/*
 * Stream flow control on STREAM_RDMACM_RC at the wire, against a peer
 * written with plain librdmacm/verbs in a thread of this process (the
 * format is described in src/backends/rdmacm/rdmacm.c):
 *
 *  1. A peer that says nothing when it connects (as upstream libevpl):
 *     the accepting end answers without our hello and never sends it a
 *     control message.  All it sends is buffered (no flow control with
 *     such a peer), then read whole and in order.
 *  2. A peer that offers the hello gets it back.  Sending to a bind that
 *     reads nothing, it receives PAUSE (a zero-length send with immediate
 *     0x45560001) and stops; the bind then holds what the peer had in
 *     flight at most.  Once the bind is read, RESUME (0x45560002) comes,
 *     and every byte arrives once, in order.
 *  3. Bad input: the same peer then sends an immediate that is no control
 *     message: the connection ends with an error (-EPROTO), no crash.
 *  4. A peer that posts no receives: our PAUSE and RESUME to it are still
 *     in flight (RNR retries) when it disconnects after everything it sent
 *     was read: the bind ends cleanly (0, not -ECONNRESET).
 *  5. (T_FLOW_PART=budget; T_FLOW_POLL=1: on a busy-polling loop)
 *     Fairness: 3000 small messages wait in the completion queue (the
 *     application's first RECV_DATA returns only once the peer has sent
 *     them all) and a 1 us timer is armed then: it fires after the next
 *     few hundred, not after all of them (one look at the queue has a
 *     budget; before, it lasted as long as the queue had completions).
 *
 * Needs an RDMA device: soft-RoCE in the test VM (tests/vm); skips (77)
 * elsewhere.
 */
#include "../net/t_net.h"

#ifdef HAVE_RDMACM
#include <arpa/inet.h>
#include <rdma/rdma_cma.h>
#include <rdma/rdma_verbs.h>

#define LIMIT  (256u << 10)
#define MSG    (64u << 10)
#define TOTAL  (4ull << 20)
#define DEPTH  16 /* the peer's sends in flight */
#define NRECV  32
#define SEED   0xf10c
#define PAUSE  0x45560001u
#define RESUME 0x45560002u
#define BOGUS  0x45560099u
#define CASE4  (LIMIT + 4 * MSG)
/* case 5: small messages, fewer than the receives posted up front (4096:
 * half the completion queue) */
#define SMALL       64
#define FLOOD       3000
#define FLOOD_DEPTH 128

static int port;
static uint8_t *data;

/* set by the peer thread, read by the test */
static atomic_int peer_phase;         /* 1: case 1 sent all; 2: case 2 saw PAUSE; 3: saw RESUME,
                                      * sent all; 4: sent the bogus immediate; -1: failed */
static atomic_int peer_hello_back[3]; /* the accepting end's answer carried our hello */
static atomic_int peer_imms[3];       /* control messages received, by case */
static atomic_ullong peer_sent_at_pause;
/* set by the test */
static atomic_int
    test_go; /* 1: case 1 read, go on to case 2; 2: case 2 read, send bogus; 3: done */

#define PEER_FAIL(...)                         \
    do {                                       \
        fprintf(stderr, "peer: " __VA_ARGS__); \
        fprintf(stderr, "\n");                 \
        atomic_store(&peer_phase, -1);         \
        return NULL;                           \
    } while (0)

struct peer {
    struct rdma_cm_id *id;
    struct ibv_mr *mr, *rmr;
    uint8_t rbuf[NRECV][64];
    int inflight;
    uint64_t off;
};

static int
post_recv(struct peer *p, int i)
{
    struct ibv_sge sge = {(uintptr_t) p->rbuf[i], sizeof(p->rbuf[i]), p->rmr->lkey};
    struct ibv_recv_wr wr = {.wr_id = (uint64_t) i, .sg_list = &sge, .num_sge = 1}, *bad;

    return ibv_post_recv(p->id->qp, &wr, &bad);
}

static int
post_send(struct peer *p, uint32_t len, int imm, uint32_t immv)
{
    struct ibv_sge sge = {(uintptr_t) (data + p->off), len, p->mr->lkey};
    struct ibv_send_wr wr = {.sg_list = &sge, .num_sge = len ? 1 : 0}, *bad;

    wr.opcode = imm ? IBV_WR_SEND_WITH_IMM : IBV_WR_SEND;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.imm_data = htonl(immv);
    if (ibv_post_send(p->id->qp, &wr, &bad) != 0) {
        return -1;
    }
    p->inflight++;
    p->off += len;
    return 0;
}

/* Reap completions: -1 on an error, else the last control immediate seen
 * (0: none). */
static int64_t
reap(struct peer *p, int which)
{
    struct ibv_wc wc[16];
    int64_t last = 0;
    int n;

    while ((n = ibv_poll_cq(p->id->send_cq, 16, wc)) > 0) {
        for (int i = 0; i < n; i++) {
            if (wc[i].status != IBV_WC_SUCCESS) {
                fprintf(stderr, "peer: send: %s\n", ibv_wc_status_str(wc[i].status));
                return -1;
            }
            p->inflight--;
        }
    }
    while ((n = ibv_poll_cq(p->id->recv_cq, 16, wc)) > 0) {
        for (int i = 0; i < n; i++) {
            if (wc[i].status != IBV_WC_SUCCESS) {
                fprintf(stderr, "peer: receive: %s\n", ibv_wc_status_str(wc[i].status));
                return -1;
            }
            atomic_fetch_add(&peer_imms[which], 1);
            if (!(wc[i].wc_flags & IBV_WC_WITH_IMM) || wc[i].byte_len != 0) {
                fprintf(stderr, "peer: a message that is no control message (%u bytes)\n",
                        wc[i].byte_len);
                return -1;
            }
            last = ntohl(wc[i].imm_data);
            if (post_recv(p, (int) wc[i].wr_id) != 0) {
                return -1;
            }
        }
    }
    return last;
}

/* Send until off reaches total, len bytes a message, depth in flight, and
 * wait for the last completion: 0, or -1 on an error. */
static int
send_all(struct peer *p, uint64_t total, uint32_t len, int depth, int which)
{
    while (p->off < total || p->inflight) {
        if (p->off < total && p->inflight < depth && post_send(p, len, 0, 0) != 0) {
            return -1;
        }
        if (reap(p, which) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Connect, offering our hello or not; records whether it came back. */
static int
peer_connect(struct peer *p, int hello, int which, int nrecv)
{
    char portstr[16];
    struct rdma_addrinfo hints, *res = NULL;
    struct ibv_qp_init_attr attr;
    struct rdma_conn_param cp;
    static const uint8_t ours[8] = {'E', 'V', 'R', 'C', 1, 1, 0, 0};
    const struct rdma_cm_event *ev;

    memset(p, 0, sizeof(*p));
    snprintf(portstr, sizeof(portstr), "%d", port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_port_space = RDMA_PS_TCP;
    if (rdma_getaddrinfo(t_rdma_addr(), portstr, &hints, &res) != 0) {
        return -1;
    }
    memset(&attr, 0, sizeof(attr));
    attr.cap.max_send_wr = FLOOD_DEPTH + 2;
    attr.cap.max_recv_wr = NRECV;
    attr.cap.max_send_sge = attr.cap.max_recv_sge = 1;
    attr.sq_sig_all = 1;
    if (rdma_create_ep(&p->id, res, NULL, &attr) != 0) {
        rdma_freeaddrinfo(res);
        return -1;
    }
    rdma_freeaddrinfo(res);
    p->mr = ibv_reg_mr(p->id->pd, data, TOTAL, IBV_ACCESS_LOCAL_WRITE);
    p->rmr = ibv_reg_mr(p->id->pd, p->rbuf, sizeof(p->rbuf), IBV_ACCESS_LOCAL_WRITE);
    if (!p->mr || !p->rmr) {
        return -1;
    }
    for (int i = 0; i < nrecv; i++) {
        if (post_recv(p, i) != 0) {
            return -1;
        }
    }
    memset(&cp, 0, sizeof(cp));
    cp.responder_resources = 1;
    cp.initiator_depth = 1;
    cp.retry_count = 7;
    cp.rnr_retry_count = 7;
    if (hello) {
        cp.private_data = ours;
        cp.private_data_len = sizeof(ours);
    }
    if (rdma_connect(p->id, &cp) != 0) {
        return -1;
    }
    /* (synchronous: the ESTABLISHED event, with the answer, stays on the id) */
    ev = p->id->event;
    if (ev && ev->param.conn.private_data && ev->param.conn.private_data_len >= 8 &&
        memcmp(ev->param.conn.private_data, "EVRC\1\1", 6) == 0) {
        atomic_store(&peer_hello_back[which], 1);
    }
    return 0;
}

/* Its memory and endpoint back (disconnected already). */
static void
peer_free(struct peer *p)
{
    ibv_dereg_mr(p->mr);
    ibv_dereg_mr(p->rmr);
    rdma_destroy_ep(p->id);
}

static void
peer_close(struct peer *p)
{
    rdma_disconnect(p->id);
    peer_free(p);
}

/* T_FLOW_PART=budget: case 5 alone (its own receive configuration) */
static int budget_part;

static void *
peer(void *arg)
{
    struct peer p;
    int64_t imm;
    uint64_t deadline;

    (void) arg;
    if (budget_part) {
        goto flood;
    }
    /* 1: no hello; all of it goes, and nothing comes back */
    if (peer_connect(&p, 0, 0, NRECV) != 0) {
        PEER_FAIL("connect (no hello): %s", strerror(errno));
    }
    if (send_all(&p, TOTAL, MSG, DEPTH, 0) != 0) {
        PEER_FAIL("case 1");
    }
    atomic_store(&peer_phase, 1);
    while (atomic_load(&test_go) < 1) {
        if (reap(&p, 0) < 0) {
            PEER_FAIL("case 1, waiting");
        }
    }
    peer_close(&p);

    /* 2: with the hello; stop at PAUSE, go on at RESUME */
    if (peer_connect(&p, 1, 1, NRECV) != 0) {
        PEER_FAIL("connect (hello): %s", strerror(errno));
    }
    deadline = t_now_ns() + 20ull * 1000000000ull;
    for (;;) {
        if (p.off < TOTAL && p.inflight < DEPTH && post_send(&p, MSG, 0, 0) != 0) {
            PEER_FAIL("post");
        }
        imm = reap(&p, 1);
        if (imm < 0) {
            PEER_FAIL("case 2");
        }
        if (imm == PAUSE) {
            break;
        }
        if (imm || p.off >= TOTAL || t_now_ns() > deadline) {
            PEER_FAIL("no PAUSE (immediate %#llx, sent %llu)", (unsigned long long) imm,
                      (unsigned long long) p.off);
        }
    }
    atomic_store(&peer_sent_at_pause, p.off);
    atomic_store(&peer_phase, 2);
    while ((imm = reap(&p, 1)) != RESUME) {
        if (imm != 0 || t_now_ns() > deadline) {
            PEER_FAIL("no RESUME (immediate %#llx)", (unsigned long long) imm);
        }
    }
    while (p.off < TOTAL || p.inflight) {
        if (p.off < TOTAL && p.inflight < DEPTH && post_send(&p, MSG, 0, 0) != 0) {
            PEER_FAIL("post");
        }
        imm = reap(&p, 1);
        if (imm < 0 || t_now_ns() > deadline) {
            PEER_FAIL("case 2, the rest");
        }
        if (imm == PAUSE) {
            /* (the test reads as it goes: a pause may come again) */
            while ((imm = reap(&p, 1)) != RESUME) {
                if (imm < 0 || t_now_ns() > deadline) {
                    PEER_FAIL("paused again, no RESUME");
                }
            }
        }
    }
    atomic_store(&peer_phase, 3);
    while (atomic_load(&test_go) < 2) {
        (void) reap(&p, 1);
    }

    /* 3: an immediate that is no control message */
    p.off = 0;
    if (post_send(&p, 0, 1, BOGUS) != 0) {
        PEER_FAIL("post bogus");
    }
    atomic_store(&peer_phase, 4);
    while (atomic_load(&test_go) < 3) {
        (void) reap(&p, 1); /* (errors expected: the other end is gone) */
    }
    peer_close(&p);

    /* 4: no receives posted, so the other end's PAUSE and RESUME wait here
     * (RNR, retried without end: rnr_retry_count 7) when this end leaves */
    if (peer_connect(&p, 1, 2, 0) != 0) {
        PEER_FAIL("connect (no receives): %s", strerror(errno));
    }
    if (send_all(&p, CASE4, MSG, DEPTH, 2) != 0) {
        PEER_FAIL("case 4");
    }
    atomic_store(&peer_phase, 5);
    while (atomic_load(&test_go) < 4) {
        usleep(1000);
    }
    rdma_disconnect(p.id);
    atomic_store(&peer_phase, 6);
    while (atomic_load(&test_go) < 5) {
        usleep(1000);
    }
    peer_free(&p);
    return NULL;

flood:
    /* 5: a flood of small messages */
    if (peer_connect(&p, 0, 0, NRECV) != 0) {
        PEER_FAIL("connect (flood): %s", strerror(errno));
    }
    if (send_all(&p, (uint64_t) FLOOD * SMALL, SMALL, FLOOD_DEPTH, 0) != 0) {
        PEER_FAIL("case 5");
    }
    atomic_store(&peer_phase, 7);
    while (atomic_load(&test_go) < 6) {
        usleep(1000);
    }
    peer_close(&p);
    return NULL;
}

/* case 5: the application takes its time over every message */
static uint64_t flood_got, flood_got_at_timer, flood_start;
static int timer_armed, timer_fired;
static struct evpl_timer flood_timer;

static void
flood_timer_cb(struct evpl *evpl, struct evpl_timer *timer)
{
    (void) evpl;
    (void) timer;
    timer_fired = 1;
    flood_got_at_timer = flood_got;
}

static void
flood_hook(struct t_conn *c, struct evpl_notify *n)
{
    if (n->notify_type != EVPL_NOTIFY_RECV_DATA) {
        return;
    }
    t_recv_pattern(c->evpl, c->bind, SEED, &flood_got);
    if (!timer_armed) {
        uint64_t deadline = t_now_ns() + 30ull * 1000000000ull;

        /* the rest lands meanwhile (its receives are posted) */
        while (atomic_load(&peer_phase) != 7) {
            T_OK(atomic_load(&peer_phase) >= 0);
            T_OK(t_now_ns() < deadline);
            usleep(1000);
        }
        timer_armed = 1;
        evpl_add_oneshot_timer(c->evpl, &flood_timer, flood_timer_cb, 1);
    }
}

static int
server_phase_wait(struct evpl *evpl, int phase)
{
    uint64_t deadline = t_now_ns() + 30ull * 1000000000ull;

    while (atomic_load(&peer_phase) != phase) {
        if (atomic_load(&peer_phase) < 0) {
            return -1;
        }
        T_OK(t_now_ns() < deadline);
        evpl_continue(evpl);
    }
    return 0;
}

int
main(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    static uint8_t peekbuf[TOTAL];
    uint64_t checked = 0;
    pthread_t th;
    int buffered;

    t_net_guard(120);
    budget_part = getenv("T_FLOW_PART") && strcmp(getenv("T_FLOW_PART"), "budget") == 0;
    evpl_global_config_set_stream_recv_limit(gc, LIMIT);
    if (budget_part) {
        /* room for every message of case 5 to land before the loop looks */
        evpl_global_config_set_rdmacm_srq_prefill(gc, 1);
    }
    evpl_init(gc);
    proto = t_proto(T_NET_KIND_STREAM);
    if (!t_proto_is_rdmacm(proto)) {
        T_SKIP("an RDMA RC stream test");
    }
    data = malloc(TOTAL);
    T_OK(data != NULL);
    t_pattern_fill(SEED, 0, data, TOTAL);
    if (getenv("T_FLOW_POLL")) {
        /* busy-polling: its poll-only passes run no timers */
        struct evpl_thread_config *tc = evpl_thread_config_init();

        evpl_thread_config_set_poll_mode(tc, 1);
        evpl = evpl_create(tc);
        T_OK(evpl != NULL);
        evpl_thread_config_release(tc);
    } else {
        evpl = t_net_loop();
    }
    ep = t_endpoint(proto);
    port = evpl_endpoint_port(ep);
    memset(&srv, 0, sizeof(srv));
    srv.autodrain = 0;
    srv.keep_msgs = 1;
    if (budget_part) {
        srv.hook = flood_hook;
    }
    t_server_start(&srv, evpl, proto, ep, 4);
    T_EQ(pthread_create(&th, NULL, peer, NULL), 0);
    if (budget_part) {
        goto flood;
    }

    /* 1 */
    T_EQ(server_phase_wait(evpl, 1), 0);
    t_pump_for(evpl, 300); /* (a control message would come now, if any) */
    T_EQ(srv.n, 1);
    T_EQ(atomic_load(&peer_hello_back[0]), 0);
    T_EQ(atomic_load(&peer_imms[0]), 0);
    buffered = evpl_peek(evpl, srv.conns[0].bind, peekbuf, sizeof(peekbuf));
    T_EQ_U((uint64_t) buffered, TOTAL);
    t_recv_pattern(evpl, srv.conns[0].bind, SEED, &checked);
    T_EQ_U(checked, TOTAL);
    atomic_store(&test_go, 1);
    T_PUMP(evpl, srv.conns[0].disconnected, 10000);
    T_EQ(srv.conns[0].disconnect_status, 0);

    /* 2: nothing is read until the peer has stopped */
    T_EQ(server_phase_wait(evpl, 2), 0);
    T_EQ(atomic_load(&peer_hello_back[1]), 1);
    t_pump_for(evpl, 300);
    T_EQ(srv.n, 2);
    buffered = evpl_peek(evpl, srv.conns[1].bind, peekbuf, sizeof(peekbuf));
    fprintf(stderr, "paused: the peer had sent %llu, the bind holds %d\n",
            (unsigned long long) atomic_load(&peer_sent_at_pause), buffered);
    T_OK(buffered > (int) LIMIT);
    /* what the peer had sent when PAUSE got there (how much that is
     * depends on when the loop looked: the device takes messages in
     * without it), and nothing after */
    T_EQ_U((uint64_t) buffered, atomic_load(&peer_sent_at_pause));
    checked = 0;
    {
        uint64_t deadline = t_now_ns() + 30ull * 1000000000ull;

        while (checked < TOTAL) {
            t_recv_pattern(evpl, srv.conns[1].bind, SEED, &checked);
            evpl_continue(evpl);
            T_OK(atomic_load(&peer_phase) >= 0);
            T_OK(t_now_ns() < deadline);
        }
    }
    T_EQ(server_phase_wait(evpl, 3), 0);
    T_EQ_U(checked, TOTAL);
    T_EQ(srv.conns[1].disconnected, 0);
    T_OK(atomic_load(&peer_imms[1]) >= 2);

    /* 3 */
    atomic_store(&test_go, 2);
    T_EQ(server_phase_wait(evpl, 4), 0);
    T_PUMP(evpl, srv.conns[1].disconnected, 10000);
    T_EQ(srv.conns[1].disconnect_status, -EPROTO);
    T_EQ(srv.conns[0].errors + srv.conns[1].errors, 0);
    atomic_store(&test_go, 3);

    /* 4: every byte is read (PAUSE, then RESUME, are posted to a peer
     * with no receives); the peer leaves cleanly with both still on their
     * way: DISCONNECTED with 0, not -ECONNRESET */
    T_EQ(server_phase_wait(evpl, 5), 0);
    T_EQ(atomic_load(&peer_hello_back[2]), 1);
    T_EQ(srv.n, 3);
    checked = 0;
    {
        uint64_t deadline = t_now_ns() + 30ull * 1000000000ull;

        while (checked < CASE4) {
            t_recv_pattern(evpl, srv.conns[2].bind, SEED, &checked);
            evpl_continue(evpl);
            T_OK(t_now_ns() < deadline);
        }
    }
    t_pump_for(evpl, 100);
    T_EQ(srv.conns[2].disconnected, 0);
    atomic_store(&test_go, 4);
    T_EQ(server_phase_wait(evpl, 6), 0);
    T_PUMP(evpl, srv.conns[2].disconnected, 10000);
    T_EQ(srv.conns[2].disconnect_status, 0);
    T_EQ(srv.conns[2].errors, 0);
    atomic_store(&test_go, 5);
    pthread_join(th, NULL);
    goto done;

flood:
    /* 5 */
    {
        uint64_t deadline = t_now_ns() + 60ull * 1000000000ull;

        flood_start = t_now_ns();

        while (atomic_load(&peer_phase) != 7 || flood_got < (uint64_t) FLOOD * SMALL) {
            T_OK(atomic_load(&peer_phase) >= 0);
            T_OK(t_now_ns() < deadline);
            evpl_continue(evpl);
        }
    }
    T_EQ(srv.n, 1);
    T_EQ_U(flood_got, (uint64_t) FLOOD * SMALL);
    fprintf(stderr, "flood: the timer fired after %llu of %llu bytes (%.2f s in all)\n",
            (unsigned long long) flood_got_at_timer, (unsigned long long) FLOOD * SMALL,
            (double) (t_now_ns() - flood_start) / 1e9);
    T_EQ(timer_fired, 1);
    T_LT(flood_got_at_timer, (uint64_t) FLOOD * SMALL / 2);
    T_EQ(srv.conns[0].errors, 0);
    atomic_store(&test_go, 6);
    T_PUMP(evpl, srv.conns[0].disconnected, 10000);
    pthread_join(th, NULL);

done:
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    free(data);
    return 0;
}
#else
int
main(void)
{
    return 77; /* built without librdmacm */
}
#endif
