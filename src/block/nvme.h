/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * NVMe pieces shared by the io_uring passthrough backend and the VFIO
 * user-space driver: command and completion layouts, command builders,
 * PRP lists, submission/completion queue pairs, and controller bring-up
 * over an abstract register window (a real BAR0, or the in-memory device
 * model of the unit tests).  Addresses here are device addresses (IOVAs);
 * the VFIO driver maps slabs with IOVA == virtual address.
 */
#pragma once

#include <stdint.h>
#include <string.h>

#define NVME_PAGE 4096u

/* opcodes */
enum {
    NVME_ADMIN_CREATE_SQ = 0x01,
    NVME_ADMIN_CREATE_CQ = 0x05,
    NVME_ADMIN_IDENTIFY = 0x06,
    NVME_ADMIN_SET_FEATURES = 0x09,
    NVME_CMD_FLUSH = 0x00,
    NVME_CMD_WRITE = 0x01,
    NVME_CMD_READ = 0x02,
    NVME_CMD_WRITE_ZEROES = 0x08,
    NVME_CMD_DSM = 0x09,
};

/* controller registers (BAR0 offsets) */
enum {
    NVME_REG_CAP = 0x00,
    NVME_REG_VS = 0x08,
    NVME_REG_CC = 0x14,
    NVME_REG_CSTS = 0x1c,
    NVME_REG_AQA = 0x24,
    NVME_REG_ASQ = 0x28,
    NVME_REG_ACQ = 0x30,
    NVME_REG_DBS = 0x1000,
};

struct nvme_sqe {
    uint8_t opcode;
    uint8_t flags;
    uint16_t cid;
    uint32_t nsid;
    uint32_t cdw2, cdw3;
    uint64_t mptr;
    uint64_t prp1, prp2;
    uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};

struct nvme_cqe {
    uint32_t dw0;
    uint32_t dw1;
    uint16_t sq_head;
    uint16_t sq_id;
    uint16_t cid;
    uint16_t status; /* bit 0: phase; bits 1-15: status field */
};

_Static_assert(sizeof(struct nvme_sqe) == 64, "NVMe submission entries are 64 bytes");
_Static_assert(sizeof(struct nvme_cqe) == 16, "NVMe completion entries are 16 bytes");

/* Dataset Management range */
struct nvme_dsm_range {
    uint32_t cattr;
    uint32_t nlb; /* a count, not 0-based */
    uint64_t slba;
};

/* status field of a completion: 0 = success */
static inline uint16_t
nvme_cqe_status(const struct nvme_cqe *c)
{
    return (uint16_t) (c->status >> 1);
} /* nvme_cqe_status */

/* errno for a non-zero status (generic: EIO; LBA out of range: EINVAL...) */
int nvme_status_errno(uint16_t status);

/* ---- command builders ---- */

/* Read/write nlb blocks (>= 1) at slba; data pointer left to the caller. */
static inline void
nvme_cmd_rw(struct nvme_sqe *c, int write, uint32_t nsid, uint64_t slba, uint32_t nlb, int fua)
{
    memset(c, 0, sizeof(*c));
    c->opcode = write ? NVME_CMD_WRITE : NVME_CMD_READ;
    c->nsid = nsid;
    c->cdw10 = (uint32_t) slba;
    c->cdw11 = (uint32_t) (slba >> 32);
    c->cdw12 = ((nlb - 1) & 0xffff) | (fua ? 1u << 30 : 0);
} /* nvme_cmd_rw */

static inline void
nvme_cmd_flush(struct nvme_sqe *c, uint32_t nsid)
{
    memset(c, 0, sizeof(*c));
    c->opcode = NVME_CMD_FLUSH;
    c->nsid = nsid;
} /* nvme_cmd_flush */

static inline void
nvme_cmd_write_zeroes(struct nvme_sqe *c, uint32_t nsid, uint64_t slba, uint32_t nlb)
{
    memset(c, 0, sizeof(*c));
    c->opcode = NVME_CMD_WRITE_ZEROES;
    c->nsid = nsid;
    c->cdw10 = (uint32_t) slba;
    c->cdw11 = (uint32_t) (slba >> 32);
    c->cdw12 = (nlb - 1) & 0xffff;
} /* nvme_cmd_write_zeroes */

/* Deallocate the nranges ranges at range_iova (one page at most). */
static inline void
nvme_cmd_deallocate(struct nvme_sqe *c, uint32_t nsid, uint64_t range_iova, uint32_t nranges)
{
    memset(c, 0, sizeof(*c));
    c->opcode = NVME_CMD_DSM;
    c->nsid = nsid;
    c->prp1 = range_iova;
    c->cdw10 = nranges - 1;
    c->cdw11 = 1u << 2; /* AD: deallocate */
} /* nvme_cmd_deallocate */

/* Identify: cns 1 = controller, 0 = namespace nsid; 4 KiB into buf_iova. */
static inline void
nvme_cmd_identify(struct nvme_sqe *c, uint32_t cns, uint32_t nsid, uint64_t buf_iova)
{
    memset(c, 0, sizeof(*c));
    c->opcode = NVME_ADMIN_IDENTIFY;
    c->nsid = nsid;
    c->prp1 = buf_iova;
    c->cdw10 = cns;
} /* nvme_cmd_identify */

