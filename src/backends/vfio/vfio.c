/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * EVPL_BLOCK_PROTOCOL_VFIO: an NVMe controller driven from user space
 * through VFIO (the device bound to vfio-pci).  The controller logic is
 * block/nvme_drv.c; this file is the VFIO side: container, group and
 * device, BAR0 mapping, bus mastering, and DMA mappings - every slab of the
 * memory layer (so buffers from evpl_iovec_alloc go to the device without a
 * copy) plus the driver's own queues - at device addresses handed out from
 * the IOMMU's aperture (virtual addresses do not fit a 39-bit IOMMU).  One
 * I/O queue pair per evpl queue; doorbells rung once per pass.  On a loop
 * that polls, completions are polled (the loop is pinned in poll mode while
 * I/O is outstanding); on a loop configured never to poll (poll_mode 0)
 * the queue's completions raise an MSI-X interrupt, which VFIO turns into
 * an eventfd the loop waits on (block.md §4).  Without a vector for it, a
 * 100 us timer reaps while I/O is outstanding.
 *
 * Note: mapping a slab for DMA pins it, all of it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "block/block.h"
#include "block/nvme.h"

#define IOQ_ENTRIES 256
#define MAX_RANGES  1024

struct range {
    uint64_t base, len, iova;
};

struct vdev {
    int container, group, device;
    volatile void *bar;
    size_t bar_size;
    struct nvme_ctrl ctrl;
    pthread_mutex_t admin_lock;
    pthread_mutex_t map_lock;
    struct range ranges[MAX_RANGES]; /* mapped for DMA */
    int nranges;
    uint64_t next_iova, iova_end; /* device addresses not handed out yet */
    int mem_fw;
    struct evpl_mem_framework fw; /* the memory layer keeps a pointer to it */
    uint32_t msix_count;          /* MSI-X vectors the device has (0: none usable) */
    int msix_on;                  /* MSI-X enabled through VFIO (under admin_lock) */
};

struct vqueue {
    struct nvme_ioq ioq;
    struct evpl_poll *poll;
    struct evpl_deferral ring;
    struct evpl_block_fifo backlog; /* waiting for a slot */
    int pinned;
    struct vdev *v;
    int busy; /* vq_reap is on the stack */
    int dead; /* closed from a completion callback: the outermost vq_reap frees it */
    /* a loop that never polls: the interrupt's eventfd, or a timer */
    int sleeping;
    int efd;
    struct evpl_event irq;
    struct evpl_timer tick; /* armed while pinned when sleeping without an eventfd */
    struct evpl_block_queue *q;
};

/* Turn MSI-X on, every vector and no routes yet (kernels before 6.5 cannot
 * add vectors once it is on; a controller refuses a completion queue with
 * an interrupt vector while MSI-X is off).  Under admin_lock. */
static int
msix_enable(struct vdev *v)
{
    size_t sz = sizeof(struct vfio_irq_set) + sizeof(int) * (size_t) v->msix_count;
    struct vfio_irq_set *set;
    int rc = 0;

    if (v->msix_on) {
        return 0;
    }
    set = evpl__zalloc(sz);
    set->argsz = (uint32_t) sz;
    set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    set->index = VFIO_PCI_MSIX_IRQ_INDEX;
    set->start = 0;
    set->count = v->msix_count;
    for (uint32_t i = 0; i < v->msix_count; i++) {
        ((int *) set->data)[i] = -1;
    }
    if (ioctl(v->device, VFIO_DEVICE_SET_IRQS, set) < 0) {
        rc = -errno;
    } else {
        v->msix_on = 1;
    }
    free(set);
    return rc;
} /* msix_enable */

/* Route MSI-X vector to efd (or, efd -1, nowhere).  Under admin_lock. */
static int
msix_route(struct vdev *v, uint32_t vector, int efd)
{
    /* the header, then one eventfd in its flexible data[] */
    union {
        struct vfio_irq_set set;
        char bytes[sizeof(struct vfio_irq_set) + sizeof(int)];
    } r;

    if (!v->msix_on || vector >= v->msix_count) {
        return -ENOSPC;
    }
    memset(&r, 0, sizeof(r));
    r.set.argsz = sizeof(struct vfio_irq_set) + sizeof(int);
    r.set.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    r.set.index = VFIO_PCI_MSIX_IRQ_INDEX;
    r.set.start = vector;
    r.set.count = 1;
    memcpy(r.bytes + sizeof(struct vfio_irq_set), &efd, sizeof(efd));
    return ioctl(v->device, VFIO_DEVICE_SET_IRQS, &r.set) < 0 ? -errno : 0;
} /* msix_route */

