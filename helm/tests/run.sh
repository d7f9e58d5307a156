#!/usr/bin/env bash
# Runs the Helm chart tests: lint, render, strict schema validation, chart invariants.
# Usage (from anywhere): bash helm/tests/run.sh [extra pytest args]
# Needs python3 (with venv and pip; the virtualenv lives in helm/tests/.venv) and
# promtool, from Debian's prometheus package, which it installs when missing.
set -euo pipefail

tests_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$tests_dir/../.." && pwd)"
venv="$tests_dir/.venv"
requirements="$tests_dir/requirements.txt"
stamp="$venv/.requirements.sha256"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi

# Install (again) only when requirements.txt changed since the last install.
want="$("$venv/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$requirements")"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
fi

# promtool checks and unit-tests the chart's alerts (test_chart.py). The package's
# service is not started (nor wanted): only the tool is used.
if ! command -v promtool >/dev/null; then
    echo "== installing Debian's prometheus (for promtool)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

cd "$repo_root"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider helm/tests "$@"
