"""The dashboard: a Flask + Flask-SocketIO app that relays the bridge's Redis data to browsers.

``create_app(settings=None)`` builds one app; Gunicorn runs one per worker (``dashboard.wsgi``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from dashboard.config import DashboardSettings

__all__ = ["create_app"]


def create_app(settings: DashboardSettings | None = None, **options: Any) -> Flask:
    """Build the dashboard app (see ``dashboard.app.create_app`` for the options).

    Imported lazily: the Gunicorn master and ``mqtt-dashboard`` import ``dashboard.config``
    before forking, and must not pull in Flask or redis-py ahead of gevent's monkey-patching
    in the workers.
    """
    from dashboard.app import create_app as build

    return build(settings, **options)
