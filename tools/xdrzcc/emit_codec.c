/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The generated .c: a private copy of the encoder/decoder runtime
 * (static, so several generated files link together), then for every
 * type T four static functions -- xdr_enc_T, xdr_dec_T, xdr_len_T and,
 * when T holds a zcopaque, xdr_zw_T (counts or releases its iovecs) --
 * and the public marshall_T / unmarshall_T / marshall_length_T.
 *
 * Wire rules (RFC 4506): big-endian 4-byte units, zero padding.  The
 * decoder never reads past the message: every length is checked against
 * what is left (in 64 bits) before anything is allocated or copied.
 */
#include <stdarg.h>
#include <string.h>

#include "xdrzcc.h"

/* ---- the runtime, emitted into every generated .c ---- */

static const char runtime_enc_head[] =
    "/*\n"
    " * Encoder: bytes go into the scratch iovecs (e->scr) contiguously; out[]\n"
    " * collects the message as pieces of scratch, each with its own reference,\n"
    " * interleaved with moved zcopaque payloads.\n"
    " */\n"
    "struct xrt_enc {\n"
    "    const xdr_iovec *scr;\n"
    "    int              nscr;\n"
    "    int              si;   /* scratch iovec being written */\n"
    "    uint32_t         so;   /* offset in it */\n"
    "    int              open; /* scr[si] from off on is an unfinished piece of out[] */\n"
    "    uint32_t         off;\n"
    "    xdr_iovec       *out;\n"
    "    int              nout;\n"
    "    int              maxout;\n"
    "    uint64_t         total; /* message bytes so far (scratch and payloads) */\n"
    "    uint64_t         base;  /* bytes in front of the values (RPC head-room) */\n"
    "    struct evpl     *evpl;\n";

static const char runtime_enc_rpc_fields[] =
    "    /* RPC-over-RDMA: the first zcopaque may go to a chunk instead */\n"
    "    int                          chunk_mode; /* XRT_CHUNK_READ / XRT_CHUNK_WRITE */\n"
    "    int                          chunk_done; /* the first zcopaque was seen */\n"
    "    int                          chunk_used; /* chunk filled: chunk_saved restores it */\n"
    "    struct evpl_rpc2_rdma_chunk *chunk;\n"
    "    xdr_dbuf                    *chunk_dbuf;\n"
    "    struct evpl_rpc2_rdma_chunk  chunk_saved;\n";

static const char runtime_enc_body[] =
    "};\n"
    "\n"
    "static inline void\n"
    "xrt_enc_init(struct xrt_enc *e, const xdr_iovec *scr, int nscr, xdr_iovec *out, int maxout,\n"
    "             struct evpl *evpl)\n"
    "{\n"
    "    memset(e, 0, sizeof(*e));\n"
    "    e->scr    = scr;\n"
    "    e->nscr   = nscr > 0 ? nscr : 0;\n"
    "    e->out    = out;\n"
    "    e->maxout = maxout > 0 ? maxout : 0;\n"
    "    e->evpl   = evpl;\n"
    "}\n"
    "\n"
    "/* End the unfinished piece: out[] gets it, with a reference of its own. */\n"
    "static inline int\n"
    "xrt_close(struct xrt_enc *e)\n"
    "{\n"
    "    if (e->open) {\n"
    "        e->open = 0;\n"
    "        if (e->so > e->off) {\n"
    "            if (unlikely(e->nout >= e->maxout)) {\n"
    "                return -1;\n"
    "            }\n"
    "            evpl_iovec_clone_segment(&e->out[e->nout++], &e->scr[e->si], e->off,\n"
    "                                     e->so - e->off);\n"
    "        }\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "/* Make scr[si] + so writable, with a piece open there. */\n"
    "static inline int\n"
    "xrt_room(struct xrt_enc *e)\n"
    "{\n"
    "    while (e->si < e->nscr && e->so >= e->scr[e->si].length) {\n"
    "        if (xrt_close(e)) {\n"
    "            return -1;\n"
    "        }\n"
    "        e->si++;\n"
    "        e->so = 0;\n"
    "    }\n"
    "    if (unlikely(e->si >= e->nscr)) {\n"
    "        return -1; /* out of scratch */\n"
    "    }\n"
    "    if (!e->open) {\n"
    "        e->open = 1;\n"
    "        e->off  = e->so;\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "/* Append len bytes of src (zeros when src is NULL). */\n"
    "static inline int\n"
    "xrt_put(struct xrt_enc *e, const void *src, uint32_t len)\n"
    "{\n"
    "    const uint8_t *p = (const uint8_t *) src;\n"
    "\n"
    "    while (len) {\n"
    "        uint32_t n;\n"
    "\n"
    "        if (xrt_room(e)) {\n"
    "            return -1;\n"
    "        }\n"
    "        n = e->scr[e->si].length - e->so;\n"
    "        if (n > len) {\n"
    "            n = len;\n"
    "        }\n"
    "        if (p) {\n"
    "            memcpy((uint8_t *) e->scr[e->si].data + e->so, p, n);\n"
    "            p += n;\n"
    "        } else {\n"
    "            memset((uint8_t *) e->scr[e->si].data + e->so, 0, n);\n"
    "        }\n"
    "        e->so    += n;\n"
    "        e->total += n;\n"
    "        len      -= n;\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_put_u32(struct xrt_enc *e, uint32_t v)\n"
    "{\n"
    "    uint8_t b[4] = { (uint8_t) (v >> 24), (uint8_t) (v >> 16), (uint8_t) (v >> 8), (uint8_t) "
    "v };\n"
    "\n"
    "    if (__builtin_expect(e->open && e->scr[e->si].length - e->so >= 4, 1)) {\n"
    "        memcpy((uint8_t *) e->scr[e->si].data + e->so, b, 4);\n"
    "        e->so    += 4;\n"
    "        e->total += 4;\n"
    "        return 0;\n"
    "    }\n"
    "    return xrt_put(e, b, 4);\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_put_u64(struct xrt_enc *e, uint64_t v)\n"
    "{\n"
    "    return xrt_put_u32(e, (uint32_t) (v >> 32)) || xrt_put_u32(e, (uint32_t) v) ? -1 : 0;\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_put_float(struct xrt_enc *e, float v)\n"
    "{\n"
    "    uint32_t u;\n"
    "\n"
    "    memcpy(&u, &v, sizeof(u));\n"
    "    return xrt_put_u32(e, u);\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_put_double(struct xrt_enc *e, double v)\n"
    "{\n"
    "    uint64_t u;\n"
    "\n"
    "    memcpy(&u, &v, sizeof(u));\n"
    "    return xrt_put_u64(e, u);\n"
    "}\n"
    "\n"
    "/* n bytes, then zeros up to a multiple of 4 */\n"
    "static inline int\n"
    "xrt_put_bytes(struct xrt_enc *e, const void *p, uint32_t n)\n"
    "{\n"
    "    if (unlikely(n && !p)) {\n"
    "        return -1;\n"
    "    }\n"
    "    if (xrt_put(e, p, n)) {\n"
    "        return -1;\n"
    "    }\n"
    "    return xrt_put(e, NULL, (4 - (n & 3)) & 3);\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_put_opaque(struct xrt_enc *e, const xdr_opaque *o, uint32_t max)\n"
    "{\n"
    "    if (unlikely(o->len > max) || xrt_put_u32(e, o->len)) {\n"
    "        return -1;\n"
    "    }\n"
    "    return xrt_put_bytes(e, o->data, o->len);\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_put_string(struct xrt_enc *e, const xdr_string *s, uint32_t max)\n"
    "{\n"
    "    if (unlikely(s->len > max) || xrt_put_u32(e, s->len)) {\n"
    "        return -1;\n"
    "    }\n"
    "    return xrt_put_bytes(e, s->str, s->len);\n"
    "}\n"
    "\n"
    "/* take the reference of *iov (which then owns nothing) and drop it */\n"
    "static inline void\n"
    "xrt_drop(struct evpl *evpl, xdr_iovec *iov)\n"
    "{\n"
    "    xdr_iovec tmp;\n"
    "\n"
    "    evpl_iovec_move(&tmp, iov);\n"
    "    evpl_iovec_release(evpl, &tmp);\n"
    "}\n"
    "\n";

