/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The RPC2 server against a raw TCP peer (rpc2.md §5, §11 statements 3-7
 * and 12): the NULL procedure, RPC_MISMATCH, credential flavours, the
 * PROG_MISMATCH range, records in many fragments, the size limit, bad
 * message types, an undecodable header, and reply capture.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc2_test_xdr.h"

#define MAX_MSG (256u * 1024)

static struct evpl *t_evpl;

#include "t_rpc2_raw.h"
static struct RT_V1 sprog;
static unsigned char captured[65536];
static int ncaptured = -1;

static void
capture(const struct evpl_iovec *iov, int niov, int total, void *private_data)
{
    int off = 0;

    for (int i = 0; i < niov && off < total; i++) {
        int n = (int) evpl_iovec_length(&iov[i]);

        if (n > total - off) {
            n = total - off;
        }
        T_OK(off + n <= (int) sizeof(captured));
        memcpy(captured + off, evpl_iovec_data(&iov[i]), (size_t) n);
        off += n;
    }
    T_EQ(off, total);
    ncaptured = total;
}

static struct evpl_rpc2_cred seen_cred; /* of the last call */
static uint32_t seen_gids[EVPL_RPC2_AUTH_SYS_MAX_GIDS];

static void
s_greet(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Hello *args,
        struct evpl_rpc2_encoding *enc, void *private_data)
{
    Hello r;

    seen_cred = *cred;
    if (cred->flavor == EVPL_RPC2_AUTH_SYS) {
        T_OK(cred->authsys.num_gids <= EVPL_RPC2_AUTH_SYS_MAX_GIDS);
        memcpy(seen_gids, cred->authsys.gids, cred->authsys.num_gids * sizeof(uint32_t));
    }

    enc->reply_capture_cb = capture;
    r.id = args->id + 1;
    xdr_set_str_static(&r, greeting, args->greeting.str, args->greeting.len);
    T_EQ(sprog.send_reply_GREET(evpl, NULL, &r, enc), 0);
}

/* ---- a raw peer ---- */

/* Read one record (one fragment, as our server sends) into buf; returns
 * its length without the mark. */
static int
raw_reply(int fd, unsigned char *buf, size_t max)
{
    size_t have = 0, want = 4;
    uint64_t deadline = t_now_ns() + 10000000000ull;

    while (have < want) {
        ssize_t n = recv(fd, buf + have, want - have, 0);

        if (n > 0) {
            have += (size_t) n;
            if (have == 4 && want == 4) {
                uint32_t mark = (uint32_t) buf[0] << 24 | (uint32_t) buf[1] << 16 |
                                (uint32_t) buf[2] << 8 | buf[3];

                T_OK(mark & 0x80000000u);
                want = 4 + (mark & 0x7fffffffu);
                T_OK(want <= max);
            }
            continue;
        }
        T_OK(n < 0 && errno == EAGAIN);
        T_OK(t_now_ns() < deadline);
        evpl_continue(t_evpl);
    }
    return (int) want - 4;
}

/* Pump until the peer closes the connection. */
static void
raw_wait_closed(int fd)
{
    uint64_t deadline = t_now_ns() + 10000000000ull;
    char c;

    for (;;) {
        ssize_t n = recv(fd, &c, 1, 0);

        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            return;
        }
        T_OK(n < 0); /* no reply may come */
        T_OK(t_now_ns() < deadline);
        evpl_continue(t_evpl);
    }
}

/* Send one record (single fragment) and read the reply. */
static int
roundtrip(int fd, const unsigned char *msg, size_t len, unsigned char *reply)
{
    unsigned char mark[4];

    put32(mark, 0x80000000u | (uint32_t) len);
    raw_send(fd, mark, 4);
    raw_send(fd, msg, len);
    return raw_reply(fd, reply, 4096);
}

/* ---- RPC-over-RDMA long calls (RFC 8166 §3.5.3) on TCP-RDMA ---- */

struct seg {
    uint32_t handle, length;
    uint64_t offset;
    const unsigned char *data; /* what the peer's memory holds there */
};

/* An RDMA_NOMSG header whose read list is segs at position pos, sent as
 * one TCP-RDMA SEND. */
