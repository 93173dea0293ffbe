/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: vm rdma threads */
/*
 * EVPL_DATAGRAM_RDMACM_UD under load, across loops: 3 threads, each with
 * its own loop and 3 UD binds.  Every bind sends M datagrams of random
 * sizes (16 bytes to a packet) to random binds of any thread, at most W
 * unanswered at a time; a receiver checks each datagram (addressed to it,
 * payload intact) and answers it to recv_msg.addr, and the sender checks
 * that each answer is its own.  Every datagram must be answered: with the
 * window, no receiver ever has more datagrams in flight towards it than
 * the receives its loop keeps posted, so nothing may be lost.
 *
 * Needs an RDMA device: soft-RoCE in the test VM (tests/vm); skips (77)
 * elsewhere.
 */
#include "../net/t_net.h"

#define NT    3
#define NB    3
#define NALL  (NT * NB)
#define W     8
#define MTU   1024
#define MAGIC 0x55445354u /* "UDST" */
#define ACK   0x55444143u /* "UDAC" */

struct hdr {
    uint32_t magic;
    uint16_t from, to;
    uint32_t seq, len;
};

struct ub {
    int idx;
    struct evpl *evpl;
    struct evpl_bind *bind;
    uint32_t next_seq, acked, outstanding;
    uint8_t *answered; /* per seq */
    int bad, disconnected;
    uint64_t rng;
};

static struct evpl_endpoint *eps[NALL];
static struct ub ubs[NALL];
static pthread_barrier_t bound, all_done_barrier;
static atomic_int done;
static _Atomic uint8_t *got[NALL]; /* diagnostics: [from][seq] data arrived */
static uint32_t M;

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void
send_one(struct ub *u)
{
    uint8_t buf[MTU];
    struct hdr h;
    uint32_t len = 16 + (uint32_t) (rnd(&u->rng) % (MTU - 16 + 1));
    int to;

    do {
        to = (int) (rnd(&u->rng) % NALL);
    } while (to == u->idx);
    h.magic = MAGIC;
    h.from = (uint16_t) u->idx;
    h.to = (uint16_t) to;
    h.seq = u->next_seq++;
    h.len = len;
    memcpy(buf, &h, sizeof(h));
    t_pattern_fill((uint64_t) u->idx << 32 | h.seq, 0, buf + sizeof(h), len - sizeof(h));
    evpl_sendtoep(u->evpl, u->bind, eps[to], buf, len);
    u->outstanding++;
}

static void
fill_window(struct ub *u)
{
    while (u->outstanding < W && u->next_seq < M) {
        send_one(u);
    }
}

static void
notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *arg)
{
    struct ub *u = arg;
    uint8_t buf[MTU];
    struct hdr h;
    uint32_t len = 0;

    (void) bind;
    if (n->notify_type == EVPL_NOTIFY_DISCONNECTED) {
        u->disconnected++;
        return;
    }
    if (n->notify_type != EVPL_NOTIFY_RECV_MSG) {
        return;
    }
    for (unsigned int i = 0; i < n->recv_msg.niov; i++) {
        if (len + n->recv_msg.iovec[i].length <= sizeof(buf)) {
            memcpy(buf + len, n->recv_msg.iovec[i].data, n->recv_msg.iovec[i].length);
        }
        len += n->recv_msg.iovec[i].length;
    }
    evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
    if (len < sizeof(h) || len > sizeof(buf)) {
        u->bad++;
        return;
    }
    memcpy(&h, buf, sizeof(h));
    if (h.magic == MAGIC) {
        /* a datagram for us, intact: answered to whoever sent it */
        if (h.to != u->idx || h.len != len || h.from >= NALL ||
            t_pattern_check((uint64_t) h.from << 32 | h.seq, 0, buf + sizeof(h), len - sizeof(h)) !=
                -1 ||
            !n->recv_msg.addr) {
            u->bad++;
            return;
        }
        got[h.from][h.seq] = 1;
        h.magic = ACK;
        evpl_sendto(evpl, u->bind, n->recv_msg.addr, &h, sizeof(h));
    } else if (h.magic == ACK) {
        /* an answer: to us, for something we sent and not answered yet */
        if (h.from != u->idx || h.seq >= u->next_seq || u->answered[h.seq] || len != sizeof(h)) {
            u->bad++;
            return;
        }
        u->answered[h.seq] = 1;
        u->acked++;
        u->outstanding--;
        if (u->acked == M) {
            atomic_fetch_add(&done, 1);
        }
        fill_window(u);
    } else {
        u->bad++;
    }
}