static const char runtime_chunk_defs[] = "#define XRT_CHUNK_READ  1\n"
                                         "#define XRT_CHUNK_WRITE 2\n"
                                         "\n";

static const char runtime_put_chunk[] =
    "/*\n"
    " * RFC 8166 direct data placement of a zcopaque payload: its length word\n"
    " * stays inline; the payload (and its XDR padding) goes to the chunk.  A\n"
    " * read chunk (call arguments) records where the payload would have been,\n"
    " * counted from the start of the arguments.\n"
    " */\n"
    "static inline int\n"
    "xrt_put_chunk(struct xrt_enc *e, const xdr_iovecr *r, int n)\n"
    "{\n"
    "    struct evpl_rpc2_rdma_chunk *c = e->chunk;\n"
    "    xdr_iovec                   *arr;\n"
    "    int                          k;\n"
    "\n"
    "    arr = (xdr_iovec *) xdr_dbuf_alloc_space(sizeof(*arr) * (size_t) (n ? n : 1), "
    "e->chunk_dbuf);\n"
    "    if (unlikely(!arr)) {\n"
    "        return -1;\n"
    "    }\n"
    "    e->chunk_saved = *c;\n"
    "    e->chunk_used  = 1;\n"
    "    c->iov         = arr;\n"
    "    c->niov        = 0;\n"
    "    c->length      = r->length;\n"
    "    if (e->chunk_mode == XRT_CHUNK_READ) {\n"
    "        c->xdr_position = (uint32_t) (e->total - e->base);\n"
    "    }\n"
    "    for (k = 0; k < r->niov; k++) {\n"
    "        if (r->iov[k].length) {\n"
    "            evpl_iovec_move(&c->iov[c->niov++], &r->iov[k]);\n"
    "        } else {\n"
    "            xrt_drop(e->evpl, &r->iov[k]);\n"
    "        }\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "\n";

static const char runtime_put_zc_head[] =
    "/* zcopaque: the payload iovecs are moved into the message */\n"
    "static inline int\n"
    "xrt_put_zc(struct xrt_enc *e, const xdr_iovecr *r, uint32_t max)\n"
    "{\n"
    "    uint64_t sum = 0;\n"
    "    int      k, n = 0;\n"
    "\n"
    "    if (unlikely(r->length > max || r->niov < 0 || (r->niov && !r->iov))) {\n"
    "        return -1;\n"
    "    }\n"
    "    for (k = 0; k < r->niov; k++) {\n"
    "        if (unlikely(!r->iov[k].data)) {\n"
    "            return -1; /* moved away already */\n"
    "        }\n"
    "        sum += r->iov[k].length;\n"
    "        n   += r->iov[k].length != 0;\n"
    "    }\n"
    "    if (unlikely(sum != r->length) || xrt_put_u32(e, r->length)) {\n"
    "        return -1;\n"
    "    }\n";

static const char runtime_put_zc_chunk[] =
    "    if (e->chunk_mode && !e->chunk_done) {\n"
    "        e->chunk_done = 1;\n"
    "        if (r->length &&\n"
    "            (e->chunk_mode == XRT_CHUNK_READ || e->chunk->max_length >= r->length)) {\n"
    "            return xrt_put_chunk(e, r, n);\n"
    "        }\n"
    "    }\n";

static const char runtime_put_zc_tail[] =
    "    /* payload pieces go between two pieces of scratch (none: no split) */\n"
    "    if (n && (xrt_close(e) || e->maxout - e->nout < n)) {\n"
    "        return -1;\n"
    "    }\n"
    "    for (k = 0; k < r->niov; k++) {\n"
    "        if (r->iov[k].length) {\n"
    "            evpl_iovec_move(&e->out[e->nout++], &r->iov[k]);\n"
    "        } else {\n"
    "            xrt_drop(e->evpl, &r->iov[k]);\n"
    "        }\n"
    "    }\n"
    "    e->total += r->length;\n"
    "    return xrt_put(e, NULL, (4 - (r->length & 3)) & 3);\n"
    "}\n"
    "\n"
    "/* Failure: drop every reference out[] holds. */\n"
    "static inline void\n"
    "xrt_enc_abort(struct xrt_enc *e)\n"
    "{\n"
    "    int k;\n"
    "\n"
    "    e->open = 0;\n"
    "    for (k = 0; k < e->nout; k++) {\n"
    "        evpl_iovec_release(e->evpl, &e->out[k]);\n"
    "    }\n"
    "    e->nout = 0;\n";

static const char runtime_abort_chunk[] =
    "    if (e->chunk_used) {\n"
    "        for (k = 0; k < e->chunk->niov; k++) {\n"
    "            evpl_iovec_release(e->evpl, &e->chunk->iov[k]);\n"
    "        }\n"
    "        *e->chunk     = e->chunk_saved;\n"
    "        e->chunk_used = 0;\n"
    "    }\n";

static const char runtime_dec_head[] =
    "}\n"
    "\n"
    "/* zcopaque clones taken while decoding, released if decoding fails */\n"
    "struct xrt_taken {\n"
    "    struct xrt_taken *next;\n"
    "    xdr_iovec        *iov;\n"
    "    int               niov;\n"
    "};\n"
    "\n"
    "/* Decoder over iovecs split anywhere; limit bounds every read.  Types\n"
    " * that reach themselves nest at most XRT_MAX_DEPTH deep. */\n"
    "#define XRT_MAX_DEPTH 1000\n"
    "struct xrt_dec {\n"
    "    const xdr_iovec   *iov;\n"
    "    int                niov;\n"
    "    int                i;     /* current iovec */\n"
    "    uint32_t           off;   /* offset in it */\n"
    "    uint64_t           pos;   /* bytes consumed */\n"
    "    uint64_t           limit; /* bytes that may be consumed */\n"
    "    xdr_dbuf          *dbuf;\n"
    "    struct evpl       *evpl;\n"
    "    struct xrt_taken  *taken;\n"
    "    uint32_t           depth; /* nesting of types that reach themselves */\n";

static const char runtime_dec_rpc_fields[] =
    "    /* RPC-over-RDMA: the first zcopaque aliases this chunk when it has data */\n"
    "    struct evpl_rpc2_rdma_chunk *chunk;\n"
    "    int                          chunk_done;\n"
    "    int                          chunk_used; /* the value aliases the chunk */\n"
    "    int                          chunk_positioned; /* a read chunk: at xdr_position */\n";

