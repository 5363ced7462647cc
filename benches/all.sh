#!/usr/bin/env bash
# Every figure of docs/BENCHMARKS.md in one run on one machine, each beside its reference:
# start-up and idle RSS (nginx), RSS with 100k tracks, /media/ and stream-URL issuance (nginx),
# import (cp -r, and -j 1 against the default), HLS packaging (bare ffmpeg), listing and search
# at 100k tracks, and the listener flood when its harness is present. Takes 15-25 minutes.
# Usage: cargo build --release --locked && benches/all.sh 2>&1 | tee bench.txt
set -euo pipefail
cd "$(dirname "$0")/.."
export VEZA=${VEZA:-$PWD/target/release/veza}
[ -x "$VEZA" ] || { echo "build first: cargo build --release --locked" >&2; exit 1; }
section() { printf '\n### %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
echo "veza $("$VEZA" --version 2>/dev/null | head -1); $(nproc) cores; $(date -u +%F)"
section "start-up and idle RSS: benches/startup.sh 10"; benches/startup.sh 10
section "RSS with 100k tracks: benches/rss.sh 100000"; benches/rss.sh 100000
section "origin and issuance: benches/origin.sh 10"; benches/origin.sh 10
section "import: benches/import.sh 300"; benches/import.sh 300
section "HLS packaging: benches/hls.sh 3"; benches/hls.sh 3
section "listing and search at 100k: cargo bench --bench library"
cargo bench --locked --bench library 2>/dev/null
if [ -x benches/flood.sh ]; then
  section "listener flood: benches/flood.sh"; benches/flood.sh
fi
