#!/usr/bin/env bash
# Memory of a serving veza with a large library: N tracks (default 100,000) seeded straight into
# a migrated database (12 title words, 5,000 artists, 20,000 albums, like benches/library.rs),
# then the release binary started on it. Prints RSS idle after start, after a round of listings,
# searches and Subsonic browsing, and the peak (VmHWM). Usage:
#   cargo build --release --locked && benches/rss.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
VEZA=${VEZA:-target/release/veza}
[ -x "$VEZA" ] || { echo "build first: cargo build --release --locked" >&2; exit 1; }
for tool in python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is required" >&2; exit 1; }
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

tmp=$(mktemp -d); pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
export VEZA_DATA_DIR="$tmp/data" VEZA_LOG__LEVEL=warn
"$VEZA" migrate >/dev/null
"$VEZA" admin create --username bench --password-stdin <<<"bench-password-123" >/dev/null
token=$("$VEZA" token create --username bench --name bench | grep -o 'vz_[A-Za-z0-9_-]*' | head -1)
python3 - "$tmp/data/veza.db" "$N" <<'PY'
import sqlite3, sys, uuid
db, n = sys.argv[1], int(sys.argv[2])
words = ["blue", "red", "night", "river", "love", "dance", "echo", "gold", "rain", "fire", "city", "dream"]
c = sqlite3.connect(db)
rows = []
for i in range(n):
    w = lambda k: words[(i // k + k) % len(words)]
    rows.append((str(uuid.uuid4()), f"{w(1)} {w(7)} {i}", f"Artist {i % 5000}", f"{w(13)} Album {i % 20000}",
                 f"{i:064x}", f"originals/00/00/{i:064x}.mp3", "private" if i % 10 == 0 else "public",
                 1_700_000_000 + i))
c.executemany(
    "INSERT INTO tracks (id, title, artist, album, codec, size_bytes, sha256, original_key, content_type,"
    " visibility, status, created_at, updated_at) VALUES (?, ?, ?, ?, 'mp3', 1000, ?, ?, 'audio/mpeg', ?, 'ready', ?, ?8)",
    rows)
c.commit()
PY
port=$(free_port)
VEZA_SERVER__LISTEN="127.0.0.1:$port" VEZA_HLS__ENABLED=false "$VEZA" serve 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 400); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done
sleep 2
idle=$(status_kib "$pid" VmRSS)
api="http://127.0.0.1:$port/api/v1/tracks"
auth="Authorization: Bearer $token"
for i in $(seq 1 50); do
  curl -sf -H "$auth" "$api?limit=200" >/dev/null
  curl -sf "$api?q=river&limit=50" >/dev/null
  curl -sf -H "$auth" "$api?sort=title&limit=200" >/dev/null
  curl -sf "http://127.0.0.1:$port/rest/getArtists?apiKey=$token&f=json" >/dev/null
  curl -sf "http://127.0.0.1:$port/rest/search3?apiKey=$token&f=json&query=blue&songCount=100" >/dev/null
done
busy=$(status_kib "$pid" VmRSS); peak=$(status_kib "$pid" VmHWM)
db_kib=$(( $(stat -c %s "$tmp/data/veza.db") / 1024 ))
echo "==> $N tracks (database $db_kib KiB); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'RSS idle after start   %8s KiB\n' "$idle"
printf 'RSS after 250 queries  %8s KiB\n' "$busy"
printf 'peak RSS (VmHWM)       %8s KiB\n' "$peak"
