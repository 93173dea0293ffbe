/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The generated header: the shared XDR runtime (guarded, so that several
 * generated headers can be included together), then the constants and
 * types of the input in an order C accepts, the marshalling prototypes,
 * and the program stub structures (emit_rpc.c).
 */
#include <string.h>

#include "xdrzcc.h"

/*
 * The runtime block.  It must compile cleanly under the project's
 * warnings (-Wall -Wextra -Wshadow ...) in every including file, and as
 * C++ (casts on every void * conversion).
 */
static const char runtime_h[] =
    "#ifndef EVPL_XDR_RUNTIME_H\n"
    "#define EVPL_XDR_RUNTIME_H\n"
    "\n"
    "/*\n"
    " * XDR runtime shared by every header xdrzcc generates (the first one\n"
    " * included defines it).\n"
    " *\n"
    " * Generated functions, for each type T of the .x file:\n"
    " *   int marshall_T(const T *in, int n, const xdr_iovec *iov_in, int niov_in,\n"
    " *                  xdr_iovec *iov_out, int *niov_out);\n"
    " *     Encodes in[0..n-1].  iov_in is scratch space (e.g. reserved with\n"
    " *     evpl_iovec_reserve): bytes are written there contiguously.  iov_out\n"
    " *     (capacity *niov_out on entry, count on return) receives the message:\n"
    " *     pieces of the scratch, each with a reference of its own, and the\n"
    " *     iovecs of zcopaque members, which are MOVED (the caller's xdr_iovecr\n"
    " *     no longer owns them -- on failure too: they are released then).\n"
    " *     The caller keeps its references on iov_in.  Returns the bytes\n"
    " *     encoded, or -1 (a bound exceeded, an undeclared enum value or union\n"
    " *     arm, scratch or iov_out too small); nothing is owned by iov_out then.\n"
    " *   int unmarshall_T(T *out, int n, const xdr_iovec *iov, int niov, xdr_dbuf *dbuf);\n"
    " *     Decodes n values; variable-size data is allocated in dbuf (strings\n"
    " *     NUL-terminated).  iov may be split anywhere and is only borrowed;\n"
    " *     zcopaque members come back as clones the caller must release.\n"
    " *     Returns the bytes consumed, or -1 (malformed, bounds, dbuf full),\n"
    " *     having released every reference it took.\n"
    " *   int marshall_length_T(const T *in);  the encoded size in bytes.\n"
    " */\n"
    "\n"
    "#include <stdint.h>\n"
    "#include <stddef.h>\n"
    "#include <string.h>\n"
    "#include <stdlib.h>\n"
    "#include <evpl/evpl.h>\n"
    "\n"
    "#ifdef __cplusplus\n"
    "extern \"C\" {\n"
    "#endif\n"
    "\n"
    "typedef uint32_t xdr_bool;\n"
    "\n"
    "#ifndef unlikely\n"
    "#define unlikely(x) __builtin_expect(!!(x), 0)\n"
    "#endif\n"
    "\n"
    "typedef struct {\n"
    "    uint32_t len;\n"
    "    char    *str;\n"
    "} xdr_string;\n"
    "\n"
    "typedef struct {\n"
    "    uint32_t len;\n"
    "    void    *data;\n"
    "} xdr_opaque;\n"
    "\n"
    "#ifndef XDR_DBUF_DEFINED\n"
    "#define XDR_DBUF_DEFINED\n"
    "/* Bump allocator for decoded data: 8-byte aligned, freed all at once. */\n"
    "struct xdr_dbuf {\n"
    "    void *buffer;\n"
    "    int   size;\n"
    "    int   used;\n"
    "};\n"
    "typedef struct xdr_dbuf xdr_dbuf;\n"
    "#endif\n"
    "\n"
    "/* Give dbuf a buffer of `bytes` (size 0 when malloc fails). */\n"
    "static inline void\n"
    "xdr_dbuf_init(xdr_dbuf *dbuf, int bytes)\n"
    "{\n"
    "    dbuf->buffer = bytes > 0 ? malloc((size_t) bytes) : NULL;\n"
    "    dbuf->size   = dbuf->buffer ? bytes : 0;\n"
    "    dbuf->used   = 0;\n"
    "}\n"
    "\n"
    "static inline void\n"
    "xdr_dbuf_destroy(xdr_dbuf *dbuf)\n"
    "{\n"
    "    free(dbuf->buffer);\n"
    "    dbuf->buffer = NULL;\n"
    "    dbuf->size   = 0;\n"
    "    dbuf->used   = 0;\n"
    "}\n"
    "\n"
    "/* A heap-allocated dbuf (NULL when malloc fails); xdr_dbuf_free it. */\n"
    "static inline xdr_dbuf *\n"
    "xdr_dbuf_alloc(int bytes)\n"
    "{\n"
    "    xdr_dbuf *dbuf = (xdr_dbuf *) malloc(sizeof(*dbuf));\n"
    "\n"
    "    if (dbuf) {\n"
    "        xdr_dbuf_init(dbuf, bytes);\n"
    "    }\n"
    "    return dbuf;\n"
    "}\n"
    "\n"
    "static inline void\n"
    "xdr_dbuf_free(xdr_dbuf *dbuf)\n"
    "{\n"
    "    if (dbuf) {\n"
    "        xdr_dbuf_destroy(dbuf);\n"
    "        free(dbuf);\n"
    "    }\n"
    "}\n"
    "\n"
    "/* Forget every allocation (the memory is reused). */\n"
    "static inline void\n"
    "xdr_dbuf_reset(xdr_dbuf *dbuf)\n"
    "{\n"
    "    dbuf->used = 0;\n"
    "}\n"
    "\n"
    "/* size bytes, 8-byte aligned, or NULL when they do not fit. */\n"
    "static inline void *\n"
    "xdr_dbuf_alloc_space(size_t size, xdr_dbuf *dbuf)\n"
    "{\n"
    "    size_t used, end;\n"
    "    void  *ptr;\n"
    "\n"
    "    if (unlikely(!dbuf->buffer || dbuf->used < 0 || dbuf->used > dbuf->size)) {\n"
    "        return NULL;\n"
    "    }\n"
    "    used = (size_t) dbuf->used;\n"
    "    if (unlikely(size > (size_t) dbuf->size - used)) {\n"
    "        return NULL;\n"
    "    }\n"
    "    ptr = (char *) dbuf->buffer + used;\n"
    "    end = (used + size + 7) & ~(size_t) 7;\n"
    "    dbuf->used = end > (size_t) dbuf->size ? dbuf->size : (int) end;\n"
    "    return ptr;\n"
    "}\n"
    "\n"
    "/* opaque->data = len uninitialised bytes in dbuf; 0 or -1. */\n"
    "static inline int\n"
    "xdr_dbuf_alloc_opaque(xdr_opaque *opaque, uint32_t len, xdr_dbuf *dbuf)\n"
    "{\n"
    "    void *p = xdr_dbuf_alloc_space(len, dbuf);\n"
    "\n"
    "    if (unlikely(!p)) {\n"
    "        return -1;\n"
    "    }\n"
    "    opaque->data = p;\n"
    "    opaque->len  = len;\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "/* opaque = a copy of ptr[0..len-1] in dbuf; 0 or -1. */\n"
    "static inline int\n"
    "xdr_dbuf_opaque_copy(xdr_opaque *opaque, const void *ptr, uint32_t len, xdr_dbuf *dbuf)\n"
    "{\n"
    "    if (xdr_dbuf_alloc_opaque(opaque, len, dbuf)) {\n"
    "        return -1;\n"
    "    }\n"
    "    if (len) {\n"
    "        memcpy(opaque->data, ptr, len);\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "/* string = a NUL-terminated copy of str[0..len-1] in dbuf; 0 or -1. */\n"
    "static inline int\n"
    "xdr_dbuf_alloc_string(xdr_string *string, const char *str, uint32_t len, xdr_dbuf *dbuf)\n"
    "{\n"
    "    char *p = (char *) xdr_dbuf_alloc_space((size_t) len + 1, dbuf);\n"
    "\n"
    "    if (unlikely(!p)) {\n"
    "        return -1;\n"
    "    }\n"
    "    if (len) {\n"
    "        memcpy(p, str, len);\n"
    "    }\n"
    "    p[len]      = '\\0';\n"
    "    string->str = p;\n"
    "    string->len = len;\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "/* n elements of elem_size bytes (size in 64 bits), or NULL. */\n"
    "static inline void *\n"
    "xdr_dbuf_alloc_elements(uint64_t n, size_t elem_size, xdr_dbuf *dbuf)\n"
    "{\n"
    "    if (n > UINT32_MAX || (elem_size && n > SIZE_MAX / elem_size)) {\n"
    "        return NULL;\n"
    "    }\n"
    "    return xdr_dbuf_alloc_space((size_t) n * elem_size, dbuf);\n"
    "}\n"
    "\n"
    "/* Point the array member (T x<>) of *structp at n new elements in dbuf and set\n"
    " * num_member; evaluates to 0, or -1 (member NULL, count 0) when they do not fit. */\n"
    "#define xdr_dbuf_alloc_array(structp, member, n, dbuf)                                       "
    "\\\n"
    "    __extension__({                                                                          "
    "\\\n"
    "        uint64_t xdr_n_ = (uint64_t) (n);                                                    "
    "\\\n"
    "        void *xdr_p_ = xdr_dbuf_alloc_elements(xdr_n_, sizeof(*(structp)->member), (dbuf));  "
    "\\\n"
    "        (structp)->member = (__typeof__((structp)->member)) xdr_p_;                          "
    "\\\n"
    "        (structp)->num_##member = xdr_p_ ? (uint32_t) xdr_n_ : 0;                            "
    "\\\n"
    "        xdr_p_ ? 0 : -1;                                                                     "
    "\\\n"
    "    })\n"
    "\n"
    "/* Point a string member at caller memory (borrowed, not copied). */\n"
    "#define xdr_set_str_static(structp, member, istr, ilen)  \\\n"
    "    do {                                                 \\\n"
    "        (structp)->member.len = (uint32_t) (ilen);       \\\n"
    "        (structp)->member.str = (char *) (istr);         \\\n"
    "    } while (0)\n"
    "\n"
    "/* Point a zcopaque member at iovecs (marshalling then moves them). */\n"
    "#define xdr_set_ref(structp, member, iiov, iniov, ilength) \\\n"
    "    do {                                                  \\\n"
    "        (structp)->member.iov    = (iiov);                \\\n"
    "        (structp)->member.niov   = (iniov);               \\\n"
    "        (structp)->member.length = (uint32_t) (ilength);  \\\n"
    "    } while (0)\n"
    "\n"
    "typedef struct evpl_iovec xdr_iovec;\n"
    "\n"
    "#define xdr_iovec_data(iov)             ((iov)->data)\n"
    "#define xdr_iovec_len(iov)              ((iov)->length)\n"
    "#define xdr_iovec_set_data(iov, ptr)    ((iov)->data = (ptr))\n"
    "#define xdr_iovec_set_len(iov, len)     ((iov)->length = (len))\n"
    "#define xdr_iovec_copy_private(out, in) evpl_iovec_clone((out), (in))\n"
    "#define xdr_iovec_move_private(out, in) evpl_iovec_move((out), (in))\n"
    "\n"
    "/* zcopaque: data by reference, length bytes in iov[0..niov-1] */\n"
    "typedef struct {\n"
    "    xdr_iovec *iov;\n"
    "    int        niov;\n"
    "    uint32_t   length;\n"
    "} xdr_iovecr;\n"
    "\n"
    "#ifdef __cplusplus\n"
    "}\n"
    "#endif\n"
    "\n"
    "#endif /* EVPL_XDR_RUNTIME_H */\n";

