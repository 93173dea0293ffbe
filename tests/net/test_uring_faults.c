/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * io_uring TCP under faults (issue: io_uring backend, "bad input and
 * faults").  Each case runs in a child process of its own, because each
 * sets the process-wide configuration and io_uring does not cross fork:
 *
 *  - unavailable: io_uring refused (seccomp: ENOSYS, as on kernels without
 *    it or with kernel.io_uring_disabled) or disabled by configuration:
 *    the protocol is not registered, the TCP family falls back to kernel
 *    sockets, a loop asked to wait on io_uring waits on epoll, nothing
 *    aborts;
 *  - inflight: 100 times, a loop destroyed with connections open and sends
 *    in flight, and a bind closed while its send waits for the peer: no
 *    buffer reference lost or dropped twice (ASan, the exit leak check,
 *    the in-use count back to where it was);
 *  - exhausted: receive memory capped below what the peer sends while the
 *    application does not read: receives stop, then resume when the
 *    application drains; every byte arrives once, in order.
 */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "t_net.h"

static enum evpl_protocol_id proto = EVPL_STREAM_IO_URING_TCP;

static int
run_child(const char *name, void (*fn)(void))
{
    pid_t pid = fork();
    int status;

    if (pid == 0) {
        t_net_guard(60);
        fn();
        exit(0);
    }
    T_OK(pid > 0);
    T_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        fprintf(stderr, "%s: skipped\n", name);
        return 77;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        T_FAIL("%s: child ended with status %#x", name, status);
    }
    fprintf(stderr, "%s: ok\n", name);
    return 0;
}

/* ---- unavailable ---- */

