/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Pieces shared by the seeded stress tests (test_stress_random,
 * test_stress_cdgram): the PRNG, the run's identity (protocol, seed,
 * threads) with FAIL/LOG, and the suite driver that runs each seed of
 * T_STRESS_SEEDS in a child process of its own.
 */
#pragma once

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t_net.h"

struct rng {
    uint64_t s;
};

static inline uint64_t
rnext(struct rng *r)
{
    r->s += 0x9e3779b97f4a7c15ull;
    return t_mix64(r->s);
}

/* uniform in [lo, hi] */
static inline uint64_t
rrange(struct rng *r, uint64_t lo, uint64_t hi)
{
    return lo + rnext(r) % (hi - lo + 1);
}

static inline int
rpct(struct rng *r, int pct)
{
    return (int) (rnext(r) % 100) < pct;
}

/* the run: set by the test's option parsing */
static enum evpl_protocol_id proto;
static const char *proto_name;
static uint64_t seed;
static int verbose;
static int nthreads = 1;
static int failures;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

/* Record an invariant failure (the first 40 are printed); any thread. */
#define FAIL(...)                                                                              \
    do {                                                                                       \
        pthread_mutex_lock(&fail_lock);                                                        \
        if (failures++ < 40) {                                                                 \
            fprintf(stderr, "FAIL seed=%llu proto=%s threads=%d: ", (unsigned long long) seed, \
                    proto_name, nthreads);                                                     \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
        }                                                                                      \
        pthread_mutex_unlock(&fail_lock);                                                      \
    } while (0)

#define LOG(...)                          \
    do {                                  \
        if (verbose) {                    \
            fprintf(stderr, __VA_ARGS__); \
            fprintf(stderr, "\n");        \
        }                                 \
    } while (0)

/*
 * Options of a by-hand run: -p PROTO -s SEED [-m default|epoll|select|
 * io_uring] [-t 1|2] [-n STEPS] [-c CERTDIR] [-v].  Returns 0, or 2 after a
 * usage line.  The wait mechanism goes into cfg.
 */
static inline int
t_stress_options(int argc, char **argv, struct evpl_global_config *cfg, int *nsteps,
                 const char **certs)
{
    const char *mech = "default";
    int opt;

    while ((opt = getopt(argc, argv, "p:s:m:t:n:c:v")) != -1) {
        switch (opt) {
            case 'p':
                proto_name = optarg;
                break;
            case 's':
                seed = strtoull(optarg, NULL, 0);
                break;
            case 'm':
                mech = optarg;
                break;
            case 't':
                nthreads = atoi(optarg) == 2 ? 2 : 1;
                break;
            case 'n':
                *nsteps = atoi(optarg);
                break;
            case 'c':
                *certs = optarg;
                break;
            case 'v':
                verbose = 1;
                break;
            default:
                fprintf(stderr,
                        "usage: %s -p PROTO -s SEED [-m mech] [-t 1|2] [-n steps] "
                        "[-c certdir] [-v]\n",
                        argv[0]);
                return 2;
        }
    }
    if (strcmp(mech, "io_uring") == 0) {
        evpl_global_config_set_core_mech(cfg, EVPL_CORE_MECH_IO_URING);
    } else if (strcmp(mech, "epoll") == 0) {
        evpl_global_config_set_core_mech(cfg, EVPL_CORE_MECH_EPOLL);
    } else if (strcmp(mech, "select") == 0) {
        evpl_global_config_set_core_mech(cfg, EVPL_CORE_MECH_SELECT);
    }
    return 0;
} /* t_stress_options */

/*
 * The suite's entry: protocol from T_PROTO, one child process per seed of
 * T_STRESS_SEEDS (default "1 2 3", in the VM "1 2"; odd seeds run two
 * loops), so the library's exit-time leak check judges every seed.  Each
 * child runs run(argc, argv) with "-p PROTO -s SEED -t 1|2", plus
 * "-c certs" when T_CERTS is set.  Returns the process exit code.
 */
static inline int
t_stress_seeds(const char *argv0, int (*run)(int argc, char **argv))
{
    const char *seeds = getenv("T_STRESS_SEEDS"), *certs = getenv("T_CERTS"), *p;
    const char *name = getenv("T_PROTO");
    int ran = 0;

    if (!name) {
        fprintf(stderr, "T_PROTO is not set (or give -p PROTO -s SEED)\n");
        return 2;
    }
    t_proto_env_skips(name);
    if (!seeds) {
        seeds = getenv("EVPL_VM") ? "1 2" : "1 2 3"; /* the VM is slower */
    }
    for (p = seeds; *p;) {
        char seed_arg[32], *end, *args[12];
        unsigned long long s = strtoull(p, &end, 10);
        int n = 0, status;
        pid_t pid;

        if (end == p) {
            break;
        }
        p = end + strspn(end, " ,");
        snprintf(seed_arg, sizeof(seed_arg), "%llu", s);
        args[n++] = (char *) argv0;
        args[n++] = "-p";
        args[n++] = (char *) name;
        args[n++] = "-s";
        args[n++] = seed_arg;
        args[n++] = "-t";
        args[n++] = (s & 1) ? "2" : "1";
        if (certs) {
            args[n++] = "-c";
            args[n++] = (char *) certs;
        }
        args[n] = NULL;
        fflush(NULL);
        pid = fork();
        if (pid == 0) {
            exit(run(n, args)); /* exit: the leak check runs */
        }
        if (pid < 0 || waitpid(pid, &status, 0) != pid) {
            perror("fork/waitpid");
            return 1;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
            return 77;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "seed %llu failed (%s %d); rerun: %s -p %s -s %llu -t %s%s%s\n", s,
                    WIFEXITED(status) ? "exit" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), argv0, name, s,
                    (s & 1) ? "2" : "1", certs ? " -c " : "", certs ? certs : "");
            return 1;
        }
        ran++;
    }
    fprintf(stderr, "%d seed(s) passed\n", ran);
    return ran ? 0 : 1;
} /* t_stress_seeds */
