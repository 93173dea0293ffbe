/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * EVPL_BLOCK_PROTOCOL_IO_URING_NVME: NVMe commands passed through io_uring
 * (IORING_OP_URING_CMD) to a namespace's generic character device
 * /dev/ngXnY (a /dev/nvmeXnY path is mapped to it).  Commands are built by
 * block/nvme.h, as for the VFIO driver.  Passthrough needs 128-byte
 * submission and 32-byte completion entries, so each queue has a ring of
 * its own (not the loop's shared one), watched through an eventfd and
 * reaped by a poll callback; submissions of a pass go in with one enter.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/nvme_ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/io_uring/uring.h"
#include "block/block.h"
#include "block/nvme.h"

#define RING_ENTRIES 256

struct pdev {
    uint32_t nsid;
};

struct pqueue {
    struct io_uring ring;
    struct evpl_uring_watch watch;
    struct evpl_poll *poll;
    struct evpl_deferral submit;
    uint32_t inflight;
    int busy; /* a reap of this ring is on the stack */
    int dead; /* closed from one of its callbacks: the reap frees it */
};

static int
admin_identify(int fd, uint32_t cns, uint32_t nsid, void *buf)
{
    struct nvme_passthru_cmd cmd;

    memset(&cmd, 0, sizeof(cmd));
    cmd.opcode = NVME_ADMIN_IDENTIFY;
    cmd.nsid = nsid;
    cmd.addr = (uintptr_t) buf;
    cmd.data_len = NVME_PAGE;
    cmd.cdw10 = cns;
    return ioctl(fd, NVME_IOCTL_ADMIN_CMD, &cmd) == 0 ? 0 : (errno ? -errno : -EIO);
} /* admin_identify */

static int
pt_open(struct evpl_block_device *dev, const char *uri)
{
    char path[256];
    unsigned ctrl, ns;
    uint8_t *id = NULL;
    struct nvme_ns_info info;
    struct stat st;
    struct pdev *p;
    int fd, nsid, rc;

    /* /dev/nvme0n1 -> /dev/ng0n1 (the block device refuses passthrough) */
    if (sscanf(uri, "/dev/nvme%un%u", &ctrl, &ns) == 2) {
        snprintf(path, sizeof(path), "/dev/ng%un%u", ctrl, ns);
    } else {
        snprintf(path, sizeof(path), "%s", uri);
    }
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    nsid = ioctl(fd, NVME_IOCTL_ID);
    if (nsid <= 0 || fstat(fd, &st) < 0 ||
        posix_memalign((void **) &id, NVME_PAGE, 2 * NVME_PAGE)) {
        rc = nsid <= 0 ? -ENOTTY : -ENOMEM;
        close(fd);
        return rc;
    }
    rc = admin_identify(fd, 1, 0, id + NVME_PAGE);
    if (rc == 0) {
        rc = admin_identify(fd, 0, (uint32_t) nsid, id);
    }
    if (rc < 0) {
        free(id);
        close(fd);
        return rc;
    }
    nvme_parse_identify(id + NVME_PAGE, id, NVME_PAGE, &info);
    free(id);
    p = evpl__zalloc(sizeof(*p));
    p->nsid = (uint32_t) nsid;
    dev->private_data = p;
    dev->fd = fd;
    dev->size = info.blocks * info.block_size;
    dev->sector = info.block_size;
    dev->max_request =
        info.max_transfer && info.max_transfer < (4u << 20) ? info.max_transfer : 4u << 20;
    /* block.md: discard reaches the device on VFIO only, other backends
     * complete it at once with 0 (a hint, so nothing is lost); native
     * write-zeroes gives the same result as the emulation, faster */
    (void) info.deallocate;
    dev->caps = EVPL_BLOCK_CAP_NO_BOUNCE | (info.write_zeroes ? EVPL_BLOCK_CAP_ZEROES : 0);
    dev->max_zeroes = 65536ull * info.block_size;
    dev->st_dev = st.st_rdev;
    dev->st_ino = 1;
    return 0;
} /* pt_open */

static void
pt_close(struct evpl_block_device *dev)
{
    free(dev->private_data);
    close(dev->fd);
} /* pt_close */

static void
pt_complete(struct evpl *evpl, struct evpl_uring_req *ureq, int res, uint32_t flags)
{
    struct evpl_block_req *r = container_of(ureq, struct evpl_block_req, ureq);
    struct pqueue *pq = r->queue->private_data;

    pq->inflight--;
    /* 0: success; > 0: an NVMe status; < 0: -errno */
    if (res > 0) {
        res = -nvme_status_errno((uint16_t) res);
    }
    evpl__block_complete(evpl, r, res < 0 ? res : (int64_t) r->bytes);
} /* pt_complete */

static void
pq_destroy(struct evpl *evpl, struct pqueue *pq)
{
    evpl__uring_unwatch(evpl, &pq->watch);
    io_uring_queue_exit(&pq->ring);
    free(pq);
} /* pq_destroy */

/* Reap the queue's ring.  A callback may close the queue: the ring stays
 * mapped until the reap is done with it, then goes. */
static void
pq_reap(struct evpl *evpl, struct pqueue *pq)
{
    int n;

    pq->busy++;
    n = evpl__uring_reap(evpl, &pq->ring);
    if (--pq->busy == 0 && pq->dead) {
        pq_destroy(evpl, pq);
        return;
    }
    if (!pq->dead && evpl__uring_unreaped(&pq->ring, n)) {
        /* completions left for the next pass */
        evpl__event_set(evpl, &pq->watch.event, EVPL_EV_READABLE);
    }
} /* pq_reap */

static void
pt_watch_reap(struct evpl *evpl, struct evpl_uring_watch *w)
{
    pq_reap(evpl, container_of(w, struct pqueue, watch));
} /* pt_watch_reap */

static void
pt_poll(struct evpl *evpl, void *arg)
{
    struct pqueue *pq = arg;

    if (pq->inflight) {
        pq_reap(evpl, pq);
    }
} /* pt_poll */

static void
pt_flush_submissions(struct evpl *evpl, void *arg)
{
    struct pqueue *pq = arg;

    io_uring_submit(&pq->ring);
} /* pt_flush_submissions */

static void
pt_submit(struct evpl *evpl, struct evpl_block_queue *q, struct evpl_block_req *r)
{
    struct pqueue *pq = q->private_data;
    struct pdev *p = q->dev->private_data;
    uint32_t bs = q->dev->sector;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&pq->ring);
    struct nvme_sqe c;
    uint64_t addr = 0;
    uint32_t len = 0;
    int vec = 0;

    if (!sqe) {
        io_uring_submit(&pq->ring);
        sqe = io_uring_get_sqe(&pq->ring);
    }
    if (!sqe) {
        evpl__block_complete_later(evpl, r, -EAGAIN); /* the kernel takes nothing now */
        return;
    }
    switch (r->op) {
        case EVPL_BLOCK_OP_READ:
        case EVPL_BLOCK_OP_WRITE:
            if (r->native) {
                nvme_cmd_write_zeroes(&c, p->nsid, r->offset / bs, (uint32_t) (r->bytes / bs));
                break;
            }
            nvme_cmd_rw(&c, r->op == EVPL_BLOCK_OP_WRITE, p->nsid, r->offset / bs,
                        (uint32_t) (r->bytes / bs), r->sync);
            if (r->nkiov == 1) {
                addr = (uintptr_t) r->kiov[0].iov_base;
                len = (uint32_t) r->kiov[0].iov_len;
            } else {
                addr = (uintptr_t) r->kiov;
                len = (uint32_t) r->nkiov;
                vec = 1;
            }
            break;
        default:
            nvme_cmd_flush(&c, p->nsid);
            break;
    }
    memset(sqe, 0, 2 * sizeof(*sqe)); /* a 128-byte entry */
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = q->dev->fd;
    sqe->cmd_op = vec ? NVME_URING_CMD_IO_VEC : NVME_URING_CMD_IO;
    nvme_to_uring_cmd((struct nvme_uring_cmd *) sqe->cmd, &c, addr, len);
    r->ureq.complete = pt_complete;
    io_uring_sqe_set_data(sqe, &r->ureq);
    pq->inflight++;
    evpl__defer_handover(evpl, &pq->submit); /* one enter for the pass */
} /* pt_submit */

