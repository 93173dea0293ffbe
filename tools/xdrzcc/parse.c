/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Lexer and recursive-descent parser for the XDR language (RFC 4506 §6.3)
 * and the RPC language (RFC 5531 §12.2), with the extensions of rpc2.md
 * §9.2: C fixed-width type names, `zcopaque`, `opaque_union`, `%` lines.
 * The whole input is tokenised first; the parser then has unlimited
 * look-ahead, which `typedef struct {...} name;` needs.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xdrzcc.h"

enum tok_kind {
    TK_EOF,
    TK_ID,
    TK_NUM,
    TK_PUNCT,
};

struct token {
    enum tok_kind kind;
    const char *text;
    int64_t num;
    int line;
};

static struct token *toks;
static int ntoks, cap_toks, cur;

/* ---- lexer ---- */

static void
add_token(enum tok_kind kind, const char *start, size_t len, int64_t num, int line)
{
    struct token *t = xc_push((void **) &toks, &ntoks, &cap_toks, sizeof(*t));

    t->kind = kind;
    t->text = xc_strndup(start, len);
    t->num = num;
    t->line = line;
} /* add_token */

static void
lex(const char *p)
{
    int line = 1, line_start = 1;

    while (*p) {
        if (*p == '\n') {
            line++;
            line_start = 1;
            p++;
            continue;
        }
        if (isspace((unsigned char) *p)) {
            p++;
            continue;
        }
        /* `%` lines are rpcgen pass-through text; `#` lines would be
         * preprocessor directives, which xdrzcc does not run */
        if (line_start && (*p == '%' || *p == '#')) {
            if (*p == '#') {
                xc_warn(line, "preprocessor line ignored");
            }
            while (*p && *p != '\n') {
                p++;
            }
            continue;
        }
        line_start = 0;
        if (p[0] == '/' && p[1] == '*') {
            int start = line;

            p += 2;
            while (*p && !(p[0] == '*' && p[1] == '/')) {
                if (*p == '\n') {
                    line++;
                }
                p++;
            }
            if (!*p) {
                xc_fatal(start, "unterminated comment");
            }
            p += 2;
            continue;
        }
        if (p[0] == '/' && p[1] == '/') {
            while (*p && *p != '\n') {
                p++;
            }
            continue;
        }
        if (isalpha((unsigned char) *p) || *p == '_') {
            const char *s = p;

            while (isalnum((unsigned char) *p) || *p == '_') {
                p++;
            }
            add_token(TK_ID, s, (size_t) (p - s), 0, line);
            continue;
        }
        if (isdigit((unsigned char) *p) || (*p == '-' && isdigit((unsigned char) p[1]))) {
            const char *s = p;
            int neg = *p == '-';
            unsigned long long v;
            char *end;

            if (neg) {
                p++;
            }
            errno = 0;
            v = strtoull(p, &end, 0);
            if (errno == ERANGE) {
                xc_fatal(line, "number out of range");
            }
            if (isalnum((unsigned char) *end) || *end == '_') {
                xc_fatal(line, "malformed number");
            }
            if (neg && v > (1ull << 63)) {
                xc_fatal(line, "number out of range");
            }
            p = end;
            add_token(TK_NUM, s, (size_t) (p - s), neg ? (int64_t) (0 - v) : (int64_t) v, line);
            continue;
        }
        if (strchr("{}()[]<>;,=:*", *p)) {
            add_token(TK_PUNCT, p, 1, 0, line);
            p++;
            continue;
        }
        if (isprint((unsigned char) *p)) {
            xc_fatal(line, "unexpected character '%c'", *p);
        }
        xc_fatal(line, "unexpected character 0x%02x", (unsigned char) *p);
    }
    add_token(TK_EOF, "end of file", strlen("end of file"), 0, line);
} /* lex */

/* ---- parser helpers ---- */

