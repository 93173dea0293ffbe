/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * DATAGRAM_TCP_RDMA under pressure and around connect/close:
 *  - a frame larger than the receive limit still arrives;
 *  - a peer that floods READ_REQUESTs without reading the replies does not
 *    make us queue them without bound (replies are not copies, and beyond
 *    the bound of reply headers owed its requests wait); once it reads,
 *    every reply comes, in order;
 *  - evpl_finish after the peer shut down its write side still hands the
 *    whole reply over;
 *  - a send and a one-sided read issued right after evpl_connect (before
 *    CONNECTED) both go once connected;
 *  - an operation the receiver would refuse (above max_msg_size), or one
 *    on a closing bind, fails through its callback, never inside the call,
 *    and before the bind's DISCONNECTED; a datagram above it ends the
 *    sending bind with -EMSGSIZE.
 */

#include "t_net.h"

#define MAGIC 0x54524D41u
#define LIMIT (64u << 10)

enum { SEND = 1, READ_REQ = 2, READ_REPLY = 3 };

static void
put_hdr(int fd, uint32_t op, uint32_t len, uint32_t key, uint64_t addr, uint64_t id)
{
    t_trma_put(fd, MAGIC, op, len, key, addr, id);
}

static long
rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    T_OK(f != NULL);
    T_EQ(fscanf(f, "%ld %ld", &pages, &resident), 2);
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- a raw peer reading replies on its own thread ---- */

#define NREQ     12000
#define REQ_SIZE (4u << 10)

struct drain {
    int fd;
    const unsigned char *region; /* what the replies must hold */
    int replies, bad;
    atomic_int done;
};

static void *
drain_replies(void *arg)
{
    struct drain *d = arg;
    static unsigned char buf[REQ_SIZE];

    for (int i = 0; i < NREQ; i++) {
        unsigned char h[32];
        uint32_t op, len;
        uint64_t id;

        t_read_all(d->fd, h, 32);
        memcpy(&op, h + 4, 4);
        memcpy(&len, h + 8, 4);
        memcpy(&id, h + 24, 8);
        if (be32toh(op) != READ_REPLY || be32toh(len) != REQ_SIZE || be64toh(id) != (uint64_t) i) {
            d->bad++;
            break;
        }
        t_read_all(d->fd, buf, REQ_SIZE);
        d->bad += memcmp(buf, d->region, REQ_SIZE) != 0;
        d->replies++;
    }
    atomic_store(&d->done, 1);
    return NULL;
}

/* ---- the server's part in the half-close case ---- */

#define REPLY (3u << 20)

static void
reply_and_finish(struct t_conn *c, struct evpl_notify *n)
{
    static char big[REPLY];

    if (n->notify_type == EVPL_NOTIFY_RECV_MSG && c->user) {
        memset(big, 'r', sizeof(big));
        evpl_send(c->evpl, c->bind, big, REPLY);
        evpl_finish(c->evpl, c->bind);
    }
}

/* The raw peer's side of the half-close case: the reply, then EOF. */
struct tail {
    int fd;
    int ok;
    atomic_int done;
};

static void *
read_reply(void *arg)
{
    struct tail *t = arg;
    static unsigned char body[REPLY];
    unsigned char h[32];
    uint32_t len;
    char extra;

    t_read_all(t->fd, h, 32);
    memcpy(&len, h + 8, 4);
    if (be32toh(len) == REPLY) {
        t_read_all(t->fd, body, REPLY);
        t->ok = body[0] == 'r' && body[REPLY - 1] == 'r' && read(t->fd, &extra, 1) == 0;
    }
    atomic_store(&t->done, 1);
    return NULL;
}

/* A raw peer's write on its own thread, while the loop reads. */
struct writer {
    int fd;
    const void *buf;
    size_t len;
};

static void *
write_thread(void *arg)
{
    struct writer *w = arg;

    t_write_all(w->fd, w->buf, w->len);
    return NULL;
}

/* ---- a raw peer that reads everything and answers nothing ---- */

#define NOANSWER 4100 /* more than one connection keeps awaiting replies */

struct sink {
    int fd;
    unsigned char tail[37]; /* the last bytes that came */
    uint64_t total;
    atomic_int done;
};