static void
deny_io_uring(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};

    T_EQ(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    T_EQ(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

/* With io_uring unavailable: TCP still works, through kernel sockets. */
static void
check_fallback(void)
{
    enum evpl_protocol_id id, best;
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct t_conn c;
    struct evpl *evpl;

    T_EQ(evpl_protocol_available(EVPL_STREAM_IO_URING_TCP), 0);
    T_EQ(evpl_protocol_lookup(&id, "STREAM_IO_URING_TCP"), -1);
    T_EQ(evpl_protocol_best("TCP", &best), 0);
    T_EQ(best, EVPL_STREAM_SOCKET_TCP);

    evpl = t_net_loop(); /* the io_uring mechanism was asked for */
    ep = t_endpoint(best);
    T_OK(evpl_connect(evpl, EVPL_STREAM_IO_URING_TCP, NULL, ep, t_conn_notify, NULL, &c) == NULL);
    memset(&srv, 0, sizeof(srv));
    t_server_start(&srv, evpl, best, ep, 1);
    t_connect(evpl, best, ep, &c, NULL);
    evpl_send(evpl, c.bind, "fallback", 8);
    T_PUMP(evpl, srv.n == 1 && srv.conns[0].rxlen == 8, 5000);
    T_OK(memcmp(srv.conns[0].rx, "fallback", 8) == 0);
    evpl_close(evpl, c.bind);
    T_PUMP(evpl, c.disconnected && srv.conns[0].disconnected, 5000);
    t_server_stop(&srv);
    t_conn_free(&c);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
}

static void
unavailable_seccomp(void)
{
    deny_io_uring();
    setenv("EVPL_CORE_MECH", "io_uring", 1);
    check_fallback();
}

static void
unavailable_config(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();

    evpl_global_config_set_io_uring_enabled(gc, 0);
    evpl_init(gc);
    check_fallback();
}

/* TCP prefers io_uring on loops that wait on io_uring, sockets elsewhere */
static void
preference(void)
{
    enum evpl_protocol_id best;
    const char *mech = getenv("EVPL_CORE_MECH");
    int uring_loop = mech && strcmp(mech, "io_uring") == 0;

    if (!evpl_protocol_available(proto)) {
        exit(77);
    }
    T_EQ(evpl_protocol_best("TCP", &best), 0);
    T_EQ(best, uring_loop ? EVPL_STREAM_IO_URING_TCP : EVPL_STREAM_SOCKET_TCP);
    setenv("EVPL_PROTOCOL_TCP", "STREAM_IO_URING_TCP", 1); /* asked for by name */
    T_EQ(evpl_protocol_best("TCP", &best), 0);
    T_EQ(best, EVPL_STREAM_IO_URING_TCP);
}

/* ---- in flight at shutdown ---- */

#define INFLIGHT_REPS  100
#define INFLIGHT_CONNS 4
#define INFLIGHT_BYTES (4u << 20)

static void
inflight(void)
{
    struct evpl_endpoint *ep;
    struct evpl_listener *l;
    static uint8_t big[INFLIGHT_BYTES];
    int64_t base = -1;
    uint64_t t_start;

    if (!evpl_protocol_available(proto)) {
        exit(77);
    }
    t_pattern_fill(1, 0, big, sizeof(big));
    ep = t_endpoint(proto);
    l = t_listen(proto, ep);
    t_start = t_now_ns();

    /* (in the VM: half, within the child's hang guard on emulated CPUs) */
    for (int rep = 0; rep < (int) t_vm_scale(INFLIGHT_REPS, 2); rep++) {
        struct evpl *evpl = t_net_loop();
        struct t_server srv;
        struct t_conn c[INFLIGHT_CONNS];

        memset(&srv, 0, sizeof(srv));
        srv.evpl = evpl;
        srv.max = INFLIGHT_CONNS;
        srv.owner = pthread_self();
        srv.autodrain = 1;
        srv.conns = calloc(INFLIGHT_CONNS, sizeof(*srv.conns));
        srv.binding = evpl_listener_attach(evpl, l, t_server_attach, &srv);
        for (int i = 0; i < INFLIGHT_CONNS; i++) {
            t_connect(evpl, proto, ep, &c[i], NULL);
            evpl_send(evpl, c[i].bind, big, sizeof(big)); /* copied: many MiB queued */
        }
        T_PUMP(evpl, srv.n == INFLIGHT_CONNS, 5000);
        /* some bytes through, most still queued or in the kernel's hands */
        T_PUMP(evpl, srv.conns[0].rxlen > 0, 5000);
        evpl_listener_detach(evpl, srv.binding);
        evpl_destroy(evpl); /* every bind closed here, requests in flight */
        for (int i = 0; i < INFLIGHT_CONNS; i++) {
            T_EQ(c[i].disconnected, 1);
            t_conn_free(&c[i]);
        }
        for (int i = 0; i < srv.n; i++) {
            T_EQ(srv.conns[i].disconnected, 1);
            t_conn_free(&srv.conns[i]);
        }
        free(srv.conns);
        if (base < 0) {
            base = t_metric("evpl_allocator_buffers_in_use");
        }
        /* no loop left: every buffer is back */
        T_EQ(t_metric("evpl_allocator_buffers_in_use"), base);
        if (rep % 10 == 9) {
            fprintf(stderr, "inflight: %d loops destroyed, %.1f s\n", rep + 1,
                    (double) (t_now_ns() - t_start) / 1e9);
        }
    }
    T_EQ(base, 0);

    /* a bind closed while its send waits for a peer that never reads */
    {
        struct evpl *evpl = t_net_loop();
        struct sockaddr_storage ss;
        socklen_t len = t_endpoint_sockaddr(ep, &ss);
        int lfd, fd, rcv = 4096;
        struct evpl_endpoint *ep2 = t_endpoint(proto);
        struct t_conn cc;

        len = t_endpoint_sockaddr(ep2, &ss);
        lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        T_OK(lfd >= 0);
        T_EQ(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)), 0);
        T_EQ(bind(lfd, (struct sockaddr *) &ss, len), 0);
        T_EQ(listen(lfd, 1), 0);
        t_connect(evpl, proto, ep2, &cc, NULL);
        fd = accept(lfd, NULL, NULL);
        T_OK(fd >= 0);
        T_PUMP(evpl, cc.connected, 5000);
        evpl_bind_request_send_notifications(evpl, cc.bind);
        evpl_send(evpl, cc.bind, big, sizeof(big));
        T_PUMP(evpl, cc.sent_bytes > 0, 5000);
        t_pump_for(evpl, 50); /* the next send now waits for room */
        T_OK(cc.sent_bytes < sizeof(big));
        evpl_close(evpl, cc.bind);
        T_PUMP(evpl, cc.disconnected, 5000);
        t_pump_for(evpl, 20);
        close(fd);
        close(lfd);
        t_conn_free(&cc);
        evpl_endpoint_close(ep2);
        evpl_destroy(evpl);
        T_EQ(t_metric("evpl_allocator_buffers_in_use"), 0);
    }
    evpl_listener_destroy(l);
    evpl_endpoint_close(ep);
}

