# `make demo` and `make test` set everything up on a fresh machine, then run. `make test`
# also installs the Debian tools some tests drive (chromium, espeak-ng) when it can (`make
# tools`, as root); when it cannot, those tests are skipped and say how to install them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PLUGINS := $(wildcard plugins/*/pyproject.toml examples/*/pyproject.toml)
PY_DIRS := $(wildcard sdk tests examples plugins benchmarks scripts)

.PHONY: demo test lint typecheck unit setup dist clean tools

demo: $(STAMP)
	$(BIN)/voxpipe demo --json out/demo.json --plot out/demo.png --record out/demo-call.wav

test: $(STAMP) tools lint typecheck unit

# Debian tools some tests drive (never fails: without one, its tests skip and say why).
tools:
	sh scripts/install-debian-tools.sh

lint: $(STAMP)
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy sdk/voxpipe $(wildcard plugins/*/src examples/*/src)

unit: $(STAMP)
	$(BIN)/pytest -q -n auto --maxprocesses=4 tests $(wildcard plugins/*/tests examples/*/tests)

setup: $(STAMP)

# Wheels and sdists of the core and every plugin in dist/, checked, then installed into a
# fresh venv from those files and tried there (voxpipe plugins, the demo).
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python scripts/dist.py --out dist --smoke

# Re-install when the project or any plugin's metadata changes.
$(STAMP): pyproject.toml $(PLUGINS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,serve]' $(foreach p,$(PLUGINS),-e '$(dir $(p))[test]')
	touch $(STAMP)

clean:
	rm -rf $(VENV) out dist .pytest_cache .mypy_cache .ruff_cache