static void *
worker(void *arg)
{
    int t = (int) (intptr_t) arg;
    struct evpl *evpl = t_net_loop();
    uint64_t deadline;

    for (int b = 0; b < NB; b++) {
        struct ub *u = &ubs[t * NB + b];

        u->idx = t * NB + b;
        u->evpl = evpl;
        u->rng = 0x9e3779b97f4a7c15ull * (uint64_t) (u->idx + 1);
        u->answered = calloc(M, 1);
        T_OK(u->answered != NULL);
        u->bind = evpl_bind(evpl, EVPL_DATAGRAM_RDMACM_UD, eps[u->idx], notify, u);
        T_OK(u->bind != NULL);
    }
    /* nobody sends before every bind exists (a datagram for an address
     * nobody is bound to yet is dropped) */
    pthread_barrier_wait(&bound);
    for (int b = 0; b < NB; b++) {
        fill_window(&ubs[t * NB + b]);
    }
    deadline = t_now_ns() + 30000000000ull;
    while (atomic_load(&done) < NALL && t_now_ns() < deadline) {
        evpl_continue(evpl);
    }
    if (atomic_load(&done) < NALL) {
        for (int b = 0; b < NB; b++) {
            struct ub *u = &ubs[t * NB + b];

            fprintf(stderr, "bind %d: %u of %u answered, %u outstanding, %d bad\n", u->idx,
                    u->acked, M, u->outstanding, u->bad);
            for (uint32_t q = 0; q < u->next_seq; q++) {
                if (!u->answered[q]) {
                    fprintf(stderr, "  seq %u: %s\n", q,
                            got[u->idx][q] ? "data arrived, answer lost" : "data lost");
                }
            }
        }
    }
    /* everyone's answers are in before anyone closes */
    pthread_barrier_wait(&all_done_barrier);
    for (int b = 0; b < NB; b++) {
        evpl_close(evpl, ubs[t * NB + b].bind);
    }
    deadline = t_now_ns() + 10000000000ull;
    for (;;) {
        int n = 0;

        for (int b = 0; b < NB; b++) {
            n += ubs[t * NB + b].disconnected;
        }
        if (n == NB || t_now_ns() > deadline) {
            break;
        }
        evpl_continue(evpl);
    }
    evpl_destroy(evpl);
    return NULL;
}

int
main(void)
{
    pthread_t th[NT];

    t_net_guard(300);
    {
        enum evpl_protocol_id id;

        if (evpl_protocol_lookup(&id, "DATAGRAM_RDMACM_UD") != 0) {
            fprintf(stderr, "no RDMA device: skipped\n");
            return 77;
        }
    }
    M = (uint32_t) t_vm_scale(3000, 3);
    for (int i = 0; i < NALL; i++) {
        eps[i] = t_endpoint(EVPL_DATAGRAM_RDMACM_UD);
        got[i] = calloc(M, 1);
    }
    pthread_barrier_init(&bound, NULL, NT);
    pthread_barrier_init(&all_done_barrier, NULL, NT);
    for (int t = 0; t < NT; t++) {
        T_EQ(pthread_create(&th[t], NULL, worker, (void *) (intptr_t) t), 0);
    }
    for (int t = 0; t < NT; t++) {
        pthread_join(th[t], NULL);
    }
    for (int i = 0; i < NALL; i++) {
        T_EQ(ubs[i].bad, 0);
        T_EQ_U(ubs[i].acked, M);
        T_EQ(ubs[i].disconnected, 1);
        free(ubs[i].answered);
        evpl_endpoint_close(eps[i]);
    }
    return 0;
}
