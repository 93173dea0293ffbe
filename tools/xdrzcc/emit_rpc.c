/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Program stubs (rpc2.md §9.4): for `program P { version V { RES PROC(ARG)
 * = n; } = v; } = p;` a `struct V` of function pointers whose first member
 * is the struct evpl_rpc2_program the library works with, the functions
 * behind them, and V_init().  The library side of this contract is in
 * evpl/evpl_rpc2_program.h.
 */
#include <stdarg.h>
#include <string.h>

#include "xdrzcc.h"

/* ARGTYPE / RESTYPE: scalars by value, everything else by pointer */
static const char *
param_type(const struct xc_type *t)
{
    if (xc_type_by_value(t)) {
        return xc_type_ctype(t);
    }
    if (t->def->proc_string) {
        return "xdr_string *"; /* rpc2.md §9.4 */
    }
    if (t->def->kind == XK_TYPEDEF) {
        return xc_fmt("%s *", t->def->name);
    }
    return xc_fmt("struct %s *", t->def->name);
} /* param_type */

/* "TYPE name" with the pointer star attached to the name */
static const char *
param(const struct xc_type *t, const char *name)
{
    const char *pt = param_type(t);
    size_t len = strlen(pt);

    if (len && pt[len - 1] == '*') {
        return xc_fmt("%s%s", pt, name);
    }
    return xc_fmt("%s %s", pt, name);
} /* param */

static const char *
callback_decl(const struct xc_proc *p, const char *name)
{
    return xc_fmt("void (*%s)(struct evpl *evpl, const struct evpl_rpc2_verf *verf, %sint status, "
                  "void *callback_private_data)",
                  name, xc_type_is_void(&p->res) ? "" : xc_fmt("%s, ", param(&p->res, "reply")));
} /* callback_decl */

/*
 * The header spells the parameters as rpc2.md §9.4 does; the definitions
 * name the argument and result x_args / x_result, which cannot be the
 * name of a type they mention.
 */
static const char *
send_call_params(const struct xc_proc *p, const char *args)
{
    return xc_fmt("struct evpl_rpc2_program *program, struct evpl *evpl, "
                  "struct evpl_rpc2_conn *conn, const struct evpl_rpc2_cred *cred, %s"
                  "int ddp, int max_rdma_write_chunk, struct evpl_iovec *write_chunk_iov, "
                  "int write_chunk_niov, int max_rdma_reply_chunk, %s, void *callback_private_data",
                  xc_type_is_void(&p->arg) ? "" : xc_fmt("%s, ", param(&p->arg, args)),
                  callback_decl(p, "callback"));
} /* send_call_params */

static const char *
send_reply_params(const struct xc_proc *p, const char *result)
{
    return xc_fmt("struct evpl *evpl, const struct evpl_rpc2_verf *verf, %s"
                  "struct evpl_rpc2_encoding *encoding",
                  xc_type_is_void(&p->res) ? "" : xc_fmt("%s, ", param(&p->res, result)));
} /* send_reply_params */

static const char *
recv_call_params(const struct xc_proc *p)
{
    return xc_fmt("struct evpl *evpl, struct evpl_rpc2_conn *conn, struct evpl_rpc2_cred *cred, "
                  "%sstruct evpl_rpc2_encoding *encoding, void *private_data",
                  xc_type_is_void(&p->arg) ? "" : xc_fmt("%s, ", param(&p->arg, "args")));
} /* recv_call_params */

static const char *
recv_reply_params(const struct xc_proc *p)
{
    return xc_fmt("struct evpl *evpl, const struct evpl_rpc2_verf *verf, %sint status, "
                  "void *callback_private_data",
                  xc_type_is_void(&p->res) ? "" : xc_fmt("%s, ", param(&p->res, "reply")));
} /* recv_reply_params */

static void
define_number(FILE *f, const char *name, uint32_t num)
{
    fprintf(f, "#ifndef %s\n#define %s %uu\n#endif\n", name, name, num);
} /* define_number */

