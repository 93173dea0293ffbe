/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * Global and thread configuration (core §2, §3).
 *   statement 3: global config init + release without evpl_init is clean;
 *   statement 4: a non-default global config is observed by every loop
 *                created afterwards (spin_ns changes the poll-mode exit);
 *   statement 5: evpl_thread_config_init() gives poll_mode=1,
 *                poll_iterations=1000, wait_ms=-1 and the global spin_ns,
 *                and each setter overrides its field.
 * Each global config needs its own process, so scenarios run in children.
 * Statement 4 is also checked with set_buffer_size (the largest contiguous
 * allocation of every loop).
 */
#include "t_loop.h"

#define MS 1000000ull

/* ---- statement 3 -------------------------------------------------------- */

static void
set_everything(struct evpl_global_config *cfg)
{
    evpl_global_config_set_core_mech(cfg, EVPL_CORE_MECH_SELECT);
    evpl_global_config_set_buffer_size(cfg, 4 * 1024 * 1024);
    evpl_global_config_set_slab_size(cfg, 64 * 1024 * 1024);
    evpl_global_config_set_huge_pages(cfg, 1);
    evpl_global_config_set_huge_page_size(cfg, 3); /* invalid: rejected, logged */
    evpl_global_config_set_huge_page_size(cfg, 1ull << 30);
    evpl_global_config_set_spin_ns(cfg, 12345);
    evpl_global_config_set_max_datagram_size(cfg, 9000);
    evpl_global_config_set_max_datagram_batch(cfg, 8);
    evpl_global_config_set_max_num_iovec(cfg, 64);
    evpl_global_config_set_iovec_ring_size(cfg, 2048);
    evpl_global_config_set_dgram_ring_size(cfg, 2048);
    evpl_global_config_set_rdma_request_ring_size(cfg, 128);
    evpl_global_config_set_max_pending(cfg, 32);
    evpl_global_config_set_max_poll_fd(cfg, 32);
    evpl_global_config_set_resolve_timeout_ms(cfg, 1000);
    evpl_global_config_set_hf_time_mode(cfg, 0);
    evpl_global_config_set_virtual_clock(cfg, 7);
    evpl_global_config_set_preallocate_slabs(cfg, 1);
    evpl_global_config_set_preallocate_threads(cfg, 1);
    evpl_global_config_set_io_uring_enabled(cfg, 0);
    evpl_global_config_set_io_uring_entries(cfg, 256);
    evpl_global_config_set_libaio_enabled(cfg, 0);
    evpl_global_config_set_libaio_max_pending(cfg, 64);
    evpl_global_config_set_vfio_enabled(cfg, 0);
    evpl_global_config_set_xlio_enabled(cfg, 0);
    evpl_global_config_set_rdmacm_enabled(cfg, 0);
    evpl_global_config_set_rdmacm_tos(cfg, 4);
    evpl_global_config_set_rdmacm_datagram_size_override(cfg, 4096);
    evpl_global_config_set_rdmacm_srq_prefill(cfg, 1);
    evpl_global_config_set_rdmacm_max_sge(cfg, 8);
    evpl_global_config_set_rdmacm_cq_size(cfg, 1024);
    evpl_global_config_set_rdmacm_sq_size(cfg, 128);
    evpl_global_config_set_rdmacm_srq_size(cfg, 1024);
    evpl_global_config_set_rdmacm_srq_min(cfg, 16);
    evpl_global_config_set_rdmacm_srq_batch(cfg, 8);
    evpl_global_config_set_rdmacm_max_inline(cfg, 64);
    evpl_global_config_set_rdmacm_retry_count(cfg, 2);
    evpl_global_config_set_rdmacm_rnr_retry_count(cfg, 2);
    /* string setters copy; setting twice must free the first copy */
    evpl_global_config_set_tls_cert(cfg, "/nonexistent/cert.pem");
    evpl_global_config_set_tls_cert(cfg, "/nonexistent/cert2.pem");
    evpl_global_config_set_tls_key(cfg, "/nonexistent/key.pem");
    evpl_global_config_set_tls_ca(cfg, "/nonexistent/ca.pem");
    evpl_global_config_set_tls_cipher_list(cfg, "HIGH");
    evpl_global_config_set_tls_cipher_list(cfg, NULL);
    evpl_global_config_set_tls_cipher_list(cfg, "HIGH:!aNULL");
    evpl_global_config_set_tls_verify_peer(cfg, 0);
    evpl_global_config_set_tls_ktls_enabled(cfg, 0);
    evpl_global_config_set_http_max_header_size(cfg, 16384);
    evpl_global_config_set_rpc2_max_message_size(cfg, 1 << 20);
} /* set_everything */