static inline void
nvme_cmd_create_cq(struct nvme_sqe *c, uint16_t qid, uint16_t entries, uint64_t iova, int irq,
                   uint16_t vector)
{
    memset(c, 0, sizeof(*c));
    c->opcode = NVME_ADMIN_CREATE_CQ;
    c->prp1 = iova;
    c->cdw10 = ((uint32_t) (entries - 1) << 16) | qid;
    c->cdw11 = 1u | (irq ? 2u : 0) | ((uint32_t) vector << 16); /* physically contiguous */
} /* nvme_cmd_create_cq */

static inline void
nvme_cmd_create_sq(struct nvme_sqe *c, uint16_t qid, uint16_t entries, uint64_t iova, uint16_t cqid)
{
    memset(c, 0, sizeof(*c));
    c->opcode = NVME_ADMIN_CREATE_SQ;
    c->prp1 = iova;
    c->cdw10 = ((uint32_t) (entries - 1) << 16) | qid;
    c->cdw11 = ((uint32_t) cqid << 16) | 1u;
} /* nvme_cmd_create_sq */

/* ---- PRPs ---- */

struct nvme_seg {
    uint64_t iova;
    uint64_t len;
};

/*
 * Fill prp1/prp2 of c for the data in segs (device addresses).  A list,
 * when needed, is written into list (list_iova is its device address),
 * one page holding 511 entries and a link to the next page; list_pages is
 * how many pages list has.  Every segment but the first must start on a
 * page, every one but the last must end on one; returns 0, or -EINVAL
 * (misaligned pieces) or -E2BIG (list too small).
 */
int nvme_prp_build(struct nvme_sqe *c, const struct nvme_seg *segs, int nsegs, uint64_t *list,
                   uint64_t list_iova, int list_pages);

/* ---- queue pairs ---- */

struct nvme_qpair {
    struct nvme_sqe *sq; /* entries slots, device-visible memory */
    struct nvme_cqe *cq;
    uint16_t entries;
    uint16_t sq_tail;
    uint16_t sq_head; /* as the controller last reported it */
    uint16_t cq_head;
    uint8_t phase; /* expected phase of the next completion */
    uint16_t qid;
    volatile uint32_t *sq_doorbell;
    volatile uint32_t *cq_doorbell;
};

void nvme_qpair_init(struct nvme_qpair *q, uint16_t qid, uint16_t entries, struct nvme_sqe *sq,
                     struct nvme_cqe *cq, volatile uint32_t *sq_db, volatile uint32_t *cq_db);

/* Free submission slots (one is always kept empty, as the spec wants). */
static inline uint16_t
nvme_qpair_space(const struct nvme_qpair *q)
{
    return (uint16_t) ((q->sq_head + q->entries - q->sq_tail - 1) % q->entries);
} /* nvme_qpair_space */

/* Copy c (cid set by the caller) into the queue; the doorbell is rung by
 * nvme_qpair_ring (once per batch).  -EAGAIN when full. */
int nvme_qpair_push(struct nvme_qpair *q, const struct nvme_sqe *c);
void nvme_qpair_ring(struct nvme_qpair *q);

/* Next completion, or NULL; nvme_qpair_pop retires it, and
 * nvme_qpair_cq_done tells the controller (once per batch). */
const struct nvme_cqe *nvme_qpair_peek(struct nvme_qpair *q);
void nvme_qpair_pop(struct nvme_qpair *q);
void nvme_qpair_cq_done(struct nvme_qpair *q);

/* ---- controller bring-up over a register window ---- */

struct nvme_regs {
    volatile void *bar; /* BAR0 mapping */
    uint32_t dstrd;     /* doorbell stride, bytes */
    /* waits (the model answers at once; hardware needs real time) */
    void (*sleep_ms)(unsigned ms);
};

static inline uint32_t
nvme_rd32(const struct nvme_regs *r, uint32_t off)
{
    return *(volatile uint32_t *) ((volatile char *) r->bar + off);
}
static inline void
nvme_wr32(const struct nvme_regs *r, uint32_t off, uint32_t v)
{
    *(volatile uint32_t *) ((volatile char *) r->bar + off) = v;
}
static inline uint64_t
nvme_rd64(const struct nvme_regs *r, uint32_t off)
{
    return (uint64_t) nvme_rd32(r, off) | ((uint64_t) nvme_rd32(r, off + 4) << 32);
}
static inline void
nvme_wr64(const struct nvme_regs *r, uint32_t off, uint64_t v)
{
    nvme_wr32(r, off, (uint32_t) v);
    nvme_wr32(r, off + 4, (uint32_t) (v >> 32));
}

/* Doorbell register of queue qid (cq: its completion-queue head). */
static inline volatile uint32_t *
nvme_doorbell(const struct nvme_regs *r, uint16_t qid, int cq)
{
    return (volatile uint32_t *) ((volatile char *) r->bar + NVME_REG_DBS +
                                  (2u * qid + (cq ? 1u : 0)) * r->dstrd);
}

