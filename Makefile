# cvlab: two commands do everything on a fresh machine.
#   make demo   run the whole lab headless on the embedded default (synthetic data, local Triton, tiny model)
#   make test   create the venv if needed, lint, and run the test suite
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: venv demo test lint format bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[notebooks,dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m cvlab lab demo --output $(DEMO_OUT)

test: $(STAMP)
	$(VENV)/bin/ruff check cvlab tests notebooks
	$(VENV)/bin/ruff format --check cvlab tests notebooks
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check cvlab tests notebooks

format: $(STAMP)
	$(VENV)/bin/ruff format cvlab tests notebooks
	$(VENV)/bin/ruff check --fix cvlab tests notebooks

bench: $(STAMP)
	$(PY) -m cvlab bench

clean:
	rm -rf $(VENV) runs .pytest_cache
