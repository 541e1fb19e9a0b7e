"""The brokers this dashboard serves: found in the bridges' registry, remembered, summarised.

Every bridge refreshes its entry in the registry (``KEY_BROKER_REGISTRY``, a sorted set of name ->
last heartbeat) with its heartbeat. A bridge is online while its own heartbeat key lives (it
expires after HEARTBEAT_TTL); its registry entry stays, so a bridge that died is still listed, as
offline, until an operator removes it (``ZREM mqtt:brokers <name>``, docs/operations.md).
"""

from __future__ import annotations

import time
from typing import Any

import redis

from bridge.contract.protocol import KEY_BROKER_REGISTRY, UNNAMED_BROKER, bridge_name_problem, names_for
from dashboard.store import Store


def valid_broker(name: str) -> bool:
    """A name the dashboard's URLs and sockets accept: a BRIDGE_NAME, or ``default``."""
    return name == UNNAMED_BROKER or bridge_name_problem(name) is None


class Brokers:
    def __init__(self, client: redis.Redis, expected: tuple[str, ...] | None = None):
        self.redis = client
        self.configured = expected  # DASHBOARD_BROKERS

    def registered(self) -> dict[str, float]:
        """Every bridge that ever registered: name -> Unix time of its last heartbeat."""
        raw: Any = self.redis.zrange(KEY_BROKER_REGISTRY, 0, -1, withscores=True)
        return {str(name): float(score) for name, score in raw if valid_broker(str(name))}

    def expected(self) -> list[str]:
        """The brokers /health requires online: DASHBOARD_BROKERS, else every registered bridge,
        else the unnamed one (as before there were names)."""
        if self.configured is not None:
            return list(self.configured)
        return _ordered(self.registered()) or [UNNAMED_BROKER]

    def known(self) -> list[str]:
        """Every broker to offer in the switcher: registered or expected."""
        names = set(self.registered()) | set(self.expected())
        return _ordered(names)

    def is_known(self, name: str) -> bool:
        if self.configured is not None and name in self.configured:
            return True
        return name == UNNAMED_BROKER or self.redis.zscore(KEY_BROKER_REGISTRY, name) is not None

    def store(self, name: str) -> Store:
        return Store(self.redis, names_for(name))

    def health(self, name: str, now: float | None = None) -> dict[str, Any]:
        """One broker's bridge and connection state (the detailed form; /health trims it)."""
        now = time.time() if now is None else now
        store = self.store(name)
        latest = store.all_latest()
        status = latest["status"] or {}
        connected = status.get("connected")
        bridge = store.bridge_health(now)  # with a bridge group's members, when it is one
        return {
            "name": name,
            "bridge": bridge,
            "broker": {
                "connected": connected if isinstance(connected, bool) else None,
                "broker": status.get("broker"),
            },
            "healthy": bridge["online"] and connected is True,
            "latest": latest,
        }

    def overview(self, now: float | None = None) -> list[dict[str, Any]]:
        """The "all brokers" page: each broker's state, message rate and clients at a glance."""
        now = time.time() if now is None else now
        registered = self.registered()
        expected = set(self.expected())
        rows = []
        for name in self.known():
            state = self.health(name, now)
            stats = (state["latest"]["stats"] or {}).get("data") or {}
            rates: dict[str, Any] = stats["rates"] if isinstance(stats.get("rates"), dict) else {}
            rows.append(
                {
                    "name": name,
                    "online": state["bridge"]["online"],
                    "connected": state["broker"]["connected"],
                    "broker": state["broker"]["broker"],
                    "expected": name in expected,
                    "last_seen": registered.get(name),
                    "clients_connected": stats.get("clients_connected"),
                    "messages_per_s": _number(rates.get("messages_received_per_s")),
                    "forwarded": (state["bridge"]["counters"] or {}).get("forwarded"),
                }
            )
        return rows


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _ordered(names: Any) -> list[str]:
    """The unnamed broker first, then the others by name."""
    return sorted(names, key=lambda n: (n != UNNAMED_BROKER, n))
