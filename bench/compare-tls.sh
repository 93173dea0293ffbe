#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-only
#
# bench/compare-tls.sh: EVPL_STREAM_SOCKET_TLS against its references, in
# one run, each measurement repeated (interleaved) and the median kept:
#  - stream 128 KiB x 32 (TLS_AES_128_GCM_SHA256) beside one core's
#    AES-128-GCM rate at 16 KiB blocks (`openssl speed -evp`), the ceiling
#    issue 7 sets its bar against (>= 0.4x);
#  - ping-pong 64 B x 16 beside plain TCP (bar: >= 0.5x);
#  - each TLS figure with our record layer (the default for TLS 1.3) and
#    with OpenSSL's (EVPL_TLS_RECORD_LAYER=openssl).
# Certificates are made in a temporary directory by tests/tls/gen-certs.sh.
#
# usage: bench/compare-tls.sh [--reps N] [--duration SEC]
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
"$ROOT/tests/tls/gen-certs.sh" "$TMP/certs" >/dev/null 2>&1
export EVPL_TLS_CERT=$TMP/certs/server.pem EVPL_TLS_KEY=$TMP/certs/server.key \
    EVPL_TLS_CA=$TMP/certs/ca.pem
SUITE=TLS_AES_128_GCM_SHA256

run() { # name layer args...
    local name=$1 layer=$2
    shift 2
    EVPL_TLS_RECORD_LAYER=$layer "$BENCH" "$@" -D "$DUR" -w 1 --row 2>/dev/null | tail -1 \
        >>"$TMP/$name.$layer"
}

for rep in $(seq "$REPS"); do
    # one core's cipher rate, bytes/s at 16 KiB blocks
    openssl speed -evp aes-128-gcm -bytes 16384 -seconds "$DUR" 2>/dev/null |
        awk '/^AES-128-GCM/ { v = $2; sub(/k$/, "", v); print v * 1000 }' >>"$TMP/cipher"
    for layer in ours openssl; do
        run stream "$layer" stream -s 131072 -d 32 -p STREAM_SOCKET_TLS --tls-ciphers "$SUITE"
        run pingpong "$layer" pingpong -s 64 -d 16 -p STREAM_SOCKET_TLS --tls-ciphers "$SUITE"
    done
    run tcp-pingpong tcp pingpong -s 64 -d 16 -p STREAM_SOCKET_TCP
done

# row columns: mode proto size depth ops/s gbit p50 p99 ops/cpu-s
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { awk -v c="$2" '{ print $c }' "$TMP/$1" | median; }

cipher=$(median <"$TMP/cipher")
tcp=$(col tcp-pingpong.tcp 5)
echo "cipher: openssl speed -evp aes-128-gcm, 16 KiB blocks: $(awk -v b="$cipher" \
    'BEGIN { printf "%.2f GB/s = %.1f Gbit/s", b / 1e9, b * 8 / 1e9 }'); TCP ping-pong: $tcp ops/s"
echo
echo "| record layer | stream Gbit/s | / cipher (bar 0.4) | ping-pong ops/s | / TCP (bar 0.5) |"
echo "|---|---:|---:|---:|---:|"
for layer in ours openssl; do
    g=$(col "stream.$layer" 6)
    o=$(col "pingpong.$layer" 5)
    awk -v l="$layer" -v g="$g" -v b="$cipher" -v o="$o" -v t="$tcp" 'BEGIN {
        printf "| %s | %.2f | %.2f | %.0f | %.2f |\n", l, g, g * 1e9 / 8 / b, o, o / t }'
done
