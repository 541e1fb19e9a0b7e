"""Every route and Socket.IO event enforces its role on the server (issue 26, point 2).

The walk takes every route from the app's URL map and every event from the registered handlers,
looks each up in tests/unit/dashboard/route_table.py, and tries it as nobody, a viewer, an
operator and an admin: a role below the table's gets 401/403 and changes nothing (no command
reaches the bridge, no key in Redis changes); a role at or above it gets past the check.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fakeredis
import pytest
from flask import Blueprint, Flask, jsonify
from flask.testing import FlaskClient

from bridge.contract.protocol import (
    KEY_AUDIT,
    KEY_DASHBOARD_SESSION_PREFIX,
    KEY_LOGIN_FAILURES_PREFIX,
    KEY_PUBLISH_TEMPLATES,
    KEY_USER_LOGIN_FAILURES_PREFIX,
    dumps,
)
from dashboard import policy
from dashboard.access import guard_events
from dashboard.extensions import services
from dashboard.policy import ADMIN, OPERATOR, VIEWER
from tests.unit.dashboard.fakes import (
    BEARER,
    SAME_ORIGIN,
    FakeBridge,
    add_user,
    log_in_as,
    received,
    socket_client,
)
from tests.unit.dashboard.route_table import (
    BODY,
    EVENTS,
    ROUTES,
    SCOPED,
    app_events,
    app_routes,
    url_for_rule,
)

ROLES = (None, VIEWER, OPERATOR, ADMIN)  # None: not logged in
# Keys a refused request may touch without changing anything: its own session, the trail of the
# refusal, the failure counters.
BOOKKEEPING = (
    KEY_DASHBOARD_SESSION_PREFIX,
    KEY_AUDIT,
    KEY_LOGIN_FAILURES_PREFIX,
    KEY_USER_LOGIN_FAILURES_PREFIX,
)


@dataclass
class World:
    clients: dict[str | None, FlaskClient]  # by role; None: not logged in
    bridge: FakeBridge


@pytest.fixture
def world(app: Flask, redis_client: fakeredis.FakeRedis) -> Iterator[World]:
    """A viewer, an operator and an admin logged in, a user to change, a template to run, and a
    bridge that answers every command."""
    for name, role in (("viewer1", VIEWER), ("operator1", OPERATOR), ("admin1", ADMIN), ("target", VIEWER)):
        add_user(app, name, role)
    template = {"id": "tmpl-sensors", "name": "t", "topic": "sensors/a", "payload": "1", "qos": 0}
    redis_client.hset(KEY_PUBLISH_TEMPLATES, "tmpl-sensors", dumps(template))
    clients: dict[str | None, FlaskClient] = {None: app.test_client()}
    for name, role in (("viewer1", VIEWER), ("operator1", OPERATOR), ("admin1", ADMIN)):
        clients[role] = log_in_as(app, name)
    with FakeBridge(redis_client) as bridge:
        yield World(clients, bridge)


def state(client: fakeredis.FakeRedis) -> dict[str, Any]:
    """Everything in Redis but the bookkeeping, by key."""
    found: dict[str, Any] = {}
    for key in sorted(client.keys("*")):
        if key.startswith(BOOKKEEPING):
            continue
        kind = client.type(key)
        if kind == "string":
            found[key] = client.get(key)
        elif kind == "hash":
            found[key] = client.hgetall(key)
        elif kind == "list":
            found[key] = client.lrange(key, 0, -1)
        elif kind == "stream":
            found[key] = client.xrange(key)
        else:
            found[key] = kind
    return found


def call(client: FlaskClient, key: str, rule: str) -> Any:
    method = key.split(" ", 1)[0]
    kwargs: dict[str, Any] = {"headers": SAME_ORIGIN}
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        kwargs["json"] = BODY
    response = client.open(url_for_rule(rule), method=method, **kwargs)
    response.get_data()  # read it all (a streamed export, a static file) and let it go
    response.close()
    return response


def below(role: str | None) -> list[str | None]:
    return [] if role is None else list(ROLES[: ROLES.index(role)])


def test_the_table_names_every_route_and_event_of_the_app(app: Flask) -> None:
    routes = app_routes(app)
    missing = sorted(set(routes) - set(ROUTES))
    gone = sorted(set(ROUTES) - set(routes))
    assert not missing, f"routes without a line in route_table.ROUTES (and maybe a rule): {missing}"
    assert not gone, f"route_table.ROUTES names routes the app does not have: {gone}"
    assert app_events(app) == set(EVENTS)


@pytest.mark.parametrize("key", sorted(ROUTES))
def test_the_server_rule_is_the_one_in_the_table(key: str) -> None:
    least, tenancy = ROUTES[key]
    rule = policy.RULES.get(key)
    assert rule is not None, f"dashboard/policy.py has no rule for {key}"
    assert (rule.role, rule.tenancy.value) == (least, tenancy)
    method = key.split(" ", 1)[0]
    assert (rule.audit is not None) == (method in ("POST", "PUT", "PATCH", "DELETE")), (
        f"{key}: a state-changing route has an audit action, a read has none"
    )


def test_every_event_handler_is_guarded_by_its_rule(app: Flask) -> None:
    handlers = services(app).socketio.server.handlers["/"]
    for name, (least, tenancy) in EVENTS.items():
        rule = policy.EVENT_RULES[name]
        assert (rule.role, rule.tenancy.value) == (least, tenancy)
        if name not in ("connect", "disconnect"):  # those log in and out themselves
            assert getattr(handlers[name], "policy_guarded", False), name


def test_no_role_below_a_routes_rule_gets_through_or_changes_anything(
    app: Flask, world: World, redis_client: fakeredis.FakeRedis
) -> None:
    tried = 0
    for key, rules in app_routes(app).items():
        least, _ = ROUTES[key]
        for role in below(least):
            for rule in rules:  # /api/... and /api/brokers/<broker>/...
                before = state(redis_client)
                response = call(world.clients[role], key, rule)
                expected = 401 if role is None else 403
                assert response.status_code == expected, (key, rule, role, response.get_json())
                if role is not None:
                    assert f"needs the {least} role" in response.get_json()["error"]
                assert world.bridge.received == [], (key, rule, role, "a command reached the bridge")
                assert state(redis_client) == before, (key, rule, role, "Redis changed")
                tried += 1
    assert tried > 100  # every route below its role, both registrations


def test_every_role_at_or_above_a_routes_rule_gets_past_the_check(app: Flask, world: World) -> None:
    for key, rules in sorted(app_routes(app).items()):
        least, _ = ROUTES[key]
        for role in ROLES[ROLES.index(least) :] if least else ROLES:
            if key.startswith("DELETE /api/users") or key == "POST /api/logout":
                continue  # they end the sessions the rest of the walk uses; checked below
            response = call(world.clients[role], key, rules[0])
            body = response.get_json(silent=True) if response.is_json else None
            error = body.get("error", "") if isinstance(body, dict) else ""
            assert response.status_code not in (401, 403) or "needs the" not in error, (key, role, body)
            if least is not None:  # an open route's 401 is its own answer (a wrong password)
                assert response.status_code != 401, (key, role, body)


def test_an_admin_can_delete_a_user_and_anyone_can_log_out(world: World) -> None:
    assert world.clients[ADMIN].delete("/api/users/target", headers=SAME_ORIGIN).status_code == 200
    for role in (VIEWER, OPERATOR, ADMIN):
        assert world.clients[role].post("/api/logout", headers=SAME_ORIGIN).status_code == 200


def test_a_route_without_a_rule_is_for_admins_only(make_app: Any) -> None:
    """What another branch's new route gets until someone writes its rule."""
    app = make_app()
    extra = Blueprint("extra", __name__)

    @extra.post("/api/something-new")
    def something_new() -> Any:
        return jsonify(done=True)

    app.register_blueprint(extra)
    add_user(app, "v", VIEWER)
    add_user(app, "o", OPERATOR)
    add_user(app, "t", OPERATOR, tenant="acme")

    for name in ("v", "o", "t"):
        response = log_in_as(app, name).post("/api/something-new", headers=SAME_ORIGIN)
        assert response.status_code == 403, name
        assert "no access rule yet" in response.get_json()["error"]
    assert app.test_client().post("/api/something-new", headers=BEARER).get_json() == {"done": True}


