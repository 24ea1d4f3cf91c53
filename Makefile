# Two commands for a new machine: `make demo` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: demo ui test lock clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

## Generate sample data and run the whole pipeline through Dagster.
demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/orb demo

## The Dagster UI on http://127.0.0.1:3000 (asset graph, runs, backfills).
ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# Debian's chromium and its driver, for the browser test of the Dagster UI (tests/test_ui.py).
CHROMEDRIVER := /usr/bin/chromedriver
$(CHROMEDRIVER):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

# A Java runtime for Spark, the second pricing engine (tests/test_engine_parity.py).
JAVA := /usr/bin/java
$(JAVA):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless

# PostgreSQL's server binaries on PATH, for the state store's tests against a real server
# (tests/test_state.py); Debian keeps them in /usr/lib/postgresql/<version>/bin.
INITDB := $(or $(shell command -v initdb),/usr/local/bin/initdb)
$(INITDB):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
	for tool in initdb pg_ctl postgres; do \
		ln -sf "$$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/$$tool" /usr/local/bin/$$tool; \
	done

## Lint, import contracts, types and the test suite; CI runs exactly this.
test: $(STAMP) $(CHROMEDRIVER) $(JAVA) $(INITDB)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest

## Re-pin every dependency after changing pyproject.toml.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	.lock-venv/bin/python -m pip freeze --exclude-editable > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) data .dagster_home
