/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: unit block */
/*
 * The NVMe pieces shared by the passthrough and VFIO backends, against the
 * in-memory controller of nvme_model.h: command layouts, PRP lists (one
 * page, two, a list, a list over several list pages, misaligned pieces),
 * controller bring-up, Identify, I/O queue creation, and many more
 * commands than queue slots (the queues wrap, the phase flips) with every
 * byte checked.
 */
#include <errno.h>

#include <linux/nvme_ioctl.h>

#include "block/nvme.h"
#include "nvme_model.h"
#include "t.h"

static struct nvme_model model;

static void
model_sleep(unsigned ms)
{
    (void) ms;
    model_run(&model);
}

static void *
page_alloc(size_t bytes)
{
    void *p = NULL;

    T_EQ(posix_memalign(&p, NVME_PAGE, bytes), 0);
    memset(p, 0, bytes);
    return p;
}

/* Run one admin command to completion; returns its status. */
static uint16_t
admin_cmd(struct nvme_qpair *aq, struct nvme_sqe *c, uint16_t cid)
{
    const struct nvme_cqe *e;
    uint16_t st;

    c->cid = cid;
    T_EQ(nvme_qpair_push(aq, c), 0);
    nvme_qpair_ring(aq);
    model_run(&model);
    e = nvme_qpair_peek(aq);
    T_OK(e != NULL);
    T_EQ(e->cid, cid);
    st = nvme_cqe_status(e);
    nvme_qpair_pop(aq);
    nvme_qpair_cq_done(aq);
    return st;
}

static void
builders(void)
{
    struct nvme_sqe c;

    nvme_cmd_rw(&c, 1, 3, 0x123456789aull, 8, 1);
    T_EQ(c.opcode, NVME_CMD_WRITE);
    T_EQ(c.nsid, 3);
    T_EQ(c.cdw10, 0x3456789a);
    T_EQ(c.cdw11, 0x12);
    T_EQ(c.cdw12 & 0xffff, 7);  /* 0-based */
    T_OK(c.cdw12 & (1u << 30)); /* FUA */
    nvme_cmd_rw(&c, 0, 1, 0, 1, 0);
    T_EQ(c.opcode, NVME_CMD_READ);
    T_EQ(c.cdw12, 0);
    nvme_cmd_deallocate(&c, 1, 0x1000, 2);
    T_EQ(c.cdw10, 1);
    T_EQ(c.cdw11, 4);
    nvme_cmd_create_sq(&c, 2, 64, 0x8000, 1);
    T_EQ(c.cdw10, (63u << 16) | 2);
    T_EQ(c.cdw11, (1u << 16) | 1);
    nvme_cmd_create_cq(&c, 1, 32, 0x9000, 1, 5);
    T_EQ(c.cdw10, (31u << 16) | 1);
    T_EQ(c.cdw11, 3u | (5u << 16));
    {
        struct nvme_uring_cmd u;

        nvme_cmd_rw(&c, 1, 7, 0x100000002ull, 16, 1);
        nvme_to_uring_cmd(&u, &c, 0xdead000, 8192);
        T_EQ(u.opcode, NVME_CMD_WRITE);
        T_EQ(u.nsid, 7);
        T_EQ_U(u.addr, 0xdead000);
        T_EQ(u.data_len, 8192);
        T_EQ(u.cdw10, 2);
        T_EQ(u.cdw11, 1);
        T_EQ(u.cdw12, 15u | (1u << 30));
    }
    T_EQ(nvme_status_errno(0), 0);
    T_EQ(nvme_status_errno(0x80), EINVAL);
    T_EQ(nvme_status_errno(0x81), ENOSPC);
    T_EQ(nvme_status_errno(0x04), EIO);
}

