/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * memory.md §12 statement 12 taken at its word: a GLOBAL buffer sent
 * without TAKE_REF and released once *as soon as the peer has received the
 * data*, which can be before the loop has reaped the send's completion and
 * reported SENT (io_uring: the completion is collected on the next pass).
 * The library's own late release of the view its send ring held must stay
 * a no-op: it aborted ("released with no reference left"), and a buffer
 * allocated in between could be freed under its new owner (helper-100).
 *
 * The peer is a raw socket (the bytes on the wire are the payload), so
 * kernel TCP, UNIX and UDP transports, socket and io_uring.  Each round
 * also allocates a whole SHARED buffer right after the release, and checks
 * that it is neither freed nor overlapped by a later allocation.
 */
/* MATRIX: stream datagram */
/* MATRIX_ONLY: STREAM_SOCKET_TCP STREAM_IO_URING_TCP STREAM_SOCKET_UNIX */
/* MATRIX_ONLY: DATAGRAM_SOCKET_UDP DATAGRAM_IO_URING_UDP */
/* ALSO_MECH: io_uring */
#include "t_net.h"

#include <poll.h>

enum { ROUNDS = 20 };

static int connected, disconnected;

static void
notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) evpl;
    (void) bind;
    (void) priv;
    if (n->notify_type == EVPL_NOTIFY_CONNECTED) {
        connected = 1;
    } else if (n->notify_type == EVPL_NOTIFY_DISCONNECTED) {
        disconnected = 1;
    }
} /* notify */

/* Receive exactly len bytes (one datagram, or stream bytes) on fd while
 * running the loop; nothing else */
static void
peer_take(struct evpl *evpl, int fd, int stream, char *buf, unsigned int len)
{
    uint64_t deadline = t_now_ns() + 5000000000ull;
    unsigned int got = 0;

    while (got < len) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};

        T_OK(t_now_ns() < deadline);
        if (poll(&pf, 1, 0) > 0) {
            ssize_t r = recv(fd, buf + got, stream ? len - got : len + 1, 0);

            T_GT(r, 0);
            if (!stream) {
                T_EQ((int) r, (int) len);
            }
            got += (unsigned int) r;
        } else {
            evpl_continue(evpl);
        }
    }
} /* peer_take */

int
main(void)
{
    enum evpl_protocol_id proto = t_proto(T_NET_KIND_STREAM | T_NET_KIND_DATAGRAM);
    int stream = evpl_protocol_is_stream(proto);
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct evpl_bind *b;
    struct sockaddr_storage ss;
    socklen_t sslen;
    int lfd, fd, one = 1;
    const unsigned int len = 4000;
    char *buf = malloc(len + 1);

    t_net_guard(60);
    if (proto != EVPL_STREAM_SOCKET_TCP && proto != EVPL_STREAM_IO_URING_TCP &&
        proto != EVPL_STREAM_SOCKET_UNIX && proto != EVPL_DATAGRAM_SOCKET_UDP &&
        proto != EVPL_DATAGRAM_IO_URING_UDP) {
        T_SKIP("the raw peer needs the payload alone on the wire");
    }
    T_OK(buf != NULL);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    sslen = t_endpoint_sockaddr(ep, &ss);

    /* the peer: a raw socket at the endpoint */
    lfd = socket(ss.ss_family, (stream ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
    T_OK(lfd >= 0);
    T_EQ(setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    T_EQ(bind(lfd, (struct sockaddr *) &ss, sslen), 0);
    if (stream) {
        T_EQ(listen(lfd, 1), 0);
        b = evpl_connect(evpl, proto, NULL, ep, notify, NULL, NULL);
        T_OK(b != NULL);
        T_PUMP(evpl, connected, 5000);
        fd = accept(lfd, NULL, NULL);
        T_OK(fd >= 0);
    } else {
        struct evpl_endpoint *mine = t_endpoint(proto);

        b = evpl_bind(evpl, proto, mine, notify, NULL);
        T_OK(b != NULL);
        fd = lfd;
        lfd = -1;
        evpl_endpoint_close(mine);
    }

    for (int round = 0; round < ROUNDS; round++) {
        struct evpl_iovec g, s1, s2;
        unsigned int whole;

        evpl_iovec_alloc_global(evpl, &g);
        T_OK(g.data != NULL);
        whole = g.length; /* buffer_size */
        memset(g.data, 'a' + round, len);
        if (stream) {
            evpl_sendv(evpl, b, &g, 1, len, 0);
        } else {
            evpl_sendtoepv(evpl, b, ep, &g, 1, len, 0);
        }
        peer_take(evpl, fd, stream, buf, len);
        for (unsigned int i = 0; i < len; i++) {
            if (buf[i] != 'a' + round) {
                T_FAIL("round %d: byte %u is %d", round, i, buf[i]);
            }
        }
        /* the peer has it all: the owner's release is allowed now */
        evpl_iovec_release(evpl, &g);

        /* whole SHARED buffers, one at once (it may get the memory just
         * freed), one after the loop's late release of its view */
        T_EQ(evpl_iovec_alloc(evpl, whole, 0, 1, EVPL_IOVEC_FLAG_SHARED, &s1), 1);
        memset(s1.data, 1, 64);
        for (int i = 0; i < 5; i++) {
            evpl_continue(evpl);
        }
        T_EQ(evpl_iovec_alloc(evpl, whole, 0, 1, EVPL_IOVEC_FLAG_SHARED, &s2), 1);
        if (s2.data == s1.data) {
            T_FAIL("round %d: a live buffer was handed out again", round);
        }
        memset(s2.data, 2, 64);
        T_EQ(((unsigned char *) s1.data)[0], 1);
        evpl_iovec_release(evpl, &s2);
        evpl_iovec_release(evpl, &s1);
    }
    fprintf(stderr, "ok: %d GLOBAL buffers released once the peer had them\n", ROUNDS);

    evpl_close(evpl, b);
    T_PUMP(evpl, disconnected, 5000);
    close(fd);
    if (lfd >= 0) {
        close(lfd);
    }
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    free(buf);
    return 0;
}
