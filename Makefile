# mqtt-redis-bridge — the two front-door commands are `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
STAMP := $(VENV)/.installed
LOCK := requirements.lock
APT_PACKAGES := mosquitto mosquitto-clients redis-server

.PHONY: test-compose lock python-venv-support help run test test-unit test-integration test-e2e lint typecheck bench frontend system-deps venv clean

help:
	@echo "make run     - the whole stack locally: mosquitto, redis, bridge, dashboard, demo sensors"
	@echo "make test    - every test (installs what it needs first)"
	@echo "make lint    - ruff + mypy;  make bench - throughput and fan-out benchmarks"

# --- installation ------------------------------------------------------------------------
# Debian/Ubuntu packages: the broker, Redis, Node.js for the frontend build, Chromium for the e2e ring.
system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v mosquitto_pub >/dev/null || missing="$$missing mosquitto-clients"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$(WITH_BROWSER)" ]; then command -v chromium >/dev/null || missing="$$missing chromium"; fi; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then SUDO="sudo"; \
	  else echo "Please install these (Debian/Ubuntu package names):$$missing"; exit 1; fi; \
	  echo "installing with apt-get:$$missing"; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Debian and Ubuntu ship venv/ensurepip separately (python3-venv); nothing else is needed for the venv.
python-venv-support:
	@python3 -c "import ensurepip, venv" 2>/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then SUDO="sudo"; \
	  else echo "Please install Python's venv module (Debian/Ubuntu: python3-venv)"; exit 1; fi; \
	  echo "installing python3-venv with apt-get"; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }

# Every Python package comes from requirements.lock, pip and setuptools included, so a release
# upstream cannot change what a fresh clone installs. The project is built without build isolation
# because an isolated build would fetch the newest setuptools instead of the locked one.
$(STAMP): pyproject.toml $(LOCK) | python-venv-support
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c $(LOCK) pip setuptools
	$(PY) -m pip install -q --no-build-isolation -c $(LOCK) -e '.[test,dev]'
	@touch $(STAMP)

# Refresh the lock on purpose: resolve pyproject.toml's ranges afresh in a throw-away venv and
# record every version. Run it to take up new releases (then run `make test` and commit both).
lock: | python-venv-support
	rm -rf .lock-venv
	python3 -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip setuptools
	.lock-venv/bin/python -m pip install -q '.[test,dev]'
	{ echo "# Every Python package make test, make run and the Dockerfiles install, pinned."; \
	  echo "# Written by 'make lock' with $$(.lock-venv/bin/python -V) on $$(date -u +%F); do not edit by hand."; \
	  .lock-venv/bin/python -m pip freeze --all --exclude mqtt-redis-bridge; } > $(LOCK)
	rm -rf .lock-venv build *.egg-info
	@echo "requirements.lock rewritten; review 'git diff requirements.lock', run make test, commit"

venv: $(STAMP)

frontend: dashboard/static/index.html

dashboard/static/index.html: $(shell find frontend/src -type f 2>/dev/null) frontend/index.html frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build

# --- the front door ----------------------------------------------------------------------
# The script installs mosquitto, redis-server and Node.js itself when missing (and stops the
# system services apt starts with them, since it runs its own copies on the same ports).
run: venv
	bash scripts/run-local.sh

test: WITH_BROWSER = 1
test: system-deps venv frontend lint
	cd frontend && npm test --silent
	$(PYTEST) tests/unit tests/integration tests/e2e

# --- the rings, one at a time ------------------------------------------------------------
test-unit: venv
	$(PYTEST) tests/unit

test-integration: system-deps venv
	$(PYTEST) tests/integration

test-e2e: WITH_BROWSER = 1
test-e2e: system-deps venv frontend
	$(PYTEST) tests/e2e

lint: venv
	$(VENV)/bin/ruff check bridge dashboard tests bench scripts
	$(VENV)/bin/ruff format --check bridge dashboard tests bench scripts
	$(VENV)/bin/mypy

# The docker-compose stack built and run for real (needs a Docker engine with BuildKit; not part
# of `make test`). Run it before resolving any change to the Dockerfiles or docker-compose.yml.
test-compose: venv
	$(PY) scripts/test-compose.py

bench: system-deps venv
	$(PY) bench/throughput.py
	$(PY) bench/fanout.py

clean:
	rm -rf $(VENV) .run dashboard/static frontend/node_modules test-artifacts