static const char runtime_dec_body[] =
    "};\n"
    "\n"
    "static inline void\n"
    "xrt_dec_init(struct xrt_dec *d, const xdr_iovec *iov, int niov, xdr_dbuf *dbuf,\n"
    "             struct evpl *evpl)\n"
    "{\n"
    "    int k;\n"
    "\n"
    "    memset(d, 0, sizeof(*d));\n"
    "    d->iov  = iov;\n"
    "    d->niov = niov > 0 ? niov : 0;\n"
    "    d->dbuf = dbuf;\n"
    "    d->evpl = evpl;\n"
    "    for (k = 0; k < d->niov; k++) {\n"
    "        d->limit += iov[k].length;\n"
    "    }\n"
    "}\n"
    "\n"
    "/* Copy len bytes to dst (skip them when dst is NULL). */\n"
    "static inline int\n"
    "xrt_get(struct xrt_dec *d, void *dst, uint32_t len)\n"
    "{\n"
    "    uint8_t *p = (uint8_t *) dst;\n"
    "\n"
    "    if (unlikely(len > d->limit - d->pos)) {\n"
    "        return -1;\n"
    "    }\n"
    "    /* limit never exceeds the iovecs' total, so the bytes are there */\n"
    "    while (len) {\n"
    "        uint32_t n;\n"
    "\n"
    "        while (d->off >= d->iov[d->i].length) {\n"
    "            d->i++;\n"
    "            d->off = 0;\n"
    "        }\n"
    "        n = d->iov[d->i].length - d->off;\n"
    "        if (n > len) {\n"
    "            n = len;\n"
    "        }\n"
    "        if (p) {\n"
    "            memcpy(p, (const uint8_t *) d->iov[d->i].data + d->off, n);\n"
    "            p += n;\n"
    "        }\n"
    "        d->off += n;\n"
    "        d->pos += n;\n"
    "        len    -= n;\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_get_u32(struct xrt_dec *d, uint32_t *v)\n"
    "{\n"
    "    const uint8_t *p;\n"
    "    uint8_t        b[4];\n"
    "\n"
    "    if (__builtin_expect(d->limit - d->pos >= 4 && d->i < d->niov &&\n"
    "                             d->iov[d->i].length - d->off >= 4, 1)) {\n"
    "        p       = (const uint8_t *) d->iov[d->i].data + d->off;\n"
    "        d->off += 4;\n"
    "        d->pos += 4;\n"
    "    } else {\n"
    "        if (xrt_get(d, b, 4)) {\n"
    "            return -1;\n"
    "        }\n"
    "        p = b;\n"
    "    }\n"
    "    *v = (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_get_i32(struct xrt_dec *d, int32_t *v)\n"
    "{\n"
    "    uint32_t u;\n"
    "\n"
    "    if (xrt_get_u32(d, &u)) {\n"
    "        return -1;\n"
    "    }\n"
    "    *v = (int32_t) u;\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_get_u64(struct xrt_dec *d, uint64_t *v)\n"
    "{\n"
    "    uint32_t hi, lo;\n"
    "\n"
    "    if (xrt_get_u32(d, &hi) || xrt_get_u32(d, &lo)) {\n"
    "        return -1;\n"
    "    }\n"
    "    *v = (uint64_t) hi << 32 | lo;\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_get_i64(struct xrt_dec *d, int64_t *v)\n"
    "{\n"
    "    uint64_t u;\n"
    "\n"
    "    if (xrt_get_u64(d, &u)) {\n"
    "        return -1;\n"
    "    }\n"
    "    *v = (int64_t) u;\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_get_float(struct xrt_dec *d, float *v)\n"
    "{\n"
    "    uint32_t u;\n"
    "\n"
    "    if (xrt_get_u32(d, &u)) {\n"
    "        return -1;\n"
    "    }\n"
    "    memcpy(v, &u, sizeof(u));\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_get_double(struct xrt_dec *d, double *v)\n"
    "{\n"
    "    uint64_t u;\n"
    "\n"
    "    if (xrt_get_u64(d, &u)) {\n"
    "        return -1;\n"
    "    }\n"
    "    memcpy(v, &u, sizeof(u));\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "/* bool and value-follows flags: 0 or 1, nothing else */\n"
    "static inline int\n"
    "xrt_get_bool(struct xrt_dec *d, xdr_bool *v)\n"
    "{\n"
    "    uint32_t u;\n"
    "\n"
    "    if (xrt_get_u32(d, &u) || u > 1) {\n"
    "        return -1;\n"
    "    }\n"
    "    *v = u;\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "/* count values of at least min bytes each cannot fit in what is left */\n"
    "static inline int\n"
    "xrt_room_for(const struct xrt_dec *d, uint32_t count, uint64_t min)\n"
    "{\n"
    "    return (uint64_t) count * min > d->limit - d->pos ? -1 : 0;\n"
    "}\n"
    "\n"
    "static inline void *\n"
    "xrt_alloc(struct xrt_dec *d, uint64_t size)\n"
    "{\n"
    "    if ((uint64_t) (size_t) size != size) {\n"
    "        return NULL;\n"
    "    }\n"
    "    return xdr_dbuf_alloc_space((size_t) size, d->dbuf);\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_get_bytes(struct xrt_dec *d, void *p, uint32_t n)\n"
    "{\n"
    "    if (xrt_get(d, p, n)) {\n"
    "        return -1;\n"
    "    }\n"
    "    return xrt_get(d, NULL, (4 - (n & 3)) & 3);\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_get_opaque(struct xrt_dec *d, xdr_opaque *o, uint32_t max)\n"
    "{\n"
    "    uint32_t len;\n"
    "\n"
    "    if (xrt_get_u32(d, &len) || len > max || len > d->limit - d->pos) {\n"
    "        return -1;\n"
    "    }\n"
    "    o->len  = len;\n"
    "    o->data = NULL;\n"
    "    if (len && !(o->data = xrt_alloc(d, len))) {\n"
    "        return -1;\n"
    "    }\n"
    "    return xrt_get_bytes(d, o->data, len);\n"
    "}\n"
    "\n"
    "/* strings are NUL-terminated in the dbuf */\n"
    "static inline int\n"
    "xrt_get_string(struct xrt_dec *d, xdr_string *s, uint32_t max)\n"
    "{\n"
    "    uint32_t len;\n"
    "    char    *p;\n"
    "\n"
    "    if (xrt_get_u32(d, &len) || len > max || len > d->limit - d->pos) {\n"
    "        return -1;\n"
    "    }\n"
    "    p = (char *) xrt_alloc(d, (uint64_t) len + 1);\n"
    "    if (!p || xrt_get_bytes(d, p, len)) {\n"
    "        return -1;\n"
    "    }\n"
    "    p[len] = '\\0';\n"
    "    s->str = p;\n"
    "    s->len = len;\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "/* zcopaque: clones of the covered bytes (possibly several iovecs) */\n"
    "static inline int\n"
    "xrt_get_zc(struct xrt_dec *d, xdr_iovecr *r, uint32_t max)\n"
    "{\n"
    "    struct xrt_taken *t;\n"
    "    uint32_t          len, left, off, pad;\n"
    "    int               i, n;\n"
    "\n"
    "    if (xrt_get_u32(d, &len) || len > max) {\n"
    "        return -1;\n"
    "    }\n";

static const char runtime_get_zc_chunk[] =
    "    /* placed directly (RFC 8166): a read chunk at this position, or a\n"
    "     * write chunk (no position: the first zcopaque of a result); its\n"
    "     * bytes are this length, with at most the XDR roundup after them\n"
    "     * (the value's iovecs add up to len: they were the whole chunk, and\n"
    "     * a chunk anywhere went to the first zcopaque: helper-121) */\n"
    "    if (d->chunk && !d->chunk_done &&\n"
    "        (!d->chunk_positioned || d->chunk->xdr_position == d->pos)) {\n"
    "        d->chunk_done = 1;\n"
    "        if (d->chunk->niov > 0) {\n"
    "            uint64_t have = 0;\n"
    "\n"
    "            for (i = 0; i < d->chunk->niov; i++) {\n"
    "                have += d->chunk->iov[i].length;\n"
    "            }\n"
    "            if (len > have || have - len > 3) {\n"
    "                return -1;\n"
    "            }\n"
    "            for (i = 0, left = len; i < d->chunk->niov; i++) {\n"
    "                if (d->chunk->iov[i].length > left) {\n"
    "                    d->chunk->iov[i].length = left; /* (the roundup) */\n"
    "                }\n"
    "                left -= d->chunk->iov[i].length;\n"
    "            }\n"
    "            r->iov    = d->chunk->iov;\n"
    "            r->niov   = d->chunk->niov;\n"
    "            r->length = len;\n"
    "            d->chunk_used = 1;\n"
    "            return 0;\n"
    "        }\n"
    "    }\n";

