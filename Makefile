# mqtt-redis-bridge — the two front-door commands are `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
STAMP := $(VENV)/.installed
APT_PACKAGES := mosquitto mosquitto-clients redis-server

.PHONY: help run test test-unit test-integration test-e2e lint typecheck bench frontend system-deps venv clean

help:
	@echo "make run     - the whole stack locally: mosquitto, redis, bridge, dashboard, demo sensors"
	@echo "make test    - every test (installs what it needs first)"
	@echo "make lint    - ruff + mypy;  make bench - throughput and fan-out benchmarks"

# --- installation ------------------------------------------------------------------------
system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v mosquitto_pub >/dev/null || missing="$$missing mosquitto-clients"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "Please install:$$missing (Debian/Ubuntu package names)"; exit 1; fi; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dev]'
	@touch $(STAMP)

venv: $(STAMP)

frontend: dashboard/static/index.html

dashboard/static/index.html: $(shell find frontend/src -type f 2>/dev/null) frontend/package.json frontend/package-lock.json
	@command -v npm >/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else echo "Please install Node.js 20+ and npm"; exit 1; fi; }
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build

# --- the front door ----------------------------------------------------------------------
run: system-deps venv frontend
	bash scripts/run-local.sh

test: system-deps venv
	$(PYTEST) tests/unit tests/integration

# --- the rings, one at a time ------------------------------------------------------------
test-unit: venv
	$(PYTEST) tests/unit

test-integration: system-deps venv
	$(PYTEST) tests/integration

lint: venv
	$(VENV)/bin/ruff check bridge dashboard tests bench
	$(VENV)/bin/ruff format --check bridge dashboard tests bench
	$(VENV)/bin/mypy

bench: system-deps venv
	$(PY) bench/throughput.py

clean:
	rm -rf $(VENV) .run dashboard/static frontend/node_modules test-artifacts
