/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: unit */
/*
 * evpl__bind_compact_recv (net/hold.h): a module that will not take what
 * a stream bind receives for a long time (libevpl_http, libevpl_rpc2: the
 * client reads none of the answers) parks it.  What the bind holds then,
 * and what arrives until it is unparked, is moved into the compact pool's
 * buffers, out of the loop's receive buffers that other connections'
 * input shares.  helper-94: a read in progress when the connection got
 * stuck left its bytes in a shared buffer (the move happened only once).
 */
#include "core/internal.h"
#include "mem/mem.h"
#include "net/hold.h"
#include "net/net.h"

#include "../net/t_net.h"

#define PIECE 100
#define SEED  0x9a4c

/* Whether every entry of r lies in the compact pool's current buffer. */
static int
all_parked(struct evpl *evpl, struct evpl_iovec_ring *r)
{
    for (uint32_t i = 0; i < evpl_iovec_fifo_count(&r->fifo); i++) {
        if (evpl__iovec_buffer(evpl_iovec_fifo_at(&r->fifo, i)) != evpl->mem.compact.current) {
            return 0;
        }
    }
    return 1;
}

/* The client sends n pieces, each read on its own, with other data
 * allocated in between (the loop's receive buffer moves on). */
static void
trickle(struct evpl *evpl, struct t_conn *client, struct evpl_bind *sb, uint64_t *sent, int n)
{
    uint8_t buf[PIECE];

    for (int i = 0; i < n; i++) {
        struct evpl_iovec hot;
        uint64_t want = sb->recv_ring.length + PIECE;

        t_pattern_fill(SEED, *sent, buf, PIECE);
        evpl_send(evpl, client->bind, buf, PIECE);
        *sent += PIECE;
        T_PUMP(evpl, sb->recv_ring.length >= want, 5000);
        T_EQ(evpl_iovec_alloc(evpl, 64 * 1024, 0, 1, 0, &hot), 1);
        evpl_iovec_release(evpl, &hot);
    }
}

int
main(void)
{
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn client;
    struct evpl_bind *sb;
    uint64_t sent = 0, checked = 0;

    t_net_guard(60);
    evpl_init(NULL);
    evpl = t_net_loop();
    ep = t_endpoint(EVPL_STREAM_SOCKET_TCP);
    memset(&srv, 0, sizeof(srv));
    srv.autodrain = 0; /* the server side reads nothing */
    srv.keep_msgs = 1;
    t_server_start(&srv, evpl, EVPL_STREAM_SOCKET_TCP, ep, 1);
    t_connect(evpl, EVPL_STREAM_SOCKET_TCP, ep, &client, NULL);
    T_PUMP(evpl, client.connected && srv.n == 1 && srv.conns[0].connected, 5000);
    sb = srv.conns[0].bind;

    /* unparked: the pieces stay where they were read */
    trickle(evpl, &client, sb, &sent, 20);
    T_OK(!all_parked(evpl, &sb->recv_ring));

    /* parked: what it holds moves at once, and each piece that arrives
     * after it does too */
    evpl__bind_compact_recv(evpl, sb, 1);
    T_OK(all_parked(evpl, &sb->recv_ring));
    trickle(evpl, &client, sb, &sent, 50);
    T_OK(all_parked(evpl, &sb->recv_ring));

    /* unparked again: new pieces stay where they land */
    evpl__bind_compact_recv(evpl, sb, 0);
    trickle(evpl, &client, sb, &sent, 5);
    T_OK(!all_parked(evpl, &sb->recv_ring));

    /* and the bytes are all there, in order */
    T_EQ_U(sb->recv_ring.length, sent);
    t_recv_pattern(evpl, sb, SEED, &checked);
    T_EQ_U(checked, sent);

    evpl_close(evpl, client.bind);
    T_PUMP(evpl, client.disconnected && srv.conns[0].disconnected, 5000);
    t_server_stop(&srv);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
    t_conn_free(&client);
    return 0;
}
