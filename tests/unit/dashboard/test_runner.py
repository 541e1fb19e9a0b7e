"""mqtt-dashboard: the Gunicorn command it builds, its one-line config errors, the config file."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys

import pytest

from dashboard import runner
from dashboard.config import DashboardSettings


def test_gunicorn_runs_gevent_workers_without_a_control_socket() -> None:
    settings = DashboardSettings.from_env({"DASHBOARD_WORKERS": "3", "DASHBOARD_PORT": "9000"})

    argv = runner.gunicorn_argv(settings, ["--log-level", "debug"])

    assert argv[1:3] == ["-m", "gunicorn"]
    assert argv[argv.index("--worker-class") + 1] == "gevent"
    assert argv[argv.index("--workers") + 1] == "3"
    assert argv[argv.index("--bind") + 1] == "0.0.0.0:9000"
    assert argv[argv.index("--config") + 1] == str(runner.CONFIG_FILE)
    assert "--no-control-socket" in argv
    assert argv[-3:] == ["--log-level", "debug", "dashboard.wsgi:app"]


def test_a_bad_setting_fails_with_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main([], environ={"DASHBOARD_WORKERS": "many"}) == 2

    err = capsys.readouterr().err
    assert err == "mqtt-dashboard: DASHBOARD_WORKERS must be a whole number, got 'many'\n"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://localhost:8082/?token=abc"),
        ("127.0.0.1", "http://127.0.0.1:8082/?token=abc"),
        ("::1", "http://[::1]:8082/?token=abc"),
    ],
)
def test_the_login_url(host: str, url: str) -> None:
    assert runner.login_url(host, 8082, "abc") == url


def test_the_gunicorn_config_file_agrees() -> None:
    config = runpy.run_path(str(runner.CONFIG_FILE))

    assert config["worker_class"] == "gevent"
    assert config["wsgi_app"] == "dashboard.wsgi:app"
    assert config["control_socket_disable"] is True
    assert "%(U)s" in config["access_log_format"]  # the path without a query that may hold ?token=


def test_the_gunicorn_master_imports_neither_redis_nor_flask() -> None:
    # What the master imports is imported before gevent patches the workers: redis-py or Flask
    # there means a MonkeyPatchWarning in every worker. A fresh interpreter, as the master is.
    probe = (
        "import runpy, sys\n"
        f"config = runpy.run_path({str(runner.CONFIG_FILE)!r})\n"
        "config['on_starting'](None)\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('redis', 'flask', 'flask_socketio', 'socketio', 'engineio')"
        " or m in ('dashboard.app', 'dashboard.wsgi'))))\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "DASHBOARD_AUTH": "on",
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60, check=True
    )

    assert done.stdout.strip() == ""
