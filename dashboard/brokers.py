"""The brokers this dashboard serves: found in the bridges' registry, remembered, summarised.

Every bridge refreshes its entry in the registry (``KEY_BROKER_REGISTRY``, a sorted set of name ->
last heartbeat) with its heartbeat. A bridge is online while its own heartbeat key lives (it
expires after HEARTBEAT_TTL); its registry entry stays, so a bridge that died is still listed, as
offline, until an operator removes it (``ZREM mqtt:brokers <name>``, docs/operations.md).

One broker's damaged keys (a heartbeat that is not JSON, a key of the wrong kind) make that broker
"unreadable" with a reason; they never turn /health or the overview into an error for every broker.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from bridge.contract.protocol import KEY_BROKER_REGISTRY, UNNAMED_BROKER, bridge_name_problem, names_for
from bridge.contract.redis_values import REJECTED, count, unix_time
from dashboard.store import Store, bridge_health

logger = logging.getLogger(__name__)


def valid_broker(name: str) -> bool:
    """A name the dashboard's URLs and sockets accept: a BRIDGE_NAME, or ``default``."""
    return name == UNNAMED_BROKER or bridge_name_problem(name) is None


class Brokers:
    def __init__(self, client: redis.Redis, expected: tuple[str, ...] | None = None):
        self.redis = client
        self.configured = expected  # DASHBOARD_BROKERS

    def registered(self) -> dict[str, float | None]:
        """Every bridge that ever registered: name -> Unix time of its last heartbeat (None when
        the registry holds no usable time for it)."""
        try:
            raw: Any = self.redis.zrange(KEY_BROKER_REGISTRY, 0, -1, withscores=True)
        except redis.ResponseError:  # the registry key is of another kind: nobody is registered
            REJECTED.report(KEY_BROKER_REGISTRY, "holds something other than a sorted set")
            return {}
        return {str(name): unix_time(score) for name, score in raw if valid_broker(str(name))}

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
        try:
            return name == UNNAMED_BROKER or self.redis.zscore(KEY_BROKER_REGISTRY, name) is not None
        except redis.ResponseError:
            return False

    def store(self, name: str) -> Store:
        return Store(self.redis, names_for(name))

    def health(self, name: str) -> dict[str, Any]:
        """One broker's bridge and connection state (the detailed form; /health trims it).

        ``healthy`` also needs no loss at the broker: mosquitto drops messages for a subscriber
        whose queue is full (the bridge, when it falls behind) and says so only in its
        ``publish_dropped`` counter, which the bridge's own ``dropped`` cannot see."""
        store = self.store(name)
        try:
            latest = store.all_latest()
            bridge = store.bridge_health()  # with a bridge group's members, when it is one
        except redis.ResponseError as exc:  # a damaged key this code did not foresee: that broker only
            logger.warning("broker %s: its keys in Redis cannot be read (%s)", name, exc)
            latest = dict.fromkeys(("status", "stats", "clients", "topics"))
            bridge = bridge_health(None, None, problem="its keys in Redis cannot be read")
        status = latest["status"] or {}
        connected = status.get("connected")
        loss = broker_loss(latest["stats"])
        return {
            "name": name,
            "bridge": bridge,
            "broker": {
                "connected": connected if isinstance(connected, bool) else None,
                "broker": status.get("broker") if isinstance(status.get("broker"), str) else None,
            },
            "loss": loss,
            "healthy": bridge["online"] and connected is True and not loss["dropping"],
            "latest": latest,
        }

    def overview(self) -> list[dict[str, Any]]:
        """The "all brokers" page: each broker's state, message rate and clients at a glance."""
        registered = self.registered()
        expected = set(self.expected())
        rows = []
        for name in self.known():
            state = self.health(name)
            stats = _stats_data(state["latest"]["stats"])
            found = stats.get("rates")
            rates: dict[str, Any] = found if isinstance(found, dict) else {}
            rows.append(
                {
                    "name": name,
                    "online": state["bridge"]["online"],
                    "problem": state["bridge"].get("problem"),
                    "connected": state["broker"]["connected"],
                    "broker": state["broker"]["broker"],
                    "expected": name in expected,
                    "last_seen": registered.get(name),
                    "clients_connected": count(stats.get("clients_connected")),
                    "messages_per_s": _number(rates.get("messages_received_per_s")),
                    "forwarded": state["bridge"]["counters"].get("forwarded"),
                    "dropped_per_s": state["loss"]["per_s"],
                    "dropped_last_minute": state["loss"]["last_minute"],
                }
            )
        return rows


def broker_loss(stats: dict[str, Any] | None) -> dict[str, Any]:
    """What mosquitto dropped, from the bridge's stats snapshot: ``per_s`` now, ``last_minute``
    (the rise of ``publish_dropped`` over the last minute) and whether it is ``dropping``."""
    data = _stats_data(stats)
    found = data.get("rates")
    rates: dict[str, Any] = found if isinstance(found, dict) else {}
    per_s = _number(rates.get("publish_dropped_per_s"))
    last_minute = count(data.get("publish_dropped_recent"))
    return {
        "dropping": bool(per_s) or bool(last_minute),
        "per_s": per_s,
        "last_minute": last_minute,
        "total": count(data.get("publish_dropped")),
    }


def _stats_data(stats: dict[str, Any] | None) -> dict[str, Any]:
    data = (stats or {}).get("data")
    return data if isinstance(data, dict) else {}


def _number(value: Any) -> float | None:
    """A finite number, for a JSON answer (Infinity is not JSON, and breaks a browser's parse)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if abs(value) < 1e15 else None  # also refuses NaN and a huge integer


def _ordered(names: Any) -> list[str]:
    """The unnamed broker first, then the others by name."""
    return sorted(names, key=lambda n: (n != UNNAMED_BROKER, n))