static const char *const keywords[] = {
    "bool",         "case",    "const",    "default",  "double",    "enum",   "float",
    "hyper",        "int",     "opaque",   "program",  "quadruple", "string", "struct",
    "switch",       "typedef", "union",    "unsigned", "version",   "void",   "zcopaque",
    "opaque_union", "int32_t", "uint32_t", "int64_t",  "uint64_t",  NULL,
};

/* C keywords cannot name anything the generated C declares */
static const char *const c_keywords[] = {
    "auto",          "break",    "char",     "continue",   "do",        "else",
    "extern",        "for",      "goto",     "if",         "inline",    "long",
    "register",      "restrict", "return",   "short",      "signed",    "sizeof",
    "static",        "volatile", "while",    "_Alignas",   "_Alignof",  "_Atomic",
    "_Bool",         "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert",
    "_Thread_local", NULL,
};

static int
is_c_keyword(const char *s)
{
    for (int i = 0; c_keywords[i]; i++) {
        if (strcmp(c_keywords[i], s) == 0) {
            return 1;
        }
    }
    return 0;
} /* is_c_keyword */

static int
is_keyword(const char *s)
{
    for (int i = 0; keywords[i]; i++) {
        if (strcmp(keywords[i], s) == 0) {
            return 1;
        }
    }
    return 0;
} /* is_keyword */

static struct token *
peek(int ahead)
{
    int i = cur + ahead;

    return &toks[i < ntoks ? i : ntoks - 1];
} /* peek */

static int
at(const char *text)
{
    struct token *t = peek(0);

    return t->kind != TK_EOF && strcmp(t->text, text) == 0;
} /* at */

static int
at_ahead(int ahead, const char *text)
{
    struct token *t = peek(ahead);

    return t->kind != TK_EOF && strcmp(t->text, text) == 0;
} /* at_ahead */

static struct token *
next(void)
{
    struct token *t = peek(0);

    if (t->kind != TK_EOF) {
        cur++;
    }
    return t;
} /* next */

static const char *
describe(const struct token *t)
{
    size_t len = strlen(t->text) + 3;
    char *s;

    if (t->kind == TK_EOF) {
        return t->text;
    }
    s = xc_alloc(len);
    snprintf(s, len, "'%s'", t->text);
    return s;
} /* describe */

static void
expect(const char *text)
{
    struct token *t = peek(0);

    if (!at(text)) {
        xc_fatal(t->line, "expected '%s', found %s", text, describe(t));
    }
    next();
} /* expect */

static int
accept(const char *text)
{
    if (at(text)) {
        next();
        return 1;
    }
    return 0;
} /* accept */

static const char *
expect_ident(const char *what)
{
    struct token *t = peek(0);

    if (t->kind != TK_ID) {
        xc_fatal(t->line, "expected %s, found %s", what, describe(t));
    }
    if (is_keyword(t->text)) {
        xc_fatal(t->line, "expected %s, found the keyword '%s'", what, t->text);
    }
    if (is_c_keyword(t->text)) {
        xc_fatal(t->line, "'%s' is a C keyword", t->text);
    }
    next();
    return t->text;
} /* expect_ident */

/* constant: a number or the name of a const / enum value */
static void
parse_value(struct xc_value *v)
{
    struct token *t = peek(0);

    if (t->kind == TK_NUM) {
        v->num = t->num;
        v->is_name = 0;
    } else if (t->kind == TK_ID && !is_keyword(t->text)) {
        v->is_name = 1;
    } else {
        xc_fatal(t->line, "expected a constant, found %s", describe(t));
    }
    v->text = t->text;
    v->line = t->line;
    next();
} /* parse_value */

static struct xc_def *
new_def(enum xc_defkind kind, const char *name, int line)
{
    struct xc_def **slot =
        xc_push((void **) &xc_spec.defs, &xc_spec.ndefs, &xc_spec.cap_defs, sizeof(*slot));
    struct xc_def *d = xc_alloc(sizeof(*d));

    d->kind = kind;
    d->name = name;
    d->line = line;
    *slot = d;
    return d;
} /* new_def */