void
xc_emit_rpc_header(FILE *f)
{
    fprintf(f, "/*\n"
               " * Program stubs.  V_init() fills a struct V; pass &v.rpc2 to the rpc2\n"
               " * thread/server/client calls and as `program` to send_call_*.  Set the\n"
               " * recv_call_* handlers you implement (others answer PROC_UNAVAIL; a NULL\n"
               " * procedure 0 handler answers success).  A handler must call the\n"
               " * matching send_reply_* exactly once.  send_call_* and send_reply_*\n"
               " * take the zcopaque payloads of their argument / result, also when\n"
               " * they fail.  Procedure 0, when the .x declares none, is <version>_NULL.\n"
               " */\n");
    for (int i = 0; i < xc_spec.ndefs; i++) {
        const struct xc_def *prog = xc_spec.defs[i];

        if (prog->kind != XK_PROGRAM) {
            continue;
        }
        define_number(f, prog->name, xc_u32(&prog->prognum));
        for (int j = 0; j < prog->nversions; j++) {
            const struct xc_version *v = &prog->versions[j];

            /* the version number is an enum constant, not a macro: a macro
             * named V would rewrite the `struct V` of the stubs */
            fprintf(f, "enum { %s = %uu };\n", v->name, xc_u32(&v->num));
            for (int k = 0; k < v->nprocs; k++) {
                define_number(f, v->procs[k].name, xc_u32(&v->procs[k].num));
            }
            fprintf(f, "\nstruct %s {\n    struct evpl_rpc2_program rpc2;\n", v->name);
            for (int k = 0; k < v->nprocs; k++) {
                const struct xc_proc *p = &v->procs[k];

                fprintf(f, "    void (*send_call_%s)(%s);\n", p->name, send_call_params(p, "args"));
                fprintf(f, "    int (*send_reply_%s)(%s);\n", p->name,
                        send_reply_params(p, "result"));
                fprintf(f, "    void (*recv_call_%s)(%s);\n", p->name, recv_call_params(p));
                fprintf(f, "    void (*recv_reply_%s)(%s);\n", p->name, recv_reply_params(p));
            }
            fprintf(f, "};\n\n");
            fprintf(f, "/* Zero-fill *prog and set up its descriptor and send_* stubs. */\n");
            fprintf(f, "void %s_init(struct %s *prog);\n\n", v->name, v->name);
        }
    }
} /* xc_emit_rpc_header */

/* ---- code ---- */

static const char stub_runtime[] =
    "/* ---- program stub runtime ---- */\n"
    "\n"
    "#define XRT_STUB_RESERVE (128 * 1024) /* scratch for one encoded message */\n"
    "#define XRT_STUB_MAXSCR  8\n"
    "\n"
    "static const struct evpl_rpc2_verf xrt_verf_none __attribute__((unused));\n"
    "\n"
    "/* Reserve scratch, leave `reserve` bytes of head-room (the library writes\n"
    " * its headers backwards into them) and get an out[] array from dbuf. */\n"
    "static inline int\n"
    "xrt_stub_begin(struct xrt_enc *e, struct evpl *evpl, uint32_t reserve, xdr_iovec *scratch,\n"
    "               int *nscratch, uint64_t extra, xdr_dbuf *dbuf)\n"
    "{\n"
    "    xdr_iovec *out;\n"
    "    uint64_t   cap;\n"
    "    int        n;\n"
    "\n"
    "    n         = evpl_iovec_reserve(evpl, XRT_STUB_RESERVE, 8, XRT_STUB_MAXSCR, scratch);\n"
    "    *nscratch = n > 0 ? n : 0;\n"
    "    xrt_enc_init(e, scratch, *nscratch, NULL, 0, evpl);\n"
    "    if (n <= 0) {\n"
    "        return -1;\n"
    "    }\n"
    "    cap = (uint64_t) n + 1 + extra;\n"
    "    if (cap > 0x7fffffff / sizeof(*out)) {\n"
    "        return -1;\n"
    "    }\n"
    "    out = (xdr_iovec *) xdr_dbuf_alloc_space(sizeof(*out) * (size_t) cap, dbuf);\n"
    "    if (!out) {\n"
    "        return -1;\n"
    "    }\n"
    "    e->out    = out;\n"
    "    e->maxout = (int) cap;\n"
    "    e->base   = reserve;\n"
    "    return xrt_put(e, NULL, reserve);\n"
    "}\n"
    "\n"
    "/* Trim the scratch to what was written and commit it; out[] holds its\n"
    " * own references, so the scratch ones are dropped. */\n"
    "static inline int\n"
    "xrt_stub_end(struct xrt_enc *e, struct evpl *evpl, xdr_iovec *scratch, int nscratch)\n"
    "{\n"
    "    int used = nscratch;\n"
    "\n"
    "    if (xrt_close(e) || e->total > INT32_MAX) {\n"
    "        return -1;\n"
    "    }\n"
    "    if (e->si < nscratch) {\n"
    "        scratch[e->si].length = e->so;\n"
    "        used                  = e->si + 1;\n"
    "    }\n"
    "    evpl_iovec_commit(evpl, 8, scratch, used);\n"
    "    evpl_iovecs_release(evpl, scratch, nscratch);\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "static inline void\n"
    "xrt_stub_fail(struct xrt_enc *e, struct evpl *evpl, xdr_iovec *scratch, int nscratch)\n"
    "{\n"
    "    xrt_enc_abort(e);\n"
    "    evpl_iovecs_release(evpl, scratch, nscratch);\n"
    "}\n"
    "\n";

