/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Semantic pass: resolve type names (which may be used before they are
 * declared) and symbolic constants, reject what the generated C could not
 * express, and compute what the emitters need (zcopaque containment,
 * smallest encodings, linked-list shape).  Every diagnostic names the line.
 */
#include <string.h>

#include "xdrzcc.h"

static int
is_type_kind(enum xc_defkind k)
{
    return k == XK_TYPEDEF || k == XK_ENUM || k == XK_STRUCT || k == XK_UNION || k == XK_OUNION;
} /* is_type_kind */

struct xc_def *
xc_find_type(const char *name)
{
    for (int i = 0; i < xc_spec.ndefs; i++) {
        struct xc_def *d = xc_spec.defs[i];

        if (is_type_kind(d->kind) && strcmp(d->name, name) == 0) {
            return d;
        }
    }
    return NULL;
} /* xc_find_type */

/* ---- the global namespace: types, constants and enum values ---- */

struct symbol {
    const char *name;
    int line;
    struct xc_def *def;       /* the const or type */
    struct xc_enumval *value; /* an enum value */
    struct xc_def *owner;     /* its enum */
};

static struct symbol *symbols;
static int nsymbols, cap_symbols;

static struct symbol *
find_symbol(const char *name)
{
    for (int i = 0; i < nsymbols; i++) {
        if (strcmp(symbols[i].name, name) == 0) {
            return &symbols[i];
        }
    }
    return NULL;
} /* find_symbol */

static struct symbol *
add_symbol(const char *name, int line)
{
    struct symbol *s = find_symbol(name);

    if (s) {
        xc_fatal(line, "'%s' is already defined (line %d)", name, s->line);
    }
    s = xc_push((void **) &symbols, &nsymbols, &cap_symbols, sizeof(*s));
    s->name = name;
    s->line = line;
    return s;
} /* add_symbol */

/*
 * Names the generated code itself uses.  Constants and procedure and
 * program names become macros, which would rewrite any identifier of the
 * generated code.  Types, enum values and version names are ordinary
 * identifiers: they only break the code where a local or parameter of the
 * same name is in scope when the generated code names the type (other
 * shadowing is legal C; the generated .c turns -Wshadow off).
 */
static const char *const ordinary_reserved[] = {
    "e",
    "d",
    "w",
    "v",
    "in",
    "out",
    "prog",
    "argp",
    "resp",
    "res",
    "cb",
    "rc",
    "extra",
    "scratch",
    "nscratch",
    "chunk",
    "dbuf",
    "evpl",
    "conn",
    "cred",
    "encoding",
    "verf",
    "program",
    "proc",
    "iov",
    "niov",
    "ddp",
    "callback",
    "callback_fn",
    "callback_private_data",
    "private_data",
    "program_data",
    "read_chunk",
    "write_chunk_iov",
    "write_chunk_niov",
    "max_rdma_write_chunk",
    "max_rdma_reply_chunk",
    "x_args",
    "x_result",
    "x_status",
    "x_length",
    NULL,
};

static const char *const generated_locals[] = {
    "n",         "i",       "k",        "p",    "t",      "r",      "u",      "b",       "c",
    "o",         "s",       "hi",       "lo",   "len",    "left",   "off",    "pad",     "avail",
    "sum",       "count",   "follows",  "blen", "saved",  "mode",   "used",   "tmp",     "arr",
    "cap",       "size",    "ptr",      "end",  "src",    "dst",    "max",    "have",    "bytes",
    "elem_size", "structp", "member",   "istr", "ilen",   "iiov",   "iniov",  "ilength", "iov_in",
    "niov_in",   "iov_out", "niov_out", "str",  "xdr_n_", "xdr_p_", "length", "status",  "args",
    "result",    "reply",   "thread",   NULL,
};

static const char *const generated_members[] = {
    "data",
    "buffer",
    "next",
    "pos",
    "limit",
    "taken",
    "release",
    "total",
    "base",
    "open",
    "scr",
    "nscr",
    "si",
    "so",
    "nout",
    "maxout",
    "chunk_mode",
    "chunk_done",
    "chunk_used",
    "chunk_saved",
    "chunk_dbuf",
    "xdr_position",
    "max_length",
    "rpc2",
    "maxproc",
    "reserve",
    "procs",
    "metrics",
    "ref",
    "refcnt",
    "flags",
    "val",
    "num_val",
    "write_chunk",
    "recv_call_dispatch",
    "recv_reply_dispatch",
    "send_reply_dispatch",
    "version",
    "memcpy",
    "memset",
    "malloc",
    "free",
    "unlikely",
    "min",
    NULL,
};

