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

# Services the tests start themselves on free ports (redis-server), from Debian if missing.
test-services:
	bin/install-test-services

run: install
	HOST=$(HOST) PORT=$(PORT) VENV=$(VENV) bin/serve

test: install test-services
	$(PY) -m pytest

# The in-process layer alone (no CLI, daphne or redis-server): seconds, for the edit loop.
test-fast: install
	$(PY) -m pytest -m "not e2e"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

bench: install
	$(PY) bench/turn_latency.py
	$(PY) bench/reconnect_replay.py
	$(PY) bench/hostile_load.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
