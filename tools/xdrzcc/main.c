/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * xdrzcc [-r] <input.x> <output.c> <output.h>
 *
 * Exit 0 on success, 1 on an error in the input (reported as
 * "file:line: message"), 2 on a usage or I/O error.  The outputs are
 * written to temporary files next to their destination and renamed into
 * place only when both are complete, so a failed run never leaves a
 * half-written output behind (and does not touch previous ones).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xdrzcc.h"

const char *xc_input_name = "<input>";
struct xc_spec xc_spec;

/*
 * A bump arena.  Blocks stay linked from a global so that everything is
 * still reachable at exit: the leak checker of sanitizer builds then has
 * nothing to report about a tool that never frees.
 */
struct arena_block {
    struct arena_block *next;
    size_t used, size;
    max_align_t data[];
};

static struct arena_block *arena;

void *
xc_alloc(size_t size)
{
    struct arena_block *b = arena;
    void *p;

    size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    if (!b || b->size - b->used < size) {
        size_t bsize = size > 65536 ? size : 65536;

        b = malloc(sizeof(*b) + bsize);
        if (!b) {
            fprintf(stderr, "xdrzcc: out of memory\n");
            exit(2);
        }
        b->next = arena;
        b->used = 0;
        b->size = bsize;
        arena = b;
    }
    p = (char *) b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
} /* xc_alloc */

char *
xc_strndup(const char *s, size_t len)
{
    char *p = xc_alloc(len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
} /* xc_strndup */

char *
xc_strdup(const char *s)
{
    return xc_strndup(s, strlen(s));
} /* xc_strdup */

void *
xc_push(void **array, int *count, int *cap, size_t elem_size)
{
    if (*count == *cap) {
        int ncap = *cap ? *cap * 2 : 8;
        void *n = xc_alloc((size_t) ncap * elem_size);

        if (*count) {
            memcpy(n, *array, (size_t) *count * elem_size);
        }
        *array = n; /* the old copy stays in the arena */
        *cap = ncap;
    }
    return (char *) *array + (size_t) (*count)++ * elem_size;
} /* xc_push */

/* temporary outputs, removed by the exit handler unless renamed */
static char *tmp_c, *tmp_h;

static void
remove_temporaries(void)
{
    if (tmp_c) {
        unlink(tmp_c);
    }
    if (tmp_h) {
        unlink(tmp_h);
    }
} /* remove_temporaries */

void
xc_fatal(int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s:%d: ", xc_input_name, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
} /* xc_fatal */

void
xc_warn(int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s:%d: warning: ", xc_input_name, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
} /* xc_warn */

static char *
read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long size;

    if (!f) {
        fprintf(stderr, "xdrzcc: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "xdrzcc: %s: cannot read\n", path);
        exit(2);
    }
    buf = xc_alloc((size_t) size + 1);
    if (fread(buf, 1, (size_t) size, f) != (size_t) size) {
        fprintf(stderr, "xdrzcc: %s: short read\n", path);
        exit(2);
    }
    fclose(f);
    buf[size] = '\0';
    if (memchr(buf, '\0', (size_t) size)) {
        fprintf(stderr, "xdrzcc: %s: contains a NUL byte\n", path);
        exit(2);
    }
    return buf;
} /* read_file */

static FILE *
open_tmp(const char *dest, char **tmp_path)
{
    size_t len = strlen(dest) + 32;
    FILE *f;

    *tmp_path = xc_alloc(len);
    snprintf(*tmp_path, len, "%s.tmp%ld", dest, (long) getpid());
    f = fopen(*tmp_path, "w");
    if (!f) {
        fprintf(stderr, "xdrzcc: %s: %s\n", *tmp_path, strerror(errno));
        *tmp_path = NULL;
        exit(2);
    }
    return f;
} /* open_tmp */

static void
close_tmp(FILE *f, const char *path)
{
    if (ferror(f) || fclose(f) != 0) {
        fprintf(stderr, "xdrzcc: %s: write error\n", path);
        exit(2);
    }
} /* close_tmp */

static const char *
base_name(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? slash + 1 : path;
} /* base_name */

const char *
xc_input_base(void)
{
    return base_name(xc_input_name);
} /* xc_input_base */

/* a and b name one file: by name, or, when both exist, by device and inode */
static int
same_file(const char *a, const char *b)
{
    struct stat sa, sb;

    if (strcmp(a, b) == 0) {
        return 1;
    }
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
} /* same_file */

int
main(int argc, char **argv)
{
    FILE *fc, *fh;
    char *text;

    /* -r: upstream's "RPC2 mode" (its build passes it); the program stubs
     * are always emitted here, so it changes nothing */
    while (argc > 1 && argv[1][0] == '-' && argv[1][1]) {
        if (strcmp(argv[1], "--") == 0) {
            argc--;
            argv++;
            break;
        }
        if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
            printf("usage: xdrzcc [-r] <input.x> <output.c> <output.h>\n");
            return 0;
        }
        if (strcmp(argv[1], "-r") != 0) {
            fprintf(stderr, "xdrzcc: unknown option %s\n", argv[1]);
            argc = 0;
            break;
        }
        argc--;
        argv++;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: xdrzcc [-r] <input.x> <output.c> <output.h>\n");
        return 2;
    }
    xc_input_name = argv[1];
    /* one output over the other left a file of both (helper-121), and one
     * over the input replaced the .x with C */
    if (same_file(argv[2], argv[3]) || same_file(argv[1], argv[2]) || same_file(argv[1], argv[3])) {
        fprintf(stderr, "xdrzcc: the input and the two outputs must be three different files\n");
        return 2;
    }
    atexit(remove_temporaries);

    text = read_file(argv[1]);
    xc_parse(text);
    xc_check();

    /* every error in the input has been reported by now: emit */
    fh = open_tmp(argv[3], &tmp_h);
    fc = open_tmp(argv[2], &tmp_c);
    xc_emit_header(fh);
    xc_emit_codec(fc, base_name(argv[3]));
    close_tmp(fh, tmp_h);
    close_tmp(fc, tmp_c);

    if (rename(tmp_h, argv[3]) != 0) {
        fprintf(stderr, "xdrzcc: %s: %s\n", argv[3], strerror(errno));
        return 2;
    }
    tmp_h = NULL;
    if (rename(tmp_c, argv[2]) != 0) {
        fprintf(stderr, "xdrzcc: %s: %s\n", argv[2], strerror(errno));
        return 2;
    }
    tmp_c = NULL;
    return 0;
} /* main */