/* the runtime's own type names */
static const char *const runtime_names[] = {
    "xdr_bool", "xdr_string", "xdr_opaque", "xdr_dbuf", "xdr_iovec", "xdr_iovecr", NULL,
};

static int
in_list(const char *const *list, const char *name)
{
    for (int i = 0; list[i]; i++) {
        if (strcmp(list[i], name) == 0) {
            return 1;
        }
    }
    return 0;
} /* in_list */

/* macro: the name becomes a #define (constants, programs, procedures) */
static void
check_reserved(const char *name, int line, int macro)
{
    if (in_list(runtime_names, name) || strncmp(name, "xrt_", 4) == 0 ||
        in_list(ordinary_reserved, name) ||
        (macro && (in_list(generated_locals, name) || in_list(generated_members, name)))) {
        xc_fatal(line, "'%s' is a name the generated code uses: choose another", name);
    }
} /* check_reserved */

/* ---- constants ---- */

static void resolve_value(struct xc_value *v);

static void
resolve_enum_value(struct xc_def *owner, struct xc_enumval *ev)
{
    (void) owner;
    resolve_value(&ev->value);
} /* resolve_enum_value */

static void
resolve_value(struct xc_value *v)
{
    struct symbol *s;

    if (!v->is_name) {
        return;
    }
    s = find_symbol(v->text);
    if (!s) {
        /* RFC 4506 §4.4: TRUE and FALSE are the values of bool */
        if (strcmp(v->text, "TRUE") == 0 || strcmp(v->text, "FALSE") == 0) {
            v->num = v->text[0] == 'T';
            v->text = v->num ? "1" : "0";
            v->is_name = 0;
            return;
        }
        xc_fatal(v->line, "unknown constant '%s'", v->text);
    }
    if (s->value) {
        if (s->value->value.is_name) {
            if (s->owner->resolving) {
                xc_fatal(v->line, "constant '%s' is defined in terms of itself", v->text);
            }
            s->owner->resolving = 1;
            resolve_enum_value(s->owner, s->value);
            s->owner->resolving = 0;
        }
        v->num = s->value->value.num;
        return;
    }
    if (s->def->kind != XK_CONST) {
        xc_fatal(v->line, "'%s' is a type, not a constant", v->text);
    }
    if (s->def->resolving) {
        xc_fatal(v->line, "constant '%s' is defined in terms of itself", v->text);
    }
    s->def->resolving = 1;
    resolve_value(&s->def->cval);
    s->def->resolving = 0;
    v->num = s->def->cval.num;
} /* resolve_value */

uint32_t
xc_u32(const struct xc_value *v)
{
    return (uint32_t) v->num;
} /* xc_u32 */

/* a size or bound: 0 .. 2^32-1 (fixed sizes: at least 1) */
static void
check_bound(struct xc_decl *d)
{
    int fixed = d->kind == XD_FIXED || d->kind == XD_OPAQUE_FIXED;

    if (!d->has_bound) {
        d->bound.num = 0xffffffffll; /* <>: no limit but the 32-bit count */
        d->bound.text = "0xffffffffu";
        return;
    }
    resolve_value(&d->bound);
    if (d->bound.num < (fixed ? 1 : 0) || d->bound.num > 0xffffffffll) {
        xc_fatal(d->bound.line, "%s of '%s' out of range: %lld", fixed ? "size" : "maximum",
                 d->name, (long long) d->bound.num);
    }
} /* check_bound */

/* ---- types ---- */

const char *
xc_builtin_ctype(enum xc_builtin b)
{
    switch (b) {
        case XB_INT32:
            return "int32_t";
        case XB_UINT32:
            return "uint32_t";
        case XB_INT64:
            return "int64_t";
        case XB_UINT64:
            return "uint64_t";
        case XB_FLOAT:
            return "float";
        case XB_DOUBLE:
            return "double";
        case XB_BOOL:
            return "xdr_bool";
        case XB_NONE:
            break;
    }
    return "void";
} /* xc_builtin_ctype */

