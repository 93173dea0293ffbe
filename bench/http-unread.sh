#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Server memory under clients that pipeline requests and never read the
# answers: N connections of h1-flood against one HTTP/1.1 server on CPU 0
# (the flood on CPU 1), for --duration seconds; the server's resident set
# is read before the flood and while its connections are still open.
# Servers: one or more builds of examples/evpl-http-hello (to compare a
# change), and nginx (worker_processes 1, `return 200`) when installed
# (bench/compare-http.sh installs it).
#
# usage: bench/http-unread.sh [--conns N] [--duration S] [--reps N] <evpl-http-hello>...
# prints one line per run: server, connections, request bytes written,
# RSS before and after (KiB)
set -eu
. "$(dirname "$0")/nginx-hello.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FLOOD=${H1_FLOOD:-$ROOT/build/release/bench/h1-flood}
conns=64
duration=6
reps=1
while [ $# -gt 1 ]; do
    case $1 in
        --conns) conns=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "usage: $0 [--conns N] [--duration S] [--reps N] <evpl-http-hello>..." >&2; exit 2; }

tmp=$(mktemp -d)
trap 'kill $(cat "$tmp"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$tmp"' EXIT
port=$((20000 + $$ % 20000))

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# run <label> <pid-to-measure> <port>
run() {
    before=$(rss "$2")
    taskset -c 1 "$FLOOD" "$3" "$conns" "$duration" > "$tmp/flood.out" &
    fpid=$!
    sleep "$duration"
    sleep 2 # (the flood holds its connections 3 s after it stops)
    after=$(rss "$2")
    wait $fpid
    echo "$1 conns=$conns written=$(cat "$tmp/flood.out") rss_kib=$before->$after"
}

i=0
while [ $i -lt "$reps" ]; do
    for hello in "$@"; do
        port=$((port + 1))
        taskset -c 0 "$hello" --serve $port > /dev/null 2>&1 &
        echo $! > "$tmp/evpl.pid"
        sleep 1
        run "$hello" "$(cat "$tmp/evpl.pid")" $port
        kill "$(cat "$tmp/evpl.pid")"
        wait "$(cat "$tmp/evpl.pid")" 2>/dev/null || true
        rm -f "$tmp/evpl.pid"
    done
    if command -v nginx > /dev/null || [ -x /usr/sbin/nginx ]; then
        port=$((port + 1))
        nginx_hello_conf "$tmp" "127.0.0.1:$port"
        PATH=$PATH:/usr/sbin taskset -c 0 nginx -c "$tmp/nginx.conf" > /dev/null 2>&1 &
        echo $! > "$tmp/nginx.pid"
        sleep 1
        worker=$(pgrep -f "nginx: worker process" | head -1)
        run nginx "$worker" $port
        kill "$(cat "$tmp/nginx.pid")"
        wait "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
        rm -f "$tmp/nginx.pid"
    fi
    i=$((i + 1))
done