/* ---- types and declarations ---- */

/*
 * type-specifier: the builtins (with the C fixed-width spellings and a
 * bare `unsigned`), or a type name, optionally written `struct X`,
 * `union X` or `enum X` as rpcgen accepts.  Inline definitions
 * (`struct { ... }` inside a declaration) are not supported.
 */
static void
parse_type(struct xc_type *t)
{
    struct token *tok = peek(0);

    t->line = tok->line;
    t->builtin = XB_NONE;
    t->name = NULL;
    if (accept("unsigned")) {
        if (accept("hyper")) {
            t->builtin = XB_UINT64;
        } else {
            accept("int");
            t->builtin = XB_UINT32;
        }
        return;
    }
    if (accept("int") || accept("int32_t")) {
        t->builtin = XB_INT32;
    } else if (accept("uint32_t")) {
        t->builtin = XB_UINT32;
    } else if (accept("hyper") || accept("int64_t")) {
        t->builtin = XB_INT64;
    } else if (accept("uint64_t")) {
        t->builtin = XB_UINT64;
    } else if (accept("float")) {
        t->builtin = XB_FLOAT;
    } else if (accept("double")) {
        t->builtin = XB_DOUBLE;
    } else if (accept("bool")) {
        t->builtin = XB_BOOL;
    } else if (at("quadruple")) {
        xc_fatal(tok->line, "quadruple is not supported");
    } else if (at("struct") || at("union") || at("enum") || at("opaque_union")) {
        next();
        if (at("{") || at("switch")) {
            xc_fatal(tok->line,
                     "inline %s definitions are not supported: define the type "
                     "separately and use its name",
                     tok->text);
        }
        t->name = expect_ident("a type name");
    } else if (at("string") || at("opaque") || at("zcopaque") || at("void")) {
        xc_fatal(tok->line, "'%s' cannot be used here", tok->text);
    } else {
        t->name = expect_ident("a type");
    }
} /* parse_type */

/* `< [N] >` of a variable-length declaration */
static void
parse_var_bound(struct xc_decl *d)
{
    expect("<");
    if (!at(">")) {
        d->has_bound = 1;
        parse_value(&d->bound);
    }
    expect(">");
} /* parse_var_bound */

static void
parse_declaration(struct xc_decl *d)
{
    struct token *tok = peek(0);

    memset(d, 0, sizeof(*d));
    d->line = tok->line;
    if (accept("void")) {
        d->kind = XD_VOID;
        return;
    }
    if (accept("opaque")) {
        d->name = expect_ident("a name");
        if (accept("[")) {
            d->kind = XD_OPAQUE_FIXED;
            d->has_bound = 1;
            parse_value(&d->bound);
            expect("]");
        } else if (at("<")) {
            d->kind = XD_OPAQUE_VAR;
            parse_var_bound(d);
        } else {
            xc_fatal(peek(0)->line, "opaque '%s' needs a size: [N], <N> or <>", d->name);
        }
        return;
    }
    if (accept("zcopaque")) {
        d->kind = XD_ZC;
        d->name = expect_ident("a name");
        if (!at("<")) {
            xc_fatal(peek(0)->line, "zcopaque '%s' must be variable-length: <N> or <>", d->name);
        }
        parse_var_bound(d);
        return;
    }
    if (accept("string")) {
        d->kind = XD_STRING;
        d->name = expect_ident("a name");
        if (at("<")) {
            parse_var_bound(d);
        } /* a bare `string x;` (upstream's files have it) is `string x<>` */
        return;
    }
    parse_type(&d->type);
    if (accept("*")) {
        d->kind = XD_OPT;
        d->name = expect_ident("a name");
        return;
    }
    d->name = expect_ident("a name");
    if (accept("[")) {
        d->kind = XD_FIXED;
        d->has_bound = 1;
        parse_value(&d->bound);
        expect("]");
    } else if (at("<")) {
        d->kind = XD_VAR;
        parse_var_bound(d);
    } else {
        d->kind = XD_SCALAR;
    }
} /* parse_declaration */