/* expression encoding *ptr (a `const T *`) into encoder e */
static const char *
enc_expr(const struct xc_type *t, const char *ptr)
{
    switch (t->builtin) {
        case XB_INT32:
        case XB_UINT32:
            return xc_fmt("xrt_put_u32(&e, (uint32_t) *%s)", ptr);
        case XB_BOOL:
            return xc_fmt("xrt_put_u32(&e, *%s ? 1 : 0)", ptr);
        case XB_INT64:
        case XB_UINT64:
            return xc_fmt("xrt_put_u64(&e, (uint64_t) *%s)", ptr);
        case XB_FLOAT:
            return xc_fmt("xrt_put_float(&e, *%s)", ptr);
        case XB_DOUBLE:
            return xc_fmt("xrt_put_double(&e, *%s)", ptr);
        case XB_NONE:
            break;
    }
    return xc_fmt("xdr_enc_%s(&e, %s)", t->def->name, ptr);
} /* enc_expr */

static const char *
dec_expr(const struct xc_type *t, const char *ptr)
{
    switch (t->builtin) {
        case XB_INT32:
            return xc_fmt("xrt_get_i32(&d, %s)", ptr);
        case XB_UINT32:
            return xc_fmt("xrt_get_u32(&d, %s)", ptr);
        case XB_BOOL:
            return xc_fmt("xrt_get_bool(&d, %s)", ptr);
        case XB_INT64:
            return xc_fmt("xrt_get_i64(&d, %s)", ptr);
        case XB_UINT64:
            return xc_fmt("xrt_get_u64(&d, %s)", ptr);
        case XB_FLOAT:
            return xc_fmt("xrt_get_float(&d, %s)", ptr);
        case XB_DOUBLE:
            return xc_fmt("xrt_get_double(&d, %s)", ptr);
        case XB_NONE:
            break;
    }
    return xc_fmt("xdr_dec_%s(&d, %s)", t->def->name, ptr);
} /* dec_expr */

/* `const T *name = <param>;` for an argument or result parameter */
static void
value_pointer(FILE *f, const struct xc_type *t, const char *name, const char *parm)
{
    const char *ct = xc_type_ctype(t);

    if (xc_type_by_value(t)) {
        fprintf(f, "    const %s *%s = &%s;\n", ct, name, parm);
    } else {
        fprintf(f, "    const %s *%s = (const %s *) %s;\n", ct, name, ct, parm);
    }
} /* value_pointer */

static int
zc(const struct xc_type *t)
{
    return !xc_type_is_void(t) && xc_type_has_zc(t);
} /* zc */

