#!/usr/bin/env bash
# Import rate of `veza import` on N small generated tracks (1 s tones in mp3/flac/opus), beside
# `cp -r` of the same tree (the reference). Usage:
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
mkdir -p "$tmp/home"; cd "$tmp/home"
"$VEZA" migrate >/dev/null 2>&1
t0=$(date +%s%N); "$VEZA" import "$tmp/tree" > /dev/null 2> "$tmp/import.log"; t1=$(date +%s%N)
imp_ms=$(( (t1 - t0) / 1000000 ))
tail -1 "$tmp/import.log"
printf 'files: %s, %s KB total\n' "$N" "$((bytes / 1024))"
printf 'veza import: %s ms = %.0f tracks/min; cp -r: %s ms; ratio import/cp %.1fx\n' \
  "$imp_ms" "$(echo "$N * 60000 / $imp_ms" | bc -l)" "$cp_ms" "$(echo "$imp_ms / ($cp_ms + 1)" | bc -l)"