const char *
xc_type_ctype(const struct xc_type *t)
{
    return t->builtin != XB_NONE ? xc_builtin_ctype(t->builtin) : t->name;
} /* xc_type_ctype */

int
xc_type_is_void(const struct xc_type *t)
{
    return t->builtin == XB_NONE && t->name == NULL;
} /* xc_type_is_void */

static void
resolve_type(struct xc_type *t)
{
    if (t->builtin != XB_NONE || t->name == NULL) {
        return;
    }
    t->def = xc_find_type(t->name);
    if (!t->def) {
        struct symbol *s = find_symbol(t->name);

        if (s) {
            xc_fatal(t->line, "'%s' is a constant, not a type", t->name);
        }
        xc_fatal(t->line, "unknown type '%s'", t->name);
    }
} /* resolve_type */

const struct xc_type *
xc_base_type(const struct xc_type *t)
{
    while (t->def && t->def->kind == XK_TYPEDEF && t->def->tdecl.kind == XD_SCALAR) {
        t = &t->def->tdecl.type;
    }
    return t;
} /* xc_base_type */

int
xc_type_by_value(const struct xc_type *t)
{
    const struct xc_type *b = xc_base_type(t);

    return b->builtin != XB_NONE || (b->def && b->def->kind == XK_ENUM);
} /* xc_type_by_value */

static void
resolve_decl(struct xc_decl *d)
{
    switch (d->kind) {
        case XD_SCALAR:
        case XD_FIXED:
        case XD_VAR:
        case XD_OPT:
            resolve_type(&d->type);
            break;
        default:
            break;
    }
    if (d->kind != XD_VOID && d->kind != XD_SCALAR && d->kind != XD_OPT) {
        check_bound(d);
    }
} /* resolve_decl */

/* typedef A B; typedef B A; has no end */
static void
check_typedef_cycle(struct xc_def *def)
{
    const struct xc_type *t = &def->tdecl.type;
    int steps = 0;

    if (def->tdecl.kind != XD_SCALAR) {
        return;
    }
    while (t->def && t->def->kind == XK_TYPEDEF && t->def->tdecl.kind == XD_SCALAR) {
        t = &t->def->tdecl.type;
        if (++steps > xc_spec.ndefs) {
            xc_fatal(def->line, "typedef '%s' is defined in terms of itself", def->name);
        }
    }
} /* check_typedef_cycle */

/* ---- zcopaque containment: a fixed point over the (possibly cyclic) graph ---- */

int
xc_type_has_zc(const struct xc_type *t)
{
    return t->def ? t->def->has_zc : 0;
} /* xc_type_has_zc */

int
xc_decl_has_zc(const struct xc_decl *d)
{
    switch (d->kind) {
        case XD_ZC:
            return 1;
        case XD_SCALAR:
        case XD_FIXED:
        case XD_VAR:
        case XD_OPT:
            return xc_type_has_zc(&d->type);
        default:
            return 0;
    }
} /* xc_decl_has_zc */

static int
def_has_zc(const struct xc_def *def)
{
    switch (def->kind) {
        case XK_TYPEDEF:
            return xc_decl_has_zc(&def->tdecl);
        case XK_STRUCT:
            for (int i = 0; i < def->nmembers; i++) {
                if (xc_decl_has_zc(&def->members[i])) {
                    return 1;
                }
            }
            return 0;
        case XK_UNION:
        case XK_OUNION:
            for (int i = 0; i < def->narms; i++) {
                if (xc_decl_has_zc(&def->arms[i].decl)) {
                    return 1;
                }
            }
            return 0;
        default:
            return 0;
    }
} /* def_has_zc */

static void
compute_has_zc(void)
{
    int changed = 1;

    while (changed) {
        changed = 0;
        for (int i = 0; i < xc_spec.ndefs; i++) {
            struct xc_def *d = xc_spec.defs[i];

            if (!d->has_zc && def_has_zc(d)) {
                d->has_zc = 1;
                changed = 1;
            }
        }
    }
} /* compute_has_zc */

