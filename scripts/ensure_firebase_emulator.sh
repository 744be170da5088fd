#!/usr/bin/env bash
# Install firebase-tools (the Firebase Auth emulator) into a project-local, gitignored
# cache and print the path of its `firebase` binary. Idempotent: a second run is instant.
# The auth emulator runs on Node alone (no Java), offline, on 127.0.0.1.
set -euo pipefail

# A per-user cache outside the checkout, so fresh clones (CI) reuse one install.
prefix="${FIREBASE_TOOLS_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/tax-lien-gateway/firebase-tools}"
version="${FIREBASE_TOOLS_VERSION:-13}"
bin="$prefix/node_modules/.bin/firebase"

if [[ ! -x "$bin" ]]; then
    command -v npm >/dev/null || { echo "npm is not installed" >&2; exit 3; }
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
        "firebase-tools@$version" >&2
fi
echo "$bin"
