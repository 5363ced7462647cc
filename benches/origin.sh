#!/usr/bin/env bash
# The origin under load, beside nginx serving the very same files from disk (the reference).
# A release veza on loopback packages a generated 3-minute track; then wrk measures, for each:
#   segment   GET of one HLS media segment through a signed /media/ URL (veza) or its plain
#             path under the blob root (nginx);
#   original  GET of the whole original (an MP3 of ~7 MB), same two ways;
#   issuance  GET /api/v1/tracks/{id}/stream, anonymous (per-IP limit lifted) and with an API
#             token (one token lookup in SQLite per request), veza only: nothing to compare.
# Both servers get one worker-equivalent (nginx worker_processes 1; veza as built, its tokio
# runtime on this machine's cores) and the same wrk settings. Figures are req/s and MB/s, and the
# veza/nginx ratio. Usage: cargo build --release --locked && benches/origin.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
VEZA=${VEZA:-target/release/veza}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$VEZA" ] || { echo "build first: cargo build --release --locked" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "nginx is required (apt-get install nginx-light)" >&2; exit 1; }
if ! command -v wrk >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "==> installing wrk" >&2
  $SUDO apt-get install -y -qq wrk >/dev/null || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null; }
fi
for tool in ffmpeg jq curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is required" >&2; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# --- veza with one packaged track --------------------------------------------------------
export VEZA_DATA_DIR="$tmp/data" VEZA_LOG__LEVEL=warn
vport=$(free_port)
"$VEZA" migrate >/dev/null
"$VEZA" admin create --username bench --password-stdin <<<"bench-password-123" >/dev/null
token=$("$VEZA" token create --username bench --name bench | grep -o 'vz_[A-Za-z0-9_-]*' | head -1)
# The anonymous per-IP limit would turn a one-machine load test into 429s.
VEZA_SERVER__LISTEN="127.0.0.1:$vport" VEZA_SERVER__PUBLIC_URL="http://127.0.0.1:$vport" \
  VEZA_STREAM__RATE_LIMIT_PER_MIN=1000000 "$VEZA" serve 2>"$tmp/veza.err" &
pids+=($!)
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$vport/healthz" >/dev/null && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$vport/healthz" >/dev/null || { echo "veza did not start:" >&2; cat "$tmp/veza.err" >&2; exit 1; }

ffmpeg -nostdin -v error -f lavfi -i "sine=frequency=440:duration=180" \
  -f lavfi -i "anoisesrc=d=180:c=pink:a=0.2:seed=7" \
  -filter_complex "amix=inputs=2,aformat=channel_layouts=stereo" -c:a libmp3lame -b:a 320k \
  "$tmp/bench.mp3"
id=$(curl -sf -H "Authorization: Bearer $token" -F "file=@$tmp/bench.mp3" \
  "http://127.0.0.1:$vport/api/v1/tracks" | jq -r .id)
for _ in $(seq 1 600); do
  status=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$vport/api/v1/tracks/$id" | jq -r .status)
  [ "$status" = ready ] && break
  sleep 0.2
done
[ "$status" = ready ] || { echo "track never became ready ($status)" >&2; exit 1; }

api="http://127.0.0.1:$vport/api/v1/tracks/$id/stream"
master=$(curl -sf -H "Authorization: Bearer $token" "$api" | jq -r .url)
media=$(curl -sf "$master" | grep -v '^#' | head -1)
media_url="${master%/*}/$media"
seg=$(curl -sf "$media_url" | grep -v '^#' | sed -n 5p)
seg_url="${media_url%/*}/$seg"
orig_url=$(curl -sf -H "Authorization: Bearer $token" "$api?format=original" | jq -r .url)
seg_key="${seg_url#*/media/*/}"; orig_key="${orig_url#*/media/*/}"
root="$tmp/data/blobs"
[ -f "$root/$seg_key" ] && [ -f "$root/$orig_key" ] || { echo "blob root layout changed: $root/$seg_key" >&2; exit 1; }

# --- nginx over the same files ------------------------------------------------------------
nport=$(free_port); mkdir -p "$tmp/nginx/logs"
# As root, nginx's worker would drop to nobody, who cannot read veza's private data dir.
user=""; [ "$(id -u)" -eq 0 ] && user="user root root;"
cat > "$tmp/nginx/nginx.conf" <<CONF
$user daemon off; worker_processes 1; pid $tmp/nginx/nginx.pid; error_log $tmp/nginx/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  types { audio/mp4 m4s; audio/mpeg mp3; }
  server { listen 127.0.0.1:$nport; root $root; etag on; }
}
CONF
"$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
pids+=($!)
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$nport/$seg_key" && break; sleep 0.05; done

# wrk prints "Requests/sec: N" and "Transfer/sec: X(KB|MB|GB)"; normalise to MB/s.
run() { # name url [header]
  local out rps tps
  if [ -n "${3:-}" ]; then out=$(wrk -t2 -c32 -d"${SECS}s" --latency -H "$3" "$2"); else out=$(wrk -t2 -c32 -d"${SECS}s" --latency "$2"); fi
  if grep -q "Non-2xx" <<<"$out"; then echo "$1: non-2xx answers" >&2; echo "$out" >&2; exit 1; fi
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  tps=$(awk '/^Transfer\/sec/ {v=$2; u=substr(v, length(v)-1); n=substr(v, 1, length(v)-2);
        if (u=="GB") n*=1024; else if (u=="KB") n/=1024; else if (u!="MB") n=v/1048576; print n}' <<<"$out")
  p99=$(awk '/ 99%/ {print $2}' <<<"$out")
  printf '%-18s %10.0f req/s %9.1f MB/s   p99 %s\n' "$1" "$rps" "$tps" "$p99"
  echo "$rps $tps" > "$tmp/r_$1"
}
ratio() { awk -v a="$(cut -d' ' -f"$3" "$tmp/r_$1")" -v b="$(cut -d' ' -f"$3" "$tmp/r_$2")" 'BEGIN {printf "%.2f", a/b}'; }

seg_bytes=$(stat -c %s "$root/$seg_key"); orig_bytes=$(stat -c %s "$root/$orig_key")
echo "==> $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); wrk -t2 -c32 -d${SECS}s; segment $seg_bytes B, original $orig_bytes B"
run nginx_segment "http://127.0.0.1:$nport/$seg_key"
run veza_segment "$seg_url"
run nginx_original "http://127.0.0.1:$nport/$orig_key"
run veza_original "$orig_url"
run veza_issue_anon "$api"
run veza_issue_token "$api" "Authorization: Bearer $token"
echo "ratio veza/nginx: segment $(ratio veza_segment nginx_segment 1)x req/s, original $(ratio veza_original nginx_original 2)x MB/s"
hits=$(curl -sf "http://127.0.0.1:$vport/metrics" | grep '^veza_cache_hits_total' | tr '\n' ' ')
echo "==> $hits"