static void
long_call_send(int fd, uint32_t xid, uint32_t pos, const struct seg *segs, int nsegs)
{
    unsigned char frame[512], *q = frame;

    q = put32(q, xid);
    q = put32(q, 1); /* version */
    q = put32(q, 8); /* credits asked */
    q = put32(q, 1); /* RDMA_NOMSG */
    for (int i = 0; i < nsegs; i++) {
        q = put32(q, 1);
        q = put32(q, pos);
        q = put32(q, segs[i].handle);
        q = put32(q, segs[i].length);
        q = put32(q, (uint32_t) (segs[i].offset >> 32));
        q = put32(q, (uint32_t) segs[i].offset);
    }
    q = put32(q, 0); /* end of the read list */
    q = put32(q, 0); /* no write list */
    q = put32(q, 0); /* no reply chunk */
    t_trma_put(fd, 0x54524D41u, 1 /* SEND */, (uint32_t) (q - frame), 0, 0, 0);
    raw_send(fd, frame, (size_t) (q - frame));
}

/* Answer the server's READ_REQUESTs for segs from their data, or with an
 * ERROR when fail; returns how many came before the frame that is not one
 * (its header in hdr; 0 with hdr's opcode 0: the server closed). */
static int
serve_reads(int fd, const struct seg *segs, int nsegs, int fail, unsigned char *hdr)
{
    int served = 0;

    for (;;) {
        unsigned char lenb[4];
        uint32_t key, len;
        uint64_t addr, id;
        const struct seg *g = NULL;

        if (!raw_read_or_eof(fd, hdr, 32)) {
            memset(hdr, 0, 32);
            return served;
        }
        if (get32(hdr + 4) != 2 /* READ_REQUEST */) {
            return served;
        }
        raw_read_exact(fd, lenb, 4);
        key = get32(hdr + 12);
        addr = (uint64_t) get32(hdr + 16) << 32 | get32(hdr + 20);
        id = (uint64_t) get32(hdr + 24) << 32 | get32(hdr + 28);
        len = get32(lenb);
        for (int i = 0; i < nsegs; i++) {
            if (segs[i].handle == key && segs[i].offset == addr && segs[i].length == len) {
                g = &segs[i];
            }
        }
        T_OK(g != NULL); /* the server reads what was offered, as offered */
        if (fail) {
            t_trma_put(fd, 0x54524D41u, 6 /* ERROR */, EACCES, key, addr, id);
        } else {
            t_trma_put(fd, 0x54524D41u, 3 /* READ_REPLY */, len, key, addr, id);
            raw_send(fd, g->data, len);
        }
        served++;
    }
}

static const unsigned char greet_args[] = {0,   0,   0,   7,   0,   0, 0, 5,
                                           'h', 'e', 'l', 'l', 'o', 0, 0, 0};

