#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# xdrzcc's command line: an error in the input exits 1 with "file:line:
# message" and leaves no output behind (previous outputs untouched); a
# usage or I/O error exits 2; the generated code of a file with a program
# (NFSv3-shaped: zcopaque argument and result, a linked list) compiles
# with -Wall -Wextra -Werror.
# usage: xdr_cli.sh <xdrzcc> <source dir> <work dir> <cc> [cflags...]
set -u
gen=$1
src=$2
work=$3
cc=$4
shift 4
fail=0
rm -rf "$work"
mkdir -p "$work"

# expect_error <name> <line> <message part>, the .x on stdin
expect_error() {
    name=$1
    line=$2
    text=$3
    cat > "$work/$name.x"
    "$gen" "$work/$name.x" "$work/$name.c" "$work/$name.h" 2> "$work/$name.err"
    rc=$?
    if [ "$rc" -ne 1 ]; then
        echo "FAIL: $name: exit $rc, expected 1"
        fail=1
    fi
    if ! grep -qF "$work/$name.x:$line: " "$work/$name.err" ||
       ! grep -qF "$text" "$work/$name.err"; then
        echo "FAIL: $name: expected \"$name.x:$line: ...$text...\", got:"
        cat "$work/$name.err"
        fail=1
    fi
    for f in "$work/$name".c "$work/$name".h "$work/$name".c.tmp* "$work/$name".h.tmp*; do
        if [ -e "$f" ]; then
            echo "FAIL: $name: $f left behind"
            fail=1
        fi
    done
}

expect_error syntax 4 "expected ';', found 'int'" <<'X'
const A = 1;
struct s {
    int a
    int b;
};
X

expect_error unknown_type 3 "unknown type 'foo'" <<'X'
/* comment
 */ struct s {
    foo x;
};
X

expect_error unknown_const 2 "unknown constant 'NOPE'" <<'X'
struct s {
    opaque x[NOPE];
};
X

expect_error duplicate_case 5 "duplicate case label" <<'X'
const ONE = 1;
union u switch (int k) {
    case 1:
        int a;
    case ONE:
        void;
};
X

expect_error bad_discriminant 1 "discriminant of 'u' must be" <<'X'
union u switch (hyper k) {
    case 1:
        int a;
};
X

expect_error contains_itself 5 "'a' contains itself" <<'X'
struct a {
    b inner;
};
struct b {
    a outer;
};
X

expect_error duplicate 2 "'x' is already defined (line 1)" <<'X'
const x = 1;
typedef int x;
X

expect_error comment 3 "unterminated comment" <<'X'
const x = 1;

