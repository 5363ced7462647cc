#!/usr/bin/env bash
# Start-up time to the first 200 from a health endpoint, and idle RSS, for veza (on a new data
# dir, then again on the same one) beside nginx (the reference) on the same machine, median of N
# runs each. Usage:
#   cargo build --release --locked && benches/startup.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10}
VEZA=${VEZA:-target/release/veza}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$VEZA" ] || { echo "build first: cargo build --release --locked" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx is required (apt-get install nginx-light)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ns() { date +%s%N; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
wait_200() { # url, deadline in 1/100 s
  for _ in $(seq 1 2000); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ]; then return 0; fi
    sleep 0.005
  done
  return 1
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
: > "$tmp/nginx_ms"; : > "$tmp/nginx_rss"
for i in $(seq 1 "$N"); do
  port=$(free_port); dir="$tmp/v$i"; mkdir -p "$dir"
  # First start (creates the database and applies the migrations), then a restart on the same
  # data dir: the everyday case, and the one the start-up goal is about.
  for kind in first again; do
    t0=$(now_ns)
    VEZA_DATA_DIR="$dir/data" VEZA_SERVER__LISTEN="127.0.0.1:$port" VEZA_LOG__LEVEL=warn "$VEZA" serve 2>"$dir/err" &
    pid=$!
    wait_200 "http://127.0.0.1:$port/healthz"
    t1=$(now_ns)
    sleep 1
    echo $(( (t1 - t0) / 1000000 )) >> "$tmp/veza_${kind}_ms"; rss_kib $pid >> "$tmp/veza_${kind}_rss"
    kill -TERM $pid; wait $pid || true
  done

  port=$(free_port); ndir="$tmp/n$i"; mkdir -p "$ndir/logs"
  cat > "$ndir/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $ndir/nginx.pid; error_log $ndir/logs/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path $ndir; proxy_temp_path $ndir; fastcgi_temp_path $ndir;
  uwsgi_temp_path $ndir; scgi_temp_path $ndir;
  server { listen 127.0.0.1:$port; location = /healthz { return 200 'ok'; } } }
CONF
  t0=$(now_ns)
  "$NGINX" -c "$ndir/nginx.conf" -p "$ndir" &
  npid=$!
  wait_200 "http://127.0.0.1:$port/healthz"
  t1=$(now_ns)
  sleep 1
  echo $(( (t1 - t0) / 1000000 )) >> "$tmp/nginx_ms"
  # master + worker: what nginx really holds in memory
  echo $(( $(rss_kib $npid) + $(for c in $(pgrep -P $npid); do rss_kib "$c"; done | paste -sd+ | bc) )) >> "$tmp/nginx_rss"
  kill -QUIT $npid; wait $npid || true
done

nm=$(median < "$tmp/nginx_ms"); nr=$(median < "$tmp/nginx_rss")
printf 'runs: %s; load %s\n' "$N" "$(cut -d' ' -f1-3 /proc/loadavg)"
for kind in first again; do
  vm=$(median < "$tmp/veza_${kind}_ms"); vr=$(median < "$tmp/veza_${kind}_rss")
  label=$([ "$kind" = first ] && echo "new data dir     " || echo "existing data dir")
  printf 'start to first 200, %s (ms, median): veza %s, nginx %s, ratio %.2f\n' "$label" "$vm" "$nm" "$(echo "$vm / $nm" | bc -l)"
  printf 'idle RSS after 1 s, %s (KiB, median): veza %s, nginx %s (master+worker), ratio %.2f\n' "$label" "$vr" "$nr" "$(echo "$vr / $nr" | bc -l)"
done
