# engagelab — one command to set up and run the demo, one to set up and run the tests.
# Both bootstrap their own virtual environment from a fresh clone (uv when available,
# else venv + pip, which installs uv into the venv and uses it).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.engagelab-installed
WORKSPACE ?= demo-workspace
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast system-deps lint bench clean lab

$(STAMP): pyproject.toml
	@echo "==> setting up $(VENV)"
	@if command -v uv >/dev/null 2>&1; then \
	    uv venv -q --allow-existing --python $(PYTHON) $(VENV); \
	    UV=uv; \
	else \
	    [ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV); \
	    $(BIN)/python -m pip install -q --upgrade pip uv; \
	    UV=$(BIN)/uv; \
	fi; \
	$$UV pip install -q --compile-bytecode --python $(BIN)/python -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

## The main job: create ./demo-workspace, simulate a world, run the campaign programme.
# Bytecode is compiled up front: every scheduled run starts a fresh kernel, and an
# environment with PYTHONDONTWRITEBYTECODE would otherwise recompile on each start.
demo: $(STAMP)
	@$(BIN)/python -m compileall -q engagelab widgets >/dev/null
	$(BIN)/engagelab demo --workspace $(WORKSPACE)

## System packages the full test suite needs (PostgreSQL server, Chromium); apt, as root.
system-deps:
	@bash .ci/system-deps.sh

## The whole suite: unit, property, PostgreSQL, Spark parity, kill -9 and browser tests.
test: $(STAMP) system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Quick loop while developing: skip the slow, Spark and browser tests.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not spark and not browser" $(PYTEST_ARGS)

## Style and types: ruff rules, ruff formatting and mypy, all with zero findings.
lint: $(STAMP)
	$(BIN)/ruff check engagelab widgets tests benchmarks
	$(BIN)/ruff format --check engagelab widgets tests benchmarks
	$(BIN)/mypy engagelab widgets

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf $(VENV) demo-workspace .pytest_cache
