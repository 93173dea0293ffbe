/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * evpl_metrics_scrape (core §7, statement 14): auto-initializes, -1 for a
 * too-small buffer or bad arguments, otherwise the Prometheus text with the
 * allocator families, NUL-terminated, length returned without the NUL.
 */
#include "t_loop.h"

#define BIG (1 << 20)

static atomic_int thread_ok;

static void *
scrape_thread(void *arg)
{
    char *buf = malloc(BIG);

    for (int i = 0; i < 20; i++) {
        int n = evpl_metrics_scrape(buf, BIG);

        if (n <= 0 || strstr(buf, "evpl_allocator_free_buffers") == NULL) {
            free(buf);
            return NULL;
        }
    }
    atomic_fetch_add(&thread_ok, 1);
    free(buf);
    return NULL;
} /* scrape_thread */

int
main(void)
{
    static const char *families[] = {
        "evpl_allocator_slabs_inline_total",   "evpl_allocator_slabs_prealloc_total",
        "evpl_allocator_consumer_waits_total", "evpl_allocator_consumer_wait_ns_total",
        "evpl_allocator_free_buffers",         "evpl_allocator_outstanding_slabs",
        "evpl_allocator_target_buffers",       "evpl_allocator_total_slabs",
    };
    char *buf = malloc(BIG);
    char one[1];
    char *small;
    int n, m;
    size_t i;
    pthread_t tids[2];

    alarm(30);
    T_OK(buf != NULL);

    /* statement 14: 1-byte buffer -> -1 (this first call also auto-inits) */
    one[0] = 'x';
    T_EQ(evpl_metrics_scrape(one, 1), -1); /* core 14 */

    /* statement 14: large buffer -> positive length, text has the family */
    memset(buf, 'Z', BIG);
    n = evpl_metrics_scrape(buf, BIG);
    T_GT(n, 0); /* core 14 */
    T_LT(n, BIG);
    T_EQ(buf[n], '\0');
    T_EQ((int64_t) strlen(buf), n);
    T_OK(strstr(buf, "evpl_allocator_free_buffers") != NULL); /* core 14 */
    for (i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        if (strstr(buf, families[i]) == NULL) {
            T_FAIL("metric family %s missing from:\n%s", families[i], buf);
        }
    }
    /* exposition format: every family has TYPE metadata */
    T_OK(strstr(buf, "# TYPE evpl_allocator_free_buffers gauge") != NULL);
    T_OK(strstr(buf, "# TYPE evpl_allocator_slabs_inline_total counter") != NULL);
    T_EQ(buf[n - 1], '\n');

    /* exactly n bytes + NUL fit; one byte less does not */
    small = malloc(n + 1);
    m = evpl_metrics_scrape(small, n + 1);
    T_EQ(m, n);
    T_EQ(small[m], '\0');
    T_EQ(memcmp(small, buf, n), 0);
    T_EQ(evpl_metrics_scrape(small, n), -1);
    free(small);

    /* invalid arguments */
    T_EQ(evpl_metrics_scrape(NULL, BIG), -1);
    T_EQ(evpl_metrics_scrape(buf, 0), -1);
    T_EQ(evpl_metrics_scrape(buf, -5), -1);

    /* any thread */
    for (i = 0; i < 2; i++) {
        T_EQ(pthread_create(&tids[i], NULL, scrape_thread, NULL), 0);
    }
    for (i = 0; i < 2; i++) {
        pthread_join(tids[i], NULL);
    }
    T_EQ(atomic_load(&thread_ok), 2);

    free(buf);
    return 0;
} /* main */
