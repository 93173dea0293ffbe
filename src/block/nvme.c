/* SPDX-License-Identifier: LGPL-2.1-only */
/* Shared NVMe pieces (see nvme.h). */
#include <errno.h>

#include "block/nvme.h"

int
nvme_status_errno(uint16_t status)
{
    uint16_t sct = (status >> 8) & 0x7, sc = status & 0xff;

    if (status == 0) {
        return 0;
    }
    if (sct == 0) {
        switch (sc) {
            case 0x02: /* invalid field */
            case 0x80: /* LBA out of range */
                return EINVAL;
            case 0x81: /* capacity exceeded */
                return ENOSPC;
            case 0x07: /* aborted: requested */
                return ECANCELED;
            default:
                break;
        }
    }
    if (sct == 2 && sc == 0x82) {
        return EROFS; /* write to a read-only range */
    }
    return EIO;
} /* nvme_status_errno */

int
nvme_prp_build(struct nvme_sqe *c, const struct nvme_seg *segs, int nsegs, uint64_t *list,
               uint64_t list_iova, int list_pages)
{
    uint64_t pages[4096];
    int npages = 0, slot = 0, page = 0;
    const int per_page = NVME_PAGE / 8;

    if (nsegs < 1) {
        return -EINVAL;
    }
    for (int i = 0; i < nsegs; i++) {
        uint64_t start = segs[i].iova, end = segs[i].iova + segs[i].len;

        if (segs[i].len == 0 || (i > 0 && (start & (NVME_PAGE - 1))) ||
            (i < nsegs - 1 && (end & (NVME_PAGE - 1))) || (start & 3)) {
            return -EINVAL; /* PRPs cannot describe a hole or a dword-misaligned start */
        }
        for (uint64_t p = start & ~(uint64_t) (NVME_PAGE - 1); p < end; p += NVME_PAGE) {
            if (npages == (int) (sizeof(pages) / sizeof(pages[0]))) {
                return -E2BIG;
            }
            pages[npages++] = p;
        }
    }
    c->prp1 = segs[0].iova; /* may start inside its page */
    c->prp2 = 0;
    if (npages == 1) {
        return 0;
    }
    if (npages == 2) {
        c->prp2 = pages[1];
        return 0;
    }
    /* a list of the pages after the first; a full list page ends with a
     * link to the next one (unless that last entry is the last page) */
    c->prp2 = list_iova;
    for (int i = 1; i < npages; i++) {
        if (slot == per_page - 1 && i < npages - 1) {
            if (page + 1 >= list_pages) {
                return -E2BIG;
            }
            page++;
            list[(page - 1) * per_page + slot] = list_iova + (uint64_t) page * NVME_PAGE;
            slot = 0;
        }
        if (page >= list_pages) {
            return -E2BIG;
        }
        list[page * per_page + slot++] = pages[i];
    }
    return 0;
} /* nvme_prp_build */

void
nvme_qpair_init(struct nvme_qpair *q, uint16_t qid, uint16_t entries, struct nvme_sqe *sq,
                struct nvme_cqe *cq, volatile uint32_t *sq_db, volatile uint32_t *cq_db)
{
    memset(q, 0, sizeof(*q));
    q->qid = qid;
    q->entries = entries;
    q->sq = sq;
    q->cq = cq;
    q->phase = 1;
    q->sq_doorbell = sq_db;
    q->cq_doorbell = cq_db;
    memset(cq, 0, (size_t) entries * sizeof(*cq));
} /* nvme_qpair_init */

int
nvme_qpair_push(struct nvme_qpair *q, const struct nvme_sqe *c)
{
    if (nvme_qpair_space(q) == 0) {
        return -EAGAIN;
    }
    q->sq[q->sq_tail] = *c;
    q->sq_tail = (uint16_t) ((q->sq_tail + 1) % q->entries);
    return 0;
} /* nvme_qpair_push */

void
nvme_qpair_ring(struct nvme_qpair *q)
{
    /* a release store: the entries are visible before the doorbell */
    __atomic_store_n(q->sq_doorbell, (uint32_t) q->sq_tail, __ATOMIC_RELEASE);
} /* nvme_qpair_ring */

const struct nvme_cqe *
nvme_qpair_peek(struct nvme_qpair *q)
{
    const struct nvme_cqe *c = &q->cq[q->cq_head];

    if ((__atomic_load_n(&c->status, __ATOMIC_ACQUIRE) & 1) != q->phase) {
        return NULL;
    }
    return c;
} /* nvme_qpair_peek */

