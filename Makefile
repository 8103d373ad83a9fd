# Two commands on a fresh machine:  make demo   and   make test
# Both create .venv and install what they need first.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export FIFTYONE_DO_NOT_TRACK := true

.PHONY: install demo test bench bench-quick bench-scale bench-methods bench-all clean-venv

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# FiftyOne finds plugins under FIFTYONE_PLUGINS_DIR: a folder holding a link to this checkout
PLUGINS_DIR := $(CURDIR)/.plugins
$(PLUGINS_DIR)/label-noise-curation:
	mkdir -p $(PLUGINS_DIR)
	ln -sfn $(CURDIR) $@

# DATASET=<dir> runs the demo on your own <dir>/<class>/<image> tree instead
# (WEIGHTS=/path/to/resnet18.pth to embed offline; default: torchvision download)
demo: $(STAMP) $(PLUGINS_DIR)/label-noise-curation
	FIFTYONE_PLUGINS_DIR=$(PLUGINS_DIR) $(PY) demo/run_demo.py $(if $(DATASET),--dataset-dir "$(DATASET)") $(if $(WEIGHTS),--weights "$(WEIGHTS)")

test: $(STAMP)
	$(PY) -m pytest

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
	rm -rf $(VENV)
