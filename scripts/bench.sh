#!/usr/bin/env bash
# Benchmarks: job wall time, peak RSS, cold start, flatten and validate throughput and monthly
# Lambda cost, each printed next to its target and the Python collector's figure.
# See BENCHMARKS.md for what is measured and how to read it.
#
#   scripts/bench.sh                      # everything: one release build, then about 3 minutes
#   BENCH_COLD_RUNS=20 scripts/bench.sh   # more cold starts per binary (default 10)
#   BENCH_BD_LATENCY_MS=3300 BENCH_OTHER_LATENCY_MS=900 BENCH_JITTER=0.2 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== tools" >&2
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# GNU time reports the peak RSS of the CLI runs.
if [ ! -x /usr/bin/time ]; then
  as_root apt-get update -qq
  as_root apt-get install -y -qq time >/dev/null
fi
# moto's standalone server is the S3 the Lambda binaries write to in the cold-start runs.
if ! python3 -c "import moto.server, flask, flask_cors" 2>/dev/null; then
  python3 -m pip install --quiet 'moto[server]>=5' ||
    echo "moto could not be installed: cold start is measured without S3 (first \`next\` only)" >&2
fi

# `cargo bench` uses the bench profile, which inherits release: the benches share target/release
# with `cargo test --release` and the binaries, so nothing is compiled twice.
echo "== build" >&2
cargo bench --no-run --bench flatten --bench figures

echo "== flatten and validate throughput (criterion)" >&2
cargo bench --bench flatten

echo "== jobs, peak RSS, cold start, cost" >&2
cargo bench --bench figures
