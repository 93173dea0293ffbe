/* SPDX-License-Identifier: LGPL-2.1-only */
#pragma once

#ifndef EVPL_INCLUDED
#error "Do not include evpl_config.h directly, include evpl/evpl.h instead"
#endif

/* Readiness mechanism used by every loop. */
enum evpl_core_mech {
    EVPL_CORE_MECH_DEFAULT = 0,
    EVPL_CORE_MECH_EPOLL = 1,
    EVPL_CORE_MECH_KQUEUE = 2,
    EVPL_CORE_MECH_SELECT = 3,
    /* extension: io_uring poll requests, submit and wait in one syscall
     * (when built with liburing; evpl_init aborts otherwise, like any
     * unavailable mechanism) */
    EVPL_CORE_MECH_IO_URING = 4,
};

/*
 * Global configuration.  evpl_global_config_init returns owned (never NULL)
 * with every default; setters store values that take effect at evpl_init,
 * which takes the object.  Release only a config never given to evpl_init.
 * Config objects are not thread-safe; any thread may use its own object.
 */
EVPL_API struct evpl_global_config *evpl_global_config_init(void);

EVPL_API void evpl_global_config_set_core_mech(struct evpl_global_config *config,
                                               enum evpl_core_mech mech);

EVPL_API void evpl_global_config_release(struct evpl_global_config *config);

EVPL_API void evpl_global_config_set_buffer_size(struct evpl_global_config *config, uint64_t size);

EVPL_API void evpl_global_config_set_spin_ns(struct evpl_global_config *config, uint64_t ns);

EVPL_API void evpl_global_config_set_max_datagram_size(struct evpl_global_config *config,
                                                       unsigned int size);

EVPL_API void evpl_global_config_set_huge_pages(struct evpl_global_config *config, int huge_pages);

EVPL_API void evpl_global_config_set_huge_page_size(struct evpl_global_config *config,
                                                    uint64_t size);

EVPL_API void evpl_global_config_set_rdmacm_tos(struct evpl_global_config *config, uint8_t tos);

EVPL_API void
evpl_global_config_set_rdmacm_datagram_size_override(struct evpl_global_config *config,
                                                     unsigned int size);

EVPL_API void evpl_global_config_set_rdmacm_srq_prefill(struct evpl_global_config *config,
                                                        int prefill);

/* The TLS string setters borrow the string (it is copied). */
EVPL_API void evpl_global_config_set_tls_cert(struct evpl_global_config *config,
                                              const char *cert_file);

EVPL_API void evpl_global_config_set_tls_key(struct evpl_global_config *config,
                                             const char *key_file);

EVPL_API void evpl_global_config_set_tls_ca(struct evpl_global_config *config, const char *ca_file);

EVPL_API void evpl_global_config_set_tls_cipher_list(struct evpl_global_config *config,
                                                     const char *cipher_list);

EVPL_API void evpl_global_config_set_tls_verify_peer(struct evpl_global_config *config, int verify);

EVPL_API void evpl_global_config_set_tls_ktls_enabled(struct evpl_global_config *config,
                                                      int enabled);

EVPL_API void evpl_global_config_set_http_max_header_size(struct evpl_global_config *config,
                                                          unsigned int size);

/* Extension, for the protocol modules: the effective limit in use. */
EVPL_API unsigned int evpl_global_config_get_http_max_header_size(void);

/*
 * Thread configuration: a copy of the global thread defaults (auto-
 * initialises the library).  Returns owned.  Loops and threads copy it.
 */
EVPL_API struct evpl_thread_config *evpl_thread_config_init(void);

EVPL_API void evpl_thread_config_release(struct evpl_thread_config *config);

EVPL_API void evpl_thread_config_set_poll_mode(struct evpl_thread_config *config, int poll_mode);

EVPL_API void evpl_thread_config_set_poll_iterations(struct evpl_thread_config *config,
                                                     int iterations);

EVPL_API void evpl_thread_config_set_wait_ms(struct evpl_thread_config *config, int wait_ms);

EVPL_API void evpl_global_config_set_slab_size(struct evpl_global_config *config, uint64_t size);

EVPL_API void evpl_global_config_set_max_num_iovec(struct evpl_global_config *config,
                                                   unsigned int max);

EVPL_API void evpl_global_config_set_rpc2_max_message_size(struct evpl_global_config *config,
                                                           unsigned int size);

/* Extension, for the protocol modules: the effective limit in use. */
EVPL_API unsigned int evpl_global_config_get_rpc2_max_message_size(void);

EVPL_API void evpl_global_config_set_iovec_ring_size(struct evpl_global_config *config,
                                                     unsigned int size);

EVPL_API void evpl_global_config_set_dgram_ring_size(struct evpl_global_config *config,
                                                     unsigned int size);

EVPL_API void evpl_global_config_set_rdma_request_ring_size(struct evpl_global_config *config,
                                                            unsigned int size);

EVPL_API void evpl_global_config_set_max_datagram_batch(struct evpl_global_config *config,
                                                        unsigned int batch);

