#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-only
"""Reads the raw outputs bench/compare.sh kept and makes its table and plots.

  compare_report.py --summary FILE   one line about one raw output (progress)
  compare_report.py --out DIR        DIR/table.md (also printed), DIR/plots/*.png

Raw files are DIR/raw/<case>-<system>-<rep>.{json,txt}: evpl-bench and uv-bench
--json, iperf3 -J, and sockperf's text summary (it has no machine format; the
lines parsed are its "[Valid Duration]" totals and its percentile list).
Every figure is normalised to the evpl-bench JSON keys before comparing.
"""
import glob
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_sockperf(text):
    text = ANSI.sub("", text)
    valid = re.findall(r"\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=(\d+); "
                       r"ReceivedMessages=(\d+)", text)
    if not valid:
        raise ValueError("no [Valid Duration] line")
    runtime, _, received = valid[-1]
    ops = int(received)
    avg = re.search(r"avg-(?:rtt|latency)=([\d.]+)", text) or \
        re.search(r"Summary: .* is ([\d.]+) usec", text)
    pct = [(float(p), float(v) * 1e3) for p, v in
           re.findall(r"---> percentile\s+([\d.]+)\s*=\s*([\d.]+)", text)]
    mn = re.search(r"<MIN> observation\s*=\s*([\d.]+)", text)
    mx = re.search(r"<MAX> observation\s*=\s*([\d.]+)", text)
    pmap = dict(pct)
    lat = {
        "min": float(mn.group(1)) * 1e3 if mn else 0,
        "avg": float(avg.group(1)) * 1e3 if avg else 0,
        "p50": pmap.get(50.0, 0), "p99": pmap.get(99.0, 0), "p999": pmap.get(99.9, 0),
        "max": float(mx.group(1)) * 1e3 if mx else 0,
    }
    points = sorted(pct)
    if mn:
        points.insert(0, (0.0, lat["min"]))
    return {"tool": "sockperf", "ops": ops, "ops_per_sec": ops / float(runtime),
            "gbit_per_sec": 0.0, "latency_ns": lat, "percentiles": points}


def parse_iperf3(d):
    end = d["end"]
    recv = end["sum_received"]
    bps = recv["bits_per_second"]
    cpu = end.get("cpu_utilization_percent", {})
    return {"tool": "iperf3", "ops": 0, "ops_per_sec": 0.0, "gbit_per_sec": bps / 1e9,
            "latency_ns": {}, "cpu_percent": cpu}


def load(path):
    with open(path, errors="replace") as f:
        text = f.read()
    if path.endswith(".txt"):
        return parse_sockperf(text)
    d = json.loads(text)
    if "end" in d and "start" in d:
        return parse_iperf3(d)
    return d


def summary(path):
    try:
        d = load(path)
    except (ValueError, KeyError) as e:
        print("unreadable output: %s" % e)
        return
    lat = d.get("latency_ns") or {}
    parts = []
    if d.get("ops_per_sec"):
        parts.append("%12.0f ops/s" % d["ops_per_sec"])
    if d.get("gbit_per_sec"):
        parts.append("%8.3f Gbit/s" % d["gbit_per_sec"])
    if lat.get("avg"):
        parts.append("avg %.1f us" % (lat["avg"] / 1e3))
    if d.get("ops_per_cpu_sec"):
        parts.append("%.0f ops/cpu-s" % d["ops_per_cpu_sec"])
    print("  ".join(parts))


# ---- table ----

def runs(raw, case, system):
    out = []
    for path in sorted(glob.glob(os.path.join(raw, "%s-%s-*.*" % (case, system)))):
        if path.endswith((".json", ".txt")):
            try:
                out.append(load(path))
            except (ValueError, KeyError) as e:
                print("compare_report: %s: %s" % (path, e), file=sys.stderr)
    return out


METRICS = {
    "ops": ("ops/s", lambda d: d.get("ops_per_sec") or None, True),
    "gbit": ("Gbit/s", lambda d: d.get("gbit_per_sec") or None, True),
    "lat": ("avg RTT us", lambda d: (d.get("latency_ns") or {}).get("avg", 0) / 1e3 or None, False),
    "cpu": ("ops/CPU-s", lambda d: d.get("ops_per_cpu_sec") or None, True),
}