int
main(void)
{
    struct raw_server rs;
    struct evpl_global_config *config = evpl_global_config_init();
    unsigned char msg[4096], reply[4096], *r;
    size_t len;
    int fd, n;

    signal(SIGPIPE, SIG_IGN);
    evpl_global_config_set_rpc2_max_message_size(config, MAX_MSG);
    if (getenv("T_BUFFER_SIZE")) {
        /* small buffers: fragments copied together must fit in one */
        evpl_global_config_set_buffer_size(config, strtoull(getenv("T_BUFFER_SIZE"), NULL, 10));
    }
    evpl_init(config);
    t_evpl = t_net_loop();
    RT_V1_init(&sprog);
    sprog.recv_call_GREET = s_greet;
    raw_server_start(&rs, &sprog.rpc2);
    r = reply + 4;

    fd = raw_connect(rs.ep);

    /* 4: procedure 0 without a handler succeeds with an empty result */
    len = call_msg(msg, 11, 2, 0x20001234, 1, 0, 0, 0, NULL, 0);
    n = roundtrip(fd, msg, len, reply);
    T_EQ(n, 24);
    T_EQ(get32(r), 11);     /* xid */
    T_EQ(get32(r + 4), 1);  /* REPLY */
    T_EQ(get32(r + 8), 0);  /* MSG_ACCEPTED */
    T_EQ(get32(r + 20), 0); /* SUCCESS */
    fprintf(stderr, "ok: NULL procedure\n");

    /* 12: reply capture sees the bytes the peer receives */
    ncaptured = -1;
    len = call_msg(msg, 12, 2, 0x20001234, 1, 1, 0, 0, greet_args, sizeof(greet_args));
    n = roundtrip(fd, msg, len, reply);
    T_EQ(n, 24 + 16);
    T_EQ(get32(r + 24), 8); /* id + 1 */
    T_EQ(ncaptured, n);
    T_OK(memcmp(captured, r, (size_t) n) == 0);
    fprintf(stderr, "ok: reply capture\n");

    /* 5: rpcvers 3 */
    len = call_msg(msg, 13, 3, 0x20001234, 1, 1, 0, 0, greet_args, sizeof(greet_args));
    n = roundtrip(fd, msg, len, reply);
    T_EQ(n, 24);
    T_EQ(get32(r), 13);
    T_EQ(get32(r + 8), 1);  /* MSG_DENIED */
    T_EQ(get32(r + 12), 0); /* RPC_MISMATCH */
    T_EQ(get32(r + 16), 2); /* low */
    T_EQ(get32(r + 20), 2); /* high */
    fprintf(stderr, "ok: RPC_MISMATCH\n");

    /* 6: AUTH_SHORT is too weak; RPCSEC_GSS without a provider rejected */
    len = call_msg(msg, 14, 2, 0x20001234, 1, 1, 2, 8, greet_args, sizeof(greet_args));
    n = roundtrip(fd, msg, len, reply);
    T_EQ(n, 20);
    T_EQ(get32(r + 8), 1);  /* MSG_DENIED */
    T_EQ(get32(r + 12), 1); /* AUTH_ERROR */
    T_EQ(get32(r + 16), 5); /* AUTH_TOOWEAK */
    len = call_msg(msg, 15, 2, 0x20001234, 1, 1, 6, 20, greet_args, sizeof(greet_args));
    n = roundtrip(fd, msg, len, reply);
    T_EQ(n, 20);
    T_EQ(get32(r + 12), 1);
    T_EQ(get32(r + 16), 2); /* AUTH_REJECTEDCRED */
    /* (rejected whatever the credential holds: empty, or too short) */
    for (uint32_t cl = 0; cl <= 8; cl += 8) {
        len = call_msg(msg, 15, 2, 0x20001234, 1, 1, 6, cl, greet_args, sizeof(greet_args));
        n = roundtrip(fd, msg, len, reply);
        T_EQ(n, 20);
        T_EQ(get32(r + 12), 1);
        T_EQ(get32(r + 16), 2); /* AUTH_REJECTEDCRED */
    }
    fprintf(stderr, "ok: AUTH_SHORT and RPCSEC_GSS refused\n");

    /* 3: PROG_MISMATCH carries the exported range */
    len = call_msg(msg, 16, 2, 0x20001234, 5, 1, 0, 0, greet_args, sizeof(greet_args));
    n = roundtrip(fd, msg, len, reply);
    T_EQ(n, 32);
    T_EQ(get32(r + 8), 0);  /* MSG_ACCEPTED */
    T_EQ(get32(r + 20), 2); /* PROG_MISMATCH */
    T_EQ(get32(r + 24), 1); /* low */
    T_EQ(get32(r + 28), 1); /* high */
    /* GARBAGE_ARGS: arguments shorter than declared */
    len = call_msg(msg, 17, 2, 0x20001234, 1, 1, 0, 0, greet_args, 6);
    n = roundtrip(fd, msg, len, reply);
    T_EQ(n, 24);
    T_EQ(get32(r + 20), 4);
    /* an undecodable header after the xid: AUTH_ERROR / AUTH_BADCRED */
    len = call_msg(msg, 18, 2, 0x20001234, 1, 1, 0, 1000, NULL, 0);
    n = roundtrip(fd, msg, 40, reply); /* credential length 1000, body cut */
    T_EQ(n, 20);
    T_EQ(get32(r), 18);
    T_EQ(get32(r + 8), 1);
    T_EQ(get32(r + 12), 1);
    T_EQ(get32(r + 16), 1); /* AUTH_BADCRED */
    (void) len;
    fprintf(stderr, "ok: PROG_MISMATCH range, GARBAGE_ARGS, AUTH_BADCRED\n");

    /* 6, rpc2.md §2: AUTH_SYS with 20 gids reaches the handler with the
     * first 16 (num_gids clamped); a gid count the body does not hold is
     * AUTH_BADCRED */
    for (int bad = 0; bad < 2; bad++) {
        unsigned char *p = msg;

        p = put32(p, 19 + (uint32_t) bad);
        p = put32(p, 0);
        p = put32(p, 2);
        p = put32(p, 0x20001234);
        p = put32(p, 1);
        p = put32(p, 1);
        p = put32(p, 1);   /* AUTH_SYS */
        p = put32(p, 104); /* stamp, "m1", uid, gid, 20 gids */
        p = put32(p, 12345);
        p = put32(p, 2);
        memcpy(p, "m1\0\0", 4);
        p += 4;
        p = put32(p, 1000);
        p = put32(p, 1001);
        p = put32(p, bad ? 21 : 20);
        for (uint32_t g = 0; g < 20; g++) {
            p = put32(p, 100 + g);
        }
        p = put32(p, 0); /* verifier */
        p = put32(p, 0);
        memcpy(p, greet_args, sizeof(greet_args));
        p += sizeof(greet_args);
        memset(&seen_cred, 0, sizeof(seen_cred));
        n = roundtrip(fd, msg, (size_t) (p - msg), reply);
        if (bad) {
            T_EQ(n, 20);
            T_EQ(get32(r + 12), 1); /* AUTH_ERROR */
            T_EQ(get32(r + 16), 1); /* AUTH_BADCRED */
            continue;
        }
        T_EQ(get32(r + 20), 0); /* SUCCESS */
        T_EQ(seen_cred.flavor, EVPL_RPC2_AUTH_SYS);
        T_EQ(seen_cred.authsys.uid, 1000);
        T_EQ(seen_cred.authsys.gid, 1001);
        T_EQ(seen_cred.authsys.num_gids, EVPL_RPC2_AUTH_SYS_MAX_GIDS);
        T_EQ(seen_cred.authsys.machinename_len, 2);
        for (uint32_t g = 0; g < EVPL_RPC2_AUTH_SYS_MAX_GIDS; g++) {
            T_EQ(seen_gids[g], 100 + g);
        }
    }
    fprintf(stderr, "ok: AUTH_SYS with 20 gids: the first 16\n");

    /* 7: a record in many fragments, cut inside the header too */
    len = call_msg(msg, 19, 2, 0x20001234, 1, 1, 0, 0, greet_args, sizeof(greet_args));
    {
        size_t cuts[] = {3, 10, 11, 30, len};
        size_t from = 0;
        unsigned char mark[4];

        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
            size_t piece = cuts[i] - from;

            put32(mark,
                  (i + 1 == sizeof(cuts) / sizeof(cuts[0]) ? 0x80000000u : 0) | (uint32_t) piece);
            raw_send(fd, mark, 4);
            raw_send(fd, msg + from, piece);
            from = cuts[i];
        }
        /* and an empty last fragment after a full one */
        n = raw_reply(fd, reply, sizeof(reply));
        T_EQ(n, 40);
        T_EQ(get32(r), 19);
        T_EQ(get32(r + 24), 8);
        put32(mark, (uint32_t) len);
        raw_send(fd, mark, 4);
        msg[3] = 20; /* xid 20 */
        raw_send(fd, msg, len);
        put32(mark, 0x80000000u);
        raw_send(fd, mark, 4);
        n = raw_reply(fd, reply, sizeof(reply));
        T_EQ(n, 40);
        T_EQ(get32(r), 20);
    }
    fprintf(stderr, "ok: fragmented records\n");

    /* 7: any number of fragments: a call of 8 KiB in 1-byte fragments and
     * one of 16 KiB in 2-byte ones (each answered; they were refused as
     * GARBAGE_ARGS, the decoder out of room for so many pieces) */
    for (uint32_t step = 1; step <= 2; step++) {
        static unsigned char args[16384 + 8], big[16384 + 128], wire[5 * (16384 + 128)],
            back[16384 + 128];
        uint32_t glen = 8192 * step;
        size_t blen, wlen = 0;

        put32(args, 41);
        put32(args + 4, glen);
        memset(args + 8, 'g', glen);
        blen = call_msg(big, 30 + step, 2, 0x20001234, 1, 1, 0, 0, args, 8 + glen);
        for (size_t from = 0; from < blen; from += step) {
            size_t piece = blen - from < step ? blen - from : step;

            put32(wire + wlen, (from + piece == blen ? 0x80000000u : 0) | (uint32_t) piece);
            memcpy(wire + wlen + 4, big + from, piece);
            wlen += 4 + piece;
        }
        raw_send(fd, wire, wlen);
        n = raw_reply(fd, back, sizeof(back));
        T_EQ(get32(back + 4), 30 + step); /* xid */
        T_EQ(get32(back + 12), 0);        /* MSG_ACCEPTED */
        T_EQ(get32(back + 24), 0);        /* SUCCESS */
        T_EQ(get32(back + 28), 42);       /* id + 1 */
        T_EQ(get32(back + 32), glen);     /* the greeting back */
        T_EQ(n, (int) (32 + glen));
        T_EQ(back[36 + glen - 1], 'g');
    }
    fprintf(stderr, "ok: records in thousands of tiny fragments\n");

    /* 7: large and small fragments mixed (libtirpc cuts a record at its
     * buffer size, with a short last piece), whatever the buffer size
     * (T_BUFFER_SIZE): short fragments are copied together, and that
     * copy must fit a buffer */
    {
        static const uint32_t cycles[][2] = {{100, 1u << 20}, {8800, 1u << 20}, {2, 4096}};
        static unsigned char args[12000 + 8], big[12000 + 128], wire[2 * (12000 + 128)],
            back[12000 + 128];
        uint32_t glen = 12000;
        size_t blen;

        put32(args, 50);
        put32(args + 4, glen);
        memset(args + 8, 'm', glen);
        blen = call_msg(big, 60, 2, 0x20001234, 1, 1, 0, 0, args, 8 + glen);
        for (int c = 0; c < 3; c++) {
            size_t wlen = 0, k = 0;

            for (size_t from = 0; from < blen; k++) {
                size_t piece = cycles[c][k % 2] < blen - from ? cycles[c][k % 2] : blen - from;

                put32(wire + wlen, (from + piece == blen ? 0x80000000u : 0) | (uint32_t) piece);
                memcpy(wire + wlen + 4, big + from, piece);
                wlen += 4 + piece;
                from += piece;
            }
            raw_send(fd, wire, wlen);
            n = raw_reply(fd, back, sizeof(back));
            T_EQ(n, (int) (32 + glen));
            T_EQ(get32(back + 4), 60);    /* xid */
            T_EQ(get32(back + 24), 0);    /* SUCCESS */
            T_EQ(get32(back + 28), 51);   /* id + 1 */
            T_EQ(get32(back + 32), glen); /* the greeting back, whole */
            for (uint32_t i = 0; i < glen; i++) {
                T_EQ(back[36 + i], 'm');
            }
        }
    }
    fprintf(stderr, "ok: records of large and small fragments mixed\n");
    close(fd);

    /* 7: a fragment mark over the limit closes the connection */
    fd = raw_connect(rs.ep);
    {
        unsigned char mark[4];

        put32(mark, 0x80000000u | (MAX_MSG + 1));
        raw_send(fd, mark, 4);
        raw_wait_closed(fd);
    }
    close(fd);
    /* ... and so do fragments whose total exceeds it */
    fd = raw_connect(rs.ep);
    {
        static unsigned char big[MAX_MSG / 2 + 8];
        unsigned char mark[4];

        for (int i = 0; i < 3; i++) {
            put32(mark, (uint32_t) sizeof(big));
            raw_send(fd, mark, 4);
            raw_send(fd, big, sizeof(big));
        }
        raw_wait_closed(fd);
    }
    close(fd);
    /* a message that is neither CALL nor REPLY closes it too */
    fd = raw_connect(rs.ep);
    {
        unsigned char m[12];

        put32(m, 0x80000008u);
        put32(m + 4, 21);
        put32(m + 8, 2);
        raw_send(fd, m, sizeof(m));
        raw_wait_closed(fd);
    }
    close(fd);
    fprintf(stderr, "ok: size limits and bad message types close the connection\n");

    /* the server still serves */
    fd = raw_connect(rs.ep);
    len = call_msg(msg, 22, 2, 0x20001234, 1, 1, 0, 0, greet_args, sizeof(greet_args));
    n = roundtrip(fd, msg, len, reply);
    T_EQ(n, 40);
    close(fd);

    /* RPC-over-RDMA on TCP-RDMA (RFC 8166 4.2.2): the reply's write list
     * mirrors the call's, so a write chunk offered with no segments comes
     * back as one chunk of none (it was left out) */
    {
        struct evpl_rpc2_server *s2 = evpl_rpc2_server_init(rs.programs, 1);
        struct evpl_endpoint *ep2 = t_endpoint(EVPL_DATAGRAM_TCP_RDMA);
        unsigned char frame[512], *q = frame, hdr[32], back[512];
        uint32_t blen;
        int fd2;

        T_EQ(evpl_rpc2_server_start(s2, EVPL_DATAGRAM_TCP_RDMA, ep2), 0);
        evpl_rpc2_server_attach(rs.thread, s2, NULL);
        fd2 = raw_connect(ep2);
        q = put32(q, 50); /* xid */
        q = put32(q, 1);  /* RPC-over-RDMA version 1 */
        q = put32(q, 8);  /* credits asked */
        q = put32(q, 0);  /* RDMA_MSG */
        q = put32(q, 0);  /* no read list */
        q = put32(q, 1);  /* a write chunk... */
        q = put32(q, 0);  /* ...of no segments */
        q = put32(q, 0);  /* end of the write list */
        q = put32(q, 0);  /* no reply chunk */
        len = call_msg(q, 50, 2, 0x20001234, 1, 1, 0, 0, greet_args, sizeof(greet_args));
        q += len;
        t_trma_put(fd2, 0x54524D41u, 1 /* SEND */, (uint32_t) (q - frame), 0, 0, 0);
        raw_send(fd2, frame, (size_t) (q - frame));
        raw_read_exact(fd2, hdr, sizeof(hdr));
        T_EQ(get32(hdr), 0x54524D41u);
        T_EQ(get32(hdr + 4), 1); /* SEND */
        blen = get32(hdr + 8);
        T_OK(blen >= 36 + 24 && blen <= sizeof(back));
        raw_read_exact(fd2, back, blen);
        T_EQ(get32(back), 50);      /* xid */
        T_EQ(get32(back + 4), 1);   /* version */
        T_EQ(get32(back + 12), 0);  /* RDMA_MSG */
        T_EQ(get32(back + 16), 0);  /* no read list */
        T_EQ(get32(back + 20), 1);  /* the write chunk... */
        T_EQ(get32(back + 24), 0);  /* ...of no segments */
        T_EQ(get32(back + 28), 0);  /* end of the write list */
        T_EQ(get32(back + 32), 0);  /* no reply chunk */
        T_EQ(get32(back + 36), 50); /* the RPC reply: xid */
        T_EQ(get32(back + 56), 0);  /* SUCCESS */
        close(fd2);
        fprintf(stderr, "ok: RPC-over-RDMA write chunk of no segments echoed\n");
        evpl_rpc2_server_stop(s2);
        evpl_rpc2_server_detach(rs.thread, s2);
        evpl_rpc2_server_destroy(s2);
        evpl_endpoint_close(ep2);
    }

    /* long calls: the whole call in a position-zero read chunk, here in
     * three segments the server fetches before it parses anything; the
     * reply comes inline (RDMA_MSG) */
    {
        struct evpl_rpc2_server *s3 = evpl_rpc2_server_init(rs.programs, 1);
        struct evpl_endpoint *ep3 = t_endpoint(EVPL_DATAGRAM_TCP_RDMA);
        static unsigned char call[256], hdr[32], back[512], junk[64];
        struct seg segs[3];
        size_t clen;
        uint32_t blen;
        int fd3;

        T_EQ(evpl_rpc2_server_start(s3, EVPL_DATAGRAM_TCP_RDMA, ep3), 0);
        evpl_rpc2_server_attach(rs.thread, s3, NULL);
        clen = call_msg(call, 60, 2, 0x20001234, 1, 1, 0, 0, greet_args, sizeof(greet_args));
        segs[0] = (struct seg){0x1111, 20, 0x100000000ull, call};
        segs[1] = (struct seg){0x2222, 0, 0x2000, call + 20};
        segs[2] = (struct seg){0x3333, (uint32_t) clen - 20, 0x3000, call + 20};
        fd3 = raw_connect(ep3);
        long_call_send(fd3, 60, 0, segs, 3);
        T_EQ(serve_reads(fd3, segs, 3, 0, hdr), 3);
        T_EQ(get32(hdr + 4), 1); /* then the reply: a SEND */
        blen = get32(hdr + 8);
        T_OK(blen >= 28 + 24 && blen <= sizeof(back));
        raw_read_exact(fd3, back, blen);
        T_EQ(get32(back), 60);      /* xid */
        T_EQ(get32(back + 12), 0);  /* RDMA_MSG */
        T_EQ(get32(back + 16), 0);  /* no read list */
        T_EQ(get32(back + 20), 0);  /* no write list */
        T_EQ(get32(back + 24), 0);  /* no reply chunk */
        T_EQ(get32(back + 28), 60); /* the RPC reply: xid */
        T_EQ(get32(back + 48), 0);  /* SUCCESS */
        T_EQ(get32(back + 52), 8);  /* GREET's result: id + 1 */
        T_EQ(get32(back + 56), 5);
        T_OK(memcmp(back + 60, "hello", 5) == 0);
        /* and again on the same connection, one segment */
        clen = call_msg(call, 61, 2, 0x20001234, 1, 1, 0, 0, greet_args, sizeof(greet_args));
        segs[0] = (struct seg){0x4444, (uint32_t) clen, 0x4000, call};
        long_call_send(fd3, 61, 0, segs, 1);
        T_EQ(serve_reads(fd3, segs, 1, 0, hdr), 1);
        T_EQ(get32(hdr + 4), 1);
        blen = get32(hdr + 8);
        T_OK(blen >= 28 + 24 && blen <= sizeof(back));
        raw_read_exact(fd3, back, blen);
        T_EQ(get32(back + 28), 61);
        T_EQ(get32(back + 52), 8);
        close(fd3);

        /* what closes the connection instead: a read list not at position
         * zero, a chunk over rpc2_max_message_size (nothing is read), a
         * read the peer fails, a chunk that is no RPC message, and the
         * peer going away while the server reads */
        memset(junk, 0xa5, sizeof(junk));
        for (int k = 0; k < 5; k++) {
            struct seg one = {0x5555, (uint32_t) clen, 0x5000, call};

            if (k == 1) {
                one.length = MAX_MSG + 1;
            }
            if (k == 3) {
                one.data = junk;
                one.length = sizeof(junk);
            }
            fd3 = raw_connect(ep3);
            long_call_send(fd3, 70 + (uint32_t) k, k == 0 ? 8 : 0, &one, 1);
            if (k == 4) {
                /* the read request, then nothing but the close */
                raw_read_exact(fd3, hdr, 32);
                T_EQ(get32(hdr + 4), 2);
                close(fd3);
                continue;
            }
            T_EQ(serve_reads(fd3, &one, 1, k == 2, hdr), k >= 2 ? 1 : 0);
            T_EQ(get32(hdr + 4), 0); /* closed, nothing else sent */
            close(fd3);
        }
        /* the server still serves long calls */
        fd3 = raw_connect(ep3);
        long_call_send(fd3, 62, 0, segs, 1);
        T_EQ(serve_reads(fd3, segs, 1, 0, hdr), 1);
        T_EQ(get32(hdr + 4), 1);
        close(fd3);
        fprintf(stderr, "ok: RPC-over-RDMA long calls\n");
        evpl_rpc2_server_stop(s3);
        evpl_rpc2_server_detach(rs.thread, s3);
        evpl_rpc2_server_destroy(s3);
        evpl_endpoint_close(ep3);
    }

    raw_server_stop(&rs);
    evpl_endpoint_close(rs.ep);
    evpl_destroy(t_evpl);
    fprintf(stderr, "PASS\n");
    return 0;
}
