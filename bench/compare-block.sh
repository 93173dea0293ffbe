#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-only
#
# bench/compare-block.sh: evpl-bench block beside fio, same engine, same
# file (O_DIRECT), same request size and depth, interleaved repetitions,
# medians: 4 KiB random reads at depth 32 and 128 KiB sequential writes at
# depth 8, on io_uring and libaio.  Prints a markdown table: IOPS and CPU
# seconds per million I/Os, with the ratio ours / fio (of the medians, and
# the median of each repetition's back-to-back pair: drift cancels out).
#
# usage: bench/compare-block.sh [--file PATH] [--size BYTES] [--reps N] [--duration SEC]
#                               [--case NAME] [--engine io_uring|libaio]
# --case / --engine keep only that case or engine (e.g. more repetitions of
# the random reads alone).
# The file is created and written through once (so reads hit the disk, not
# holes) when it does not exist; it is left in place for later runs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${EVPL_BENCH:-$ROOT/build/release/tools/evpl-bench}
FILE=/var/tmp/evpl-block-bench.img
SIZE=$((1024 * 1024 * 1024))
REPS=3
DUR=5
ONLY_CASE=
ONLY_ENGINE=
while [ $# -gt 0 ]; do
    case "$1" in
        --file) FILE=$2; shift ;;
        --size) SIZE=$2; shift ;;
        --reps) REPS=$2; shift ;;
        --duration) DUR=$2; shift ;;
        --case) ONLY_CASE=$2; shift ;;
        --engine) ONLY_ENGINE=$2; shift ;;
        *) echo "usage: $0 [--file PATH] [--size BYTES] [--reps N] [--duration SEC] [--case NAME] [--engine E]" >&2; exit 2 ;;
    esac
    shift
done
command -v fio >/dev/null || { echo "compare-block.sh: fio is not installed (scripts/install-deps.sh)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if [ ! -f "$FILE" ]; then
    echo "writing $FILE ($SIZE bytes) once..." >&2
    fio --name=fill --filename="$FILE" --size="$SIZE" --rw=write --bs=1M --direct=1 \
        --ioengine=libaio --iodepth=8 >/dev/null
fi

# name | rw | bs | depth
CASES=("randread-4k-qd32|randread|4096|32" "write-128k-qd8|write|131072|8")

# one measurement each (uses name rw bs depth engine rep)
run_evpl() {
    "$BENCH" block -f "$FILE" -e "$engine" -r "$rw" -b "$bs" -d "$depth" -D "$DUR" \
        -w 1 -j >"$TMP/evpl.$name.$engine.$rep" 2>/dev/null || true
}
# fio's own usr/sys figures are its job thread's: the kernel's
# io-wq workers doing io_uring requests inline for it are not
# in them, so the whole process is timed as well
run_fio() {
    /usr/bin/time -f "%U %S" -o "$TMP/fiotime.$name.$engine.$rep" \
        fio --name=job --filename="$FILE" --direct=1 --ioengine="$engine" --rw="$rw" \
        --bs="$bs" --iodepth="$depth" --time_based --runtime="$DUR" --ramp_time=1 \
        --output-format=json >"$TMP/fio.$name.$engine.$rep" 2>/dev/null || true
}

for rep in $(seq "$REPS"); do
    for c in "${CASES[@]}"; do
        IFS='|' read -r name rw bs depth <<<"$c"
        [ -n "$ONLY_CASE" ] && [ "$ONLY_CASE" != "$name" ] && continue
        for engine in io_uring libaio; do
            [ -n "$ONLY_ENGINE" ] && [ "$ONLY_ENGINE" != "$engine" ] && continue
            # the disk drifts: alternate who goes first
            if [ $((rep % 2)) -eq 1 ]; then
                run_evpl
                run_fio
            else
                run_fio
                run_evpl
            fi
        done
    done
done

python3 - "$TMP" "$REPS" <<'PY'
import json, os, statistics, sys
tmp, reps = sys.argv[1], int(sys.argv[2])
cases = ["randread-4k-qd32", "write-128k-qd8"]
print("| case | engine | evpl IOPS | fio IOPS | ratio | pair ratio | evpl CPU s / M I/O | fio CPU s / M I/O (job / process) | ratio (to process) |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for name in cases:
    for engine in ["io_uring", "libaio"]:
        ei, ec, fi, fc, fp, pr = [], [], [], [], [], []
        for r in range(1, reps + 1):
            ev = None
            try:
                e = json.load(open(f"{tmp}/evpl.{name}.{engine}.{r}"))
                ei.append(e["iops"]); ec.append(e["cpu_s_per_mio"])
                ev = e["iops"]
            except Exception:
                pass
            try:
                j = json.load(open(f"{tmp}/fio.{name}.{engine}.{r}"))["jobs"][0]
                side = j["read"] if j["read"]["iops"] > 0 else j["write"]
                iops = side["iops"]
                cpu_s = (j["usr_cpu"] + j["sys_cpu"]) / 100.0 * j["job_runtime"] / 1000.0
                ios = side["total_ios"]
                fi.append(iops); fc.append(cpu_s / ios * 1e6 if ios else 0)
                if ev and iops:
                    pr.append(ev / iops)  # the two ran back to back
                u, sy = open(f"{tmp}/fiotime.{name}.{engine}.{r}").read().split()[:2]
                # the process ran ramp_time + runtime; the I/Os counted are the runtime's
                total_s = j["job_runtime"] / 1000.0
                fp.append((float(u) + float(sy)) * total_s / (total_s + 1.0) / ios * 1e6 if ios else 0)
            except Exception:
                pass
        if not ei and not fi:
            continue  # left out with --case / --engine
        med = lambda v: statistics.median(v) if v else float("nan")
        a, b, c, d, e = med(ei), med(fi), med(ec), med(fc), med(fp)
        print(f"| {name} | {engine} | {a:.0f} | {b:.0f} | {a / b:.2f} | {med(pr):.2f} | {c:.3f} | {d:.3f} / {e:.3f} | {c / e:.2f} |")
PY
