/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Review regression: evpl_connect whose connect fails synchronously inside
 * the backend (here: the local endpoint cannot be bound) must deliver one
 * DISCONNECTED with a negative errno and free everything the backend set
 * up.  TLS allocated its tls_conn + SSL in conn_new() before the TCP
 * connect and nothing freed it (TRANSPORT_UP never set, so tls_close never
 * runs): LeakSanitizer reports ~24 KiB per failed connect.
 */
/* MATRIX: stream */
#include "t_net.h"

int
main(void)
{
    enum evpl_protocol_id proto;
    struct evpl *evpl;
    struct evpl_endpoint *remote, *local;
    struct t_conn c;

    t_net_guard(30);
    proto = t_proto(T_NET_KIND_STREAM);
    evpl = t_net_loop();
    if (evpl_protocol_is_inproc(proto)) {
        T_SKIP("in-process connections bind to no local address");
    }
    remote = t_endpoint(proto);
    if (evpl_protocol_is_local(proto)) {
        /* a path in a directory that does not exist: bind() fails ENOENT */
        local = evpl_endpoint_create_local("/nonexistent-evpl-review-dir/sock");
    } else {
        /* TEST-NET-1: not an address of this host, bind() fails EADDRNOTAVAIL */
        local = evpl_endpoint_create("192.0.2.1", 0);
    }
    T_OK(local != NULL);

    for (int i = 0; i < 3; i++) {
        struct evpl_bind *b;

        t_conn_init(&c);
        c.owner = pthread_self();
        c.check_owner = 1;
        b = evpl_connect(evpl, proto, local, remote, t_conn_notify, NULL, &c);
        T_OK(b != NULL);
        c.bind = b;
        T_EQ(c.nevents, 0);
        T_PUMP(evpl, c.disconnected, 5000);
        t_pump_for(evpl, 20);
        T_STR_EQ(c.events, "D");
        T_LT(c.disconnect_status, 0);
        T_EQ(c.errors, 0);
        t_conn_free(&c);
    }

    evpl_destroy(evpl);
    evpl_endpoint_close(local);
    evpl_endpoint_close(remote);
    return 0; /* the leak check at exit is the real assertion */
}
