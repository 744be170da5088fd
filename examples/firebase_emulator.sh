#!/usr/bin/env bash
# A local Firebase Auth emulator for the README's Firebase examples (development only):
#
#   bash examples/firebase_emulator.sh      # in the foreground; Ctrl-C stops it
#
# then, in a second terminal, the gateway trusting it and an ID token from it:
#
#   FIREBASE_PROJECT_ID=demo-gateway FIREBASE_AUTH_EMULATOR_HOST=127.0.0.1:9099 .venv/bin/gateway serve
#   ID_TOKEN=$(.venv/bin/python examples/firebase_id_token.py me@example.com)
#
# It is the emulator the tests use (firebase-tools, installed once by
# scripts/ensure_firebase_emulator.sh into ~/.cache/tax-lien-gateway; needs Node.js and
# npm). It runs offline on 127.0.0.1, keeps no data between runs, and signs nothing:
# the gateway accepts its unsigned tokens only with ENVIRONMENT=development or test.
# Ports: FIREBASE_AUTH_PORT (9099), FIREBASE_HUB_PORT (4400), FIREBASE_LOGGING_PORT (4500).
set -euo pipefail
cd "$(dirname "$0")/.."
port="${FIREBASE_AUTH_PORT:-9099}"
project="${FIREBASE_PROJECT_ID:-demo-gateway}"  # demo-*: Firebase's emulator-only projects
dir="${DATA_DIR:-var}/firebase"
firebase=$(bash scripts/ensure_firebase_emulator.sh)
mkdir -p "$dir"
cat >"$dir/firebase.json" <<JSON
{"emulators": {"auth": {"host": "127.0.0.1", "port": $port},
               "hub": {"host": "127.0.0.1", "port": ${FIREBASE_HUB_PORT:-4400}},
               "logging": {"host": "127.0.0.1", "port": ${FIREBASE_LOGGING_PORT:-4500}},
               "ui": {"enabled": false}, "singleProjectMode": true}}
JSON
cd "$dir"
unset FIREBASE_AUTH_EMULATOR_HOST  # the emulator itself must not look for an emulator
export NO_UPDATE_NOTIFIER=1
echo "Firebase Auth emulator for project $project on 127.0.0.1:$port" >&2
exec "$firebase" emulators:start --only auth --project "$project" --config firebase.json
