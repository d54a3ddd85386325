# Two front doors: `make demo` and `make test`. Both create the virtual environment on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo lint test test-fast bench clean

setup: $(VENV)/.installed

# torch/torchvision are pinned here, not in pyproject: these are the releases the project is
# tested with (and the newest this machine's package index serves); pyproject accepts any 2.x.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/scones demo

# ruff and mypy settings live in pyproject.toml.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: setup lint
	scripts/install_test_tools.sh
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest tests/unit

bench: setup
	$(BIN)/python bench/serve.py

clean:
	rm -rf $(VENV) .scones .pytest_cache
