/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Global and thread configuration objects.  Setters store and validate;
 * an invalid value is logged and the previous value kept.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

#define MiB (1024ull * 1024ull)
#define GiB (1024ull * MiB)

static inline int
is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
} /* is_pow2 */

EVPL_API struct evpl_global_config *
evpl_global_config_init(void)
{
    struct evpl_global_config *c = evpl__zalloc(sizeof(*c));

    c->core_mech = EVPL_CORE_MECH_DEFAULT;
    c->buffer_size = 2 * MiB;
    c->slab_size = 1 * GiB;
    c->huge_pages = 0;
    c->huge_page_size = 2 * MiB;
    c->max_datagram_size = 65536;
    c->max_datagram_batch = 16;
    c->max_num_iovec = 128;
    c->iovec_ring_size = 1024;
    c->dgram_ring_size = 1024;
    c->rdma_request_ring_size = 64;
    c->max_pending = 16;
    c->max_poll_fd = 16;
    c->resolve_timeout_ms = 5000;
    c->hf_time_mode = 2;
    c->virtual_clock = 0;
    c->preallocate_slabs = 0;
    c->preallocate_threads = 0;
    c->io_uring_enabled = 1;
    c->io_uring_entries = 8192;
    c->libaio_enabled = 1;
    c->libaio_max_pending = 256;
    c->vfio_enabled = 1;
    c->xlio_enabled = 1;
    c->rdmacm_enabled = 1;
    c->rdmacm_tos = 0;
    c->rdmacm_datagram_size_override = 0;
    c->rdmacm_srq_prefill = 0;
    c->rdmacm_max_sge = 31;
    c->rdmacm_cq_size = 8192;
    c->rdmacm_sq_size = 256;
    c->rdmacm_srq_size = 8192;
    c->rdmacm_srq_min = 256;
    c->rdmacm_srq_batch = 16;
    c->rdmacm_max_inline = 250;
    c->rdmacm_retry_count = 4;
    c->rdmacm_rnr_retry_count = 4;
    c->tls_verify_peer = 1;
    c->tls_ktls_enabled = 1;
    c->http_max_header_size = 8192;
    c->rpc2_max_message_size = 4 * MiB;

    c->stream_recv_limit = 64 * MiB;
    c->max_msg_size = 256 * MiB;

    c->thread_default.poll_mode = 1;
    c->thread_default.poll_iterations = 1000;
    c->thread_default.wait_ms = -1;
    c->thread_default.spin_ns = 1000000;
    return c;
} /* evpl_global_config_init */

EVPL_API void
evpl_global_config_release(struct evpl_global_config *config)
{
    if (!config) {
        return;
    }
    if (evpl_shared && evpl_shared->config == config) {
        evpl_bug("core", "evpl_global_config_release on the config given to evpl_init");
    }
    free(config->tls_cert);
    free(config->tls_key);
    free(config->tls_ca);
    free(config->tls_cipher_list);
    free(config->tls_alpn);
    free(config);
} /* evpl_global_config_release */

/*
 * Setters store what they are given (core.md §2: they never fail); the
 * values no transport can use are replaced here, at evpl_init, with a
 * warning: a zero size or depth takes the default, an unknown clock mode
 * means "decide".  max_pending 0 is a valid listen(2) backlog and stays.
 */
void
evpl__global_config_effective(struct evpl_global_config *c)
{
    struct evpl_global_config *d = evpl_global_config_init();

#define EFFECTIVE_NONZERO(field)                                       \
    if (c->field == 0) {                                               \
        evpl_log_error("core", #field " 0 cannot be used: using %llu", \
                       (unsigned long long) d->field);                 \
        c->field = d->field;                                           \
    }
    EFFECTIVE_NONZERO(max_datagram_size)
    EFFECTIVE_NONZERO(max_datagram_batch)
    EFFECTIVE_NONZERO(max_num_iovec)
    EFFECTIVE_NONZERO(io_uring_entries)
    EFFECTIVE_NONZERO(libaio_max_pending)
    EFFECTIVE_NONZERO(rdmacm_max_sge)
    EFFECTIVE_NONZERO(rdmacm_cq_size)
    EFFECTIVE_NONZERO(rdmacm_sq_size)
    EFFECTIVE_NONZERO(rdmacm_srq_size)
    EFFECTIVE_NONZERO(rdmacm_srq_batch)
#undef EFFECTIVE_NONZERO
    if (c->hf_time_mode > 2) {
        evpl_log_error("core", "hf_time_mode %u is not 0, 1 or 2: deciding at init",
                       c->hf_time_mode);
        c->hf_time_mode = 2;
    }
    evpl_global_config_release(d);
} /* evpl__global_config_effective */

/* Plain setters: store the value as given. */
#define SETTER(field, type)                                                                     \
    EVPL_API void evpl_global_config_set_##field(struct evpl_global_config *config, type value) \
    {                                                                                           \
        config->field = value;                                                                  \
    }

