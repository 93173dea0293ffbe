/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * RPCSEC_GSS contexts (RFC 2203 §5.2): one process-wide table, so a
 * context established on one connection serves calls on any other.  A
 * context lives while it is in the table or a call is using it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "rpc2/rpc2.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rpc2_gss_ctx *table;
static uint32_t next_handle;

struct rpc2_gss_ctx *
rpc2_gss_new(const struct evpl_rpc2_gss_provider *provider, void *arg, const void *owner)
{
    struct rpc2_gss_ctx *ctx = calloc(1, sizeof(*ctx)), *it, *tmp;
    unsigned mine = 0;

    if (!ctx) {
        return NULL;
    }
    pthread_mutex_init(&ctx->mu, NULL);
    ctx->provider = provider;
    ctx->arg = arg;
    ctx->owner = owner;
    ctx->refs = 2; /* the table's and the caller's */
    ctx->linked = 1;
    pthread_mutex_lock(&lock);
    HASH_ITER(hh, table, it, tmp)
    {
        mine += it->owner == owner;
    }
    if (mine >= RPC2_GSS_PER_CONN || HASH_COUNT(table) >= RPC2_GSS_MAX) {
        pthread_mutex_unlock(&lock);
        pthread_mutex_destroy(&ctx->mu);
        free(ctx);
        return NULL;
    }
    /* 4-byte handles, as upstream hands out; never 0, never one in use
     * (the count wraps after 2^32 contexts) */
    if (next_handle == 0) {
        /* handles of an earlier process are not taken for ours */
        next_handle = ((uint32_t) (uintptr_t) &ctx ^ (uint32_t) getpid() << 16) | 1;
    }
    for (;;) {
        struct rpc2_gss_ctx *used = NULL;

        ctx->handle = next_handle++;
        HASH_FIND(hh, table, &ctx->handle, sizeof(ctx->handle), used);
        if (ctx->handle && !used) {
            break;
        }
    }
    HASH_ADD(hh, table, handle, sizeof(ctx->handle), ctx);
    pthread_mutex_unlock(&lock);
    return ctx;
}

/* The context of a handle, with a reference, if it is established
 * (want_complete 1) or still being established (0). */
struct rpc2_gss_ctx *
rpc2_gss_find(const void *handle, uint32_t len, int want_complete)
{
    struct rpc2_gss_ctx *ctx = NULL;
    uint32_t h;

    if (len != sizeof(h)) {
        return NULL;
    }
    memcpy(&h, handle, sizeof(h));
    pthread_mutex_lock(&lock);
    HASH_FIND(hh, table, &h, sizeof(h), ctx);
    if (ctx && ctx->complete == want_complete) {
        ctx->refs++;
    } else {
        ctx = NULL;
    }
    pthread_mutex_unlock(&lock);
    return ctx;
}

/* Established: DATA calls on any thread may use it from now on. */
void
rpc2_gss_set_complete(struct rpc2_gss_ctx *ctx)
{
    pthread_mutex_lock(&lock);
    ctx->complete = 1;
    pthread_mutex_unlock(&lock);
}

void
rpc2_gss_put(struct rpc2_gss_ctx *ctx)
{
    int last;

    pthread_mutex_lock(&lock);
    last = --ctx->refs == 0;
    pthread_mutex_unlock(&lock);
    if (last) {
        if (ctx->gss && ctx->provider->destroy) {
            ctx->provider->destroy(ctx->arg, ctx->gss);
        }
        pthread_mutex_destroy(&ctx->mu);
        free(ctx);
    }
}

void
rpc2_gss_remove(struct rpc2_gss_ctx *ctx)
{
    int unlink;

    pthread_mutex_lock(&lock);
    unlink = ctx->linked;
    if (unlink) {
        HASH_DELETE(hh, table, ctx);
        ctx->linked = 0;
    }
    pthread_mutex_unlock(&lock);
    if (unlink) {
        rpc2_gss_put(ctx);
    }
}

void
rpc2_gss_owner_gone(const void *owner)
{
    struct rpc2_gss_ctx *ctx, *tmp, *gone = NULL;

    pthread_mutex_lock(&lock);
    HASH_ITER(hh, table, ctx, tmp)
    {
        if (ctx->owner == owner) {
            HASH_DELETE(hh, table, ctx);
            ctx->linked = 0;
            ctx->owner = gone; /* chained for the puts below */
            gone = ctx;
        }
    }
    pthread_mutex_unlock(&lock);
    while (gone) {
        ctx = gone;
        gone = (struct rpc2_gss_ctx *) ctx->owner;
        rpc2_gss_put(ctx);
    }
}

/* The sequence window (RFC 2203 §5.3.3.1): 0 to serve, -1 to drop
 * silently (a replay, or too old for the window). */
int
rpc2_gss_seq_accept(struct rpc2_gss_ctx *ctx, uint32_t seq)
{
    int rc = 0;

    pthread_mutex_lock(&lock);
    if (seq > ctx->seq_max || (ctx->seq_max == 0 && ctx->seen == 0)) {
        uint32_t shift = seq - ctx->seq_max;

        ctx->seen = shift >= 64 ? 0 : ctx->seen << shift;
        ctx->seen |= 1;
        ctx->seq_max = seq;
    } else if (ctx->seq_max - seq >= RPCSEC_GSS_WINDOW ||
               (ctx->seen & (1ull << (ctx->seq_max - seq)))) {
        rc = -1;
    } else {
        ctx->seen |= 1ull << (ctx->seq_max - seq);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}
