# mqtt-redis-bridge — the two front-door commands are `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
LOCK := requirements.lock
APT_PACKAGES := mosquitto mosquitto-clients redis-server

.PHONY: test-rings test-mosquitto21 test-compose lock python-venv-support help run test test-unit test-integration test-e2e lint typecheck bench frontend system-deps venv clean

help:
	@echo "make run     - the whole stack locally: mosquitto, redis, bridge, dashboard, demo sensors"
	@echo "make test    - every test (installs what it needs first), broker-facing ones on mosquitto 2.1.2 too"
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
# setup.py and the C source too: a change to the compiled hot path rebuilds it in place.
$(STAMP): pyproject.toml setup.py bridge/ingest/_wire.c $(LOCK) | python-venv-support
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c $(LOCK) pip setuptools
	@# The filter hides setuptools' notice that an editable install exists, which every newcomer saw.
	PYTHONWARNINGS='ignore:Editable installation' \
	  $(PY) -m pip install -q --no-build-isolation -c $(LOCK) -e '.[test,dev]'
	@touch $(STAMP) $(RUN_STAMP)

# What running needs, and no more: `make run` on a fresh clone skips the test and lint tools.
$(RUN_STAMP): pyproject.toml setup.py bridge/ingest/_wire.c $(LOCK) | python-venv-support
	@echo "make run: installing the Python packages into $(VENV) (first run only)"
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -c $(LOCK) pip setuptools
	@PYTHONWARNINGS='ignore:Editable installation' \
	  $(PY) -m pip install -q --disable-pip-version-check --no-build-isolation -c $(LOCK) -e .
	@touch $(RUN_STAMP)

# Refresh the lock on purpose: resolve pyproject.toml's ranges afresh and record every version.
# uv resolves for every platform and Python >= 3.11 at once (`--universal`), so a package that only
# some Pythons need (async-timeout below 3.11.3, as Debian 12's Python is) is pinned too; pip and
# setuptools are pinned as well. uv only writes the file: pip installs from it everywhere.
lock: | python-venv-support
	rm -rf .lock-venv
	python3 -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --disable-pip-version-check uv
	printf 'pip\nsetuptools>=77\n' | .lock-venv/bin/uv pip compile pyproject.toml - --all-extras \
	  --universal --python-version 3.11 --upgrade --custom-compile-command "make lock" -q -o $(LOCK)
	rm -rf .lock-venv
	@echo "requirements.lock rewritten; review 'git diff requirements.lock', run make test, commit"

venv: $(STAMP)

frontend: dashboard/static/index.html

# Every frontend package, the test and type-check tools included (`make run` installs only what
# building needs: scripts/run-local.sh).
NODE_TOOLS := frontend/node_modules/.installed-all
$(NODE_TOOLS): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_TOOLS)

dashboard/static/index.html: $(shell find frontend/src -type f 2>/dev/null) frontend/index.html frontend/package.json frontend/package-lock.json | $(NODE_TOOLS)
	cd frontend && npm run build

# --- the front door ----------------------------------------------------------------------
# The script installs mosquitto, redis-server and Node.js itself when missing (and stops the
# system services apt starts with them, since it runs its own copies on the same ports).
# Ctrl-C is how a run ends: its exit status (130) is not reported as an error.
run: $(RUN_STAMP)
	@bash scripts/run-local.sh || [ $$? -eq 130 ]

# The rings in parallel processes, a test file each at a time (a file's servers are its own, and
# most of a test's time is spent waiting on them): 3 on this project's 2-core machines took the
# suite from 9.4 to about 3.5 minutes. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 3

test: WITH_BROWSER = 1
test: system-deps venv frontend lint
	cd frontend && npm run --silent typecheck && npm test --silent
	@# The three rings and the mosquitto 2.1.2 run at the same time (their tests mostly wait on
	@# servers); each one's output is printed whole when it ends.
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-rings test-mosquitto21 \
	  MOSQUITTO21_WORKERS=2 MOSQUITTO21_PORT_SLOTS=$(TEST_WORKERS)

test-rings: system-deps venv frontend
	TEST_PORT_SLOT_OFFSET=0 $(PYTEST) -n $(TEST_WORKERS) --dist loadfile tests/unit tests/integration tests/e2e

