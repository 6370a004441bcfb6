# poisonguard — every target sets up what it needs by itself (idempotent; fast when done).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
UV_VERSION := 0.13.9
# Airflow keeps its config and SQLite metadata DB here, never in ~/airflow.
export AIRFLOW_HOME := $(CURDIR)/.airflow
# Where the scheduled DAG finds each date's batch: datasets/landing/<dataset>/<YYYY-MM-DD>/*.parquet.
export POISONGUARD_LANDING ?= $(CURDIR)/datasets/landing

.PHONY: setup test test-fast demo airflow-ui screenshots lint format bench bench-quick lock clean

# Bytecode is compiled at install (--compile-bytecode, compileall): where PYTHONDONTWRITEBYTECODE
# is set (it was on the 2-core bench machine of 2026-12-08), every process would otherwise compile
# every module it imports again (scikit-learn, pandas, pyarrow and scipy: 7.5 s, 2.1 s compiled).
$(STAMP):
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "poisonguard needs Python 3.11; set PYTHON=/path/to/python3.11"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@$(BIN)/python -m compileall -q src
	@rm -f $(VENV)/.synced-*
	@touch $@

setup: $(STAMP)

# One pytest worker per core (pytest-xdist); an idle worker steals queued tests from a busy one
# (on 2 idle cores, a fresh clone: 6 min 10 s for 433 tests; 10 min 48 s with a file per worker and
# ~19 min in one process, before one OpenMP thread per process and the warm path without GX/Evidently).
PYTEST_PARALLEL ?= -n auto --dist worksteal

test: setup
	$(BIN)/pytest $(PYTEST_PARALLEL)

test-fast: setup
	$(BIN)/pytest $(PYTEST_PARALLEL) tests/unit tests/adversarial -m "not slow"

demo: setup
	$(BIN)/python scripts/demo.py

# The Airflow UI on http://localhost:8080 over the demo's metadata DB (scheduler, dag-processor,
# api-server, triggerer); log in as admin, password in .airflow/simple_auth_manager_passwords.json.generated.
airflow-ui: setup
	PATH=$(CURDIR)/$(BIN):$$PATH AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__USAGE_DATA_COLLECTION__ENABLED=False SCARF_ANALYTICS=false DO_NOT_TRACK=1 GX_ANALYTICS_ENABLED=False \
	$(BIN)/airflow standalone

# The README's pictures of a blocked and a promoted report (needs Debian's chromium package).
screenshots: setup
	$(BIN)/python scripts/screenshots.py

lint: setup
	$(BIN)/ruff check src tests dags plugins bench datasets scripts
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix src tests dags plugins bench datasets scripts

# The benchmark's extra (cleanlab), pinned in bench/requirements.lock, on top of the main lock; the
# stamp names both locks, so a re-sync of the main lock (which drops extras) reinstalls it.
BENCH_STAMP := $(VENV)/.bench-$(shell cat requirements.lock pyproject.toml bench/requirements.lock | cksum | cut -d' ' -f1)

$(BENCH_STAMP): $(STAMP) bench/requirements.lock
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -r bench/requirements.lock
	@rm -f $(VENV)/.bench-*
	@touch $@

bench: setup $(BENCH_STAMP)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.fitonce --sizes 1000 20000 1000000 --numeric 1000000 --directory 10000000 10
	$(BIN)/python -m bench.realdata
	$(BIN)/python -m bench.verdicts

bench-quick: setup $(BENCH_STAMP)
	$(BIN)/python -m bench --quick

bench-lock: setup
	$(BIN)/uv pip compile -q pyproject.toml --extra bench -c requirements.lock --python-version 3.11 -o bench/requirements.lock

lock: setup
	$(BIN)/uv pip compile -q pyproject.toml --extra airflow --extra dvc --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .airflow .pytest_cache .ruff_cache .mypy_cache demo-out