static const char runtime_get_zc_tail[] =
    "    pad = (4 - (len & 3)) & 3;\n"
    "    if ((uint64_t) len + pad > d->limit - d->pos) {\n"
    "        return -1;\n"
    "    }\n"
    "    r->iov    = NULL;\n"
    "    r->niov   = 0;\n"
    "    r->length = len;\n"
    "    if (!len) {\n"
    "        return 0;\n"
    "    }\n"
    "    /* how many input pieces the bytes span */\n"
    "    for (n = 0, i = d->i, off = d->off, left = len; left; n++) {\n"
    "        uint32_t avail;\n"
    "\n"
    "        while (off >= d->iov[i].length) {\n"
    "            i++;\n"
    "            off = 0;\n"
    "        }\n"
    "        avail = d->iov[i].length - off;\n"
    "        if (avail > left) {\n"
    "            avail = left;\n"
    "        }\n"
    "        off  += avail;\n"
    "        left -= avail;\n"
    "    }\n"
    "    t = (struct xrt_taken *) xrt_alloc(d, sizeof(*t) + sizeof(xdr_iovec) * (uint64_t) n);\n"
    "    if (!t) {\n"
    "        return -1;\n"
    "    }\n"
    "    t->iov  = (xdr_iovec *) (t + 1);\n"
    "    t->niov = 0;\n"
    "    for (left = len; left;) {\n"
    "        uint32_t avail;\n"
    "\n"
    "        while (d->off >= d->iov[d->i].length) {\n"
    "            d->i++;\n"
    "            d->off = 0;\n"
    "        }\n"
    "        avail = d->iov[d->i].length - d->off;\n"
    "        if (avail > left) {\n"
    "            avail = left;\n"
    "        }\n"
    "        evpl_iovec_clone_segment(&t->iov[t->niov++], &d->iov[d->i], d->off, avail);\n"
    "        d->off += avail;\n"
    "        d->pos += avail;\n"
    "        left   -= avail;\n"
    "    }\n"
    "    t->next  = d->taken;\n"
    "    d->taken = t;\n"
    "    r->iov   = t->iov;\n"
    "    r->niov  = t->niov;\n"
    "    return xrt_get(d, NULL, pad);\n"
    "}\n"
    "\n"
    "/* opaque_union bodies: decode within blen bytes, then exactly to their end */\n"
    "static inline int\n"
    "xrt_push(struct xrt_dec *d, uint32_t blen, uint64_t *saved)\n"
    "{\n"
    "    if (blen > d->limit - d->pos) {\n"
    "        return -1;\n"
    "    }\n"
    "    *saved   = d->limit;\n"
    "    d->limit = d->pos + blen;\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "static inline int\n"
    "xrt_pop(struct xrt_dec *d, uint64_t saved)\n"
    "{\n"
    "    if (d->pos != d->limit) {\n"
    "        return -1;\n"
    "    }\n"
    "    d->limit = saved;\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "/* Failure: release the clones taken so far. */\n"
    "static inline void\n"
    "xrt_dec_abort(struct xrt_dec *d)\n"
    "{\n"
    "    struct xrt_taken *t;\n"
    "    int               k;\n"
    "\n"
    "    for (t = d->taken; t; t = t->next) {\n"
    "        for (k = 0; k < t->niov; k++) {\n"
    "            evpl_iovec_release(d->evpl, &t->iov[k]);\n"
    "        }\n"
    "    }\n"
    "    d->taken = NULL;\n"
    "}\n"
    "\n"
    "static inline uint64_t\n"
    "xrt_pad4(uint64_t n)\n"
    "{\n"
    "    return (n + 3) & ~(uint64_t) 3;\n"
    "}\n"
    "\n"
    "/* Walks over zcopaque members: count their iovecs, or release those the\n"
    " * value still owns (marshalling takes them, on failure too). */\n"
    "struct xrt_zw {\n"
    "    struct evpl *evpl;\n"
    "    int          release;\n"
    "    uint64_t     count;\n"
    "};\n"
    "\n"
    "static inline void\n"
    "xrt_zw_zc(const xdr_iovecr *r, struct xrt_zw *w)\n"
    "{\n"
    "    int k;\n"
    "\n"
    "    if (r->niov <= 0 || !r->iov) {\n"
    "        return;\n"
    "    }\n"
    "    if (!w->release) {\n"
    "        w->count += (uint64_t) r->niov + 1;\n"
    "        return;\n"
    "    }\n"
    "    for (k = 0; k < r->niov; k++) {\n"
    "        if (r->iov[k].data) {\n"
    "            xrt_drop(w->evpl, &r->iov[k]);\n"
    "        }\n"
    "    }\n"
    "}\n"
    "\n";

/* ---- helpers for writing code ---- */

/* printf into memory that lives as long as the generator (xc_alloc) */
char *
xc_fmt(const char *f, ...)
{
    va_list ap;
    int len;
    char *s;

    va_start(ap, f);
    len = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    s = xc_alloc((size_t) len + 1);
    va_start(ap, f);
    vsnprintf(s, (size_t) len + 1, f, ap);
    va_end(ap);
    return s;
} /* xc_fmt */

static void
ind(FILE *f, int n)
{
    fprintf(f, "%*s", n * 4, "");
} /* ind */

/* "if (<cond>) {\n return -1;\n }" at indent n */
static void
fail_if(FILE *f, int n, const char *cond)
{
    ind(f, n);
    fprintf(f, "if (%s) {\n", cond);
    ind(f, n + 1);
    fprintf(f, "return -1;\n");
    ind(f, n);
    fprintf(f, "}\n");
} /* fail_if */

/* the encoded size of t when it is the same for every value, else 0 */
static unsigned
const_size(const struct xc_type *t)
{
    const struct xc_type *b = xc_base_type(t);

    switch (b->builtin) {
        case XB_INT64:
        case XB_UINT64:
        case XB_DOUBLE:
            return 8;
        case XB_NONE:
            return b->def->kind == XK_ENUM ? 4 : 0;
        default:
            return 4;
    }
} /* const_size */

static const char *
bound_str(const struct xc_decl *d)
{
    return xc_fmt("%uu", xc_u32(&d->bound));
} /* bound_str */

/* a declared <N> worth checking (<> and <2^32-1> cannot be exceeded) */
static int
var_bounded(const struct xc_decl *d)
{
    return d->has_bound && xc_u32(&d->bound) != 0xffffffffu;
} /* var_bounded */

/* ---- encode ---- */

static void
enc_type(FILE *f, int n, const struct xc_type *t, const char *lv)
{
    switch (t->builtin) {
        case XB_INT32:
        case XB_UINT32:
            fail_if(f, n, xc_fmt("xrt_put_u32(e, (uint32_t) %s)", lv));
            break;
        case XB_BOOL:
            fail_if(f, n, xc_fmt("xrt_put_u32(e, %s ? 1 : 0)", lv));
            break;
        case XB_INT64:
        case XB_UINT64:
            fail_if(f, n, xc_fmt("xrt_put_u64(e, (uint64_t) %s)", lv));
            break;
        case XB_FLOAT:
            fail_if(f, n, xc_fmt("xrt_put_float(e, %s)", lv));
            break;
        case XB_DOUBLE:
            fail_if(f, n, xc_fmt("xrt_put_double(e, %s)", lv));
            break;
        case XB_NONE:
            fail_if(f, n, xc_fmt("xdr_enc_%s(e, &%s)", t->def->name, lv));
            break;
    }
} /* enc_type */

