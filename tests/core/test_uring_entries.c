/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * core.md §2.1: io_uring_entries is the submission queue depth of each
 * thread's io_uring, also of the ring a loop waits on with the io_uring
 * mechanism (which the io_uring transports share).  That ring was 1024
 * deep whatever the setting (helper-90's audit).  Read back from
 * /proc/self/fdinfo (SqMask = entries - 1).  With an argument, that many
 * entries: over the kernel's maximum (32768) the ring gets the maximum;
 * it failed, and the loop and the io_uring transports fell back to epoll
 * or were unavailable (helper-92).  Skips where the kernel or the build
 * has no io_uring.
 */
#include "t_loop.h"

#include <dirent.h>
#include <linux/io_uring.h>
#include <sys/syscall.h>

/* How many io_uring instances this process has; each one's SqMask must be
 * mask. */
static int
rings_with_mask(unsigned long mask)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int rings = 0;

    T_OK(d != NULL);
    while ((e = readdir(d)) != NULL) {
        char path[300], link[64], line[128];
        ssize_t n;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
        n = readlink(path, link, sizeof(link) - 1);
        if (n <= 0) {
            continue;
        }
        link[n] = 0;
        if (strcmp(link, "anon_inode:[io_uring]") != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/self/fdinfo/%s", e->d_name);
        f = fopen(path, "r");
        T_OK(f != NULL);
        while (fgets(line, sizeof(line), f)) {
            unsigned long m;

            if (sscanf(line, "SqMask: %lx", &m) == 1) {
                fprintf(stderr, "io_uring fd %s: SqMask 0x%lx\n", e->d_name, m);
                T_EQ(m, mask);
                rings++;
            }
        }
        fclose(f);
    }
    closedir(d);
    return rings;
}

static void
nothing(struct evpl *evpl, void *arg)
{
    (void) evpl;
    (void) arg;
} /* nothing */

int
main(int argc, char **argv)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    unsigned entries = argc > 1 ? (unsigned) strtoul(argv[1], NULL, 0) : 256;
    unsigned long mask = (entries > 32768 ? 32768 : entries) - 1;
    struct evpl *evpl;
    int rings;

    evpl_global_config_set_io_uring_entries(cfg, entries);
    evpl_global_config_set_core_mech(cfg, EVPL_CORE_MECH_IO_URING);
#ifndef T_BUILD_HAS_IO_URING
    fprintf(stderr, "SKIP: this build has no io_uring\n");
    return 77;
#endif
    {
        struct io_uring_params p;
        int fd;

        memset(&p, 0, sizeof(p));
        fd = (int) syscall(__NR_io_uring_setup, 1, &p);
        if (fd < 0) {
            fprintf(stderr, "SKIP: no io_uring here\n");
            return 77;
        }
        close(fd);
    }
    evpl_init(cfg);
    evpl = evpl_create(NULL);
    {
        /* one pass that cannot sleep: an idle loop past its spin window
         * (the machine busy between create and continue) waits for an
         * event, and there is none (a CI run timed out here) */
        struct evpl_deferral d;

        evpl_deferral_init(&d, nothing, NULL);
        evpl_defer(evpl, &d);
        evpl_continue(evpl);
    }
    rings = rings_with_mask(mask);
    T_GT(rings, 0); /* (io_uring works here: the loop must wait on it) */
    evpl_destroy(evpl);
    T_OK(evpl_protocol_available(EVPL_STREAM_IO_URING_TCP));
    fprintf(stderr, "ok: %d ring(s) of %lu entries\n", rings, mask + 1);
    return 0;
}