/* ---- declarations ---- */

static void
emit_member(FILE *f, const struct xc_decl *d)
{
    const char *ct = xc_type_ctype(&d->type);

    switch (d->kind) {
        case XD_SCALAR:
            fprintf(f, "    %s %s;\n", ct, d->name);
            break;
        case XD_FIXED:
            fprintf(f, "    %s %s[%s];\n", ct, d->name, d->bound.text);
            break;
        case XD_VAR:
            fprintf(f, "    uint32_t num_%s;\n", d->name);
            fprintf(f, "    %s *%s;\n", ct, d->name);
            break;
        case XD_OPT:
            fprintf(f, "    %s *%s;\n", ct, d->name);
            break;
        case XD_STRING:
            fprintf(f, "    xdr_string %s;\n", d->name);
            break;
        case XD_OPAQUE_FIXED:
            fprintf(f, "    uint8_t %s[%s];\n", d->name, d->bound.text);
            break;
        case XD_OPAQUE_VAR:
            fprintf(f, "    xdr_opaque %s;\n", d->name);
            break;
        case XD_ZC:
            fprintf(f, "    xdr_iovecr %s;\n", d->name);
            break;
        case XD_VOID:
            break;
    }
} /* emit_member */

static void
emit_typedef(FILE *f, const struct xc_def *def)
{
    const struct xc_decl *d = &def->tdecl;
    const char *ct = xc_type_ctype(&d->type);

    switch (d->kind) {
        case XD_SCALAR:
            fprintf(f, "typedef %s %s;\n\n", ct, def->name);
            break;
        case XD_FIXED:
            fprintf(f, "typedef %s %s[%s];\n\n", ct, def->name, d->bound.text);
            break;
        case XD_VAR:
            /* a counted array needs a struct: num_val / val, as for a member named val */
            fprintf(f, "typedef struct {\n    uint32_t num_val;\n    %s *val;\n} %s;\n\n", ct,
                    def->name);
            break;
        case XD_OPT:
            fprintf(f, "typedef %s *%s;\n\n", ct, def->name);
            break;
        case XD_STRING:
            fprintf(f, "typedef xdr_string %s;\n\n", def->name);
            break;
        case XD_OPAQUE_FIXED:
            fprintf(f, "typedef uint8_t %s[%s];\n\n", def->name, d->bound.text);
            break;
        case XD_OPAQUE_VAR:
            fprintf(f, "typedef xdr_opaque %s;\n\n", def->name);
            break;
        case XD_ZC:
            fprintf(f, "typedef xdr_iovecr %s;\n\n", def->name);
            break;
        case XD_VOID:
            break;
    }
} /* emit_typedef */