static void
enc_decl(FILE *f, int n, const struct xc_decl *d, const char *lv, const char *num)
{
    switch (d->kind) {
        case XD_VOID:
            break;
        case XD_SCALAR:
            enc_type(f, n, &d->type, lv);
            break;
        case XD_FIXED:
            ind(f, n);
            fprintf(f, "for (uint32_t i = 0; i < %s; i++) {\n", bound_str(d));
            enc_type(f, n + 1, &d->type, xc_fmt("%s[i]", lv));
            ind(f, n);
            fprintf(f, "}\n");
            break;
        case XD_VAR:
            if (var_bounded(d)) {
                fail_if(f, n, xc_fmt("%s > %s", num, bound_str(d)));
            }
            fail_if(f, n, xc_fmt("%s && !%s", num, lv));
            fail_if(f, n, xc_fmt("xrt_put_u32(e, %s)", num));
            ind(f, n);
            fprintf(f, "for (uint32_t i = 0; i < %s; i++) {\n", num);
            enc_type(f, n + 1, &d->type, xc_fmt("%s[i]", lv));
            ind(f, n);
            fprintf(f, "}\n");
            break;
        case XD_OPT:
            fail_if(f, n, xc_fmt("xrt_put_u32(e, %s != NULL)", lv));
            ind(f, n);
            fprintf(f, "if (%s) {\n", lv);
            enc_type(f, n + 1, &d->type, xc_fmt("(*%s)", lv));
            ind(f, n);
            fprintf(f, "}\n");
            break;
        case XD_STRING:
            fail_if(f, n, xc_fmt("xrt_put_string(e, &%s, %s)", lv, bound_str(d)));
            break;
        case XD_OPAQUE_FIXED:
            fail_if(f, n, xc_fmt("xrt_put_bytes(e, %s, %s)", lv, bound_str(d)));
            break;
        case XD_OPAQUE_VAR:
            fail_if(f, n, xc_fmt("xrt_put_opaque(e, &%s, %s)", lv, bound_str(d)));
            break;
        case XD_ZC:
            fail_if(f, n, xc_fmt("xrt_put_zc(e, &%s, %s)", lv, bound_str(d)));
            break;
    }
} /* enc_decl */

/* ---- decode ---- */

static void
dec_type(FILE *f, int n, const struct xc_type *t, const char *lv)
{
    static const char *const getter[] = {
        [XB_INT32] = "i32",   [XB_UINT32] = "u32",    [XB_INT64] = "i64", [XB_UINT64] = "u64",
        [XB_FLOAT] = "float", [XB_DOUBLE] = "double", [XB_BOOL] = "bool",
    };

    if (t->builtin == XB_NONE) {
        fail_if(f, n, xc_fmt("xdr_dec_%s(d, &%s)", t->def->name, lv));
    } else {
        fail_if(f, n, xc_fmt("xrt_get_%s(d, &%s)", getter[t->builtin], lv));
    }
} /* dec_type */

static void
dec_decl(FILE *f, int n, const struct xc_decl *d, const char *lv, const char *num)
{
    switch (d->kind) {
        case XD_VOID:
            break;
        case XD_SCALAR:
            dec_type(f, n, &d->type, lv);
            break;
        case XD_FIXED:
            ind(f, n);
            fprintf(f, "for (uint32_t i = 0; i < %s; i++) {\n", bound_str(d));
            dec_type(f, n + 1, &d->type, xc_fmt("%s[i]", lv));
            ind(f, n);
            fprintf(f, "}\n");
            break;
        case XD_VAR:
            ind(f, n);
            fprintf(f, "{\n");
            ind(f, n + 1);
            fprintf(f, "uint32_t count;\n\n");
            fail_if(f, n + 1, "xrt_get_u32(d, &count)");
            if (var_bounded(d)) {
                fail_if(f, n + 1, xc_fmt("count > %s", bound_str(d)));
            }
            /* a huge count must not reach the allocator: each element
             * needs at least its smallest encoding in what is left */
            fail_if(f, n + 1,
                    xc_fmt("xrt_room_for(d, count, %lluu)",
                           (unsigned long long) xc_decl_minsize(&(struct xc_decl){
                               .kind = XD_SCALAR, .type = d->type, .line = d->line})));
            ind(f, n + 1);
            fprintf(f, "%s = count;\n", num);
            ind(f, n + 1);
            fprintf(f, "%s = NULL;\n", lv);
            ind(f, n + 1);
            fprintf(f, "if (count) {\n");
            ind(f, n + 2);
            fprintf(f, "%s = xrt_alloc(d, (uint64_t) count * sizeof(*%s));\n", lv, lv);
            fail_if(f, n + 2, xc_fmt("!%s", lv));
            ind(f, n + 2);
            fprintf(f, "for (uint32_t i = 0; i < count; i++) {\n");
            dec_type(f, n + 3, &d->type, xc_fmt("%s[i]", lv));
            ind(f, n + 2);
            fprintf(f, "}\n");
            ind(f, n + 1);
            fprintf(f, "}\n");
            ind(f, n);
            fprintf(f, "}\n");
            break;
        case XD_OPT:
            ind(f, n);
            fprintf(f, "{\n");
            ind(f, n + 1);
            fprintf(f, "xdr_bool follows;\n\n");
            fail_if(f, n + 1, "xrt_get_bool(d, &follows)");
            ind(f, n + 1);
            fprintf(f, "%s = NULL;\n", lv);
            ind(f, n + 1);
            fprintf(f, "if (follows) {\n");
            ind(f, n + 2);
            fprintf(f, "%s = xrt_alloc(d, sizeof(*%s));\n", lv, lv);
            fail_if(f, n + 2, xc_fmt("!%s", lv));
            dec_type(f, n + 2, &d->type, xc_fmt("(*%s)", lv));
            ind(f, n + 1);
            fprintf(f, "}\n");
            ind(f, n);
            fprintf(f, "}\n");
            break;
        case XD_STRING:
            fail_if(f, n, xc_fmt("xrt_get_string(d, &%s, %s)", lv, bound_str(d)));
            break;
        case XD_OPAQUE_FIXED:
            fail_if(f, n, xc_fmt("xrt_get_bytes(d, %s, %s)", lv, bound_str(d)));
            break;
        case XD_OPAQUE_VAR:
            fail_if(f, n, xc_fmt("xrt_get_opaque(d, &%s, %s)", lv, bound_str(d)));
            break;
        case XD_ZC:
            fail_if(f, n, xc_fmt("xrt_get_zc(d, &%s, %s)", lv, bound_str(d)));
            break;
    }
} /* dec_decl */

/* ---- encoded length ---- */

static void
len_type(FILE *f, int n, const struct xc_type *t, const char *lv)
{
    unsigned s = const_size(t);

    ind(f, n);
    if (s) {
        fprintf(f, "len += %u;\n", s);
    } else {
        fprintf(f, "len += xdr_len_%s(&%s);\n", t->def->name, lv);
    }
} /* len_type */

