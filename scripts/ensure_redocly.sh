#!/usr/bin/env bash
# Install the `@redocly/cli` npm package (the OpenAPI linter) into a per-user cache
# outside the checkout and print the path of its `redocly` executable. Idempotent: a
# second run is instant. Used by tests/apps/test_openapi_lint.py.
set -euo pipefail

version="${REDOCLY_CLI_VERSION:-2.77.0}"
prefix="${REDOCLY_CLI_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/tax-lien-gateway/redocly-cli-$version}"

if [[ ! -x "$prefix/node_modules/.bin/redocly" ]]; then
    command -v npm >/dev/null || { echo "npm is not installed" >&2; exit 3; }
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
        "@redocly/cli@$version" >&2
fi
echo "$prefix/node_modules/.bin/redocly"
