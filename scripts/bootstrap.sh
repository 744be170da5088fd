#!/usr/bin/env bash
# Create .venv with Python 3.11+ and install the project (plus extras given as $1,
# e.g. "dev,embedded") at the exact, hash-checked versions of requirements/*.lock, then
# the project itself without re-resolving. With dev, bench or embedded it also installs the
# two client packages, each its own distribution the server does not depend on: the
# worker client (clients/worker; the tests, the benchmarks and `gateway demo`'s example
# worker use it) and the API client, the Python SDK (clients/python; its tests run
# against a real gateway). Their dependencies, httpx, pydantic and sniffio, are in every
# lock. Re-installs only when a pyproject.toml or the lock changed
# since the last install. Packages no longer in the lock are not removed.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"
pick_python() {
  for candidate in python3.13 python3.12 python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "error: Python 3.11 or newer is required" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  "$(pick_python)" -m venv .venv
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
# The smallest lock that covers the extras (scripts/lock.sh writes all four; dev and
# bench include embedded, which the tests and benchmarks start when no backend is set).
case ",$extras," in
  ,,) lock=requirements/runtime.lock ;;
  ,embedded,) lock=requirements/embedded.lock ;;
  *,bench,*) lock=requirements/bench.lock ;;
  ,dev,|,dev,embedded,|,embedded,dev,) lock=requirements/dev.lock ;;
  *) echo "error: no lock in requirements/ covers extras '$extras'" >&2; exit 2 ;;
esac
specs=(-e "$spec")
case ",$extras," in
  *,dev,* | *,bench,* | *,embedded,*) specs+=(-e clients/worker -e clients/python) ;;
esac
stamp=".venv/.installed-$(cat pyproject.toml clients/worker/pyproject.toml clients/python/pyproject.toml "$lock" | sha256sum | cut -c1-16)-${extras:-base}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet --require-hashes -r "$lock"
  .venv/bin/python -m pip install --quiet --no-deps "${specs[@]}"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
