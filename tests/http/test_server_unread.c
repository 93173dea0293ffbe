/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A client that sends and never reads what the server answers: the
 * server's memory stays bounded.  Past 256 KiB of answers not yet taken by
 * the transport it stops reading the connection, and goes on once the
 * client reads (helper-70's probe: 2,000,000 pipelined requests took the
 * server to 313 MB; a PING flood queued every ACK).
 *
 * - HTTP/1.1: 20,000 pipelined GETs, each answered with 1000 bytes, from a
 *   socket with a small receive buffer that reads nothing: far fewer are
 *   dispatched than were sent; then it reads, and every answer arrives.
 * - HTTP/1.1: 4,000,000 pipelined GETs (112 MB) whose answers are never
 *   read: the server reads at most 256 KiB ahead of what it parses, and
 *   no further once its answers back up (the rest waits in the kernel,
 *   and TCP pushes back on the client), so the client can write far less
 *   than before (64 MiB stream_recv_limit).
 * - HTTP/1.1: 16 clients pipelining at once, none reading: the buffers
 *   in use stay near what the bytes need (compaction).
 * - HTTP/2 (h2c): 2,000,000 PINGs (34 MB) in one go: memory grows by no
 *   more than what sits in the receive ring, the server ends the
 *   connection, and other clients are still served.  (This passes without the send-side limit too: sent in one go
 *   the PINGs trip nghttp2's own flood limit.  A flood paced under that
 *   limit, which the limit here is for, takes tens of seconds to show.)
 */
#include "t_h2.h"

#include <fcntl.h>
#include <netinet/tcp.h>

#define NREQ    20000
#define BODYLEN 1000

static int dispatched;
static char body[BODYLEN + 1];

static void
u_notify(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
         enum evpl_http_notify_type type, enum evpl_http_request_type rt, const char *uri, void *nd,
         void *pd)
{
    if (type == EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE) {
        evpl_http_server_set_response_length(request, BODYLEN);
        t_add_str(evpl, request, body);
        evpl_http_server_dispatch_default(request, 200);
    }
}

static void
u_dispatch(struct evpl *evpl, struct evpl_http_agent *agent, struct evpl_http_request *request,
           evpl_http_notify_callback_t *cb, void **nd, void *pd)
{
    dispatched++;
    *cb = u_notify;
}

/* pump until dispatched stops moving for 500 ms (at most 20 s) */
static void
pump_until_still(struct evpl *evpl)
{
    int last = -1;
    uint64_t since = t_now_ns(), end = t_now_ns() + 20000000000ull;

    while (t_now_ns() - since < 500000000ull) {
        T_OK(t_now_ns() < end);
        t_hpump_for(evpl, 20);
        if (dispatched != last) {
            last = dispatched;
            since = t_now_ns();
        }
    }
}

/* Write out[*off..total) as the server takes it, pumping its loop, until
 * all is written or 50 tries in a row found no room; 1 if the server ended
 * the connection (EPIPE/ECONNRESET) meanwhile. */
static int
write_until_stall(struct evpl *evpl, int fd, const char *out, size_t total, size_t *off)
{
    uint64_t end = t_now_ns() + 20000000000ull;

    for (int idle = 0; *off < total && idle < 50;) {
        ssize_t n = write(fd, out + *off, total - *off);

        T_OK(t_now_ns() < end);
        if (n > 0) {
            *off += (size_t) n;
            idle = 0;
        } else {
            T_OK(errno == EAGAIN || errno == EPIPE || errno == ECONNRESET);
            if (errno != EAGAIN) {
                return 1;
            }
            idle++;
        }
        t_hpump_for(evpl, 10);
    }
    return 0;
}