static void
release_without_init(void)
{
    /* statement 3: no crash here; no leak (LSan checks at exit) */
    for (int i = 0; i < 3; i++) {
        struct evpl_global_config *cfg = evpl_global_config_init();

        T_OK(cfg != NULL);
        if (i > 0) {
            set_everything(cfg);
        }
        evpl_global_config_release(cfg); /* core 3 */
    }
} /* release_without_init */

/* ---- statement 5 (virtual clock: deterministic poll-mode timing) --------- */

static void
defaults_virtual(void *arg)
{
    struct evpl_global_config *cfg = t_global_config();
    struct evpl_thread_config *tc;
    struct evpl *evpl;
    struct evpl_poll *poll;
    struct t_pstate ps = {0};
    int n, polls;

    evpl_global_config_set_virtual_clock(cfg, 1);
    evpl_init(cfg);

    tc = evpl_thread_config_init();
    evpl = evpl_create(tc);
    evpl_thread_config_release(tc);
    t_ps_hooks(evpl, &ps);
    poll = t_ps_add_poll(evpl, &ps);

    /* poll_mode = 1: the poll is entered and called */
    t_full_passes(evpl, &ps, 1, 2000);
    T_EQ(ps.enter, 1); /* core 5 */
    polls = ps.polls;
    t_passes(evpl, 100);
    T_GE(ps.polls, polls + 50); /* core 5 */

    /* poll_iterations = 1000: one full pass every 1001 passes */
    evpl_poll_pin(evpl);
    t_full_passes(evpl, &ps, 1, 2000);
    n = t_full_passes(evpl, &ps, 1, 2000);
    T_EQ(n, 1001); /* core 5 */
    n = t_full_passes(evpl, &ps, 1, 2000);
    T_EQ(n, 1001); /* core 5 */
    evpl_poll_unpin(evpl);
    /* a full pass at the unpin time: whether or not the unpin restarts the
     * window, the last activity is now at virtual time 0 */
    t_full_passes(evpl, &ps, 1, 2000);

    /* spin_ns = global default, 1 ms: still polling at 0.9 ms, out at 1.1 ms */
    evpl_virtual_clock_advance(900000);
    t_full_passes(evpl, &ps, 2, 2000);
    T_EQ(ps.exit, 0); /* core 5 */
    evpl_virtual_clock_advance(200000);
    t_full_passes(evpl, &ps, 2, 2000);
    T_EQ(ps.exit, 1); /* core 5 */

    evpl_remove_poll(evpl, poll);
    evpl_destroy(evpl);
} /* defaults_virtual */