static void
prps(void)
{
    uint64_t *list = page_alloc(2 * NVME_PAGE);
    uint64_t list_iova = 0x7000000;
    struct nvme_sqe c;
    struct nvme_seg s[3];

    /* within one page (with an offset) */
    s[0] = (struct nvme_seg){0x10000 + 512, 2048};
    T_EQ(nvme_prp_build(&c, s, 1, list, list_iova, 2), 0);
    T_EQ_U(c.prp1, 0x10000 + 512);
    T_EQ_U(c.prp2, 0);
    /* crossing into a second page: prp2 is that page */
    s[0] = (struct nvme_seg){0x10000 + 2048, 4096};
    T_EQ(nvme_prp_build(&c, s, 1, list, list_iova, 2), 0);
    T_EQ_U(c.prp2, 0x11000);
    /* three pages in two pieces: a list */
    s[0] = (struct nvme_seg){0x20000 + 1024, 3072};
    s[1] = (struct nvme_seg){0x50000, 8192};
    T_EQ(nvme_prp_build(&c, s, 2, list, list_iova, 2), 0);
    T_EQ_U(c.prp1, 0x20000 + 1024);
    T_EQ_U(c.prp2, list_iova);
    T_EQ_U(list[0], 0x50000);
    T_EQ_U(list[1], 0x51000);
    /* 600 pages: the first list page's last entry links to the second */
    s[0] = (struct nvme_seg){0x1000000, 600ull * NVME_PAGE};
    T_EQ(nvme_prp_build(&c, s, 1, list, list_iova, 2), 0);
    T_EQ_U(list[0], 0x1001000);
    T_EQ_U(list[510], 0x1000000 + 511ull * NVME_PAGE);
    T_EQ_U(list[511], list_iova + NVME_PAGE); /* the link */
    T_EQ_U(list[512], 0x1000000 + 512ull * NVME_PAGE);
    T_EQ_U(list[512 + 87], 0x1000000 + 599ull * NVME_PAGE);
    /* 513 pages: 512 list entries, the last slot holds data, no link */
    s[0] = (struct nvme_seg){0x1000000, 513ull * NVME_PAGE};
    T_EQ(nvme_prp_build(&c, s, 1, list, list_iova, 1), 0);
    T_EQ_U(list[511], 0x1000000 + 512ull * NVME_PAGE);
    /* 514: needs a second list page */
    s[0] = (struct nvme_seg){0x1000000, 514ull * NVME_PAGE};
    T_EQ(nvme_prp_build(&c, s, 1, list, list_iova, 1), -E2BIG);
    /* holes PRPs cannot express */
    s[0] = (struct nvme_seg){0x20000, 4096};
    s[1] = (struct nvme_seg){0x30000 + 512, 4096}; /* second piece not page-aligned */
    T_EQ(nvme_prp_build(&c, s, 2, list, list_iova, 2), -EINVAL);
    s[0] = (struct nvme_seg){0x20000, 1024}; /* first piece ends mid-page */
    s[1] = (struct nvme_seg){0x30000, 4096};
    T_EQ(nvme_prp_build(&c, s, 2, list, list_iova, 2), -EINVAL);
    s[0] = (struct nvme_seg){0x20001, 512}; /* not dword aligned */
    T_EQ(nvme_prp_build(&c, s, 1, list, list_iova, 2), -EINVAL);
    free(list);
}

#define QENTRIES 8
#define NCMDS    1000