static void
pipelined_unread(struct evpl *evpl, struct evpl_endpoint *ep)
{
    static const char req[] = "GET /u HTTP/1.1\r\nHost: x\r\n\r\n";
    const size_t reqlen = sizeof(req) - 1;
    const char marker[] = "HTTP/1.1 200 OK\r\n";
    size_t total = NREQ * reqlen, off = 0, got = 0, carry = 0;
    char *out = malloc(total), buf[65536 + sizeof(marker)];
    int fd, responses = 0;
    uint64_t end;

    fprintf(stderr, "-- HTTP/1.1: %d pipelined requests, answers not read\n", NREQ);
    T_OK(out != NULL);
    for (int i = 0; i < NREQ; i++) {
        memcpy(out + (size_t) i * reqlen, req, reqlen);
    }
    fd = t_raw_connect_small(ep);
    T_EQ(write_until_stall(evpl, fd, out, total, &off), 0);
    pump_until_still(evpl);
    fprintf(stderr, "  %zu of %zu request bytes written, %d requests dispatched\n", off, total,
            dispatched);
    /* ~256 KiB waiting in the library, plus the kernel's buffers */
    T_OK(dispatched < NREQ / 2);

    /* now the client reads: everything is answered */
    end = t_now_ns() + 60000000000ull;
    while (responses < NREQ) {
        ssize_t n;

        T_OK(t_now_ns() < end);
        if (off < total) {
            n = write(fd, out + off, total - off);
            if (n > 0) {
                off += (size_t) n;
            }
        }
        n = read(fd, buf + carry, sizeof(buf) - carry);
        if (n > 0) {
            size_t len = carry + (size_t) n, i;

            got += (size_t) n;
            for (i = 0; i + sizeof(marker) - 1 <= len; i++) {
                if (buf[i] == 'H' && memcmp(buf + i, marker, sizeof(marker) - 1) == 0) {
                    responses++;
                }
            }
            /* keep a tail that may hold the start of a marker */
            carry = len < sizeof(marker) - 2 ? len : sizeof(marker) - 2;
            memmove(buf, buf + len - carry, carry);
        } else {
            T_OK(n < 0 && errno == EAGAIN);
            t_hpump_for(evpl, 2);
        }
    }
    T_EQ(responses, NREQ);
    T_EQ(dispatched, NREQ);
    fprintf(stderr, "  ok: all %d answered once read (%zu bytes)\n", responses, got);
    close(fd);
    free(out);
    t_hpump_for(evpl, 50);
}

static void
pipelined_bulk_unread(struct evpl *evpl, struct evpl_endpoint *ep)
{
    static const char req[] = "GET /u HTTP/1.1\r\nHost: x\r\n\r\n";
    enum { N = 4000000 };
    const size_t reqlen = sizeof(req) - 1;
    size_t total = N * reqlen, off = 0;
    char *out = malloc(total);
    long rss0, rss1;
    int fd;

    fprintf(stderr, "-- HTTP/1.1: %d pipelined requests, never read\n", N);
    T_OK(out != NULL);
    for (int i = 0; i < N; i++) {
        memcpy(out + (size_t) i * reqlen, req, reqlen);
    }
    rss0 = (long) (t_rss_bytes() / 1024); /* (with the 112 MB to write) */
    fd = t_raw_connect_small(ep);
    T_EQ(write_until_stall(evpl, fd, out, total, &off), 0);
    rss1 = (long) (t_rss_bytes() / 1024);
    fprintf(stderr, "  %zu of %zu bytes written; server RSS %ld -> %ld KiB\n", off, total, rss0,
            rss1);
    /* 256 KiB read ahead, 256 KiB of answers, the kernel's buffers both
     * ways (tcp_rmem / tcp_wmem maxima: 6 + 4 MB here); 64 MiB read
     * ahead before */
    T_OK(off < 64u << 20);
    T_OK(rss1 - rss0 < 32 * 1024);
    close(fd);
    free(out);
    t_hpump_for(evpl, 50);
}

/* Several clients pipeline at once and none reads: what the server holds
 * for them is what they sent and what it answers, not the buffers those
 * bytes were cut from.  Their answers interleave in the loop's buffers,
 * so each client's last MiB of answers held a slice of every buffer the
 * others' answers passed through; the requests read ahead the same.
 * 16 clients held 35-36 buffers (2 MiB each) for ~21 MiB of bytes; queues
 * that wait are now compacted, and a connection whose client does not
 * read stops reading at once. */
