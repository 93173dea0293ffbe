/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * An in-memory NVMe controller for the unit tests: a BAR0 register window,
 * admin and I/O queues, and one namespace backed by memory.  Device
 * addresses are process addresses (as with VFIO mapping IOVA == VA).  The
 * model runs when the test calls nvme_model_run (and from the register
 * layer's sleep hook), executing whatever the doorbells say is queued.
 */
#pragma once

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "block/nvme.h"

#define MODEL_QUEUES 4

struct model_q {
    int live;
    struct nvme_sqe *sq;
    struct nvme_cqe *cq;
    uint16_t entries, cq_entries;
    uint16_t sq_head, cq_tail;
    uint8_t phase;
    uint16_t cqid;
    uint32_t cq_cdw11; /* interrupts enabled (bit 1), vector (31:16) */
};

struct nvme_model {
    _Alignas(4096) uint8_t bar[0x2000];
    uint8_t *disk;
    uint64_t blocks;
    uint32_t block_size;
    uint32_t oncs;
    struct model_q q[MODEL_QUEUES];
    uint64_t executed;
    uint64_t dealloc_calls;
};

static inline uint32_t *
model_reg(struct nvme_model *m, uint32_t off)
{
    return (uint32_t *) (m->bar + off);
}

static inline void
model_init(struct nvme_model *m, uint64_t blocks, uint32_t block_size)
{
    uint64_t cap = 63 /* MQES: 64 entries */ | (1ull << 16) /* CQR */ | (1ull << 24) /* TO */;

    memset(m, 0, sizeof(*m));
    m->blocks = blocks;
    m->block_size = block_size;
    m->disk = calloc(blocks, block_size);
    m->oncs = (1u << 2) | (1u << 3);
    memcpy(m->bar + NVME_REG_CAP, &cap, 8);
}

static inline void
model_free(struct nvme_model *m)
{
    free(m->disk);
}

/* Copy between the disk and the PRP-described memory. */
static inline void
model_xfer(const struct nvme_sqe *c, uint8_t *disk, uint64_t len, int write)
{
    uint64_t off = c->prp1 & (NVME_PAGE - 1), done = 0;
    uint64_t npages = (off + len + NVME_PAGE - 1) / NVME_PAGE;
    const uint64_t *list = npages > 2 ? (const uint64_t *) (uintptr_t) c->prp2 : NULL;
    unsigned idx = 0;

    for (uint64_t p = 0; p < npages; p++) {
        uint64_t addr, chunk = NVME_PAGE;

        if (p == 0) {
            addr = c->prp1;
            chunk = NVME_PAGE - off;
        } else if (npages == 2) {
            addr = c->prp2;
        } else {
            if (idx == NVME_PAGE / 8 - 1 && p < npages - 1) {
                list = (const uint64_t *) (uintptr_t) list[idx]; /* the next list page */
                idx = 0;
            }
            addr = list[idx++];
        }
        if (chunk > len - done) {
            chunk = len - done;
        }
        if (write) {
            memcpy(disk + done, (void *) (uintptr_t) addr, chunk);
        } else {
            memcpy((void *) (uintptr_t) addr, disk + done, chunk);
        }
        done += chunk;
    }
}

/* Execute one command; returns the status field (0 = success). */
static inline uint16_t
model_exec(struct nvme_model *m, int admin, const struct nvme_sqe *c, uint32_t *dw0)
{
    m->executed++;
    if (admin) {
        switch (c->opcode) {
            case NVME_ADMIN_IDENTIFY: {
                uint8_t *d = (uint8_t *) (uintptr_t) c->prp1;

                memset(d, 0, NVME_PAGE);
                if ((c->cdw10 & 0xff) == 1) {
                    d[77] = 5; /* MDTS: 2^5 pages = 128 KiB */
                    d[520] = (uint8_t) m->oncs;
                    d[525] = 1;
                } else {
                    uint8_t lbads = (uint8_t) __builtin_ctz(m->block_size);

                    memcpy(d, &m->blocks, 8);
                    memcpy(d + 8, &m->blocks, 8);
                    d[26] = 0;
                    d[128 + 2] = lbads;
                }
                return 0;
            }
            case NVME_ADMIN_CREATE_CQ: {
                uint16_t qid = c->cdw10 & 0xffff;
                struct model_q *q;

                if (qid == 0 || qid >= MODEL_QUEUES) {
                    return 0x101; /* invalid queue identifier */
                }
                q = &m->q[qid];
                q->cq = (struct nvme_cqe *) (uintptr_t) c->prp1;
                q->cq_entries = (uint16_t) ((c->cdw10 >> 16) + 1);
                q->cq_tail = 0;
                q->phase = 1;
                q->cq_cdw11 = c->cdw11;
                return 0;
            }
            case NVME_ADMIN_CREATE_SQ: {
                uint16_t qid = c->cdw10 & 0xffff;
                struct model_q *q;

                if (qid == 0 || qid >= MODEL_QUEUES || !m->q[qid].cq) {
                    return 0x101;
                }
                q = &m->q[qid];
                q->sq = (struct nvme_sqe *) (uintptr_t) c->prp1;
                q->entries = (uint16_t) ((c->cdw10 >> 16) + 1);
                q->sq_head = 0;
                q->cqid = (uint16_t) (c->cdw11 >> 16);
                q->live = 1;
                return 0;
            }
            case 0x00: /* delete I/O SQ */
            case 0x04: /* delete I/O CQ */
                if ((c->cdw10 & 0xffff) == 0 || (c->cdw10 & 0xffff) >= MODEL_QUEUES) {
                    return 0x101;
                }
                if (c->opcode == 0x00) {
                    m->q[c->cdw10 & 0xffff].live = 0;
                } else {
                    m->q[c->cdw10 & 0xffff].cq = NULL;
                }
                return 0;
            default:
                return 0x01; /* invalid opcode */
        }
    }
    switch (c->opcode) {
        case NVME_CMD_READ:
        case NVME_CMD_WRITE: {
            uint64_t slba = c->cdw10 | (uint64_t) c->cdw11 << 32;
            uint32_t nlb = (c->cdw12 & 0xffff) + 1;

            if (slba + nlb > m->blocks) {
                return 0x80; /* LBA out of range */
            }
            model_xfer(c, m->disk + slba * m->block_size, (uint64_t) nlb * m->block_size,
                       c->opcode == NVME_CMD_WRITE);
            return 0;
        }
        case NVME_CMD_FLUSH:
            return 0;
        case NVME_CMD_WRITE_ZEROES: {
            uint64_t slba = c->cdw10 | (uint64_t) c->cdw11 << 32;
            uint32_t nlb = (c->cdw12 & 0xffff) + 1;

            if (slba + nlb > m->blocks) {
                return 0x80;
            }
            memset(m->disk + slba * m->block_size, 0, (size_t) nlb * m->block_size);
            return 0;
        }
        case NVME_CMD_DSM:
            m->dealloc_calls++;
            (void) dw0;
            return 0;
        default:
            return 0x01;
    }
}

static inline void
model_post(struct nvme_model *m, struct model_q *cq, uint16_t sqid, uint16_t sq_head, uint16_t cid,
           uint16_t status)
{
    struct nvme_cqe *e = &cq->cq[cq->cq_tail];

    e->dw0 = 0;
    e->sq_head = sq_head;
    e->sq_id = sqid;
    e->cid = cid;
    __atomic_store_n(&e->status, (uint16_t) ((status << 1) | cq->phase), __ATOMIC_RELEASE);
    if (++cq->cq_tail == cq->cq_entries) {
        cq->cq_tail = 0;
        cq->phase ^= 1;
    }
}

/* Run the controller: enable/disable, then every queued command whose
 * completion fits (the host's CQ head doorbell says what is consumed). */
static inline void
model_run(struct nvme_model *m)
{
    uint32_t cc = *model_reg(m, NVME_REG_CC);
    uint32_t *csts = model_reg(m, NVME_REG_CSTS);

    if (!(cc & 1)) {
        *csts &= ~1u;
        memset(m->q, 0, sizeof(m->q));
        return;
    }
    if (!(*csts & 1)) {
        uint32_t aqa = *model_reg(m, NVME_REG_AQA);
        uint64_t asq, acq;

        memcpy(&asq, m->bar + NVME_REG_ASQ, 8);
        memcpy(&acq, m->bar + NVME_REG_ACQ, 8);
        m->q[0].sq = (struct nvme_sqe *) (uintptr_t) asq;
        m->q[0].cq = (struct nvme_cqe *) (uintptr_t) acq;
        m->q[0].entries = (uint16_t) ((aqa & 0xfff) + 1);
        m->q[0].cq_entries = (uint16_t) (((aqa >> 16) & 0xfff) + 1);
        m->q[0].phase = 1;
        m->q[0].live = 1;
        *csts |= 1;
    }
    for (int qid = 0; qid < MODEL_QUEUES; qid++) {
        struct model_q *q = &m->q[qid];
        uint32_t tail = *model_reg(m, NVME_REG_DBS + 8u * qid);

        if (!q->live) {
            continue;
        }
        while (q->sq_head != tail) {
            struct model_q *cq = qid == 0 ? q : &m->q[q->cqid];
            uint32_t cq_head = *model_reg(m, NVME_REG_DBS + 8u * (cq == q ? qid : q->cqid) + 4);
            struct nvme_sqe c = q->sq[q->sq_head];
            uint32_t dw0 = 0;
            uint16_t status;

            if ((cq->cq_tail + 1u) % cq->cq_entries == cq_head) {
                break; /* completion queue full: wait for the host */
            }
            status = model_exec(m, qid == 0, &c, &dw0);
            q->sq_head = (uint16_t) ((q->sq_head + 1) % q->entries);
            model_post(m, cq, (uint16_t) qid, q->sq_head, c.cid, status);
        }
    }
}
