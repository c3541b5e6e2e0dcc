# Everything from nothing: `make test` creates .venv, installs torch and the rest, builds the
# extension (the CUDA half too wherever nvcc exists) and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
TORCH  ?= torch>=2.6
STAMP   = $(VENV)/.toolchain-installed

.PHONY: all venv build collect-gpu test demo bench info clean

all: build

$(STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install "$(TORCH)" "scikit-build-core>=0.10" "pybind11>=2.12" ninja cmake
	touch $@

venv: $(STAMP)

# --no-build-isolation: the extension compiles against the torch installed above
build: $(STAMP)
	$(PIP) install --no-build-isolation -e ".[test,photos]"

# collect-gpu: the suite collected as on a GPU machine (tests/backend_cases.py), so that a
# collection error only a GPU machine would meet fails here first
collect-gpu: build
	TAYLOR_FAST_PRETEND_GPU=1 $(PY) -m pytest --collect-only -q -p no:cacheprovider > /dev/null

test: build collect-gpu
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

# The benchmark suite (benchmarks/README.md): the full grid, one results JSON per device into
# benchmarks/results/, then the README's tables and plot. BENCH_ARGS adds pytest options, e.g.
# BENCH_ARGS="--taylor-grid quick", BENCH_ARGS="-m cuda" or BENCH_ARGS="--benchmark-compare".
BENCH_ARGS ?=

bench: build
	$(PY) -m pytest benchmarks -q -rs --benchmark-autosave --taylor-results benchmarks/results $(BENCH_ARGS)
	$(PY) benchmarks/render.py

demo: build
	$(VENV)/bin/taylor-fast demo

info: build
	$(VENV)/bin/taylor-fast info

clean:
	rm -rf build .pytest_cache demo_out
