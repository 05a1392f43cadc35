#!/usr/bin/env bash
# The main job on embedded defaults (Parquet + SQLite + file registry), from a clean folder:
# init a repo, plan, apply, list what was registered, then the example script builds a
# training set, materializes and reads online features.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
run="$root/demo-run"
rm -rf "$run" && mkdir -p "$run"
cd "$run"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "banquet init demo"
banquet init demo
cd demo
step "banquet plan"
banquet plan
step "banquet apply"
banquet apply
step "registered objects"
banquet entities list
echo
banquet feature-views list
echo
banquet feature-services list
echo
banquet data-sources list
step "python example.py (training set, materialize, online features)"
python example.py
