"""Gunicorn's entry point, ``dashboard.wsgi:app``: one app per worker process, built after the fork.

An entry point, so it is where the workers' logging is configured.
"""

from __future__ import annotations

import logging
import sys

from dashboard import create_app
from dashboard.config import DashboardSettings

settings = DashboardSettings.from_env()
logging.basicConfig(
    stream=sys.stderr,
    level=settings.log_level,
    format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
)
app = create_app(settings)
