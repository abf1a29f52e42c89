# Two commands: `make run` and `make test`. Each creates .venv when missing and installs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $@

# On Linux, Qt's X11 plugin needs system libraries: say what to apt-get install (or install them,
# as root, with INSTALL_LINUX_DEPS=1 or in CI) rather than let Qt abort.
LINUX_DEPS_FLAGS := $(if $(filter 1 true yes,$(INSTALL_LINUX_DEPS) $(CI)),--install)

run: $(STAMP)
	@$(BIN)/python -m app.linux_deps $(LINUX_DEPS_FLAGS)
	$(BIN)/nemo-chat $(ARGS)

test: $(DEV_STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check engine app tests
	$(BIN)/ruff format --check engine app tests
	$(BIN)/pyright

format: $(DEV_STAMP)
	$(BIN)/ruff format engine app tests
	$(BIN)/ruff check --fix engine app tests

bench: $(STAMP)
	$(BIN)/python -m engine.bench $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info

# The double-click app (packaging/README.md): `make bundle` builds it for this platform,
# `make bundle-test` builds it and runs the bundle's --self-test offscreen on a tiny model.
BUNDLE_STAMP := $(VENV)/.installed-bundle

.PHONY: icons bundle bundle-test

$(BUNDLE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bundle]'
	touch $(STAMP) $@

icons: $(STAMP)
	$(BIN)/python packaging/render_icons.py

bundle: $(BUNDLE_STAMP)
	$(BIN)/python packaging/build_app.py $(ARGS)

bundle-test: $(BUNDLE_STAMP)
	$(BIN)/python packaging/bundle_test.py $(ARGS)
