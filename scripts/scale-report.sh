#!/usr/bin/env bash
# The brands job at scale: one run of the release `ig-collector` per number of accounts N
# against the fake Graph API serving N synthetic accounts (recorded bodies, 25 media each,
# business_discovery 3.3 s ± 20 % divided by a time scale). Prints wall time (and × the time
# scale), peak RSS, Graph calls, records and the monthly cost at 128 MB. See BENCHMARKS.md.
#
#   scripts/scale-report.sh                         # N = 11, 110, 1,100, 11,000 (~6 minutes)
#   SCALE_NS=11,110,1100 scripts/scale-report.sh    # skip 11,000 (~4 minutes of it)
#   SCALE_TIME_SCALE=10 SCALE_CONCURRENCY=64 scripts/scale-report.sh
#   SCALE_BINARY=/path/to/other/ig-collector scripts/scale-report.sh   # before/after
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# GNU time reports the peak RSS of each run.
if [ ! -x /usr/bin/time ]; then
  as_root apt-get update -qq
  as_root apt-get install -y -qq time >/dev/null
fi

# The bench profile inherits release: this reuses the artifacts of `cargo test --release`.
cargo bench --bench scale --no-run
cargo bench --bench scale
