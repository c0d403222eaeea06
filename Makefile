# eosfm — set-up, tests, lint, benchmarks and the demo.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install test test-all test-terratorch lint format bench demo demo-synthetic wheel wheel-smoke clean

install: $(STAMP)

# Re-install only when the package metadata changes (idempotent).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: install
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m "slow or not slow"

# The terratorch backbone, in a venv of its own (terratorch pulls several GB; not in CI).
TT_VENV ?= .venv-terratorch
test-terratorch:
	@test -x $(TT_VENV)/bin/python || $(PYTHON) -m venv $(TT_VENV)
	$(TT_VENV)/bin/python -m pip install --quiet -e '.[terratorch,dev]'
	$(TT_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_terratorch.py

lint: install
	$(PY) -m ruff check eosfm_cli tests bench
	$(PY) -m ruff format --check eosfm_cli tests bench
	$(PY) -m mypy

format: install
	$(PY) -m ruff format eosfm_cli tests bench
	$(PY) -m ruff check --fix eosfm_cli tests bench

# The wheel (profiles inside, as package data) in dist/, and that wheel installed with its
# dependencies into a throw-away venv, run from an empty folder (CI does this too).
wheel: install
	$(PY) -m pip wheel . --no-deps --no-build-isolation --quiet -w dist

wheel-smoke:
	PYTHON=$(PYTHON) bash .ci/wheel-smoke

bench: install
	$(PY) bench/run.py

demo: install
	$(PY) -m eosfm_cli.demo

demo-synthetic: install
	$(PY) -m eosfm_cli.demo --synthetic

clean:
	rm -rf workspace data/synthetic bench/out .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
