/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * libFuzzer target for EVPL_DATAGRAM_TCP_RDMA's wire protocol (rdma.md §6):
 * the frames a peer writes on the TCP connection, sends and one-sided
 * reads and writes into our registered memory and replies to ours, through
 * the public API only.  The first input byte picks what the rest is:
 *
 *   bit 0 clear: bytes a raw TCP peer writes to our listening bind (which
 *         echoes every message it gets); set: bytes a raw TCP server
 *         writes to our client bind after it issued a read, a write and a
 *         send (replies to them, and anything else)
 *   bits 1-7: write size, 7 bytes per step (0: all at once)
 *
 * A frame whose key is 0xFEEDF00D names our registered buffer: the
 * harness puts its real key there, and the frame's address becomes that
 * buffer's address plus the address field's low 32 bits taken as a signed
 * offset, so the fuzzer reaches in-bounds and out-of-bounds targets of
 * real memory (keys carry a random tag it could not guess).
 *
 * Invariants (abort on violation): every operation we issue completes
 * exactly once, the connection ends when the peer closes, nothing leaks
 * (ASan), nothing hangs.  Built with clang -fsanitize=fuzzer (make fuzz);
 * otherwise main() replays the files named on the command line.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <evpl/evpl.h>

#define MAGIC_KEY 0xFEEDF00Du
#define REG_SIZE  65536

static struct evpl *evpl;
static struct evpl_listener *listener;
static struct evpl_endpoint *server_ep, *raw_ep;
static int raw_listen_fd;
static uint16_t server_port;
static struct evpl_iovec reg; /* the registered buffer frames may name */
static uint64_t activity;
static size_t drained; /* bytes the raw peer read from our side */

static void
check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_tcp_rdma: invariant broken: %s\n", what);
        abort();
    }
}

static uint64_t
now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t) t.tv_sec * 1000000000ull + (uint64_t) t.tv_nsec;
}

/* ---- our binds ---- */

struct side {
    struct evpl_bind *bind;
    int up, gone, msgs;
};

static struct side side;

static void
on_notify(struct evpl *e, struct evpl_bind *bind, struct evpl_notify *n, void *private_data)
{
    struct side *s = private_data;

    activity++;
    switch (n->notify_type) {
        case EVPL_NOTIFY_CONNECTED:
            s->up = 1;
            break;
        case EVPL_NOTIFY_RECV_MSG:
            s->msgs++;
            /* echo it (the send path, under the peer's control) */
            evpl_sendv(e, bind, n->recv_msg.iovec, (int) n->recv_msg.niov, n->recv_msg.length,
                       EVPL_SEND_FLAG_TAKE_REF);
            break;
        case EVPL_NOTIFY_DISCONNECTED:
            s->gone = 1;
            break;
        default:
            break;
    }
}

static void
on_attach(struct evpl *e, struct evpl_bind *bind, evpl_notify_callback_t *notify_callback,
          evpl_segment_callback_t *segment_callback, void **conn_private_data, void *private_data)
{
    *notify_callback = on_notify;
    *segment_callback = NULL;
    *conn_private_data = &side;
    side.bind = bind;
    side.up = 1;
}

/* ---- operations we issue (client side) ---- */

#define NOPS      2
#define OUT_BYTES (32 + 4 + 32 + 100 + 32 + 5) /* a read, a write, a send */
static int done[NOPS];

static void
op_done(int status, void *private_data)
{
    int *d = private_data;

    activity++;
    check(status >= 0, "status is an errno, not negative");
    (*d)++;
}

/* ---- setup ---- */

static void
cleanup(void)
{
    evpl_iovec_release(evpl, &reg);
}

