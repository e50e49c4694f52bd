# Quickstart targets. Each one creates .venv on first use, (re)installs when
# pyproject.toml changes, then runs. Needs only Python >= 3.11 and make.
# The first Python >= 3.11 on PATH (override: make PYTHON=/path/to/python3.12 test).
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3.11 python3 python; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && echo $$p && break; done)
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: serve test lint bench clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "wirelab needs Python >= 3.11 on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-server: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-server

serve: $(VENV)/.installed-server
	$(BIN)/wirelab serve

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

# Benchmarks need curl (and optionally nginx); method and results: benchmarks/README.md.
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/concurrency.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Relay transfer benchmark: 1 GiB through `wirelab send` / `wirelab receive` against
# piping-server (pinned in benchmarks/piping, installed with npm ci); needs curl, node, npm.
# Method and results: benchmarks/README.md ("Relay transfer").
.PHONY: bench-relay
benchmarks/piping/node_modules/.package-lock.json: benchmarks/piping/package-lock.json
	cd benchmarks/piping && npm ci --no-audit --no-fund

bench-relay: $(VENV)/.installed-server benchmarks/piping/node_modules/.package-lock.json
	$(BIN)/python benchmarks/relay_transfer.py
