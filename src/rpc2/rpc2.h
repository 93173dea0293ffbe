/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * libevpl_rpc2 internals: the XDR primitives the library itself needs for
 * RPC and RPC-over-RDMA headers, and the objects behind the public types.
 */
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <evpl/evpl.h>

typedef struct evpl_iovec xdr_iovec;

#include <evpl/evpl_rpc2.h>
#include <evpl/evpl_rpc2_gss.h>
#include <evpl/evpl_rpc2_program.h>

/* the layout generated code uses (rpc2.md §9.3) */
struct xdr_dbuf {
    void *buffer;
    int size;
    int used;
};

/* RFC 5531 §9 */
#define RPC_CALL  0
#define RPC_REPLY 1

#define MSG_ACCEPTED 0
#define MSG_DENIED   1

#define RPC_MISMATCH 0
#define AUTH_ERROR   1

#define ACCEPT_SUCCESS       0
#define ACCEPT_PROG_UNAVAIL  1
#define ACCEPT_PROG_MISMATCH 2
#define ACCEPT_PROC_UNAVAIL  3
#define ACCEPT_GARBAGE_ARGS  4
#define ACCEPT_SYSTEM_ERR    5

#define AUTH_OK           0
#define AUTH_BADCRED      1
#define AUTH_REJECTEDCRED 2
#define AUTH_BADVERF      3
#define AUTH_REJECTEDVERF 4
#define AUTH_TOOWEAK      5

/* RFC 8166 §4 */
#define RDMA_VERSION          1
#define RDMA_MSG              0
#define RDMA_NOMSG            1
#define RDMA_ERROR            4
#define ERR_VERS              1
#define ERR_CHUNK             2
#define RDMA_INLINE_REPLY_MAX 512
#define RDMA_MAX_SEGMENTS     16

/* ---- a reader over a list of iovecs ---- */

struct rpc2_rd {
    const struct evpl_iovec *iov;
    int niov;
    int i;        /* current iovec */
    uint32_t off; /* offset in it */
    uint32_t pos; /* bytes consumed in all */
    uint32_t len; /* bytes in all */
};

static inline void
rpc2_rd_init(struct rpc2_rd *r, const struct evpl_iovec *iov, int niov, uint32_t len)
{
    r->iov = iov;
    r->niov = niov;
    r->i = 0;
    r->off = 0;
    r->pos = 0;
    r->len = len;
}

int rpc2_rd_bytes(struct rpc2_rd *r, void *dst, uint32_t n);
int rpc2_rd_u32(struct rpc2_rd *r, uint32_t *v);
int rpc2_rd_u64(struct rpc2_rd *r, uint64_t *v);
int rpc2_rd_opaque(struct rpc2_rd *r, void *dst, uint32_t max, uint32_t *len);

/* ---- a writer into a flat buffer ---- */

static inline uint8_t *
rpc2_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 24);
    p[1] = (uint8_t) (v >> 16);
    p[2] = (uint8_t) (v >> 8);
    p[3] = (uint8_t) v;
    return p + 4;
}

static inline uint8_t *
rpc2_put_u64(uint8_t *p, uint64_t v)
{
    p = rpc2_put_u32(p, (uint32_t) (v >> 32));
    return rpc2_put_u32(p, (uint32_t) v);
}

static inline uint8_t *
rpc2_put_opaque(uint8_t *p, const void *data, uint32_t len)
{
    p = rpc2_put_u32(p, len);
    if (len) {
        memcpy(p, data, len);
    }
    p += len;
    while (len & 3) {
        *p++ = 0;
        len++;
    }
    return p;
}

/* ---- RPCSEC_GSS contexts (RFC 2203), shared by every thread ---- */

#define RPCSEC_GSS_VERS_1      1
#define RPCSEC_GSS_DATA        0
#define RPCSEC_GSS_INIT        1
#define RPCSEC_GSS_CONTINUE    2
#define RPCSEC_GSS_DESTROY     3
#define RPCSEC_GSS_CREDPROBLEM 13
#define RPCSEC_GSS_CTXPROBLEM  14
#define RPCSEC_GSS_MAXSEQ      0x80000000u
#define RPCSEC_GSS_WINDOW      64
#define GSS_S_COMPLETE         0
#define GSS_S_CONTINUE_NEEDED  1
#define GSS_S_FAILURE          (13u << 16)

struct rpc2_gss_ctx {
    pthread_mutex_t mu; /* one provider call at a time on this context */
    uint32_t handle;    /* (on the wire: 4 opaque bytes) */
    int refs;           /* the table's, and one per call using it */
    int linked;         /* in the table */
    int complete;       /* established: DATA calls may use it (under the table's lock) */
    void *gss;          /* the provider's context */
    const struct evpl_rpc2_gss_provider *provider;
    void *arg;
    const void *owner; /* the connection that created it */
    uint32_t seq_max;  /* highest sequence number seen */
    uint64_t seen;     /* bit i: seq_max - i was seen */
    char principal[EVPL_RPC2_GSS_PRINCIPAL_MAX];
    UT_hash_handle hh;
};

struct rpc2_gss_ctx *rpc2_gss_new(const struct evpl_rpc2_gss_provider *provider, void *arg,
                                  const void *owner);
struct rpc2_gss_ctx *rpc2_gss_find(const void *handle, uint32_t len, int want_complete);
void rpc2_gss_set_complete(struct rpc2_gss_ctx *ctx);

/* contexts one connection may create, and all of them (a peer sending
 * INITs must not grow memory without bound) */
#define RPC2_GSS_PER_CONN 64
#define RPC2_GSS_MAX      65536
void rpc2_gss_put(struct rpc2_gss_ctx *ctx);
void rpc2_gss_remove(struct rpc2_gss_ctx *ctx);
void rpc2_gss_owner_gone(const void *owner);
int rpc2_gss_seq_accept(struct rpc2_gss_ctx *ctx, uint32_t seq);
