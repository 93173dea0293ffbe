/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * rpc-flood: pipelined ONC RPC NULL calls (procedure 0 of tools/bench_rpc.x's
 * program) on N TCP connections, as fast as the server takes them; each
 * connection has a writer thread (4096 calls per write) and a reader thread
 * that reads and drops the replies.  For bench/rpc-fairness.sh: the load a
 * client that pipelines without bound puts on a server, beside which
 * another client's latency is measured.
 *
 * usage: rpc-flood PORT CONNECTIONS SECONDS
 * prints: flood: <replies per second>
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH     4096
#define CALL_LEN  44 /* record mark + 10 words: xid .. verifier, no arguments */
#define REPLY_LEN 28 /* record mark + xid, REPLY, MSG_ACCEPTED, verifier, SUCCESS */
#define MAX_CONNS 128

static volatile int stop;
static unsigned char calls[BATCH * CALL_LEN];
static unsigned long long reply_bytes;

static void
put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) (v >> 24);
    p[1] = (unsigned char) (v >> 16);
    p[2] = (unsigned char) (v >> 8);
    p[3] = (unsigned char) v;
}

static void *
reader(void *arg)
{
    int fd = (int) (intptr_t) arg;
    static __thread char in[1 << 16];

    while (!stop) {
        ssize_t n = recv(fd, in, sizeof(in), 0);

        if (n <= 0) {
            break;
        }
        __atomic_add_fetch(&reply_bytes, (unsigned long long) n, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *
writer(void *arg)
{
    int fd = (int) (intptr_t) arg;

    while (!stop) {
        if (send(fd, calls, sizeof(calls), MSG_NOSIGNAL) < 0) {
            break;
        }
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    pthread_t th[2 * MAX_CONNS];
    int port, n, secs;

    if (argc != 4) {
        fprintf(stderr, "usage: %s PORT CONNECTIONS SECONDS\n", argv[0]);
        return 2;
    }
    port = atoi(argv[1]);
    n = atoi(argv[2]);
    secs = atoi(argv[3]);
    if (n < 1 || n > MAX_CONNS || secs < 1) {
        fprintf(stderr, "1-%d connections, at least 1 second\n", MAX_CONNS);
        return 2;
    }
    for (int i = 0; i < BATCH; i++) {
        unsigned char *p = calls + (size_t) i * CALL_LEN;

        put32(p, 0x80000000u | (CALL_LEN - 4));
        put32(p + 4, (uint32_t) i + 1); /* xid */
        put32(p + 8, 0);                /* CALL */
        put32(p + 12, 2);               /* rpcvers */
        put32(p + 16, 0x20005555);      /* BENCH_PROG */
        put32(p + 20, 1);               /* BENCH_V1 */
        put32(p + 24, 0);               /* NULL procedure */
        put32(p + 28, 0);               /* credential: AUTH_NONE, empty */
        put32(p + 32, 0);
        put32(p + 36, 0); /* verifier: AUTH_NONE, empty */
        put32(p + 40, 0);
    }
    for (int i = 0; i < n; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
            perror("connect");
            return 1;
        }
        if (pthread_create(&th[2 * i], NULL, reader, (void *) (intptr_t) fd) ||
            pthread_create(&th[2 * i + 1], NULL, writer, (void *) (intptr_t) fd)) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    sleep((unsigned) secs);
    stop = 1;
    printf("flood: %.0f replies/s\n", (double) reply_bytes / REPLY_LEN / secs);
    fflush(stdout);
    _exit(0); /* the threads may be blocked in send/recv */
}
