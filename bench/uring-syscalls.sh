#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-only
#
# bench/uring-syscalls.sh: system calls per loop pass under load, for TCP
# ping-pong (64 B x 16 in flight) on each wait mechanism and transport.
# strace -f -c counts every system call of the run; evpl-bench reports the
# loop passes of the same run (EVPL_BENCH_PASSES) and its operations (round
# trips).  strace slows the run down; the ratios are what count: they are
# structural (what a pass, or one round trip, costs in kernel entries).
# Idle polling passes make syscalls/pass small; syscalls/op is the figure
# to compare between transports.
#
# usage: bench/uring-syscalls.sh [seconds]   (needs strace)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${EVPL_BENCH:-$ROOT/build/release/tools/evpl-bench}
DUR=${1:-3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

printf "%-10s %-22s %10s %12s %10s %10s %10s\n" mech protocol syscalls passes ops per-pass per-op
for mech in epoll io_uring; do
    for proto in STREAM_SOCKET_TCP STREAM_IO_URING_TCP; do
        EVPL_BENCH_PASSES=1 strace -f -c -o "$TMP/strace" \
            "$BENCH" pingpong -p "$proto" --core-mech "$mech" -D "$DUR" -w 0 -q \
            >"$TMP/out" 2>"$TMP/err" || true
        passes=$(sed -n 's/^loop passes: //p' "$TMP/err")
        calls=$(awk '$NF == "total" { print $(NF-2) }' "$TMP/strace")
        ops=$(awk -v d="$DUR" '/ops\/s/ && !done { printf "%.0f", $1 * d; done = 1 }' "$TMP/out")
        # the run's fixed costs (thread start, setup) are a few hundred calls
        printf "%-10s %-22s %10s %12s %10s %10s %10s\n" "$mech" "$proto" "$calls" "$passes" "$ops" \
            "$(awk -v c="$calls" -v p="$passes" 'BEGIN { if (p > 0) printf "%.4f", c / p }')" \
            "$(awk -v c="$calls" -v o="$ops" 'BEGIN { if (o > 0) printf "%.3f", c / o }')"
    done
done
