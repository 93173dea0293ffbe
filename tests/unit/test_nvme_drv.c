/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: unit block */
/*
 * The user-space NVMe driver core (what the VFIO backend runs) against the
 * in-memory controller: bring-up and Identify, an I/O queue pair, reads
 * and writes in several pieces through PRP lists, a full queue, memory
 * that is not mapped for DMA, write-zeroes, deallocate, flush, an
 * out-of-range request, and queue teardown.  Device addresses are process
 * addresses of memory the test "maps" (an arena), as VFIO maps slabs.
 */
#include <errno.h>

#include "block/nvme.h"
#include "nvme_model.h"
#include "t.h"

static struct nvme_model model;
static uint8_t *arena; /* "mapped for DMA" */
static size_t arena_len = 16 << 20, arena_used;

static void
model_sleep(unsigned ms)
{
    (void) ms;
    model_run(&model);
}

static void *
dma_alloc(void *arg, size_t bytes, uint64_t *iova)
{
    void *p = NULL;

    if (posix_memalign(&p, NVME_PAGE, bytes)) {
        return NULL;
    }
    memset(p, 0, bytes);
    *iova = (uintptr_t) p;
    return p;
}

static void
dma_free(void *arg, void *p, size_t bytes)
{
    free(p);
}

static int
dma_translate(void *arg, const void *p, uint64_t len, uint64_t *iova)
{
    if ((const uint8_t *) p < arena || (const uint8_t *) p + len > arena + arena_len) {
        return -1;
    }
    *iova = (uintptr_t) p;
    return 0;
}

static uint8_t *
arena_get(size_t bytes)
{
    uint8_t *p = arena + arena_used;

    arena_used += (bytes + NVME_PAGE - 1) & ~(size_t) (NVME_PAGE - 1);
    T_OK(arena_used <= arena_len);
    return p;
}

struct req {
    int done, status;
};

static void
req_done(void *ctx, int status, void *arg)
{
    struct req *r = ctx;

    r->done++;
    r->status = status;
    (*(int *) arg)++;
}

static int
run_until(struct nvme_ioq *q, int *count, int want)
{
    for (int spins = 0; *count < want && spins < 1000; spins++) {
        nvme_drv_ring(q);
        model_run(&model);
        nvme_drv_reap(q, req_done, count);
    }
    return *count;
}

