"""What a tenant user is shown of the bridge's data: the same messages, cut down to the tenant.

Pure functions over the contract's JSON, shared by the REST routes, the socket's snapshot and the
relay's events, so all three cut the same way. A tenant user sees their topics, the connected
clients that log in with their tenant's accounts, the broker's connected flag and whether the
bridge is alive; never the broker's ``$SYS`` totals, the bridge's counters or another tenant's
anything. The overview's numbers for a tenant are summed from their own topics (``summary``).
"""

from __future__ import annotations

from typing import Any

from dashboard.policy import TopicScope

ACCOUNTS_UNKNOWN = (
    "the tenant's accounts could not be read from the broker's dynamic security just now, so no "
    "client is shown"
)


def scoped_topics(message: dict[str, Any], scope: TopicScope) -> dict[str, Any]:
    """A ``topics_update`` with only the tenant's topics, plus their ``summary``."""
    raw = message.get("topics")
    topics = (
        [t for t in raw if isinstance(t, dict) and scope.allows_topic(t.get("topic"))]
        if isinstance(raw, list)
        else []
    )
    return {**message, "topics": topics, "summary": summary(topics)}


def summary(topics: list[dict[str, Any]]) -> dict[str, Any]:
    """The tenant's counts for the overview: topics, messages the bridge counted on them, retained."""
    return {
        "topics": len(topics),
        "messages": sum(t["messages"] for t in topics if _count(t.get("messages"))),
        "retained": sum(1 for t in topics if t.get("retained") is True),
        "last_seen": max((t["last_seen"] for t in topics if _number(t.get("last_seen"))), default=None),
    }


def scoped_clients(message: dict[str, Any], accounts: set[str] | None) -> dict[str, Any]:
    """A ``clients_update`` with only the clients logged in with one of ``accounts`` (None: the
    accounts are not known, so none is shown and ``error`` says why)."""
    raw = message.get("clients")
    clients = raw if isinstance(raw, list) else []
    if accounts is None:
        return {**message, "clients": [], "error": ACCOUNTS_UNKNOWN}
    kept = [c for c in clients if isinstance(c, dict) and c.get("username") in accounts]
    return {**message, "clients": kept}


def scoped_subscriptions(
    subscriptions: list[dict[str, Any]], scope: TopicScope | None
) -> list[dict[str, Any]]:
    """The bridge's subscriptions a tenant may see: those inside the tenant's topics."""
    if scope is None:
        return subscriptions
    return [s for s in subscriptions if isinstance(s.get("filter"), str) and scope.contains(s["filter"])]


def scoped_health(health: dict[str, Any]) -> dict[str, Any]:
    """``bridge_health`` without the bridge's pid, version, counters or members (broker-wide)."""
    return {key: health.get(key) for key in ("online", "heartbeat_age", "redis") if key in health}


def scoped_status(status: dict[str, Any] | None) -> dict[str, Any] | None:
    """``status_change`` as it is: whether the broker is connected is the tenant's business too."""
    return status


def scoped_event(
    event: str, message: dict[str, Any], scope: TopicScope, accounts: set[str] | None
) -> dict[str, Any] | None:
    """The relay's event for a tenant's sockets, or None when they get none of it."""
    if event == "topics_update":
        return scoped_topics(message, scope)
    if event == "clients_update":
        return scoped_clients(message, accounts)
    if event == "bridge_health":
        return scoped_health(message)
    if event == "broker_status":
        return scoped_status(message)
    return None  # broker_stats ($SYS totals), and anything added later until it is thought about


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
