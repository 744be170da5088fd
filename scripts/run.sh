#!/usr/bin/env bash
# Install and run the gateway. Without REDIS_URL/DATABASE_URL it starts embedded
# PostgreSQL and Redis under ./var (single-node development mode).
# --demo: once the gateway answers, `gateway demo` seeds sample data, prints demo
# credentials (as shell exports) and runs a live refresh job with the example worker.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=false
args=()
for arg in "$@"; do
  if [ "$arg" = --demo ]; then demo=true; else args+=("$arg"); fi
done
bash scripts/bootstrap.sh embedded
if $demo; then
  # Beside the gateway, not before it: the demo waits for /ready, then uses the
  # gateway's own backends (DATA_DIR/embedded.json). The gateway stays in front, so
  # Ctrl-C and SIGTERM reach it directly.
  .venv/bin/gateway demo --wait 300 &
fi
exec .venv/bin/gateway serve ${args[@]+"${args[@]}"}
