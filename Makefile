# podtrace — the same commands locally and in CI (.ci/run calls `make test`).
# Only python3 and make are assumed; everything else is installed here.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make demo` installs only what the demo runs (the demo extra), not the dev tools; a later
# `make install` adds them to the same virtualenv.
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: help install browser test test-fast lint typecheck pytest bench demo clean

help:
	@echo "make demo   - run the whole product end to end (shop, rollout, blast radius)"
	@echo "make test   - lint, type-check and run the full test suite"
	@echo "make test-fast - the developer loop: the suite without the slow process/browser tests"
	@echo "make bench  - print performance figures (ratios measured side by side)"

$(STAMP): pyproject.toml hatch_build.py collector/podtrace_collector/receive/_wire.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[collector]" --group dev
	@touch $(STAMP)

install: $(STAMP)

$(DEMO_STAMP): pyproject.toml hatch_build.py collector/podtrace_collector/receive/_wire.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[demo]"
	@touch $(DEMO_STAMP)

# The web-page tests drive Debian's chromium headless; install it when missing (root, apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (Debian package) for the web-page tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: install it (apt-get install chromium) to run the browser tests" >&2; exit 1; fi; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src collector

typecheck: install
	$(BIN)/mypy

pytest: install browser
	$(BIN)/pytest -q

test: lint typecheck pytest

# A quick loop while developing (no processes, no browser, stop at the first failure);
# CI and `make test` run everything.
test-fast: install
	$(BIN)/pytest -q -x -m "not slow"

bench: install
	$(BIN)/python -m bench

# Stays up after the report (the page and the API) until Ctrl-C.
demo: $(DEMO_STAMP)
	$(BIN)/podtrace demo

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build dist
