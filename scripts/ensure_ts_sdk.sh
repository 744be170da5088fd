#!/usr/bin/env bash
# Install the TypeScript SDK's npm packages (openapi-fetch, openapi-typescript,
# typescript) into clients/typescript/node_modules, exactly as package-lock.json pins
# them. Idempotent: a second run is instant (a stamp records the lock file installed).
# Used by tests/clients/typescript/.
set -euo pipefail

sdk="$(cd "$(dirname "$0")/../clients/typescript" && pwd)"
stamp="$sdk/node_modules/.package-lock.sha256"
wanted="$(sha256sum "$sdk/package-lock.json" | cut -d' ' -f1)"

if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
    command -v npm >/dev/null || { echo "npm is not installed" >&2; exit 3; }
    (cd "$sdk" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$wanted" > "$stamp"
fi
echo "$sdk"
