# The two commands: `make run` (the default experiment end to end) and `make test` (the suite).
# Both build .venv from nothing when it is missing, and are quick when it is already up to date.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0
PYTEST_ARGS ?=
# The pinned TFLite Micro tree beside the clone (CI): `make run` and `make test` build and emulate the firmware
# with it unless TINYNAS_TFLM_ROOT / TINYNAS_TFLM_DOWNLOADS already say otherwise.
SHARED_TFLM := $(abspath $(wildcard ../shared/third_party/tflite-micro))
SHARED_DOWNLOADS := $(abspath $(wildcard ../shared/third_party/downloads))
TFLM_ENV := $(if $(and $(SHARED_TFLM),$(SHARED_DOWNLOADS)),TINYNAS_TFLM_ROOT=$${TINYNAS_TFLM_ROOT:-$(SHARED_TFLM)} TINYNAS_TFLM_DOWNLOADS=$${TINYNAS_TFLM_DOWNLOADS:-$(SHARED_DOWNLOADS)})

.PHONY: run test test-fast venv clean bench

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock estimators/_planner.c
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version.split()[0]} at {sys.executable}; set PYTHON=/path/to/python3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH)   # first: the CPU wheel, not a CUDA build
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(TFLM_ENV) $(BIN)/tinynas search

# Tests marked `kernel_paths` (training whose outcome rests on floating-point numerics) run first under PyTorch's
# AVX2 and scalar CPU kernels, then the whole suite under the machine's default (AVX-512 where the CPU has it):
# one machine's kernels must not hide an unstable training. pytest's exit 5 (none selected by PYTEST_ARGS) is fine.
# The marker comes after PYTEST_ARGS, so a `-m` there narrows the full run, not these reruns.
KERNEL_PATHS ?= avx2 default

test: $(STAMP)
	@for cap in $(KERNEL_PATHS); do \
	  echo "== tests marked kernel_paths, ATEN_CPU_CAPABILITY=$$cap"; \
	  ATEN_CPU_CAPABILITY=$$cap $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) -m kernel_paths \
	    || [ $$? -eq 5 ] || exit 1; \
	done
	$(TFLM_ENV) $(BIN)/python -m pytest -q --durations=15 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/estimators.py

clean:
	rm -rf $(VENV) runs .pytest_cache build estimators/*.so