static void
many_pipelined_unread(struct evpl *evpl, struct evpl_endpoint *ep)
{
    static const char req[] = "GET /u HTTP/1.1\r\nHost: x\r\n\r\n";
    enum { NCLI = 16, PER = 60000, STEP = 512 };
    const size_t reqlen = sizeof(req) - 1, total = PER * reqlen;
    size_t off[NCLI] = {0};
    char *out = malloc(total);
    int fds[NCLI], d0;
    int64_t base, held;
    uint64_t end = t_now_ns() + 60000000000ull;
    size_t written = 0;

    fprintf(stderr, "-- HTTP/1.1: %d clients pipelining, none reads\n", NCLI);
    T_OK(out != NULL);
    for (int i = 0; i < PER; i++) {
        memcpy(out + (size_t) i * reqlen, req, reqlen);
    }
    t_hpump_for(evpl, 300); /* (what the cases before let go is back first) */
    base = t_metric("evpl_allocator_buffers_in_use");
    d0 = dispatched;
    for (int c = 0; c < NCLI; c++) {
        fds[c] = t_raw_connect_small(ep);
    }
    /* a little from each in turn, until none can write more */
    for (int idle = 0; idle < 50;) {
        T_OK(t_now_ns() < end);
        idle = t_write_round(fds, NCLI, out, total, off, STEP) ? 0 : idle + 1;
        t_hpump_for(evpl, 1);
    }
    pump_until_still(evpl);
    held = t_metric("evpl_allocator_buffers_in_use") - base;
    for (int c = 0; c < NCLI; c++) {
        written += off[c] / reqlen;
    }
    fprintf(stderr, "  %zu requests written, %d dispatched; buffers in use +%lld\n", written,
            dispatched - d0, (long long) held);
    /* the connections got stuck: requests written and not parsed wait in
     * the kernel's buffers */
    T_LT((size_t) (dispatched - d0) + NCLI * 5000, written);
    /* per client: up to 256 KiB of answers waiting (HTTP_HEAD_HIGH) and
     * what it read ahead (little, once stuck): ~4 MiB, + the loop's own */
    /* (2-4 here; 8 with parsing on to 1 MiB of answers, 35-36 before any
     * compaction) */
    T_LE(held, 6);
    for (int c = 0; c < NCLI; c++) {
        close(fds[c]);
    }
    free(out);
    t_hpump_for(evpl, 100);
}

static void
ping_flood_unread(struct evpl *evpl, struct evpl_endpoint *ep)
{
    static const unsigned char ping[17] = {0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    enum { NPING = 2000000 };
    unsigned char *out = malloc(NPING * sizeof(ping) + 64);
    size_t total = 0, off = 0;
    int fd, ended;
    struct t_raw ok;
    long rss0, rss1;

    fprintf(stderr, "-- HTTP/2: %d PINGs, the ACKs not read\n", NPING);
    T_OK(out != NULL);
    memcpy(out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    total = 24;
    memcpy(out + total, "\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9); /* empty SETTINGS */
    total += 9;
    for (int i = 0; i < NPING; i++) {
        memcpy(out + total, ping, sizeof(ping));
        total += sizeof(ping);
    }
    rss0 = (long) (t_rss_bytes() / 1024); /* (with the 34 MB to write) */
    fd = t_raw_connect_small(ep);
    ended = write_until_stall(evpl, fd, (const char *) out, total, &off);
    t_hpump_for(evpl, 300);
    rss1 = (long) (t_rss_bytes() / 1024);
    fprintf(stderr, "  %zu of %zu bytes written%s; server RSS %ld -> %ld KiB\n", off, total,
            ended ? " (the server ended the connection)" : "", rss0, rss1);
    /* what was written may sit in the connection's receive ring (the
     * bind reads up to 64 MiB ahead); answering it all would queue as
     * much again in ACKs */
    T_OK(rss1 - rss0 < (long) (off / 1024) + 16 * 1024);
    /* the ACKs it never reads fill what the server queues, nghttp2's limit
     * on queued ACKs fails the session, and the connection is cut (a
     * graceful close would wait for the client for ever: helper-88) */
    T_OK(ended);
    /* another client is still served */
    t_raw_open(&ok, ep);
    t_raw_sends(&ok, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    T_HPUMP(evpl, ok.in.len >= 15, 5000);
    T_BYTES_EQ(ok.in.p, 15, "HTTP/1.1 200 OK");
    fprintf(stderr, "  ok: another client is served\n");
    t_raw_close(&ok);
    close(fd);
    free(out);
    t_hpump_for(evpl, 50);
}

int
main(void)
{
    struct evpl *evpl;
    struct evpl_http_agent *agent;
    struct evpl_endpoint *ep;
    struct evpl_listener *l;
    struct evpl_http_server *server;

    signal(SIGPIPE, SIG_IGN);
    t_net_guard(180);
    memset(body, 'b', BODYLEN);
    evpl = t_net_loop();
    agent = evpl_http_init(evpl);
    ep = t_endpoint(EVPL_STREAM_SOCKET_TCP);
    l = t_listen(EVPL_STREAM_SOCKET_TCP, ep);
    server = evpl_http_attach(agent, l, u_dispatch, NULL);
    t_evpl = evpl;

    pipelined_unread(evpl, ep);
    pipelined_bulk_unread(evpl, ep);
    many_pipelined_unread(evpl, ep);
#ifdef T_HAVE_NGHTTP2
    ping_flood_unread(evpl, ep);
#endif

    evpl_http_server_destroy(agent, server);
    evpl_http_destroy(agent);
    evpl_listener_destroy(l);
    evpl_destroy(evpl);
    fprintf(stderr, "PASS\n");
    return 0;
}
