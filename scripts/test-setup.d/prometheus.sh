#!/usr/bin/env bash
# promtool and prometheus for tests/monitoring (rule tests, panel proof).
exec bash "$(dirname "$0")/../../monitoring/ensure_tools.sh"