static void
vq_destroy(struct vqueue *vq)
{
    pthread_mutex_lock(&vq->v->admin_lock);
    if (vq->efd >= 0) {
        (void) msix_route(vq->v, vq->ioq.qid, -1);
    }
    nvme_drv_ioq_destroy(&vq->ioq);
    pthread_mutex_unlock(&vq->v->admin_lock);
    if (vq->efd >= 0) {
        close(vq->efd);
    }
    free(vq);
} /* vq_destroy */

static int
vfio_available(void)
{
    return evpl_shared->config->vfio_enabled && access("/dev/vfio/vfio", R_OK | W_OK) == 0;
} /* vfio_available */

static void
sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
} /* sleep_ms */

/* ---- DMA ---- */

static int
map_dma(struct vdev *v, void *p, uint64_t len, uint64_t *iova_out)
{
    struct vfio_iommu_type1_dma_map m = {
        .argsz = sizeof(m),
        .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
        .vaddr = (uintptr_t) p,
        .size = len,
    };
    uint64_t align = len >= (2u << 20) ? (2u << 20) : NVME_PAGE;
    int rc = 0;

    pthread_mutex_lock(&v->map_lock);
    m.iova = (v->next_iova + align - 1) & ~(align - 1);
    if (v->nranges == MAX_RANGES || m.iova + len > v->iova_end) {
        pthread_mutex_unlock(&v->map_lock);
        evpl_log_error("vfio", "no device address space left for %llu bytes",
                       (unsigned long long) len);
        return -ENOSPC;
    }
    if (ioctl(v->container, VFIO_IOMMU_MAP_DMA, &m) < 0) {
        rc = -errno;
        pthread_mutex_unlock(&v->map_lock);
        evpl_log_error("vfio", "DMA mapping of %llu bytes at %p: %s", (unsigned long long) len, p,
                       strerror(-rc));
        return rc;
    }
    v->next_iova = m.iova + len;
    v->ranges[v->nranges++] = (struct range){(uintptr_t) p, len, m.iova};
    pthread_mutex_unlock(&v->map_lock);
    if (iova_out) {
        *iova_out = m.iova;
    }
    return 0;
} /* map_dma */

static void
unmap_dma(struct vdev *v, void *p, uint64_t len)
{
    pthread_mutex_lock(&v->map_lock);
    for (int i = 0; i < v->nranges; i++) {
        if (v->ranges[i].base == (uintptr_t) p) {
            struct vfio_iommu_type1_dma_unmap u = {
                .argsz = sizeof(u), .iova = v->ranges[i].iova, .size = v->ranges[i].len};

            (void) ioctl(v->container, VFIO_IOMMU_UNMAP_DMA, &u);
            v->ranges[i] = v->ranges[--v->nranges];
            break;
        }
    }
    pthread_mutex_unlock(&v->map_lock);
} /* unmap_dma */

/* The IOMMU's usable device addresses (39 bits when it does not say). */
static void
iova_window(struct vdev *v)
{
    uint64_t words[512]; /* aligned for the capability structures */
    char *buf = (char *) words;
    struct vfio_iommu_type1_info *info = (struct vfio_iommu_type1_info *) buf;

    v->next_iova = 1u << 20;
    v->iova_end = 1ull << 39;
    memset(words, 0, sizeof(words));
    info->argsz = sizeof(words);
    if (ioctl(v->container, VFIO_IOMMU_GET_INFO, info) < 0 ||
        !(info->flags & VFIO_IOMMU_INFO_CAPS) || !info->cap_offset) {
        return;
    }
    /* capabilities may sit at 4-byte offsets: copy them out, never cast */
    for (uint32_t off = info->cap_offset; off && off + 16 <= sizeof(words);) {
        struct vfio_info_cap_header h;

        memcpy(&h, buf + off, sizeof(h));
        if (h.id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
            uint32_t nr;
            uint64_t best = 0;

            memcpy(&nr, buf + off + sizeof(h), sizeof(nr));
            /* the largest range above the first MiB */
            for (uint32_t i = 0; i < nr && off + 16 + (i + 1) * 16 <= sizeof(words); i++) {
                struct vfio_iova_range r;
                uint64_t lo, hi;

                memcpy(&r, buf + off + 16 + i * 16, sizeof(r));
                lo = r.start < (1u << 20) ? 1u << 20 : r.start;
                hi = r.end + 1;
                if (hi > lo && hi - lo > best) {
                    best = hi - lo;
                    v->next_iova = lo;
                    v->iova_end = hi;
                }
            }
            return;
        }
        off = h.next;
    }
} /* iova_window */

