# Two commands on a fresh machine (Python 3.11, Node 20, make):
#   make run   - install everything, start the whole local stack with a demo park and camera
#   make test  - install everything, run the test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test stop status install system-deps lint clean

# Debian packages the tests need (headless Chromium for the console tests; jq, which the pipeline's scoring
# image step uses and its test runs); installed once, when missing.
SYSTEM_PACKAGES := chromium chromium-driver jq

$(STAMP): pyproject.toml requirements.txt requirements-local.txt requirements-dev.txt scoring/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,dev,scoring]'
	touch $(STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch node_modules/.installed

system-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! command -v jq >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "installing $(SYSTEM_PACKAGES) (Debian packages)"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	fi

install: $(STAMP) node_modules/.installed

run: install
	$(BIN)/trapalert stack up --demo

stop:
	$(BIN)/trapalert stack down

status:
	$(BIN)/trapalert stack status

test: install system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check functions scoring tests function_app.py

clean:
	-$(BIN)/trapalert stack down
	rm -rf .trapalert
