/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Reading RPC and RPC-over-RDMA headers out of received iovecs: any field
 * may be split between two iovecs (a stream's receive chunks end anywhere).
 */
#include "rpc2/rpc2.h"

int
rpc2_rd_bytes(struct rpc2_rd *r, void *dst, uint32_t n)
{
    uint8_t *out = dst;

    if ((uint64_t) r->pos + n > r->len) {
        return -1;
    }
    while (n) {
        uint32_t avail, take;

        if (r->i >= r->niov) {
            return -1;
        }
        avail = r->iov[r->i].length - r->off;
        if (avail == 0) {
            r->i++;
            r->off = 0;
            continue;
        }
        take = avail < n ? avail : n;
        if (out) {
            memcpy(out, (const char *) r->iov[r->i].data + r->off, take);
            out += take;
        }
        r->off += take;
        r->pos += take;
        n -= take;
    }
    return 0;
}

int
rpc2_rd_u32(struct rpc2_rd *r, uint32_t *v)
{
    uint8_t b[4];

    if (r->i < r->niov && r->iov[r->i].length - r->off >= 4 && (uint64_t) r->pos + 4 <= r->len) {
        const uint8_t *p = (const uint8_t *) r->iov[r->i].data + r->off;

        *v = (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
        r->off += 4;
        r->pos += 4;
        return 0;
    }
    if (rpc2_rd_bytes(r, b, 4) < 0) {
        return -1;
    }
    *v = (uint32_t) b[0] << 24 | (uint32_t) b[1] << 16 | (uint32_t) b[2] << 8 | b[3];
    return 0;
}

int
rpc2_rd_u64(struct rpc2_rd *r, uint64_t *v)
{
    uint32_t hi, lo;

    if (rpc2_rd_u32(r, &hi) < 0 || rpc2_rd_u32(r, &lo) < 0) {
        return -1;
    }
    *v = (uint64_t) hi << 32 | lo;
    return 0;
}

/* A counted opaque of at most max bytes; dst NULL skips it. */
int
rpc2_rd_opaque(struct rpc2_rd *r, void *dst, uint32_t max, uint32_t *len)
{
    uint32_t n, pad;

    if (rpc2_rd_u32(r, &n) < 0 || n > max) {
        return -1;
    }
    pad = (4 - (n & 3)) & 3;
    if (rpc2_rd_bytes(r, dst, n) < 0 || rpc2_rd_bytes(r, NULL, pad) < 0) {
        return -1;
    }
    if (len) {
        *len = n;
    }
    return 0;
}