static void *
dma_alloc(void *arg, size_t bytes, uint64_t *iova)
{
    size_t len = (bytes + NVME_PAGE - 1) & ~(size_t) (NVME_PAGE - 1);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        return NULL;
    }
    if (map_dma(arg, p, len, iova) < 0) {
        munmap(p, len);
        return NULL;
    }
    return p;
} /* dma_alloc */

static void
dma_free(void *arg, void *p, size_t bytes)
{
    size_t len = (bytes + NVME_PAGE - 1) & ~(size_t) (NVME_PAGE - 1);

    unmap_dma(arg, p, len);
    munmap(p, len);
} /* dma_free */

static int
dma_translate(void *arg, const void *p, uint64_t len, uint64_t *iova)
{
    struct vdev *v = arg;
    uint64_t a = (uintptr_t) p;
    int rc = -1;

    pthread_mutex_lock(&v->map_lock);
    for (int i = 0; i < v->nranges; i++) {
        if (a >= v->ranges[i].base && a + len <= v->ranges[i].base + v->ranges[i].len) {
            *iova = v->ranges[i].iova + (a - v->ranges[i].base);
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&v->map_lock);
    return rc;
} /* dma_translate */

/* memory-layer hooks: every slab is mapped for the device */
static void *
slab_register(void *arg, void *base, uint64_t size)
{
    return map_dma(arg, base, size, NULL) == 0 ? arg : NULL;
} /* slab_register */

static void
slab_unregister(void *arg, void *base, uint64_t size, void *handle)
{
    unmap_dma(arg, base, size);
} /* slab_unregister */

/* ---- device ---- */

/* "bus:dev.fn" or "domain:bus:dev.fn", hex */
static int
parse_bdf(const char *uri, char *name, size_t len)
{
    unsigned dom = 0, bus, dev, fn;
    char tail;

    if (sscanf(uri, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) == 4 ||
        (dom = 0, sscanf(uri, "%x:%x.%x%c", &bus, &dev, &fn, &tail) == 3)) {
        if (bus > 0xff || dev > 0x1f || fn > 7 || dom > 0xffff) {
            return -EINVAL;
        }
        snprintf(name, len, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
        return 0;
    }
    return -EINVAL;
} /* parse_bdf */

static void
vdev_teardown(struct vdev *v)
{
    if (v->msix_on) {
        struct vfio_irq_set off = {.argsz = sizeof(off),
                                   .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                                   .index = VFIO_PCI_MSIX_IRQ_INDEX};

        (void) ioctl(v->device, VFIO_DEVICE_SET_IRQS, &off);
    }
    if (v->mem_fw >= 0) {
        evpl__mem_framework_unregister(v->mem_fw);
    }
    if (v->bar) {
        munmap((void *) v->bar, v->bar_size);
    }
    if (v->device >= 0) {
        close(v->device);
    }
    if (v->group >= 0) {
        close(v->group);
    }
    if (v->container >= 0) {
        close(v->container);
    }
    pthread_mutex_destroy(&v->admin_lock);
    pthread_mutex_destroy(&v->map_lock);
    free(v);
} /* vdev_teardown */

static int
vfio_open(struct evpl_block_device *dev, const char *uri)
{
    struct vfio_group_status gs = {.argsz = sizeof(gs)};
    struct vfio_region_info bar = {.argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX};
    struct vfio_region_info cfg = {.argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX};
    char name[32], link[256], path[320];
    const char *g;
    struct vdev *v;
    ssize_t n;
    uint16_t cmd;
    int rc;

    if (parse_bdf(uri, name, sizeof(name)) < 0) {
        return -EINVAL;
    }
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", name);
    n = readlink(path, link, sizeof(link) - 1);
    if (n < 0) {
        return -errno; /* no such device, or no IOMMU */
    }
    link[n] = '\0';
    g = strrchr(link, '/');
    v = evpl__zalloc(sizeof(*v));
    v->container = v->group = v->device = v->mem_fw = -1;
    pthread_mutex_init(&v->admin_lock, NULL);
    pthread_mutex_init(&v->map_lock, NULL);
    snprintf(path, sizeof(path), "/dev/vfio/%s", g ? g + 1 : link);
    v->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
    v->group = open(path, O_RDWR | O_CLOEXEC);
    if (v->container < 0 || v->group < 0 || ioctl(v->group, VFIO_GROUP_GET_STATUS, &gs) < 0 ||
        !(gs.flags & VFIO_GROUP_FLAGS_VIABLE) ||
        ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container) < 0 ||
        ioctl(v->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) {
        rc = errno ? -errno : -ENODEV;
        evpl_log_error("vfio", "%s: group %s is not usable (bound to vfio-pci?)", name, path);
        vdev_teardown(v);
        return rc;
    }
    v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, name);
    if (v->device < 0 || ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &bar) < 0 ||
        ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0) {
        rc = -errno;
        vdev_teardown(v);
        return rc;
    }
    iova_window(v);
    {
        struct vfio_irq_info irq = {.argsz = sizeof(irq), .index = VFIO_PCI_MSIX_IRQ_INDEX};

        if (ioctl(v->device, VFIO_DEVICE_GET_IRQ_INFO, &irq) == 0 &&
            (irq.flags & VFIO_IRQ_INFO_EVENTFD)) {
            v->msix_count = irq.count;
        }
    }
    /* bus master and memory space on */
    if (pread(v->device, &cmd, 2, (off_t) cfg.offset + 4) == 2) {
        cmd |= 0x6;
        (void) pwrite(v->device, &cmd, 2, (off_t) cfg.offset + 4);
    }
    v->bar_size = bar.size;
    v->bar =
        mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, v->device, (off_t) bar.offset);
    if (v->bar == MAP_FAILED) {
        v->bar = NULL;
        rc = -errno;
        vdev_teardown(v);
        return rc;
    }
    /* every slab (present and future) is mapped for the device */
    v->fw = (struct evpl_mem_framework){"vfio", slab_register, slab_unregister, v};
    v->mem_fw = evpl__mem_framework_register(&v->fw);
    if (v->mem_fw < 0) {
        rc = v->mem_fw;
        v->mem_fw = -1;
        vdev_teardown(v);
        return rc;
    }
    v->ctrl.regs.bar = v->bar;
    v->ctrl.regs.sleep_ms = sleep_ms;
    v->ctrl.dma = (struct nvme_dma){dma_alloc, dma_free, dma_translate, v};
    rc = nvme_drv_init(&v->ctrl, 1);
    if (rc < 0) {
        evpl_log_error("vfio", "%s: controller bring-up failed: %s", name, strerror(-rc));
        vdev_teardown(v);
        return rc;
    }
    dev->private_data = v;
    dev->size = v->ctrl.ns.blocks * v->ctrl.ns.block_size;
    dev->sector = v->ctrl.ns.block_size;
    dev->max_request = v->ctrl.ns.max_transfer ? v->ctrl.ns.max_transfer : 4u << 20;
    if (dev->max_request > (4u << 20)) {
        dev->max_request = 4u << 20; /* two PRP list pages */
    }
    dev->caps = EVPL_BLOCK_CAP_NO_BOUNCE | (v->ctrl.ns.deallocate ? EVPL_BLOCK_CAP_DISCARD : 0) |
                (v->ctrl.ns.write_zeroes ? EVPL_BLOCK_CAP_ZEROES : 0);
    dev->max_zeroes = 65536ull * dev->sector;
    dev->st_dev = 0xffff0000u; /* one controller, one open */
    dev->st_ino = (ino_t) strtoul(name + 5, NULL, 16) << 8 | (ino_t) strtoul(name + 8, NULL, 16);
    return 0;
} /* vfio_open */