static void
overrides_virtual(void *arg)
{
    struct evpl_global_config *cfg = t_global_config();
    struct evpl_thread_config *tc;
    struct evpl *a, *b;
    struct evpl_poll *pa, *pb;
    struct t_pstate sa = {0}, sb = {0};
    int n;

    evpl_global_config_set_virtual_clock(cfg, 1);
    evpl_init(cfg);

    /* poll_iterations overridden: a full pass every 11 passes */
    tc = evpl_thread_config_init();
    evpl_thread_config_set_poll_iterations(tc, 10);
    a = evpl_create(tc);
    /* poll_mode overridden on the same (copied) object: never polls */
    evpl_thread_config_set_poll_mode(tc, 0);
    b = evpl_create(tc);
    evpl_thread_config_release(tc);

    t_ps_hooks(a, &sa);
    t_ps_hooks(b, &sb);
    pa = t_ps_add_poll(a, &sa);
    pb = t_ps_add_poll(b, &sb);
    evpl_poll_pin(a);
    evpl_poll_pin(b);
    evpl_activity(b);

    t_full_passes(a, &sa, 2, 100);
    n = t_full_passes(a, &sa, 1, 100);
    T_EQ(n, 11); /* core 5 */
    T_EQ(sa.enter, 1);
    T_GE(sa.polls, 10);

    t_passes(b, 3000);
    T_EQ(sb.polls, 0); /* core 5 */
    T_EQ(sb.enter, 0);
    T_EQ(sb.pre, 3000); /* poll_mode 0: every pass is a full pass */

    evpl_poll_unpin(a);
    evpl_poll_unpin(b);
    evpl_remove_poll(a, pa);
    evpl_remove_poll(b, pb);
    evpl_destroy(a);
    evpl_destroy(b);
} /* overrides_virtual */

/* ---- statement 4: global buffer_size reaches every later loop ----------- */

#define BUF (256u * 1024)

static void
check_buffer_size(struct evpl *evpl)
{
    struct evpl_iovec iov[4], g;
    int n;

    /* buffer_size bytes: one contiguous iovec */
    n = evpl_iovec_alloc(evpl, BUF, 0, 1, 0, iov);
    T_EQ(n, 1); /* core 4 */
    T_EQ(iov[0].length, BUF);
    memset(iov[0].data, 0x11, BUF);
    evpl_iovec_release(evpl, &iov[0]);
    /* one byte more cannot be contiguous (the default 2 MiB would be) */
    n = evpl_iovec_alloc(evpl, BUF + 1, 0, 1, 0, iov);
    T_EQ(n, -1); /* core 4 */
    n = evpl_iovec_alloc(evpl, BUF + 1, 0, 4, 0, iov);
    T_EQ(n, 2); /* core 4 */
    evpl_iovec_release(evpl, &iov[0]);
    evpl_iovec_release(evpl, &iov[1]);
    /* a whole buffer is buffer_size long */
    evpl_iovec_alloc_global(evpl, &g);
    T_OK(g.data != NULL);
    T_EQ(g.length, BUF); /* core 4 */
    evpl_iovec_release(evpl, &g);
} /* check_buffer_size */

static void
global_buffer_size(void *arg)
{
    struct evpl_global_config *cfg = t_global_config();
    struct evpl_thread_config *tc;
    struct evpl *a, *b;

    evpl_global_config_set_buffer_size(cfg, BUF);
    evpl_global_config_set_slab_size(cfg, 16 * BUF);
    evpl_init(cfg);
    a = evpl_create(NULL);
    tc = evpl_thread_config_init();
    b = evpl_create(tc);
    evpl_thread_config_release(tc);
    check_buffer_size(a);
    check_buffer_size(b);
    evpl_destroy(a);
    evpl_destroy(b);
} /* global_buffer_size */

/* ---- statement 4: global spin_ns reaches every later loop ---------------- */

