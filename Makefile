# Two commands on a fresh machine:  make demo   and   make test
# Both create .venv and install what they need first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export FIFTYONE_DO_NOT_TRACK := true

.PHONY: install demo test test-compat bench bench-quick bench-scale bench-methods bench-all clean-venv

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# FiftyOne finds plugins under FIFTYONE_PLUGINS_DIR: a folder holding a link
# to this checkout, nested as `fiftyone plugins download` lays plugins out
PLUGINS_DIR := $(CURDIR)/.plugins
PLUGIN_LINK := $(PLUGINS_DIR)/@label-noise/curation
$(PLUGIN_LINK):
	rm -f $(PLUGINS_DIR)/label-noise-curation  # the flat link of older checkouts: one copy only
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

# DATASET=<dir> runs the demo on your own <dir>/<class>/<image> tree instead
# (MODEL=<zoo model name>, default the zoo's CLIP, downloaded once;
# WEIGHTS=/path/to/resnet18.pth to embed offline with a torchvision state_dict)
demo: $(STAMP) $(PLUGIN_LINK)
	FIFTYONE_PLUGINS_DIR=$(PLUGINS_DIR) $(PY) demo/run_demo.py $(if $(DATASET),--dataset-dir "$(DATASET)") $(if $(MODEL),--model "$(MODEL)") $(if $(WEIGHTS),--weights "$(WEIGHTS)")

test: $(STAMP)
	$(PY) -m pytest

# make test-compat [FIFTYONE=<version>]: the integration and browser tests
# against one FiftyOne release, in its own venv .venv-fo-<version> (built by
# scripts/compat_venv.sh: requirements-dev.txt with fiftyone==<version> and
# tests/compat/constraints-<version>.txt). Default: the oldest supported
# release, i.e. the lower bound of fiftyone.yml's fiftyone.version range.
FIFTYONE_OLDEST := $(shell sed -n 's/^  version: ">=\([0-9.]*\),.*/\1/p' fiftyone.yml)
FIFTYONE ?= $(FIFTYONE_OLDEST)

test-compat:
	scripts/compat_venv.sh $(FIFTYONE)
	.venv-fo-$(FIFTYONE)/bin/python -m pytest tests/integration tests/browser

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

bench-quick: $(STAMP)
	$(PY) benchmarks/run_all.py --quick

bench-scale: $(STAMP)
	$(PY) benchmarks/run_all.py --scale

bench-methods: $(STAMP)
	$(PY) benchmarks/run_all.py --methods

bench-all: $(STAMP)
	$(PY) benchmarks/run_all.py --all

clean-venv:
	rm -rf $(VENV) .venv-fo-*