static void
vfio_close(struct evpl_block_device *dev)
{
    struct vdev *v = dev->private_data;

    nvme_drv_fini(&v->ctrl);
    vdev_teardown(v);
} /* vfio_close */

/* ---- queues ---- */

static void
one_done(void *ctx, int status, void *arg)
{
    struct evpl_block_req *r = ctx;

    evpl__block_complete(arg, r, status ? -status : (int64_t) r->bytes);
} /* one_done */

static int vq_start(struct evpl *evpl, struct evpl_block_queue *q, struct evpl_block_req *r);

static void vq_tick(struct evpl *evpl, struct evpl_timer *timer);

/* I/O outstanding: keep the loop polling, or (a loop that sleeps without
 * an interrupt eventfd) reap on a timer; the eventfd needs nothing */
static void
vq_pin(struct evpl *evpl, struct vqueue *vq)
{
    if (vq->pinned) {
        return;
    }
    vq->pinned = 1;
    if (!vq->sleeping) {
        evpl_poll_pin(evpl);
    } else if (vq->efd < 0) {
        evpl_add_timer(evpl, &vq->tick, vq_tick, 100);
    }
} /* vq_pin */

static void
vq_unpin(struct evpl *evpl, struct vqueue *vq)
{
    if (!vq->pinned) {
        return;
    }
    vq->pinned = 0;
    if (!vq->sleeping) {
        evpl_poll_unpin(evpl);
    } else if (vq->efd < 0) {
        evpl_remove_timer(evpl, &vq->tick);
    }
} /* vq_unpin */

