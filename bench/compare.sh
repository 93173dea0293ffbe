#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-only
#
# bench/compare.sh: evpl-bench side by side with its peers, on loopback.
#
#   TCP ping-pong 64 B, 16 in flight  evpl-bench | uv-bench | sockperf pp --burst 16
#   TCP ping-pong 64 B, 1 in flight   evpl-bench | uv-bench | sockperf pp        (avg RTT)
#   TCP stream 128 KiB, 32 in flight  evpl-bench | uv-bench | iperf3 | iperf3 -l 1M
#   UDP ping-pong 64 B, 16 in flight  evpl-bench UDP | evpl-bench TCP | sockperf pp UDP --burst 16
#   CPU                               ops per CPU-second of the 16-deep TCP ping-pong
#   size sweep (plot only)            stream 64 B .. 1 MiB: evpl TCP, UNIX, UDP msg; uv TCP
#
# Runs one at a time, each N repetitions (3); the table holds medians and the
# ratio ours/peer, beside the bar set in issue 5.  Every raw output is kept.
#
# usage: bench/compare.sh [--quick] [--duration SEC] [--out DIR]
#   --quick          1 repetition, 1 s runs, short sweep: a smoke run
#   --duration SEC   measured seconds per run [5]; warm-up is 1 s
#   --out DIR        where raw JSON, table.md and plots go
#                    [bench/results/<timestamp>/]
# Environment: EVPL_BUILD_DIR [build/release], or EVPL_BENCH and UV_BENCH (the binaries).
# A missing tool is reported and its rows say n/a; the script does not stop.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${EVPL_BUILD_DIR:-$ROOT/build/release}
EVPL_BENCH=${EVPL_BENCH:-$BUILD_DIR/tools/evpl-bench}
UV_BENCH=${UV_BENCH:-$BUILD_DIR/bench/uv-bench}

REPS=3
DURATION=5
WARMUP=1
SWEEP_DURATION=2
OUT=""

