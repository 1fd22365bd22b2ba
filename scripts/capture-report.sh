#!/usr/bin/env bash
# Hashtag capture over a replayed day: arrival rates from the 2023-09-02 samples, a synthetic
# day feed per hashtag, a run of the hashtags job every 5 minutes against the fake Graph API with
# the shipped settings and with today's behaviour (the replaced system's one page of 25 per run),
# at the real volume, at 3× and with 30 hashtags on one credential. Prints capture, duplicates,
# calls per hour (mean and max), freshness p50/p99 and posts behind, per hashtag and side by side.
#
#   scripts/capture-report.sh
#   CAPTURE_SCENARIOS=3x CAPTURE_HOURS=6 scripts/capture-report.sh
#   CAPTURE_SEED=7 CAPTURE_TRACE=dior scripts/capture-report.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The bench profile inherits release: this reuses the artifacts of `cargo test --release`.
cargo bench --bench capture_day --no-run
cargo bench --bench capture_day
