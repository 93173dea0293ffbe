/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * xdrzcc: generates C marshalling code and ONC RPC program stubs for
 * libevpl from an XDR (RFC 4506) / RPC language (RFC 5531 §12) file.
 * The contract for the output is rpc2.md §9.  Private header of the tool.
 *
 * Pipeline: parse.c (hand-written lexer and recursive-descent parser)
 * builds the definitions below; check.c resolves names and constants,
 * rejects what cannot be generated and computes the facts the emitters
 * need; emit_header.c, emit_codec.c and emit_rpc.c write the outputs.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- memory: everything lives until exit (a run is short) ---- */

void *xc_alloc(size_t size); /* zeroed; aborts when memory is exhausted */
char *xc_fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
char *xc_strndup(const char *s, size_t len);
char *xc_strdup(const char *s);
/* append one zeroed element to a growable array, returning it */
void *xc_push(void **array, int *count, int *cap, size_t elem_size);

/* ---- diagnostics: "file:line: message" on stderr ---- */

extern const char *xc_input_name;
const char *xc_input_base(void); /* the input's file name without directories */
__attribute__((noreturn, format(printf, 2, 3))) void xc_fatal(int line, const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void xc_warn(int line, const char *fmt, ...);

/* ---- the parsed file ---- */

enum xc_builtin {
    XB_NONE = 0, /* a named type */
    XB_INT32,
    XB_UINT32,
    XB_INT64,
    XB_UINT64,
    XB_FLOAT,
    XB_DOUBLE,
    XB_BOOL,
};

/* A constant as written: a literal or the name of a const / enum value. */
struct xc_value {
    const char *text; /* source spelling, valid C after the header's #defines */
    int is_name;
    int64_t num; /* the value (resolved by check.c for names) */
    int line;
};

struct xc_def;

/* A type specifier: a builtin or a name resolved to its definition. */
struct xc_type {
    enum xc_builtin builtin;
    const char *name;
    struct xc_def *def; /* resolved named type */
    int line;
};

enum xc_dkind {
    XD_VOID,
    XD_SCALAR,       /* T x */
    XD_FIXED,        /* T x[N] */
    XD_VAR,          /* T x<N> */
    XD_OPT,          /* T *x */
    XD_STRING,       /* string x<N> */
    XD_OPAQUE_FIXED, /* opaque x[N] */
    XD_OPAQUE_VAR,   /* opaque x<N> */
    XD_ZC,           /* zcopaque x<N> */
};

struct xc_decl {
    enum xc_dkind kind;
    struct xc_type type; /* element type of SCALAR, FIXED, VAR, OPT */
    const char *name;
    int has_bound;         /* FIXED kinds always; VAR kinds when <N> */
    struct xc_value bound; /* size or maximum */
    int line;
};

struct xc_arm {
    struct xc_value *labels;
    int nlabels, cap_labels;
    int is_default;
    struct xc_decl decl;
    int line;
};

struct xc_enumval {
    const char *name;
    struct xc_value value;
    int line;
};

struct xc_proc {
    const char *name;
    struct xc_type arg, res; /* builtin XB_NONE and name NULL: void */
    struct xc_value num;
    int generated; /* the NULL procedure xdrzcc adds */
    int line;
};

struct xc_version {
    const char *name;
    struct xc_value num;
    struct xc_proc *procs;
    int nprocs, cap_procs;
    struct xc_def *program;
    uint32_t maxproc;
    int line;
};

enum xc_defkind {
    XK_CONST,
    XK_TYPEDEF,
    XK_ENUM,
    XK_STRUCT,
    XK_UNION,
    XK_OUNION, /* opaque_union */
    XK_PROGRAM,
};

struct xc_def {
    enum xc_defkind kind;
    const char *name;
    int line;

    struct xc_value cval; /* const */
    struct xc_decl tdecl; /* typedef */

    struct xc_enumval *vals; /* enum */
    int nvals, cap_vals;

    struct xc_decl *members; /* struct */
    int nmembers, cap_members;

    struct xc_decl disc; /* union, opaque_union */
    struct xc_arm *arms;
    int narms, cap_arms;

    struct xc_version *versions; /* program */
    int nversions, cap_versions;
    struct xc_value prognum;

    /* filled in by check.c */
    int resolving;     /* const / typedef cycle detection */
    int has_zc;        /* contains a zcopaque somewhere (by value or pointer) */
    int zc_state;      /* 0 unknown, 1 computing, 2 done */
    uint64_t minsize;  /* smallest encoding in bytes */
    int min_state;     /* 0 unknown, 1 computing, 2 done */
    int tail_self;     /* struct: the last member is an optional pointer to itself */
    int recursive;     /* reaches itself through its members: decoding counts depth */
    int emit_state;    /* header order: 0 not yet, 1 in progress, 2 emitted */
    int disc_unsigned; /* union: discriminant compared as uint32_t */
    int proc_string;   /* typedef made for a `string` procedure argument/result */
};

struct xc_spec {
    struct xc_def **defs;
    int ndefs, cap_defs;
    int has_program;
};

extern struct xc_spec xc_spec;

/* parse.c */
void xc_parse(const char *text);

/* check.c */
void xc_check(void);
struct xc_def *xc_find_type(const char *name);
/* follow typedefs of plain (scalar) kind: the builtin or non-typedef definition at the end */
const struct xc_type *xc_base_type(const struct xc_type *t);
int xc_type_by_value(const struct xc_type *t); /* integer, float, bool or enum */
int xc_type_has_zc(const struct xc_type *t);
int xc_decl_has_zc(const struct xc_decl *d);
uint64_t xc_decl_minsize(const struct xc_decl *d);
uint32_t xc_u32(const struct xc_value *v); /* a size / bound as uint32 */
const char *xc_builtin_ctype(enum xc_builtin b);
const char *xc_type_ctype(const struct xc_type *t);
int xc_type_is_void(const struct xc_type *t);

/* emitters */
void xc_emit_header(FILE *f);
void xc_emit_codec(FILE *f, const char *header_base);
void xc_emit_rpc_header(FILE *f);
void xc_emit_rpc(FILE *f);