static void
global_spin_virtual(void *arg)
{
    struct evpl_global_config *cfg = t_global_config();
    struct evpl_thread_config *tc;
    struct evpl *loops[3];
    struct evpl_poll *polls[3];
    struct t_pstate ps[3];
    int i;

    memset(ps, 0, sizeof(ps));
    evpl_global_config_set_virtual_clock(cfg, 1);
    evpl_global_config_set_spin_ns(cfg, 5 * MS);
    evpl_init(cfg);

    /* NULL config, a config from evpl_thread_config_init(), and one whose
     * other fields were changed: all carry the global spin_ns */
    loops[0] = evpl_create(NULL);
    tc = evpl_thread_config_init();
    loops[1] = evpl_create(tc);
    evpl_thread_config_set_poll_iterations(tc, 50);
    loops[2] = evpl_create(tc);
    evpl_thread_config_release(tc);

    for (i = 0; i < 3; i++) {
        t_ps_hooks(loops[i], &ps[i]);
        polls[i] = t_ps_add_poll(loops[i], &ps[i]);
        t_full_passes(loops[i], &ps[i], 1, 2000);
        T_EQ(ps[i].enter, 1);
    }
    /* 4.9 ms without activity: the default 1 ms would have exited */
    evpl_virtual_clock_advance(4900000);
    for (i = 0; i < 3; i++) {
        t_full_passes(loops[i], &ps[i], 2, 2000);
        T_EQ(ps[i].exit, 0); /* core 4 */
    }
    evpl_virtual_clock_advance(200000); /* 5.1 ms */
    for (i = 0; i < 3; i++) {
        t_full_passes(loops[i], &ps[i], 2, 2000);
        T_EQ(ps[i].exit, 1); /* core 4 */
    }
    for (i = 0; i < 3; i++) {
        evpl_remove_poll(loops[i], polls[i]);
        evpl_destroy(loops[i]);
    }
} /* global_spin_virtual */

/* ---- statement 5: wait_ms default -1 and override (real time) ------------ */

static int doorbell_calls;

static void
on_doorbell(struct evpl *evpl, struct evpl_doorbell *db)
{
    doorbell_calls++;
} /* on_doorbell */

static void *
ring_after_400ms(void *arg)
{
    t_sleep_ms(400);
    evpl_ring_doorbell(arg);
    return NULL;
} /* ring_after_400ms */

/*
 * Drive an idle loop (nothing but a doorbell rung by a thread at 400 ms)
 * and return how many passes started later than 50 ms, i.e. after the
 * spin window that follows creation.
 */
static int
late_passes(struct evpl_thread_config *tc)
{
    struct evpl *evpl = evpl_create(tc);
    struct evpl_doorbell db;
    pthread_t tid;
    uint64_t start;
    int late = 0;

    doorbell_calls = 0;
    evpl_add_doorbell(evpl, &db, on_doorbell);
    start = t_now_ns();
    T_EQ(pthread_create(&tid, NULL, ring_after_400ms, &db), 0);
    while (doorbell_calls == 0) {
        T_LT(t_now_ns() - start, 5000 * MS);
        if (t_now_ns() - start > 50 * MS) {
            late++;
        }
        evpl_continue(evpl);
    }
    T_GE(t_now_ns() - start, 300 * MS);
    pthread_join(tid, NULL);
    evpl_remove_doorbell(evpl, &db);
    evpl_destroy(evpl);
    return late;
} /* late_passes */

static void
wait_ms_real(void *arg)
{
    struct evpl_thread_config *tc;
    int late;

    evpl_init(t_global_config());

    /* default wait_ms = -1: the idle pass sleeps until the ring */
    tc = evpl_thread_config_init();
    late = late_passes(tc);
    evpl_thread_config_release(tc);
    T_EQ(late, 0); /* core 5 */

    /* wait_ms = 20: idle passes return about every 20 ms */
    tc = evpl_thread_config_init();
    evpl_thread_config_set_wait_ms(tc, 20);
    late = late_passes(tc);
    evpl_thread_config_release(tc);
    T_GE(late, 4); /* core 5 */
} /* wait_ms_real */

int
main(void)
{
    alarm(60);
    release_without_init();                                          /* core 3 */
    t_run_child("thread config defaults", defaults_virtual, NULL);   /* core 5 */
    t_run_child("thread config overrides", overrides_virtual, NULL); /* core 5 */
    t_run_child("global spin_ns", global_spin_virtual, NULL);        /* core 4 */
    t_run_child("global buffer_size", global_buffer_size, NULL);     /* core 4 */
    t_run_child("wait_ms", wait_ms_real, NULL);                      /* core 5 */
    return 0;
} /* main */
