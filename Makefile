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

# The web UI's browser tests drive Debian's chromium through Playwright, which never downloads a
# browser here: install the distribution's package when it is missing (CI runs as root).
.PHONY: chromium bench-ui screenshots
pytest: chromium
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; \
		else \
			echo "make: /usr/bin/chromium is missing: sudo apt-get install -y --no-install-recommends chromium" >&2; \
			exit 2; \
		fi; \
	fi

bench-ui: venv
	$(BIN)/python bench/ui.py

screenshots: venv chromium
	$(BIN)/python bench/screenshots.py docs/screenshots
