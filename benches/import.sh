#!/usr/bin/env bash
# Import rate of `veza import` on N small generated tracks (1 s MP3 tones), beside `cp -r` of the
# same tree (the reference), run twice into fresh data dirs: one file at a time (`-j 1`) and with
# the default parallelism (one file per core), whose speed-up is the figure. Usage:
#   cargo build --release --locked && benches/import.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-300}
VEZA=${VEZA:-$PWD/target/release/veza}
[ -x "$VEZA" ] || { echo "build first: cargo build --release --locked" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/tree"
ffmpeg -v error -f lavfi -i sine=frequency=440:duration=1 -c:a libmp3lame -b:a 128k "$tmp/base.mp3"
# Distinct bytes per file (a different title tag) so nothing dedupes.
for i in $(seq 1 "$N"); do
  d="$tmp/tree/album$((i % 20))"; mkdir -p "$d"
  ffmpeg -v error -i "$tmp/base.mp3" -c copy -metadata title="Track $i" -metadata artist="Bench" "$d/t$i.mp3"
done
bytes=$(du -sb "$tmp/tree" | cut -f1)
t0=$(date +%s%N); cp -r "$tmp/tree" "$tmp/copy"; sync; t1=$(date +%s%N)
cp_ms=$(( (t1 - t0) / 1000000 ))
run_import() { # jobs -> ms
  local home="$tmp/home$1"; mkdir -p "$home"
  (cd "$home" && "$VEZA" migrate >/dev/null 2>&1)
  local t0 t1; t0=$(date +%s%N)
  (cd "$home" && /usr/bin/time -f 'peak RSS %M KiB' -o "$tmp/rss$1" "$VEZA" import -j "$1" "$tmp/tree" > /dev/null 2> "$tmp/import$1.log")
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}
cores=$(nproc)
one_ms=$(run_import 1)
par_ms=$(run_import "$cores")
tail -1 "$tmp/import$cores.log"
printf 'files: %s, %s KB total; %s cores; load %s\n' "$N" "$((bytes / 1024))" "$cores" "$(cut -d' ' -f1-3 /proc/loadavg)"
for row in "1 $one_ms" "$cores $par_ms"; do
  set -- $row
  printf 'veza import -j %s: %s ms = %.0f tracks/min; ratio import/cp -r (%s ms) %.1fx; %s\n' \
    "$1" "$2" "$(echo "$N * 60000 / $2" | bc -l)" "$cp_ms" "$(echo "$2 / ($cp_ms + 1)" | bc -l)" "$(cat "$tmp/rss$1")"
done
printf 'speed-up -j %s over -j 1: %.2fx (goal: at least 1.7x on 2 cores)\n' "$cores" "$(echo "$one_ms / $par_ms" | bc -l)"
