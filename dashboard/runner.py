"""``mqtt-dashboard``: check the settings, make a login token if needed, then exec Gunicorn.

Imports only the settings module: it runs before Gunicorn forks its gevent workers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bridge.contract.errors import ConfigError
from dashboard.config import VARIABLES, DashboardSettings, ensure_login_token

CONFIG_FILE = Path(__file__).with_name("gunicorn.conf.py")
WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]")  # noqa: S104 - only compared against, never bound


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def login_url(host: str, port: int, token: str | None = None) -> str:
    """The address a person opens; a wildcard bind is shown as localhost."""
    shown = "localhost" if host in WILDCARD_HOSTS else host
    query = f"?token={token}" if token else ""
    return f"http://{bind_address(shown, port)}/{query}"


def gunicorn_argv(settings: DashboardSettings, extra: Sequence[str] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(CONFIG_FILE),
        "--worker-class",
        "gevent",
        "--workers",
        str(settings.workers),
        "--bind",
        bind_address(settings.host, settings.port),
        # Gunicorn 27 opens ~/.gunicorn/gunicorn.ctl by default; two dashboards would collide.
        "--no-control-socket",
        *extra,
        "dashboard.wsgi:app",
    ]


def redis_refusal_before_start(settings: DashboardSettings) -> str | None:
    """Why this Redis will not do (too old), checked once before any worker starts.

    Importing redis-py here is safe: this process becomes Gunicorn by exec, which starts afresh.
    Each worker checks again at boot and after every reconnect (gunicorn.conf.py). A Redis that
    is not up yet is no reason to refuse: the dashboard shows it as down until it comes.
    """
    import redis

    from bridge.contract import redis_topology
    from bridge.contract.server_versions import RedisVersionCheck

    check = RedisVersionCheck("mqtt-dashboard")
    client = redis_topology.connect(settings.redis, check, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError:
        pass
    finally:
        client.close()
    return check.refusal


def _parser() -> argparse.ArgumentParser:
    lines = [f"  {v.name:<30} {v.help}" + (f" (default {v.default})" if v.default else "") for v in VARIABLES]
    return argparse.ArgumentParser(
        prog="mqtt-dashboard",
        description="Run the MQTT dashboard under Gunicorn with gevent workers. "
        "Further arguments are passed to Gunicorn.",
        epilog="Users and roles: mqtt-dashboard users --help\n\n"
        "Environment variables (plus the bridge's REDIS_*):\n" + "\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ if environ is None else environ)
    if argv[:1] == ["users"]:
        # Imported here: the users command talks to Redis and never starts Gunicorn.
        from dashboard.users_cli import main as users_main

        return users_main(argv[1:], environ)
    _, extra = _parser().parse_known_args(argv)
    try:
        settings = DashboardSettings.from_env(environ)
        token = ensure_login_token(environ)  # once, here: every worker inherits the same one
    except ConfigError as exc:
        print(f"mqtt-dashboard: {exc}", file=sys.stderr)
        return 2
    refusal = redis_refusal_before_start(settings)
    if refusal:
        print(f"mqtt-dashboard: {refusal}", file=sys.stderr)
        return 1
    if token is not None:
        # The one place a secret is ever shown: the person starting the dashboard needs it.
        print(f"mqtt-dashboard: log in at {login_url(settings.host, settings.port, token)}", flush=True)
    elif settings.auth_enabled:
        secret = "DASHBOARD_PASSWORD" if settings.password else "DASHBOARD_TOKEN"
        print(
            f"mqtt-dashboard: open {login_url(settings.host, settings.port)} and log in with {secret}",
            flush=True,
        )
    else:
        print(
            f"mqtt-dashboard: WARNING: DASHBOARD_AUTH is off; open {login_url(settings.host, settings.port)}",
            flush=True,
        )
    sys.stderr.flush()
    argv_out = gunicorn_argv(settings, extra)
    os.execve(argv_out[0], argv_out, environ)  # noqa: S606 - replace ourselves: signals go straight to Gunicorn
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
