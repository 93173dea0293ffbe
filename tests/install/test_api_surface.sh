#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Every name of the libevpl API surface (tests/install/api-surface.txt, a
# copy of the spec's list: header <TAB> name <TAB> func|inline|macro) whose
# header we ship must be declared in that header, and every "func" must be
# exported by libevpl.so.  Headers not shipped yet (later issues) are listed.
# usage: test_api_surface.sh <source-dir> <library.so> [<list>]
# (the modules' list, api-surface-modules.txt, is checked against the
# module libraries: only the lines of headers that library ships)
set -eu
src=$1
lib=$2
list="${3:-$src/tests/install/api-surface.txt}"
exports=$(nm -D --defined-only "$lib" | awk '{print $3}')
fail=0
missing_headers=""
while IFS="$(printf '\t')" read -r header name kind; do
    h="$src/include/evpl/$header"
    if [ ! -f "$h" ]; then
        case " $missing_headers " in *" $header "*) ;; *) missing_headers="$missing_headers $header" ;; esac
        continue
    fi
    if ! grep -qw "$name" "$h"; then
        echo "FAIL: $name ($kind) is not declared in $header"
        fail=1
        continue
    fi
    if [ "$kind" = func ] && ! printf '%s\n' "$exports" | grep -qx "$name"; then
        echo "FAIL: $name is declared but not exported by $(basename "$lib")"
        fail=1
    fi
done < "$list"
[ -n "$missing_headers" ] && echo "not shipped yet:$missing_headers"
[ $fail = 0 ] && echo "PASS: every name of the shipped headers is declared and exported"
exit $fail
