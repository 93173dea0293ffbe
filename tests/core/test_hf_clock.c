/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: threads */
/*
 * evpl_get_hf_monotonic_time is CLOCK_MONOTONIC-compatible (core.md §6)
 * on every hf_time_mode, TSC included:
 *  - across threads: two threads pass a token back and forth, each reading
 *    the clock after seeing the other's reading; no reading is less than
 *    the one it saw (each thread used to steer its own TSC clock, and
 *    readings went back by up to ~8 us);
 *  - it stays close to CLOCK_MONOTONIC (within 1 ms here; the TSC clock
 *    steers towards it).
 * The mode under test comes from T_HF_MODE (0, 1 or 2; default 1, the TSC).
 */
#include "t_loop.h"

#define ROUNDS 100000

static _Atomic uint64_t box[2];
static _Atomic int turn;
static int backwards[2];
static uint64_t worst[2];

static void *
player(void *arg)
{
    int me = (int) (intptr_t) arg;

    for (int i = 0; i < ROUNDS; i++) {
        uint64_t seen, now;

        while (atomic_load(&turn) != me) {
        }
        seen = atomic_load(&box[!me]);
        now = t_hf_ns();
        if (now < seen) {
            backwards[me]++;
            if (seen - now > worst[me]) {
                worst[me] = seen - now;
            }
        }
        atomic_store(&box[me], now);
        for (volatile int k = 0; k < 500; k++) {
        }
        atomic_store(&turn, !me);
    }
    return NULL;
}

int
main(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    const char *m = getenv("T_HF_MODE");
    pthread_t a, b;
    uint64_t far = 0;

    alarm(60);
    evpl_global_config_set_hf_time_mode(cfg, m ? (unsigned) atoi(m) : 1);
    evpl_init(cfg);

    T_EQ(pthread_create(&a, NULL, player, (void *) 0), 0);
    T_EQ(pthread_create(&b, NULL, player, (void *) 1), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    fprintf(stderr, "backwards across threads: %d + %d (worst %" PRIu64 " / %" PRIu64 " ns)\n",
            backwards[0], backwards[1], worst[0], worst[1]);
    T_EQ(backwards[0] + backwards[1], 0);

    for (int i = 0; i < 100000; i++) {
        uint64_t before = t_now_ns(), hf = t_hf_ns(), after = t_now_ns();
        uint64_t d = hf < before ? before - hf : hf > after ? hf - after : 0;

        if (d > far) {
            far = d;
        }
    }
    fprintf(stderr, "largest distance from CLOCK_MONOTONIC: %" PRIu64 " ns\n", far);
    T_LT(far, 1000000);
    return 0;
}
