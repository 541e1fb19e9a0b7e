"""Who may do what: the roles, one rule for every route and Socket.IO event, and a tenant user's
topics. The rules are data here; dashboard/access.py applies them to every request and event.

- ``viewer`` reads every page and export; ``operator`` also publishes, subscribes, pauses and
  resumes, and clears retained messages; ``admin`` also changes the broker connection, tenants and
  users, and reads the audit trail. ``DASHBOARD_TOKEN``/``DASHBOARD_PASSWORD`` log in as an admin.
- A user bound to a tenant is limited to ``<DASHBOARD_TENANT_PREFIX>/<tenant>/#`` on one broker:
  a rule says whether its route is the same for them (``SAME``), narrows what it reads or does to
  that filter (``SCOPED``: the view asks ``topic_scope()``), or is closed to them (``CLOSED``).
- A route or event without a rule is for admins only, and not for tenant users
  (tests/unit/dashboard/test_route_policy.py lists every route, so it fails until one is added).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)  # each may do everything the one before may


class Tenancy(enum.Enum):
    SAME = "same"  # nothing tenant-specific in it (the session, the broker's connected flag)
    SCOPED = "scoped"  # the view limits its data or action to the tenant's topics
    CLOSED = "closed"  # broker-wide data or settings: refused to tenant users


@dataclass(frozen=True)
class Rule:
    role: str | None  # None: open to anyone, no login needed
    what: str  # for refusals: "<what> needs the operator role …"
    tenancy: Tenancy = Tenancy.CLOSED
    audit: str | None = None  # the audit trail's action name; every state-changing route has one
    per_broker: bool = True  # False: the dashboard's own (users, audit), not one broker's


def _read(what: str, tenancy: Tenancy = Tenancy.SCOPED) -> Rule:
    return Rule(VIEWER, what, tenancy)


def _open(what: str) -> Rule:
    return Rule(None, what, Tenancy.SAME)


# "METHOD path" -> Rule; per-broker routes (/api/brokers/<broker>/…) share the rule of their /api/…
# twin. GET covers HEAD.
RULES: dict[str, Rule] = {
    # the page, its files, health for probes, the session itself
    "GET /": _open("the page"),
    "GET /<path:filename>": _open("the page's files"),
    "GET /health": _open("the health check"),
    "GET /health/live": _open("the liveness check"),
    "GET /api/session": _open("the session"),
    "POST /api/login": Rule(None, "logging in", Tenancy.SAME, audit="login", per_broker=False),
    "POST /api/logout": Rule(None, "logging out", Tenancy.SAME, audit="logout", per_broker=False),
    "POST /api/session/password": Rule(
        VIEWER, "changing your password", Tenancy.SAME, "password_change", per_broker=False
    ),
    # reading
    "GET /api/health": _read("the health details", Tenancy.CLOSED),
    "GET /api/brokers": Rule(VIEWER, "the broker list", Tenancy.SCOPED, per_broker=False),
    "GET /metrics": Rule(VIEWER, "the dashboard's metrics", per_broker=False),
    "GET /api/broker/status": _read("the broker's status", Tenancy.SAME),
    "GET /api/broker/stats": _read("the broker's statistics", Tenancy.CLOSED),
    "GET /api/broker/stats/history": _read("the broker's statistics", Tenancy.CLOSED),
    "GET /api/clients": _read("the client list"),
    "GET /api/topics": _read("the topic list"),
    "GET /api/messages": _read("the message history"),
    "GET /api/export": _read("the export"),
    "GET /api/subscriptions": _read("the subscriptions"),
    "GET /api/publish/templates": _read("the publish templates"),
    "GET /api/publish/history": _read("the publish history"),
    "GET /api/broker/connection": _read("the broker connection", Tenancy.CLOSED),
    "GET /api/broker/connection/history": _read("the broker connection", Tenancy.CLOSED),
    "GET /api/tenants": _read("the tenant list", Tenancy.CLOSED),
    # operating: publish, subscriptions, retained messages
    "POST /api/publish": Rule(OPERATOR, "publishing", Tenancy.SCOPED, "publish"),
    "POST /api/subscriptions": Rule(OPERATOR, "subscribing", Tenancy.SCOPED, "subscribe"),
    "DELETE /api/subscriptions/<topic_filter:topic_filter>": Rule(
        OPERATOR, "unsubscribing", Tenancy.SCOPED, "unsubscribe"
    ),
    "POST /api/subscriptions/pause": Rule(OPERATOR, "pausing a subscription", Tenancy.SCOPED, "pause"),
    "POST /api/subscriptions/resume": Rule(OPERATOR, "resuming a subscription", Tenancy.SCOPED, "resume"),
    "POST /api/retained/clear": Rule(
        OPERATOR, "clearing retained messages", Tenancy.SCOPED, "clear_retained"
    ),
    "POST /api/publish/templates": Rule(OPERATOR, "saving a template", Tenancy.SCOPED, "template_create"),
    "PUT /api/publish/templates/<template_id>": Rule(
        OPERATOR, "changing a template", Tenancy.SCOPED, "template_update"
    ),
    "DELETE /api/publish/templates/<template_id>": Rule(
        OPERATOR, "deleting a template", Tenancy.SCOPED, "template_delete"
    ),
    "POST /api/publish/templates/<template_id>/run": Rule(
        OPERATOR, "publishing", Tenancy.SCOPED, "template_run"
    ),
    "DELETE /api/publish/history": Rule(
        OPERATOR, "clearing the publish history", Tenancy.CLOSED, "publish_history_clear"
    ),
    # administering: the broker connection, tenants, users, the audit trail
    "POST /api/broker/connection/test": Rule(ADMIN, "testing broker settings", audit="connection_test"),
    "PUT /api/broker/connection": Rule(ADMIN, "changing the broker connection", audit="connection_change"),
    "DELETE /api/broker/connection": Rule(ADMIN, "changing the broker connection", audit="connection_reset"),
    "POST /api/broker/reconnect": Rule(ADMIN, "reconnecting the broker", audit="reconnect"),
    "POST /api/tenants": Rule(ADMIN, "managing tenants", audit="tenant_create"),
    "DELETE /api/tenants/<name>": Rule(ADMIN, "managing tenants", audit="tenant_delete"),
    "POST /api/tenants/<name>/accounts": Rule(ADMIN, "managing tenants", audit="account_create"),
    "POST /api/tenants/<name>/accounts/<username>/<action>": Rule(
        ADMIN, "managing tenants", audit="account_change"
    ),
    "DELETE /api/tenants/<name>/accounts/<username>": Rule(ADMIN, "managing tenants", audit="account_delete"),
    "GET /api/users": Rule(ADMIN, "the user list", per_broker=False),
    "POST /api/users": Rule(ADMIN, "managing users", audit="user_create", per_broker=False),
    "PATCH /api/users/<username>": Rule(ADMIN, "managing users", audit="user_change", per_broker=False),
    "DELETE /api/users/<username>": Rule(ADMIN, "managing users", audit="user_delete", per_broker=False),
    "GET /api/audit": Rule(ADMIN, "the audit trail", per_broker=False),
}

# Socket.IO events (browser -> server). connect and disconnect are the login's own business.
EVENT_RULES: dict[str, Rule] = {
    "connect": _read("the live view"),  # checked by the connect handler itself, once logged in
    "disconnect": _open("disconnecting"),
    "set_filter": _read("the live stream"),
}

# A route or event nobody wrote a rule for: the safe side until someone does.
UNRULED = Rule(ADMIN, "this route (it has no access rule yet)")
BROKER_PREFIX = "/api/brokers/<broker>"


def route_key(method: str, rule: str) -> str:
    """The RULES key of a request: per-broker routes share their /api twin's rule."""
    method = "GET" if method == "HEAD" else method
    if rule.startswith(BROKER_PREFIX + "/"):
        rule = "/api" + rule[len(BROKER_PREFIX) :]
    return f"{method} {rule}"


