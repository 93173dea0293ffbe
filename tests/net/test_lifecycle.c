/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Connection lifecycle, send forms and SENT over every stream protocol:
 * net.md §14 statements 1, 2, 4, 5, 6, 7, 9, 10, 11, 15, 18, 22, 36, 37,
 * 38, 39; memory.md §12 statements 10 and 12; core.md §11 statement 15;
 * sends on a closing bind are dropped (evpl_bind.h).
 */
/* MATRIX: stream */
/* ALSO_MECH: io_uring */
/* LABELS: threads */
#include "t_net.h"

static struct evpl *evpl;
static enum evpl_protocol_id proto;
static struct evpl_endpoint *ep;
static struct t_server srv;

/* Connect a client and wait until both ends are CONNECTED. */
static struct t_conn *
pair(struct t_conn *c, evpl_segment_callback_t seg)
{
    int before = srv.n;
    struct t_conn *s;

    t_connect(evpl, proto, ep, c, seg);
    /* 1: nothing was delivered from inside evpl_connect */
    T_EQ(c->nevents, 0);
    T_PUMP(evpl, c->connected && srv.n > before && srv.conns[before].connected, 5000);
    s = &srv.conns[before];
    /* 2: exactly one CONNECTED each, first */
    T_EQ(c->connected, 1);
    T_EQ(s->connected, 1);
    T_STR_EQ(c->events, "C");
    T_STR_EQ(s->events, "C");
    T_EQ(c->disconnected, 0);
    /* 11: a live bind is not closing */
    T_EQ(evpl_bind_is_closing(c->bind), 0);
    T_EQ(evpl_bind_is_closing(s->bind), 0);
    T_EQ((int) evpl_bind_get_protocol(c->bind), (int) proto);
    T_EQ((int) evpl_bind_get_protocol(s->bind), (int) proto);
    T_EQ(evpl_bind_is_rdma(c->bind), t_proto_is_rdmacm(proto));
    return s;
}

/* 7: evpl_close from inside DISCONNECTED is a no-op */
static void
close_in_disconnect(struct t_conn *c, struct evpl_notify *n)
{
    if (n->notify_type == EVPL_NOTIFY_DISCONNECTED) {
        evpl_close(c->evpl, c->bind);
        evpl_close(c->evpl, c->bind);
    }
}

static void
sendv_short(void *arg)
{
    struct evpl_iovec iov;
    struct t_conn *c = arg;

    T_EQ(evpl_iovec_alloc(evpl, 100, 0, 1, 0, &iov), 1);
    /* 37: the iovecs hold fewer bytes than length: abort */
    evpl_sendv(evpl, c->bind, &iov, 1, 101, 0);
    _exit(0);
}