/* ---- types that reach themselves (decoding them recurses) ---- */

static int reaches(const struct xc_def *from, const struct xc_def *target, int *seen);

static int
decl_reaches(const struct xc_decl *d, const struct xc_def *target, int *seen)
{
    const struct xc_def *t;

    if (d->kind != XD_SCALAR && d->kind != XD_FIXED && d->kind != XD_VAR && d->kind != XD_OPT) {
        return 0;
    }
    t = d->type.def;
    return t && (t == target || reaches(t, target, seen));
} /* decl_reaches */

/* target is a member type of from, or of one of its member types ... */
static int
reaches(const struct xc_def *from, const struct xc_def *target, int *seen)
{
    int i;

    for (i = 0; i < xc_spec.ndefs && xc_spec.defs[i] != from; i++) {
    }
    if (i == xc_spec.ndefs || seen[i]) {
        return 0;
    }
    seen[i] = 1;
    switch (from->kind) {
        case XK_TYPEDEF:
            return decl_reaches(&from->tdecl, target, seen);
        case XK_STRUCT:
            for (int m = 0; m < from->nmembers; m++) {
                if (decl_reaches(&from->members[m], target, seen)) {
                    return 1;
                }
            }
            return 0;
        case XK_UNION:
        case XK_OUNION:
            for (int a = 0; a < from->narms; a++) {
                if (decl_reaches(&from->arms[a].decl, target, seen)) {
                    return 1;
                }
            }
            return 0;
        default:
            return 0;
    }
} /* reaches */

static void
compute_recursive(void)
{
    int *seen = xc_alloc(((size_t) xc_spec.ndefs + 1) * sizeof(*seen));

    for (int i = 0; i < xc_spec.ndefs; i++) {
        struct xc_def *d = xc_spec.defs[i];

        if (is_type_kind(d->kind)) {
            memset(seen, 0, (size_t) xc_spec.ndefs * sizeof(*seen));
            d->recursive = reaches(d, d, seen);
        }
    }
} /* compute_recursive */

/* ---- smallest encodings; a by-value cycle is a type containing itself ---- */

#define MIN_CAP 0x7fffffffull /* keeps count * minsize within 64 bits */

static uint64_t def_minsize(struct xc_def *def, int line);

static uint64_t
cap_add(uint64_t a, uint64_t b)
{
    return a + b > MIN_CAP ? MIN_CAP : a + b;
} /* cap_add */

static uint64_t
type_minsize(const struct xc_type *t, int line)
{
    switch (t->builtin) {
        case XB_INT64:
        case XB_UINT64:
        case XB_DOUBLE:
            return 8;
        case XB_NONE:
            return def_minsize(t->def, line);
        default:
            return 4;
    }
} /* type_minsize */

static uint64_t
pad4(uint64_t n)
{
    return (n + 3) & ~3ull;
} /* pad4 */

static uint64_t
decl_minsize(const struct xc_decl *d, int line)
{
    uint64_t m;

    switch (d->kind) {
        case XD_VOID:
            return 0;
        case XD_SCALAR:
            return type_minsize(&d->type, line);
        case XD_FIXED:
            m = type_minsize(&d->type, line) * xc_u32(&d->bound);
            return m > MIN_CAP ? MIN_CAP : m;
        case XD_OPAQUE_FIXED:
            m = pad4(xc_u32(&d->bound));
            return m > MIN_CAP ? MIN_CAP : m;
        default:
            return 4; /* a count, a length or a value-follows flag */
    }
} /* decl_minsize */

uint64_t
xc_decl_minsize(const struct xc_decl *d)
{
    return decl_minsize(d, d->line);
} /* xc_decl_minsize */

