#!/usr/bin/env bash
# Listener flood (issue 22), loopback only: 500 players for 60 s on the release binary, then the
# same through a loopback caching edge (Bunny-like) to count origin pulls per object.
# Usage: cargo build --release --locked && benches/flood.sh   (VEZA=path overrides the binary;
# FLOOD_PLAYERS, FLOOD_SECS, FLOOD_TRACKS, FLOOD_TRACK_SECS, FLOOD_EDGE=origin|edge|both)
set -euo pipefail
cd "$(dirname "$0")/.."
export VEZA=${VEZA:-$PWD/target/release/veza}
[ -x "$VEZA" ] || { echo "build first: cargo build --release --locked" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "ffmpeg is required" >&2; exit 1; }
# Each player holds a connection or two: make room for them.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec cargo bench --locked --bench flood
