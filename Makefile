# Two commands do all the set-up on a fresh machine:  `make report`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN = $(VENV)/bin
PLUGINS = $(wildcard plugins/*/pyproject.toml)

.PHONY: setup report test lint bench demo

setup: $(VENV)/.installed

# torch first, so that the project's `torch>=2.4` is already met and pip does not fetch another build.
# the C++ CPU kernels are compiled by `pip install -e .`: a change to them reinstalls
$(VENV)/.installed: pyproject.toml CMakeLists.txt $(wildcard csrc/*) $(PLUGINS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,demo,onnx,lint]" $(patsubst %/pyproject.toml,./%,$(PLUGINS))
	touch $@

report: setup
	$(BIN)/warpkit report

test: setup
	$(BIN)/python -m pytest -q

# ruff (lint and format) and mypy, as CI runs them
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/warpkit bench --out docs/bench.png

demo: setup
	$(BIN)/warpkit demo stn
