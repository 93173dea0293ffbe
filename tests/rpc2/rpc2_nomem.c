/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * An RPC2 server that cannot get the memory a call needs closes that
 * call's connection and serves the others on (STYLE: never abort on
 * ENOMEM).  It used to abort the process ("out of memory" from the
 * module's allocator).
 *
 * The failure is real, not simulated: ASan's allocator is told to refuse
 * any allocation over 16 MiB (returning NULL), and a call of 3 MiB asks
 * for a 24 MiB decode buffer (8 bytes of structures per wire byte at most,
 * docs/RPC2.md).  Without ASan there is no such limit to set: skipped.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc2_test_xdr.h"

static struct evpl *t_evpl;

#include "t_rpc2_raw.h"

#if !defined(__SANITIZE_ADDRESS__)
int
main(void)
{
    printf("SKIP: needs ASan's allocator limit (max_allocation_size_mb)\n");
    return 77;
}
#else
const char *__asan_default_options(void);

const char *
__asan_default_options(void)
{
    return "allocator_may_return_null=1:max_allocation_size_mb=16";
}

#define BIG (3u << 20) /* greeting bytes of the call that cannot be decoded */

static struct RT_V1 sprog;
static int ngreet;

static void
s_greet(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, Hello *args,
        struct evpl_rpc2_encoding *enc, void *private_data)
{
    Hello r;

    r.id = args->id + 1;
    xdr_set_str_static(&r, greeting, "hi", 2);
    T_EQ(sprog.send_reply_GREET(evpl, NULL, &r, enc), 0);
    ngreet++;
}

/* One GREET record (mark included) with text bytes of greeting; its length. */
static size_t
greet_record(unsigned char *buf, uint32_t xid, uint32_t id, uint32_t text)
{
    unsigned char *args = calloc(1, 8 + text);
    size_t n;

    T_OK(args != NULL);
    put32(args, id);
    put32(args + 4, text);
    n = call_msg(buf + 4, xid, 2, 0x20001234, 1, 1, 0, 0, args, 8 + text);
    put32(buf, 0x80000000u | (uint32_t) n);
    free(args);
    return n + 4;
}

/* A small call on fd is answered: GREET reply to xid with id + 1. */
static void
small_call(int fd, uint32_t xid)
{
    unsigned char out[128], in[64];
    int before = ngreet;

    raw_send(fd, out, greet_record(out, xid, 41, 0));
    raw_read_exact(fd, in, 4 + 24 + 4);
    T_EQ(get32(in) & 0x7fffffffu, 24 + 4 + 4 + 4); /* id, "hi" padded */
    T_EQ(get32(in + 4), xid);
    T_EQ(get32(in + 8), 1);  /* REPLY */
    T_EQ(get32(in + 24), 0); /* SUCCESS */
    T_EQ(get32(in + 28), 42);
    raw_read_exact(fd, in, 4 + 4); /* the greeting "hi", padded */
    T_EQ(ngreet, before + 1);
}

int
main(void)
{
    struct raw_server srv;
    unsigned char *big, junk[256];
    size_t blen;
    int a, b, c;
    uint64_t deadline;
    ssize_t k;

    signal(SIGPIPE, SIG_IGN);
    t_net_guard(60);
    evpl_init(NULL);
    t_evpl = t_net_loop();
    RT_V1_init(&sprog);
    sprog.recv_call_GREET = s_greet;
    raw_server_start(&srv, &sprog.rpc2);

    /* the limit is in force: a 24 MiB allocation is refused */
    {
        void *p = malloc(24u << 20);

        T_OK(p == NULL);
    }

    b = raw_connect(srv.ep);
    small_call(b, 1);

    /* a call that needs more memory than there is: its connection ends
     * (EOF, no reply), the process goes on */
    big = malloc(BIG + 128);
    T_OK(big != NULL);
    blen = greet_record(big, 7, 1, BIG);
    a = raw_connect(srv.ep);
    raw_send(a, big, blen);
    deadline = t_now_ns() + 10000000000ull;
    for (;;) {
        k = recv(a, junk, sizeof(junk), MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno == ECONNRESET)) {
            break;
        }
        T_OK(k < 0 && errno == EAGAIN); /* no reply comes */
        T_OK(t_now_ns() < deadline);
        evpl_continue(t_evpl);
    }
    close(a);
    T_EQ(ngreet, 1);

    /* the connection that was there is served on, and a new one too */
    small_call(b, 2);
    c = raw_connect(srv.ep);
    small_call(c, 3);
    /* and a call of 1 MiB (8 MiB to decode) still fits */
    blen = greet_record(big, 4, 41, 1u << 20);
    raw_send(c, big, blen);
    raw_read_exact(c, junk, 4 + 24 + 4 + 4 + 4);
    T_EQ(get32(junk + 4), 4);
    T_EQ(get32(junk + 24), 0);
    T_EQ(ngreet, 4);

    close(b);
    close(c);
    free(big);
    raw_server_stop(&srv);
    evpl_endpoint_close(srv.ep);
    evpl_destroy(t_evpl);
    printf("PASS\n");
    return 0;
}
#endif
