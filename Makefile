# herdrecord: `make demo` runs the demo, `make test` runs lint, types and tests.
# Both create the virtual environment .venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1

.PHONY: demo test lint pytest slow bench schemas screenshots clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/herdrecord demo herd-demo

test: lint pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks migrations examples
	$(BIN)/ruff format --check src tests benchmarks migrations examples
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# One worker per core; a test file's tests stay on one worker (its module fixtures are built once).
pytest: $(VENV)/.installed
	$(BIN)/pytest -q -n auto --dist loadfile

slow: $(VENV)/.installed
	$(BIN)/pytest -q -m slow

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/linking.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/pages.py
	$(BIN)/python benchmarks/embed.py
	$(BIN)/python benchmarks/soak.py

# The pages' screenshots in docs/screenshots/, taken by the browser tests (needs chromium).
screenshots: $(VENV)/.installed
	HERDRECORD_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/test_browser.py

schemas: $(VENV)/.installed
	$(BIN)/python -m herdrecord.tools.snapshots schemas
	$(BIN)/python -c "from herdrecord.cli import write_command_manifest; write_command_manifest()"

clean:
	rm -rf $(VENV) herd-demo .pytest_cache .mypy_cache .ruff_cache
