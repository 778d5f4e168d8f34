# CorpusCT make contract: setup, test, demo (see README.md).
PY      ?= python3.11
VENV    := .venv
VPY     := $(VENV)/bin/python
DEMO_DIR ?= build/demo
APP     ?= range_selector

.PHONY: setup test test-all lint demo demo-study bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	# torch first and alone: a local CPU build is found by pip; an unpinned torch would pull CUDA wheels.
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e '.[dev]'
	touch $@

test: setup
	ulimit -s 32768 2>/dev/null; $(VPY) -m pytest

test-all: setup
	ulimit -s 32768 2>/dev/null; $(VPY) -m pytest -m ''

lint: setup
	$(VENV)/bin/ruff check apps operators models tests benchmarks
	$(VENV)/bin/hadolint --failure-threshold error Dockerfile

demo-study: setup
	$(VPY) -m models.phantoms demo --out $(DEMO_DIR)/study

# The main job on the built-in demo study (the app makes the demo study when given no input).
demo: setup
	ulimit -s 32768 2>/dev/null; $(VPY) apps/$(APP) -o $(DEMO_DIR)/out

bench: setup
	for b in benchmarks/*.py; do $(VPY) $$b || exit 1; done

clean:
	rm -rf build .pytest_cache
