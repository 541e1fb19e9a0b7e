"""Which broker a request is for: ``/api/brokers/<name>/…`` names it, every older route means
the unnamed broker (``default``), so existing scripts keep working.

The API blueprints are registered twice (app.py): once under ``/api`` and once under
``/api/brokers/<broker>``. ``pick_broker`` takes ``broker`` out of the URL's values before the
view runs, so the views themselves take no broker argument and ask ``current_store()`` etc.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, g

from bridge.contract.protocol import UNNAMED_BROKER, Names, names_for
from dashboard.brokers import valid_broker
from dashboard.extensions import services
from dashboard.store import Store

BROKER_PREFIX = "/api/brokers/<broker>"


def current_broker() -> str:
    broker: str = g.get("broker", UNNAMED_BROKER)
    return broker


def current_names() -> Names:
    return names_for(current_broker())


def current_store() -> Store:
    broker = current_broker()
    found = services()
    return found.store if broker == UNNAMED_BROKER else found.brokers.store(broker)


def register_broker_context(app: Flask) -> None:
    @app.url_value_preprocessor
    def pick_broker(_endpoint: str | None, values: dict[str, Any] | None) -> None:
        if values is None or "broker" not in values:
            return
        broker = values.pop("broker")
        if not valid_broker(broker):
            abort(404)
        if not services().brokers.is_known(broker):
            # A name no bridge ever registered (and DASHBOARD_BROKERS does not list): most
            # likely a typo, and an empty answer would look like a broker with nothing on it.
            abort(404)
        g.broker = broker