static uint64_t
def_minsize(struct xc_def *def, int line)
{
    uint64_t m = 0;

    if (def->min_state == 2) {
        return def->minsize;
    }
    if (def->min_state == 1) {
        xc_fatal(line, "'%s' contains itself (use an optional '*' or a variable-length array)",
                 def->name);
    }
    def->min_state = 1;
    switch (def->kind) {
        case XK_TYPEDEF:
            m = decl_minsize(&def->tdecl, def->tdecl.line);
            break;
        case XK_ENUM:
            m = 4;
            break;
        case XK_STRUCT:
            for (int i = 0; i < def->nmembers; i++) {
                m = cap_add(m, decl_minsize(&def->members[i], def->members[i].line));
            }
            break;
        case XK_UNION:
        case XK_OUNION: {
            uint64_t best = MIN_CAP;

            for (int i = 0; i < def->narms; i++) {
                const struct xc_decl *a = &def->arms[i].decl;
                uint64_t am = decl_minsize(a, a->line);

                /* an opaque_union arm travels behind a length word,
                 * except a variable opaque, whose own length is that word */
                if (def->kind == XK_OUNION && a->kind != XD_OPAQUE_VAR) {
                    am = cap_add(am, 4);
                }
                if (am < best) {
                    best = am;
                }
            }
            m = cap_add(best, 4);
            break;
        }
        default:
            break;
    }
    def->minsize = m;
    def->min_state = 2;
    return m;
} /* def_minsize */

/* ---- linked lists ---- */

/* the struct a member points to when it is `S *x` or a typedef of `S *` */
static const struct xc_def *
optional_target(const struct xc_decl *m)
{
    const struct xc_type *t;

    if (m->kind == XD_OPT) {
        t = xc_base_type(&m->type);
        return t->def;
    }
    if (m->kind == XD_SCALAR) {
        t = xc_base_type(&m->type);
        if (t->def && t->def->kind == XK_TYPEDEF && t->def->tdecl.kind == XD_OPT) {
            return xc_base_type(&t->def->tdecl.type)->def;
        }
    }
    return NULL;
} /* optional_target */

/* ---- unions ---- */

static void
check_union(struct xc_def *def)
{
    const struct xc_type *dt;
    int have_default = 0;
    uint32_t *seen = NULL;
    int nseen = 0, cap_seen = 0;

    resolve_decl(&def->disc);
    dt = xc_base_type(&def->disc.type);
    if (dt->builtin == XB_UINT32 || dt->builtin == XB_BOOL) {
        def->disc_unsigned = 1;
    } else if (dt->builtin != XB_INT32 && !(dt->def && dt->def->kind == XK_ENUM)) {
        xc_fatal(def->disc.line, "discriminant of '%s' must be int, unsigned int, bool or an enum",
                 def->name);
    }
    for (int i = 0; i < def->narms; i++) {
        struct xc_arm *arm = &def->arms[i];

        if (arm->is_default) {
            if (have_default) {
                xc_fatal(arm->line, "duplicate default");
            }
            have_default = 1;
        }
        for (int j = 0; j < arm->nlabels; j++) {
            struct xc_value *v = &arm->labels[j];
            uint32_t bits;
            uint32_t *slot;

            resolve_value(v);
            if (v->num < -2147483648ll || v->num > 0xffffffffll) {
                xc_fatal(v->line, "case label %s out of range", v->text);
            }
            bits = (uint32_t) v->num;
            for (int k = 0; k < nseen; k++) {
                if (seen[k] == bits) {
                    xc_fatal(v->line, "duplicate case label %s", v->text);
                }
            }
            slot = xc_push((void **) &seen, &nseen, &cap_seen, sizeof(*slot));
            *slot = bits;
        }
        resolve_decl(&arm->decl);
        if (arm->decl.kind != XD_VOID) {
            if (strcmp(arm->decl.name, def->disc.name) == 0) {
                xc_fatal(arm->decl.line, "arm '%s' has the name of the discriminant",
                         arm->decl.name);
            }
            for (int k = 0; k < i; k++) {
                const struct xc_decl *o = &def->arms[k].decl;

                if (o->kind != XD_VOID && strcmp(o->name, arm->decl.name) == 0) {
                    xc_fatal(arm->decl.line, "duplicate arm name '%s'", arm->decl.name);
                }
            }
        }
    }
} /* check_union */

/* ---- programs ---- */

static void
check_name_free(const char *name, int line, const char *what)
{
    struct symbol *s = find_symbol(name);

    /* the header #defines program and procedure numbers by name, which
     * would rewrite a type or constant of the same name */
    if (s) {
        xc_fatal(line, "%s name '%s' is already used (line %d)", what, name, s->line);
    }
} /* check_name_free */