/* Setters that reject a value: log and keep the previous one. */
#define SETTER_CHECKED(field, type, ok, why)                                                      \
    EVPL_API void evpl_global_config_set_##field(struct evpl_global_config *config, type value)   \
    {                                                                                             \
        if (!(ok)) {                                                                              \
            evpl_log_error("core",                                                                \
                           "evpl_global_config_set_" #field ": rejected %llu (%s), keeping %llu", \
                           (unsigned long long) value, why, (unsigned long long) config->field);  \
            return;                                                                               \
        }                                                                                         \
        config->field = value;                                                                    \
    }

#define SETTER_BOOL(field)                                                                     \
    EVPL_API void evpl_global_config_set_##field(struct evpl_global_config *config, int value) \
    {                                                                                          \
        config->field = !!value;                                                               \
    }

/* stored as given: evpl_init aborts on a mechanism it does not have */
SETTER(core_mech, enum evpl_core_mech)
/* any size from 4 KiB to 2 GiB (iovec lengths and fill marks are 32-bit);
 * buffers are laid out a whole number of pages apart, so each still starts
 * page-aligned (memory.md §3.4) */
SETTER_CHECKED(buffer_size, uint64_t, value >= 4096 && value <= (2ull << 30),
               "must be between 4 KiB and 2 GiB")
/* any value; slabs are mapped at least one buffer large (slab.c) */
SETTER(slab_size, uint64_t)
SETTER_BOOL(huge_pages)
SETTER_CHECKED(huge_page_size, uint64_t,
               is_pow2(value) && value > (uint64_t) sysconf(_SC_PAGESIZE) && value <= 16 * GiB,
               "must be a power of two above the page size and at most 16 GiB")
SETTER(max_datagram_size, unsigned int)
SETTER(max_datagram_batch, unsigned int)
SETTER(max_num_iovec, unsigned int)
SETTER_CHECKED(iovec_ring_size, unsigned int, is_pow2(value), "must be a power of two")
SETTER_CHECKED(dgram_ring_size, unsigned int, is_pow2(value), "must be a power of two")
SETTER(rdma_request_ring_size, unsigned int)
SETTER(max_pending, unsigned int)
SETTER(max_poll_fd, unsigned int)
SETTER(resolve_timeout_ms, unsigned int)
SETTER(hf_time_mode, unsigned int)
SETTER_BOOL(virtual_clock)
SETTER(preallocate_slabs, unsigned int)
SETTER(preallocate_threads, unsigned int)
SETTER_BOOL(io_uring_enabled)
SETTER(io_uring_entries, unsigned int)
SETTER_BOOL(libaio_enabled)
SETTER(libaio_max_pending, unsigned int)
SETTER_BOOL(vfio_enabled)
SETTER_BOOL(xlio_enabled)
SETTER_BOOL(rdmacm_enabled)
SETTER(rdmacm_tos, uint8_t)
SETTER(rdmacm_datagram_size_override, unsigned int)
SETTER_BOOL(rdmacm_srq_prefill)
SETTER(rdmacm_max_sge, unsigned int)
SETTER(rdmacm_cq_size, unsigned int)
SETTER(rdmacm_sq_size, unsigned int)
SETTER(rdmacm_srq_size, unsigned int)
SETTER(rdmacm_srq_min, unsigned int)
SETTER(rdmacm_srq_batch, unsigned int)
SETTER(rdmacm_max_inline, unsigned int)
SETTER(rdmacm_retry_count, unsigned int)
SETTER(rdmacm_rnr_retry_count, unsigned int)
SETTER_BOOL(tls_verify_peer)
SETTER_BOOL(tls_ktls_enabled)
SETTER(http_max_header_size, unsigned int)

EVPL_API unsigned int
evpl_global_config_get_http_max_header_size(void)
{
    evpl_auto_init();
    return evpl_shared->config->http_max_header_size;
} /* evpl_global_config_get_http_max_header_size */
SETTER(max_slabs, unsigned int)
SETTER(stream_recv_limit, uint64_t)
SETTER(max_msg_size, uint64_t)
SETTER(tls_handshake_timeout_ms, unsigned int)

EVPL_API void
evpl_global_config_set_rpc2_max_message_size(struct evpl_global_config *config, unsigned int size)
{
    config->rpc2_max_message_size = size ? size : 4 * MiB; /* 0 = default */
} /* evpl_global_config_set_rpc2_max_message_size */

EVPL_API unsigned int
evpl_global_config_get_rpc2_max_message_size(void)
{
    evpl_auto_init();
    return evpl_shared->config->rpc2_max_message_size;
} /* evpl_global_config_get_rpc2_max_message_size */

EVPL_API void
evpl_global_config_set_spin_ns(struct evpl_global_config *config, uint64_t ns)
{
    /* kept at 64 bits: upstream truncates values above ~4.29 s */
    config->thread_default.spin_ns = ns;
} /* evpl_global_config_set_spin_ns */

