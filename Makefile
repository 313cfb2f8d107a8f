# Everything starts from nothing: `make test` on a fresh clone creates the venv, installs the
# package with its dev extras and the Debian packages the tests need, then lints and tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
APT_PACKAGES := prometheus chromium
# One binary per package: system-deps installs when any of them is missing.
SYSTEM_BINARIES := promtool /usr/bin/chromium

.PHONY: install system-deps lint typecheck pytest test up bench schemas clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The modules setup.py compiles with mypyc (blocwatch.compiled.COMPILED; a test keeps the two
# lists equal): editing one reinstalls, so the compiled copy never lags its source.
COMPILED_SOURCES := services/blocwatch/processor/tagging/tagger.py services/blocwatch/processor/tagging/gazetteer.py services/blocwatch/processor/tagging/prefilter.py services/blocwatch/processor/tagging/ruleset.py services/blocwatch/processor/stories.py

$(STAMP): pyproject.toml setup.py services/blocwatch/compiled.py $(COMPILED_SOURCES) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	# mypyc's incremental cache: after a compiled module moved, a stale one crashed the build
	rm -rf build
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests use (promtool from prometheus; chromium for the console's browser
# test, driven by Playwright: never a downloaded browser). Installed only when one is missing.
system-deps:
	@missing=""; for binary in $(SYSTEM_BINARIES); do \
		command -v $$binary >/dev/null 2>&1 || missing="$$missing $$binary"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $(APT_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi

lint: install
	$(BIN)/ruff check services tests bench
	$(BIN)/ruff format --check services tests bench

typecheck: install
	$(BIN)/mypy --strict services tests bench

pytest: install system-deps
	$(BIN)/pytest

test: lint typecheck pytest

# Opt-in fault tests with a known race under load (see README, Reliability and security).
schemas: install
	$(BIN)/blocwatch schemas write

# The whole pipeline on the embedded broker with the bundled demo news (no internet needed).
up: install
	$(BIN)/blocwatch up --demo

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build services/blocwatch/compiled.json
	find services -name '*.so' -delete
