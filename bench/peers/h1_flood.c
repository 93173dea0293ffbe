/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * h1-flood: N HTTP/1.1 connections that pipeline GET requests for a
 * number of seconds and never read an answer (bench/http-unread.sh).
 * Each connection keeps its own place in the request stream, so a short
 * write never cuts a request in two.
 *
 * usage: h1-flood PORT CONNS SECONDS [PATH]
 * prints the request bytes written
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 4096

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
    static char buf[1 << 16];
    static size_t off[MAX_CONNS];
    static int fds[MAX_CONNS];
    char req[256];
    size_t reqlen, fill = 0;
    long long written = 0;
    int port, n;
    double secs, end;

    if (argc < 4) {
        fprintf(stderr, "usage: %s PORT CONNS SECONDS [PATH]\n", argv[0]);
        return 2;
    }
    port = atoi(argv[1]);
    n = atoi(argv[2]);
    secs = atof(argv[3]);
    if (n < 1 || n > MAX_CONNS) {
        fprintf(stderr, "CONNS: 1..%d\n", MAX_CONNS);
        return 2;
    }
    reqlen = (size_t) snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: b\r\n\r\n",
                               argc > 4 ? argv[4] : "/hello");
    while (fill + reqlen <= sizeof(buf)) {
        memcpy(buf + fill, req, reqlen);
        fill += reqlen;
    }
    for (int i = 0; i < n; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};

        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *) &sa, sizeof(sa)) != 0) {
            perror("connect");
            return 1;
        }
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
    }
    end = now() + secs;
    while (now() < end) {
        int moved = 0;

        for (int i = 0; i < n; i++) {
            ssize_t k;

            if (fds[i] < 0) {
                continue;
            }
            k = send(fds[i], buf + off[i], fill - off[i], MSG_NOSIGNAL);
            if (k > 0) {
                written += k;
                off[i] = (off[i] + (size_t) k) % fill;
                moved = 1;
            } else if (k < 0 && errno != EAGAIN) {
                close(fds[i]); /* the server ended it: the others go on */
                fds[i] = -1;
            }
        }
        if (!moved) {
            usleep(10000);
        }
    }
    printf("%lld\n", written);
    fflush(stdout);
    /* hold the connections (unread) while the caller measures */
    sleep(3);
    return 0;
}
