/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: vm */
/*
 * Block I/O on a real NVMe device: T_BLOCK names the protocol (io_uring,
 * libaio, io_uring_nvme or vfio) and T_BLOCK_DEVICE the device
 * (/dev/nvmeXnY, /dev/ngXnY or a PCI address bound to vfio-pci), else the
 * EVPL_NVME_* variables the VM harness exports.  The host has no NVMe:
 * without a device this skips (77).
 * Writes go to the device: give it a scratch device only.
 */
#include <evpl/evpl.h>

#include "t.h"

struct op {
    int done, status;
};

static void
op_done(struct evpl *evpl, int status, void *arg)
{
    struct op *o = arg;

    o->done++;
    o->status = status;
}

/* a queue closed from its own completion callback, reads in flight */
static struct evpl_block_queue *cb_q;
static int cb_calls[32];

static void
nothing(struct evpl *evpl, void *arg)
{
}

static void
close_in_callback(struct evpl *evpl, int status, void *arg)
{
    cb_calls[(intptr_t) arg]++;
    if (cb_q) {
        struct evpl_block_queue *q = cb_q;

        cb_q = NULL;
        evpl_block_close_queue(evpl, q); /* the rest complete inside */
    }
}

static int
wait_op(struct evpl *evpl, struct op *o)
{
    uint64_t end = t_now_ns() + 10000000000ull;

    while (!o->done) {
        T_OK(t_now_ns() < end);
        evpl_continue(evpl);
    }
    return o->status;
}

/* Interrupts VFIO delivered for its devices so far (/proc/interrupts). */
static uint64_t
vfio_interrupts(void)
{
    FILE *f = fopen("/proc/interrupts", "r");
    char line[1024];
    uint64_t sum = 0;

    if (!f) {
        return 0;
    }
    while (fgets(line, sizeof(line), f)) {
        char *p = strchr(line, ':');

        if (!p || !strstr(line, "vfio-msix")) {
            continue;
        }
        for (p++;;) {
            char *end;
            unsigned long long n = strtoull(p, &end, 10);

            if (end == p) {
                break;
            }
            sum += n;
            p = end;
        }
    }
    fclose(f);
    return sum;
}

