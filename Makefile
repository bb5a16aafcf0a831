# The commands of the README:  `make run` serves the bot,  `make test` runs the tests,
# `make check` runs the gate (lint, types, import rings, generated docs); CI runs check, then test.
# Each installs what it needs first (a virtualenv in .venv; for tests also the servers they
# talk to, via scripts/install-system-deps).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The integration tests mostly wait on servers: four pytest workers (pytest-xdist) share two cores
# well; tests marked with one xdist_group run on one worker, in turn. `make test PYTEST_ARGS=` runs
# everything in one process.
PYTEST_ARGS ?= -n 4 --dist loadgroup

.PHONY: run test check install install-test install-check system-deps

run: $(VENV)/.installed
	$(PY) app.py

test: $(VENV)/.installed-test system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff (pyproject [tool.ruff]), mypy ([tool.mypy]), import-linter's contracts for the rings
# ([tool.importlinter]), and the README / manifests command lists against the command table.
check: $(VENV)/.installed-check
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(PY) -m bot.commands.docs --check

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-check: $(VENV)/.installed-check

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-check: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[check]'
	touch $@ $(VENV)/.installed

system-deps:
	bash scripts/install-system-deps
