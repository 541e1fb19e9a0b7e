"""The Tenants API: tenant operations become cmd_dynsec commands, carried out here by the bridge's
own command code (CommandProcessor + DynsecClient) over fakeredis, against an in-memory plugin."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.contract import protocol
from bridge.contract.errors import ConfigError
from bridge.contract.secret_box import NO_KEY, SecretBox, generate_key
from bridge.control.commands import CommandListener, CommandProcessor
from bridge.control.dynsec import DynsecClient
from bridge.ingest.counters import Counters
from bridge.ingest.redis_sink import RedisSink
from bridge.ingest.subscriptions import SubscriptionSet
from dashboard.config import DashboardSettings
from tests.unit.dashboard.fakes import BEARER, ORIGIN
from tests.unit.dynsec_fake import FakeDynsecBroker

KEY = generate_key()
HEADERS = {**BEARER, "Origin": ORIGIN}


@pytest.fixture
def broker() -> FakeDynsecBroker:
    return FakeDynsecBroker()


@pytest.fixture
def real_bridge(redis_server: fakeredis.FakeServer, broker: FakeDynsecBroker) -> Iterator[CommandListener]:
    """The bridge's command thread with cmd_dynsec registered, as bridge/service.py wires it."""
    client = fakeredis.FakeRedis(server=redis_server)
    dynsec = DynsecClient(broker, SecretBox([KEY]), timeout=1.0)
    broker.deliver = dynsec.on_control
    processor = CommandProcessor(broker, SubscriptionSet(("#",), 1), RedisSink(client, 100), Counters())  # type: ignore[arg-type]
    processor.register(protocol.CMD_DYNSEC, dynsec.handle, background=True)
    stop = threading.Event()
    listener = CommandListener(client, processor, stop)
    listener.start()
    listener.ready.wait(5)
    yield listener
    stop.set()
    listener.join(5)


@pytest.fixture
def tenant_app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(CONFIG_SECRET_KEY=KEY, DASHBOARD_TENANT_PREFIX="org")


@pytest.fixture
def api(tenant_app: Flask, real_bridge: CommandListener) -> FlaskClient:
    return tenant_app.test_client()


def test_creating_a_tenant_makes_a_role_confined_to_its_prefix_and_a_group(
    api: FlaskClient, broker: FakeDynsecBroker
) -> None:
    created = api.post("/api/tenants", json={"name": "acme"}, headers=HEADERS)

    assert created.status_code == 201, created.json
    assert created.json == {"name": "acme", "topic": "org/acme/#", "accounts": []}
    acls = broker.roles["tenant:acme"]["acls"]
    assert {(a["acltype"], a["topic"], a["allow"]) for a in acls} == {
        ("publishClientSend", "org/acme/#", True),
        ("publishClientReceive", "org/acme/#", True),
        ("subscribePattern", "org/acme/#", True),
        ("unsubscribePattern", "org/acme/#", True),
    }
    assert broker.groups["tenant:acme"]["roles"] == [{"rolename": "tenant:acme"}]


def test_an_account_gets_a_generated_password_shown_once_and_sealed_on_redis(
    api: FlaskClient, broker: FakeDynsecBroker, redis_client: fakeredis.FakeRedis
) -> None:
    api.post("/api/tenants", json={"name": "acme"}, headers=HEADERS)
    monitor = redis_client.pubsub()
    monitor.subscribe(protocol.CHANNEL_COMMANDS)

    added = api.post("/api/tenants/acme/accounts", json={"username": "acme-dev1"}, headers=HEADERS)

    assert added.status_code == 201, added.json
    password = added.json["password"]
    assert len(password) >= 24 and added.headers["Cache-Control"] == "no-store"
    assert broker.clients["acme-dev1"]["password"] == password
    assert broker.clients["acme-dev1"]["groups"] == [{"groupname": "tenant:acme"}]
    on_redis = [
        m["data"] for m in iter(lambda: monitor.get_message(timeout=0.1), None) if m["type"] == "message"
    ]
    assert on_redis and all(password not in text for text in on_redis)
    assert any('"sealed"' in text for text in on_redis)
    assert all(password not in str(redis_client.dump(k)) for k in redis_client.keys("*"))
    monitor.close()

    listed = api.get("/api/tenants", headers=HEADERS)
    assert listed.json == {
        "prefix": "org",
        "tenants": [
            {
                "name": "acme",
                "topic": "org/acme/#",
                "accounts": [{"username": "acme-dev1", "disabled": False}],
            }
        ],
    }
    assert password not in listed.get_data(as_text=True)


