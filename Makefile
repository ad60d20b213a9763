# mesascope: `make demo` and `make test` are all a newcomer needs.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SEEDS   ?= 4
PRESET  ?= fast
SCENARIO ?= cheese-corner-v0
TEST_WORKERS ?= auto

.PHONY: demo test test-slow reproduce bench install clean system-deps docs

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

## Debian packages the tests use, installed only when missing (idempotent): chromium for the report's
## browser test, graphviz (`dot`) for the and-or graph SVGs. Needs root; otherwise says what to install.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "warning: missing Debian packages:$$missing (as root: apt-get install -y$$missing); their tests will be skipped"; \
	  fi; \
	fi

## The whole default test suite (slow training tests are marked and skipped; see test-slow), then the
## docs site built strictly (a broken link or API reference fails the target). The suite runs in one
## pytest-xdist worker per core (at most 8), each test file whole in one worker (its compiled programs are shared
## within the file); TEST_WORKERS=0 runs it in this one process.
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --maxprocesses 8 --dist loadfile
	@$(MAKE) --no-print-directory docs

## The documentation site (docs/ and mkdocs.yml; the `docs` extra, part of `test`) built into site/ in
## strict mode: every warning (a broken link or anchor, a bad API reference) fails it. Silent on success,
## so that pytest's summary stays the last line of `make test`; on failure it prints MkDocs' whole log.
## (Not `mkdocs build --quiet`: that hides the warnings from strict mode too.)
docs: $(STAMP)
	@log=$$(NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site 2>&1) || { echo "$$log"; exit 1; }

test-slow: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -m slow

## Every scenario's expected finding, reproduced with its fast configuration: runs/reproduce/findings.md
## (and .json, and the store); exits 1 when a finding does not reproduce. About 45 minutes on 2 cores.
reproduce: $(STAMP)
	$(BIN)/mesascope reproduce --out runs/reproduce

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install -q -e ".[test,bench]"
	touch $@

## Speed against peers measured in the same run (installs the optional `bench` extra).
bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs site .pytest_cache
