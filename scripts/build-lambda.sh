#!/usr/bin/env bash
# Builds the two Lambda functions (brands, hashtags) for arm64 / provided.al2023 with
# cargo-lambda. Output: ${CARGO_TARGET_DIR:-target}/lambda/{brands,hashtags}/bootstrap
#
# cargo-lambda comes from PyPI (`pip install cargo-lambda`, which also brings zig as the
# cross linker); the aarch64 standard library comes from rustup. No Docker needed.
#
# Extra arguments are passed to `cargo lambda build`, e.g. `--compiler cargo`.
# Honours CARGO_TARGET_DIR and CARGO_BUILD_JOBS.
set -euo pipefail

cd "$(dirname "$0")/.."

readonly RUST_TARGET=aarch64-unknown-linux-gnu
readonly BINS=(brands hashtags)

if ! cargo lambda --version >/dev/null 2>&1; then
    echo "installing cargo-lambda from PyPI" >&2
    python3 -m pip install --quiet --disable-pip-version-check cargo-lambda >&2
    hash -r
fi

if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx "$RUST_TARGET"; then
        echo "adding rust target $RUST_TARGET" >&2
        rustup target add "$RUST_TARGET" >&2
    fi
fi

cargo lambda --version

bin_args=()
for bin in "${BINS[@]}"; do
    bin_args+=(--bin "$bin")
done

start=$(date +%s)
if ! cargo lambda build --release --arm64 "${bin_args[@]}" "$@"; then
    echo "build-lambda: cargo lambda build failed after $(($(date +%s) - start)) s" >&2
    exit 1
fi
end=$(date +%s)

target_dir=${CARGO_TARGET_DIR:-target}
status=0
for bin in "${BINS[@]}"; do
    out="$target_dir/lambda/$bin/bootstrap"
    if [[ -f "$out" ]]; then
        if command -v file >/dev/null 2>&1; then
            file "$out"
        else
            ls -l "$out"
        fi
    else
        echo "missing: $out" >&2
        status=1
    fi
done
echo "build-lambda: $((end - start)) s"
exit "$status"
