# CorpusCT make contract: setup, test, demo (see README.md).
PY      ?= python3.11
VENV    := .venv
VPY     := $(VENV)/bin/python
DEMO_DIR ?= build/demo
APP     ?= whole_body

.PHONY: setup test test-all lint demo demo-study bench clean map map-base map-check

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

# MAP packaging (README: Packaging as a MAP). `make map APP=<app>`: starts dockerd if needed, makes the base
# image offline (debootstrap, cached), builds the MAP image, runs it on the demo study and checks the outputs.
map: setup
	packaging/build_map.sh $(APP)

map-base:
	packaging/make_base_image.sh

# The cheap check (no Docker): hadolint, app.yaml and manifest validation, build-context dry run.
map-check: setup
	$(VPY) -m pytest -q tests/test_packaging.py

# Speed benchmarks (minutes). Accuracy evaluations run on their own: benchmarks/tg195.py (TG-195 at full
# statistics), benchmarks/eval_*.py (model metrics), benchmarks/bench_pacs.py (needs Orthanc and netns).
BENCHES ?= bench_phantom bench_series_load bench_graynet bench_organ_segmentation bench_organ_dose bench_mc
bench: setup
	ulimit -s 32768 2>/dev/null; for b in $(BENCHES); do $(VPY) benchmarks/$$b.py || exit 1; done

clean:
	rm -rf build .pytest_cache