static void
setup(void)
{
    struct evpl_thread_config *tc;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int rc = -1;

    evpl_init(NULL);
    tc = evpl_thread_config_init();
    evpl_thread_config_set_wait_ms(tc, 0);
    evpl = evpl_create(tc);
    evpl_thread_config_release(tc);
    check(evpl_iovec_alloc(evpl, REG_SIZE, 4096, 1, 0, &reg) == 1, "alloc");
    memset(reg.data, 0x11, REG_SIZE);
    atexit(cleanup); /* before the library's leak check at exit */

    /* our listening bind, on a port the kernel picked for a probe socket */
    listener = evpl_listener_create();
    for (int i = 0; i < 20 && rc != 0; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        sa.sin_port = 0;
        check(fd >= 0 && bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0 &&
                  getsockname(fd, (struct sockaddr *) &sa, &len) == 0,
              "probe port");
        close(fd);
        server_port = ntohs(sa.sin_port);
        server_ep = evpl_endpoint_create("127.0.0.1", server_port);
        rc = evpl_listen(listener, EVPL_DATAGRAM_TCP_RDMA, server_ep);
    }
    check(rc == 0, "listen");
    evpl_listener_attach(evpl, listener, on_attach, NULL);

    /* a raw TCP server for our client binds */
    raw_listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sa.sin_port = 0;
    check(raw_listen_fd >= 0 && bind(raw_listen_fd, (struct sockaddr *) &sa, sizeof(sa)) == 0 &&
              listen(raw_listen_fd, 16) == 0 &&
              getsockname(raw_listen_fd, (struct sockaddr *) &sa, &len) == 0,
          "raw listen");
    raw_ep = evpl_endpoint_create("127.0.0.1", ntohs(sa.sin_port));
}

/* ---- the raw peer ---- */

/* Read and drop what our side wrote; 0 once it has closed. */
static int
drain(int fd)
{
    char buf[65536];
    ssize_t n;

    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        drained += (size_t) n;
    }
    return n < 0 && errno == EAGAIN;
}

/* Put the real key and addresses into frames that name MAGIC_KEY, walking
 * the frames as the receiver does (32-byte header, then a payload on
 * SEND, READ_REPLY, WRITE_REQUEST and READ_REQUEST); stop at the first
 * header that is not one. */
static void
patch(uint8_t *p, size_t size, uint32_t key, uint64_t addr)
{
    size_t off = 0;

    while (size - off >= 32) {
        uint32_t magic, opcode, length, k, low;
        uint64_t a;

        memcpy(&magic, p + off, 4);
        memcpy(&opcode, p + off + 4, 4);
        memcpy(&length, p + off + 8, 4);
        memcpy(&k, p + off + 12, 4);
        if (be32toh(magic) != 0x54524D41u) {
            return;
        }
        opcode = be32toh(opcode);
        length = be32toh(length);
        if (be32toh(k) == MAGIC_KEY) {
            k = htobe32(key);
            memcpy(p + off + 12, &k, 4);
            memcpy(&low, p + off + 20, 4);
            a = addr + (uint64_t) (int64_t) (int32_t) be32toh(low);
            a = htobe64(a);
            memcpy(p + off + 16, &a, 8);
        }
        off += 32;
        if (opcode == 1 || opcode == 2 || opcode == 3 || opcode == 4) {
            if (length > size - off) {
                return;
            }
            off += length;
        }
    }
}

/* Write data to fd, cut pieces at a time, running the loop; then close
 * and run the loop until our bind is gone. */
