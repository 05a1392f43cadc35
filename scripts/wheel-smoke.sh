#!/usr/bin/env bash
# Install the one wheel in dist/ (from `make wheel`) into a fresh virtualenv in a temp dir and
# check that it works from there, away from the source tree:
#   - the file name says abi3 (one wheel for every CPython >= 3.10),
#   - `banquet --help` runs (the console script),
#   - `import banquet, banquet._core` works and comes from the venv, and prints the version,
#   - banquet-feast's wheel (compat/feast) installs beside it: `feast` is banquet.
# Dependencies (pyarrow, ...) come from PyPI through pip's cache. The venv is removed at exit.
#
#   scripts/wheel-smoke.sh [DIST_DIR]      (default: dist/ of this repo)
# HOST_PY picks the interpreter for the venv (default python3).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dist="$(realpath -m "${1:-$root/dist}")"
host_py=${HOST_PY:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV

die() {
  printf 'wheel-smoke: ERROR: %s\n' "$*" >&2
  exit 1
}
log() { printf 'wheel-smoke: %s\n' "$*" >&2; }

shopt -s nullglob
wheels=("$dist"/*.whl)
shopt -u nullglob
((${#wheels[@]} == 1)) ||
  die "expected exactly one wheel in $dist, found ${#wheels[@]}${wheels:+: ${wheels[*]##*/}} -- run \`make wheel\`"
wheel=${wheels[0]}
name=${wheel##*/}
[[ $name == banquet-* ]] || die "$name is not a banquet wheel"
# Wheel file name: {dist}-{version}(-{build})?-{python tag}-{abi tag}-{platform tag}.whl
IFS=- read -r -a tags <<<"${name%.whl}"
((${#tags[@]} >= 5)) || die "$name: not a valid wheel file name"
[[ ${tags[-2]} == abi3 ]] || die "$name: ABI tag is '${tags[-2]}', expected abi3"
log "$name"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/banquet-wheel-smoke.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
venv="$tmp/venv"

"$host_py" -m venv "$venv"
log "installing into a fresh venv ($("$venv/bin/python" --version))"
"$venv/bin/python" -m pip install -q "$wheel"

cd "$tmp" # not the source tree: what runs must be what the wheel installed
"$venv/bin/banquet" --help
"$venv/bin/python" -c "import banquet, banquet._core; print(banquet.__version__)"
"$venv/bin/python" - "$venv" <<'EOF'
import sys
from pathlib import Path

import banquet
import banquet._core

venv = Path(sys.argv[1]).resolve()
for mod in (banquet, banquet._core):
    where = Path(mod.__file__).resolve()
    if venv not in where.parents:
        sys.exit(f"wheel-smoke: ERROR: {mod.__name__} imported from {where}, not from {venv}")
EOF
log "ok: $name installs and runs in a fresh venv"

# banquet-feast (compat/feast): its wheel, built by its own backend, installs beside banquet's
# without a package index; `feast` is then banquet, from the venv.
mkdir "$tmp/feast-dist"
feast_wheel=$("$venv/bin/python" -c 'import sys; sys.path.insert(0, sys.argv[1]); import banquet_feast_backend as b; print(b.build_wheel(sys.argv[2]))' \
  "$root/compat/feast/_build" "$tmp/feast-dist")
"$venv/bin/python" -m pip install -q --no-index "$tmp/feast-dist/$feast_wheel"
"$venv/bin/feast" --help >/dev/null
"$venv/bin/python" - "$venv" <<'EOF'
import sys
from pathlib import Path

import banquet
import feast
from feast.data_source import PushMode

venv = Path(sys.argv[1]).resolve()
if venv not in Path(feast.__file__).resolve().parents:
    sys.exit(f"wheel-smoke: ERROR: feast imported from {feast.__file__}, not from {venv}")
if feast.FeatureStore is not banquet.FeatureStore or PushMode is not banquet.store.PushMode:
    sys.exit("wheel-smoke: ERROR: feast's names are not banquet's objects")
EOF
log "ok: $feast_wheel installs beside it: import feast and the feast command are banquet"
