#!/usr/bin/env bash
# Listener flood (issue 22), loopback only: 500 players for 60 s on the release binary, then the
# same through a loopback caching edge (Bunny-like) to count origin pulls per object.
# Usage: benches/flood.sh   (builds the bench, which builds target/release/veza too; VEZA=path
# overrides the binary; FLOOD_PLAYERS, FLOOD_SECS, FLOOD_TRACKS, FLOOD_TRACK_SECS,
# FLOOD_EDGE=origin|edge|both)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ffmpeg >/dev/null || { echo "ffmpeg is required" >&2; exit 1; }
cargo bench --locked --bench flood --no-run
export VEZA=${VEZA:-$PWD/target/release/veza}
[ -x "$VEZA" ] || { echo "no veza binary at $VEZA" >&2; exit 1; }
# Each player holds a connection or two: make room for them.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec cargo bench --locked --bench flood