static int
pt_queue_open(struct evpl *evpl, struct evpl_block_queue *q)
{
    struct pqueue *pq = evpl__zalloc(sizeof(*pq));
    /* passthrough commands need 128-byte entries, 32-byte completions */
    int rc =
        evpl__uring_queue_init(RING_ENTRIES, &pq->ring, IORING_SETUP_SQE128 | IORING_SETUP_CQE32);

    if (rc < 0) {
        free(pq);
        return rc;
    }
    pq->watch.reap = pt_watch_reap;
    rc = evpl__uring_watch(evpl, &pq->watch, &pq->ring);
    if (rc < 0) {
        io_uring_queue_exit(&pq->ring);
        free(pq);
        return rc;
    }
    evpl_deferral_init(&pq->submit, pt_flush_submissions, pq);
    pq->poll = evpl__add_completion_poll(evpl, NULL, NULL, pt_poll, pq);
    q->private_data = pq;
    return 0;
} /* pt_queue_open */

static void
pt_drain(struct evpl *evpl, struct evpl_block_queue *q)
{
    struct pqueue *pq = q->private_data;

    while (evpl__block_inflight(q)) {
        io_uring_submit_and_wait(&pq->ring, 1);
        evpl__uring_process(evpl, &pq->ring);
    }
} /* pt_drain */

static void
pt_queue_close(struct evpl *evpl, struct evpl_block_queue *q)
{
    struct pqueue *pq = q->private_data;

    evpl_remove_deferral(evpl, &pq->submit);
    evpl_remove_poll(evpl, pq->poll);
    if (pq->busy) {
        pq->dead = 1; /* closed from a completion callback: pq_reap frees it */
        return;
    }
    pq_destroy(evpl, pq);
} /* pt_queue_close */

const struct evpl_block_backend evpl_block_io_uring_nvme = {
    .id = EVPL_BLOCK_PROTOCOL_IO_URING_NVME,
    .name = "io_uring_nvme",
    .available = evpl__uring_available,
    .open = pt_open,
    .close = pt_close,
    .queue_open = pt_queue_open,
    .queue_close = pt_queue_close,
    .submit = pt_submit,
    .drain = pt_drain,
};
