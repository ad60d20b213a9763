# mesascope: `make demo` and `make test` are all a newcomer needs.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SEEDS   ?= 4
PRESET  ?= fast
SCENARIO ?= cheese-corner-v0

.PHONY: demo test test-slow bench install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## The main job on a built-in scenario: train, audit exactly, print the summary, write runs/demo/.
demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/mesascope run $(SCENARIO) --seeds $(SEEDS) --preset $(PRESET) --out runs/demo

## The whole default test suite (slow training tests are marked and skipped; see test-slow).
test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install -q -e ".[test,bench]"
	touch $@

## Speed against peers measured in the same run (installs the optional `bench` extra).
bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
