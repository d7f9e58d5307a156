#!/usr/bin/env bash
# Runs the Helm chart tests: lint, render, strict schema validation, chart invariants.
# Usage (from anywhere): bash helm/tests/run.sh [extra pytest args]
# Needs only python3 (with venv and pip); the virtualenv lives in helm/tests/.venv.
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

cd "$repo_root"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider helm/tests "$@"
