#!/usr/bin/env bash
# Crash loop (issue 22): the real binary started, driven with concurrent uploads (one trickled),
# edits, takedowns, a `veza import` beside it and packaging, then kill -9'd at a seeded random
# moment, CYCLES times; after each kill `veza check` and after each restart the ledger of
# acknowledged work is verified; at the end every job drains exactly once. Prints the seed (replay
# with VEZA_CRASH_SEED=...) and a report. Usage: benches/crashloop.sh [CYCLES] (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
export VEZA_CRASH_CYCLES=${1:-60}
exec cargo test --locked --test it crashloop:: -- --nocapture
