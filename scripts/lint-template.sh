#!/usr/bin/env bash
# Lints the SAM template with cfn-lint (installed from PyPI if missing).
# Exits non-zero on any error or warning (extra arguments go to cfn-lint, e.g. -c I).
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v cfn-lint >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check cfn-lint >&2
    # pip may install the entry point outside PATH (e.g. ~/.local/bin).
    hash -r
fi

if command -v cfn-lint >/dev/null 2>&1; then
    lint=(cfn-lint)
else
    lint=(python3 -c 'import sys; from cfnlint.runner import main; sys.argv[0] = "cfn-lint"; sys.exit(main())')
fi

"${lint[@]}" --version
"${lint[@]}" "$@" -- template.yaml
echo "cfn-lint: template.yaml clean"
