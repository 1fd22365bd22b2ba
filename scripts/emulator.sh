#!/usr/bin/env bash
# Drives both Lambda bootstraps through an emulator that is not ours, cargo-lambda's
# (`cargo lambda watch` + `cargo lambda invoke --data-file events/…`), against the S3-protocol
# server of the tests (moto) and the fake Graph API serving the recorded day, then checks the
# answers and the objects written. Everything listens on 127.0.0.1 and is stopped on exit.
#
# Reuses the release build of `cargo test --release` (same profile, same features): only the
# `local_backends` example is compiled on top.
#
# cargo-lambda comes from PyPI (`pip install cargo-lambda`); moto as in README's test command.
# Exit status 0 when every check holds. Output: each step, each answer, the objects written.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo lambda --version >/dev/null 2>&1; then
    echo "installing cargo-lambda from PyPI" >&2
    python3 -m pip install --quiet --disable-pip-version-check cargo-lambda >&2
    hash -r
fi
python3 -c "import moto.server, flask, flask_cors" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5'
cargo lambda --version

work=$(mktemp -d)
pids=()
cleanup() {
    # The emulator runs each function as a child of its own: stop the whole process groups.
    for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "== build (release profile, reused)"
cargo build --release --bins --example local_backends

echo "== local S3 and fake Graph API"
mkfifo "$work/backends.in"
setsid target/release/examples/local_backends <"$work/backends.in" >"$work/backends.out" &
pids+=($!)
exec 3>"$work/backends.in" # held open: the backends serve until it closes
for _ in $(seq 300); do grep -qx ready "$work/backends.out" && break; sleep 0.1; done
grep -qx ready "$work/backends.out" || { echo "the backends did not start" >&2; exit 1; }
grep '=' "$work/backends.out" >"$work/function.env"
sed 's/^\(IG_ACCESS_TOKEN\)=.*/\1=(fake token)/' "$work/function.env"

port=$(free_port)
echo "== cargo lambda watch on 127.0.0.1:$port"
setsid cargo lambda watch --release --ignore-changes -A 127.0.0.1 -P "$port" \
    --env-file "$work/function.env" >"$work/watch.log" 2>&1 3>&- &
pids+=($!)
for _ in $(seq 600); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
    sleep 0.2
done

# invoke FUNCTION EVENT_FILE JQ-LIKE-CHECK: runs one invocation and checks its answer.
invoke() {
    local function=$1 event=$2 check=$3
    echo "== cargo lambda invoke $function --data-file $event"
    cargo lambda invoke "$function" -A 127.0.0.1 -P "$port" --data-file "$event" -o json \
        >"$work/answer.json" || { cat "$work/watch.log" >&2; exit 1; }
    python3 - "$work/answer.json" "$check" <<'PY'
import json, sys
answer = json.load(open(sys.argv[1]))
print(json.dumps({k: answer.get(k) for k in ("job", "records", "keys_written", "failed_targets")}, indent=1))
expected = json.loads(sys.argv[2])
got = answer.get("records", {})
wrong = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
assert not wrong, f"records (got, expected): {wrong}"
assert answer.get("failed_targets") == [], answer.get("failed_targets")
PY
}

invoke brands events/brands-scheduled-event.json '{"brand": 11, "media": 275}'
invoke hashtags events/hashtags-scheduled-event.json '{"media_hashtag": 275}'

echo "== objects written"
exec 3>&-
for _ in $(seq 300); do grep -q '"objects"' "$work/backends.out" && break; sleep 0.1; done
grep -q '"objects"' "$work/backends.out" || { echo "the backends did not report" >&2; exit 1; }
python3 - "$work/backends.out" <<'PY'
import json, sys
report = json.loads([l for l in open(sys.argv[1]) if l.startswith("{")][-1])
objects = report["objects"]
for key, n in objects.items():
    print(f"{key}: {n} records")
print(f"{report['graph_calls']} Graph calls")
counts = {}
for key, n in objects.items():
    kind = key.split("/")[1].rsplit("_", 1)[0]
    counts[kind] = counts.get(kind, 0) + (n or 0)
assert counts == {"brand": 11, "media": 275, "media_hashtag": 275}, counts
assert all(k.startswith(("raw/brand_2023-09-02/", "raw/media_2023-09-02/", "raw/media_hashtag_2023-09-02/")) for k in objects), list(objects)
PY
# The emulator sends a constant deadline in 1970; the functions say they replaced it.
echo "deadline warnings: $(grep -c 'deadline this invocation cannot keep' "$work/watch.log" || true)"
echo "== the emulator drove both bootstraps: ok"
