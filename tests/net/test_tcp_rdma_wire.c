/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * DATAGRAM_TCP_RDMA on the wire (rdma.md §6), against a raw TCP peer that
 * speaks the format by hand (as upstream writes it: a READ_REQUEST carries
 * the read length as a 4-byte payload): SEND in both directions, READ_REQUEST ->
 * READ_REPLY, WRITE_REQUEST -> WRITE_REPLY, a bad key -> ERROR(EINVAL);
 * keys carry a random tag (the same slab under another tag names nothing,
 * and keys were small counts a peer could walk through); a peer whose
 * operations name unregistered memory 32 times in a row is closed
 * (-EACCES);
 * then bad input (wrong magic, unknown opcode, a length above
 * max_msg_size, a reply to nothing, a frame cut by the peer's close)
 * closes that connection with an error
 * and leaves the others alone.
 */

#include "t_net.h"

#define FUZZ_CONNS 150

enum { SEND = 1, READ_REQ = 2, READ_REPLY = 3, WRITE_REQ = 4, WRITE_REPLY = 5, ERROR = 6 };

struct hdr {
    uint32_t magic, opcode, length, key;
    uint64_t address, id;
};

/* A READ_REQUEST as upstream sends it: header length 4, then the read
 * length as a 4-byte big-endian payload. */
static void
put_read(int fd, uint32_t len, uint32_t key, uint64_t addr, uint64_t id)
{
    uint32_t be = htobe32(len);

    t_trma_put(fd, 0x54524D41u, READ_REQ, 4, key, addr, id);
    t_write_all(fd, &be, 4);
}

static void
get_hdr(int fd, struct hdr *h)
{
    unsigned char b[32];
    uint32_t v[4];
    uint64_t w[2];

    t_read_all(fd, b, 32);
    memcpy(v, b, 16);
    memcpy(w, b + 16, 16);
    h->magic = be32toh(v[0]);
    h->opcode = be32toh(v[1]);
    h->length = be32toh(v[2]);
    h->key = be32toh(v[3]);
    h->address = be64toh(w[0]);
    h->id = be64toh(w[1]);
    T_EQ(h->magic, 0x54524D41u);
}

/* The raw peer's socket answers while the loop runs: pump, then read. */
struct reader {
    int fd;
    struct hdr h;
    unsigned char payload[70000];
    atomic_int done;
};

static void *
read_frame(void *arg)
{
    struct reader *r = arg;

    get_hdr(r->fd, &r->h);
    if (r->h.opcode == SEND || r->h.opcode == READ_REPLY) {
        T_OK(r->h.length <= sizeof(r->payload));
        t_read_all(r->fd, r->payload, r->h.length);
    }
    atomic_store(&r->done, 1);
    return NULL;
}

static void
expect_frame(struct evpl *evpl, struct reader *r)
{
    pthread_t th;

    atomic_store(&r->done, 0);
    T_EQ(pthread_create(&th, NULL, read_frame, r), 0);
    T_PUMP(evpl, atomic_load(&r->done), 5000);
    pthread_join(th, NULL);
}

/* A fresh raw connection and the server bind that took it. */
static int
raw_conn(struct evpl *evpl, struct evpl_endpoint *ep, struct t_server *srv, struct t_conn **sc)
{
    int n = srv->n, fd = t_raw_connect(ep);

    T_OK(fd >= 0);
    T_PUMP(evpl, srv->n == n + 1 && srv->conns[n].connected, 5000);
    *sc = &srv->conns[n];
    return fd;
}

int
main(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    enum evpl_protocol_id proto = EVPL_DATAGRAM_TCP_RDMA;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn *sc, *other;
    struct evpl_iovec region;
    struct reader rd;
    uint32_t key;
    uint64_t addr;
    int fd, fd2;

    t_net_guard(60);
    evpl_global_config_set_max_msg_size(gc, 1 << 20);
    evpl_init(gc);
    if (!evpl_protocol_available(proto)) {
        T_SKIP("DATAGRAM_TCP_RDMA unavailable");
    }
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.keep_msgs = 1;
    t_server_start(&srv, evpl, proto, ep, 16 + FUZZ_CONNS);

    fd = raw_conn(evpl, ep, &srv, &sc);
    rd.fd = fd;
    T_EQ(evpl_bind_is_rdma(sc->bind), 1);

    /* SEND from the raw peer: one RECV_MSG with the payload */
    t_trma_put(fd, 0x54524D41u, SEND, 5, 0, 0, 0);
    t_write_all(fd, "hello", 5);
    T_PUMP(evpl, sc->nmsg_len == 1, 5000);
    T_EQ(sc->msg_len[0], 5);
    T_OK(memcmp(sc->rx, "hello", 5) == 0);
    /* an empty one */
    t_trma_put(fd, 0x54524D41u, SEND, 0, 0, 0, 0);
    T_PUMP(evpl, sc->nmsg_len == 2, 5000);
    T_EQ(sc->msg_len[1], 0);

    /* SEND from us: header then payload */
    evpl_send(evpl, sc->bind, "world!", 6);
    expect_frame(evpl, &rd);
    T_EQ(rd.h.opcode, SEND);
    T_EQ(rd.h.length, 6);
    T_OK(memcmp(rd.payload, "world!", 6) == 0);

    /* one-sided operations served by our loop */
    T_EQ(evpl_iovec_alloc(evpl, 65536, 0, 1, 0, &region), 1);
    for (int i = 0; i < 65536; i++) {
        ((unsigned char *) region.data)[i] = (unsigned char) (i * 7);
    }
    evpl_rdma_get_address(evpl, sc->bind, &region, &key, &addr);
    T_NE(key, 0);
    put_read(fd, 1000, key, addr + 100, 77);
    expect_frame(evpl, &rd);
    T_EQ(rd.h.opcode, READ_REPLY);
    T_EQ(rd.h.id, 77);
    T_EQ(rd.h.length, 1000);
    for (int i = 0; i < 1000; i++) {
        T_EQ(rd.payload[i], (unsigned char) ((i + 100) * 7));
    }
    t_trma_put(fd, 0x54524D41u, WRITE_REQ, 4, key, addr + 65532, 78);
    t_write_all(fd, "WXYZ", 4);
    expect_frame(evpl, &rd);
    T_EQ(rd.h.opcode, WRITE_REPLY);
    T_EQ(rd.h.id, 78);
    T_OK(memcmp((char *) region.data + 65532, "WXYZ", 4) == 0);
    /* outside the buffer's slab / an unknown key: ERROR(EINVAL), still connected */
    put_read(fd, 16, key + 5000, addr, 79);
    expect_frame(evpl, &rd);
    T_EQ(rd.h.opcode, ERROR);
    T_EQ(rd.h.id, 79);
    T_EQ(rd.h.length, EINVAL);
    t_trma_put(fd, 0x54524D41u, WRITE_REQ, 4, key, 8, 80);
    t_write_all(fd, "nope", 4);
    expect_frame(evpl, &rd);
    T_EQ(rd.h.opcode, ERROR);
    T_EQ(rd.h.id, 80);
    T_EQ(sc->disconnected, 0);
    /* the slab's index under another tag */
    T_GE(key, 1u << 16);
    put_read(fd, 16, key ^ (1u << 16), addr, 81);
    expect_frame(evpl, &rd);
    T_EQ(rd.h.opcode, ERROR);
    T_EQ(rd.h.id, 81);
    T_EQ(sc->disconnected, 0);
    /* a peer guessing: 31 misses in a row are answered, the 32nd closes;
     * one that names memory starts the count again */
    {
        struct t_conn *g;
        struct reader gr;

        gr.fd = raw_conn(evpl, ep, &srv, &g);
        for (uint32_t i = 0; i < 20; i++) {
            put_read(gr.fd, 16, key + ((i + 1) << 16), addr, 100 + i);
            expect_frame(evpl, &gr);
            T_EQ(gr.h.opcode, ERROR);
        }
        put_read(gr.fd, 16, key, addr, 99);
        expect_frame(evpl, &gr);
        T_EQ(gr.h.opcode, READ_REPLY);
        for (uint32_t i = 0; i < 31; i++) {
            put_read(gr.fd, 16, key + ((i + 1) << 16), addr, 100 + i);
            expect_frame(evpl, &gr);
            T_EQ(gr.h.opcode, ERROR);
            T_EQ(g->disconnected, 0);
        }
        put_read(gr.fd, 16, key + (32u << 16), addr, 131);
        T_PUMP(evpl, g->disconnected, 5000);
        T_EQ(g->disconnect_status, -EACCES);
        close(gr.fd);
    }
    T_EQ(sc->disconnected, 0);

    /* bad input: each closes its own connection with an error; another
     * connection stays usable */
    fd2 = raw_conn(evpl, ep, &srv, &other);
    {
        static const struct {
            uint32_t magic, op, len;
            int status;
            int cut; /* then the peer closes: 1 after 10 body bytes, 2 inside the header */
        } bad[] = {
            {0x12345678u, SEND, 0, -EPROTO, 0},          /* wrong magic */
            {0x54524D41u, 99, 0, -EPROTO, 0},            /* unknown opcode */
            {0x54524D41u, SEND, 2u << 20, -EMSGSIZE, 0}, /* above max_msg_size */
            {0x54524D41u, READ_REPLY, 4, -EPROTO, 0},    /* answers nothing */
            {0x54524D41u, WRITE_REPLY, 0, -EPROTO, 0},   /* answers nothing */
            {0x54524D41u, READ_REQ, 8, -EPROTO, 0},      /* read length not 4 bytes */
            /* a message cut by the peer's close is lost: an error, not an
             * orderly end (it ended 0: helper-111) */
            {0x54524D41u, SEND, 100, -EPROTO, 1},
            {0x54524D41u, SEND, 100, -EPROTO, 2},
        };

        for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            struct t_conn *b;
            int bfd = raw_conn(evpl, ep, &srv, &b);

            if (bad[i].cut == 2) {
                t_write_all(bfd, "\x54\x52\x4d\x41\0\0\0\x01\0\0", 10);
                shutdown(bfd, SHUT_WR);
            } else {
                t_trma_put(bfd, bad[i].magic, bad[i].op, bad[i].len, 0, 0, 1);
            }
            if (bad[i].cut == 1) {
                t_write_all(bfd, "0123456789", 10);
                shutdown(bfd, SHUT_WR);
            }
            if (bad[i].op == READ_REPLY) {
                t_write_all(bfd, "abcd", 4);
            }
            if (bad[i].op == READ_REQ) {
                t_write_all(bfd, "abcdefgh", 8);
            }
            T_PUMP(evpl, b->disconnected, 5000);
            T_EQ(b->disconnect_status, bad[i].status);
            close(bfd);
        }
    }
    t_trma_put(fd2, 0x54524D41u, SEND, 3, 0, 0, 0);
    t_write_all(fd2, "ok!", 3);
    T_PUMP(evpl, other->nmsg_len == 1, 5000);
    T_EQ(other->disconnected, 0);
    T_EQ(sc->disconnected, 0);

    /* garbage: seeded random frame streams, each on a connection of its
     * own, then the peer goes away.  Nothing may crash or leak, every
     * connection ends with exactly one DISCONNECTED, and the connections
     * that behaved are untouched. */
    {
        uint64_t x = 0x9e3779b97f4a7c15ull;
        static const uint32_t lens[] = {0, 4, 5, 31, 32, 100, 4096, 70000, 2u << 20, 0xffffffffu};
        static unsigned char junk[8192];
        int first = srv.n;

        for (int i = 0; i < FUZZ_CONNS; i++) {
            struct t_conn *g;
            int gfd = raw_conn(evpl, ep, &srv, &g), frames;

            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            frames = (int) (x % 4) + 1;
            for (int f = 0; f < frames; f++) {
                uint32_t len;

                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                len = (x & 1) ? lens[(x >> 8) % 10] : (uint32_t) ((x >> 16) % 300);
                t_trma_put(gfd, (x >> 40) % 8 ? 0x54524D41u : (uint32_t) (x >> 32),
                           (uint32_t) ((x >> 4) % 8), len, (uint32_t) ((x >> 24) % 4),
                           x * 2654435761u, x >> 3);
                for (size_t k = 0; k < sizeof(junk); k++) {
                    junk[k] = (unsigned char) (x >> (k % 56));
                }
                t_write_all(gfd, junk, len < sizeof(junk) ? len : (x % sizeof(junk)));
            }
            t_pump_for(evpl, 2);
            close(gfd);
        }
        for (int i = first; i < srv.n; i++) {
            T_PUMP(evpl, srv.conns[i].disconnected, 5000);
        }
        t_pump_for(evpl, 50);
        {
            int proto_err = 0, too_big = 0, clean = 0, other_err = 0;

            for (int i = first; i < srv.n; i++) {
                int st = srv.conns[i].disconnect_status;

                T_EQ(srv.conns[i].disconnected, 1);
                T_EQ(srv.conns[i].cb_after_disconnect, 0);
                proto_err += st == -EPROTO;
                too_big += st == -EMSGSIZE;
                clean += st == 0;
                other_err += st != 0 && st != -EPROTO && st != -EMSGSIZE;
            }
            fprintf(stderr, "garbage: %d EPROTO, %d EMSGSIZE, %d clean, %d other\n", proto_err,
                    too_big, clean, other_err);
            /* the generator reaches both refusal paths */
            T_OK(proto_err > 0 && too_big > 0);
        }
        T_EQ(other->disconnected, 0);
        T_EQ(sc->disconnected, 0);
        t_trma_put(fd2, 0x54524D41u, SEND, 3, 0, 0, 0);
        t_write_all(fd2, "ok2", 3);
        T_PUMP(evpl, other->nmsg_len == 2, 5000);
    }

    close(fd);
    close(fd2);
    T_PUMP(evpl, sc->disconnected && other->disconnected, 5000);
    evpl_iovec_release(evpl, &region);
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
