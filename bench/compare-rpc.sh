#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-only
#
# bench/compare-rpc.sh: libevpl_rpc2 beside libtirpc (the ONC RPC library
# Linux distributions ship), in one run, each measurement repeated
# (interleaved) and the median kept.  The same program on both sides
# (tools/bench_rpc.x: procedure 1 echoes { seq, opaque payload<> }), TCP on
# loopback, server and client in their own threads or processes:
#  - one call in flight on one connection (latency-bound);
#  - 16 calls in flight: evpl pipelines them on one connection, libtirpc
#    (whose clnt_call is synchronous) uses 16 connections and threads;
#  - payloads of 64 B and 64 KiB; evpl also with the payload as a zcopaque
#    (by reference: no copy in the library).
# Calls per CPU-second count both sides' CPU time.
#
# --spin-ns NS is passed to evpl-bench (-1: loops never busy-poll, as
# libtirpc's blocking calls never do).
#
# usage: bench/compare-rpc.sh [--reps N] [--duration SEC] [--spin-ns NS]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${EVPL_BENCH:-$ROOT/build/release/tools/evpl-bench}
TIRPC=${TIRPC_BENCH:-$ROOT/build/release/bench/tirpc-bench}
REPS=3
DUR=3
SPIN=()
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift ;;
        --duration) DUR=$2; shift ;;
        --spin-ns) SPIN=(--spin-ns "$2"); shift ;;
        *) echo "usage: $0 [--reps N] [--duration SEC] [--spin-ns NS]" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$TIRPC" ] || { echo "no $TIRPC (install libtirpc-dev, rebuild)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# name | size | in flight
CASES=("64B-x1|64|1" "64B-x16|64|16" "64K-x1|65536|1" "64K-x16|65536|16")

for rep in $(seq "$REPS"); do
    for c in "${CASES[@]}"; do
        IFS='|' read -r name size depth <<<"$c"
        "$BENCH" rpc -p STREAM_SOCKET_TCP -s "$size" -d "$depth" -D "$DUR" -w 1 "${SPIN[@]}" \
            --row >"$TMP/$name.evpl.$rep"
        "$BENCH" rpc -p STREAM_SOCKET_TCP -s "$size" -d "$depth" -D "$DUR" -w 1 "${SPIN[@]}" \
            --zc --row >"$TMP/$name.evplzc.$rep"
        "$TIRPC" -s "$size" -c "$depth" -D "$DUR" -w 1 --row >"$TMP/$name.tirpc.$rep"
    done
done

# median of column $2 (1-based, whitespace-separated) over the reps
median() {
    for f in "$TMP/$1".*; do awk -v c="$2" '{print $c}' "$f"; done | sort -g |
        awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'
}

echo "| case | evpl calls/s | evpl zc calls/s | libtirpc calls/s | evpl/tirpc | evpl calls/cpu-s | libtirpc calls/cpu-s | evpl/tirpc | evpl p50 us | tirpc p50 us |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for c in "${CASES[@]}"; do
    IFS='|' read -r name size depth <<<"$c"
    e=$(median "$name.evpl" 5)
    z=$(median "$name.evplzc" 5)
    t=$(median "$name.tirpc" 5)
    ec=$(median "$name.evpl" 8)
    tc=$(median "$name.tirpc" 8)
    ep=$(median "$name.evpl" 6)
    tp=$(median "$name.tirpc" 6)
    awk -v n="$name" -v e="$e" -v z="$z" -v t="$t" -v ec="$ec" -v tc="$tc" -v ep="$ep" -v tp="$tp" \
        'BEGIN {printf "| %s | %.0f | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f | %.1f | %.1f |\n",
                n, e, z, t, e / t, ec, tc, ec / tc, ep, tp}'
done