usage() {
    sed -n '/^# usage:/,/^# A missing/s/^# \{0,1\}//p' "$0"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) REPS=1; DURATION=1; WARMUP=0.5; SWEEP_DURATION=0.5 ;;
        --duration) DURATION=$2; shift ;;
        --duration=*) DURATION=${1#*=} ;;
        --out) OUT=$2; shift ;;
        --out=*) OUT=${1#*=} ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

OUT=${OUT:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}
RAW=$OUT/raw
mkdir -p "$RAW" "$OUT/plots"

# ---- servers: started on free loopback ports, always killed on exit ----

SERVER_PIDS=()
CLIENT_PID=""
cleanup() {
    local pid
    if [ -n "$CLIENT_PID" ]; then
        kill "$CLIENT_PID" 2>/dev/null || true
        wait "$CLIENT_PID" 2>/dev/null || true
        CLIENT_PID=""
    fi
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${SERVER_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_listen PROTO PORT: until something is bound there (without connecting:
# a probe connection would count as iperf3's test client).
wait_listen() {
    python3 - "$1" "$2" <<'EOF'
import sys, time
proto, port = sys.argv[1], int(sys.argv[2])
for _ in range(100):
    for f in ("/proc/net/%s" % proto, "/proc/net/%s6" % proto):
        try:
            lines = open(f).read().splitlines()[1:]
        except OSError:
            continue
        for l in lines:
            p = l.split()
            # TCP wants LISTEN (0A); UDP is ready once bound (07)
            if int(p[1].split(":")[1], 16) == port and p[3] == ("0A" if proto == "tcp" else "07"):
                sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
EOF
}

# start_server PROTO PORT LOGFILE CMD...: CMD in the background, until it listens on PORT
start_server() {
    local proto=$1 port=$2 log=$3
    shift 3
    "$@" >"$log" 2>&1 &
    SERVER_PIDS+=($!)
    if ! wait_listen "$proto" "$port"; then
        echo "compare.sh: server did not come up: $*" >&2
        return 1
    fi
}

stop_servers() {
    cleanup
}

# ---- runs ----

have() {
    [ -x "$1" ] || command -v "$1" >/dev/null 2>&1
}

ceil() {
    python3 -c "import math, sys; print(max(1, math.ceil(float(sys.argv[1]))))" "$1"
}

RUN_NO=0
rc=0
# run NAME CMD...: one measurement, stdout to raw/NAME.<ext>; never fails the script
run() {
    local name=$1 ext=json
    shift
    case "$1" in sockperf) ext=txt ;; esac
    RUN_NO=$((RUN_NO + 1))
    printf '[%3d] %-34s ' "$RUN_NO" "$name"
    # In the background and waited for: a trapped SIGINT then interrupts the
    # wait at once (a foreground child that handles SIGINT itself, as sockperf
    # does, would make bash carry on), and cleanup kills the child.
    "$@" >"$RAW/$name.$ext" 2>"$RAW/$name.err" &
    CLIENT_PID=$!
    rc=0
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=""
    if [ "$rc" -eq 0 ]; then
        python3 "$ROOT/bench/compare_report.py" --summary "$RAW/$name.$ext" || echo
    else
        echo "FAILED (rc $rc; see raw/$name.err)"
        mv "$RAW/$name.$ext" "$RAW/$name.failed" 2>/dev/null || true
    fi
}

# ours/uv NAME MODE ARGS...: evpl-bench or uv-bench in --local mode
bench_run() {
    local tool=$1 name=$2
    shift 2
    local bin=$EVPL_BENCH
    [ "$tool" = uv ] && bin=$UV_BENCH
    if ! have "$bin"; then
        return 0
    fi
    run "$name" "$bin" "$@" --local -D "$DURATION" -w "$WARMUP" -q -j
}

for t in "$EVPL_BENCH" "$UV_BENCH" sockperf iperf3 gnuplot; do
    have "$t" || echo "compare.sh: $t not found: its rows will say n/a" >&2
done

SEC=$(ceil "$(python3 -c "print($DURATION + $WARMUP)")")
OMIT=$(ceil "$WARMUP")

cat >"$OUT/config.txt" <<EOF
date: $(date -Is)
host: $(uname -nr) / $(nproc) CPUs / $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
repetitions: $REPS, duration: ${DURATION}s, warm-up: ${WARMUP}s, sweep: ${SWEEP_DURATION}s x 1
evpl-bench: $EVPL_BENCH
uv-bench: $UV_BENCH
sockperf: $(sockperf --version 2>/dev/null | grep -o 'version [^ ]*' | head -1) (run for ${SEC}s; it drops its own warm-up)
iperf3: $(iperf3 --version 2>/dev/null | head -1) (-t $DURATION -O $OMIT)
EOF

for rep in $(seq 1 "$REPS"); do
    # TCP ping-pong 64 B x 16
    bench_run evpl "pp16-evpl-$rep" pingpong -s 64 -d 16
    bench_run uv "pp16-uv-$rep" pingpong -s 64 -d 16
    bench_run uv "pp16-uvcoalesce-$rep" pingpong -s 64 -d 16 --coalesce
    # TCP ping-pong 64 B x 1
    bench_run evpl "pp1-evpl-$rep" pingpong -s 64 -d 1
    bench_run uv "pp1-uv-$rep" pingpong -s 64 -d 1
    # TCP stream 128 KiB x 32
    bench_run evpl "st128k-evpl-$rep" stream -s 131072 -d 32
    bench_run uv "st128k-uv-$rep" stream -s 131072 -d 32
    # UDP ping-pong 64 B x 16
    bench_run evpl "udp16-evpl-$rep" pingpong -p DATAGRAM_SOCKET_UDP -s 64 -d 16
done

# sockperf: one server per protocol; --full-rtt so its figures are round trips
# like ours; --burst 16 sends 16 then waits for the 16 replies (its nearest to
# 16 in flight: a window refilled per burst, not per reply).
if have sockperf; then
    port=$(free_port)
    if start_server tcp "$port" "$RAW/sockperf-tcp-server.log" \
        sockperf sr --tcp -i 127.0.0.1 -p "$port"; then
        for rep in $(seq 1 "$REPS"); do
            run "pp16-sockperf-$rep" sockperf pp --tcp -i 127.0.0.1 -p "$port" -m 64 \
                -t "$SEC" --burst 16 --full-rtt
            run "pp1-sockperf-$rep" sockperf pp --tcp -i 127.0.0.1 -p "$port" -m 64 \
                -t "$SEC" --full-rtt
        done
    fi
    stop_servers
    port=$(free_port)
    if start_server udp "$port" "$RAW/sockperf-udp-server.log" \
        sockperf sr -i 127.0.0.1 -p "$port"; then
        for rep in $(seq 1 "$REPS"); do
            run "udp16-sockperf-$rep" sockperf pp -i 127.0.0.1 -p "$port" -m 64 \
                -t "$SEC" --burst 16 --full-rtt
        done
    fi
    stop_servers
fi

# iperf3: one server; default single stream (128 KiB writes), then -l 1M
if have iperf3; then
    port=$(free_port)
    if start_server tcp "$port" "$RAW/iperf3-server.log" \
        iperf3 -s -B 127.0.0.1 -p "$port"; then
        for rep in $(seq 1 "$REPS"); do
            run "st128k-iperf3-$rep" iperf3 -c 127.0.0.1 -p "$port" -t "$DURATION" -O "$OMIT" -J
            run "st128k-iperf3l1m-$rep" iperf3 -c 127.0.0.1 -p "$port" -t "$DURATION" \
                -O "$OMIT" -l 1M -J
        done
    fi
    stop_servers
fi

# throughput against message size, one repetition each (plot only)
DURATION_SAVED=$DURATION
DURATION=$SWEEP_DURATION
for size in 64 256 1024 4096 16384 65536 262144 1048576; do
    bench_run evpl "sweep-evpltcp-$size-1" stream -p STREAM_SOCKET_TCP -s "$size" -d 32
    bench_run evpl "sweep-evplunix-$size-1" stream -p STREAM_SOCKET_UNIX -s "$size" -d 32
    if [ "$size" -le 65507 ]; then
        bench_run evpl "sweep-evpludp-$size-1" msg -p DATAGRAM_SOCKET_UDP -s "$size" -d 32
    fi
    bench_run uv "sweep-uvtcp-$size-1" stream -s "$size" -d 32
done
DURATION=$DURATION_SAVED

find "$RAW" -name '*.err' -empty -delete
python3 "$ROOT/bench/compare_report.py" --out "$OUT"
echo
echo "results: $OUT"
