#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-only
#
# bench/compare-uring.sh: the io_uring transports beside the kernel-socket
# ones, in one run, each configuration repeated (interleaved) and the
# median kept: TCP ping-pong 64 B x 16 in flight (1 and 8 connections), TCP
# stream 128 KiB x 32, UDP ping-pong 64 B x 16; on an epoll loop and on a
# loop that waits on io_uring.  Prints a markdown table with the ratio of
# each io_uring transport to the socket transport on the same loop.
#
# usage: bench/compare-uring.sh [--reps N] [--duration SEC] [--spin-ns NS]
# --spin-ns sets the loops' busy-poll window (default: the library's; -1:
# none, so a socket loop sleeps as soon as a pass finds nothing, while an
# io_uring loop keeps polling as long as its poll-only passes reap
# completions: see docs/PERFORMANCE.md before reading CPU per operation).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${EVPL_BENCH:-$ROOT/build/release/tools/evpl-bench}
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
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# name | evpl-bench arguments (protocol and mechanism appended)
CASES=(
    "tcp-pp|pingpong -s 64 -d 16"
    "tcp-pp-8c|pingpong -s 64 -d 16 -c 8"
    "tcp-stream|stream -s 131072 -d 32"
    "udp-pp|pingpong -s 64 -d 16"
)

run() { # case-name args proto mech rep
    "$BENCH" $2 -p "$3" --core-mech "$4" "${SPIN[@]}" -D "$DUR" -w 1 --row 2>/dev/null | tail -1 \
        >"$TMP/$1.$3.$4.$5"
}

for rep in $(seq "$REPS"); do
    for c in "${CASES[@]}"; do
        name=${c%%|*}
        args=${c#*|}
        case $name in
            udp*) protos="DATAGRAM_SOCKET_UDP DATAGRAM_IO_URING_UDP" ;;
            *) protos="STREAM_SOCKET_TCP STREAM_IO_URING_TCP" ;;
        esac
        for mech in epoll io_uring; do
            for p in $protos; do
                run "$name" "$args" "$p" "$mech" "$rep"
            done
        done
    done
done

# row columns: mode proto size depth ops/s gbit p50 p99 ops/cpu-s
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { # case proto mech column
    for f in "$TMP/$1.$2.$3".*; do awk -v c="$4" '{ print $c }' "$f"; done | median
}

echo "| case | loop | socket ops/s | io_uring ops/s | ratio | socket ops/cpu-s | io_uring ops/cpu-s | ratio | socket Gbit/s | io_uring Gbit/s | ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for c in "${CASES[@]}"; do
    name=${c%%|*}
    case $name in
        udp*) s=DATAGRAM_SOCKET_UDP; u=DATAGRAM_IO_URING_UDP ;;
        *) s=STREAM_SOCKET_TCP; u=STREAM_IO_URING_TCP ;;
    esac
    for mech in epoll io_uring; do
        so=$(col "$name" $s $mech 5); uo=$(col "$name" $u $mech 5)
        sc=$(col "$name" $s $mech 9); uc=$(col "$name" $u $mech 9)
        sg=$(col "$name" $s $mech 6); ug=$(col "$name" $u $mech 6)
        awk -v n="$name" -v m="$mech" -v so="$so" -v uo="$uo" -v sc="$sc" -v uc="$uc" \
            -v sg="$sg" -v ug="$ug" 'BEGIN {
                printf "| %s | %s | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f |\n",
                    n, m, so, uo, (so > 0 ? uo / so : 0), sc, uc, (sc > 0 ? uc / sc : 0),
                    sg, ug, (sg > 0 ? ug / sg : 0) }'
    done
done
