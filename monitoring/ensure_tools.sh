#!/usr/bin/env bash
# Install the monitoring tools the test suite and the panel proof need, if missing:
# Debian's `prometheus` package (prometheus + promtool). Idempotent and quiet when the
# tools are already there; the CI workflow and `.ci/run` call it before pytest, because
# under CI=true a missing promtool fails the suite instead of skipping.
#
#   monitoring/ensure_tools.sh
set -euo pipefail

if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
    exit 0
fi

if ! command -v apt-get >/dev/null; then
    echo "ensure_tools: promtool/prometheus missing and no apt-get here;" \
         "install Prometheus 2.x so that both are on PATH" >&2
    exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "ensure_tools: installing Debian's prometheus package (promtool, prometheus)" >&2
# policy-rc.d keeps the package from starting a system Prometheus on :9090 where the
# init system allows it; the tests start their own on free ports.
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null && command -v prometheus >/dev/null
