#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# evpl-bench smoke test: each mode moves data (ops > 0); no figure is judged.
# usage: test_bench_smoke.sh <evpl-bench> <mode and options...>
set -eu
bench=$1
shift
out=$("$bench" "$@" -D 0.3 -w 0.1 -q --json)
echo "$out" | cut -c1-300
case "$out" in
    *'"ops":0,'*) echo "FAIL: no operations completed"; exit 1 ;;
    *'"ops":'*) exit 0 ;;
    *) echo "FAIL: no JSON summary"; exit 1 ;;
esac
