/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The user-space NVMe driver core: controller bring-up, Identify, I/O
 * queue pairs, requests with PRP lists, completion reaping.  It touches
 * the device only through a register window and a DMA allocator (VFIO in
 * production, the in-memory model in the unit tests).
 */
#include <errno.h>
#include <stdlib.h>

#include "block/nvme.h"

#define ADMIN_ENTRIES 32

int
nvme_drv_admin(struct nvme_ctrl *c, struct nvme_sqe *cmd)
{
    const struct nvme_cqe *e;
    uint16_t status;
    unsigned waited = 0;

    cmd->cid = ++c->admin_cid;
    if (nvme_qpair_push(&c->admin, cmd) < 0) {
        return -EAGAIN;
    }
    nvme_qpair_ring(&c->admin);
    while (!(e = nvme_qpair_peek(&c->admin))) {
        if (waited++ > 5000) {
            return -ETIMEDOUT;
        }
        c->regs.sleep_ms(1);
    }
    status = nvme_cqe_status(e);
    nvme_qpair_pop(&c->admin);
    nvme_qpair_cq_done(&c->admin);
    return -nvme_status_errno(status);
} /* nvme_drv_admin */

int
nvme_drv_init(struct nvme_ctrl *c, uint32_t nsid)
{
    struct nvme_sqe cmd;
    uint64_t asq_iova, acq_iova;
    uint8_t *ctrl_id;
    int rc;

    c->nsid = nsid;
    c->asq = c->dma.alloc(c->dma.arg, NVME_PAGE * 2, &asq_iova);
    c->acq = c->dma.alloc(c->dma.arg, NVME_PAGE, &acq_iova);
    c->scratch = c->dma.alloc(c->dma.arg, NVME_PAGE * 2, &c->scratch_iova);
    if (!c->asq || !c->acq || !c->scratch) {
        nvme_drv_fini(c);
        return -ENOMEM;
    }
    c->max_entries = (uint16_t) ((nvme_rd64(&c->regs, NVME_REG_CAP) & 0xffff) + 1);
    rc = nvme_ctrl_enable(&c->regs, &c->admin, ADMIN_ENTRIES, c->asq, asq_iova, c->acq, acq_iova);
    if (rc < 0) {
        nvme_drv_fini(c);
        return rc;
    }
    ctrl_id = c->scratch + NVME_PAGE;
    nvme_cmd_identify(&cmd, 1, 0, c->scratch_iova + NVME_PAGE);
    rc = nvme_drv_admin(c, &cmd);
    if (rc == 0) {
        nvme_cmd_identify(&cmd, 0, nsid, c->scratch_iova);
        rc = nvme_drv_admin(c, &cmd);
    }
    if (rc < 0) {
        nvme_drv_fini(c);
        return rc;
    }
    nvme_parse_identify(ctrl_id, c->scratch, NVME_PAGE, &c->ns);
    if (c->ns.blocks == 0) {
        nvme_drv_fini(c);
        return -ENODEV; /* no such namespace */
    }
    return 0;
} /* nvme_drv_init */

void
nvme_drv_fini(struct nvme_ctrl *c)
{
    if (c->asq && c->acq) {
        nvme_ctrl_disable(&c->regs);
    }
    if (c->asq) {
        c->dma.free(c->dma.arg, c->asq, NVME_PAGE * 2);
    }
    if (c->acq) {
        c->dma.free(c->dma.arg, c->acq, NVME_PAGE);
    }
    if (c->scratch) {
        c->dma.free(c->dma.arg, c->scratch, NVME_PAGE * 2);
    }
    c->asq = NULL;
    c->acq = NULL;
    c->scratch = NULL;
} /* nvme_drv_fini */

