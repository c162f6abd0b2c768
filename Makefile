# The few verbs people reach for. Each works on a fresh clone: the first run makes .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
CODE := src tests $(wildcard bench)

.PHONY: demo test system-packages lint format bench docs clean
# Prerequisites are made one by one, in the order written: `test` checks the system packages
# before it makes .venv (which needs python3-venv).
.NOTPARALLEL:

$(STAMP): requirements-dev.lock pyproject.toml setup.py src/dutydesk/logs/_liststat.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements-dev.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

## demo: start the desk with its demo workspace at http://127.0.0.1:8000
demo: $(STAMP)
	$(BIN)/dutydesk up --demo

## test: the whole test suite, in parallel, once the system packages it uses are there
test: system-packages $(STAMP)
	$(BIN)/pytest -n auto --dist loadgroup

## system-packages: check the Debian packages the tests use; as root, install the missing ones
system-packages:
	@scripts/system-packages

## lint: ruff (lint and format) and mypy
lint: $(STAMP)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format $(CODE)
	$(BIN)/ruff check --fix $(CODE)

## bench: every benchmark under bench/, each printing its figure and ratio
bench: $(STAMP)
	@set -e; found=0; for script in bench/*.py; do \
		[ -e "$$script" ] || continue; found=1; \
		echo "== $$script"; $(BIN)/python "$$script"; \
	done; [ $$found = 1 ] || echo "no benchmarks yet"

## docs: regenerate the README's settings table from the settings' declared help
docs: $(STAMP)
	$(BIN)/python -m dutydesk.docs README.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