void
nvme_qpair_pop(struct nvme_qpair *q)
{
    q->sq_head = q->cq[q->cq_head].sq_head;
    if (++q->cq_head == q->entries) {
        q->cq_head = 0;
        q->phase ^= 1; /* the controller flips it on every lap */
    }
} /* nvme_qpair_pop */

void
nvme_qpair_cq_done(struct nvme_qpair *q)
{
    *q->cq_doorbell = q->cq_head;
} /* nvme_qpair_cq_done */

static int
wait_ready(struct nvme_regs *r, int want)
{
    uint64_t cap = nvme_rd64(r, NVME_REG_CAP);
    unsigned timeout_ms = (unsigned) ((cap >> 24) & 0xff) * 500 + 500;

    for (unsigned waited = 0;; waited += 1) {
        uint32_t csts = nvme_rd32(r, NVME_REG_CSTS);

        if (csts & 2) {
            return -EIO; /* controller fatal status */
        }
        if ((int) (csts & 1) == want) {
            return 0;
        }
        if (waited >= timeout_ms) {
            return -ETIMEDOUT;
        }
        r->sleep_ms(1);
    }
} /* wait_ready */

void
nvme_ctrl_disable(struct nvme_regs *r)
{
    uint32_t cc = nvme_rd32(r, NVME_REG_CC);

    if (cc & 1) {
        nvme_wr32(r, NVME_REG_CC, cc & ~1u);
    }
    (void) wait_ready(r, 0);
} /* nvme_ctrl_disable */

int
nvme_ctrl_enable(struct nvme_regs *r, struct nvme_qpair *admin, uint16_t entries,
                 struct nvme_sqe *asq, uint64_t asq_iova, struct nvme_cqe *acq, uint64_t acq_iova)
{
    uint64_t cap = nvme_rd64(r, NVME_REG_CAP);
    uint32_t mqes = (uint32_t) (cap & 0xffff) + 1;
    int rc;

    r->dstrd = 4u << ((cap >> 32) & 0xf);
    if (entries > mqes) {
        entries = (uint16_t) mqes;
    }
    nvme_ctrl_disable(r);
    nvme_qpair_init(admin, 0, entries, asq, acq, nvme_doorbell(r, 0, 0), nvme_doorbell(r, 0, 1));
    nvme_wr32(r, NVME_REG_AQA, ((uint32_t) (entries - 1) << 16) | (uint32_t) (entries - 1));
    nvme_wr64(r, NVME_REG_ASQ, asq_iova);
    nvme_wr64(r, NVME_REG_ACQ, acq_iova);
    /* NVM command set, 4 KiB pages, round robin, 64-byte SQEs, 16-byte CQEs */
    nvme_wr32(r, NVME_REG_CC, (6u << 16) | (4u << 20) | 1u);
    rc = wait_ready(r, 1);
    return rc;
} /* nvme_ctrl_enable */

static uint32_t
le32(const uint8_t *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

void
nvme_parse_identify(const uint8_t *ctrl, const uint8_t *ns, uint32_t min_page,
                    struct nvme_ns_info *info)
{
    /* the format index: bits 3:0 of FLBAS, and 6:5 above them when the
     * namespace has more than 16 formats (NVMe 2.0) */
    unsigned fmt = (ns[26] & 0xfu) | ((ns[26] >> 5) & 0x3u) << 4;
    uint8_t lbads = ns[128 + 4 * fmt + 2], mdts = ctrl[77];
    uint16_t oncs = (uint16_t) (ctrl[520] | ctrl[521] << 8);

    info->blocks = (uint64_t) le32(ns) | (uint64_t) le32(ns + 4) << 32;
    info->block_size = lbads >= 9 && lbads < 32 ? 1u << lbads : 512;
    /* 2^20 pages is already far beyond any limit we use; larger values
     * would shift past 64 bits */
    info->max_transfer = mdts ? (uint64_t) min_page << (mdts < 20 ? mdts : 20) : 0;
    info->write_zeroes = (oncs >> 3) & 1;
    info->deallocate = (oncs >> 2) & 1;
    info->volatile_cache = ctrl[525] & 1;
} /* nvme_parse_identify */

#include <linux/nvme_ioctl.h>

void
nvme_to_uring_cmd(struct nvme_uring_cmd *u, const struct nvme_sqe *c, uint64_t addr,
                  uint32_t data_len)
{
    memset(u, 0, sizeof(*u));
    u->opcode = c->opcode;
    u->nsid = c->nsid;
    u->addr = addr;
    u->data_len = data_len;
    u->cdw10 = c->cdw10;
    u->cdw11 = c->cdw11;
    u->cdw12 = c->cdw12;
    u->cdw13 = c->cdw13;
    u->cdw14 = c->cdw14;
    u->cdw15 = c->cdw15;
} /* nvme_to_uring_cmd */
