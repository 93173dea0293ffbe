/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * libevpl_rpc2: ONC RPC v2 (RFC 5531) clients and servers on evpl loops,
 * with record marking on stream protocols and RPC-over-RDMA v1 (RFC 8166)
 * on RDMA-capable message protocols.  Link with -levpl_rpc2.  Procedure
 * arguments and results are encoded by code that `xdrzcc` generates from
 * a .x file.  Every function taking a thread or connection runs on that
 * thread's loop.
 */
#pragma once

#include <evpl/evpl.h>

#ifdef __cplusplus
extern "C" {
#endif

struct evpl_rpc2_thread;
struct evpl_rpc2_server;
struct evpl_rpc2_server_binding;
struct evpl_rpc2_request;
struct evpl_rpc2_program;

struct evpl_rpc2_verf {
    const void *data;
    uint32_t len;
};

#define EVPL_RPC2_AUTH_SYS_MAX_GIDS 16
#define EVPL_RPC2_AUTH_NONE         0
#define EVPL_RPC2_AUTH_SYS          1
#define EVPL_RPC2_AUTH_SHORT        2
#define EVPL_RPC2_AUTH_RPCSEC_GSS   6

struct evpl_rpc2_cred {
    uint32_t flavor;
    struct {
        uint32_t uid;
        uint32_t gid;
        uint32_t num_gids;
        uint32_t *gids;
        const char *machinename;
        int machinename_len;
    } authsys;
    struct {
        const char *principal;
        uint32_t service;
        void *gss_ctx;
    } gss;
};

#define EVPL_RPC2_NOTIFY_ACCEPTED     1
#define EVPL_RPC2_NOTIFY_CONNECTED    2
#define EVPL_RPC2_NOTIFY_DISCONNECTED 3

struct evpl_rpc2_notify {
    unsigned int notify_type;
};

/*
 * A connection.  Programs and generated stubs use `rdma` (non-zero when
 * the connection speaks RPC-over-RDMA), `thread` and, read-only,
 * `protocol`; the rest is the library's state.
 */
struct evpl_rpc2_conn {
    enum evpl_protocol_id protocol;
    int rdma;
    struct evpl_rpc2_thread *thread;
    struct evpl_rpc2_server_binding *server_binding;
    struct evpl_bind *bind;
    struct evpl_rpc2_request *pending_calls;
    uint32_t next_xid;
    void *private_data;
    struct evpl_rpc2_conn *prev;
    struct evpl_rpc2_conn *next;
    void *server_private_data;
    int num_server_programs;
    struct evpl_rpc2_program *server_programs[4];
    struct evpl_iovec *reasm_iov;
    int reasm_niov;
    int reasm_cap;
    uint32_t reasm_length;
};

typedef void (*evpl_rpc2_notify_callback_t)(struct evpl_rpc2_thread *thread,
                                            struct evpl_rpc2_conn *conn,
                                            struct evpl_rpc2_notify *notify, void *private_data);

EVPL_API struct evpl_rpc2_thread *
evpl_rpc2_thread_init(struct evpl *evpl, struct evpl_rpc2_program **programs, int nprograms,
                      evpl_rpc2_notify_callback_t notify_callback, void *private_data);

EVPL_API void evpl_rpc2_thread_destroy(struct evpl_rpc2_thread *thread);

EVPL_API void *evpl_rpc2_thread_get_client_dbuf(struct evpl_rpc2_thread *thread);

EVPL_API struct evpl_rpc2_server *evpl_rpc2_server_init(struct evpl_rpc2_program **programs,
                                                        int nprograms);

EVPL_API int evpl_rpc2_server_start(struct evpl_rpc2_server *server, int protocol,
                                    struct evpl_endpoint *endpoint);

EVPL_API void evpl_rpc2_server_attach(struct evpl_rpc2_thread *thread,
                                      struct evpl_rpc2_server *server, void *private_data);

EVPL_API void evpl_rpc2_server_detach(struct evpl_rpc2_thread *thread,
                                      struct evpl_rpc2_server *server);

EVPL_API void evpl_rpc2_server_stop(struct evpl_rpc2_server *server);

EVPL_API void evpl_rpc2_server_destroy(struct evpl_rpc2_server *server);

EVPL_API struct evpl_rpc2_conn *
evpl_rpc2_client_connect(struct evpl_rpc2_thread *thread, int protocol,
                         struct evpl_endpoint *endpoint, struct evpl_rpc2_program **server_programs,
                         int num_server_programs, void *server_private_data);

EVPL_API void evpl_rpc2_client_disconnect(struct evpl_rpc2_thread *thread,
                                          struct evpl_rpc2_conn *conn);

EVPL_API void evpl_rpc2_conn_get_local_address(struct evpl_rpc2_conn *conn, char *str, int len);

EVPL_API void evpl_rpc2_conn_get_remote_address(struct evpl_rpc2_conn *conn, char *str, int len);

EVPL_API void evpl_rpc2_conn_set_private_data(struct evpl_rpc2_conn *conn, void *private_data);

EVPL_API void *evpl_rpc2_conn_get_private_data(struct evpl_rpc2_conn *conn);

#ifdef __cplusplus
}
#endif
