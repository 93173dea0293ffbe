#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-only
#
# bench/rpc-fairness.sh: what a client that pipelines calls without bound
# does to another client of the same RPC server.  One run:
#  - the server: `evpl-bench rpc --server PORT` (one loop), on CPU 0;
#  - the flood: bench rpc-flood, N connections of pipelined NULL calls
#    (replies read and dropped), on CPU 1;
#  - the victim: `evpl-bench rpc --client` with one call in flight, on
#    CPU 1, for --duration seconds after a 1 s warm-up.
# Each repetition runs the victim alone and beside the flood.  With
# EVPL_BENCH_OLD=<another evpl-bench> the runs alternate between the two
# builds (an A/B of a change).
#
# usage: bench/rpc-fairness.sh [--reps N] [--duration SEC] [--conns N]
# prints one line per run: build, flood connections, victim calls/s, p50
# and p99 (us), the flood's replies/s
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${EVPL_BENCH:-$ROOT/build/release/tools/evpl-bench}
FLOOD=${RPC_FLOOD:-$ROOT/build/release/bench/rpc-flood}
REPS=2
DUR=4
CONNS=8
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) REPS=$2; shift ;;
        --duration) DUR=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        *) echo "usage: $0 [--reps N] [--duration SEC] [--conns N]" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$BENCH" ] || { echo "no $BENCH (make release)" >&2; exit 1; }
[ -x "$FLOOD" ] || { echo "no $FLOOD (make release)" >&2; exit 1; }
BUILDS=("new|$BENCH")
if [ -n "${EVPL_BENCH_OLD:-}" ]; then
    BUILDS+=("old|$EVPL_BENCH_OLD")
fi
TMP=$(mktemp -d)
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill -INT "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

run() { # label bench conns
    local label=$1 bench=$2 conns=$3 port flood=- fpid=
    port=$((20000 + RANDOM % 10000))
    taskset -c 0 "$bench" rpc --server "$port" -q >/dev/null 2>&1 &
    SERVER=$!
    sleep 0.5
    if [ "$conns" -gt 0 ]; then
        taskset -c 1 "$FLOOD" "$port" "$conns" $((DUR + 2)) >"$TMP/flood" &
        fpid=$!
    fi
    sleep 0.5
    # row: rpc proto size depth calls/s p50 p99 calls/cpu-s
    read -r _ _ _ _ calls p50 p99 _ < <(taskset -c 1 "$bench" rpc --client "127.0.0.1:$port" \
        -d 1 -D "$DUR" -w 1 --row)
    if [ -n "$fpid" ]; then
        wait "$fpid" 2>/dev/null || true
        flood=$(awk '{print $2}' "$TMP/flood")
    fi
    kill -INT "$SERVER" 2>/dev/null
    wait "$SERVER" 2>/dev/null || true
    SERVER=
    printf '%-4s flood_conns=%-3s victim_calls/s=%-8s p50_us=%-10s p99_us=%-10s flood_replies/s=%s\n' \
        "$label" "$conns" "$calls" "$p50" "$p99" "$flood"
}

for rep in $(seq "$REPS"); do
    for b in "${BUILDS[@]}"; do
        IFS='|' read -r label bench <<<"$b"
        run "$label" "$bench" 0
        run "$label" "$bench" "$CONNS"
    done
done
