#!/usr/bin/env bash
# What HLS packaging costs beyond ffmpeg itself. On a generated 5-minute 320 kbps MP3, hyperfine
# runs side by side:
#   bare  the exact ffmpeg command hls::package runs (printed by the bench binary), niced as
#         package nices it, into an empty directory;
#   veza  hls::package (the same ffmpeg run, then hashing, renaming, playlist rewrites) plus
#         hls::upload into a fresh local store, as a job does.
# Then the upload rate (segments/s) into a local store and into S3 (s3s-fs on loopback).
# Usage: benches/hls.sh [RUNS]   (builds the `hls` bench target in release)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}

if ! command -v hyperfine >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "==> installing hyperfine" >&2
  $SUDO apt-get install -y -qq hyperfine >/dev/null || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq hyperfine >/dev/null; }
fi
for tool in ffmpeg jq s3s-fs nice; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is required" >&2; exit 1; }
done

echo "==> building the bench target (release)" >&2
bin=$(cargo bench --bench hls --no-run --message-format=json |
  jq -r 'select(.reason == "compiler-artifact" and .target.name == "hls" and .executable != null) | .executable' |
  tail -1)
[ -x "$bin" ] || { echo "bench binary not found" >&2; exit 1; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
in="$tmp/in.mp3"
# A tone over pink noise: closer to music for the encoder than a pure tone (same as hls.rs).
ffmpeg -nostdin -v error -f lavfi -i "sine=frequency=440:duration=300:sample_rate=44100" \
  -f lavfi -i "anoisesrc=d=300:c=pink:a=0.2:r=44100:seed=42" \
  -filter_complex "amix=inputs=2,aformat=channel_layouts=stereo" -c:a libmp3lame -b:a 320k "$in"

mapfile -t ffargs < <("$bin" args "$in")
bare="cd $tmp/bare && nice -n 10 ffmpeg $(printf '%q ' "${ffargs[@]}") > /dev/null"
veza="$(printf '%q' "$bin") package $in $tmp/veza"

echo "==> $(ffmpeg -version | head -1); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "==> bare command: $bare"
hyperfine --style basic --warmup 1 --runs "$RUNS" \
  --prepare "rm -rf $tmp/bare $tmp/veza && mkdir -p $tmp/bare" \
  --command-name bare "$bare" --command-name veza "$veza" \
  --export-json "$tmp/h.json"

jq -r '
  .results as $r
  | ($r[] | "\(.command): wall \(.mean * 1000 | round) ± \(.stddev * 1000 | round) ms (median \(.median * 1000 | round)), user+sys \((.user + .system) * 1000 | round) ms"),
    "ratio veza/bare: wall \($r[1].mean / $r[0].mean * 100 | round / 100)x, user+sys \(($r[1].user + $r[1].system) / ($r[0].user + $r[0].system) * 100 | round / 100)x"
' "$tmp/h.json"

echo "==> upload rates (same file, 3 rungs)"
"$bin" upload-rate "$in"