# --- the second broker line: mosquitto 2.1.2 --------------------------------------------------
# Everything above runs against the system's mosquitto (Debian's 2.0.11 here; MOSQUITTO_BIN picks
# another). The broker-facing integration tests run again against 2.1.2, what eclipse-mosquitto:2
# ships, built once from ../shared/vendor/ into MOSQUITTO21_PREFIX and reused after. "Broker-facing":
# the tests whose outcome depends on how the broker behaves, that is the data path (forwarding,
# delivery, MQTT 5 properties), insight (stats, clients, topics), commands (publish/subscribe,
# pause, clearing retained, connection control and probe), faults (broker and Redis restarts),
# dynamic security and the shipped configs, the lines where 2.0 and 2.1 differ, and one bridge
# group test for shared subscriptions. Left out: the dashboard, Redis topologies and pressure, the
# e2e ring and run-local.sh, which talk to mosquitto only through the bridge, and the rest of the
# group file (two minutes on one worker). docs/operations.md, "Testing against another mosquitto".
SHARED ?= ../shared
MOSQUITTO21_TARBALL := $(SHARED)/vendor/mosquitto-2.1.2.tar.gz
MOSQUITTO21_PREFIX ?= $(HOME)/.cache/mosquitto-2.1.2
MOSQUITTO21_WORKERS ?= $(TEST_WORKERS)
# Port ranges to skip (tests/helpers.py): make test runs this beside the rings, whose workers take the first ones.
MOSQUITTO21_PORT_SLOTS ?= 0
BROKER_FACING_TESTS := \
	tests/integration/test_mosquitto_lines.py \
	tests/integration/test_mosquitto_config.py \
	tests/integration/test_bridge_forwarding.py \
	tests/integration/test_bridge_delivery.py \
	tests/integration/test_mqtt5_properties.py \
	tests/integration/test_broker_insight.py \
	tests/integration/test_stats_history.py \
	tests/integration/test_bridge_commands.py \
	tests/integration/test_subscription_control.py \
	tests/integration/test_clear_retained.py \
	tests/integration/test_broker_control.py \
	tests/integration/test_connection_probe.py \
	tests/integration/test_bridge_outages.py \
	tests/integration/test_dynsec_tenants.py \
	tests/integration/test_bridge_group.py::test_two_members_share_the_messages_each_forwarded_once

test-mosquitto21: system-deps venv
	@if [ ! -f "$(MOSQUITTO21_TARBALL)" ]; then \
	  echo "SKIPPED the mosquitto 2.1.2 run: $(MOSQUITTO21_TARBALL) is not there (docs/operations.md)"; \
	  exit 0; \
	fi; \
	mkdir -p test-artifacts; \
	prefix=$$(bash $(SHARED)/tools/build-mosquitto.sh "$(MOSQUITTO21_PREFIX)" 2>test-artifacts/mosquitto-2.1.2-build.log) \
	  || { tail -n 20 test-artifacts/mosquitto-2.1.2-build.log; echo "building mosquitto 2.1.2 failed"; exit 1; }; \
	echo "broker-facing tests against mosquitto 2.1.2 ($$prefix/sbin/mosquitto)"; \
	MOSQUITTO_BIN="$$prefix/sbin/mosquitto" TEST_PORT_SLOT_OFFSET=$(MOSQUITTO21_PORT_SLOTS) \
	  $(PYTEST) -n $(MOSQUITTO21_WORKERS) --dist loadfile $(BROKER_FACING_TESTS)

# --- the rings, one at a time ------------------------------------------------------------
test-unit: venv
	$(PYTEST) tests/unit

# MOSQUITTO_BIN=/path/to/sbin/mosquitto make test-integration: the ring against another broker.
test-integration: system-deps venv
	$(PYTEST) tests/integration

test-e2e: WITH_BROWSER = 1
test-e2e: system-deps venv frontend
	$(PYTEST) tests/e2e

lint: venv
	$(VENV)/bin/ruff check bridge dashboard tests bench scripts
	$(VENV)/bin/ruff format --check bridge dashboard tests bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

# The docker-compose stack built and run for real (needs a Docker engine with BuildKit; not part
# of `make test`). Run it before resolving any change to the Dockerfiles or docker-compose.yml.
test-compose: venv
	$(PY) scripts/test-compose.py

bench: system-deps venv
	$(PY) bench/throughput.py
	$(PY) bench/latency.py
	$(PY) bench/memory.py
	$(PY) bench/fanout.py
	$(PY) bench/group_failover.py

clean:
	rm -rf $(VENV) .run dashboard/static frontend/node_modules test-artifacts