int
nvme_drv_ioq_create(struct nvme_ctrl *c, struct nvme_ioq *q, uint16_t entries, uint32_t irq_vectors)
{
    struct nvme_sqe cmd;
    uint64_t sq_iova, cq_iova;
    struct nvme_sqe *sq;
    struct nvme_cqe *cq;
    int qid, rc;

    for (qid = 1; qid < 32 && (c->qids_used & (1u << qid)); qid++) {
    }
    if (qid == 32) {
        return -EBUSY;
    }
    if (entries > c->max_entries) {
        entries = c->max_entries;
    }
    memset(q, 0, sizeof(*q));
    q->ctrl = c;
    q->qid = (uint16_t) qid;
    q->entries = entries;
    sq = c->dma.alloc(c->dma.arg, (size_t) entries * sizeof(*sq), &sq_iova);
    cq = c->dma.alloc(c->dma.arg, (size_t) entries * sizeof(*cq), &cq_iova);
    q->lists = c->dma.alloc(c->dma.arg, (size_t) entries * NVME_DRV_LIST_PAGES * NVME_PAGE,
                            &q->lists_iova);
    q->ranges = c->dma.alloc(c->dma.arg, (size_t) entries * 16, &q->ranges_iova);
    q->ctx = calloc(entries, sizeof(*q->ctx));
    q->free_cids = calloc(entries, sizeof(*q->free_cids));
    if (!sq || !cq || !q->lists || !q->ranges || !q->ctx || !q->free_cids) {
        rc = -ENOMEM;
        goto fail;
    }
    /* the completion queue signals MSI-X vector qid, if the device has it */
    q->irq = q->qid < irq_vectors;
    nvme_cmd_create_cq(&cmd, q->qid, entries, cq_iova, q->irq, q->irq ? q->qid : 0);
    rc = nvme_drv_admin(c, &cmd);
    if (rc == 0) {
        nvme_cmd_create_sq(&cmd, q->qid, entries, sq_iova, q->qid);
        rc = nvme_drv_admin(c, &cmd);
    }
    if (rc < 0) {
        goto fail;
    }
    nvme_qpair_init(&q->qp, q->qid, entries, sq, cq, nvme_doorbell(&c->regs, q->qid, 0),
                    nvme_doorbell(&c->regs, q->qid, 1));
    for (uint16_t i = 0; i < entries; i++) {
        q->free_cids[q->nfree++] = (uint16_t) (entries - 1 - i);
    }
    c->qids_used |= 1u << qid;
    return 0;
fail:
    if (sq) {
        c->dma.free(c->dma.arg, sq, (size_t) entries * sizeof(*sq));
    }
    if (cq) {
        c->dma.free(c->dma.arg, cq, (size_t) entries * sizeof(*cq));
    }
    if (q->lists) {
        c->dma.free(c->dma.arg, q->lists, (size_t) entries * NVME_DRV_LIST_PAGES * NVME_PAGE);
    }
    if (q->ranges) {
        c->dma.free(c->dma.arg, q->ranges, (size_t) entries * 16);
    }
    free(q->ctx);
    free(q->free_cids);
    return rc;
} /* nvme_drv_ioq_create */

void
nvme_drv_ioq_destroy(struct nvme_ioq *q)
{
    struct nvme_ctrl *c = q->ctrl;
    struct nvme_sqe cmd;

    /* delete SQ (0x00) then CQ (0x04) */
    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = 0x00;
    cmd.cdw10 = q->qid;
    (void) nvme_drv_admin(c, &cmd);
    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = 0x04;
    cmd.cdw10 = q->qid;
    (void) nvme_drv_admin(c, &cmd);
    c->qids_used &= ~(1u << q->qid);
    c->dma.free(c->dma.arg, q->qp.sq, (size_t) q->entries * sizeof(struct nvme_sqe));
    c->dma.free(c->dma.arg, q->qp.cq, (size_t) q->entries * sizeof(struct nvme_cqe));
    c->dma.free(c->dma.arg, q->lists, (size_t) q->entries * NVME_DRV_LIST_PAGES * NVME_PAGE);
    c->dma.free(c->dma.arg, q->ranges, (size_t) q->entries * 16);
    free(q->ctx);
    free(q->free_cids);
} /* nvme_drv_ioq_destroy */