static void
len_decl(FILE *f, int n, const struct xc_decl *d, const char *lv, const char *num)
{
    unsigned s;

    switch (d->kind) {
        case XD_VOID:
            break;
        case XD_SCALAR:
            len_type(f, n, &d->type, lv);
            break;
        case XD_FIXED:
            s = const_size(&d->type);
            ind(f, n);
            if (s) {
                fprintf(f, "len += (uint64_t) %s * %u;\n", bound_str(d), s);
            } else {
                fprintf(f, "for (uint32_t i = 0; i < %s; i++) {\n", bound_str(d));
                len_type(f, n + 1, &d->type, xc_fmt("%s[i]", lv));
                ind(f, n);
                fprintf(f, "}\n");
            }
            break;
        case XD_VAR:
            s = const_size(&d->type);
            ind(f, n);
            fprintf(f, "len += 4;\n");
            ind(f, n);
            if (s) {
                fprintf(f, "len += (uint64_t) %s * %u;\n", num, s);
            } else {
                fprintf(f, "for (uint32_t i = 0; i < %s; i++) {\n", num);
                len_type(f, n + 1, &d->type, xc_fmt("%s[i]", lv));
                ind(f, n);
                fprintf(f, "}\n");
            }
            break;
        case XD_OPT:
            ind(f, n);
            fprintf(f, "len += 4;\n");
            ind(f, n);
            fprintf(f, "if (%s) {\n", lv);
            len_type(f, n + 1, &d->type, xc_fmt("(*%s)", lv));
            ind(f, n);
            fprintf(f, "}\n");
            break;
        case XD_STRING:
        case XD_OPAQUE_VAR:
            ind(f, n);
            fprintf(f, "len += 4 + xrt_pad4(%s.len);\n", lv);
            break;
        case XD_OPAQUE_FIXED:
            ind(f, n);
            fprintf(f, "len += %lluu;\n", ((unsigned long long) xc_u32(&d->bound) + 3) & ~3ull);
            break;
        case XD_ZC:
            ind(f, n);
            fprintf(f, "len += 4 + xrt_pad4(%s.length);\n", lv);
            break;
    }
} /* len_decl */

/* ---- zcopaque walks ---- */

static void
zw_type(FILE *f, int n, const struct xc_type *t, const char *lv)
{
    ind(f, n);
    fprintf(f, "xdr_zw_%s(&%s, w);\n", t->def->name, lv);
} /* zw_type */

static void
zw_decl(FILE *f, int n, const struct xc_decl *d, const char *lv, const char *num)
{
    if (!xc_decl_has_zc(d)) {
        return;
    }
    switch (d->kind) {
        case XD_ZC:
            ind(f, n);
            fprintf(f, "xrt_zw_zc(&%s, w);\n", lv);
            break;
        case XD_SCALAR:
            zw_type(f, n, &d->type, lv);
            break;
        case XD_FIXED:
            ind(f, n);
            fprintf(f, "for (uint32_t i = 0; i < %s; i++) {\n", bound_str(d));
            zw_type(f, n + 1, &d->type, xc_fmt("%s[i]", lv));
            ind(f, n);
            fprintf(f, "}\n");
            break;
        case XD_VAR:
            ind(f, n);
            fprintf(f, "for (uint32_t i = 0; %s && i < %s; i++) {\n", lv, num);
            zw_type(f, n + 1, &d->type, xc_fmt("%s[i]", lv));
            ind(f, n);
            fprintf(f, "}\n");
            break;
        case XD_OPT:
            ind(f, n);
            fprintf(f, "if (%s) {\n", lv);
            zw_type(f, n + 1, &d->type, xc_fmt("(*%s)", lv));
            ind(f, n);
            fprintf(f, "}\n");
            break;
        default:
            break;
    }
} /* zw_decl */

/* ---- per definition ---- */

enum op {
    OP_ENC,
    OP_DEC,
    OP_LEN,
    OP_ZW,
};

static void
op_decl(FILE *f, enum op op, int n, const struct xc_decl *d, const char *lv, const char *num)
{
    switch (op) {
        case OP_ENC:
            enc_decl(f, n, d, lv, num);
            break;
        case OP_DEC:
            dec_decl(f, n, d, lv, num);
            break;
        case OP_LEN:
            len_decl(f, n, d, lv, num);
            break;
        case OP_ZW:
            zw_decl(f, n, d, lv, num);
            break;
    }
} /* op_decl */

static const char *
member_lv(enum op op, const struct xc_decl *d)
{
    return xc_fmt("%s->%s", op == OP_DEC ? "out" : "in", d->name);
} /* member_lv */

static const char *
member_num(enum op op, const struct xc_decl *d)
{
    return xc_fmt("%s->num_%s", op == OP_DEC ? "out" : "in", d->name);
} /* member_num */

/* A type that reaches itself decodes through a wrapper that counts the
 * nesting (XRT_MAX_DEPTH): one C call per level, and a hostile message
 * nests as deep as its bytes allow (8 bytes a level: a 1 MiB call
 * overflowed the stack, helper-121).  Its own decoder is xdr_dec_T_body. */
static const char *dec_suffix = "";

static void
signature(FILE *f, enum op op, const struct xc_def *def, int prototype)
{
    switch (op) {
        case OP_ENC:
            fprintf(f, "static int%sxdr_enc_%s(struct xrt_enc *e, const %s *in)",
                    prototype ? " " : "\n", def->name, def->name);
            break;
        case OP_DEC:
            fprintf(f, "static int%sxdr_dec_%s%s(struct xrt_dec *d, %s *out)",
                    prototype ? " " : "\n", def->name, dec_suffix, def->name);
            break;
        case OP_LEN:
            fprintf(f, "static uint64_t%sxdr_len_%s(const %s *in)", prototype ? " " : "\n",
                    def->name, def->name);
            break;
        case OP_ZW:
            fprintf(f, "static void%sxdr_zw_%s(const %s *in, struct xrt_zw *w)",
                    prototype ? " " : "\n", def->name, def->name);
            break;
    }
    fprintf(f, prototype ? ";\n" : "\n");
} /* signature */

static const char *
op_return(enum op op)
{
    switch (op) {
        case OP_LEN:
            return "return len;";
        case OP_ZW:
            return "return;";
        default:
            return "return 0;";
    }
} /* op_return */

/*
 * A struct whose last member is an optional pointer to its own type is a
 * linked list: walk it with a loop, never one call per element (an NFS
 * READDIR reply holds thousands of entries).
 */
static void
emit_struct(FILE *f, enum op op, const struct xc_def *def)
{
    int last = def->tail_self ? def->nmembers - 1 : def->nmembers;
    int n = def->tail_self ? 2 : 1;
    const struct xc_decl *next = &def->members[def->nmembers - 1];
    const char *p = op == OP_DEC ? "out" : "in";

    signature(f, op, def, 0);
    fprintf(f, "{\n");
    if (op == OP_LEN) {
        fprintf(f, "    uint64_t len = 0;\n\n    (void) in; /* constant-size types */\n");
    }
    if (def->tail_self) {
        fprintf(f, "    for (;;) {\n");
    }
    for (int i = 0; i < last; i++) {
        op_decl(f, op, n, &def->members[i], member_lv(op, &def->members[i]),
                member_num(op, &def->members[i]));
    }
    if (def->tail_self) {
        switch (op) {
            case OP_ENC:
                fail_if(f, 2, xc_fmt("xrt_put_u32(e, in->%s != NULL)", next->name));
                break;
            case OP_DEC:
                fprintf(f, "        {\n            xdr_bool follows;\n\n");
                fail_if(f, 3, "xrt_get_bool(d, &follows)");
                fprintf(f, "            if (!follows) {\n");
                fprintf(f, "                out->%s = NULL;\n", next->name);
                fprintf(f, "                return 0;\n            }\n");
                fprintf(f, "            out->%s = xrt_alloc(d, sizeof(*out->%s));\n", next->name,
                        next->name);
                fail_if(f, 3, xc_fmt("!out->%s", next->name));
                fprintf(f, "        }\n");
                break;
            case OP_LEN:
                fprintf(f, "        len += 4;\n");
                break;
            case OP_ZW:
                break;
        }
        if (op != OP_DEC) {
            fprintf(f, "        if (!%s->%s) {\n            %s\n        }\n", p, next->name,
                    op_return(op));
        }
        fprintf(f, "        %s = %s->%s;\n", p, p, next->name);
        fprintf(f, "    }\n");
    } else {
        fprintf(f, "    %s\n", op == OP_ZW ? "(void) w;" : op_return(op));
    }
    fprintf(f, "}\n\n");
} /* emit_struct */

