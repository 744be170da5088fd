#!/usr/bin/env bash
# Run the benchmarks in bench/ (each prints its table; see bench/README.md).
# Usage: bash scripts/bench.sh [health|worker|public|jobs|streams|webhooks|celery ...]   (default: all that exist)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh "dev,bench,embedded"
if ! command -v wrk >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
  else
    echo "wrk is required (Debian/Ubuntu: apt-get install wrk)" >&2; exit 1
  fi
fi
declare -A scripts=([health]=bench/run_health.py [worker]=bench/worker_plane.py [public]=bench/public_plane.py [jobs]=bench/jobs.py [streams]=bench/streams.py [webhooks]=bench/webhooks.py [celery]=bench/celery_routing.py)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(health worker public jobs streams webhooks celery)
for target in "${targets[@]}"; do
  script="${scripts[$target]:-}"
  [ -n "$script" ] || { echo "unknown benchmark: $target" >&2; exit 2; }
  [ -f "$script" ] || { echo "skipping $target: $script not present"; continue; }
  echo "== $target"
  .venv/bin/python "$script"
done