static void
check_program(struct xc_def *def)
{
    check_name_free(def->name, def->line, "program");
    resolve_value(&def->prognum);
    for (int i = 0; i < xc_spec.ndefs; i++) {
        struct xc_def *o = xc_spec.defs[i];

        if (o != def && o->kind == XK_PROGRAM && strcmp(o->name, def->name) == 0) {
            xc_fatal(def->line, "duplicate program '%s'", def->name);
        }
    }
    for (int i = 0; i < def->nversions; i++) {
        struct xc_version *v = &def->versions[i];
        int have_null = 0;

        check_name_free(v->name, v->line, "version");
        resolve_value(&v->num);
        for (int j = 0; j < i; j++) {
            if (xc_u32(&def->versions[j].num) == xc_u32(&v->num)) {
                xc_fatal(v->line, "duplicate version number %s", v->num.text);
            }
        }
        for (int j = 0; j < v->nprocs; j++) {
            struct xc_proc *p = &v->procs[j];

            check_name_free(p->name, p->line, "procedure");
            resolve_value(&p->num);
            resolve_type(&p->arg);
            resolve_type(&p->res);
            if (p->num.num < 0 || p->num.num > 0xffffffffll) {
                xc_fatal(p->line, "procedure number out of range");
            }
            if (p->num.num > 65535) {
                /* procs[] is an array indexed by number */
                xc_fatal(p->line, "procedure number %lld is too large (at most 65535)",
                         (long long) p->num.num);
            }
            for (int k = 0; k < j; k++) {
                if (strcmp(v->procs[k].name, p->name) == 0) {
                    xc_fatal(p->line, "duplicate procedure '%s'", p->name);
                }
                if (v->procs[k].num.num == p->num.num) {
                    xc_fatal(p->line, "duplicate procedure number %lld", (long long) p->num.num);
                }
            }
            if (p->num.num == 0) {
                have_null = 1;
            }
            if (xc_u32(&p->num) > v->maxproc) {
                v->maxproc = xc_u32(&p->num);
            }
        }
        if (!have_null) {
            /*
             * Procedure 0 always exists (RFC 5531 §12.1): add it as
             * <version>_NULL, growing underscores until the name is unused.
             */
            struct xc_proc *p = xc_push((void **) &v->procs, &v->nprocs, &v->cap_procs, sizeof(*p));
            size_t len = strlen(v->name) + 6;
            char *name = xc_alloc(len + 64);
            int clash;

            snprintf(name, len, "%s_NULL", v->name);
            do {
                clash = find_symbol(name) != NULL;
                for (int k = 0; k < v->nprocs - 1 && !clash; k++) {
                    clash = strcmp(v->procs[k].name, name) == 0;
                }
                if (clash) {
                    if (strlen(name) + 2 >= len + 64) {
                        xc_fatal(v->line, "cannot name the NULL procedure of '%s'", v->name);
                    }
                    strcat(name, "_");
                }
            } while (clash);
            p->name = name;
            p->generated = 1;
            p->num.text = "0";
            p->line = v->line;
            p->arg.line = p->res.line = v->line;
        }
    }
} /* check_program */

