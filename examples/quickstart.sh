#!/usr/bin/env bash
# From a fresh clone to an authenticated property lookup and a completed refresh job:
#
#   bash examples/quickstart.sh
#
# 1. installs the gateway into .venv (scripts/bootstrap.sh embedded; needs Python 3.11+),
# 2. starts it with embedded PostgreSQL and Redis under DATA_DIR (default ./var),
# 3. runs `gateway demo`: sample parcels and parties, a demo API key, a refresh job done
#    by the example parcel worker,
# 4. looks the demo parcel up with the key, reads its history and the finished job,
# 5. stops the gateway (the data stays in DATA_DIR: `bash scripts/run.sh` serves it again).
#
# Ports are the gateway's own settings (PUBLIC_PORT, PARCEL_INTERNAL_PORT,
# PARTY_INTERNAL_PORT; 8080-8082 by default). The gateway's log is DATA_DIR/quickstart.log.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
data_dir="${DATA_DIR:-var}"

echo "== install (.venv)"
bash scripts/bootstrap.sh embedded

echo "== start the gateway (log: $data_dir/quickstart.log)"
mkdir -p "$data_dir"
.venv/bin/gateway serve >"$data_dir/quickstart.log" 2>&1 &
gateway_pid=$!
stop_gateway() {
  kill -TERM "$gateway_pid" 2>/dev/null || true
  wait "$gateway_pid" 2>/dev/null || true
}
trap stop_gateway EXIT

echo "== gateway demo (waits for the gateway, seeds, issues a key, runs a job)"
exports=$(.venv/bin/gateway demo --wait 180)
eval "$exports"

echo "== the demo parcel, its history and the job, with the demo key"
.venv/bin/python - "$KEY" "$PARCEL" "$JOB" <<'PY'
import os
import sys

import httpx

key, parcel, job = sys.argv[1:]
public = f"http://127.0.0.1:{os.environ.get('PUBLIC_PORT', '8080')}"
auth = {"X-API-Key": key}
with httpx.Client(base_url=public, headers=auth, timeout=30) as http:
    me = http.get("/v1/me").raise_for_status().json()
    record = http.get(f"/v1/properties/{parcel}").raise_for_status().json()
    history = http.get(f"/v1/properties/{parcel}/history").raise_for_status().json()["items"]
    done = http.get(f"/v1/jobs/{job}").raise_for_status().json()
print(f"GET /v1/me -> {me['kind']} {me['id']}, tier {me['tier']['name']}")
print(
    f"GET /v1/properties/{parcel} -> {record['owner_name']}, {record['address']}, "
    f"tax due {record['tax_amount_due']} ({record['lien_status']})"
)
print(f"GET /v1/properties/{parcel}/history -> {len(history)} scrapes:")
for h in history:
    print(f"    {h['scraped_at'][:19]}  {h['tax_amount_due']:>10}  {h['lien_status']}")
print(f"GET /v1/jobs/{job} -> {done['state']}, {done['progress']}")
if done["state"] != "completed":
    sys.exit(f"the job is {done['state']}, not completed")
PY

echo "== done in $((SECONDS - started)) s; stopping the gateway (bash scripts/run.sh starts it again)"
