# Thin aliases for the scripts in scripts/ (the README's two commands use those directly).
.PHONY: install run test lint bench ci

install:
	bash scripts/bootstrap.sh dev,embedded

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

bench:
	bash scripts/bench.sh

ci:
	bash .ci/run