int
nvme_drv_submit(struct nvme_ioq *q, enum nvme_drv_op op, const struct nvme_seg *segs, int nsegs,
                uint64_t offset, uint64_t length, int fua, void *ctx)
{
    struct nvme_ctrl *c = q->ctrl;
    uint32_t bs = c->ns.block_size;
    struct nvme_sqe cmd;
    uint16_t cid;
    int rc;

    if (!q->nfree || nvme_qpair_space(&q->qp) == 0) {
        return -EAGAIN;
    }
    if ((offset | length) % bs || (op != NVME_DRV_FLUSH && length == 0) ||
        (op != NVME_DRV_FLUSH && (offset + length) / bs > c->ns.blocks) ||
        (op <= NVME_DRV_WRITE && length / bs > 65536)) {
        return -EINVAL;
    }
    cid = q->free_cids[q->nfree - 1];
    switch (op) {
        case NVME_DRV_READ:
        case NVME_DRV_WRITE: {
            struct nvme_seg dev[64];

            if (nsegs < 1 || nsegs > 64) {
                return -EINVAL;
            }
            for (int i = 0; i < nsegs; i++) {
                /* the device sees device addresses: memory must be mapped */
                if (c->dma.translate(c->dma.arg, (const void *) (uintptr_t) segs[i].iova,
                                     segs[i].len, &dev[i].iova) < 0) {
                    return -EINVAL;
                }
                dev[i].len = segs[i].len;
            }
            nvme_cmd_rw(&cmd, op == NVME_DRV_WRITE, c->nsid, offset / bs, (uint32_t) (length / bs),
                        fua);
            rc = nvme_prp_build(&cmd, dev, nsegs,
                                q->lists + (size_t) cid * NVME_DRV_LIST_PAGES * (NVME_PAGE / 8),
                                q->lists_iova + (uint64_t) cid * NVME_DRV_LIST_PAGES * NVME_PAGE,
                                NVME_DRV_LIST_PAGES);
            if (rc < 0) {
                return rc;
            }
            break;
        }
        case NVME_DRV_FLUSH:
            nvme_cmd_flush(&cmd, c->nsid);
            break;
        case NVME_DRV_ZEROES:
            if (length / bs > 65536) {
                return -EINVAL;
            }
            nvme_cmd_write_zeroes(&cmd, c->nsid, offset / bs, (uint32_t) (length / bs));
            break;
        case NVME_DRV_DEALLOCATE: {
            struct nvme_dsm_range *r = (struct nvme_dsm_range *) (q->ranges + (size_t) cid * 2);

            if (length / bs > UINT32_MAX) {
                return -EINVAL;
            }
            r->cattr = 0;
            r->nlb = (uint32_t) (length / bs);
            r->slba = offset / bs;
            nvme_cmd_deallocate(&cmd, c->nsid, q->ranges_iova + (uint64_t) cid * 16, 1);
            break;
        }
        default:
            return -EINVAL;
    }
    cmd.cid = cid;
    if (nvme_qpair_push(&q->qp, &cmd) < 0) {
        return -EAGAIN;
    }
    q->nfree--;
    q->ctx[cid] = ctx;
    q->pending_ring = 1;
    q->outstanding++;
    return 0;
} /* nvme_drv_submit */

void
nvme_drv_ring(struct nvme_ioq *q)
{
    if (q->pending_ring) {
        q->pending_ring = 0;
        nvme_qpair_ring(&q->qp);
    }
} /* nvme_drv_ring */

int
nvme_drv_reap(struct nvme_ioq *q, void (*done)(void *ctx, int status, void *arg), void *arg)
{
    const struct nvme_cqe *e;
    int n = 0, popped = 0;

    while ((e = nvme_qpair_peek(&q->qp)) != NULL) {
        uint16_t cid = e->cid;
        int status = nvme_status_errno(nvme_cqe_status(e));
        void *ctx;

        nvme_qpair_pop(&q->qp);
        popped++;
        if (cid >= q->entries || !q->ctx[cid]) {
            continue; /* not ours (a broken device): ignore it */
        }
        ctx = q->ctx[cid];
        q->ctx[cid] = NULL;
        q->free_cids[q->nfree++] = cid;
        q->outstanding--;
        n++;
        done(ctx, status, arg);
    }
    if (popped) {
        nvme_qpair_cq_done(&q->qp);
    }
    return n;
} /* nvme_drv_reap */