def test_accounts_are_disabled_enabled_and_deleted(api: FlaskClient, broker: FakeDynsecBroker) -> None:
    api.post("/api/tenants", json={"name": "acme"}, headers=HEADERS)
    api.post("/api/tenants/acme/accounts", json={"username": "dev1"}, headers=HEADERS)

    assert api.post("/api/tenants/acme/accounts/dev1/disable", headers=HEADERS).status_code == 200
    assert broker.clients["dev1"]["disabled"] is True
    listed = api.get("/api/tenants", headers=HEADERS).json
    assert listed["tenants"][0]["accounts"] == [{"username": "dev1", "disabled": True}]
    assert api.post("/api/tenants/acme/accounts/dev1/enable", headers=HEADERS).status_code == 200
    assert "disabled" not in broker.clients["dev1"]
    assert api.delete("/api/tenants/acme/accounts/dev1", headers=HEADERS).status_code == 200
    assert broker.clients == {}


def test_deleting_a_tenant_deletes_its_accounts_then_group_then_role(
    api: FlaskClient, broker: FakeDynsecBroker
) -> None:
    api.post("/api/tenants", json={"name": "acme"}, headers=HEADERS)
    api.post("/api/tenants", json={"name": "other"}, headers=HEADERS)
    api.post("/api/tenants/acme/accounts", json={"username": "dev1"}, headers=HEADERS)
    api.post("/api/tenants/other/accounts", json={"username": "keep"}, headers=HEADERS)

    deleted = api.delete("/api/tenants/acme", headers=HEADERS)

    assert deleted.status_code == 200 and deleted.json == {"deleted": "acme"}
    assert set(broker.clients) == {"keep"} and set(broker.groups) == {"tenant:other"}
    assert set(broker.roles) == {"tenant:other"}
    sent = [json.loads(p)["commands"][0]["command"] for p in broker.requests[-4:]]
    assert sent == ["listClients", "deleteClient", "deleteGroup", "deleteRole"]


def test_the_broker_refusal_is_shown_in_its_own_words(api: FlaskClient, broker: FakeDynsecBroker) -> None:
    api.post("/api/tenants", json={"name": "acme"}, headers=HEADERS)
    api.post("/api/tenants/acme/accounts", json={"username": "dev1"}, headers=HEADERS)

    again = api.post("/api/tenants", json={"name": "acme"}, headers=HEADERS)
    taken = api.post("/api/tenants/acme/accounts", json={"username": "dev1"}, headers=HEADERS)
    no_tenant = api.post("/api/tenants/ghost/accounts", json={"username": "dev9"}, headers=HEADERS)

    assert (again.status_code, again.json["error"]) == (409, "tenant 'acme' exists already")
    assert taken.status_code == 400
    assert taken.json["error"] == "the broker refused createClient: Client already exists"
    assert no_tenant.status_code == 400
    assert no_tenant.json["error"] == "the broker refused addGroupClient: Group not found"
    assert "dev9" not in broker.clients  # the half-made account was removed again


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/api/tenants", {"name": "Acme Corp"}, "a tenant name is 1-63 lower-case"),
        ("/api/tenants", {"name": "a/#"}, "a tenant name is 1-63 lower-case"),
        ("/api/tenants", [], "the body must be a JSON object"),
        ("/api/tenants/acme/accounts", {"username": "bad name"}, "an account name is 1-128"),
    ],
)
def test_bad_names_are_refused_before_any_command(
    api: FlaskClient, broker: FakeDynsecBroker, path: str, body: Any, words: str
) -> None:
    answer = api.post(path, json=body, headers=HEADERS)

    assert answer.status_code == 400 and words in answer.json["error"]
    assert broker.requests == []


def test_without_config_secret_key_no_account_is_made(
    make_app: Callable[..., Flask], real_bridge: CommandListener, broker: FakeDynsecBroker
) -> None:
    answer = (
        make_app().test_client().post("/api/tenants/acme/accounts", json={"username": "d"}, headers=HEADERS)
    )

    assert answer.status_code == 400 and answer.json["error"] == NO_KEY
    assert broker.requests == []


def test_a_missing_bridge_is_a_504_in_words(tenant_app: Flask) -> None:
    answer = tenant_app.test_client().get("/api/tenants", headers=HEADERS)

    assert answer.status_code == 504 and "no bridge is listening" in answer.json["error"]


def test_the_tenants_api_needs_a_login(api: FlaskClient) -> None:
    assert api.get("/api/tenants").status_code == 401


