#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# HTTP servers side by side, one worker each, pinned to CPU 0, with h2load
# pinned to CPU 1: our examples/evpl-http-hello (one evpl loop), nginx
# (worker_processes 1, `return 200`) and h2o (num-threads 1, a static file).
# Every server answers GET /hello with the 13 bytes "hello, world\n".
#
# usage: bench/compare-http.sh [--duration S] [--reps N] [--out DIR] <evpl-http-hello>
# Installs nginx and h2o if missing (their services are not started).
set -eu
. "$(dirname "$0")/nginx-hello.sh"

duration=5
reps=3
out=""
while [ $# -gt 1 ]; do
    case $1 in
        --duration) duration=$2; shift 2 ;;
        --reps) reps=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) break ;;
    esac
done
hello=${1:?usage: compare-http.sh [--duration S] [--reps N] [--out DIR] <evpl-http-hello>}
hello=$(readlink -f "$hello")

need=""
command -v h2load >/dev/null || need="$need nghttp2-client"
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need="$need nginx-light"
command -v h2o >/dev/null || [ -x /usr/bin/h2o ] || need="$need h2o"
if [ -n "$need" ]; then
    echo "compare-http: installing$need"
    # install only: keep the packages' services from starting
    policy=/usr/sbin/policy-rc.d
    created=0
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy && created=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
    [ $created = 1 ] && rm -f $policy
fi
pkill -x nginx 2>/dev/null || true

tmp=$(mktemp -d)
trap 'kill $(cat "$tmp"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$tmp"' EXIT
[ -n "$out" ] && mkdir -p "$out"

port=$((20000 + $$ % 20000))
p_evpl=$port
p_nginx1=$((port + 1))
p_nginx2=$((port + 2))
p_h2o=$((port + 3))

printf 'hello, world\n' > "$tmp/hello"
nginx_hello_conf "$tmp" "127.0.0.1:$p_nginx1" "127.0.0.1:$p_nginx2 http2"
cat > "$tmp/h2o.conf" <<EOF
num-threads: 1
pid-file: $tmp/h2o.pid.run
error-log: /dev/null
listen:
  host: 127.0.0.1
  port: $p_h2o
hosts:
  default:
    paths:
      /:
        file.dir: $tmp
EOF

start() { # name command...
    name=$1
    shift
    taskset -c 0 "$@" > "$tmp/$name.log" 2>&1 &
    echo $! > "$tmp/$name.pid"
}
start evpl "$hello" --serve $p_evpl
start nginx nginx -c "$tmp/nginx.conf"
start h2o h2o -c "$tmp/h2o.conf"
sleep 1
# the worker processes (nginx and h2o fork from what was started)
pid_evpl=$(cat "$tmp/evpl.pid")
pid_nginx=$(pgrep -f "nginx: worker process" | head -1)
pid_h2o=$(pgrep -x h2o | tail -1)
# h2o: the process with the most threads is the server
for p in $(pgrep -x h2o); do
    [ "$(ls /proc/$p/task | wc -l)" -gt "$(ls /proc/$pid_h2o/task | wc -l)" ] && pid_h2o=$p
done

# CPU ticks (user + system) of a process
ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# h2load, pinned; prints "req/s:requests-per-server-CPU-second"
load() { # server-pid url h2load-args...
    pid=$1
    url=$2
    shift 2
    t0=$(ticks "$pid")
    r=$(taskset -c 1 h2load -D "$duration" -t 1 "$@" "$url" 2>&1 |
        awk '/^finished in/ { gsub(",", "", $4); print $4 }
             /^requests:/ { if ($8 + 0 != $6 + 0 || $8 + 0 == 0) bad = 1 }
             END { if (bad) print "ERRORS" }' | tr '\n' ' ')
    t1=$(ticks "$pid")
    echo "$r $t0 $t1 $duration $(getconf CLK_TCK)" |
        awk '{ cpu = ($3 - $2) / $5; printf "%s:%.0f", $1, (cpu > 0 ? $1 * $4 / cpu : 0) }'
}

echo "| workload | evpl req/s | nginx req/s | h2o req/s | evpl/nginx | evpl/h2o | evpl req/CPU-s | nginx req/CPU-s | h2o req/CPU-s | evpl/nginx | evpl/h2o |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
row() { # label h2load-args...
    label=$1
    shift
    e=""; n=""; h=""
    i=0
    while [ $i -lt "$reps" ]; do
        e="$e $(load "$pid_evpl" http://127.0.0.1:$p_evpl/hello "$@")"
        case " $* " in
            *" --h1 "*) n="$n $(load "$pid_nginx" http://127.0.0.1:$p_nginx1/hello "$@")" ;;
            *) n="$n $(load "$pid_nginx" http://127.0.0.1:$p_nginx2/hello "$@")" ;;
        esac
        h="$h $(load "$pid_h2o" http://127.0.0.1:$p_h2o/hello "$@")"
        i=$((i + 1))
    done
    # medians of the runs: field 1 req/s, field 2 req per server CPU-second
    med() { # field values...
        f=$1
        shift
        echo "$@" | tr ' ' '\n' | grep -v '^$' | cut -d: -f"$f" | sort -g |
            awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
    }
    ratio() { echo "$1 $2" | awk '{ printf "%.2f", ($2 > 0 ? $1 / $2 : 0) }'; }
    me=$(med 1 $e); mn=$(med 1 $n); mh=$(med 1 $h)
    ce=$(med 2 $e); cn=$(med 2 $n); ch=$(med 2 $h)
    echo "| $label | $me | $mn | $mh | $(ratio "$me" "$mn") | $(ratio "$me" "$mh") | $ce | $cn | $ch | $(ratio "$ce" "$cn") | $(ratio "$ce" "$ch") |"
    [ -n "$out" ] && echo "$label evpl:$e nginx:$n h2o:$h" >> "$out/raw.txt"
    return 0
}
row "HTTP/1.1, 16 conns, 1 in flight" --h1 -c 16 -m 1
row "HTTP/1.1, 16 conns, 16 pipelined" --h1 -c 16 -m 16
row "HTTP/2 (h2c), 16 conns, 16 streams" -c 16 -m 16
row "HTTP/2 (h2c), 1 conn, 100 streams" -c 1 -m 100