/* no end
X

expect_error character 1 "unexpected character '@'" <<'X'
const x = @;
X

expect_error typedef_cycle 1 "defined in terms of itself" <<'X'
typedef b a;
typedef a b;
X

expect_error proc_number 4 "duplicate procedure number 1" <<'X'
program P {
    version V {
        void A(void) = 1;
        void B(void) = 1;
    } = 1;
} = 0x20000000;
X

expect_error program_name 2 "program name 'stuff' is already used" <<'X'
struct stuff { int a; };
program stuff {
    version V {
        void A(void) = 1;
    } = 1;
} = 1;
X

expect_error inline_struct 2 "inline struct definitions are not supported" <<'X'
struct s {
    struct { int a; } x;
};
X

expect_error zero_size 1 "size of 'x' out of range" <<'X'
typedef int x[0];
X

expect_error bare_opaque 1 "needs a size" <<'X'
typedef opaque x;
X

expect_error string_bound 3 "expected '>', found ';'" <<'X'
typedef string s<
   10
   ;
X

expect_error macro_name 2 "'len' is a name the generated code uses" <<'X'
const A = 1;
const len = 2;
X

expect_error c_keyword 2 "'register' is a C keyword" <<'X'
struct s {
    int register;
};
X

expect_error count_clash 3 "member 'num_x' clashes with the count of 'x'" <<'X'
struct s {
    int x<>;
    int num_x;
};
X

# an error found while writing the outputs: the partial files go away
expect_error pointer_cycle 1 "cannot be declared in C" <<'X'
typedef b *a;
typedef a *b;
X

# a previous output is left alone by a failing run
printf 'keep\n' > "$work/keep.c"
printf 'keep\n' > "$work/keep.h"
printf 'struct s { int a };\n' > "$work/keep.x"
if "$gen" "$work/keep.x" "$work/keep.c" "$work/keep.h" 2>/dev/null; then
    echo "FAIL: keep: xdrzcc succeeded"
    fail=1
fi
if [ "$(cat "$work/keep.c" "$work/keep.h")" != "$(printf 'keep\nkeep')" ]; then
    echo "FAIL: keep: previous outputs modified"
    fail=1
fi
cp "$work/pointer_cycle.x" "$work/keep.x"
"$gen" "$work/keep.x" "$work/keep.c" "$work/keep.h" 2>/dev/null
if [ "$(cat "$work/keep.c" "$work/keep.h")" != "$(printf 'keep\nkeep')" ]; then
    echo "FAIL: keep: previous outputs modified by a failure while writing"
    fail=1
fi
if ls "$work"/keep.*tmp* > /dev/null 2>&1; then
    echo "FAIL: keep: temporary files left behind"
    fail=1
fi

# usage and I/O errors: exit 2
"$gen" 2>/dev/null
[ $? -eq 2 ] || { echo "FAIL: no arguments: expected exit 2"; fail=1; }
"$gen" "$work/missing.x" "$work/missing.c" "$work/missing.h" 2>/dev/null
[ $? -eq 2 ] || { echo "FAIL: missing input: expected exit 2"; fail=1; }
[ ! -e "$work/missing.c" ] || { echo "FAIL: missing input: output written"; fail=1; }

"$gen" -z "$work/warn.x" "$work/z.c" "$work/z.h" 2>/dev/null
[ $? -eq 2 ] || { echo "FAIL: unknown option: expected exit 2"; fail=1; }
"$gen" -h > "$work/help.out" 2>&1
[ $? -eq 0 ] && grep -q "usage" "$work/help.out" || { echo "FAIL: -h: expected usage, exit 0"; fail=1; }
# the same file twice: refused, nothing written (helper-121: one output
# over the other left a mixed file; an output over the input replaced it)
printf 'struct same { int a; };\n' > "$work/same.x"
cp "$work/same.x" "$work/same.keep"
"$gen" "$work/same.x" "$work/same.c" "$work/same.c" 2> /dev/null
[ $? -eq 2 ] && [ ! -e "$work/same.c" ] || { echo "FAIL: two outputs the same: expected exit 2, no file"; fail=1; }
"$gen" "$work/same.x" "$work/same.x" "$work/same.h" 2> /dev/null
[ $? -eq 2 ] && cmp -s "$work/same.x" "$work/same.keep" && [ ! -e "$work/same.h" ] ||
    { echo "FAIL: output over the input: expected exit 2, the input kept"; fail=1; }
ln -sf same.x "$work/alias.x"
"$gen" "$work/same.x" "$work/same.c" "$work/alias.x" 2> /dev/null
[ $? -eq 2 ] && cmp -s "$work/same.x" "$work/same.keep" ||
    { echo "FAIL: output over the input by another name: expected exit 2"; fail=1; }

# -r (upstream's RPC2 mode, which its builds pass): the same outputs
printf 'program P { version PV { void NOP(void) = 1; } = 1; } = 7;\n' > "$work/r.x"
if ! "$gen" "$work/r.x" "$work/r1.c" "$work/r1.h" || ! "$gen" -r "$work/r.x" "$work/r2.c" "$work/r2.h" ||
   ! cmp -s "$work/r1.h" "$work/r2.h" || [ "$(sed 's/r[12]\.h/r.h/' "$work/r1.c")" != "$(sed 's/r[12]\.h/r.h/' "$work/r2.c")" ]; then
    echo "FAIL: -r: outputs differ from the plain run"
    fail=1
fi

# warnings do not fail
printf '#include <x.h>\n%% pass-through\nconst A = 1;\n' > "$work/warn.x"
if ! "$gen" "$work/warn.x" "$work/warn.c" "$work/warn.h" 2> "$work/warn.err" ||
   ! grep -qF "warn.x:1: warning: preprocessor line ignored" "$work/warn.err"; then
    echo "FAIL: warn"
    cat "$work/warn.err"
    fail=1
fi

# success: both outputs; the .c includes the header by its base name; the
# generated code compiles cleanly with every warning (unused parameters too)
mkdir -p "$work/out"
for x in prog types; do
    if ! "$gen" "$src/$x.x" "$work/out/$x.gen.c" "$work/out/$x.gen.h"; then
        echo "FAIL: $x.x: xdrzcc failed"
        fail=1
        continue
    fi
    if ! grep -q "^#include \"$x.gen.h\"" "$work/out/$x.gen.c"; then
        echo "FAIL: $x.x: the .c does not include $x.gen.h"
        fail=1
    fi
    if ! "$cc" -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
            -Wstrict-prototypes "$@" -c "$work/out/$x.gen.c" -o "$work/out/$x.o"; then
        echo "FAIL: $x.x: generated code does not compile with -Wall -Wextra -Werror"
        fail=1
    fi
done
# two generated headers in one file
printf '#include "types.gen.h"\n#include "prog.gen.h"\nint t_both(void);\nint t_both(void) { return NFS_V3 + MAXNAME; }\n' > "$work/out/both.c"
if ! "$cc" -std=gnu11 -Wall -Wextra -Werror "$@" -I"$work/out" -c "$work/out/both.c" \
        -o "$work/out/both.o"; then
    echo "FAIL: two generated headers do not go together"
    fail=1
fi

[ $fail -eq 0 ] && echo "xdr_cli: all checks passed"
exit $fail