/* ---- definitions ---- */

static void
parse_enum_body(struct xc_def *def)
{
    int64_t next_value = 0;
    int have_prev = 0;

    expect("{");
    do {
        struct xc_enumval *v;
        struct token *t;

        if (at("}") && def->nvals > 0) {
            break; /* trailing comma */
        }
        v = xc_push((void **) &def->vals, &def->nvals, &def->cap_vals, sizeof(*v));
        t = peek(0);
        v->line = t->line;
        v->name = expect_ident("an enumerator");
        if (accept("=")) {
            parse_value(&v->value);
        } else {
            /* rpcgen extension: one more than the previous value */
            size_t len;
            char *s;

            if (have_prev && def->vals[def->nvals - 2].value.is_name) {
                xc_fatal(v->line, "'%s' needs a value (the previous one is symbolic)", v->name);
            }
            v->value.num = have_prev ? def->vals[def->nvals - 2].value.num + 1 : next_value;
            len = 32;
            s = xc_alloc(len);
            snprintf(s, len, "%lld", (long long) v->value.num);
            v->value.text = s;
            v->value.line = v->line;
        }
        have_prev = 1;
    } while (accept(","));
    expect("}");
} /* parse_enum_body */

static void
parse_struct_body(struct xc_def *def)
{
    expect("{");
    do {
        struct xc_decl *m =
            xc_push((void **) &def->members, &def->nmembers, &def->cap_members, sizeof(*m));

        parse_declaration(m);
        if (m->kind == XD_VOID) {
            xc_fatal(m->line, "a struct member cannot be void");
        }
        expect(";");
    } while (!at("}"));
    expect("}");
} /* parse_struct_body */

static void
parse_union_body(struct xc_def *def)
{
    expect("switch");
    expect("(");
    parse_declaration(&def->disc);
    if (def->disc.kind != XD_SCALAR) {
        xc_fatal(def->disc.line, "a union discriminant must be a plain int, unsigned int, bool "
                                 "or enum declaration");
    }
    expect(")");
    expect("{");
    while (!at("}")) {
        struct xc_arm *arm =
            xc_push((void **) &def->arms, &def->narms, &def->cap_arms, sizeof(*arm));
        struct token *t = peek(0);

        arm->line = t->line;
        if (!at("case") && !at("default")) {
            xc_fatal(t->line, "expected 'case' or 'default', found %s", describe(t));
        }
        /* several labels may share one arm */
        while (at("case") || at("default")) {
            if (accept("default")) {
                if (arm->is_default) {
                    xc_fatal(t->line, "duplicate default");
                }
                arm->is_default = 1;
            } else {
                struct xc_value *v;

                next();
                v = xc_push((void **) &arm->labels, &arm->nlabels, &arm->cap_labels, sizeof(*v));
                parse_value(v);
            }
            expect(":");
        }
        parse_declaration(&arm->decl);
        expect(";");
    }
    if (def->narms == 0) {
        xc_fatal(def->line, "union '%s' has no arms", def->name);
    }
    expect("}");
} /* parse_union_body */

/* a procedure's argument or result: void, a builtin or a type name */
static void
parse_proc_type(struct xc_type *t, const char *program)
{
    struct token *tok = peek(0);

    if (accept("void")) {
        memset(t, 0, sizeof(*t));
        t->line = tok->line;
        return;
    }
    if (accept("string")) {
        /* rpc2.md §9.4: the handlers see an xdr_string *; the codec comes
         * from one unbounded string typedef per program, <program>_string */
        static struct xc_def *def;

        if (!def || strcmp(def->name, xc_fmt("%s_string", program)) != 0) {
            def = new_def(XK_TYPEDEF, xc_fmt("%s_string", program), tok->line);
            def->tdecl.kind = XD_STRING;
            def->tdecl.name = def->name;
            def->tdecl.line = tok->line;
            def->proc_string = 1;
        }
        memset(t, 0, sizeof(*t));
        t->name = def->name;
        t->line = tok->line;
        return;
    }
    parse_type(t);
} /* parse_proc_type */