/*
 * C needs a typedef name declared before any use, and a struct complete
 * before it is used by value (or as an array element).  Structs and unions
 * are all forward-declared first, so pointers to them need nothing.
 */
static void emit_def(FILE *f, struct xc_def *def);

static void
need_declared(FILE *f, const struct xc_type *t)
{
    if (t->def && t->def->kind == XK_TYPEDEF) {
        emit_def(f, t->def);
    }
} /* need_declared */

static void
need_complete(FILE *f, const struct xc_type *t)
{
    if (!t->def) {
        return;
    }
    emit_def(f, t->def);
    if (t->def->kind == XK_TYPEDEF && t->def->tdecl.kind == XD_SCALAR) {
        need_complete(f, &t->def->tdecl.type);
    }
} /* need_complete */

static void
need_decl(FILE *f, const struct xc_decl *d)
{
    switch (d->kind) {
        case XD_SCALAR:
        case XD_FIXED:
            need_complete(f, &d->type);
            break;
        case XD_VAR:
        case XD_OPT:
            need_declared(f, &d->type);
            break;
        default:
            break;
    }
} /* need_decl */

static void
emit_def(FILE *f, struct xc_def *def)
{
    if (def->kind == XK_ENUM || def->kind == XK_CONST || def->kind == XK_PROGRAM ||
        def->emit_state == 2) {
        return;
    }
    if (def->emit_state == 1) {
        xc_fatal(def->line, "'%s' cannot be declared in C: it depends on itself", def->name);
    }
    def->emit_state = 1;
    switch (def->kind) {
        case XK_TYPEDEF:
            if (def->tdecl.kind == XD_FIXED) {
                need_complete(f, &def->tdecl.type);
            } else if (def->tdecl.kind == XD_SCALAR || def->tdecl.kind == XD_VAR ||
                       def->tdecl.kind == XD_OPT) {
                need_declared(f, &def->tdecl.type);
            }
            emit_typedef(f, def);
            break;
        case XK_STRUCT:
            for (int i = 0; i < def->nmembers; i++) {
                need_decl(f, &def->members[i]);
            }
            fprintf(f, "struct %s {\n", def->name);
            for (int i = 0; i < def->nmembers; i++) {
                emit_member(f, &def->members[i]);
            }
            fprintf(f, "};\n\n");
            break;
        case XK_UNION:
        case XK_OUNION: {
            int any = 0;

            need_decl(f, &def->disc);
            for (int i = 0; i < def->narms; i++) {
                need_decl(f, &def->arms[i].decl);
                any |= def->arms[i].decl.kind != XD_VOID;
            }
            fprintf(f, "struct %s {\n", def->name);
            emit_member(f, &def->disc);
            if (any) {
                fprintf(f, "    union {\n");
                for (int i = 0; i < def->narms; i++) {
                    if (def->arms[i].decl.kind != XD_VOID) {
                        fprintf(f, "    ");
                        emit_member(f, &def->arms[i].decl);
                    }
                }
                fprintf(f, "    };\n");
            }
            fprintf(f, "};\n\n");
            break;
        }
        default:
            break;
    }
    def->emit_state = 2;
} /* emit_def */

