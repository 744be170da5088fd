#!/usr/bin/env bash
# Refresh requirements/*.lock from pyproject.toml: exact versions with hashes, resolved
# for every platform and Python 3.11+ (uv's universal mode). Existing pins are kept when
# they still fit; pass uv's options to move them:
#   bash scripts/lock.sh                          # after editing pyproject.toml
#   bash scripts/lock.sh --upgrade-package redis  # one package (after raising its bound)
#   bash scripts/lock.sh --upgrade                # everything
# runtime.lock (base; the image) is resolved first and constrains embedded.lock (base +
# embedded; scripts/run.sh), dev.lock (base + dev + embedded; tests, CI) and bench.lock
# (base + dev + bench + embedded), so CI tests the versions that ship.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9  # the output format changes between uv releases; move deliberately
tools="${XDG_CACHE_HOME:-$HOME/.cache}/tax-lien-gateway/uv-$UV_VERSION"
if [ ! -x "$tools/bin/uv" ]; then
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet "uv==$UV_VERSION"
fi

# The digest tests/test_dependencies.py recomputes: a lock whose digest differs was not
# compiled from this pyproject.toml.
digest="$("$tools/bin/python" - <<'PY'
import hashlib, json, tomllib
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
inputs = {k: project.get(k) for k in ("requires-python", "dependencies", "optional-dependencies")}
print(hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest())
PY
)"

compile() {  # compile LOCK [uv args...]
  local lock="requirements/$1"; shift
  "$tools/bin/uv" pip compile pyproject.toml --quiet --universal --python-version 3.11 \
    --generate-hashes --custom-compile-command "bash scripts/lock.sh" \
    --output-file "$lock" "$@"
  # uv's header is two lines; the digest goes right below it.
  sed -i "2a # pyproject-dependencies-sha256: $digest" "$lock"
}

compile runtime.lock "$@"
compile embedded.lock --extra embedded --constraint requirements/runtime.lock "$@"
compile dev.lock --extra dev --extra embedded --constraint requirements/runtime.lock "$@"
compile bench.lock --extra dev --extra bench --extra embedded \
  --constraint requirements/runtime.lock "$@"