static void
parse_program(void)
{
    struct token *t = peek(0);
    struct xc_def *def;
    const char *name;

    name = expect_ident("a program name");
    def = new_def(XK_PROGRAM, name, t->line);
    xc_spec.has_program = 1;
    expect("{");
    do {
        struct xc_version *v =
            xc_push((void **) &def->versions, &def->nversions, &def->cap_versions, sizeof(*v));

        v->line = peek(0)->line;
        v->program = def;
        expect("version");
        v->name = expect_ident("a version name");
        expect("{");
        do {
            struct xc_proc *p = xc_push((void **) &v->procs, &v->nprocs, &v->cap_procs, sizeof(*p));

            p->line = peek(0)->line;
            parse_proc_type(&p->res, name);
            p->name = expect_ident("a procedure name");
            expect("(");
            parse_proc_type(&p->arg, name);
            if (at(",")) {
                xc_fatal(peek(0)->line, "procedures take one argument (use a struct)");
            }
            expect(")");
            expect("=");
            parse_value(&p->num);
            expect(";");
        } while (!at("}"));
        expect("}");
        expect("=");
        parse_value(&v->num);
        expect(";");
    } while (!at("}"));
    expect("}");
    expect("=");
    parse_value(&def->prognum);
    expect(";");
} /* parse_program */

static void
parse_definition(void)
{
    struct token *t = peek(0);
    struct xc_def *def;
    const char *name;

    if (accept("const")) {
        name = expect_ident("a constant name");
        def = new_def(XK_CONST, name, t->line);
        expect("=");
        parse_value(&def->cval);
        expect(";");
    } else if (accept("enum")) {
        name = expect_ident("an enum name");
        def = new_def(XK_ENUM, name, t->line);
        parse_enum_body(def);
        expect(";");
    } else if (accept("struct")) {
        name = expect_ident("a struct name");
        def = new_def(XK_STRUCT, name, t->line);
        parse_struct_body(def);
        expect(";");
    } else if (accept("union")) {
        name = expect_ident("a union name");
        def = new_def(XK_UNION, name, t->line);
        parse_union_body(def);
        expect(";");
    } else if (accept("opaque_union")) {
        name = expect_ident("a union name");
        def = new_def(XK_OUNION, name, t->line);
        parse_union_body(def);
        expect(";");
    } else if (accept("program")) {
        parse_program();
    } else if (accept("typedef")) {
        /* `typedef enum {...} name;` and friends define the named type */
        if (at("enum") && at_ahead(1, "{")) {
            next();
            def = new_def(XK_ENUM, NULL, t->line);
            parse_enum_body(def);
        } else if (at("struct") && at_ahead(1, "{")) {
            next();
            def = new_def(XK_STRUCT, NULL, t->line);
            parse_struct_body(def);
        } else if ((at("union") || at("opaque_union")) && at_ahead(1, "switch")) {
            def = new_def(at("union") ? XK_UNION : XK_OUNION, NULL, t->line);
            next();
            parse_union_body(def);
        } else {
            def = new_def(XK_TYPEDEF, NULL, t->line);
            parse_declaration(&def->tdecl);
            if (def->tdecl.kind == XD_VOID) {
                xc_fatal(t->line, "cannot typedef void");
            }
            def->name = def->tdecl.name;
            expect(";");
            return;
        }
        def->name = expect_ident("a type name");
        expect(";");
    } else {
        xc_fatal(t->line,
                 "expected a definition (const, typedef, enum, struct, union, "
                 "opaque_union or program), found %s",
                 describe(t));
    }
} /* parse_definition */

void
xc_parse(const char *text)
{
    lex(text);
    while (peek(0)->kind != TK_EOF) {
        parse_definition();
    }
} /* xc_parse */