# (workload, metric, ours (case, system), [(peer label, (case, system), bar)])
# bar: (">=", x) or ("<=", x) on ours/peer, from issue 5; None = for information.
ROWS = [
    ("TCP ping-pong 64 B x16", "ops", ("pp16", "evpl"), [
        ("uv-bench", ("pp16", "uv"), (">=", 5.0)),
        ("uv-bench --coalesce", ("pp16", "uvcoalesce"), None),
        ("sockperf pp --burst 16", ("pp16", "sockperf"), None)]),
    ("TCP ping-pong 64 B x1", "lat", ("pp1", "evpl"), [
        ("uv-bench", ("pp1", "uv"), ("<=", 0.5)),
        ("sockperf pp", ("pp1", "sockperf"), None)]),
    ("TCP stream 128 KiB x32", "gbit", ("st128k", "evpl"), [
        ("uv-bench", ("st128k", "uv"), None),
        ("iperf3", ("st128k", "iperf3"), (">=", 1.9)),
        ("iperf3 -l 1M", ("st128k", "iperf3l1m"), (">=", 0.8))]),
    ("UDP ping-pong 64 B x16", "ops", ("udp16", "evpl"), [
        ("evpl-bench TCP x16", ("pp16", "evpl"), (">=", 0.8)),
        ("sockperf pp UDP --burst 16", ("udp16", "sockperf"), None)]),
    ("CPU, TCP ping-pong 64 B x16", "cpu", ("pp16", "evpl"), [
        ("uv-bench", ("pp16", "uv"), (">=", 2.0)),
        ("uv-bench --coalesce", ("pp16", "uvcoalesce"), None)]),
]


def median_of(raw, key, metric):
    vals = [v for v in (METRICS[metric][1](d) for d in runs(raw, *key)) if v]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)


def fmt(v, metric):
    if v is None:
        return "n/a"
    if metric in ("ops", "cpu"):
        return "%.3g M" % (v / 1e6) if v >= 1e5 else "%.0f" % v
    return "%.2f" % v if v < 100 else "%.0f" % v


def table(raw):
    lines = ["| workload | metric | evpl-bench | peer | peer value | ours/peer | bar (issue 5) |",
             "|---|---|---:|---|---:|---:|---|"]
    for workload, metric, ours_key, peers in ROWS:
        ours, n_ours = median_of(raw, ours_key, metric)
        for label, key, bar in peers:
            peer, n_peer = median_of(raw, key, metric)
            ratio = ours / peer if ours and peer else None
            if bar is None:
                verdict = "(info)"
            elif ratio is None:
                verdict = "%s %gx: n/a" % (bar[0], bar[1])
            else:
                met = ratio >= bar[1] if bar[0] == ">=" else ratio <= bar[1]
                verdict = "%s %gx: %s" % (bar[0], bar[1], "met" if met else "SHORT")
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                workload, METRICS[metric][0], fmt(ours, metric), label, fmt(peer, metric),
                "%.2fx" % ratio if ratio else "n/a", verdict))
    lines.append("")
    lines.append("Medians of the repetitions in raw/ (%s). Latency: ours/peer below 1 is "
                 "better; everything else: above 1 is better." % reps_note(raw))
    return "\n".join(lines) + "\n"


