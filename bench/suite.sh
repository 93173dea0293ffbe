#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# The default suite `make run` shows: evpl-bench --local on loopback.
#   usage: bench/suite.sh [path/to/evpl-bench] [seconds-per-run]
set -eu
BENCH=${1:-build/release/tools/evpl-bench}
SECS=${2:-3}
W=1

printf '%-9s %-20s %7s %5s %12s %9s %9s %9s %12s\n' \
    mode protocol size depth ops/s Gbit/s p50_us p99_us ops/cpu-s
"$BENCH" pingpong --proto auto --size 64 --depth 16 -D "$SECS" -w "$W" --row
"$BENCH" pingpong --proto auto --size 64 --depth 1 -D "$SECS" -w "$W" --row
"$BENCH" stream --proto auto --size 131072 --depth 32 -D "$SECS" -w "$W" --row
"$BENCH" pingpong --proto DATAGRAM_SOCKET_UDP --size 64 --depth 16 -D "$SECS" -w "$W" --row
"$BENCH" pingpong --proto STREAM_SOCKET_UNIX --size 64 --depth 16 -D "$SECS" -w "$W" --row
