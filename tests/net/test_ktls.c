/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: vm tls */
/*
 * Kernel TLS does the encryption: for each TLS 1.3 suite the kernel takes
 * (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305), a connection between our
 * client and our server moves data both ways, and the kernel's own
 * counters (/proc/net/tls_stat) show that it installed the keys - the
 * server's both directions, the client's sending side.  Where the kernel
 * has no TLS (this host) this skips; the VM harness runs it.
 */
#include <sys/wait.h>

#include "t_net.h"

static long
tls_stat(const char *name)
{
    FILE *f = fopen("/proc/net/tls_stat", "r");
    char key[64];
    long v, found = -1;

    if (!f) {
        return -1;
    }
    while (fscanf(f, "%63s %ld", key, &v) == 2) {
        if (strcmp(key, name) == 0) {
            found = v;
        }
    }
    fclose(f);
    return found;
}

static void
one_suite(const char *suite)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    enum evpl_protocol_id proto = EVPL_STREAM_SOCKET_TLS;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c;
    struct evpl *evpl;
    long tx0, rx0, tx1, rx1;
    static uint8_t big[1 << 20], back[1 << 20];

    evpl_global_config_set_tls_cipher_list(gc, suite);
    evpl_init(gc);
    tx0 = tls_stat("TlsTxSw");
    rx0 = tls_stat("TlsRxSw");
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.echo_msgs = 0;
    t_server_start(&srv, evpl, proto, ep, 1);
    t_connect(evpl, proto, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 10000);
    t_pattern_fill(5, 0, big, sizeof(big));
    evpl_send(evpl, c.bind, big, sizeof(big));
    T_PUMP(evpl, srv.conns[0].rxlen == sizeof(big), 20000);
    T_EQ(t_pattern_check(5, 0, srv.conns[0].rx, sizeof(big)), -1);
    t_pattern_fill(6, 0, back, sizeof(back));
    evpl_send(evpl, srv.conns[0].bind, back, sizeof(back));
    T_PUMP(evpl, c.rxlen == sizeof(back), 20000);
    T_EQ(t_pattern_check(6, 0, c.rx, sizeof(back)), -1);
    tx1 = tls_stat("TlsTxSw");
    rx1 = tls_stat("TlsRxSw");
    fprintf(stderr, "%s: kernel TLS TX contexts +%ld, RX +%ld\n", suite, tx1 - tx0, rx1 - rx0);
    T_EQ(tx1 - tx0, 2); /* server and client send through the kernel */
    T_EQ(rx1 - rx0, 1); /* the server receives through it */
    evpl_close(evpl, c.bind);
    T_PUMP(evpl, c.disconnected && srv.conns[0].disconnected, 10000);
    T_EQ(c.errors + srv.conns[0].errors, 0);
    T_EQ(srv.conns[0].disconnect_status, 0); /* an orderly close_notify */
    t_server_stop(&srv);
    t_conn_free(&c);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
}

int
main(void)
{
    static const char *suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                   "TLS_CHACHA20_POLY1305_SHA256"};

    t_net_guard(120);
    if (tls_stat("TlsTxSw") < 0) {
        T_SKIP("no kernel TLS here (/proc/net/tls_stat): runs in the VM");
    }
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        pid_t pid = fork();
        int st;

        if (pid == 0) {
            one_suite(suites[i]); /* configuration is per process */
            exit(0);
        }
        T_EQ(waitpid(pid, &st, 0), pid);
        T_OK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    return 0;
}