def test_an_event_without_a_rule_is_for_admins_only(app: Flask) -> None:
    found = services(app)

    @found.socketio.on("something_new")
    def something_new(_data: Any = None) -> dict[str, Any]:
        return {"ok": True, "done": True}

    guard_events(found)  # as create_app does once every handler is registered
    add_user(app, "v", VIEWER)

    viewer = socket_client(app, log_in_as(app, "v"))
    refused = viewer.emit("something_new", {}, callback=True)
    admin = socket_client(app, auth={"token": "unit-test-token"})

    assert refused["ok"] is False and "no access rule yet" in refused["error"]
    assert admin.emit("something_new", {}, callback=True) == {"ok": True, "done": True}


def test_a_viewer_may_watch_and_filter_the_live_stream(app: Flask) -> None:
    add_user(app, "v", VIEWER)
    viewer = socket_client(app, log_in_as(app, "v"))

    assert viewer.is_connected()
    assert "snapshot" in received(viewer)
    assert viewer.emit("set_filter", {"filter": "sensors/#"}, callback=True) == {"ok": True}


def test_a_scoped_route_is_one_a_tenant_may_use() -> None:
    """Sanity of the table itself: nothing below viewer is scoped, nothing admin is open to tenants."""
    for key, (least, tenancy) in ROUTES.items():
        if least == ADMIN:
            assert tenancy != SCOPED, key
