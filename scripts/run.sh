#!/usr/bin/env bash
# Install and run the gateway. Without REDIS_URL/DATABASE_URL it starts embedded
# PostgreSQL and Redis under ./var (single-node development mode).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh embedded
exec .venv/bin/gateway serve "$@"