static void *
sink_thread(void *arg)
{
    struct sink *k = arg;
    static unsigned char buf[65536];
    ssize_t n;

    while ((n = read(k->fd, buf, sizeof(buf))) > 0) {
        if ((size_t) n >= sizeof(k->tail)) {
            memcpy(k->tail, buf + n - sizeof(k->tail), sizeof(k->tail));
        } else {
            memmove(k->tail, k->tail + n, sizeof(k->tail) - (size_t) n);
            memcpy(k->tail + sizeof(k->tail) - n, buf, (size_t) n);
        }
        k->total += (uint64_t) n;
    }
    atomic_store(&k->done, 1);
    return NULL;
}

static int noanswer_done, noanswer_reset;

static void
noanswer_cb(int status, void *priv)
{
    (void) priv;
    noanswer_done++;
    noanswer_reset += status == ECONNRESET;
}

struct op {
    int done, status, during_call;
};

static int in_call;

static void
op_cb(int status, void *priv)
{
    struct op *o = priv;

    o->done++;
    o->status = status;
    o->during_call += in_call;
}

int
main(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    enum evpl_protocol_id proto = EVPL_DATAGRAM_TCP_RDMA;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn *sc, c;
    struct evpl_iovec region, r, big[4];
    int nbig;
    uint32_t key;
    uint64_t addr;
    int fd;

    t_net_guard(120);
    evpl_global_config_set_stream_recv_limit(gc, LIMIT);
    evpl_global_config_set_max_msg_size(gc, 4u << 20);
    evpl_init(gc);
    if (!evpl_protocol_available(proto)) {
        T_SKIP("DATAGRAM_TCP_RDMA unavailable");
    }
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.keep_msgs = 1;
    srv.hook = reply_and_finish;
    t_server_start(&srv, evpl, proto, ep, 8);

    T_EQ(evpl_iovec_alloc(evpl, REQ_SIZE, 0, 1, 0, &region), 1);
    for (unsigned i = 0; i < REQ_SIZE; i++) {
        ((unsigned char *) region.data)[i] = (unsigned char) (i * 13 + 1);
    }

    /* a 1 MiB SEND through a 64 KiB receive limit */
    fd = t_raw_connect(ep);
    T_OK(fd >= 0);
    T_PUMP(evpl, srv.n == 1 && srv.conns[0].connected, 5000);
    sc = &srv.conns[0];
    {
        static unsigned char m[1u << 20];

        for (unsigned i = 0; i < sizeof(m); i++) {
            m[i] = (unsigned char) (i * 7);
        }
        struct writer w = {.fd = fd, .buf = m, .len = sizeof(m)};
        pthread_t th;

        put_hdr(fd, SEND, sizeof(m), 0, 0, 0);
        /* (more than the socket buffers may hold: written while the loop reads) */
        T_EQ(pthread_create(&th, NULL, write_thread, &w), 0);
        T_PUMP(evpl, sc->nmsg_len == 1, 10000);
        pthread_join(th, NULL);
        T_EQ(sc->msg_len[0], sizeof(m));
        T_OK(memcmp(sc->rx, m, sizeof(m)) == 0);
    }

    /* 12000 reads of 4 KiB (47 MiB of replies), nobody reading them: the
     * replies point into the registered memory (no copies), and the reply
     * headers we owe pass the bound (~8000 replies), so the requests
     * beyond it wait in the receive ring until the peer reads */
    evpl_rdma_get_address(evpl, sc->bind, &region, &key, &addr);
    {
        struct drain d = {.fd = fd, .region = region.data};
        long before = rss_kib(), grown;
        pthread_t th;

        for (int i = 0; i < NREQ; i++) {
            uint32_t be = htobe32(REQ_SIZE);

            put_hdr(fd, READ_REQ, 4, key, addr, (uint64_t) i);
            t_write_all(fd, &be, 4);
            if (i % 200 == 0) {
                t_pump_for(evpl, 5);
            }
        }
        t_pump_for(evpl, 300);
        grown = rss_kib() - before;
        fprintf(stderr, "RSS grew %ld KiB with %d replies unread\n", grown, NREQ);
        T_LT(grown, 16 * 1024); /* with copies: ~47 MiB */
        T_EQ(sc->disconnected, 0);
        /* now the peer reads: every reply, in order */
        T_EQ(pthread_create(&th, NULL, drain_replies, &d), 0);
        T_PUMP(evpl, atomic_load(&d.done), 30000);
        pthread_join(th, NULL);
        T_EQ(d.bad, 0);
        T_EQ(d.replies, NREQ);
    }
    close(fd);
    T_PUMP(evpl, sc->disconnected, 5000);

    /* more operations than the window, a datagram after them, evpl_finish,
     * and a peer that reads all but answers nothing, then shuts its write
     * side: every frame is written (the finish opens the window), the
     * bind closes, and every operation ends with ECONNRESET */
    {
        struct sink k = {0};
        pthread_t th;
        struct evpl_iovec d;

        k.fd = t_raw_connect(ep);
        T_OK(k.fd >= 0);
        T_PUMP(evpl, srv.n == 2 && srv.conns[1].connected, 5000);
        T_EQ(evpl_iovec_alloc(evpl, 8, 0, 1, 0, &d), 1);
        for (int i = 0; i < NOANSWER; i++) {
            evpl_rdma_read(evpl, srv.conns[1].bind, key, addr, &d, 1, noanswer_cb, NULL);
        }
        evpl_send(evpl, srv.conns[1].bind, "after", 5);
        evpl_finish(evpl, srv.conns[1].bind);
        T_EQ(pthread_create(&th, NULL, sink_thread, &k), 0);
        t_pump_for(evpl, 200);
        T_EQ(shutdown(k.fd, SHUT_WR), 0);
        T_PUMP(evpl, srv.conns[1].disconnected && atomic_load(&k.done), 10000);
        pthread_join(th, NULL);
        T_EQ(noanswer_done, NOANSWER);
        T_EQ(noanswer_reset, NOANSWER);
        /* every READ_REQUEST (36 bytes), then the datagram's frame */
        T_EQ(k.total, (uint64_t) NOANSWER * 36 + 32 + 5);
        T_OK(memcmp(k.tail + 32, "after", 5) == 0);
        close(k.fd);
        evpl_iovec_release(evpl, &d);
    }

    /* the peer shuts down its write side after its request: the whole
     * reply still goes out before the finish closes */
    fd = t_raw_connect(ep);
    T_OK(fd >= 0);
    T_PUMP(evpl, srv.n == 3 && srv.conns[2].connected, 5000);
    srv.conns[2].user = &srv; /* reply_and_finish on this one */
    put_hdr(fd, SEND, 3, 0, 0, 0);
    t_write_all(fd, "req", 3);
    T_EQ(shutdown(fd, SHUT_WR), 0);
    {
        struct tail t = {.fd = fd};
        pthread_t th;

        T_EQ(pthread_create(&th, NULL, read_reply, &t), 0);
        T_PUMP(evpl, atomic_load(&t.done) && srv.conns[2].disconnected, 10000);
        pthread_join(th, NULL);
        T_EQ(t.ok, 1); /* all of it, then the orderly end */
        T_EQ(srv.conns[2].disconnect_status, 0);
    }
    close(fd);

    /* an evpl client: operations before CONNECTED, refused sizes, a close */
    t_connect(evpl, proto, ep, &c, NULL);
    {
        struct op o1 = {0}, o2 = {0}, o3 = {0};

        T_EQ(c.connected, 0);
        evpl_send(evpl, c.bind, "first", 5);
        T_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, 0, &r), 1);
        evpl_rdma_read(evpl, c.bind, key, addr + 50, &r, 1, op_cb, &o1);
        T_PUMP(evpl, o1.done && srv.n == 4 && srv.conns[3].nmsg_len == 1, 5000);
        T_EQ(o1.status, 0);
        T_OK(memcmp(r.data, (char *) region.data + 50, 100) == 0);
        T_OK(memcmp(srv.conns[3].rx, "first", 5) == 0);

        /* above max_msg_size: EINVAL, later, and the connection stays */
        nbig = evpl_iovec_alloc(evpl, 5u << 20, 0, 4, 0, big);
        T_OK(nbig >= 1);
        in_call = 1;
        evpl_rdma_read(evpl, c.bind, key, addr, big, nbig, op_cb, &o2);
        in_call = 0;
        T_EQ(o2.done, 0);
        T_PUMP(evpl, o2.done, 5000);
        T_EQ(o2.status, EINVAL);
        T_EQ(c.disconnected, 0);

        /* on a closing bind: ECONNRESET, later, before DISCONNECTED */
        evpl_close(evpl, c.bind);
        in_call = 1;
        evpl_rdma_read(evpl, c.bind, key, addr, &r, 1, op_cb, &o3);
        in_call = 0;
        T_EQ(o3.done, 0);
        T_PUMP(evpl, c.disconnected && srv.conns[3].disconnected, 5000);
        T_EQ(o3.done, 1);
        T_EQ(o3.status, ECONNRESET);
        T_EQ(o1.during_call + o2.during_call + o3.during_call, 0);
        evpl_iovecs_release(evpl, big, nbig);
        evpl_iovec_release(evpl, &r);
    }
    t_conn_free(&c);

    /* a datagram above max_msg_size, which the receiver would refuse:
     * the sender ends with -EMSGSIZE, and nothing of it is delivered
     * (the receiver closed on it, the sender saw -ECONNRESET: helper-106) */
    t_connect(evpl, proto, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 5 && srv.conns[4].connected, 5000);
    {
        static char huge[5u << 20];

        evpl_send(evpl, c.bind, "small", 5);
        evpl_send(evpl, c.bind, huge, sizeof(huge));
        T_PUMP(evpl, c.disconnected && srv.conns[4].disconnected, 5000);
        T_EQ(c.disconnect_status, -EMSGSIZE);
        T_EQ(srv.conns[4].nmsg_len, 1); /* the small one, before it */
        T_EQ(srv.conns[4].msg_len[0], 5);
    }
    t_conn_free(&c);

    /* a connect held up by a full listen queue: a send and a read issued
     * meanwhile both go once it completes (the first flushes found no
     * connection; CONNECTED must flush what the wire ring holds) */
    {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t len = sizeof(sa);
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), filler, afd;
        struct evpl_endpoint *ep2;
        struct op o4 = {0};
        unsigned char h[32], payload[5];
        uint32_t rlen;
        uint64_t id;
        struct pollfd pfd;

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        T_EQ(bind(lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        T_EQ(listen(lfd, 0), 0);
        T_EQ(getsockname(lfd, (struct sockaddr *) &sa, &len), 0);
        filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        T_EQ(connect(filler, (struct sockaddr *) &sa, sizeof(sa)), 0); /* fills the queue */
        ep2 = evpl_endpoint_create("127.0.0.1", ntohs(sa.sin_port));
        t_connect(evpl, proto, ep2, &c, NULL);
        evpl_send(evpl, c.bind, "early", 5);
        T_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, 0, &r), 1);
        evpl_rdma_read(evpl, c.bind, key, addr, &r, 1, op_cb, &o4);
        t_pump_for(evpl, 200);
        if (c.connected) {
            T_SKIP("the listen queue did not hold the connect back here");
        }
        afd = accept(lfd, NULL, NULL); /* the filler's: room again */
        T_OK(afd >= 0);
        close(afd);
        close(filler);
        T_PUMP(evpl, c.connected, 10000); /* after the SYN is sent again */
        afd = accept(lfd, NULL, NULL);
        T_OK(afd >= 0);
        pfd.fd = afd;
        pfd.events = POLLIN;
        for (int i = 0; i < 300 && poll(&pfd, 1, 0) == 0; i++) {
            t_pump_for(evpl, 10);
        }
        T_EQ(poll(&pfd, 1, 0), 1); /* something came */
        t_read_all(afd, h, 32);
        memcpy(&rlen, h + 8, 4);
        T_EQ(be32toh(rlen), 5);
        t_read_all(afd, payload, 5);
        T_OK(memcmp(payload, "early", 5) == 0);
        t_read_all(afd, h, 32); /* the READ_REQUEST, and its 4-byte read length */
        memcpy(&id, h + 24, 8);
        t_read_all(afd, &rlen, 4);
        T_EQ(be32toh(rlen), 100);
        /* answer it by hand */
        put_hdr(afd, READ_REPLY, 100, key, addr, be64toh(id));
        t_write_all(afd, region.data, 100);
        T_PUMP(evpl, o4.done, 5000);
        T_EQ(o4.status, 0);
        T_OK(memcmp(r.data, region.data, 100) == 0);
        evpl_close(evpl, c.bind);
        T_PUMP(evpl, c.disconnected, 5000);
        close(afd);
        close(lfd);
        evpl_iovec_release(evpl, &r);
        evpl_endpoint_close(ep2);
        t_conn_free(&c);
    }

    evpl_iovec_release(evpl, &region);
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
