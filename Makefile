# edgebuild: the two set-up commands on a fresh machine are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_MODEL := examples/digits_cnn
DEMO_DATA := examples/digits.npz

.PHONY: install tflm-cache demo lint test test-fast bench wheel-check clean

install: $(STAMP)

# Reinstalls only when the dependency list changes; otherwise a no-op.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@scripts/install-native-tools.sh || echo "note: Cortex-M cross compiler not installed (tests that need it will say so)"
	$(MAKE) --no-print-directory tflm-cache
	touch $(STAMP)

# TensorFlow Lite Micro compiled once for the common ops (framework + kernels, Cortex-M4 CMSIS-NN and host),
# so the first mcu build links in seconds; an op outside the set compiles on demand. Builds, the demo and the
# tests share this content-addressed cache.
TFLM_CACHE := $(CURDIR)/build/tflm-cache
export EDGEBUILD_TFLM_CACHE_DIR ?= $(TFLM_CACHE)

tflm-cache:
	@if [ -n "$(TFLM_TREE)" ] && command -v arm-none-eabi-g++ >/dev/null; then \
	  $(BIN)/edgebuild cache tflm --tflm-dir $(abspath $(TFLM_TREE)); \
	else echo "note: no TFLite Micro tree or cross compiler: TFLite Micro compiles on the first mcu build instead"; fi

$(DEMO_MODEL)/saved_model.pb $(DEMO_DATA): examples/make_demo.py examples/digits.py | $(STAMP)
	$(BIN)/python examples/make_demo.py --out $(DEMO_MODEL) --data $(DEMO_DATA)

# The mcu target's firmware runs under QEMU when a TFLite Micro tree is at hand (EDGEBUILD_TFLM_DIR, else the
# shared one beside the checkout); without one the firmware stage is skipped with a note.
TFLM_TREE ?= $(firstword $(EDGEBUILD_TFLM_DIR) $(wildcard ../shared/tflm/tflm_tree))

demo: install $(DEMO_MODEL)/saved_model.pb
	EDGEBUILD_TFLM_DIR=$(abspath $(TFLM_TREE)) $(BIN)/edgebuild build $(DEMO_MODEL) --target all --data $(DEMO_DATA) --out build/demo
	@echo; echo "Open build/demo/report.html: every target, check, chart and budget in one page (per target: build/demo/<target>/report.md)"

# ruff (lint and format) and mypy (strict on src/edgebuild, checked on converters/; see [tool.ruff] and
# [tool.mypy] in pyproject.toml). `make test`, and so CI, runs it before the tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MYPY=$(BIN)/mypy scripts/typecheck.sh

test: install lint
	$(BIN)/python -m pytest -q tests

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" tests

# Every test in benchmarks/ runs (no --benchmark-only: that would skip tests without the `benchmark` fixture).
bench: install
	mkdir -p build
	$(BIN)/python -m pytest benchmarks --benchmark-json=build/bench.json -p no:cacheprovider -q

wheel-check: install
	scripts/wheel-check.sh

clean:
	rm -rf $(filter-out build/tflm-cache,$(wildcard build/*)) dist $(DEMO_MODEL) .pytest_cache  # kept: examples/digits.npz (tracked), build/tflm-cache
