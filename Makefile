# Two commands on a fresh machine (Python 3.11, Node 20, make):
#   make run   - install everything, start the whole local stack with a demo park and camera
#   make test  - install everything, run the test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test stop status install lint clean

$(STAMP): pyproject.toml requirements.txt requirements-local.txt requirements-dev.txt scoring/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,dev,scoring]'
	touch $(STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch node_modules/.installed

install: $(STAMP) node_modules/.installed

run: install
	$(BIN)/trapalert stack up --demo

stop:
	$(BIN)/trapalert stack down

status:
	$(BIN)/trapalert stack status

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check functions scoring tests function_app.py

clean:
	-$(BIN)/trapalert stack down
	rm -rf .trapalert
