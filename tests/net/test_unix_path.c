/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * AF_UNIX pathname listeners: net.md §14 statements 20 (the socket file is
 * removed) and 21 (stale socket file replaced; live listener or regular
 * file: -1 and the file left intact, and the live listener's application
 * sees no connection from the check); 40 / §3 ("unix:<path>").  Paths live
 * in a mkdtemp directory removed at the end.
 */
#include <sys/stat.h>

#include "t_net.h"

static char dir[64];

static int
exists(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0;
}

int
main(void)
{
    char path[96], file[96], stale[96], str[EVPL_ADDRESS_STRLEN];
    struct evpl_endpoint *ep, *epf, *eps;
    struct evpl_listener *l2;
    struct evpl *evpl;
    struct t_server srv;
    struct t_conn c;

    t_net_guard(30);
    if (!evpl_protocol_available(EVPL_STREAM_SOCKET_UNIX)) {
        T_SKIP("no AF_UNIX");
    }
    snprintf(dir, sizeof(dir), "/tmp/evpl-test-XXXXXX");
    T_OK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/live.sock", dir);
    snprintf(file, sizeof(file), "%s/regular", dir);
    snprintf(stale, sizeof(stale), "%s/stale.sock", dir);
    evpl = t_net_loop();

    ep = evpl_endpoint_create_local(path);
    T_OK(ep != NULL);
    memset(&srv, 0, sizeof(srv));
    t_server_start(&srv, evpl, EVPL_STREAM_SOCKET_UNIX, ep, 4);
    T_OK(exists(path));

    /* 40: pathname addresses */
    t_connect(evpl, EVPL_STREAM_SOCKET_UNIX, ep, &c, NULL);
    T_PUMP(evpl, c.connected && srv.n == 1 && srv.conns[0].connected, 5000);
    evpl_bind_get_remote_address(c.bind, str, sizeof(str));
    {
        char want[160];

        snprintf(want, sizeof(want), "unix:%s", path);
        T_STR_EQ(str, want);
        evpl_bind_get_local_address(srv.conns[0].bind, str, sizeof(str));
        T_STR_EQ(str, want);
    }
    evpl_bind_get_remote_address(srv.conns[0].bind, str, sizeof(str));
    T_STR_EQ(str, "unix:*");

    /* 21: a live listener's path: -1, file intact, first listener unharmed */
    l2 = evpl_listener_create();
    T_EQ(evpl_listen(l2, EVPL_STREAM_SOCKET_UNIX, ep), -1);
    evpl_listener_destroy(l2);
    T_OK(exists(path));
    evpl_send(evpl, c.bind, "still", 5);
    T_PUMP(evpl, srv.conns[0].rxlen == 5, 5000);
    /* and the check that found it live was not a connection to it */
    t_pump_for(evpl, 200);
    T_EQ(srv.n, 1);

    /* 21: a regular file in the way: -1 and the file is left intact */
    {
        int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);

        T_OK(fd >= 0);
        T_EQ(write(fd, "data", 4), 4);
        close(fd);
        epf = evpl_endpoint_create_local(file);
        l2 = evpl_listener_create();
        T_EQ(evpl_listen(l2, EVPL_STREAM_SOCKET_UNIX, epf), -1);
        evpl_listener_destroy(l2);
        T_OK(exists(file));
        {
            struct stat st;

            T_EQ(stat(file, &st), 0);
            T_OK(S_ISREG(st.st_mode));
            T_EQ(st.st_size, 4);
        }
    }

    /* 21: a stale socket file (nobody accepts on it) is replaced */
    {
        struct sockaddr_un un;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct t_server s2;
        struct t_conn c2;

        memset(&un, 0, sizeof(un));
        un.sun_family = AF_UNIX;
        snprintf(un.sun_path, sizeof(un.sun_path), "%s", stale);
        T_EQ(bind(fd, (struct sockaddr *) &un, sizeof(un)), 0);
        close(fd); /* the file stays behind, nobody listening */
        T_OK(exists(stale));
        eps = evpl_endpoint_create_local(stale);
        /* also a socket still bound there but not listening: nobody
         * accepts on it either */
        {
            int held = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct evpl_listener *l3 = evpl_listener_create();

            unlink(stale);
            T_EQ(bind(held, (struct sockaddr *) &un, sizeof(un)), 0);
            T_EQ(evpl_listen(l3, EVPL_STREAM_SOCKET_UNIX, eps), 0);
            evpl_listener_destroy(l3);
            close(held);
            T_OK(!exists(stale));
            fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            T_EQ(bind(fd, (struct sockaddr *) &un, sizeof(un)), 0);
            close(fd); /* stale again, for the server below */
        }
        memset(&s2, 0, sizeof(s2));
        t_server_start(&s2, evpl, EVPL_STREAM_SOCKET_UNIX, eps, 1);
        t_connect(evpl, EVPL_STREAM_SOCKET_UNIX, eps, &c2, NULL);
        T_PUMP(evpl, c2.connected && s2.n == 1 && s2.conns[0].connected, 5000);
        evpl_close(evpl, c2.bind);
        T_PUMP(evpl, c2.disconnected && s2.conns[0].disconnected, 5000);
        evpl_listener_detach(evpl, s2.binding);
        s2.binding = NULL;
        t_server_stop(&s2);
        /* 20: the file goes away with the listener */
        T_OK(!exists(stale));
        t_conn_free(&c2);
    }

    /* a client bound to a path (a local endpoint): the peer sees that path,
     * a stale file there is replaced, and the file goes away when the bind
     * closes, so the same local endpoint can connect again */
    {
        char cpath[96], want[160];
        struct evpl_endpoint *epc;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un un;

        snprintf(cpath, sizeof(cpath), "%s/client.sock", dir);
        memset(&un, 0, sizeof(un));
        un.sun_family = AF_UNIX;
        snprintf(un.sun_path, sizeof(un.sun_path), "%s", cpath);
        T_EQ(bind(fd, (struct sockaddr *) &un, sizeof(un)), 0);
        close(fd); /* stale */
        epc = evpl_endpoint_create_local(cpath);
        snprintf(want, sizeof(want), "unix:%s", cpath);
        for (int round = 0; round < 2; round++) {
            struct t_conn x;
            int n = srv.n;

            t_connect_from(evpl, EVPL_STREAM_SOCKET_UNIX, epc, ep, &x, NULL);
            T_PUMP(evpl, x.connected && srv.n == n + 1 && srv.conns[n].connected, 5000);
            T_OK(exists(cpath));
            evpl_bind_get_local_address(x.bind, str, sizeof(str));
            T_STR_EQ(str, want);
            evpl_bind_get_remote_address(srv.conns[n].bind, str, sizeof(str));
            T_STR_EQ(str, want);
            evpl_close(evpl, x.bind);
            T_PUMP(evpl, x.disconnected && srv.conns[n].disconnected, 5000);
            T_EQ(x.disconnect_status, 0);
            T_OK(!exists(cpath));
            t_conn_free(&x);
        }

        /* a path another live connection is bound to is not taken over:
         * the second connect fails and the first keeps its file (the
         * second used to replace it, and the first's close then removed
         * the second's) */
        {
            struct t_conn x, y;
            int n = srv.n;

            t_connect_from(evpl, EVPL_STREAM_SOCKET_UNIX, epc, ep, &x, NULL);
            T_PUMP(evpl, x.connected && srv.n == n + 1 && srv.conns[n].connected, 5000);
            t_connect_from(evpl, EVPL_STREAM_SOCKET_UNIX, epc, ep, &y, NULL);
            T_PUMP(evpl, y.disconnected, 5000);
            T_EQ(y.connected, 0);
            T_EQ(y.disconnect_status, -EADDRINUSE);
            T_EQ(srv.n, n + 1);
            T_OK(exists(cpath));
            T_EQ(x.disconnected, 0);

            /* a listener may take over a path nobody accepts on (net.md §5),
             * a client's included; the client's close then leaves the
             * listener's file alone */
            {
                struct evpl_listener *l4 = evpl_listener_create();
                struct stat st;

                T_EQ(evpl_listen(l4, EVPL_STREAM_SOCKET_UNIX, epc), 0);
                T_EQ(stat(cpath, &st), 0);
                evpl_close(evpl, x.bind);
                T_PUMP(evpl, x.disconnected && srv.conns[n].disconnected, 5000);
                T_OK(exists(cpath));
                evpl_listener_destroy(l4);
                T_OK(!exists(cpath));
            }
            t_conn_free(&x);
            t_conn_free(&y);
        }

        /* also when the live socket bound the path by another spelling (a
         * relative one): /proc/net/unix does not list it under ours */
        {
            char cwd[256];
            int rfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_un rel;
            struct t_conn y;
            struct stat st;
            ino_t ino;

            memset(&rel, 0, sizeof(rel));
            rel.sun_family = AF_UNIX;
            snprintf(rel.sun_path, sizeof(rel.sun_path), "client.sock");
            T_OK(getcwd(cwd, sizeof(cwd)) != NULL);
            T_EQ(chdir(dir), 0);
            T_EQ(bind(rfd, (struct sockaddr *) &rel, sizeof(rel)), 0);
            T_EQ(chdir(cwd), 0);
            T_EQ(stat(cpath, &st), 0);
            ino = st.st_ino;
            t_connect_from(evpl, EVPL_STREAM_SOCKET_UNIX, epc, ep, &y, NULL);
            T_PUMP(evpl, y.disconnected, 5000);
            T_EQ(y.disconnect_status, -EADDRINUSE);
            T_EQ(stat(cpath, &st), 0);
            T_EQ(st.st_ino, ino);
            close(rfd);
            unlink(cpath);
            t_conn_free(&y);
        }
        evpl_endpoint_close(epc);
    }

    /* 20: after destroy the socket file no longer exists, new connects
     * fail and the existing connection keeps working */
    evpl_listener_detach(evpl, srv.binding);
    srv.binding = NULL;
    evpl_listener_destroy(srv.listener);
    srv.listener = NULL;
    T_OK(!exists(path));
    {
        struct t_conn x;

        char cpath[96];
        struct evpl_endpoint *epc;

        t_connect(evpl, EVPL_STREAM_SOCKET_UNIX, ep, &x, NULL);
        T_PUMP(evpl, x.disconnected, 5000);
        T_EQ(x.connected, 0);
        T_LT(x.disconnect_status, 0);
        t_conn_free(&x);

        /* a failed connect from a local path leaves no file behind */
        snprintf(cpath, sizeof(cpath), "%s/failed-client.sock", dir);
        epc = evpl_endpoint_create_local(cpath);
        t_connect_from(evpl, EVPL_STREAM_SOCKET_UNIX, epc, ep, &x, NULL);
        T_PUMP(evpl, x.disconnected, 5000);
        T_EQ(x.connected, 0);
        T_LT(x.disconnect_status, 0);
        T_OK(!exists(cpath));
        t_conn_free(&x);
        evpl_endpoint_close(epc);
    }
    evpl_send(evpl, srv.conns[0].bind, "back", 4);
    T_PUMP(evpl, c.rxlen == 4, 5000);

    evpl_destroy(evpl);
    T_EQ(c.disconnected, 1);
    T_EQ(c.errors + srv.conns[0].errors, 0);
    t_conn_free(&c);
    t_server_stop(&srv);
    evpl_endpoint_close(ep);
    evpl_endpoint_close(epf);
    evpl_endpoint_close(eps);
    T_EQ(unlink(file), 0);
    T_EQ(rmdir(dir), 0);
    return 0;
}
