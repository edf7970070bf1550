# fluid_bayes: set up a local virtual environment and run the main job or the tests.
# `make demo` and `make test` work from a clean clone on a fresh machine.

VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
export PYTENSOR_FLAGS ?= base_compiledir=$(CURDIR)/.cache/pytensor
export MPLBACKEND ?= Agg

.PHONY: setup demo test test-slow lint bench bench-adaptive bench-experiment clean

$(STAMP): pyproject.toml constraints.txt scripts/find-python
	@set -e; if [ ! -x $(PY) ]; then \
	  PYBIN=$$(scripts/find-python); echo "using $$PYBIN"; "$$PYBIN" -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fluid-bayes demo

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check fluid_bayes tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/run.py

bench-adaptive: $(STAMP)
	$(PY) benchmarks/adaptive.py

bench-experiment: $(STAMP)
	$(PY) benchmarks/experiment.py --compare 2

clean:
	rm -rf $(VENV) .cache .pytest_cache out
