/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A raw TCP peer for the RPC2 tests: connect to an endpoint, send bytes
 * while the loop t_evpl runs, and XDR words by hand.  The including file
 * defines `static struct evpl *t_evpl` first.
 */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>

#include <evpl/evpl_rpc2.h>

#include "t_net.h"

static inline int
raw_connect(struct evpl_endpoint *ep)
{
    struct sockaddr_storage ss;
    socklen_t len = t_endpoint_sockaddr(ep, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    T_OK(fd >= 0);
    T_EQ(connect(fd, (struct sockaddr *) &ss, len), 0);
    T_EQ(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    return fd;
}

/* Exactly len bytes from fd, running the loop while none are there. */
static inline void
raw_read_exact(int fd, void *buf, size_t len)
{
    char *p = buf;
    uint64_t deadline = t_now_ns() + 10000000000ull;

    while (len) {
        ssize_t n = recv(fd, p, len, 0);

        if (n > 0) {
            p += n;
            len -= (size_t) n;
            continue;
        }
        T_OK(n < 0 && errno == EAGAIN);
        T_OK(t_now_ns() < deadline);
        evpl_continue(t_evpl);
    }
}

/* Exactly len bytes from fd as raw_read_exact, or 0 when the peer closes
 * first (before any of them). */
static inline int
raw_read_or_eof(int fd, void *buf, size_t len)
{
    uint64_t deadline = t_now_ns() + 10000000000ull;
    ssize_t n;

    while ((n = recv(fd, buf, 1, 0)) < 0 && (errno == EAGAIN || errno == EINTR)) {
        T_OK(t_now_ns() < deadline);
        evpl_continue(t_evpl);
    }
    if (n <= 0) {
        return 0; /* EOF, or a reset */
    }
    raw_read_exact(fd, (char *) buf + 1, len - 1);
    return 1;
}

/* All of buf, running the loop while the socket is full. */
static inline void
raw_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            evpl_continue(t_evpl);
            continue;
        }
        T_OK(n > 0);
        p += n;
        len -= (size_t) n;
    }
}

/* Send what the socket takes, running the loop, until all is sent or
 * nothing more went for 300 ms; returns the bytes sent. */
static inline size_t
raw_send_until_stalled(int fd, const unsigned char *buf, size_t len)
{
    size_t off = 0;
    uint64_t last = t_now_ns();

    while (off < len && t_now_ns() - last < 300000000ull) {
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n > 0) {
            off += (size_t) n;
            last = t_now_ns();
            continue;
        }
        T_OK(n < 0 && errno == EAGAIN);
        evpl_continue(t_evpl);
    }
    return off;
}

static inline uint8_t *
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 24);
    p[1] = (uint8_t) (v >> 16);
    p[2] = (uint8_t) (v >> 8);
    p[3] = (uint8_t) v;
    return p + 4;
}

static inline uint32_t
get32(const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/* A call message (no mark): header with the given rpcvers, credential
 * flavour and body, then args. */
static inline size_t
call_msg(unsigned char *buf, uint32_t xid, uint32_t rpcvers, uint32_t prog, uint32_t vers,
         uint32_t proc, uint32_t flavor, uint32_t cred_len, const void *args, size_t args_len)
{
    unsigned char *p = buf;

    p = put32(p, xid);
    p = put32(p, 0);
    p = put32(p, rpcvers);
    p = put32(p, prog);
    p = put32(p, vers);
    p = put32(p, proc);
    p = put32(p, flavor);
    p = put32(p, cred_len);
    memset(p, 0, cred_len);
    p += cred_len;
    p = put32(p, 0); /* verifier: AUTH_NONE */
    p = put32(p, 0);
    if (args_len) {
        memcpy(p, args, args_len);
    }
    return (size_t) (p - buf) + args_len;
}

/* A server of one program over TCP (or another stream protocol a raw TCP
 * peer can reach) on the loop t_evpl, served by a new RPC thread of that
 * loop; raw_server_stop undoes it all. */
struct raw_server {
    struct evpl_rpc2_program *programs[1];
    struct evpl_rpc2_server *server;
    struct evpl_rpc2_thread *thread;
    struct evpl_endpoint *ep;
};

static inline void
raw_server_start_on(struct raw_server *s, struct evpl_rpc2_program *program,
                    enum evpl_protocol_id proto)
{
    s->programs[0] = program;
    s->server = evpl_rpc2_server_init(s->programs, 1);
    T_OK(s->server != NULL);
    s->ep = t_endpoint(proto);
    T_EQ(evpl_rpc2_server_start(s->server, proto, s->ep), 0);
    s->thread = evpl_rpc2_thread_init(t_evpl, NULL, 0, NULL, NULL);
    evpl_rpc2_server_attach(s->thread, s->server, NULL);
}

static inline void
raw_server_start(struct raw_server *s, struct evpl_rpc2_program *program)
{
    raw_server_start_on(s, program, EVPL_STREAM_SOCKET_TCP);
}

static inline void
raw_server_stop(struct raw_server *s)
{
    evpl_rpc2_server_stop(s->server);
    evpl_rpc2_server_detach(s->thread, s->server);
    evpl_rpc2_thread_destroy(s->thread);
    evpl_rpc2_server_destroy(s->server);
}