int
main(void)
{
    struct t_conn c, c2, c3;
    struct t_conn *s, *s2, *s3;
    uint8_t *expect;
    size_t elen = 0;

    t_net_guard(60);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);

    /* 15: connect right after evpl_listen returns succeeds (attach after listen) */
    t_server_start(&srv, evpl, proto, ep, 16);
    s = pair(&c, NULL);
    /* 18: the attach callback ran on this thread; conn_private reached callbacks */
    T_EQ(srv.attach_wrong_thread, 0);
    T_EQ(s->errors, 0);

    /* 22, 36, 38, memory 10 and 12: every send form, in order */
    expect = malloc(8 << 20);
    T_OK(expect != NULL);
    {
        struct evpl_iovec iov[4], g;
        char small[300];
        int events_before = c.nevents + c.nrecv_data;
        int n;

        for (int i = 0; i < (int) sizeof(small); i++) {
            small[i] = (char) (i * 7 + 1);
        }
        /* copy form; the buffer is free right after the call */
        evpl_send(evpl, c.bind, small, sizeof(small));
        memcpy(expect + elen, small, sizeof(small));
        elen += sizeof(small);
        memset(small, 0, sizeof(small));

        /* iovec form without TAKE_REF: caller releases right away */
        n = evpl_iovec_alloc(evpl, 5000, 0, 4, 0, iov);
        T_GE(n, 1);
        t_pattern_fill(1, 0, iov[0].data, iov[0].length);
        evpl_sendv(evpl, c.bind, iov, n, 5000, 0);
        memcpy(expect + elen, iov[0].data, 5000);
        elen += 5000;
        evpl_iovecs_release(evpl, iov, n);

        /* TAKE_REF with several iovecs; the last used is trimmed and those
         * beyond length are ignored (and released by the library) */
        T_EQ(evpl_iovec_alloc(evpl, 1000, 0, 1, 0, &iov[0]), 1);
        T_EQ(evpl_iovec_alloc(evpl, 2000, 0, 1, 0, &iov[1]), 1);
        T_EQ(evpl_iovec_alloc(evpl, 3000, 0, 1, 0, &iov[2]), 1);
        t_pattern_fill(2, 0, iov[0].data, 1000);
        t_pattern_fill(3, 0, iov[1].data, 2000);
        t_pattern_fill(4, 0, iov[2].data, 3000);
        memcpy(expect + elen, iov[0].data, 1000);
        memcpy(expect + elen + 1000, iov[1].data, 1500);
        elen += 2500;
        evpl_sendv(evpl, c.bind, iov, 3, 2500, EVPL_SEND_FLAG_TAKE_REF);

        /* 37: nbufvecs == 0 does nothing */
        evpl_sendv(evpl, c.bind, iov, 0, 0, 0);

        /* a large copy send spanning two buffers (2 MiB default) */
        {
            size_t big = 3 * 1024 * 1024 + 17;
            uint8_t *b = malloc(big);

            t_pattern_fill(5, 0, b, big);
            evpl_send(evpl, c.bind, b, (unsigned int) big);
            memcpy(expect + elen, b, big);
            elen += big;
            free(b);
        }

        /* memory 12: a GLOBAL buffer sent without TAKE_REF, released once
         * after the peer received it */
        evpl_iovec_alloc_global(evpl, &g);
        T_OK(g.data != NULL);
        t_pattern_fill(6, 0, g.data, g.length);
        evpl_sendv(evpl, c.bind, &g, 1, 100000, 0);
        memcpy(expect + elen, g.data, 100000);
        elen += 100000;

        /* 38: no callback from inside any send */
        T_EQ(c.nevents + c.nrecv_data, events_before);
        T_EQ(s->nrecv_data, 0);

        T_PUMP(evpl, s->rxlen >= elen, 10000);
        T_EQ(s->rxlen, elen);
        T_OK(memcmp(s->rx, expect, elen) == 0);
        evpl_iovec_release(evpl, &g);
    }
    /* 39: no SENT before the request */
    T_EQ(c.nsent, 0);

    /* 39: after the request (made after queuing, in the same pass) the
     * SENT bytes add up to what was queued; msgs is 0 for a plain stream */
    {
        char buf[4096];
        uint64_t total = 0;

        memset(buf, 'x', sizeof(buf));
        for (int i = 0; i < 50; i++) {
            evpl_send(evpl, c.bind, buf, (unsigned int) (i * 80 + 1));
            total += (uint64_t) (i * 80 + 1);
        }
        evpl_bind_request_send_notifications(evpl, c.bind);
        T_EQ(c.nsent, 0); /* 38: not synchronous */
        T_PUMP(evpl, c.sent_bytes >= total && s->rxlen >= elen + total, 5000);
        t_pump_for(evpl, 50);
        T_EQ_U(c.sent_bytes, total);
        /* (an in-process stream counts its sends: net.md §10) */
        T_EQ_U(c.sent_msgs, evpl_protocol_is_inproc(proto) ? 50 : 0);
        T_EQ_U(s->rxlen, elen + total);
        T_EQ(s->nsent, 0); /* the server end never asked */
    }

    /* 39: on a segmented bind, sent.msgs counts the sends */
    s2 = pair(&c2, t_segment_be32);
    {
        uint8_t m[64];
        uint64_t total = 0;

        evpl_bind_request_send_notifications(evpl, c2.bind);
        for (int i = 0; i < 5; i++) {
            t_put_be32(m, (uint32_t) (T_HDR + i * 10));
            memset(m + T_HDR, i, (size_t) i * 10);
            evpl_send(evpl, c2.bind, m, (unsigned int) (T_HDR + i * 10));
            total += (uint64_t) (T_HDR + i * 10);
        }
        T_PUMP(evpl, c2.sent_bytes >= total && s2->rxlen >= total, 5000);
        t_pump_for(evpl, 20);
        T_EQ_U(c2.sent_bytes, total);
        T_EQ_U(c2.sent_msgs, 5);
    }

    /* 37: short iovecs abort (in a child; it inherits this loop and bind) */
    T_EQ(t_child_signal(sendv_short, &c2), SIGABRT);

    /* 5, 6, 7, 11: abortive close from the client */
    {
        int ev_before = c.nevents;

        c.hook = close_in_disconnect;
        evpl_close(evpl, c.bind);
        T_OK(evpl_bind_is_closing(c.bind) != 0); /* 11 */
        evpl_close(evpl, c.bind);                /* 6: same as once */
        T_EQ(c.nevents, ev_before);              /* 5: not synchronous */
        T_EQ(c.disconnected, 0);

        /* sends on a closing bind are dropped (copy and TAKE_REF forms) */
        {
            struct evpl_iovec iov;

            evpl_send(evpl, c.bind, "dropped", 7);
            T_EQ(evpl_iovec_alloc(evpl, 4096, 0, 1, 0, &iov), 1);
            evpl_sendv(evpl, c.bind, &iov, 1, 4096, EVPL_SEND_FLAG_TAKE_REF);
        }
        T_PUMP(evpl, c.disconnected && s->disconnected, 5000);
        t_pump_for(evpl, 50);
        T_EQ(c.disconnected, 1); /* 4: exactly once, last */
        T_EQ(c.cb_after_disconnect, 0);
        T_EQ(s->disconnected, 1); /* the peer saw EOF */
        T_EQ(s->cb_after_disconnect, 0);
        T_EQ(s->rxlen, elen + (size_t) (50 * 1 + 80 * 49 * 50 / 2)); /* nothing more */
        T_EQ(c.errors, 0);
        T_EQ(s->errors, 0);
    }

    /* 9, 10: evpl_finish with a lot queued delivers every byte, then the
     * peer sees DISCONNECTED (EOF); the finishing end gets DISCONNECTED */
    s3 = pair(&c3, NULL);
    {
        size_t big = 6 * 1024 * 1024;
        uint8_t *b = malloc(big);

        t_pattern_fill(7, 0, b, big);
        for (size_t off = 0; off < big; off += 1 << 20) {
            evpl_send(evpl, c3.bind, b + off, 1 << 20);
        }
        evpl_finish(evpl, c3.bind);
        T_OK(evpl_bind_is_closing(c3.bind) != 0); /* 11 */
        T_PUMP(evpl, s3->disconnected && c3.disconnected, 10000);
        T_EQ(s3->rxlen, big);
        T_EQ(t_pattern_check(7, 0, s3->rx, big), -1);
        T_EQ(c3.disconnected, 1);
        T_EQ(c3.cb_after_disconnect, 0);
        T_EQ(s3->cb_after_disconnect, 0);
        /* 4: DISCONNECTED last on both ends */
        T_EQ(s3->events[strlen(s3->events) - 1], 'D');
        T_EQ(c3.events[strlen(c3.events) - 1], 'D');
        free(b);
    }

    /* 10: finish with nothing queued closes like close; server-initiated */
    s3 = pair(&c3, NULL);
    evpl_finish(evpl, s3->bind);
    T_OK(evpl_bind_is_closing(s3->bind) != 0);
    T_PUMP(evpl, s3->disconnected && c3.disconnected, 5000);
    T_EQ(s3->disconnected, 1);
    T_EQ(c3.disconnected, 1);

    /* 10 with empty sends of every form first (§7 rule 4: on a stream
     * they are nothing), on a segmented bind: they queue no message, so
     * the finish still closes at once, and SENT counts no message */
    t_conn_free(&c3);
    s3 = pair(&c3, t_segment_be32);
    evpl_bind_request_send_notifications(evpl, c3.bind);
    evpl_send(evpl, c3.bind, "", 0);
    evpl_sendto(evpl, c3.bind, NULL, "", 0);
    evpl_sendtoep(evpl, c3.bind, NULL, "", 0);
    evpl_sendtov(evpl, c3.bind, NULL, NULL, 0, 0, 0);
    t_pump_for(evpl, 20);
    T_EQ((int) c3.sent_msgs, 0);
    evpl_finish(evpl, c3.bind);
    T_PUMP(evpl, s3->disconnected && c3.disconnected, 5000);
    T_EQ(c3.disconnect_status, 0);

    /* core 15: evpl_destroy closes open binds, one DISCONNECTED each,
     * before returning */
    s3 = pair(&c3, NULL);
    evpl_listener_detach(evpl, srv.binding);
    srv.binding = NULL;
    evpl_listener_destroy(srv.listener);
    srv.listener = NULL;
    T_EQ(c2.disconnected, 0);
    T_EQ(s2->disconnected, 0);
    evpl_destroy(evpl);
    T_EQ(c2.disconnected, 1);
    T_EQ(s2->disconnected, 1);
    T_EQ(c3.disconnected, 1);
    T_EQ(s3->disconnected, 1);
    T_EQ(c2.cb_after_disconnect + s2->cb_after_disconnect, 0);
    for (int i = 0; i < srv.n; i++) {
        T_EQ(srv.conns[i].disconnected, 1);
        T_EQ(srv.conns[i].errors, 0);
    }
    T_EQ(c2.errors + c3.errors, 0);

    t_conn_free(&c);
    t_conn_free(&c2);
    t_conn_free(&c3);
    t_server_stop(&srv);
    evpl_endpoint_close(ep);
    free(expect);
    return 0; /* the exit-time leak check is the oracle for 36 / memory 10 */
}
