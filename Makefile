# modelctl: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_HOME ?= $(CURDIR)/.demo

.PHONY: venv demo test lint typecheck contracts pytest bench clean

$(BIN)/modelctl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/modelctl

demo: venv
	@bash bench/demo.sh "$(DEMO_HOME)"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

contracts: venv
	$(BIN)/lint-imports

pytest: venv
	$(BIN)/pytest

test: lint typecheck contracts pytest

bench: venv
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) $(DEMO_HOME) .mypy_cache .pytest_cache .ruff_cache
