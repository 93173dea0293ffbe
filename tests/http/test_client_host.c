/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The automatic Host of client requests (http.md §4.1): "host" when the
 * endpoint port is the scheme default (80 for plain TCP), "host:port"
 * otherwise, IPv6 literals bracketed.  Runs in a private network
 * namespace (root) so that port 80 is free; skipped otherwise.
 */
#include "t_http.h"

static struct t_client cl;

/* a raw listener on addr:port (family af); -1 when it cannot bind */
static int
listen_on(int af, const char *addr, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&ss, 0, sizeof(ss));
    if (af == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t) port);
        inet_pton(AF_INET6, addr, &s6->sin6_addr);
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *) &ss;

        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t) port);
        inet_pton(AF_INET, addr, &s4->sin_addr);
        len = sizeof(*s4);
    }
    if (bind(fd, (struct sockaddr *) &ss, len) != 0 || listen(fd, 4) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void
check_host(int af, const char *addr, int port, const char *want_host)
{
    int lfd = listen_on(af, addr, port), fd = -1;
    struct evpl_endpoint *ep;
    struct evpl_http_conn *conn;
    struct t_creq *r;
    struct t_raw s;
    struct t_msg m = {0};
    char want[256];

    if (lfd < 0) {
        fprintf(stderr, "  (cannot listen on %s port %d: skipped)\n", addr, port);
        return;
    }
    fprintf(stderr, "-- %s port %d -> Host: %s\n", addr, port, want_host);
    ep = evpl_endpoint_create(addr, port);
    T_OK(ep != NULL);
    conn = evpl_http_client_connect(cl.agent, EVPL_STREAM_SOCKET_TCP, ep, EVPL_HTTP_VERSION_HTTP1,
                                    &cl);
    r = t_creq_new(&cl, conn, EVPL_HTTP_REQUEST_TYPE_GET, "/h");
    t_creq_dispatch(r);
    t_set_nonblock(lfd);
    T_HPUMP(cl.evpl, (fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0, 5000);
    t_raw_init_fd(&s, fd);
    t_raw_read_msg(&s, 1, 0, &m);
    snprintf(want, sizeof(want), "GET /h HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n",
             want_host);
    T_BYTES_EQ(m.head.p, m.head.len, want);
    t_msg_free(&m);
    t_raw_sends(&s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    T_HPUMP(cl.evpl, t_creq_done(r), 5000);
    T_EQ(r->n_complete, 1);
    evpl_http_client_close(cl.agent, conn);
    t_raw_close(&s);
    close(lfd);
    evpl_endpoint_close(ep);
}

int
main(void)
{
    int rc;
    char buf[64];
    int port;

    t_net_guard(60);
    rc = t_private_netns();
    if (rc < 0) {
        T_SKIP("no private network namespace (%s)", strerror(-rc));
    }
    cl.evpl = t_net_loop();
    t_evpl = cl.evpl;
    cl.agent = evpl_http_init(cl.evpl);

    check_host(AF_INET, "127.0.0.1", 80, "127.0.0.1");
    port = t_free_port(SOCK_STREAM);
    snprintf(buf, sizeof(buf), "127.0.0.1:%d", port);
    check_host(AF_INET, "127.0.0.1", port, buf);
    check_host(AF_INET6, "::1", 80, "[::1]");
    port = t_try_free_port_af(AF_INET6, SOCK_STREAM);
    if (port > 0) {
        snprintf(buf, sizeof(buf), "[::1]:%d", port);
        check_host(AF_INET6, "::1", port, buf);
    }

    t_client_check_terminal(&cl);
    evpl_http_destroy(cl.agent);
    evpl_destroy(cl.evpl);
    t_client_free_reqs(&cl);
    fprintf(stderr, "PASS\n");
    return 0;
}