static void
set_string(char **dst, const char *value)
{
    char *copy = NULL;

    if (value) {
        copy = strdup(value);
        if (!copy) {
            evpl_bug("core", "out of memory copying a config string");
        }
    }
    free(*dst);
    *dst = copy;
} /* set_string */

EVPL_API void
evpl_global_config_set_tls_cert(struct evpl_global_config *config, const char *cert_file)
{
    set_string(&config->tls_cert, cert_file);
} /* evpl_global_config_set_tls_cert */

EVPL_API void
evpl_global_config_set_tls_key(struct evpl_global_config *config, const char *key_file)
{
    set_string(&config->tls_key, key_file);
} /* evpl_global_config_set_tls_key */

EVPL_API void
evpl_global_config_set_tls_ca(struct evpl_global_config *config, const char *ca_file)
{
    set_string(&config->tls_ca, ca_file);
} /* evpl_global_config_set_tls_ca */

EVPL_API void
evpl_global_config_set_tls_alpn(struct evpl_global_config *config, const char *protocols)
{
    set_string(&config->tls_alpn, protocols);
} /* evpl_global_config_set_tls_alpn */

EVPL_API void
evpl_global_config_set_tls_cipher_list(struct evpl_global_config *config, const char *cipher_list)
{
    set_string(&config->tls_cipher_list, cipher_list);
} /* evpl_global_config_set_tls_cipher_list */

/* ---- thread configuration ---- */

EVPL_API struct evpl_thread_config *
evpl_thread_config_init(void)
{
    struct evpl_thread_config *c;

    /* upstream reads the global defaults through NULL before init */
    evpl_auto_init();
    c = evpl__zalloc(sizeof(*c));
    evpl__thread_config_copy(c, &evpl_shared->config->thread_default);
    c->adopted = 0;
    c->adopted_next = c->adopted_prev = NULL;
    return c;
} /* evpl_thread_config_init */

/* The settings only: the adoption links belong to the original object and
 * may be changed under evpl_shared->lock by other threads meanwhile. */
void
evpl__thread_config_copy(struct evpl_thread_config *dst, const struct evpl_thread_config *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->poll_mode = src->poll_mode;
    dst->poll_iterations = src->poll_iterations;
    dst->wait_ms = src->wait_ms;
    dst->spin_ns = src->spin_ns;
} /* evpl__thread_config_copy */

/*
 * Configs handed to evpl_create & co.  Upstream consumes such objects, so
 * programs written for it never release them; we copy instead and free the
 * never-released ones at exit.  The list has its own head (not inside any
 * config), guarded by evpl_shared->lock, so copying a config never reads it.
 */
static struct evpl_thread_config adopted_head;

EVPL_API void
evpl_thread_config_release(struct evpl_thread_config *config)
{
    if (!config) {
        return;
    }
    if (evpl_shared) {
        pthread_mutex_lock(&evpl_shared->lock);
        if (config->adopted) {
            config->adopted_prev->adopted_next = config->adopted_next;
            if (config->adopted_next) {
                config->adopted_next->adopted_prev = config->adopted_prev;
            }
        }
        pthread_mutex_unlock(&evpl_shared->lock);
    }
    free(config);
} /* evpl_thread_config_release */

void
evpl__thread_config_adopt(struct evpl_thread_config *config)
{
    if (!config) {
        return;
    }
    pthread_mutex_lock(&evpl_shared->lock);
    if (!config->adopted) {
        config->adopted = 1;
        config->adopted_prev = &adopted_head;
        config->adopted_next = adopted_head.adopted_next;
        if (adopted_head.adopted_next) {
            adopted_head.adopted_next->adopted_prev = config;
        }
        adopted_head.adopted_next = config;
    }
    pthread_mutex_unlock(&evpl_shared->lock);
} /* evpl__thread_config_adopt */

void
evpl__thread_config_free_adopted(void)
{
    struct evpl_thread_config *c, *next;

    pthread_mutex_lock(&evpl_shared->lock);
    for (c = adopted_head.adopted_next; c; c = next) {
        next = c->adopted_next;
        free(c);
    }
    adopted_head.adopted_next = NULL;
    pthread_mutex_unlock(&evpl_shared->lock);
} /* evpl__thread_config_free_adopted */

EVPL_API void
evpl_thread_config_set_poll_mode(struct evpl_thread_config *config, int poll_mode)
{
    config->poll_mode = !!poll_mode;
} /* evpl_thread_config_set_poll_mode */

EVPL_API void
evpl_thread_config_set_poll_iterations(struct evpl_thread_config *config, int iterations)
{
    config->poll_iterations = iterations; /* below 0 acts as 0: every pass is full */
} /* evpl_thread_config_set_poll_iterations */

EVPL_API void
evpl_thread_config_set_wait_ms(struct evpl_thread_config *config, int wait_ms)
{
    config->wait_ms = wait_ms < 0 ? -1 : wait_ms;
} /* evpl_thread_config_set_wait_ms */
