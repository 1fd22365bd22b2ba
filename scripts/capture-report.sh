#!/usr/bin/env bash
# Hashtag capture over a replayed day: arrival rates from the 2023-09-02 samples, a synthetic
# day feed per hashtag, 288 runs of the hashtags job (every 5 minutes) against the fake Graph
# API with the shipped settings, a tuned variant and the replaced system's one page of 25 per
# run. Prints capture rate, duplicates and pages per run per hashtag, and Graph calls per hour.
#
#   scripts/capture-report.sh
#   CAPTURE_HOURS=6 scripts/capture-report.sh          # a shorter period (default 24)
#   CAPTURE_RATE_SCALE=3 scripts/capture-report.sh     # busier hashtags (every rate × 3)
#   CAPTURE_SEED=7 CAPTURE_PAGES=10 scripts/capture-report.sh
#   CAPTURE_TUNED_EXTRA_PAGES_PER_HOUR=36 CAPTURE_TUNED_KNOWN_WINDOW_MINS=60 \
#     CAPTURE_TUNED_MAX_PAGES=4 CAPTURE_TUNED_BUSIEST_FIRST=0 scripts/capture-report.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The bench profile inherits release: this reuses the artifacts of `cargo test --release`.
cargo bench --bench capture_day --no-run
cargo bench --bench capture_day