/* encode-side body shared by send_call and send_reply */
static void
emit_encode(FILE *f, const struct xc_type *t, const char *ptr, const char *reserve,
            const char *dbuf, const char *chunk_setup)
{
    fprintf(f, "    if (xrt_stub_begin(&e, evpl, %s, scratch, &nscratch, extra, %s) == 0) {\n",
            reserve, dbuf);
    if (zc(t) && chunk_setup) {
        fputs(chunk_setup, f);
    }
    if (!xc_type_is_void(t)) {
        fprintf(f, "        rc = %s;\n", enc_expr(t, ptr));
    } else {
        fprintf(f, "        rc = 0;\n");
    }
    fprintf(f, "        if (rc == 0) {\n");
    fprintf(f, "            rc = xrt_stub_end(&e, evpl, scratch, nscratch);\n");
    fprintf(f, "        }\n    }\n");
    fprintf(f, "    if (rc) {\n");
    fprintf(f, "        xrt_stub_fail(&e, evpl, scratch, nscratch);\n");
    if (zc(t)) {
        /* the payloads were given to us: release those not moved yet */
        fprintf(f, "        {\n            struct xrt_zw w = { evpl, 1, 0 };\n\n");
        fprintf(f, "            xdr_zw_%s(%s, &w);\n        }\n", t->def->name, ptr);
    }
} /* emit_encode */

static void
emit_prelude(FILE *f, const struct xc_type *t, const char *ptr)
{
    fprintf(f, "    struct xrt_enc e;\n");
    fprintf(f, "    xdr_iovec scratch[XRT_STUB_MAXSCR];\n");
    fprintf(f, "    uint64_t extra = 0;\n");
    fprintf(f, "    int nscratch = 0, rc = -1;\n\n");
    if (zc(t)) {
        /* out[] needs room for the payload iovecs too */
        fprintf(f, "    {\n        struct xrt_zw w = { evpl, 0, 0 };\n\n");
        fprintf(f, "        xdr_zw_%s(%s, &w);\n        extra = w.count;\n    }\n", t->def->name,
                ptr);
    }
} /* emit_prelude */

static void
emit_send_call(FILE *f, const struct xc_version *v, const struct xc_proc *p)
{
    fprintf(f, "static void\n%s_send_call_%s(%s)\n{\n", v->name, p->name,
            send_call_params(p, "x_args"));
    fprintf(f,
            "    xdr_dbuf *dbuf = (xdr_dbuf *) evpl_rpc2_thread_get_client_dbuf(conn->thread);\n");
    fprintf(f, "    struct evpl_rpc2_rdma_chunk chunk;\n");
    if (!xc_type_is_void(&p->arg)) {
        value_pointer(f, &p->arg, "argp", "x_args");
    }
    emit_prelude(f, &p->arg, "argp");
    fprintf(f, "    (void) ddp;\n");
    fprintf(f, "    memset(&chunk, 0, sizeof(chunk));\n");
    fprintf(f, "    xdr_dbuf_reset(dbuf);\n");
    emit_encode(f, &p->arg, "argp", "program->reserve", "dbuf",
                "        if (ddp && conn->rdma) {\n"
                "            /* RFC 8166 read chunk for the first zcopaque */\n"
                "            e.chunk_mode = XRT_CHUNK_READ;\n"
                "            e.chunk      = &chunk;\n"
                "            e.chunk_dbuf = dbuf;\n"
                "        }\n");
    fprintf(f, "        /* the library completes the call with a decode error */\n");
    fprintf(f, "        evpl_rpc2_call(evpl, program, conn, cred, %uu, NULL, -1, 0, NULL,\n",
            xc_u32(&p->num));
    fprintf(f, "                       max_rdma_write_chunk, write_chunk_iov, write_chunk_niov,\n");
    fprintf(f, "                       max_rdma_reply_chunk, (void *) callback, "
               "callback_private_data);\n");
    fprintf(f, "        return;\n    }\n");
    fprintf(f, "    evpl_rpc2_call(evpl, program, conn, cred, %uu, e.out, e.nout, (int) e.total,\n",
            xc_u32(&p->num));
    fprintf(f, "                   chunk.niov > 0 ? &chunk : NULL, max_rdma_write_chunk, "
               "write_chunk_iov,\n");
    fprintf(f, "                   write_chunk_niov, max_rdma_reply_chunk, (void *) callback,\n");
    fprintf(f, "                   callback_private_data);\n");
    fprintf(f, "}\n\n");
} /* emit_send_call */

