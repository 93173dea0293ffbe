/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: unit */
/*
 * A test framework registers with the memory layer and checks that every
 * slab, existing and future, is registered once, and that every iovec the
 * allocator returns resolves in O(1) to the handle of a registered slab
 * that contains it.  Also: a framework whose registration fails makes the
 * allocation fail cleanly.
 */
#include "mem/mem.h"
#include "core/internal.h"

#include "t.h"

#define MAX_SLABS 64

struct reg {
    char *base;
    uint64_t size;
    int live;
    int magic;
};

static struct reg regs[MAX_SLABS];
static int nregs;
static int fail_next;

static void *
reg_slab(void *arg, void *base, uint64_t size)
{
    (void) arg;
    if (fail_next) {
        fail_next = 0;
        return NULL;
    }
    T_LT(nregs, MAX_SLABS);
    for (int i = 0; i < nregs; i++) {
        T_OK(!(regs[i].live && regs[i].base == base)); /* never twice */
    }
    regs[nregs] = (struct reg){base, size, 1, 0x7e57};
    return &regs[nregs++];
}

static void
unreg_slab(void *arg, void *base, uint64_t size, void *handle)
{
    struct reg *r = handle;

    (void) arg;
    T_EQ_PTR(r->base, base);
    T_EQ_U(r->size, size);
    r->live = 0;
}

static const struct evpl_mem_framework fw = {
    .name = "test",
    .register_slab = reg_slab,
    .unregister_slab = unreg_slab,
};

static void
verify(const struct evpl_iovec *iov, int id)
{
    struct reg *r = evpl__iovec_mem_handle(iov, id);

    T_OK(r != NULL);
    T_EQ(r->magic, 0x7e57);
    T_OK(r->live);
    T_OK((char *) iov->data >= r->base);
    T_OK((char *) iov->data + iov->length <= r->base + r->size);
}

int
main(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();
    struct evpl_iovec iov[64], g;
    struct evpl *evpl;
    int id, n;

    /* small slabs so the test crosses several of them */
    evpl_global_config_set_buffer_size(cfg, 64 * 1024);
    evpl_global_config_set_slab_size(cfg, 256 * 1024);
    evpl_init(cfg);
    evpl = evpl_create(NULL);

    /* a slab that exists before the framework registers */
    T_EQ(evpl_iovec_alloc(evpl, 1000, 0, 1, 0, &iov[0]), 1);
    id = evpl__mem_framework_register(&fw);
    T_GE(id, 0);
    T_EQ(nregs, 1);
    verify(&iov[0], id);
    evpl_iovec_release(evpl, &iov[0]);

    /* future slabs: 40 whole buffers span 10 slabs */
    for (int i = 0; i < 40; i++) {
        T_EQ(evpl_iovec_alloc(evpl, 64 * 1024, 0, 1, i & 1 ? EVPL_IOVEC_FLAG_SHARED : 0, &iov[i]),
             1);
        verify(&iov[i], id);
    }
    T_GE(nregs, 10);
    n = evpl_iovec_alloc(evpl, 200 * 1024, 0, 8, 0, &iov[40]);
    T_EQ(n, 4);
    for (int i = 40; i < 44; i++) {
        verify(&iov[i], id);
    }
    evpl_iovec_alloc_global(evpl, &g);
    verify(&g, id);
    T_EQ(t_metric("evpl_allocator_total_slabs"), nregs);

    /* registration failure: the new slab is not used, the call fails cleanly */
    {
        struct evpl_iovec more[8];
        int got = 0;

        fail_next = 1;
        /* drain the free buffers until a new slab is needed */
        while (got < 8 && evpl_iovec_alloc(evpl, 64 * 1024, 0, 1, 0, &more[got]) == 1) {
            verify(&more[got], id);
            got++;
        }
        T_LT(got, 8);
        T_EQ(fail_next, 0); /* the failing registration was attempted */
        evpl_iovecs_release(evpl, more, got);
    }

    evpl_iovecs_release(evpl, iov, 44);
    evpl_iovec_release(evpl, &g);

    evpl__mem_framework_unregister(id);
    for (int i = 0; i < nregs; i++) {
        T_OK(!regs[i].live);
    }
    evpl_destroy(evpl);
    return 0;
}
