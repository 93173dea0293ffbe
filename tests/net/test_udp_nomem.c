/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * UDP with buffer memory exhausted (a slab cap, the application holding
 * every datagram it received): the bind neither dies nor spins.  While no
 * memory is free it retries on a backing-off timer (it used to try, and
 * log, on every pass: ~100 k passes a second); once the application
 * releases what it holds, datagrams flow again.
 */
/* MATRIX: datagram */
#include "t_net.h"

#define BUF (64u * 1024)

static struct evpl_iovec held[4096];
static int nheld, nrecv;

static void
hold(struct evpl *evpl, struct evpl_bind *bind, struct evpl_notify *n, void *priv)
{
    (void) evpl, (void) bind, (void) priv;
    if (n->notify_type == EVPL_NOTIFY_RECV_MSG) {
        nrecv++;
        for (unsigned i = 0; i < n->recv_msg.niov; i++) {
            T_OK(nheld < 4096);
            held[nheld++] = n->recv_msg.iovec[i];
        }
    }
}

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl_endpoint *ep;
    struct sockaddr_storage ss;
    struct evpl_bind *b;
    struct evpl *evpl;
    char m[8000];
    int64_t passes;
    socklen_t sl;
    int fd;

    t_net_guard(60);
    t_init_memory_cap(BUF, 2);
    proto = t_proto(T_NET_KIND_DATAGRAM);
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    b = evpl_bind(evpl, proto, ep, hold, NULL);
    T_OK(b != NULL);
    sl = t_endpoint_sockaddr(ep, &ss);
    fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    T_OK(fd >= 0);
    memset(m, 'm', sizeof(m));

    /* a raw sender (the library's send side needs no memory) fills it */
    for (int i = 0; i < 400; i++) {
        (void) sendto(fd, m, sizeof(m), 0, (struct sockaddr *) &ss, sl);
        if (i % 20 == 0) {
            t_pump_for(evpl, 2);
        }
    }
    t_pump_for(evpl, 200);
    T_GT(nrecv, 0);
    T_LT(nrecv, 400); /* memory ran out before all were received */

    /* out of memory with datagrams waiting: 300 ms of passes is a few
     * dozen (5 ms waits, the retry timer), not a spin */
    passes = t_metric("evpl_loop_passes_total");
    t_pump_for(evpl, 300);
    passes = t_metric("evpl_loop_passes_total") - passes;
    fprintf(stderr, "%d datagrams held; %lld passes in 300 ms out of memory\n", nrecv,
            (long long) passes);
    T_LT(passes, 2000);

    /* memory back: datagrams flow again */
    evpl_iovecs_release(evpl, held, nheld);
    nheld = 0;
    t_pump_for(evpl, 300);
    nrecv = 0;
    for (int i = 0; i < 20; i++) {
        (void) sendto(fd, m, 100, 0, (struct sockaddr *) &ss, sl);
        t_pump_for(evpl, 5);
        evpl_iovecs_release(evpl, held, nheld);
        nheld = 0;
    }
    T_PUMP(evpl, nrecv >= 20, 5000);

    close(fd);
    evpl_close(evpl, b);
    t_pump_for(evpl, 50);
    evpl_iovecs_release(evpl, held, nheld);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    return 0;
}
