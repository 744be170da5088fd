#!/usr/bin/env bash
# Install the certified `oidc-provider` npm package (panva) into a per-user cache outside
# the checkout and print the path of its node_modules folder. Idempotent: a second run
# is instant. Used by tests/support/oidc_provider.py to run a real OpenID Provider.
set -euo pipefail

prefix="${OIDC_PROVIDER_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/tax-lien-gateway/oidc-provider}"
version="${OIDC_PROVIDER_VERSION:-9}"

if [[ ! -f "$prefix/node_modules/oidc-provider/package.json" ]]; then
    command -v npm >/dev/null || { echo "npm is not installed" >&2; exit 3; }
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
        "oidc-provider@$version" >&2
fi
echo "$prefix/node_modules"