static void
emit_send_reply(FILE *f, const struct xc_version *v, const struct xc_proc *p)
{
    fprintf(f, "static int\n%s_send_reply_%s(%s)\n{\n", v->name, p->name,
            send_reply_params(p, "x_result"));
    if (!xc_type_is_void(&p->res)) {
        value_pointer(f, &p->res, "resp", "x_result");
    }
    emit_prelude(f, &p->res, "resp");
    fprintf(f, "\n");
    emit_encode(f, &p->res, "resp", "encoding->program->reserve", "encoding->dbuf",
                "        if (encoding->write_chunk) {\n"
                "            /* the client's write chunk, when the payload fits */\n"
                "            e.chunk_mode = XRT_CHUNK_WRITE;\n"
                "            e.chunk      = encoding->write_chunk;\n"
                "            e.chunk_dbuf = encoding->dbuf;\n"
                "        }\n");
    fprintf(f, "        return -1;\n    }\n");
    fprintf(f, "    return evpl_rpc2_send_reply_dispatch(evpl, encoding, verf, e.out, e.nout,\n"
               "                                         (int) e.total);\n");
    fprintf(f, "}\n\n");
} /* emit_send_reply */

/* decode a value into *ptr from iov (exactly length bytes); on failure run `fail` */
static void
emit_decode(FILE *f, int n, const struct xc_type *t, const char *ptr, const char *dbuf,
            const char *chunk, int positioned, const char *fail)
{
    fprintf(f, "%*sxrt_dec_init(&d, iov, niov, %s, evpl);\n", n * 4, "", dbuf);
    fprintf(f, "%*sif (x_length >= 0 && (uint64_t) x_length < d.limit) {\n", n * 4, "");
    fprintf(f, "%*sd.limit = (uint64_t) x_length;\n", n * 4 + 4, "");
    fprintf(f, "%*s}\n", n * 4, "");
    if (zc(t)) {
        fprintf(f, "%*sd.chunk = %s;\n", n * 4, "", chunk);
        if (positioned) {
            fprintf(f, "%*sd.chunk_positioned = 1;\n", n * 4, "");
        }
    }
    fprintf(f, "%*sif (%s || x_length < 0 || d.pos != (uint64_t) x_length) {\n", n * 4, "",
            dec_expr(t, ptr));
    fprintf(f, "%*sxrt_dec_abort(&d);\n", n * 4 + 4, "");
    fprintf(f, "%*s%s\n", n * 4 + 4, "", fail);
    fprintf(f, "%*s}\n", n * 4, "");
} /* emit_decode */

static void
emit_call_dispatch(FILE *f, const struct xc_version *v)
{
    fprintf(f,
            "static int\n%s_recv_call_dispatch(struct evpl *evpl, struct evpl_rpc2_conn *conn,\n"
            "    struct evpl_rpc2_encoding *encoding, uint32_t proc, void *program_data,\n"
            "    struct evpl_rpc2_cred *cred, xdr_iovec *iov, int niov, int x_length,\n"
            "    void *private_data)\n{\n",
            v->name);
    fprintf(f, "    struct %s *prog = (struct %s *) program_data;\n\n", v->name, v->name);
    fprintf(f, "    (void) iov;\n    (void) niov;\n");
    fprintf(f, "    switch (proc) {\n");
    for (int k = 0; k < v->nprocs; k++) {
        const struct xc_proc *p = &v->procs[k];
        int by_value = !xc_type_is_void(&p->arg) && xc_type_by_value(&p->arg);

        fprintf(f, "        case %uu: {\n", xc_u32(&p->num));
        if (!xc_type_is_void(&p->arg)) {
            fprintf(f, "            struct xrt_dec d;\n            %s *argp;\n\n",
                    xc_type_ctype(&p->arg));
        }
        fprintf(f, "            if (!prog->recv_call_%s) {\n", p->name);
        if (xc_u32(&p->num) == 0 && xc_type_is_void(&p->arg) && xc_type_is_void(&p->res)) {
            /* the NULL procedure answers even without a handler */
            fprintf(f, "                if (x_length != 0) {\n                    return 2;\n"
                       "                }\n");
            fprintf(f, "                %s_send_reply_%s(evpl, &xrt_verf_none, encoding);\n",
                    v->name, p->name);
            fprintf(f, "                return 0;\n");
        } else {
            fprintf(f, "                return 1;\n");
        }
        fprintf(f, "            }\n");
        if (xc_type_is_void(&p->arg)) {
            fprintf(f,
                    "            if (x_length != 0) {\n                return 2;\n            }\n");
            fprintf(f,
                    "            prog->recv_call_%s(evpl, conn, cred, encoding, private_data);\n",
                    p->name);
        } else {
            const char *ct = xc_type_ctype(&p->arg);

            fprintf(f,
                    "            argp = (%s *) xdr_dbuf_alloc_space(sizeof(*argp), "
                    "encoding->dbuf);\n",
                    ct);
            fprintf(f, "            if (!argp) {\n                return 2;\n            }\n");
            emit_decode(f, 3, &p->arg, "argp", "encoding->dbuf", "encoding->read_chunk", 1,
                        "return 2;");
            fprintf(f,
                    "            prog->recv_call_%s(evpl, conn, cred, %sargp, encoding, "
                    "private_data);\n",
                    p->name, by_value ? "*" : "");
        }
        fprintf(f, "            return 0;\n        }\n");
    }
    fprintf(f, "        default:\n            return 1;\n    }\n}\n\n");
} /* emit_call_dispatch */

