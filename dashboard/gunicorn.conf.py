"""Gunicorn settings for the dashboard; ``mqtt-dashboard`` passes this file with ``-c``.

Also usable alone: ``gunicorn -c dashboard/gunicorn.conf.py``. It runs in the master before
any fork, so it imports nothing that gevent would need to patch: no redis-py, no Flask, not the
app (tests/integration/test_dashboard_stack.py fails on any MonkeyPatchWarning).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Any

from dashboard.config import ServerSettings, ensure_login_token
from dashboard.runner import bind_address, login_url

_settings = ServerSettings.from_env(os.environ)

wsgi_app = "dashboard.wsgi:app"
worker_class = "gevent"  # Flask-SocketIO's async_mode="gevent"; no gevent-websocket needed
workers = _settings.workers
bind = [bind_address(_settings.host, _settings.port)]
# Gunicorn 27 opens ~/.gunicorn/gunicorn.ctl by default: a second dashboard on the same
# machine (or a parallel test) would collide with the first.
control_socket_disable = True
proc_name = "mqtt-dashboard"
loglevel = _settings.log_level.lower()
# Off by default; if enabled, %(U)s logs the path without the query, which may hold ?token=.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'
# Open WebSockets never finish by themselves: past this, workers are stopped anyway. Kept well
# under Docker's default 10 s stop grace period, so a container stop is clean rather than killed.
graceful_timeout = 3
timeout = 30


def on_starting(server: Any) -> None:
    # Only when started without mqtt-dashboard (which already did this): one token for all
    # workers, made here in the master so every forked worker inherits it.
    token = ensure_login_token(os.environ)
    if token is not None:
        print(
            f"mqtt-dashboard: log in at {login_url(_settings.host, _settings.port, token)}",
            file=sys.stderr,
            flush=True,
        )


# Gunicorn stops altogether when a worker exits with this while booting, instead of respawning it.
WORKER_BOOT_ERROR = 3


def post_worker_init(worker: Any) -> None:
    # Imported here, after the fork and gevent's patching (see the module docstring).
    import redis

    from bridge.contract.server_versions import version_check_of
    from dashboard.extensions import services

    found = services(worker.wsgi)
    check = version_check_of(found.redis)
    # Connecting runs the version check. Redis down at boot is fine: the relay keeps trying.
    with contextlib.suppress(redis.RedisError):
        found.redis.ping()
    if check is not None:
        if check.refusal:  # already logged, in one line
            sys.exit(WORKER_BOOT_ERROR)

        # Refused after a reconnect: this worker stops, and the one Gunicorn starts in its
        # place fails the check above while booting, which stops the whole dashboard.
        def stop_this_worker(refusal: str) -> None:
            worker.log.error("%s; stopping this worker", refusal)
            os.kill(os.getpid(), signal.SIGTERM)

        check.on_refused = stop_this_worker
    # Start this worker's relay now, not at the first browser connect, so its bridge_health
    # watch runs from the start.
    found.relay.ensure_started()
