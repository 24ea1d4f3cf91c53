# Two commands for a new machine: `make demo` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Two locks: what the pipeline runs on (`make demo`, the image), and that plus the test
# tools, Spark and the local servers the tests start (`make test`). `make lock` re-pins both.
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: demo ui test lock clean system-packages

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(DEV_STAMP): $(STAMP) requirements-dev.lock
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
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

# What the tests need from the system: Chromium and its driver (tests/test_ui.py), a Java
# runtime for Spark (tests/test_engine_parity.py), PostgreSQL's server binaries on PATH or
# in Debian's /usr/lib/postgresql/<version>/bin (tests/postgres.py), and the fonts the
# documents' PDFs are set in: Liberation Sans, and DejaVu Sans for the characters it lacks
# (reports/document_pdf.py, tests/test_issued_pages.py).
# As root (CI) the missing ones are installed with apt-get; anyone else is told what to
# install.
MISSING := $(strip \
	$(if $(shell command -v chromedriver),,chromium chromium-driver) \
	$(if $(shell command -v java),,default-jre-headless) \
	$(if $(shell command -v initdb || ls -d /usr/lib/postgresql/*/bin 2>/dev/null),,postgresql) \
	$(if $(wildcard /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf),,fonts-liberation) \
	$(if $(wildcard /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf),,fonts-dejavu-core))

system-packages:
	@if [ -n "$(MISSING)" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(MISSING); \
		else \
			echo "make test needs these system packages: $(MISSING)" >&2; \
			echo "install them (Debian: sudo apt-get install $(MISSING)) and run make test again" >&2; \
			exit 1; \
		fi; \
	fi

## Lint, import contracts, types and the test suite; CI runs exactly this.
test: $(DEV_STAMP) system-packages
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -n auto --dist loadscope --durations=30

## Re-pin every dependency after changing pyproject.toml: the runtime lock from the
## project's own dependencies, the development lock from them plus the `dev` extra.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e .
	.lock-venv/bin/python -m pip freeze --exclude-editable > requirements.lock
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	.lock-venv/bin/python -m pip freeze --exclude-editable > requirements-dev.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) data .dagster_home