/* A decoded result that aliases the client's write chunk owns it now: the
 * chunk is marked taken (niov 0), so the library leaves it to the callback
 * (and releases it itself when no result took it). */
static void
emit_chunk_taken(FILE *f)
{
    fprintf(f, "            if (d.chunk_used && read_chunk) {\n");
    fprintf(f, "                read_chunk->niov = 0;\n");
    fprintf(f, "            }\n");
} /* emit_chunk_taken */

static void
emit_reply_dispatch(FILE *f, const struct xc_version *v)
{
    fprintf(f,
            "static int\n%s_recv_reply_dispatch(struct evpl *evpl, struct evpl_rpc2_conn *conn,\n"
            "    struct xdr_dbuf *dbuf, uint32_t proc, struct evpl_rpc2_rdma_chunk *read_chunk,\n"
            "    const struct evpl_rpc2_verf *verf, xdr_iovec *iov, int niov, int x_length,\n"
            "    int x_status, void *callback_fn, void *callback_private_data)\n{\n",
            v->name);
    fprintf(f, "    (void) conn;\n    (void) dbuf;\n    (void) read_chunk;\n");
    fprintf(f, "    (void) iov;\n    (void) niov;\n");
    fprintf(f, "    switch (proc) {\n");
    for (int k = 0; k < v->nprocs; k++) {
        const struct xc_proc *p = &v->procs[k];
        const struct xc_type *t = &p->res;

        fprintf(f, "        case %uu: {\n", xc_u32(&p->num));
        fprintf(f, "            %s = (%s) callback_fn;\n", callback_decl(p, "cb"),
                xc_fmt("void (*)(struct evpl *, const struct evpl_rpc2_verf *, %sint, void *)",
                       xc_type_is_void(t) ? "" : xc_fmt("%s, ", param_type(t))));
        if (xc_type_is_void(t)) {
            fprintf(f, "\n");
            fprintf(f, "            if (!cb) {\n                return 0;\n            }\n");
            fprintf(f, "            if (x_status == 0 && x_length != 0) {\n");
            fprintf(f, "                x_status = EVPL_RPC2_REPLY_DECODE_ERROR;\n            }\n");
            fprintf(f, "            cb(evpl, verf, x_status, callback_private_data);\n");
        } else if (xc_type_by_value(t)) {
            const char *ct = xc_type_ctype(t);

            fprintf(f, "            %s res = (%s) 0;\n", ct, ct);
            fprintf(f, "            struct xrt_dec d;\n\n");
            fprintf(f, "            if (!cb) {\n                return 0;\n            }\n");
            fprintf(f, "            if (x_status) {\n");
            fprintf(f, "                cb(evpl, verf, res, x_status, callback_private_data);\n");
            fprintf(f, "                return 0;\n            }\n");
            emit_decode(f, 3, t, "&res", "dbuf", "read_chunk", 0,
                        xc_fmt("res = (%s) 0;\n"
                               "                cb(evpl, verf, res, EVPL_RPC2_REPLY_DECODE_ERROR, "
                               "callback_private_data);\n"
                               "                return 0;",
                               ct));
            if (zc(t)) {
                emit_chunk_taken(f);
            }
            fprintf(f, "            cb(evpl, verf, res, 0, callback_private_data);\n");
        } else {
            const char *ct = xc_type_ctype(t);

            fprintf(f, "            %s *resp;\n", ct);
            fprintf(f, "            struct xrt_dec d;\n\n");
            fprintf(f, "            if (!cb) {\n                return 0;\n            }\n");
            fprintf(f, "            if (x_status) {\n");
            fprintf(f, "                cb(evpl, verf, NULL, x_status, callback_private_data);\n");
            fprintf(f, "                return 0;\n            }\n");
            fprintf(f, "            resp = (%s *) xdr_dbuf_alloc_space(sizeof(*resp), dbuf);\n",
                    ct);
            fprintf(f, "            if (!resp) {\n");
            fprintf(f, "                cb(evpl, verf, NULL, EVPL_RPC2_REPLY_DECODE_ERROR, "
                       "callback_private_data);\n");
            fprintf(f, "                return 0;\n            }\n");
            emit_decode(f, 3, t, "resp", "dbuf", "read_chunk", 0,
                        "cb(evpl, verf, NULL, EVPL_RPC2_REPLY_DECODE_ERROR, "
                        "callback_private_data);\n                return 0;");
            if (zc(t)) {
                emit_chunk_taken(f);
            }
            fprintf(f, "            cb(evpl, verf, resp, 0, callback_private_data);\n");
        }
        fprintf(f, "            return 0;\n        }\n");
    }
    fprintf(f, "        default:\n            return -1;\n    }\n}\n\n");
} /* emit_reply_dispatch */