static void
emit_typedef(FILE *f, enum op op, const struct xc_def *def)
{
    const struct xc_decl *d = &def->tdecl;
    const char *p = op == OP_DEC ? "out" : "in";
    const char *lv = d->kind == XD_VAR ? xc_fmt("%s->val", p) : xc_fmt("(*%s)", p);

    signature(f, op, def, 0);
    fprintf(f, "{\n");
    if (op == OP_LEN) {
        fprintf(f, "    uint64_t len = 0;\n\n    (void) in; /* constant-size types */\n");
    }
    op_decl(f, op, 1, d, lv, xc_fmt("%s->num_val", p));
    if (op == OP_ZW) {
        fprintf(f, "    (void) w;\n");
    } else {
        fprintf(f, "    %s\n", op_return(op));
    }
    fprintf(f, "}\n\n");
} /* emit_typedef */

/* the distinct values of an enum, as case labels */
static void
enum_cases(FILE *f, int n, const struct xc_def *def)
{
    for (int i = 0; i < def->nvals; i++) {
        int dup = 0;
        long long v = (long long) def->vals[i].value.num;

        for (int j = 0; j < i && !dup; j++) {
            dup = def->vals[j].value.num == def->vals[i].value.num;
        }
        if (dup) {
            continue;
        }
        ind(f, n);
        if (v == -2147483648ll) {
            fprintf(f, "case (-2147483647 - 1): /* %s */\n", def->vals[i].name);
        } else {
            fprintf(f, "case %lld: /* %s */\n", v, def->vals[i].name);
        }
    }
} /* enum_cases */

/* an enum takes only its declared values, on the wire and from the caller */
static void
emit_enum(FILE *f, enum op op, const struct xc_def *def)
{
    signature(f, op, def, 0);
    fprintf(f, "{\n");
    switch (op) {
        case OP_ENC:
            fprintf(f, "    switch ((int32_t) *in) {\n");
            enum_cases(f, 2, def);
            fprintf(f, "            break;\n        default:\n            return -1;\n    }\n");
            fprintf(f, "    return xrt_put_u32(e, (uint32_t) (int32_t) *in);\n");
            break;
        case OP_DEC:
            fprintf(f, "    int32_t v;\n\n");
            fail_if(f, 1, "xrt_get_i32(d, &v)");
            fprintf(f, "    switch (v) {\n");
            enum_cases(f, 2, def);
            fprintf(f, "            break;\n        default:\n            return -1;\n    }\n");
            fprintf(f, "    *out = (%s) v;\n    return 0;\n", def->name);
            break;
        case OP_LEN:
            fprintf(f, "    (void) in;\n    return 4;\n");
            break;
        case OP_ZW:
            break;
    }
    fprintf(f, "}\n\n");
} /* emit_enum */

static void
case_labels(FILE *f, int n, const struct xc_def *def, const struct xc_arm *arm)
{
    for (int i = 0; i < arm->nlabels; i++) {
        uint32_t bits = (uint32_t) arm->labels[i].num;

        ind(f, n);
        if (def->disc_unsigned) {
            fprintf(f, "case %uu:", bits);
        } else if (bits == 0x80000000u) {
            fprintf(f, "case (-2147483647 - 1):");
        } else {
            fprintf(f, "case %d:", (int32_t) bits);
        }
        if (arm->labels[i].is_name) {
            fprintf(f, " /* %s */", arm->labels[i].text);
        }
        fprintf(f, "\n");
    }
    if (arm->is_default) {
        ind(f, n);
        fprintf(f, "default:\n");
    }
} /* case_labels */

/*
 * opaque_union: the selected arm travels as a counted opaque -- a length
 * word, then the arm's XDR encoding -- except that a variable opaque arm
 * is its own counted opaque (as in RPC's opaque_auth, RFC 5531 §8.2).
 */
static void
ounion_arm(FILE *f, enum op op, const struct xc_decl *a, const char *lv)
{
    switch (op) {
        case OP_ENC:
            if (a->kind == XD_VOID) {
                fail_if(f, 3, "xrt_put_u32(e, 0)");
            } else if (a->kind == XD_OPAQUE_VAR) {
                enc_decl(f, 3, a, lv, NULL);
            } else {
                fprintf(f, "            uint64_t len = 0;\n");
                if (xc_spec.has_program && xc_decl_has_zc(a)) {
                    /* the body length counts payloads: none may go to an RDMA chunk */
                    fprintf(f, "            int mode = e->chunk_mode;\n\n");
                    fprintf(f, "            e->chunk_mode = 0;\n");
                } else {
                    fprintf(f, "\n");
                }
                len_decl(f, 3, a, lv, xc_fmt("in->num_%s", a->name));
                fail_if(f, 3, "len > 0xffffffffu || xrt_put_u32(e, (uint32_t) len)");
                enc_decl(f, 3, a, lv, xc_fmt("in->num_%s", a->name));
                if (xc_spec.has_program && xc_decl_has_zc(a)) {
                    fprintf(f, "            e->chunk_mode = mode;\n");
                }
            }
            break;
        case OP_DEC:
            if (a->kind == XD_VOID) {
                /* no value: skip whatever body came (e.g. an unknown flavor) */
                fprintf(f, "            uint32_t blen;\n\n");
                fail_if(f, 3, "xrt_get_u32(d, &blen) || xrt_get_bytes(d, NULL, blen)");
            } else if (a->kind == XD_OPAQUE_VAR) {
                dec_decl(f, 3, a, lv, NULL);
            } else {
                int nochunk = xc_spec.has_program && xc_decl_has_zc(a);

                fprintf(f, "            uint32_t blen;\n            uint64_t saved;\n");
                if (nochunk) {
                    fprintf(f, "            struct evpl_rpc2_rdma_chunk *chunk = d->chunk;\n\n");
                    fprintf(f, "            d->chunk = NULL;\n");
                } else {
                    fprintf(f, "\n");
                }
                fail_if(f, 3, "xrt_get_u32(d, &blen) || xrt_push(d, blen, &saved)");
                dec_decl(f, 3, a, lv, xc_fmt("out->num_%s", a->name));
                fail_if(f, 3, "xrt_pop(d, saved)");
                if (nochunk) {
                    fprintf(f, "            d->chunk = chunk;\n");
                }
            }
            break;
        case OP_LEN:
            if (a->kind != XD_OPAQUE_VAR) {
                fprintf(f, "            len += 4;\n");
            }
            len_decl(f, 3, a, lv, xc_fmt("in->num_%s", a->name));
            break;
        case OP_ZW:
            zw_decl(f, 3, a, lv, xc_fmt("in->num_%s", a->name));
            break;
    }
} /* ounion_arm */

