#!/usr/bin/env bash
# Install firebase-tools (the Firebase Auth emulator) into a project-local, gitignored
# cache and print the path of its `firebase` binary. Idempotent: a second run is instant.
# The auth emulator runs on Node alone (no Java), offline, on 127.0.0.1.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${FIREBASE_TOOLS_PREFIX:-$root/.cache/firebase-tools}"
version="${FIREBASE_TOOLS_VERSION:-13}"
bin="$prefix/node_modules/.bin/firebase"

if [[ ! -x "$bin" ]]; then
    command -v npm >/dev/null || { echo "npm is not installed" >&2; exit 3; }
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
        "firebase-tools@$version" >&2
fi
echo "$bin"
