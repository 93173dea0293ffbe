/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * io_uring TCP, buffer memory used up by another connection: a segmented
 * connection that holds nothing waits for buffers, it is not closed.  Its
 * callback frames fixed 64-byte messages and answers 64 without looking
 * (net.md §9 allows that), so after each message, asked again with nothing
 * buffered, it leaves the bind wanting 64 bytes of an empty buffer.  The
 * close for want of buffers is meant for a connection holding part of a
 * message it cannot free; this one was closed with -ENOMEM (helper-92).
 */
#include "t_net.h"

#include <fcntl.h>

static int nconn;
static struct evpl_bind *hog_bind;
static int b_msgs, b_gone, b_status;

static int
fixed64(struct evpl *evpl, struct evpl_bind *bind, void *priv)
{
    (void) evpl;
    (void) bind;
    (void) priv;
    return 64;
}

static void
on_notify(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    int is_b = priv != NULL;

    (void) bind;
    if (n->notify_type == EVPL_NOTIFY_RECV_MSG) {
        b_msgs += is_b;
        evpl_iovecs_release(evpl, n->recv_msg.iovec, (int) n->recv_msg.niov);
    } else if (n->notify_type == EVPL_NOTIFY_DISCONNECTED && is_b) {
        b_gone = 1;
        b_status = n->notify_status;
    }
}

static int b_marker;

/* the first connection (the hog) is not segmented and never read; the
 * second frames 64-byte messages */
static void
on_attach(struct evpl *evpl, struct evpl_bind *bind, evpl_notify_callback_t *cb,
          evpl_segment_callback_t *seg, void **conn_private, void *priv)
{
    (void) evpl;
    (void) priv;
    *cb = on_notify;
    if (nconn++ == 0) {
        *seg = NULL;
        *conn_private = NULL;
        hog_bind = bind;
    } else {
        *seg = fixed64;
        *conn_private = &b_marker;
    }
}

int
main(void)
{
    static unsigned char hog[1 << 20];
    char msg[64];
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct evpl_listener *l;
    struct evpl_listener_binding *lb;
    int fa, fb;
    uint64_t deadline;

    t_net_guard(60);
    t_init_memory_cap(256 * 1024, 2);
    if (!evpl_protocol_available(EVPL_STREAM_IO_URING_TCP)) {
        T_SKIP("no io_uring TCP here");
    }
    evpl = t_net_loop();
    ep = t_endpoint(EVPL_STREAM_IO_URING_TCP);
    l = t_listen(EVPL_STREAM_IO_URING_TCP, ep);
    lb = evpl_listener_attach(evpl, l, on_attach, NULL);
    fa = t_raw_connect(ep);
    T_PUMP(evpl, nconn == 1, 5000);
    fb = t_raw_connect(ep);
    T_PUMP(evpl, nconn == 2, 5000);

    /* B gets a message: asked again with nothing buffered, it says 64 */
    memset(msg, 'b', sizeof(msg));
    t_write_all(fb, msg, sizeof(msg));
    T_PUMP(evpl, b_msgs == 1, 5000);

    /* A sends more than memory holds and its application reads none of
     * it: the loop's buffers are all A's */
    T_EQ(fcntl(fa, F_SETFL, O_NONBLOCK), 0);
    deadline = t_now_ns() + 1000000000ull;
    while (t_now_ns() < deadline) {
        (void) send(fa, hog, sizeof(hog), MSG_NOSIGNAL);
        evpl_continue(evpl);
    }

    /* B's next message finds no buffer: B waits, it is not closed */
    t_write_all(fb, msg, sizeof(msg));
    t_pump_for(evpl, 300);
    T_EQ(b_gone, 0);
    fprintf(stderr, "B: %d message(s), still open\n", b_msgs);

    /* the hog's application closes it, its memory comes back, B's
     * message arrives */
    evpl_close(evpl, hog_bind);
    close(fa);
    T_PUMP(evpl, b_msgs == 2, 5000);
    T_EQ(b_gone, 0);
    close(fb);
    T_PUMP(evpl, b_gone, 5000);
    T_EQ(b_status, 0);
    evpl_listener_detach(evpl, lb);
    evpl_destroy(evpl);
    evpl_listener_destroy(l);
    evpl_endpoint_close(ep);
    return 0;
}