EVPL_API void evpl_global_config_set_resolve_timeout_ms(struct evpl_global_config *config,
                                                        unsigned int timeout_ms);

EVPL_API void evpl_global_config_set_io_uring_enabled(struct evpl_global_config *config,
                                                      int enabled);

EVPL_API void evpl_global_config_set_io_uring_entries(struct evpl_global_config *config,
                                                      unsigned int entries);

EVPL_API void evpl_global_config_set_rdmacm_enabled(struct evpl_global_config *config, int enabled);

EVPL_API void evpl_global_config_set_rdmacm_max_sge(struct evpl_global_config *config,
                                                    unsigned int max_sge);

EVPL_API void evpl_global_config_set_rdmacm_cq_size(struct evpl_global_config *config,
                                                    unsigned int size);

EVPL_API void evpl_global_config_set_rdmacm_sq_size(struct evpl_global_config *config,
                                                    unsigned int size);

EVPL_API void evpl_global_config_set_rdmacm_srq_size(struct evpl_global_config *config,
                                                     unsigned int size);

EVPL_API void evpl_global_config_set_rdmacm_srq_min(struct evpl_global_config *config,
                                                    unsigned int min);

EVPL_API void evpl_global_config_set_rdmacm_max_inline(struct evpl_global_config *config,
                                                       unsigned int max_inline);

EVPL_API void evpl_global_config_set_rdmacm_srq_batch(struct evpl_global_config *config,
                                                      unsigned int batch);

EVPL_API void evpl_global_config_set_rdmacm_retry_count(struct evpl_global_config *config,
                                                        unsigned int retry_count);

EVPL_API void evpl_global_config_set_rdmacm_rnr_retry_count(struct evpl_global_config *config,
                                                            unsigned int retry_count);

EVPL_API void evpl_global_config_set_xlio_enabled(struct evpl_global_config *config, int enabled);

EVPL_API void evpl_global_config_set_vfio_enabled(struct evpl_global_config *config, int enabled);

EVPL_API void evpl_global_config_set_libaio_enabled(struct evpl_global_config *config, int enabled);

EVPL_API void evpl_global_config_set_libaio_max_pending(struct evpl_global_config *config,
                                                        unsigned int max_pending);

EVPL_API void evpl_global_config_set_hf_time_mode(struct evpl_global_config *config,
                                                  unsigned int mode);

EVPL_API void evpl_global_config_set_virtual_clock(struct evpl_global_config *config, int enabled);

EVPL_API void evpl_global_config_set_max_pending(struct evpl_global_config *config,
                                                 unsigned int max);

EVPL_API void evpl_global_config_set_max_poll_fd(struct evpl_global_config *config,
                                                 unsigned int max);

EVPL_API void evpl_global_config_set_preallocate_slabs(struct evpl_global_config *config,
                                                       unsigned int slabs);

EVPL_API void evpl_global_config_set_preallocate_threads(struct evpl_global_config *config,
                                                         unsigned int threads);

/*
 * Extension (not in upstream libevpl): cap the number of slabs the process
 * maps (0 = unlimited, the default).  Past the cap allocations fail with
 * -1 instead of mapping more memory.  The EVPL_MAX_SLABS environment
 * variable overrides it.
 */
/*
 * Extension: a stream bind stops reading from the kernel while its receive
 * buffer holds more than this many bytes (default 64 MiB), and resumes when
 * the application has drained it to half.  Memory stays bounded against a
 * peer that sends forever.
 */
EVPL_API void evpl_global_config_set_stream_recv_limit(struct evpl_global_config *config,
                                                       uint64_t limit);

/*
 * Extension: the largest message a segment callback may ask for (default
 * 256 MiB; 0 = no limit).  A larger one closes the bind (-EMSGSIZE).
 */
EVPL_API void evpl_global_config_set_max_msg_size(struct evpl_global_config *config, uint64_t size);

/*
 * Extension: how long a TLS handshake may take before the connection is
 * closed (DISCONNECTED with -ETIMEDOUT).  0 = the default, 10000 ms.
 * (TLS files may also come from EVPL_TLS_CERT, EVPL_TLS_KEY and
 * EVPL_TLS_CA when the setters were not called.)
 */
EVPL_API void evpl_global_config_set_tls_handshake_timeout_ms(struct evpl_global_config *config,
                                                              unsigned int timeout_ms);

/*
 * Extension: ALPN protocols in preference order, comma-separated (e.g.
 * "h2,http/1.1"); clients offer them, servers pick the first of theirs the
 * client offers.  NULL (the default) negotiates none.  Borrows (copied).
 */
EVPL_API void evpl_global_config_set_tls_alpn(struct evpl_global_config *config,
                                              const char *protocols);

/* Extension: replace the process-wide ALPN list at run time (listeners'
 * choices, and what later connections offer).  0, or -1 for a bad list
 * (or no TLS in this build).  Any thread. */
EVPL_API int evpl_tls_set_alpn(const char *protocols);

EVPL_API void evpl_global_config_set_max_slabs(struct evpl_global_config *config,
                                               unsigned int max_slabs);
