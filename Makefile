# Two commands for a fresh machine:  make run   (server on :3000)   make test
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 3000
HOST ?= 127.0.0.1

.PHONY: install test-services run test test-fast lint bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Services the tests start themselves on free ports (redis-server, postgres), from Debian if missing.
test-services:
	bin/install-test-services

run: install
	HOST=$(HOST) PORT=$(PORT) VENV=$(VENV) bin/serve

# Everything on SQLite, then the database tests again on a throwaway PostgreSQL
# (tests/support/databases.py); the tests of PostgreSQL itself run in the second pass.
test: install test-services
	$(PY) -m pytest -m "not postgres"
	TEST_DATABASE=postgres $(PY) -m pytest -m "database or postgres"

# The in-process layer alone (no CLI, daphne, redis-server or postgres): seconds, for the edit loop.
test-fast: install
	$(PY) -m pytest -m "not e2e"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

# The suite of docs/performance.md (about 4.5 minutes on 2 cores): a table printed, JSON in
# var/bench/latest.json. The other benches in bench/ are run by hand, each on its own.
bench: install
	$(PY) bench/suite.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
