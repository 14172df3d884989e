# NeuroRave: `make run` plays the virtual module, `make test` runs the whole suite.
# Both set up everything they need on a fresh Debian or Ubuntu machine.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# PyTorch for the learning side. PyPI's Linux wheel is the CUDA build (it runs on CPU
# too, but pulls ~2.5 GB of CUDA libraries); for the CPU-only build use
# TORCH_INDEX=https://download.pytorch.org/whl/cpu.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=

APT_RUN := libportaudio2 libsndfile1
# Chromium and its driver: the evaluation report is opened in a real headless browser.
# Debian calls them chromium and chromium-driver; Ubuntu chromium-browser and
# chromium-chromedriver.
CHROMIUM := $(if $(shell grep -qsiE '^ID(_LIKE)?=.*ubuntu' /etc/os-release && echo y),\
	chromium-browser chromium-chromedriver,chromium chromium-driver)
APT_TEST := jackd2 fluidsynth fluid-soundfont-gm espeak-ng sox libasound2-plugins systemd \
	$(CHROMIUM)
# Code that runs on the module: Python 3.8+, no torch. The two files of models/ that the
# device imports are named alone: the rest of models/ is the learning side.
DEVICE_SIDE := common firmware hardware models/runtime models/__init__.py models/audibility.py
RUN_ARGS ?=
HOST ?=
BUNDLE ?=
DEPLOY_ARGS ?=
PRETRAINED_ARGS ?=

.PHONY: run test lint check-python bench deploy pretrained examples clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 8) else "neurorave: Python 3.8 or later is needed")'
	@# Debian and Ubuntu ship venv's pip bootstrap apart, in python3-venv.
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || tools/ensure-apt-packages.sh \
		"$$($(PYTHON) -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])')"
	@# A venv that failed half-way would pass for made: remove it.
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "neurorave: could not create $(VENV); install python3-venv" >&2; exit 1; }
	$(PIP) install -q --upgrade pip setuptools wheel

$(VENV)/.run-deps: setup.py $(PY)
	@tools/ensure-apt-packages.sh $(APT_RUN)
	$(PIP) install -q -e '.[sim]'
	@touch $@

$(VENV)/.test-deps: setup.py $(VENV)/.run-deps
	@tools/ensure-apt-packages.sh $(APT_TEST)
	$(PIP) install -q $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) '$(TORCH)'
	$(PIP) install -q -e '.[sim,train,dev]'
	@touch $@

run: $(VENV)/.run-deps
	$(VENV)/bin/neurorave run --board sim $(RUN_ARGS)

lint: $(VENV)/.test-deps
	$(VENV)/bin/ruff check .
	$(PY) tools/typecheck.py $(DEVICE_SIDE)
	$(VENV)/bin/vermin --target=3.8- --violations --no-tips --eval-annotations $(DEVICE_SIDE)

test: $(VENV)/.test-deps lint
	$(PY) -m pytest

# Every example patch rendered to build/examples/NAME.wav (examples/patches/).
examples: $(VENV)/.run-deps
	NEURORAVE=$(VENV)/bin/neurorave tools/render-examples.sh

# Copy this checkout to a Jetson over ssh and install the service there.
deploy:
	@[ -n "$(HOST)" ] || { echo "make deploy: name the module, e.g. make deploy HOST=user@jetson.local" >&2; exit 2; }
	tools/deploy.sh $(HOST) $(if $(ORT_WHEEL),--ort-wheel $(ORT_WHEEL)) $(DEPLOY_ARGS)

# The inference engines and the whole daemon on a bundle (figures: benchmarks/README.md).
bench: $(VENV)/.test-deps
	@[ -n "$(BUNDLE)" ] || { echo "make bench: name a bundle, e.g. make bench BUNDLE=models/my-model" >&2; exit 2; }
	$(VENV)/bin/neurorave bench $(BUNDLE)
	$(PY) benchmarks/bench_daemon.py --bundle $(BUNDLE) --seconds 60

# Reproduce the bundled models from scratch; every stage resumes where it stopped.
# PRETRAINED_ARGS="--steps 20000 --skip twin" etc.: see tools/pretrained.py --help.
pretrained: $(VENV)/.test-deps
	$(PY) tools/pretrained.py $(PRETRAINED_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