static void
emit_version(FILE *f, const struct xc_def *prog, const struct xc_version *v)
{
    fprintf(f, "/* ---- program %s version %s ---- */\n\n", prog->name, v->name);
    fprintf(f, "static const char *%s_procs[%u] = {\n", v->name, v->maxproc + 1);
    for (int k = 0; k < v->nprocs; k++) {
        fprintf(f, "    [%u] = \"%s\",\n", xc_u32(&v->procs[k].num), v->procs[k].name);
    }
    fprintf(f, "};\n\n");

    /* send_reply first: the call dispatcher answers procedure 0 itself */
    for (int k = 0; k < v->nprocs; k++) {
        emit_send_reply(f, v, &v->procs[k]);
    }
    for (int k = 0; k < v->nprocs; k++) {
        emit_send_call(f, v, &v->procs[k]);
    }
    emit_call_dispatch(f, v);
    emit_reply_dispatch(f, v);

    fprintf(f, "void\n%s_init(struct %s *prog)\n{\n", v->name, v->name);
    fprintf(f, "    memset(prog, 0, sizeof(*prog));\n");
    fprintf(f, "    prog->rpc2.program             = %uu;\n", xc_u32(&prog->prognum));
    fprintf(f, "    prog->rpc2.version             = %uu;\n", xc_u32(&v->num));
    fprintf(f, "    prog->rpc2.maxproc             = %uu;\n", v->maxproc);
    fprintf(f, "    prog->rpc2.reserve             = 256;\n");
    fprintf(f, "    prog->rpc2.procs               = %s_procs;\n", v->name);
    fprintf(f, "    prog->rpc2.program_data        = prog;\n");
    fprintf(f, "    prog->rpc2.recv_call_dispatch  = %s_recv_call_dispatch;\n", v->name);
    fprintf(f, "    prog->rpc2.recv_reply_dispatch = %s_recv_reply_dispatch;\n", v->name);
    for (int k = 0; k < v->nprocs; k++) {
        fprintf(f, "    prog->send_call_%s = %s_send_call_%s;\n", v->procs[k].name, v->name,
                v->procs[k].name);
        fprintf(f, "    prog->send_reply_%s = %s_send_reply_%s;\n", v->procs[k].name, v->name,
                v->procs[k].name);
    }
    fprintf(f, "}\n\n");
} /* emit_version */

void
xc_emit_rpc(FILE *f)
{
    fputs(stub_runtime, f);
    for (int i = 0; i < xc_spec.ndefs; i++) {
        const struct xc_def *prog = xc_spec.defs[i];

        if (prog->kind != XK_PROGRAM) {
            continue;
        }
        for (int j = 0; j < prog->nversions; j++) {
            emit_version(f, prog, &prog->versions[j]);
        }
    }
} /* xc_emit_rpc */