static void
feed_and_close(int fd, const uint8_t *data, size_t size, size_t cut)
{
    size_t off = 0;
    uint64_t deadline = now_ns() + 5000000000ull;

    while (off < size && !side.gone) {
        size_t n = cut && size - off > cut ? cut : size - off;
        ssize_t k = send(fd, data + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (k > 0) {
            off += (size_t) k;
        } else if (k < 0 && errno != EAGAIN) {
            break; /* our side closed on the input */
        }
        drain(fd);
        evpl_continue(evpl);
        check(now_ns() < deadline, "the peer's bytes are taken (or the connection ends)");
    }
    /* what our side answers in the meantime */
    for (int i = 0; i < 64; i++) {
        drain(fd);
        evpl_continue(evpl);
    }
    close(fd);
    while (!side.gone) {
        check(now_ns() < deadline, "the connection ends after the peer closes");
        evpl_continue(evpl);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;
    int client_side, fd;
    size_t cut;
    uint64_t deadline = now_ns() + 5000000000ull;

    if (!evpl) {
        setup();
    }
    if (size < 1) {
        return 0;
    }
    client_side = data[0] & 1;
    cut = (size_t) (data[0] >> 1) * 7;
    copy = malloc(size);
    check(copy != NULL, "malloc");
    memcpy(copy, data + 1, size - 1);
    size--;
    memset(&side, 0, sizeof(side));
    memset(done, 0, sizeof(done));
    drained = 0;

    if (!client_side) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        uint32_t key = 0;
        uint64_t addr = 0;

        sa.sin_port = htons(server_port);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        check(fd >= 0, "socket");
        /* (the raw side's own connect: local ports can run out under the
         * fuzzer's rate while closed connections sit in TIME_WAIT; that
         * is this harness's limit, not the library's, so it waits) */
        for (int tries = 0; connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0; tries++) {
            if (errno == EINTR) {
                /* a signal (libFuzzer's timeout timer) came first; the
                 * connect goes on: wait for its end */
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                int err = 0;
                socklen_t len = sizeof(err);

                while (poll(&p, 1, 1000) < 0 && errno == EINTR) {
                }
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
                    break;
                }
                errno = err;
            }
            if (errno != EADDRNOTAVAIL || tries == 1000) {
                fprintf(stderr, "fuzz_tcp_rdma: connect: %s\n", strerror(errno));
                check(0, "connect");
            }
            usleep(10000);
        }
        while (!side.up) {
            check(now_ns() < deadline, "accepted");
            evpl_continue(evpl);
        }
        evpl_rdma_get_address(evpl, side.bind, &reg, &key, &addr);
        check(key != 0, "a key for library memory");
        patch(copy, size, key, addr);
        feed_and_close(fd, copy, size, cut);
    } else {
        struct evpl_iovec rd, wr;
        uint32_t key = 0;
        uint64_t addr = 0;

        side.bind =
            evpl_connect(evpl, EVPL_DATAGRAM_TCP_RDMA, NULL, raw_ep, on_notify, NULL, &side);
        check(side.bind != NULL, "evpl_connect");
        while ((fd = accept4(raw_listen_fd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
            check(errno == EAGAIN && now_ns() < deadline, "accept");
            evpl_continue(evpl);
        }
        while (!side.up && !side.gone) {
            check(now_ns() < deadline, "connected");
            evpl_continue(evpl);
        }
        /* a read, a write and a send: their frames carry ids 1, 2 and the
         * message; replies to them come in the input */
        check(evpl_iovec_alloc(evpl, 100, 8, 1, 0, &rd) == 1, "alloc");
        check(evpl_iovec_alloc(evpl, 100, 8, 1, 0, &wr) == 1, "alloc");
        memset(wr.data, 'w', 100);
        evpl_rdma_read(evpl, side.bind, 7, 4096, &rd, 1, op_done, &done[0]);
        evpl_rdma_write(evpl, side.bind, 7, 8192, &wr, 1, EVPL_RDMA_FLAG_TAKE_REF, op_done,
                        &done[1]);
        evpl_send(evpl, side.bind, "hello", 5);
        /* the three frames are on the wire before any reply */
        for (size_t got = 0; got < OUT_BYTES;) {
            char buf[OUT_BYTES];
            ssize_t k = recv(fd, buf, OUT_BYTES - got, MSG_DONTWAIT);

            if (k > 0) {
                got += (size_t) k;
                continue;
            }
            check(k < 0 && errno == EAGAIN && now_ns() < deadline, "our frames");
            evpl_continue(evpl);
        }
        evpl_rdma_get_address(evpl, side.bind, &reg, &key, &addr);
        patch(copy, size, key, addr);
        feed_and_close(fd, copy, size, cut);
        evpl_iovec_release(evpl, &rd);
        for (int i = 0; i < NOPS; i++) {
            check(done[i] == 1, "each operation completes exactly once");
        }
    }
    free(copy);
    if (getenv("FUZZ_VERBOSE")) {
        fprintf(stderr, "%s side: %d messages, %zu bytes back\n", client_side ? "client" : "server",
                side.msgs, drained);
    }
    return 0;
}

#define FUZZ_NAME "fuzz_tcp_rdma"

__attribute__((unused)) static void
fuzz_replay_done(void)
{
    /* (the loop and listener live until exit, as under libFuzzer) */
}

#include "fuzz_replay.h"