@pytest.mark.parametrize("prefix", ["", "a/+", "#", "$SYS", "/lead", "trail/", "a b"])
def test_a_tenant_prefix_that_is_not_plain_topic_levels_stops_the_dashboard(prefix: str) -> None:
    env = {"DASHBOARD_TOKEN": "t", "DASHBOARD_TENANT_PREFIX": prefix}
    if prefix == "":
        assert DashboardSettings.from_env(env).tenant_prefix == "tenants"  # unset: the default
        return
    with pytest.raises(ConfigError, match="DASHBOARD_TENANT_PREFIX must be one or more topic levels"):
        DashboardSettings.from_env(env)


def test_a_nested_tenant_prefix_is_accepted() -> None:
    settings = DashboardSettings.from_env({"DASHBOARD_TOKEN": "t", "DASHBOARD_TENANT_PREFIX": "org/eu-1"})
    assert settings.tenant_prefix == "org/eu-1"


# --- issue 21: defects 1 and 17 --------------------------------------------------------------


def test_an_account_outside_the_tenant_is_refused_and_left_as_it_is(
    api: FlaskClient, broker: FakeDynsecBroker
) -> None:
    api.post("/api/tenants", json={"name": "acme"}, headers=HEADERS)
    api.post("/api/tenants", json={"name": "other"}, headers=HEADERS)
    api.post("/api/tenants/other/accounts", json={"username": "theirs"}, headers=HEADERS)
    broker.clients["mqtt-bridge"] = {"username": "mqtt-bridge", "password": "x", "roles": [], "groups": []}
    before = json.dumps(broker.clients, sort_keys=True)

    answers = [
        api.post("/api/tenants/acme/accounts/theirs/disable", headers=HEADERS),
        api.delete("/api/tenants/acme/accounts/theirs", headers=HEADERS),
        api.post("/api/tenants/acme/accounts/mqtt-bridge/disable", headers=HEADERS),
        api.delete("/api/tenants/acme/accounts/mqtt-bridge", headers=HEADERS),
        api.post("/api/tenants/acme/accounts/nobody/enable", headers=HEADERS),
    ]

    for answer in answers:
        assert answer.status_code == 404, answer.json
        assert answer.json["error"].endswith("in tenant 'acme'; nothing was changed")
    assert json.dumps(broker.clients, sort_keys=True) == before


def test_creating_a_tenant_finishes_one_half_made_and_deleting_takes_what_is_there(
    api: FlaskClient, broker: FakeDynsecBroker
) -> None:
    """A bridge died between a tenant's role and its group: the role is there, the group is not."""
    broker.roles["tenant:half"] = {"rolename": "tenant:half", "acls": []}
    broker.roles["tenant:gone"] = {"rolename": "tenant:gone", "acls": []}

    finished = api.post("/api/tenants", json={"name": "half"}, headers=HEADERS)
    deleted = api.delete("/api/tenants/gone", headers=HEADERS)

    assert finished.status_code == 201 and broker.groups["tenant:half"]["roles"] == [
        {"rolename": "tenant:half"}
    ]
    assert deleted.status_code == 200 and "tenant:gone" not in broker.roles
    assert api.delete("/api/tenants/gone", headers=HEADERS).status_code == 404
    assert api.post("/api/tenants", json={"name": "half"}, headers=HEADERS).status_code == 409


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/tenants", {"name": "acme\n"}),
        ("post", "/api/tenants/acme/accounts", {"username": "dev1\n"}),
        ("post", "/api/tenants/acme%0A/accounts", {"username": "dev1"}),
        ("delete", "/api/tenants/acme%0A", None),
        ("post", "/api/tenants/acme/accounts/dev1%0A/disable", None),
    ],
)
def test_names_with_a_trailing_newline_are_refused(
    api: FlaskClient, broker: FakeDynsecBroker, method: str, path: str, body: Any
) -> None:
    answer = getattr(api, method)(path, json=body, headers=HEADERS)

    assert answer.status_code == 400 and "name is 1-" in answer.json["error"]
    assert broker.requests == []


@pytest.mark.parametrize("path", ["/api/tenants", "/api/tenants/acme/accounts"])
def test_deeply_nested_json_is_a_400_in_words(api: FlaskClient, broker: FakeDynsecBroker, path: str) -> None:
    nested = "[" * 100_000 + "]" * 100_000

    answer = api.post(path, data=nested, headers={**HEADERS, "Content-Type": "application/json"})

    assert answer.status_code == 400 and answer.json["error"] == "the body must be JSON"
    assert broker.requests == []