static void
emit_enum(FILE *f, const struct xc_def *def)
{
    fprintf(f, "typedef enum {\n");
    for (int i = 0; i < def->nvals; i++) {
        long long v = (long long) def->vals[i].value.num;

        if (v == -2147483648ll) {
            fprintf(f, "    %s = (-2147483647 - 1),\n", def->vals[i].name);
        } else {
            fprintf(f, "    %s = %lld,\n", def->vals[i].name, v);
        }
    }
    fprintf(f, "} %s;\n\n", def->name);
} /* emit_enum */

static int
is_type_def(const struct xc_def *d)
{
    return d->kind == XK_TYPEDEF || d->kind == XK_ENUM || d->kind == XK_STRUCT ||
           d->kind == XK_UNION || d->kind == XK_OUNION;
} /* is_type_def */

void
xc_emit_header(FILE *f)
{
    int any;

    fprintf(f, "/* Generated by xdrzcc from %s: do not edit. */\n", xc_input_base());
    fprintf(f, "#pragma once\n\n");
    fputs(runtime_h, f);
    fprintf(f, "\n");
    if (xc_spec.has_program) {
        /* evpl_rpc2_program.h uses xdr_iovec: after the runtime block */
        fprintf(f, "#include <evpl/evpl_rpc2.h>\n");
        fprintf(f, "#include <evpl/evpl_rpc2_program.h>\n\n");
    }
    fprintf(f, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");

    any = 0;
    for (int i = 0; i < xc_spec.ndefs; i++) {
        const struct xc_def *d = xc_spec.defs[i];

        if (d->kind == XK_CONST) {
            if (d->cval.num < 0 && !d->cval.is_name) {
                fprintf(f, "#define %s (%s)\n", d->name, d->cval.text);
            } else {
                fprintf(f, "#define %s %s\n", d->name, d->cval.text);
            }
            any = 1;
        }
    }
    if (any) {
        fprintf(f, "\n");
    }
    for (int i = 0; i < xc_spec.ndefs; i++) {
        if (xc_spec.defs[i]->kind == XK_ENUM) {
            emit_enum(f, xc_spec.defs[i]);
        }
    }
    any = 0;
    for (int i = 0; i < xc_spec.ndefs; i++) {
        const struct xc_def *d = xc_spec.defs[i];

        if (d->kind == XK_STRUCT || d->kind == XK_UNION || d->kind == XK_OUNION) {
            fprintf(f, "typedef struct %s %s;\n", d->name, d->name);
            any = 1;
        }
    }
    if (any) {
        fprintf(f, "\n");
    }
    for (int i = 0; i < xc_spec.ndefs; i++) {
        emit_def(f, xc_spec.defs[i]);
    }

    for (int i = 0; i < xc_spec.ndefs; i++) {
        const struct xc_def *d = xc_spec.defs[i];

        if (!is_type_def(d)) {
            continue;
        }
        fprintf(f,
                "int marshall_%s(const %s *in, int n, const xdr_iovec *iov_in, int niov_in,\n"
                "    xdr_iovec *iov_out, int *niov_out);\n",
                d->name, d->name);
        fprintf(f,
                "int unmarshall_%s(%s *out, int n, const xdr_iovec *iov, int niov, "
                "xdr_dbuf *dbuf);\n",
                d->name, d->name);
        fprintf(f, "int marshall_length_%s(const %s *in);\n\n", d->name, d->name);
    }

    if (xc_spec.has_program) {
        xc_emit_rpc_header(f);
    }
    fprintf(f, "#ifdef __cplusplus\n}\n#endif\n");
} /* xc_emit_header */