def rule_for(method: str, rule: str) -> Rule:
    return RULES.get(route_key(method, rule), UNRULED)


@dataclass(frozen=True)
class Principal:
    """Who is asking: a named user, or the bootstrap admin (the token or password)."""

    name: str
    role: str
    tenant: str | None = None
    broker: str | None = None  # None: every broker
    named: bool = True  # False for the bootstrap admin and for DASHBOARD_AUTH=off

    def at_least(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


BOOTSTRAP = Principal("(bootstrap admin)", ADMIN, named=False)
NOBODY_CHECKED = Principal("(auth off)", ADMIN, named=False)


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def decide(principal: Principal | None, rule: Rule, broker: str, prefix: str) -> Refusal | None:
    """None when ``principal`` may use a route or event with ``rule`` on ``broker``; else why not.

    The one check every route and event goes through (dashboard/access.py calls it).
    """
    if rule.role is None:
        return None
    if principal is None:
        return Refusal(401, "not logged in: send Authorization: Bearer <token> or log in first")
    if not principal.at_least(rule.role):
        return Refusal(
            403,
            f"{rule.what} needs the {rule.role} role or higher; {principal.name} is {a_role(principal.role)}",
        )
    if principal.broker is not None and rule.per_broker and broker != principal.broker:
        return Refusal(403, f"{principal.name} may use broker {principal.broker!r} only")
    if principal.tenant is not None and rule.tenancy is Tenancy.CLOSED:
        scope = tenant_filter(prefix, principal.tenant)
        return Refusal(403, f"{rule.what} is not open to tenant users: {principal.name} sees {scope} only")
    return None


def a_role(role: str) -> str:
    """The role with its article: a viewer, an operator, an admin."""
    return ("an " if role[:1] in "aeiou" else "a ") + role


def tenant_filter(prefix: str, tenant: str) -> str:
    return f"{prefix}/{tenant}/#"


class OutOfScope(Exception):
    """A topic or filter outside a tenant user's topics; the message says so (403)."""


@dataclass(frozen=True)
class TopicScope:
    """The topics of one tenant: ``<prefix>/<tenant>`` and everything under it."""

    prefix: str
    tenant: str

    @property
    def filter(self) -> str:
        return tenant_filter(self.prefix, self.tenant)

    @property
    def _levels(self) -> list[str]:
        return [*self.prefix.split("/"), self.tenant]

    def allows_topic(self, topic: object) -> bool:
        if not isinstance(topic, str):
            return False
        levels = self._levels
        return topic.split("/")[: len(levels)] == levels

    def on_path(self, topic: object) -> bool:
        """``topic`` is the tenant's, or one of the levels above it (``tenants``), which a topic
        tree must show to lead there; a tree's other branches are not."""
        if not isinstance(topic, str):
            return False
        levels = topic.split("/")
        return self.allows_topic(topic) or levels == self._levels[: len(levels)]

    def contains(self, topic_filter: str) -> bool:
        """Every topic ``topic_filter`` can match is the tenant's: its first levels are the
        tenant's own, spelled out (a wildcard there could reach another tenant)."""
        return self.allows_topic(topic_filter)

    def narrow(self, topic_filter: str | None) -> str:
        """The filter to use for a read or a subscription: everything (None, "", "#") becomes
        the tenant's filter; a filter inside it stays; anything reaching outside is refused."""
        if topic_filter in (None, "", "#"):
            return self.filter
        assert topic_filter is not None
        if not self.contains(topic_filter):
            raise OutOfScope(
                f"{_shown(topic_filter)} reaches outside your tenant's topics: "
                f"use a filter under {self.filter}"
            )
        return topic_filter

    def check_topic(self, topic: object, doing: str = "publish") -> None:
        """A topic to act on (publish to, clear): the tenant's, or OutOfScope."""
        if not self.allows_topic(topic):
            raise OutOfScope(
                f"{_shown(topic)} is outside your tenant's topics: you can {doing} under {self.filter} only"
            )

    def check_filter(self, topic_filter: object, doing: str) -> None:
        """A filter to act on (subscribe, pause, clear): inside the tenant's topics, or
        OutOfScope; never widened or narrowed behind the user's back."""
        if not isinstance(topic_filter, str) or not self.contains(topic_filter):
            raise OutOfScope(
                f"{_shown(topic_filter)} reaches outside your tenant's topics: you can {doing} "
                f"under {self.filter} only"
            )


def topic_scope(principal: Principal | None, prefix: str) -> TopicScope | None:
    """A tenant user's topics; None for everyone else (no limit)."""
    if principal is None or principal.tenant is None:
        return None
    return TopicScope(prefix, principal.tenant)


def _shown(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")