int
main(void)
{
    const char *proto_name = getenv("T_BLOCK"), *uri = getenv("T_BLOCK_DEVICE");
    enum evpl_block_protocol_id proto;
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    struct evpl *evpl;
    struct evpl_iovec v[64], r;
    struct op o, ops[64];
    uint64_t size, span;
    int done = 0, errors = 0;
    uint8_t *expect;

    if (!uri || !*uri) {
        /* the VM harness exports the devices it made (tests/vm/guest.sh) */
        const char *var = !proto_name                                ? NULL
                          : strcmp(proto_name, "vfio") == 0          ? "EVPL_NVME_VFIO"
                          : strcmp(proto_name, "io_uring_nvme") == 0 ? "EVPL_NVME_CHARDEV"
                                                                     : "EVPL_NVME_BLOCKDEV";

        uri = var ? getenv(var) : NULL;
    }
    if (!proto_name || !uri || !*uri) {
        T_SKIP("no NVMe device here: runs in the VM (make test-vm)");
    }
    proto = strcmp(proto_name, "vfio") == 0            ? EVPL_BLOCK_PROTOCOL_VFIO
            : strcmp(proto_name, "io_uring_nvme") == 0 ? EVPL_BLOCK_PROTOCOL_IO_URING_NVME
            : strcmp(proto_name, "libaio") == 0        ? EVPL_BLOCK_PROTOCOL_LIBAIO
                                                       : EVPL_BLOCK_PROTOCOL_IO_URING;
    alarm(120);
    if (getenv("T_BLOCK_SLEEP")) {
        /* a loop that never polls: completions must wake it (VFIO: MSI-X) */
        struct evpl_thread_config *tc = evpl_thread_config_init();

        evpl_thread_config_set_poll_mode(tc, 0);
        evpl_thread_config_set_wait_ms(tc, 10); /* the quiet passes below */
        evpl = evpl_create(tc);
        evpl_thread_config_release(tc);
    } else {
        evpl = evpl_create(NULL);
    }
    dev = evpl_block_open_device(proto, uri);
    T_OK(dev != NULL);
    T_OK(evpl_block_open_device(proto, uri) == NULL); /* once per process */
    size = evpl_block_size(dev);
    fprintf(stderr, "%s %s: %llu bytes, sector %u, max request %llu\n", proto_name, uri,
            (unsigned long long) size, evpl_block_sector_size(dev),
            (unsigned long long) evpl_block_max_request_size(dev));
    T_GT(size, 64ull << 20);
    q = evpl_block_open_queue(evpl, dev);
    T_OK(q != NULL);

    /* integrity: 64 writes in flight over the first 64 MiB, then read */
    span = 64ull << 20;
    expect = calloc(1, 64 * 65536);
    for (int i = 0; i < 64; i++) {
        T_EQ(evpl_iovec_alloc(evpl, 65536, 4096, 1, 0, &v[i]), 1);
        for (int k = 0; k < 65536; k++) {
            ((uint8_t *) v[i].data)[k] = (uint8_t) (i * 31 + k * 7);
        }
        memcpy(expect + (size_t) i * 65536, v[i].data, 65536);
        memset(&ops[i], 0, sizeof(ops[i]));
        evpl_block_write(evpl, q, &v[i], 1, (uint64_t) i * (span / 64), i % 2, op_done, &ops[i]);
    }
    {
        uint64_t end = t_now_ns() + 10000000000ull;

        while (done < 64) {
            T_OK(t_now_ns() < end);
            evpl_continue(evpl);
            done = 0;
            for (int i = 0; i < 64; i++) {
                done += ops[i].done;
                errors += ops[i].done && ops[i].status;
            }
        }
        T_EQ(errors, 0);
    }
    memset(&o, 0, sizeof(o));
    evpl_block_flush(evpl, q, op_done, &o);
    T_EQ(wait_op(evpl, &o), 0);
    T_EQ(evpl_iovec_alloc(evpl, 65536, 4096, 1, 0, &r), 1);
    for (int i = 0; i < 64; i++) {
        memset(&o, 0, sizeof(o));
        evpl_block_read(evpl, q, &r, 1, (uint64_t) i * (span / 64), op_done, &o);
        T_EQ(wait_op(evpl, &o), 0);
        if (memcmp(r.data, expect + (size_t) i * 65536, 65536) != 0) {
            errors++;
        }
    }
    T_EQ(errors, 0);

    /* write-zeroes and discard; past the end */
    memset(&o, 0, sizeof(o));
    evpl_block_write_zeroes(evpl, q, 0, 1 << 20, op_done, &o);
    T_EQ(wait_op(evpl, &o), 0);
    memset(&o, 0, sizeof(o));
    evpl_block_read(evpl, q, &r, 1, 0, op_done, &o);
    T_EQ(wait_op(evpl, &o), 0);
    for (int k = 0; k < 65536; k++) {
        T_EQ(((uint8_t *) r.data)[k], 0);
    }
    /* length 0: at once, except on VFIO, where the device does write-zeroes
     * and discard (block.md §3 rule 1, §6 statement 5; QEMU's NVMe has
     * Write Zeroes and Deallocate) */
    {
        memset(&o, 0, sizeof(o));
        evpl_block_write_zeroes(evpl, q, 4096, 0, op_done, &o);
        T_EQ(o.done, proto == EVPL_BLOCK_PROTOCOL_VFIO ? 0 : 1);
        T_EQ(wait_op(evpl, &o), 0);
        T_EQ(o.done, 1);
        memset(&o, 0, sizeof(o));
        evpl_block_discard(evpl, q, 4096, 0, op_done, &o);
        T_EQ(o.done, proto == EVPL_BLOCK_PROTOCOL_VFIO ? 0 : 1);
        T_EQ(wait_op(evpl, &o), 0);
        T_EQ(o.done, 1);
    }
    memset(&o, 0, sizeof(o));
    evpl_block_discard(evpl, q, 1 << 20, 1 << 20, op_done, &o);
    if (proto != EVPL_BLOCK_PROTOCOL_VFIO) {
        T_EQ(o.done, 1); /* block.md: only VFIO sends it to the device */
    }
    T_EQ(wait_op(evpl, &o), 0);
    memset(&o, 0, sizeof(o));
    evpl_block_read(evpl, q, &r, 1, size, op_done, &o);
    T_OK(wait_op(evpl, &o) != 0);

    /* more requests at once than a queue pair holds (VFIO: 256 entries):
     * the rest wait and go in as completions make room, each once */
    {
        enum { BURST = 1000 };
        static struct op burst[BURST];
        uint64_t end = t_now_ns() + 20000000000ull;
        int all = 0;

        for (int i = 0; i < BURST; i++) {
            evpl_block_read(evpl, q, &r, 1, (uint64_t) (i % 512) << 12, op_done, &burst[i]);
        }
        while (!all) {
            T_OK(t_now_ns() < end);
            evpl_continue(evpl);
            all = 1;
            for (int i = 0; i < BURST && all; i++) {
                all = burst[i].done != 0;
            }
        }
        for (int i = 0; i < BURST; i++) {
            T_EQ(burst[i].done, 1);
            T_EQ(burst[i].status, 0);
        }
    }

    if (getenv("T_BLOCK_SLEEP") && proto == EVPL_BLOCK_PROTOCOL_VFIO) {
        /* the loop slept: what woke it were the queue's MSI-X interrupts (counted
         * while its vector is routed: the name goes with the route) */
        uint64_t n = vfio_interrupts();

        fprintf(stderr, "vfio MSI-X interrupts: %llu\n", (unsigned long long) n);
        T_GT(n, 0);
    }
    evpl_block_close_queue(evpl, q);

    /* a queue closed from one of its completion callbacks */
    cb_q = evpl_block_open_queue(evpl, dev);
    T_OK(cb_q != NULL);
    for (intptr_t i = 0; i < 32; i++) {
        evpl_block_read(evpl, cb_q, &v[i], 1, (uint64_t) i << 16, close_in_callback, (void *) i);
    }
    {
        uint64_t end = t_now_ns() + 10000000000ull;

        while (cb_q) {
            T_OK(t_now_ns() < end);
            evpl_continue(evpl);
        }
        /* a few passes more (none may block: nothing is in flight, and
         * these backends have no poll to keep the loop spinning) */
        for (int i = 0; i < 10; i++) {
            struct evpl_deferral d;

            evpl_deferral_init(&d, nothing, NULL);
            evpl_defer(evpl, &d);
            evpl_continue(evpl);
        }
    }
    for (int i = 0; i < 32; i++) {
        T_EQ(cb_calls[i], 1);
    }
    evpl_block_close_device(dev);
    for (int i = 0; i < 64; i++) {
        evpl_iovec_release(evpl, &v[i]);
    }
    evpl_iovec_release(evpl, &r);
    free(expect);
    evpl_destroy(evpl);
    return 0;
}