/* ---- receive memory exhausted ---- */

#define EXHAUST_BYTES (24u << 20)

static int writer_fd;

static void *
writer(void *arg)
{
    static uint8_t chunk[1 << 20];

    for (uint64_t off = 0; off < EXHAUST_BYTES; off += sizeof(chunk)) {
        t_pattern_fill(9, off, chunk, sizeof(chunk));
        t_write_all(writer_fd, chunk, sizeof(chunk));
    }
    return arg;
}

static void
exhausted(void)
{
    struct evpl_global_config *gc = evpl_global_config_init();
    static uint8_t got[EXHAUST_BYTES];
    struct evpl_endpoint *ep;
    struct t_server srv;
    struct evpl *evpl;
    struct t_conn *s;
    uint64_t received = 0;
    int held, held_later;
    pthread_t th;

    /* four 2 MiB buffers in all: far less than the peer sends */
    evpl_global_config_set_slab_size(gc, 8u << 20);
    evpl_global_config_set_max_slabs(gc, 1);
    evpl_init(gc);
    if (!evpl_protocol_available(proto)) {
        exit(77);
    }
    evpl = t_net_loop();
    ep = t_endpoint(proto);
    memset(&srv, 0, sizeof(srv));
    srv.keep_msgs = 1; /* (no segmenter: the conn sees RECV_DATA) */
    t_server_start(&srv, evpl, proto, ep, 1);
    writer_fd = t_raw_connect(ep);
    T_OK(writer_fd >= 0);
    T_PUMP(evpl, srv.n == 1, 5000);
    s = &srv.conns[0];
    s->autodrain = 0; /* the application does not read */
    T_EQ(pthread_create(&th, NULL, writer, NULL), 0);

    /* receive memory, not data, runs out: the bytes held stop growing,
     * well short of what the peer sends (the receive limit is 64 MiB) */
    t_pump_for(evpl, 300);
    held = evpl_peek(evpl, s->bind, got, sizeof(got));
    /* (on a slow machine, e.g. an emulated one, filling the memory takes
     * longer: sample until two samples agree, for up to 10 s) */
    for (int tries = 0; tries < 50; tries++) {
        t_pump_for(evpl, 200);
        held_later = evpl_peek(evpl, s->bind, got, sizeof(got));
        if (held_later == held) {
            break;
        }
        held = held_later;
    }
    fprintf(stderr, "stalled with %d bytes held (then %d)\n", held, held_later);
    T_GT(held, 0);
    T_EQ(held_later, held);
    T_LT((uint64_t) held, (uint64_t) EXHAUST_BYTES);

    /* now drain: receives resume, nothing lost or repeated */
    while (received < EXHAUST_BYTES) {
        int n = evpl_recv(evpl, s->bind, got + received, (int) (EXHAUST_BYTES - received), 0);

        if (n > 0) {
            received += (uint64_t) n;
            continue;
        }
        T_EQ(s->disconnected, 0);
        evpl_continue(evpl);
    }
    T_EQ(pthread_join(th, NULL), 0);
    T_EQ(t_pattern_check(9, 0, got, EXHAUST_BYTES), -1);
    close(writer_fd);
    T_PUMP(evpl, s->disconnected, 5000);
    T_EQ(s->errors, 0);
    t_server_stop(&srv);
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
}

int
main(void)
{
    int ran = 0;

    t_net_guard(120);
    /* nothing here touches the library before the children */
    run_child("unavailable_seccomp", unavailable_seccomp);
    run_child("unavailable_config", unavailable_config);
    ran += run_child("preference", preference) == 0;
    ran += run_child("inflight", inflight) == 0;
    ran += run_child("exhausted", exhausted) == 0;
    if (!ran) {
        T_SKIP("io_uring unavailable here");
    }
    return 0;
}