int
main(void)
{
    struct nvme_ctrl c;
    struct nvme_ioq q;
    struct nvme_seg segs[3];
    struct req r[64];
    int count = 0;
    uint8_t *a, *b, *d;

    T_EQ(posix_memalign((void **) &arena, NVME_PAGE, arena_len), 0);
    model_init(&model, 8192, 512); /* 4 MiB namespace */
    memset(&c, 0, sizeof(c));
    c.regs.bar = model.bar;
    c.regs.sleep_ms = model_sleep;
    c.dma = (struct nvme_dma){dma_alloc, dma_free, dma_translate, NULL};
    T_EQ(nvme_drv_init(&c, 1), 0);
    T_EQ_U(c.ns.blocks, 8192);
    T_EQ(c.ns.block_size, 512);
    T_EQ(c.max_entries, 64);
    T_EQ(nvme_drv_ioq_create(&c, &q, 16, 0), 0);
    T_EQ(q.qid, 1);

    /* a write in three pieces (first starts mid-page, last ends mid-page) */
    a = arena_get(4 * NVME_PAGE);
    b = arena_get(8 * NVME_PAGE);
    for (unsigned i = 0; i < 4 * NVME_PAGE; i++) {
        a[i] = (uint8_t) (i * 13);
    }
    for (unsigned i = 0; i < 8 * NVME_PAGE; i++) {
        b[i] = (uint8_t) (i * 7 + 1);
    }
    segs[0] = (struct nvme_seg){(uintptr_t) a + 3584, 512};           /* to the page end */
    segs[1] = (struct nvme_seg){(uintptr_t) b, 6 * NVME_PAGE};        /* whole pages */
    segs[2] = (struct nvme_seg){(uintptr_t) a + 2 * NVME_PAGE, 1024}; /* ends mid-page */
    memset(r, 0, sizeof(r));
    T_EQ(nvme_drv_submit(&q, NVME_DRV_WRITE, segs, 3, 512 * 100, 512 + 6 * NVME_PAGE + 1024, 1,
                         &r[0]),
         0);
    T_EQ(run_until(&q, &count, 1), 1);
    T_EQ(r[0].done, 1);
    T_EQ(r[0].status, 0);
    T_OK(memcmp(model.disk + 512 * 100, a + 3584, 512) == 0);
    T_OK(memcmp(model.disk + 512 * 101, b, 6 * NVME_PAGE) == 0);
    T_OK(memcmp(model.disk + 512 * 101 + 6 * NVME_PAGE, a + 2 * NVME_PAGE, 1024) == 0);

    /* read it back in one piece */
    d = arena_get(8 * NVME_PAGE);
    segs[0] = (struct nvme_seg){(uintptr_t) d, 512 + 6 * NVME_PAGE + 1024};
    T_EQ(nvme_drv_submit(&q, NVME_DRV_READ, segs, 1, 512 * 100, segs[0].len, 0, &r[1]), 0);
    T_EQ(run_until(&q, &count, 2), 2);
    T_EQ(r[1].status, 0);
    T_OK(memcmp(d, model.disk + 512 * 100, segs[0].len) == 0);

    /* not mapped for DMA; pieces PRPs cannot express; not whole blocks */
    {
        static uint8_t stack_page[NVME_PAGE] __attribute__((aligned(4096)));

        segs[0] = (struct nvme_seg){(uintptr_t) stack_page, NVME_PAGE};
        T_EQ(nvme_drv_submit(&q, NVME_DRV_READ, segs, 1, 0, NVME_PAGE, 0, &r[2]), -EINVAL);
        segs[0] = (struct nvme_seg){(uintptr_t) a, 1024};
        segs[1] = (struct nvme_seg){(uintptr_t) b, NVME_PAGE};
        T_EQ(nvme_drv_submit(&q, NVME_DRV_WRITE, segs, 2, 0, 1024 + NVME_PAGE, 0, &r[2]), -EINVAL);
        segs[0] = (struct nvme_seg){(uintptr_t) a, 100};
        T_EQ(nvme_drv_submit(&q, NVME_DRV_WRITE, segs, 1, 0, 100, 0, &r[2]), -EINVAL);
        T_EQ(q.outstanding, 0);
    }

    /* fill the queue: 15 fit (one slot stays empty), the 16th waits */
    for (int i = 0; i < 15; i++) {
        segs[0] = (struct nvme_seg){(uintptr_t) d, 512};
        T_EQ(nvme_drv_submit(&q, NVME_DRV_READ, segs, 1, 512ull * i, 512, 0, &r[10 + i]), 0);
    }
    T_EQ(nvme_drv_submit(&q, NVME_DRV_READ, segs, 1, 0, 512, 0, &r[30]), -EAGAIN);
    T_EQ(run_until(&q, &count, 17), 17);
    for (int i = 0; i < 15; i++) {
        T_EQ(r[10 + i].done, 1);
    }

    /* write-zeroes, deallocate, flush; out of range */
    T_EQ(nvme_drv_submit(&q, NVME_DRV_ZEROES, NULL, 0, 512 * 100, 512 * 4, 0, &r[31]), 0);
    T_EQ(nvme_drv_submit(&q, NVME_DRV_DEALLOCATE, NULL, 0, 512 * 200, 512 * 8, 0, &r[32]), 0);
    T_EQ(nvme_drv_submit(&q, NVME_DRV_FLUSH, NULL, 0, 0, 0, 0, &r[33]), 0);
    T_EQ(run_until(&q, &count, 20), 20);
    T_EQ(r[31].status + r[32].status + r[33].status, 0);
    for (int i = 0; i < 512 * 4; i++) {
        T_EQ(model.disk[512 * 100 + i], 0);
    }
    T_EQ_U(model.dealloc_calls, 1);
    segs[0] = (struct nvme_seg){(uintptr_t) d, 1024};
    T_EQ(nvme_drv_submit(&q, NVME_DRV_READ, segs, 1, 512ull * 8191, 1024, 0, &r[34]), -EINVAL);

    nvme_drv_ioq_destroy(&q);
    {
        /* a queue pair whose completions interrupt: vector = its qid */
        struct nvme_ioq iq;

        T_EQ(nvme_drv_ioq_create(&c, &iq, 16, 8), 0);
        T_EQ(iq.irq, 1);
        T_EQ(model.q[iq.qid].cq_cdw11 & 3u, 3u); /* contiguous, interrupts on */
        T_EQ(model.q[iq.qid].cq_cdw11 >> 16, iq.qid);
        nvme_drv_ioq_destroy(&iq);
        T_EQ(nvme_drv_ioq_create(&c, &iq, 16, 0), 0);
        T_EQ(iq.irq, 0);
        T_EQ(model.q[iq.qid].cq_cdw11 & 2u, 0u);
        nvme_drv_ioq_destroy(&iq);
        /* a device with fewer vectors than the queue id: polled, not refused */
        T_EQ(nvme_drv_ioq_create(&c, &iq, 16, 1), 0);
        T_EQ(iq.irq, 0);
        T_EQ(model.q[iq.qid].cq_cdw11 & 2u, 0u);
        nvme_drv_ioq_destroy(&iq);
    }
    T_EQ(model.q[1].live, 0);
    nvme_drv_fini(&c);
    T_EQ(*model_reg(&model, NVME_REG_CSTS) & 1, 0);
    model_free(&model);
    free(arena);
    return 0;
}