/* procedure and program names become macros: warn when one name means two numbers */
static void
check_macro_names(void)
{
    struct macro {
        const char *name;
        int64_t num;
        int line;
    } *macros = NULL;
    int n = 0, cap = 0;

    for (int i = 0; i < xc_spec.ndefs; i++) {
        struct xc_def *d = xc_spec.defs[i];
        struct macro *m;

        if (d->kind != XK_PROGRAM) {
            continue;
        }
        m = xc_push((void **) &macros, &n, &cap, sizeof(*m));
        m->name = d->name;
        m->num = (int64_t) xc_u32(&d->prognum);
        m->line = d->line;
        for (int j = 0; j < d->nversions; j++) {
            const struct xc_version *v = &d->versions[j];

            m = xc_push((void **) &macros, &n, &cap, sizeof(*m));
            m->name = v->name;
            m->num = (int64_t) xc_u32(&v->num);
            m->line = v->line;
            for (int k = 0; k < v->nprocs; k++) {
                m = xc_push((void **) &macros, &n, &cap, sizeof(*m));
                m->name = v->procs[k].name;
                m->num = v->procs[k].num.num;
                m->line = v->procs[k].line;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++) {
            if (strcmp(macros[i].name, macros[j].name) == 0 && macros[i].num != macros[j].num) {
                xc_warn(macros[i].line,
                        "'%s' = %lld here but %lld at line %d: the header "
                        "defines the first",
                        macros[i].name, (long long) macros[i].num, (long long) macros[j].num,
                        macros[j].line);
            }
        }
    }
} /* check_macro_names */

void
xc_check(void)
{
    /* 1: every type, constant and enum value has one global name */
    for (int i = 0; i < xc_spec.ndefs; i++) {
        struct xc_def *d = xc_spec.defs[i];

        if (d->kind == XK_PROGRAM) {
            check_reserved(d->name, d->line, 1);
            for (int j = 0; j < d->nversions; j++) {
                check_reserved(d->versions[j].name, d->versions[j].line, 0);
                for (int k = 0; k < d->versions[j].nprocs; k++) {
                    check_reserved(d->versions[j].procs[k].name, d->versions[j].procs[k].line, 1);
                }
            }
            continue;
        }
        check_reserved(d->name, d->line, d->kind == XK_CONST);
        add_symbol(d->name, d->line)->def = d;
        if (d->kind == XK_ENUM) {
            for (int j = 0; j < d->nvals; j++) {
                struct symbol *s;

                check_reserved(d->vals[j].name, d->vals[j].line, 0);
                s = add_symbol(d->vals[j].name, d->vals[j].line);

                s->value = &d->vals[j];
                s->owner = d;
            }
        }
    }

    /* 2: constants, enum values, types */
    for (int i = 0; i < xc_spec.ndefs; i++) {
        struct xc_def *d = xc_spec.defs[i];

        switch (d->kind) {
            case XK_CONST:
                resolve_value(&d->cval);
                break;
            case XK_ENUM:
                for (int j = 0; j < d->nvals; j++) {
                    struct xc_value *v = &d->vals[j].value;

                    resolve_value(v);
                    if (v->num < -2147483648ll || v->num > 2147483647ll) {
                        xc_fatal(v->line, "enum value %s does not fit a 32-bit int", v->text);
                    }
                }
                break;
            case XK_TYPEDEF:
                resolve_decl(&d->tdecl);
                break;
            case XK_STRUCT:
                for (int j = 0; j < d->nmembers; j++) {
                    resolve_decl(&d->members[j]);
                    for (int k = 0; k < d->nmembers; k++) {
                        const struct xc_decl *a = &d->members[j], *b = &d->members[k];

                        if (k < j && strcmp(a->name, b->name) == 0) {
                            xc_fatal(a->line, "duplicate member '%s'", a->name);
                        }
                        /* T x<> is `num_x` and `x` in C */
                        if (b->kind == XD_VAR && strncmp(a->name, "num_", 4) == 0 &&
                            strcmp(a->name + 4, b->name) == 0) {
                            xc_fatal(a->line, "member '%s' clashes with the count of '%s'", a->name,
                                     b->name);
                        }
                    }
                }
                break;
            case XK_UNION:
            case XK_OUNION:
                check_union(d);
                break;
            case XK_PROGRAM:
                break;
        }
    }
    for (int i = 0; i < xc_spec.ndefs; i++) {
        if (xc_spec.defs[i]->kind == XK_TYPEDEF) {
            check_typedef_cycle(xc_spec.defs[i]);
        }
    }

    /* 3: programs (after the types their procedures name) */
    for (int i = 0; i < xc_spec.ndefs; i++) {
        if (xc_spec.defs[i]->kind == XK_PROGRAM) {
            check_program(xc_spec.defs[i]);
        }
    }
    check_macro_names();

    /* 4: facts for the emitters */
    compute_has_zc();
    compute_recursive();
    for (int i = 0; i < xc_spec.ndefs; i++) {
        struct xc_def *d = xc_spec.defs[i];

        if (is_type_kind(d->kind)) {
            def_minsize(d, d->line);
        }
        if (d->kind == XK_STRUCT && optional_target(&d->members[d->nmembers - 1]) == d) {
            d->tail_self = 1;
        }
    }
} /* xc_check */
