/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * An ONC RPC key-value service and its client in one process, with stubs
 * generated from kv.x by xdrzcc.  Values are never copied by the library:
 * the server keeps the iovecs a PUT delivered and hands the same buffers
 * to every GET reply (on RDMA-capable protocols the payload moves by RDMA
 * read and write chunks).
 *
 *   evpl-rpc2-kv [PROTOCOL]     (default STREAM_SOCKET_TCP)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_xdr.h"

#define MAX_KEYS 16

static struct KV_V1 prog;
static struct {
    char key[256];
    struct evpl_iovec *iov;
    int niov;
    uint32_t length;
} store[MAX_KEYS];
static int nkeys, replies;

static void
put(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, kv_put_args *args,
    struct evpl_rpc2_encoding *enc, void *private_data)
{
    kv_status status = KV_NOSPACE;

    /* the value's iovecs are ours now (rpc2.md §7): keep them */
    evpl_rpc2_encoding_take_read_chunk(enc, NULL, NULL);
    if (nkeys < MAX_KEYS) {
        snprintf(store[nkeys].key, sizeof(store[nkeys].key), "%.*s", (int) args->key.len,
                 args->key.str);
        store[nkeys].iov = malloc(sizeof(struct evpl_iovec) * (size_t) args->value.niov);
        memcpy(store[nkeys].iov, args->value.iov,
               sizeof(struct evpl_iovec) * (size_t) args->value.niov);
        store[nkeys].niov = args->value.niov;
        store[nkeys].length = args->value.length;
        nkeys++;
        status = KV_OK;
    } else {
        for (int i = 0; i < args->value.niov; i++) {
            evpl_iovec_release(evpl, &args->value.iov[i]);
        }
    }
    prog.send_reply_KV_PUT(evpl, NULL, status, enc);
}

static void
get(struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, kv_get_args *args,
    struct evpl_rpc2_encoding *enc, void *private_data)
{
    kv_get_res res;
    struct evpl_iovec *iov;

    memset(&res, 0, sizeof(res));
    res.status = KV_NOENT;
    for (int i = 0; i < nkeys; i++) {
        if (strlen(store[i].key) == args->key.len &&
            memcmp(store[i].key, args->key.str, args->key.len) == 0) {
            /* the reply takes references: give it clones of ours */
            iov = xdr_dbuf_alloc_space(sizeof(*iov) * (size_t) store[i].niov, enc->dbuf);
            for (int j = 0; j < store[i].niov; j++) {
                evpl_iovec_clone(&iov[j], &store[i].iov[j]);
            }
            res.status = KV_OK;
            xdr_set_ref(&res, value, iov, store[i].niov, store[i].length);
        }
    }
    prog.send_reply_KV_GET(evpl, NULL, &res, enc);
}

static void
put_done(struct evpl *evpl, const struct evpl_rpc2_verf *verf, kv_status status, int rpc_status,
         void *private_data)
{
    printf("PUT %s: rpc %d, status %d\n", (const char *) private_data, rpc_status, status);
    replies++;
}

static void
get_done(struct evpl *evpl, const struct evpl_rpc2_verf *verf, kv_get_res *res, int rpc_status,
         void *private_data)
{
    printf("GET %s: rpc %d", (const char *) private_data, rpc_status);
    if (rpc_status == 0) {
        printf(", status %d, %u bytes: ", res->status, res->value.length);
        for (int i = 0; i < res->value.niov; i++) {
            printf("%.*s", (int) evpl_iovec_length(&res->value.iov[i]),
                   (const char *) evpl_iovec_data(&res->value.iov[i]));
            evpl_iovec_release(evpl, &res->value.iov[i]); /* ours (rpc2.md §7) */
        }
    }
    printf("\n");
    replies++;
}

int
main(int argc, char **argv)
{
    enum evpl_protocol_id proto = EVPL_STREAM_SOCKET_TCP;
    struct evpl_rpc2_program *programs[1];
    struct evpl_rpc2_server *server;
    struct evpl_rpc2_thread *thread;
    struct evpl_rpc2_conn *conn;
    struct evpl_endpoint *ep;
    struct evpl *evpl;
    struct evpl_iovec v;
    kv_put_args pa;
    kv_get_args ga;
    const char *value = "zero-copy value";

    evpl_init(NULL);
    if (argc > 1 && evpl_protocol_lookup(&proto, argv[1]) != 0) {
        fprintf(stderr, "unknown or unavailable protocol %s\n", argv[1]);
        return 77;
    }
    evpl = evpl_create(NULL);
    KV_V1_init(&prog);
    prog.recv_call_KV_PUT = put;
    prog.recv_call_KV_GET = get;
    programs[0] = &prog.rpc2;

    server = evpl_rpc2_server_init(programs, 1);
    ep = evpl_protocol_is_inproc(proto)  ? evpl_endpoint_create_inproc("kv-example")
         : evpl_protocol_is_local(proto) ? evpl_endpoint_create_local("@evpl-kv-example")
                                         : evpl_endpoint_create("127.0.0.1", 17777);
    if (evpl_rpc2_server_start(server, proto, ep) != 0) {
        fprintf(stderr, "cannot listen\n");
        return 1;
    }
    thread = evpl_rpc2_thread_init(evpl, programs, 1, NULL, NULL);
    evpl_rpc2_server_attach(thread, server, NULL);
    conn = evpl_rpc2_client_connect(thread, proto, ep, NULL, 0, NULL);

    evpl_iovec_alloc(evpl, (unsigned int) strlen(value), 8, 1, 0, &v);
    memcpy(evpl_iovec_data(&v), value, strlen(value));
    xdr_set_str_static(&pa, key, "greeting", 8);
    xdr_set_ref(&pa, value, &v, 1, (uint32_t) strlen(value)); /* moved into the call */
    prog.send_call_KV_PUT(&prog.rpc2, evpl, conn, NULL, &pa, 1, 0, NULL, 0, 0, put_done,
                          "greeting");
    /* calls on one connection may complete in any order (a PUT whose value
     * is fetched by RDMA read is served after a GET sent behind it) */
    while (replies < 1) {
        evpl_continue(evpl);
    }
    xdr_set_str_static(&ga, key, "greeting", 8);
    prog.send_call_KV_GET(&prog.rpc2, evpl, conn, NULL, &ga, 0, 4096, NULL, 0, 0, get_done,
                          "greeting");
    xdr_set_str_static(&ga, key, "missing", 7);
    prog.send_call_KV_GET(&prog.rpc2, evpl, conn, NULL, &ga, 0, 4096, NULL, 0, 0, get_done,
                          "missing");
    while (replies < 3) {
        evpl_continue(evpl);
    }

    evpl_rpc2_client_disconnect(thread, conn);
    evpl_rpc2_server_stop(server);
    evpl_rpc2_server_detach(thread, server);
    evpl_rpc2_thread_destroy(thread);
    evpl_rpc2_server_destroy(server);
    for (int i = 0; i < nkeys; i++) {
        for (int j = 0; j < store[i].niov; j++) {
            evpl_iovec_release(evpl, &store[i].iov[j]);
        }
        free(store[i].iov);
    }
    evpl_endpoint_close(ep);
    evpl_destroy(evpl);
    return 0;
}