/* Disable, program the admin queue (entries at the given IOVAs), enable;
 * waits for CSTS.RDY within CAP.TO.  0, or -ETIMEDOUT / -EIO (fatal). */
int nvme_ctrl_enable(struct nvme_regs *r, struct nvme_qpair *admin, uint16_t entries,
                     struct nvme_sqe *asq, uint64_t asq_iova, struct nvme_cqe *acq,
                     uint64_t acq_iova);
/* Clear CC.EN and wait for the controller to stop. */
void nvme_ctrl_disable(struct nvme_regs *r);

/* What Identify reported, in the units the block layer wants. */
struct nvme_ns_info {
    uint64_t blocks;
    uint32_t block_size;
    uint64_t max_transfer; /* bytes, 0 = no limit */
    int write_zeroes, deallocate, volatile_cache;
};

void nvme_parse_identify(const uint8_t *ctrl, const uint8_t *ns, uint32_t min_page,
                         struct nvme_ns_info *info);

/* ---- the user-space driver core (VFIO uses it; the unit tests drive it
 * against the in-memory model) ---- */

struct nvme_dma {
    /* page-aligned, zeroed, device-visible memory and its device address */
    void *(*alloc)(void *arg, size_t bytes, uint64_t *iova);
    void (*free)(void *arg, void *p, size_t bytes);
    /* device address of [p, p+len) if it is mapped for DMA, else -1 */
    int (*translate)(void *arg, const void *p, uint64_t len, uint64_t *iova);
    void *arg;
};

struct nvme_ctrl {
    struct nvme_regs regs;
    struct nvme_dma dma;
    struct nvme_qpair admin;
    struct nvme_sqe *asq;
    struct nvme_cqe *acq;
    uint8_t *scratch; /* one page for Identify */
    uint64_t scratch_iova;
    uint16_t admin_cid;
    uint32_t nsid;
    uint16_t max_entries; /* CAP.MQES + 1 */
    uint32_t qids_used;   /* bitmap of I/O queue ids (1..31) */
    struct nvme_ns_info ns;
};

/* Bring the controller up, identify it and namespace nsid.  0 or -errno. */
int nvme_drv_init(struct nvme_ctrl *c, uint32_t nsid);
void nvme_drv_fini(struct nvme_ctrl *c);
/* One admin command, waited for (callers serialise). Returns -errno. */
int nvme_drv_admin(struct nvme_ctrl *c, struct nvme_sqe *cmd);

#define NVME_DRV_LIST_PAGES 2 /* PRP list pages per request: 4 MiB + */

struct nvme_ioq {
    struct nvme_ctrl *ctrl;
    struct nvme_qpair qp;
    uint16_t qid;
    uint16_t entries;
    int irq;             /* completions raise MSI-X vector qid */
    void **ctx;          /* by command id */
    uint16_t *free_cids; /* stack */
    uint16_t nfree;
    uint64_t *lists; /* NVME_DRV_LIST_PAGES pages per command id */
    uint64_t lists_iova;
    uint64_t *ranges; /* one DSM range per command id */
    uint64_t ranges_iova;
    int pending_ring; /* entries pushed since the doorbell */
    uint32_t outstanding;
};

/* An I/O queue pair.  Its completions raise interrupt vector q->qid when
 * that is below irq_vectors (q->irq set); else they are only polled. */
int nvme_drv_ioq_create(struct nvme_ctrl *c, struct nvme_ioq *q, uint16_t entries,
                        uint32_t irq_vectors);
void nvme_drv_ioq_destroy(struct nvme_ioq *q);

enum nvme_drv_op {
    NVME_DRV_READ,
    NVME_DRV_WRITE,
    NVME_DRV_FLUSH,
    NVME_DRV_ZEROES,
    NVME_DRV_DEALLOCATE,
};

/* Queue one request (byte offset/length in whole blocks; segs for reads
 * and writes).  -EAGAIN: the queue is full; -EINVAL: memory not mapped for
 * DMA, or pieces PRPs cannot describe. */
int nvme_drv_submit(struct nvme_ioq *q, enum nvme_drv_op op, const struct nvme_seg *segs, int nsegs,
                    uint64_t offset, uint64_t length, int fua, void *ctx);
/* Ring the doorbell for what was queued (once per pass). */
void nvme_drv_ring(struct nvme_ioq *q);
/* Completions: done(ctx, status errno) for each; returns how many. */
int nvme_drv_reap(struct nvme_ioq *q, void (*done)(void *ctx, int status, void *arg), void *arg);

/* ---- io_uring passthrough ---- */

struct nvme_uring_cmd;
/* The passthrough form of c: data at addr (a buffer, or an iovec array
 * for NVME_URING_CMD_IO_VEC), data_len bytes (or iovec count). */
void nvme_to_uring_cmd(struct nvme_uring_cmd *u, const struct nvme_sqe *c, uint64_t addr,
                       uint32_t data_len);
