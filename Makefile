# kservectl developer entry points. Every target creates or reuses .venv and installs what it
# needs; nothing relies on what a machine happened to have.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TOOLS  := .tools/bin

.PHONY: help venv test test-fast test-tools demo lint bench clean

help:
	@echo "make demo        the whole journey on this machine (local provider, no cloud)"
	@echo "make test        the full test suite"
	@echo "make test-fast   the suite without the tests that start real servers"
	@echo "make lint        ruff"
	@echo "make bench       the benchmarks in bench/"
	@echo "make test-tools  real kubectl and helm binaries into $(TOOLS) (cached)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,local]'
	touch $(STAMP)

venv: $(STAMP)

$(TOOLS)/kubectl $(TOOLS)/helm: scripts/fetch_test_tools.py | $(STAMP)
	$(BIN)/python scripts/fetch_test_tools.py --dest $(TOOLS)

test-tools: $(TOOLS)/kubectl $(TOOLS)/helm

test: venv test-tools
	$(BIN)/python -m pytest

test-fast: venv test-tools
	$(BIN)/python -m pytest -m "not slow"

lint: venv
	$(BIN)/ruff check src tests bench scripts

demo: venv
	$(BIN)/kservectl up --provider local

bench: venv
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .tools .pytest_cache dist build
