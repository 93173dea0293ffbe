/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * In-process stream flow control: a receiver that does not read holds its
 * sender back (memory stays bounded, as with a full TCP window), and once
 * it reads, every byte arrives once and in order.  The sender sees the
 * hold-up as SENT notifications that stop, exactly like a socket whose
 * buffer is full.
 */
#include "t_net.h"

#define CHUNK (1u << 20)
#define TOTAL (64ull << 20)
#define LIMIT (1u << 20)
/* the receive ring (limit + one chunk) and the in-flight window (4 MiB)
 * plus one chunk the sender may hand over at the window's edge */
#define BOUND (LIMIT + CHUNK + (4u << 20) + CHUNK)

static unsigned char
byte_at(uint64_t i)
{
    return (unsigned char) ((i * 2654435761u) >> 11);
}

int
main(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    enum evpl_protocol_id proto = EVPL_STREAM_INPROC;
    struct evpl *evpl;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c;
    static unsigned char buf[CHUNK];
    uint64_t queued = 0, got = 0;
    int r;

    t_net_guard(60);
    evpl_global_config_set_stream_recv_limit(gc, LIMIT);
    evpl_init(gc);
    if (!evpl_protocol_available(proto)) {
        T_SKIP("STREAM_INPROC unavailable");
    }
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.autodrain = 0;
    srv.keep_msgs = 1; /* (else t_server_start turns autodrain on) */
    t_server_start(&srv, evpl, proto, ep, 1);
    t_connect(evpl, proto, ep, &c, NULL);
    evpl_bind_request_send_notifications(evpl, c.bind);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 5000);

    /* queue it all; the receiver does not read */
    while (queued < TOTAL) {
        for (unsigned int i = 0; i < CHUNK; i++) {
            buf[i] = byte_at(queued + i);
        }
        evpl_send(evpl, c.bind, buf, CHUNK);
        queued += CHUNK;
    }
    t_pump_for(evpl, 300);
    T_OK(c.sent_bytes > 0);
    T_LE(c.sent_bytes, BOUND);
    T_OK(srv.conns[0].nrecv_data > 0);
    T_EQ(c.disconnected, 0);

    /* now read: everything arrives, in order */
    {
        uint64_t deadline = t_now_ns() + 30000000000ull;

        while (got < TOTAL) {
            evpl_continue(evpl);
            while ((r = evpl_recv(evpl, srv.conns[0].bind, buf, sizeof(buf), 0)) > 0) {
                for (int i = 0; i < r; i++) {
                    if (buf[i] != byte_at(got + (uint64_t) i)) {
                        T_FAIL("byte %llu: %u, want %u", (unsigned long long) (got + (uint64_t) i),
                               buf[i], byte_at(got + (uint64_t) i));
                    }
                }
                got += (uint64_t) r;
            }
            T_OK(t_now_ns() < deadline);
        }
    }
    T_PUMP(evpl, c.sent_bytes == TOTAL, 5000);
    T_EQ(got, TOTAL);
    T_EQ(c.errors, 0);
    T_EQ(srv.conns[0].errors, 0);

    evpl_close(evpl, c.bind);
    T_PUMP(evpl, c.disconnected && srv.conns[0].disconnected, 5000);
    T_EQ(srv.conns[0].disconnect_status, 0);
    t_conn_free(&c);
    t_server_stop(&srv);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
