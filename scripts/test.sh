#!/usr/bin/env bash
# Install, lint, type-check and run the whole test suite. Uses REDIS_URL/DATABASE_URL
# when set; otherwise the tests start embedded servers (never under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev,embedded
for setup in scripts/test-setup.d/*.sh; do
  [ -e "$setup" ] && bash "$setup"
done
echo "== ruff"; .venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
echo "== import rules"; .venv/bin/lint-imports --no-cache
echo "== pytest"
set +e
# In parallel (a database and Redis key prefixes per worker, tests/support/backends.py)
# with the branch-coverage gate of pyproject's [tool.coverage.report] fail_under.
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-auto}" --dist loadgroup \
  --cov=gateway --cov-branch --cov-report=term "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$code"