/* A callback may close the queue: the queue pair then lives until the
 * outermost reap is done with it, and q (freed by the block layer) is not
 * touched again. */
static void
vq_reap(struct evpl *evpl, struct evpl_block_queue *q)
{
    struct vqueue *vq = q->private_data;

    vq->busy++;
    if (vq->ioq.outstanding) {
        nvme_drv_reap(&vq->ioq, one_done, evpl);
    }
    if (--vq->busy == 0 && vq->dead) {
        vq_destroy(vq);
        return;
    }
    if (vq->dead) {
        return;
    }
    /* oldest first, until the queue pair is full again */
    while (vq->backlog.head && vq_start(evpl, q, vq->backlog.head)) {
        (void) evpl__block_fifo_pop(&vq->backlog);
    }
    if (!vq->ioq.outstanding && !vq->backlog.head) {
        vq_unpin(evpl, vq);
    }
} /* vq_reap */

/* the queue's MSI-X eventfd (a loop that never polls) */
static void
vq_irq(struct evpl *evpl, struct evpl_event *event)
{
    struct vqueue *vq = container_of(event, struct vqueue, irq);
    uint64_t n;

    (void) read(vq->efd, &n, sizeof(n));
    evpl__event_clear(evpl, event, EVPL_EV_READABLE);
    vq_reap(evpl, vq->q); /* may free vq */
} /* vq_irq */

/* no vector for the queue: reap on a timer while I/O is outstanding */
static void
vq_tick(struct evpl *evpl, struct evpl_timer *timer)
{
    struct vqueue *vq = container_of(timer, struct vqueue, tick);

    vq_reap(evpl, vq->q);
} /* vq_tick */

static void
vq_poll(struct evpl *evpl, void *arg)
{
    vq_reap(evpl, arg);
} /* vq_poll */

static void
vq_ring(struct evpl *evpl, void *arg)
{
    struct evpl_block_queue *q = arg;
    struct vqueue *vq = q->private_data;

    nvme_drv_ring(&vq->ioq);
} /* vq_ring */

/* Hand r to the controller; 0 when the queue pair has no room for it
 * (r untouched), else 1 (queued, or refused and failed on a later pass). */
static int
vq_start(struct evpl *evpl, struct evpl_block_queue *q, struct evpl_block_req *r)
{
    struct vqueue *vq = q->private_data;
    struct nvme_seg segs[EVPL_BLOCK_MAX_IOV];
    enum nvme_drv_op op;
    int rc;

    switch (r->op) {
        case EVPL_BLOCK_OP_READ:
            op = NVME_DRV_READ;
            break;
        case EVPL_BLOCK_OP_WRITE:
            op = r->native ? NVME_DRV_ZEROES : NVME_DRV_WRITE;
            break;
        case EVPL_BLOCK_OP_DISCARD:
            op = NVME_DRV_DEALLOCATE;
            break;
        default:
            op = NVME_DRV_FLUSH;
            break;
    }
    for (int i = 0; i < r->nkiov; i++) {
        segs[i].iova = (uintptr_t) r->kiov[i].iov_base;
        segs[i].len = r->kiov[i].iov_len;
    }
    rc = nvme_drv_submit(&vq->ioq, op, segs, r->nkiov, r->offset, r->bytes, r->sync, r);
    if (rc == -EAGAIN) {
        return 0;
    }
    if (rc < 0) {
        evpl_log_error("vfio",
                       "request refused: %s (memory not from the library allocator, or "
                       "pieces not page-aligned after the first)",
                       strerror(-rc));
        evpl__block_complete_later(evpl, r, rc);
        return 1;
    }
    evpl__defer_handover(evpl, &vq->ring); /* one doorbell write per pass */
    vq_pin(evpl, vq);
    return 1;
} /* vq_start */

