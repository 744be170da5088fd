#!/usr/bin/env bash
# Validate the Prometheus config and alert rules with promtool (Debian: apt-get install
# prometheus, or monitoring/ensure_tools.sh). prometheus.yml names rule files by their
# in-container path (/etc/prometheus/alerts/*.yml, see docker-compose.yml), so the config
# is checked from a temporary copy whose rule_files point at monitoring/prometheus/ here.
# tests/monitoring/test_prometheus.py runs the same three checks under pytest.
#
#   monitoring/check.sh        # from the repository root or anywhere else
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

sed "s#/etc/prometheus/alerts/#${root}/monitoring/prometheus/#g" \
    "$root/prometheus.yml" > "$tmp/prometheus.yml"

promtool check config "$tmp/prometheus.yml"
promtool check rules "$root"/monitoring/prometheus/*.yml
promtool test rules "$root"/monitoring/prometheus/tests/*.yml
