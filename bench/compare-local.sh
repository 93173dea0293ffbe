#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-only
#
# bench/compare-local.sh: the transports a process can use to talk to
# itself, in one run, each configuration repeated (interleaved) and the
# median kept: in-process (STREAM_INPROC, DATAGRAM_INPROC) beside kernel
# loopback (TCP, AF_UNIX, UDP) and TCP-RDMA emulation; ping-pong 64 B with
# 16 and 1 in flight, and 64 KiB messages 32 deep.  Both ends are loops on
# their own threads (evpl-bench --local).  Prints a markdown table with
# each protocol's ratio to STREAM_SOCKET_TCP in the same row.
#
# usage: bench/compare-local.sh [--reps N] [--duration SEC]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${EVPL_BENCH:-$ROOT/build/release/tools/evpl-bench}
REPS=3
DUR=3
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift ;;
        --duration) DUR=$2; shift ;;
        *) echo "usage: $0 [--reps N] [--duration SEC]" >&2; exit 2 ;;
    esac
    shift
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# name | evpl-bench arguments (protocol appended)
CASES=(
    "pp-64x16|pingpong -s 64 -d 16"
    "pp-64x1|pingpong -s 64 -d 1"
    "msg-64k|msg -s 65536 -d 32"
)
PROTOS=(STREAM_SOCKET_TCP STREAM_SOCKET_UNIX STREAM_INPROC DATAGRAM_SOCKET_UDP DATAGRAM_INPROC
    DATAGRAM_TCP_RDMA)

for rep in $(seq "$REPS"); do
    for c in "${CASES[@]}"; do
        name=${c%%|*}
        args=${c#*|}
        for p in "${PROTOS[@]}"; do
            case "$name/$p" in
                msg-64k/DATAGRAM_SOCKET_UDP) continue ;; # above UDP's datagram limit
            esac
            "$BENCH" $args -p "$p" -D "$DUR" -w 1 --row 2>/dev/null | tail -1 \
                >"$TMP/$name.$p.$rep" || true
        done
    done
done

# row columns: mode proto size depth ops/s gbit p50 p99 ops/cpu-s
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }
col() { # case proto column
    for f in "$TMP/$1.$2".*; do
        if [ -s "$f" ]; then awk -v c="$3" '{ print $c }' "$f"; fi
    done | median
}

echo "| case | protocol | ops/s | x TCP | ops/cpu-s | x TCP | p50 us |"
echo "|---|---|---|---|---|---|---|"
for c in "${CASES[@]}"; do
    name=${c%%|*}
    base=$(col "$name" STREAM_SOCKET_TCP 5)
    basec=$(col "$name" STREAM_SOCKET_TCP 9)
    for p in "${PROTOS[@]}"; do
        o=$(col "$name" "$p" 5)
        [ "$o" = 0 ] && continue
        cp=$(col "$name" "$p" 9)
        l=$(col "$name" "$p" 7)
        awk -v n="$name" -v p="$p" -v o="$o" -v b="$base" -v c="$cp" -v bc="$basec" -v l="$l" 'BEGIN {
            printf "| %s | %s | %.0f | %.2f | %.0f | %.2f | %s |\n",
                n, p, o, (b > 0 ? o / b : 0), c, (bc > 0 ? c / bc : 0), l }'
    done
done
