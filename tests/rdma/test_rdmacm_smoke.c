/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: vm */
/*
 * Ground for the RDMA backend: an RDMA CM connection over soft-RoCE comes
 * up and carries a message each way (what rping checks), written against
 * librdmacm's endpoint API.  Server and client are two processes on the
 * VM's rxe0 (10.77.0.1, made by tests/vm/guest.sh); there is
 * no RDMA device on the host, so it skips there.  Soft-RoCE under
 * emulation flakes now and then: one retry, nothing more.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"

#ifdef HAVE_RDMACM
#include <rdma/rdma_cma.h>
#include <rdma/rdma_verbs.h>

#define ADDR "10.77.0.1"
#define MSG  64
/* where it got to (printed on failure) */
#define STEP(who, what) fprintf(stderr, "%s: %s\n", who, what)

static char port[16];
static int server_rc;

static struct rdma_cm_id *
make_ep(int passive)
{
    struct rdma_addrinfo hints, *res = NULL;
    struct ibv_qp_init_attr attr;
    struct rdma_cm_id *id = NULL;

    memset(&hints, 0, sizeof(hints));
    hints.ai_port_space = RDMA_PS_TCP;
    if (passive) {
        hints.ai_flags = RAI_PASSIVE;
    }
    if (rdma_getaddrinfo(ADDR, port, &hints, &res)) {
        perror("rdma_getaddrinfo");
        return NULL;
    }
    memset(&attr, 0, sizeof(attr));
    attr.cap.max_send_wr = attr.cap.max_recv_wr = 4;
    attr.cap.max_send_sge = attr.cap.max_recv_sge = 1;
    attr.sq_sig_all = 1;
    /* the listening side keeps the attributes for the connections it gets */
    if (rdma_create_ep(&id, res, NULL, &attr)) {
        perror("rdma_create_ep");
        id = NULL;
    }
    rdma_freeaddrinfo(res);
    return id;
}

static void *
server(void *arg)
{
    struct rdma_cm_id *listen_id = make_ep(1), *id = NULL;
    char buf[MSG];
    struct ibv_mr *mr = NULL;
    struct ibv_wc wc;

    server_rc = -1;
    if (!listen_id || rdma_listen(listen_id, 0)) {
        (void) write(*(int *) arg, "x", 1);
        return arg;
    }
    STEP("server", "listening");
    if (write(*(int *) arg, "r", 1) != 1) {
        goto out;
    }
    if (rdma_get_request(listen_id, &id)) {
        goto out;
    }
    STEP("server", "request");
    mr = rdma_reg_msgs(id, buf, sizeof(buf));
    if (!mr || rdma_post_recv(id, NULL, buf, sizeof(buf), mr) || rdma_accept(id, NULL)) {
        goto out;
    }
    STEP("server", "accepted");
    if (rdma_get_recv_comp(id, &wc) <= 0 || wc.status != IBV_WC_SUCCESS) {
        goto out;
    }
    STEP("server", "received");
    for (int i = 0; i < MSG; i++) {
        buf[i] = (char) ~buf[i]; /* answer with the complement */
    }
    if (rdma_post_send(id, NULL, buf, sizeof(buf), mr, 0) || rdma_get_send_comp(id, &wc) <= 0 ||
        wc.status != IBV_WC_SUCCESS) {
        goto out;
    }
    server_rc = 0;
out:
    if (id) {
        rdma_disconnect(id);
        if (mr) {
            rdma_dereg_mr(mr);
        }
        rdma_destroy_ep(id);
    }
    if (listen_id) {
        rdma_destroy_ep(listen_id);
    }
    return arg;
}

static int
attempt(void)
{
    struct rdma_cm_id *id;
    char out[MSG], in[MSG];
    struct ibv_mr *mo = NULL, *mi = NULL;
    struct ibv_wc wc;
    int rc = -1, st;
    int ready[2];
    pid_t srv;
    char c;

    /* the server in a process of its own, as two programs would be */
    snprintf(port, sizeof(port), "%d", 7000 + (int) (getpid() % 1000));
    T_EQ(pipe(ready), 0);
    srv = fork();
    if (srv == 0) {
        close(ready[0]);
        server(&ready[1]);
        _exit(server_rc == 0 ? 0 : 1);
    }
    close(ready[1]);
    if (read(ready[0], &c, 1) != 1 || c != 'r') {
        close(ready[0]);
        waitpid(srv, &st, 0);
        return -1;
    }
    close(ready[0]);
    id = make_ep(0);
    for (int i = 0; i < MSG; i++) {
        out[i] = (char) (i * 3 + 1);
    }
    if (id) {
        mo = rdma_reg_msgs(id, out, sizeof(out));
        mi = rdma_reg_msgs(id, in, sizeof(in));
    }
    STEP("client", id ? "endpoint" : "no endpoint");
    if (id && mo && mi) {
        if (rdma_post_recv(id, NULL, in, sizeof(in), mi)) {
            perror("client: rdma_post_recv");
        } else if (rdma_connect(id, NULL)) {
            perror("client: rdma_connect");
        } else if (STEP("client", "connected"), rdma_post_send(id, NULL, out, sizeof(out), mo, 0) ||
                                                    rdma_get_send_comp(id, &wc) <= 0 ||
                                                    wc.status != IBV_WC_SUCCESS) {
            fprintf(stderr, "client: send failed (status %d)\n", (int) wc.status);
        } else if (STEP("client", "sent"),
                   rdma_get_recv_comp(id, &wc) <= 0 || wc.status != IBV_WC_SUCCESS) {
            fprintf(stderr, "client: receive failed (status %d)\n", (int) wc.status);
        } else {
            rc = 0;
            for (int i = 0; i < MSG; i++) {
                if (in[i] != (char) ~out[i]) {
                    rc = -1;
                }
            }
        }
    }
    if (id) {
        rdma_disconnect(id);
        if (mo) {
            rdma_dereg_mr(mo);
        }
        if (mi) {
            rdma_dereg_mr(mi);
        }
        rdma_destroy_ep(id);
    }
    if (waitpid(srv, &st, 0) != srv || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        rc = -1;
    }
    return rc;
}
#endif

int
main(int argc, char **argv)
{
#ifndef HAVE_RDMACM
    T_SKIP("built without librdmacm");
#else
    if (access("/dev/infiniband/rdma_cm", R_OK | W_OK) != 0) {
        T_SKIP("no RDMA device here (runs in the VM over soft-RoCE)");
    }
    if (argc > 1) {
        /* by hand: "server [port]" alone, for librdmacm's rdma_client */
        int fd = 1;

        snprintf(port, sizeof(port), "%s", argc > 2 ? argv[2] : "7471");
        if (strcmp(argv[1], "server") == 0) {
            server(&fd);
            return server_rc == 0 ? 0 : 1;
        }
    }
    /* each attempt in a child of its own: a hung one cannot hold the next */
    for (int round = 0; round < 2; round++) {
        pid_t pid = fork();
        int st;

        if (pid == 0) {
            alarm(30);
            _exit(attempt() == 0 ? 0 : 1);
        }
        T_EQ(waitpid(pid, &st, 0), pid);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            return 0;
        }
        fprintf(stderr, "attempt %d failed (status %#x)%s\n", round + 1, st,
                round == 0 ? "; one retry (soft-RoCE under emulation)" : "");
    }
    T_FAIL("no RDMA CM exchange over soft-RoCE");
#endif
}
