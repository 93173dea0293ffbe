/* SPDX-License-Identifier: LGPL-2.1-only */
/* LABELS: unit block */
/*
 * evpl__block_complete_later, what a backend uses for a request it refuses
 * inside submit (VFIO: memory it cannot map; NVMe passthrough: no
 * submission entry): the callback runs on a later pass, never inside the
 * call, oldest first, each exactly once; closing the queue completes the
 * refused ones inside the close; a refused request's callback may close
 * the queue while others are still waiting (nothing touched after).
 */
#include <evpl/evpl.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "core/internal.h"

#include "t.h"

static char path[300];
static int order[16], norder;
static struct evpl_block_queue *close_me;
static struct evpl_block_queue *retry_q;
static int retry_left;

static void refuse(struct evpl *evpl, struct evpl_block_queue *q, int i);

static void
done(struct evpl *evpl, int status, void *arg)
{
    int i = (int) (intptr_t) arg;

    T_EQ(status, EAGAIN);
    order[norder++] = i;
    if (retry_q && retry_left > 0) {
        retry_left--;
        refuse(evpl, retry_q, i + 1); /* retried, and refused again */
    }
    if (close_me) {
        struct evpl_block_queue *q = close_me;

        close_me = NULL;
        evpl_block_close_queue(evpl, q);
    }
}

/* a request as evpl_block_read would have made it, refused by the backend */
static void
refuse(struct evpl *evpl, struct evpl_block_queue *q, int i)
{
    struct evpl_block_req *r = calloc(1, sizeof(*r));

    T_OK(r != NULL);
    r->queue = q;
    r->op = EVPL_BLOCK_OP_READ;
    r->bytes = 4096;
    r->callback = done;
    r->private_data = (void *) (intptr_t) i;
    q->outstanding++;
    atomic_fetch_add(&q->dev->stats.depth, 1);
    evpl__block_complete_later(evpl, r, -EAGAIN);
}

int
main(void)
{
    struct evpl *evpl = evpl_create(NULL);
    struct evpl_block_device *dev;
    struct evpl_block_queue *q;
    int fd;

    fd = t_temp_file(path, sizeof(path), "faillater", 1 << 20);
    close(fd);
    dev = evpl_block_open_device(EVPL_BLOCK_PROTOCOL_IO_URING, path);
    if (!dev) {
        dev = evpl_block_open_device(EVPL_BLOCK_PROTOCOL_LIBAIO, path);
    }
    if (!dev) {
        unlink(path);
        T_SKIP("no O_DIRECT block backend on %s", path);
    }

    /* later, in order, once */
    q = evpl_block_open_queue(evpl, dev);
    T_OK(q != NULL);
    for (int i = 0; i < 3; i++) {
        refuse(evpl, q, i);
    }
    T_EQ(norder, 0);
    evpl_continue(evpl);
    T_EQ(norder, 3);
    for (int i = 0; i < 3; i++) {
        T_EQ(order[i], i);
    }
    T_EQ(q->outstanding, 0);
    evpl_continue(evpl);
    T_EQ(norder, 3);

    /* a callback that retries what is refused again: one generation per
     * pass, never a spin inside the pass (nothing there could end it) */
    norder = 0;
    retry_q = q;
    retry_left = 5;
    refuse(evpl, q, 0);
    evpl_continue(evpl);
    T_EQ(norder, 1);
    {
        uint64_t end = t_now_ns() + 5000000000ull;

        while (norder < 6) {
            T_OK(t_now_ns() < end);
            evpl_continue(evpl);
        }
    }
    T_EQ(norder, 6);
    for (int i = 0; i < 6; i++) {
        T_EQ(order[i], i);
    }
    retry_q = NULL;

    /* closed with refused ones waiting: they end inside the close */
    norder = 0;
    refuse(evpl, q, 0);
    refuse(evpl, q, 1);
    evpl_block_close_queue(evpl, q);
    T_EQ(norder, 2);
    T_EQ(order[0], 0);
    T_EQ(order[1], 1);
    evpl_continue(evpl); /* the deferral went with the queue */
    T_EQ(norder, 2);

    /* the first refused request's callback closes the queue */
    norder = 0;
    q = evpl_block_open_queue(evpl, dev);
    T_OK(q != NULL);
    for (int i = 0; i < 4; i++) {
        refuse(evpl, q, i);
    }
    close_me = q;
    evpl_continue(evpl);
    T_EQ(norder, 4);
    for (int i = 0; i < 4; i++) {
        T_EQ(order[i], i);
    }
    evpl_continue(evpl);
    T_EQ(norder, 4);

    evpl_block_close_device(dev);
    evpl_destroy(evpl);
    unlink(path);
    return 0;
}
