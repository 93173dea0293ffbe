/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * libevpl_rpc2: RPCSEC_GSS v1 (RFC 2203) on the server side.  The library
 * runs the protocol; a provider registered per rpc2 thread runs the GSS-API
 * mechanism.  Callbacks return 0 or -1; buffers they hand back are
 * malloc()ed by the provider and free()d by the library.
 */
#pragma once

#include "evpl/evpl_rpc2.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EVPL_RPC2_GSS_SVC_NONE      1
#define EVPL_RPC2_GSS_SVC_INTEGRITY 2
#define EVPL_RPC2_GSS_SVC_PRIVACY   3
#define EVPL_RPC2_GSS_PRINCIPAL_MAX 256

struct evpl_rpc2_gss_provider {
    int (*accept)(void *provider_arg, void **gss_ctx, const void *in_token, size_t in_len,
                  void **out_token, size_t *out_len, int *complete, char *principal,
                  size_t principal_sz);
    int (*get_mic)(void *provider_arg, void *gss_ctx, const void *msg, size_t msg_len, void **mic,
                   size_t *mic_len);
    int (*verify_mic)(void *provider_arg, void *gss_ctx, const void *msg, size_t msg_len,
                      const void *mic, size_t mic_len);
    int (*wrap)(void *provider_arg, void *gss_ctx, const void *in, size_t in_len, void **out,
                size_t *out_len);
    int (*unwrap)(void *provider_arg, void *gss_ctx, const void *in, size_t in_len, void **out,
                  size_t *out_len);
    void (*destroy)(void *provider_arg, void *gss_ctx);
};

/* NULL turns RPCSEC_GSS off for the thread (calls are then rejected with
 * AUTH_REJECTEDCRED).  The vtable and the argument outlive the thread. */
EVPL_API void evpl_rpc2_set_gss_provider(struct evpl_rpc2_thread *thread,
                                         const struct evpl_rpc2_gss_provider *provider,
                                         void *provider_arg);

#ifdef __cplusplus
}
#endif