static void
controller(void)
{
    struct nvme_regs regs = {.bar = model.bar, .sleep_ms = model_sleep};
    struct nvme_qpair aq, iq;
    struct nvme_sqe *asq = page_alloc(NVME_PAGE), *isq = page_alloc(NVME_PAGE), c;
    struct nvme_cqe *acq = page_alloc(NVME_PAGE), *icq = page_alloc(NVME_PAGE);
    uint8_t *idc = page_alloc(NVME_PAGE), *idn = page_alloc(NVME_PAGE);
    struct nvme_ns_info info;
    uint64_t *lists = page_alloc(QENTRIES * NVME_PAGE);
    uint8_t *bufs = page_alloc(QENTRIES * 9 * NVME_PAGE); /* 32 KiB + room to shift */
    uint8_t *shadow;
    int done[NCMDS] = {0};
    int submitted = 0, completed = 0, laps = 0;
    uint64_t seed = 99;

    model_init(&model, 4096, 512); /* 2 MiB */
    shadow = calloc(4096, 512);
    T_EQ(nvme_ctrl_enable(&regs, &aq, 16, asq, (uintptr_t) asq, acq, (uintptr_t) acq), 0);
    T_EQ(regs.dstrd, 4);

    nvme_cmd_identify(&c, 1, 0, (uintptr_t) idc);
    T_EQ(admin_cmd(&aq, &c, 1), 0);
    nvme_cmd_identify(&c, 0, 1, (uintptr_t) idn);
    T_EQ(admin_cmd(&aq, &c, 2), 0);
    nvme_parse_identify(idc, idn, NVME_PAGE, &info);
    T_EQ_U(info.blocks, 4096);
    T_EQ(info.block_size, 512);
    T_EQ_U(info.max_transfer, 128u << 10);
    T_EQ(info.write_zeroes, 1);
    T_EQ(info.deallocate, 1);
    {
        /* format index 18 (FLBAS bits 6:5 = 1, 3:0 = 2) with 4 KiB blocks,
         * and an MDTS too large to shift: parsed without overflow */
        uint8_t cid[4096], nid[4096];
        struct nvme_ns_info big;

        memcpy(cid, idc, sizeof(cid));
        memcpy(nid, idn, sizeof(nid));
        nid[26] = (1u << 5) | 2u;
        nid[128 + 4 * 2 + 2] = 9;   /* format 2: 512 B, the wrong one */
        nid[128 + 4 * 18 + 2] = 12; /* format 18: 4 KiB */
        cid[77] = 255;
        nvme_parse_identify(cid, nid, NVME_PAGE, &big);
        T_EQ(big.block_size, 4096);
        T_EQ_U(big.max_transfer, (uint64_t) NVME_PAGE << 20);
    }

    nvme_cmd_create_cq(&c, 1, QENTRIES, (uintptr_t) icq, 0, 0);
    T_EQ(admin_cmd(&aq, &c, 3), 0);
    nvme_cmd_create_sq(&c, 1, QENTRIES, (uintptr_t) isq, 1);
    T_EQ(admin_cmd(&aq, &c, 4), 0);
    nvme_cmd_create_sq(&c, 9, QENTRIES, (uintptr_t) isq, 1);
    T_OK(admin_cmd(&aq, &c, 5) != 0); /* a queue id the controller lacks */
    nvme_qpair_init(&iq, 1, QENTRIES, isq, icq, nvme_doorbell(&regs, 1, 0),
                    nvme_doorbell(&regs, 1, 1));

    /* NCMDS writes of 1..32 KiB at random LBAs through an 8-slot queue:
     * the queues wrap ~125 times; one slot always stays free */
    while (completed < NCMDS) {
        const struct nvme_cqe *e;
        int pushed = 0;

        while (submitted < NCMDS && nvme_qpair_space(&iq) > 0) {
            int slot = submitted % QENTRIES;
            uint8_t *b = bufs + (size_t) slot * 9 * NVME_PAGE;
            struct nvme_seg seg;
            uint32_t nlb;
            uint64_t lba;

            seed = seed * 6364136223846793005ull + 1;
            nlb = 1 + (uint32_t) ((seed >> 33) % 64); /* up to 32 KiB: PRP lists */
            lba = (seed >> 11) % (4096 - nlb);
            for (uint32_t k = 0; k < nlb * 512; k++) {
                b[k] = (uint8_t) (seed >> (k % 56)) ^ (uint8_t) k;
            }
            memcpy(shadow + lba * 512, b, nlb * 512);
            nvme_cmd_rw(&c, 1, 1, lba, nlb, 0);
            c.cid = (uint16_t) submitted;
            seg.iova = (uintptr_t) b + (slot % 2 ? 512 : 0); /* odd slots start mid-page */
            seg.len = nlb * 512ull;
            if (slot % 2) {
                memmove(b + 512, b, nlb * 512);
            }
            T_EQ(nvme_prp_build(&c, &seg, 1, lists + (size_t) slot * 512,
                                (uintptr_t) (lists + (size_t) slot * 512), 1),
                 0);
            T_EQ(nvme_qpair_push(&iq, &c), 0);
            submitted++;
            pushed++;
        }
        if (submitted < NCMDS) {
            T_EQ(nvme_qpair_push(&iq, &c), -EAGAIN); /* full: one slot stays empty */
        }
        if (pushed) {
            nvme_qpair_ring(&iq);
        }
        model_run(&model);
        while ((e = nvme_qpair_peek(&iq)) != NULL) {
            T_EQ(nvme_cqe_status(e), 0);
            T_OK(e->cid < NCMDS);
            T_EQ(done[e->cid], 0); /* exactly once */
            done[e->cid] = 1;
            if (iq.cq_head == QENTRIES - 1) {
                laps++;
            }
            nvme_qpair_pop(&iq);
            completed++;
        }
        nvme_qpair_cq_done(&iq);
    }
    T_GT(laps, 100);
    T_OK(memcmp(model.disk, shadow, 4096 * 512) == 0); /* every byte where it belongs */

    /* read it all back through the queue in 32 KiB pieces */
    for (uint64_t lba = 0; lba < 4096; lba += 64) {
        struct nvme_seg seg = {(uintptr_t) bufs, 64 * 512};
        const struct nvme_cqe *e;

        nvme_cmd_rw(&c, 0, 1, lba, 64, 0);
        c.cid = 7;
        T_EQ(nvme_prp_build(&c, &seg, 1, lists, (uintptr_t) lists, 1), 0);
        T_EQ(nvme_qpair_push(&iq, &c), 0);
        nvme_qpair_ring(&iq);
        model_run(&model);
        e = nvme_qpair_peek(&iq);
        T_OK(e != NULL);
        T_EQ(nvme_cqe_status(e), 0);
        nvme_qpair_pop(&iq);
        nvme_qpair_cq_done(&iq);
        T_OK(memcmp(bufs, shadow + lba * 512, 64 * 512) == 0);
    }
    /* out of range: the status says so, the queue goes on */
    {
        const struct nvme_cqe *e;

        nvme_cmd_rw(&c, 0, 1, 4095, 2, 0);
        c.cid = 8;
        c.prp1 = (uintptr_t) bufs;
        T_EQ(nvme_qpair_push(&iq, &c), 0);
        nvme_qpair_ring(&iq);
        model_run(&model);
        e = nvme_qpair_peek(&iq);
        T_OK(e != NULL);
        T_EQ(nvme_status_errno(nvme_cqe_status(e)), EINVAL);
        nvme_qpair_pop(&iq);
        nvme_qpair_cq_done(&iq);
    }
    nvme_ctrl_disable(&regs);
    T_EQ(*model_reg(&model, NVME_REG_CSTS) & 1, 0);

    model_free(&model);
    free(shadow);
    free(asq);
    free(isq);
    free(acq);
    free(icq);
    free(idc);
    free(idn);
    free(lists);
    free(bufs);
}

int
main(void)
{
    builders();
    prps();
    controller();
    return 0;
}