def reps_note(raw):
    files = [p for p in glob.glob(os.path.join(raw, "pp16-*-*.*")) if p.endswith((".json", ".txt"))]
    n = len(files)
    systems = {os.path.basename(p).split("-")[1] for p in files}
    return "%d run(s) per system" % (n // max(1, len(systems))) if systems else "no runs"


# ---- plots ----

NINES = [0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97, 99, 99.5, 99.9, 99.95, 99.99,
         99.995, 99.999, 99.9999]


def hist_percentiles(d):
    """(percentile, ns) from a histogram [[low, count], ...]; bucket midpoints."""
    h = sorted(d.get("histogram") or [])
    n = sum(c for _, c in h)
    if not n:
        return []
    lat = d["latency_ns"]
    pts = []
    for p in NINES:
        if p and 1 - p / 100 < 1.0 / n:
            break
        want = max(1, math.ceil(p / 100 * n))
        seen = 0
        for i, (low, c) in enumerate(h):
            seen += c
            if seen >= want:
                # bucket width: 1 below 128 ns, else low/64 (64 sub-buckets an octave)
                width = 1 if low < 128 else max(1, (1 << (low.bit_length() - 1)) // 64)
                v = min(max(low + width / 2, lat["min"]), lat["max"])
                pts.append((p, v))
                break
    pts.append((100 * (1 - 1.0 / n), lat["max"]))
    return pts


def median_run(raw, key, metric):
    rs = [d for d in runs(raw, *key) if METRICS[metric][1](d)]
    if not rs:
        return None
    rs.sort(key=METRICS[metric][1])
    return rs[len(rs) // 2]


def gnuplot(script_path):
    if not shutil.which("gnuplot"):
        print("compare_report: gnuplot not found, no PNG for %s" % script_path, file=sys.stderr)
        return
    r = subprocess.run(["gnuplot", os.path.basename(script_path)],
                       cwd=os.path.dirname(script_path), capture_output=True, text=True)
    if r.returncode:
        print("compare_report: gnuplot %s: %s" % (script_path, r.stderr), file=sys.stderr)


def plot_latency(raw, pdir):
    series = []
    for label, key in (("evpl-bench", ("pp1", "evpl")), ("uv-bench", ("pp1", "uv")),
                       ("sockperf", ("pp1", "sockperf"))):
        d = median_run(raw, key, "lat")
        if not d:
            continue
        pts = d["percentiles"] if d.get("tool") == "sockperf" else hist_percentiles(d)
        if not pts:
            continue
        fname = "latency-%s.dat" % key[1]
        with open(os.path.join(pdir, fname), "w") as f:
            f.write("# percentile  x=1/(1-p)  rtt_us   (%s, TCP ping-pong 64 B, 1 in flight)\n"
                    % label)
            for p, v in pts:
                if p < 100:
                    f.write("%g %g %g\n" % (p, 1 / (1 - p / 100), v / 1e3))
        series.append((fname, label))
    if not series:
        return
    with open(os.path.join(pdir, "latency.gp"), "w") as f:
        f.write("""set terminal pngcairo size 900,560 font ",10"
set output "latency.png"
set title "TCP ping-pong 64 B, 1 in flight: round-trip latency by percentile (median run)"
set logscale x
set logscale y
set xrange [1:*]
set xtics ("0%%%%" 1, "50%%%%" 2, "90%%%%" 10, "99%%%%" 100, "99.9%%%%" 1000, \\
  "99.99%%%%" 10000, "99.999%%%%" 100000, "99.9999%%%%" 1000000)
set xlabel "percentile"
set ylabel "round trip (us)"
set grid
set key top left
plot %s
""" % ", \\\n  ".join('"%s" using 2:3 with linespoints title "%s"' % s for s in series))
    gnuplot(os.path.join(pdir, "latency.gp"))


SIZES = [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576]


def plot_sweep(raw, pdir):
    series = []
    for system, label in (("evpltcp", "evpl TCP stream"), ("evplunix", "evpl UNIX stream"),
                          ("evpludp", "evpl UDP msg"), ("uvtcp", "uv-bench TCP stream")):
        rows = []
        for size in SIZES:
            rs = runs(raw, "sweep", "%s-%d" % (system, size))
            if rs and rs[0].get("gbit_per_sec"):
                rows.append((size, rs[0]["gbit_per_sec"], rs[0].get("ops_per_sec", 0)))
        if not rows:
            continue
        fname = "sweep-%s.dat" % system
        with open(os.path.join(pdir, fname), "w") as f:
            f.write("# size_bytes gbit_per_sec ops_per_sec  (%s, 32 in flight)\n" % label)
            for r in rows:
                f.write("%d %g %g\n" % r)
        series.append((fname, label))
    if not series:
        return
    with open(os.path.join(pdir, "throughput.gp"), "w") as f:
        f.write("""set terminal pngcairo size 900,560 font ",10"
set output "throughput.png"
set title "Throughput against message size, one connection, 32 in flight"
set logscale x 2
set xtics ("64" 64, "256" 256, "1K" 1024, "4K" 4096, "16K" 16384, "64K" 65536, \\
  "256K" 262144, "1M" 1048576)
set xlabel "message size (bytes)"
set ylabel "Gbit/s"
set yrange [0:*]
set grid
set key top left
plot %s
""" % ", \\\n  ".join('"%s" using 1:2 with linespoints title "%s"' % s for s in series))
    gnuplot(os.path.join(pdir, "throughput.gp"))


def report(out):
    raw = os.path.join(out, "raw")
    pdir = os.path.join(out, "plots")
    os.makedirs(pdir, exist_ok=True)
    t = table(raw)
    cfg = os.path.join(out, "config.txt")
    head = ""
    if os.path.exists(cfg):
        head = "```\n" + open(cfg).read() + "```\n\n"
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(head + t)
        f.write("\n![latency](plots/latency.png)\n![throughput](plots/throughput.png)\n")
    print()
    print(t, end="")
    plot_latency(raw, pdir)
    plot_sweep(raw, pdir)


def main(argv):
    if len(argv) == 3 and argv[1] == "--summary":
        summary(argv[2])
    elif len(argv) == 3 and argv[1] == "--out":
        report(argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