static void
vq_submit(struct evpl *evpl, struct evpl_block_queue *q, struct evpl_block_req *r)
{
    struct vqueue *vq = q->private_data;

    /* behind earlier ones, or the queue pair is full: completions make room */
    if (vq->backlog.head || !vq_start(evpl, q, r)) {
        evpl__block_fifo_push(&vq->backlog, r);
        vq_pin(evpl, vq);
    }
} /* vq_submit */

static int
vq_open(struct evpl *evpl, struct evpl_block_queue *q)
{
    struct vdev *v = q->dev->private_data;
    struct vqueue *vq = evpl__zalloc(sizeof(*vq));
    int rc, irq;

    vq->v = v;
    vq->q = q;
    vq->efd = -1;
    vq->sleeping = !evpl->config.poll_mode;
    pthread_mutex_lock(&v->admin_lock);
    irq = vq->sleeping && v->msix_count;
    if (irq && (rc = msix_enable(v)) < 0) {
        evpl_log_error("vfio", "cannot enable MSI-X (%s): completions are polled every 100 us",
                       strerror(-rc));
        irq = 0;
    }
    rc = nvme_drv_ioq_create(&v->ctrl, &vq->ioq, IOQ_ENTRIES, irq ? v->msix_count : 0);
    if (rc == 0 && vq->ioq.irq) {
        vq->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (vq->efd >= 0 && (rc = msix_route(v, vq->ioq.qid, vq->efd)) < 0) {
            evpl_log_error("vfio",
                           "no interrupt for queue %u (%s): its completions are polled "
                           "every 100 us",
                           vq->ioq.qid, strerror(-rc));
            close(vq->efd);
            vq->efd = -1;
        }
        rc = 0;
    }
    pthread_mutex_unlock(&v->admin_lock);
    if (rc < 0) {
        free(vq);
        return rc;
    }
    if (vq->efd >= 0) {
        evpl__event_init(&vq->irq, vq->efd, vq_irq, NULL, NULL);
        vq->irq.flags = EVPL_EV_READ_INTEREST;
        if (evpl__event_add(evpl, &vq->irq) < 0) {
            pthread_mutex_lock(&v->admin_lock);
            (void) msix_route(v, vq->ioq.qid, -1);
            pthread_mutex_unlock(&v->admin_lock);
            close(vq->efd);
            vq->efd = -1; /* the timer reaps instead */
        }
    }
    evpl_deferral_init(&vq->ring, vq_ring, q);
    vq->poll = evpl_add_poll(evpl, NULL, NULL, vq_poll, q);
    q->private_data = vq;
    return 0;
} /* vq_open */

static void
vq_drain(struct evpl *evpl, struct evpl_block_queue *q)
{
    struct vqueue *vq = q->private_data;

    while (evpl__block_inflight(q)) {
        nvme_drv_ring(&vq->ioq);
        vq_reap(evpl, q);
    }
} /* vq_drain */

static void
vq_close(struct evpl *evpl, struct evpl_block_queue *q)
{
    struct vqueue *vq = q->private_data;

    evpl_remove_deferral(evpl, &vq->ring);
    evpl_remove_poll(evpl, vq->poll);
    if (vq->efd >= 0) {
        evpl__event_remove(evpl, &vq->irq);
    }
    vq_unpin(evpl, vq);
    if (vq->busy) {
        vq->dead = 1;
        return;
    }
    vq_destroy(vq);
} /* vq_close */

const struct evpl_block_backend evpl_block_vfio = {
    .id = EVPL_BLOCK_PROTOCOL_VFIO,
    .name = "vfio",
    .available = vfio_available,
    .open = vfio_open,
    .close = vfio_close,
    .queue_open = vq_open,
    .queue_close = vq_close,
    .submit = vq_submit,
    .drain = vq_drain,
};