static void
emit_union(FILE *f, enum op op, const struct xc_def *def)
{
    const char *p = op == OP_DEC ? "out" : "in";
    int have_default = 0;

    signature(f, op, def, 0);
    fprintf(f, "{\n");
    if (op == OP_LEN) {
        fprintf(f, "    uint64_t len = 0;\n\n    (void) in; /* constant-size types */\n");
    }
    if (op != OP_ZW) {
        op_decl(f, op, 1, &def->disc, xc_fmt("%s->%s", p, def->disc.name), NULL);
    }
    fprintf(f, "    switch ((%s) %s->%s) {\n", def->disc_unsigned ? "uint32_t" : "int32_t", p,
            def->disc.name);
    for (int i = 0; i < def->narms; i++) {
        const struct xc_arm *arm = &def->arms[i];
        const struct xc_decl *a = &arm->decl;
        const char *lv = xc_fmt("%s->%s", p, a->name);

        have_default |= arm->is_default;
        case_labels(f, 2, def, arm);
        fprintf(f, "        {\n");
        if (def->kind == XK_OUNION) {
            ounion_arm(f, op, a, lv);
        } else {
            op_decl(f, op, 3, a, lv, xc_fmt("%s->num_%s", p, a->name));
        }
        fprintf(f, "            break;\n        }\n");
    }
    if (!have_default) {
        /* a discriminant no arm accepts */
        fprintf(f, "        default:\n            %s\n",
                op == OP_LEN  ? "break;"
                : op == OP_ZW ? "break;"
                              : "return -1;");
    }
    fprintf(f, "    }\n");
    if (op == OP_ZW) {
        fprintf(f, "    (void) w;\n");
    } else {
        fprintf(f, "    %s\n", op_return(op));
    }
    fprintf(f, "}\n\n");
} /* emit_union */

static void
emit_op(FILE *f, enum op op, const struct xc_def *def)
{
    switch (def->kind) {
        case XK_STRUCT:
            emit_struct(f, op, def);
            break;
        case XK_TYPEDEF:
            emit_typedef(f, op, def);
            break;
        case XK_ENUM:
            emit_enum(f, op, def);
            break;
        case XK_UNION:
        case XK_OUNION:
            emit_union(f, op, def);
            break;
        default:
            break;
    }
} /* emit_op */

static void
emit_public(FILE *f, const struct xc_def *def)
{
    const char *t = def->name;

    fprintf(f,
            "int\nmarshall_%s(const %s *in, int n, const xdr_iovec *iov_in, int niov_in,\n"
            "    xdr_iovec *iov_out, int *niov_out)\n{\n",
            t, t);
    fprintf(f, "    struct xrt_enc e;\n    int i;\n\n");
    fprintf(f, "    xrt_enc_init(&e, iov_in, niov_in, iov_out, *niov_out, NULL);\n");
    fprintf(f, "    for (i = 0; i < n; i++) {\n");
    fprintf(f, "        if (xdr_enc_%s(&e, &in[i])) {\n            goto fail;\n        }\n", t);
    fprintf(f, "    }\n");
    fprintf(
        f, "    if (n < 0 || xrt_close(&e) || e.total > INT32_MAX) {\n        goto fail;\n    }\n");
    fprintf(f, "    *niov_out = e.nout;\n    return (int) e.total;\n");
    fprintf(f, "fail:\n    xrt_enc_abort(&e);\n");
    if (def->has_zc) {
        fprintf(f, "    {\n        struct xrt_zw w = { NULL, 1, 0 };\n\n");
        fprintf(f, "        for (i = 0; i < n; i++) {\n");
        fprintf(f, "            xdr_zw_%s(&in[i], &w);\n        }\n    }\n", t);
    }
    fprintf(f, "    *niov_out = 0;\n    return -1;\n}\n\n");

    fprintf(f,
            "int\nunmarshall_%s(%s *out, int n, const xdr_iovec *iov, int niov, "
            "xdr_dbuf *dbuf)\n{\n",
            t, t);
    fprintf(f, "    struct xrt_dec d;\n    int i;\n\n");
    fprintf(f, "    xrt_dec_init(&d, iov, niov, dbuf, NULL);\n");
    fprintf(f, "    for (i = 0; i < n; i++) {\n");
    fprintf(f, "        if (xdr_dec_%s(&d, &out[i])) {\n            goto fail;\n        }\n", t);
    fprintf(f, "    }\n");
    fprintf(f, "    if (n < 0 || d.pos > INT32_MAX) {\n        goto fail;\n    }\n");
    fprintf(f, "    return (int) d.pos;\nfail:\n    xrt_dec_abort(&d);\n    return -1;\n}\n\n");

    fprintf(f, "int\nmarshall_length_%s(const %s *in)\n{\n", t, t);
    fprintf(f, "    uint64_t len = xdr_len_%s(in);\n\n", t);
    fprintf(f, "    return len > INT32_MAX ? -1 : (int) len;\n}\n\n");
} /* emit_public */

static int
is_type_def(const struct xc_def *d)
{
    return d->kind == XK_TYPEDEF || d->kind == XK_ENUM || d->kind == XK_STRUCT ||
           d->kind == XK_UNION || d->kind == XK_OUNION;
} /* is_type_def */

void
xc_emit_codec(FILE *f, const char *header_base)
{
    int rpc = xc_spec.has_program;

    fprintf(f, "/* Generated by xdrzcc from %s: do not edit. */\n", xc_input_base());
    fprintf(f, "#include \"%s\"\n\n", header_base);
    /* the .x file's type names may be those of locals here: legal C */
    fprintf(f, "#pragma GCC diagnostic ignored \"-Wshadow\"\n");
    /* a .x file uses only some of the runtime's helpers (clang warns of
     * unused static inline functions in a main file) */
    fprintf(f, "#pragma GCC diagnostic ignored \"-Wunused-function\"\n\n");
    fprintf(f, "/* ---- XDR runtime: static, each generated file has its own ---- */\n\n");
    if (rpc) {
        fputs(runtime_chunk_defs, f);
    }
    fputs(runtime_enc_head, f);
    if (rpc) {
        fputs(runtime_enc_rpc_fields, f);
    }
    fputs(runtime_enc_body, f);
    if (rpc) {
        fputs(runtime_put_chunk, f);
    }
    fputs(runtime_put_zc_head, f);
    if (rpc) {
        fputs(runtime_put_zc_chunk, f);
    }
    fputs(runtime_put_zc_tail, f);
    if (rpc) {
        fputs(runtime_abort_chunk, f);
    }
    fputs(runtime_dec_head, f);
    if (rpc) {
        fputs(runtime_dec_rpc_fields, f);
    }
    fputs(runtime_dec_body, f);
    if (rpc) {
        fputs(runtime_get_zc_chunk, f);
    }
    fputs(runtime_get_zc_tail, f);

    fprintf(f, "/* ---- per type ---- */\n\n");
    for (int i = 0; i < xc_spec.ndefs; i++) {
        const struct xc_def *d = xc_spec.defs[i];

        if (!is_type_def(d)) {
            continue;
        }
        signature(f, OP_ENC, d, 1);
        signature(f, OP_DEC, d, 1);
        if (d->recursive) {
            dec_suffix = "_body";
            signature(f, OP_DEC, d, 1);
            dec_suffix = "";
        }
        signature(f, OP_LEN, d, 1);
        if (d->has_zc) {
            signature(f, OP_ZW, d, 1);
        }
    }
    fprintf(f, "\n");
    for (int i = 0; i < xc_spec.ndefs; i++) {
        const struct xc_def *d = xc_spec.defs[i];

        if (!is_type_def(d)) {
            continue;
        }
        emit_op(f, OP_ENC, d);
        if (d->recursive) {
            dec_suffix = "_body";
            emit_op(f, OP_DEC, d);
            dec_suffix = "";
            signature(f, OP_DEC, d, 0);
            fprintf(f,
                    "{\n    int rc;\n\n"
                    "    if (unlikely(d->depth >= XRT_MAX_DEPTH)) {\n        return -1;\n    }\n"
                    "    d->depth++;\n    rc = xdr_dec_%s_body(d, out);\n    d->depth--;\n"
                    "    return rc;\n}\n\n",
                    d->name);
        } else {
            emit_op(f, OP_DEC, d);
        }
        emit_op(f, OP_LEN, d);
        if (d->has_zc) {
            emit_op(f, OP_ZW, d);
        }
        emit_public(f, d);
    }
    if (rpc) {
        xc_emit_rpc(f);
    }
} /* xc_emit_codec */
