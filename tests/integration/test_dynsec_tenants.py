"""Tenants on the real broker: mosquitto 2.0.11 with the dynamic security plugin, the real bridge,
and the same dynamic-security commands the dashboard's Tenants page sends (dashboard/tenants.py)."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import redis
from flask.testing import FlaskClient

from bridge.contract import protocol
from bridge.contract.secret_box import SecretBox, account_binding, generate_key, seal_for_command
from dashboard import create_app, tenants
from dashboard.commands import build_args_command, build_command, round_trip
from dashboard.config import DashboardSettings
from tests.helpers import (
    DYNSEC_BRIDGE_PASSWORD,
    DYNSEC_BRIDGE_USER,
    DYNSEC_PLUGIN,
    MOSQUITTO_DYNSEC_CONF,
    REPO,
    BridgeProcess,
    DynsecMosquitto,
    MqttRecorder,
    Process,
    ShippedMosquitto,
    env_with,
    start_redis,
    wait_for,
)

pytestmark = pytest.mark.integration

PREFIX = "tenants"
KEY = generate_key()


@pytest.fixture
def dynsec_broker(tmp_path: Path) -> Iterator[DynsecMosquitto]:
    proc = DynsecMosquitto(tmp_path)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def dynsec_bridge(
    tmp_path: Path, dynsec_broker: DynsecMosquitto, redis_server: Process
) -> Iterator[BridgeProcess]:
    bridge = BridgeProcess(
        tmp_path,
        dynsec_broker.port,
        redis_server.port,
        MQTT_USERNAME=DYNSEC_BRIDGE_USER,
        MQTT_PASSWORD=DYNSEC_BRIDGE_PASSWORD,
        CONFIG_SECRET_KEY=KEY,
    )
    bridge.start()
    yield bridge
    bridge.kill()


@pytest.fixture
def text_redis(redis_server: Process) -> redis.Redis:
    return redis.Redis(port=redis_server.port, socket_timeout=5, decode_responses=True)


def dynsec(client: redis.Redis, request: dict[str, Any]) -> dict[str, Any]:
    """One cmd_dynsec through Redis and the bridge, as the dashboard sends it."""
    return round_trip(client, build_args_command(protocol.CMD_DYNSEC, {"dynsec": request}), 10.0)


def dynsec_ok(client: redis.Redis, request: dict[str, Any]) -> dict[str, Any]:
    answer = dynsec(client, request)
    assert answer["ok"] is True, answer
    return answer


class Device:
    """A tenant's account connected over MQTT 5, recording messages, SUBACKs and PUBACKs."""

    def __init__(self, port: int, username: str, password: str):
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(username, password)
        self.port = port
        self.connack: Any = None
        self.connected = threading.Event()
        self.dropped = threading.Event()
        self.messages: list[tuple[str, bytes]] = []
        self.subacks: dict[int, list[Any]] = {}
        self.pubacks: dict[int, Any] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, f, rc, p: self.dropped.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subacks.__setitem__(mid, list(codes))
        self.client.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connack = rc
        if not rc.is_failure:
            self.connected.set()

    def start(self) -> Device:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        wait_for(lambda: self.connack is not None, 10, what="a CONNACK")
        return self

    def subscribe(self, topic_filter: str) -> Any:
        _, mid = self.client.subscribe(topic_filter, qos=1)
        return wait_for(lambda: self.subacks.get(mid), 10, what=f"SUBACK for {topic_filter}")[0]

    def publish(self, topic: str, payload: bytes) -> Any:
        info = self.client.publish(topic, payload, qos=1)
        return wait_for(lambda: self.pubacks.get(info.mid), 10, what=f"PUBACK for {topic}")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.client.on_connect = self.client.on_disconnect = self.client.on_message = None
        self.client.on_subscribe = self.client.on_publish = None


def history_topics(r: redis.Redis) -> list[str]:
    return [json.loads(fields["data"])["topic"] for _, fields in r.xrange(protocol.KEY_HISTORY)]


def test_a_tenant_account_is_confined_to_its_prefix_then_disabled_and_deleted(
    dynsec_broker: DynsecMosquitto, dynsec_bridge: BridgeProcess, text_redis: redis.Redis
) -> None:
    r = text_redis
    # A user filter that matches the control topics: the password request must still not reach Redis.
    subscribed = round_trip(
        r,
        build_command(protocol.CMD_SUBSCRIBE, {"filter": "$CONTROL/dynamic-security/#", "qos": 1}, "filter"),
        5,
    )
    assert subscribed["ok"] is True, subscribed

    for request in tenants.create_tenant("acme", PREFIX):
        dynsec_ok(r, request)
    password = "pw-" + uuid.uuid4().hex
    sealed = seal_for_command(SecretBox([KEY]), password, account_binding("default", "acme-sensor"))
    for request in tenants.add_account("acme", "acme-sensor", sealed):
        dynsec_ok(r, request)

    # The plugin saved the change to its file (so it survives a broker restart).
    saved = json.loads(dynsec_broker.config_file.read_text())
    assert "tenant:acme" in [role["rolename"] for role in saved["roles"]]
    assert "acme-sensor" in [client["username"] for client in saved["clients"]]
    assert password not in dynsec_broker.config_file.read_text()  # a salted hash only

    groups = dynsec_ok(r, tenants.LIST_GROUPS)["result"]["data"]
    clients = dynsec_ok(r, tenants.LIST_CLIENTS)["result"]["data"]
    listed = tenants.tenants_from(groups, clients, PREFIX)
    assert listed == [
        {
            "name": "acme",
            "topic": "tenants/acme/#",
            "accounts": [{"username": "acme-sensor", "disabled": False}],
        }
    ]

    device = Device(dynsec_broker.port, "acme-sensor", password).start()
    try:
        assert device.connected.is_set(), device.connack
        assert not device.subscribe("tenants/acme/#").is_failure
        assert device.subscribe("tenants/other/#").is_failure  # outside: refused
        assert device.subscribe("#").is_failure

        assert device.publish("tenants/other/x", b"outside").is_failure  # refused (MQTT 5 PUBACK)
        assert not device.publish("tenants/acme/temp", b"21.5").is_failure
        wait_for(lambda: ("tenants/acme/temp", b"21.5") in device.messages, 10, what="its own message back")
        # The bridge (subscribed to #) forwards what the broker accepted, and only that.
        wait_for(lambda: "tenants/acme/temp" in history_topics(r), 10, what="the message in mqtt:history")
        assert "tenants/other/x" not in history_topics(r)

        dynsec_ok(r, {"command": "disableClient", "username": "acme-sensor"})
        assert device.dropped.wait(10), "the broker did not drop the disabled account"
    finally:
        device.stop()
    again = Device(dynsec_broker.port, "acme-sensor", password).start()
    try:
        assert again.connack.is_failure and not again.connected.is_set()
    finally:
        again.stop()
    clients = dynsec_ok(r, tenants.LIST_CLIENTS)["result"]["data"]
    assert tenants.tenants_from(groups, clients, PREFIX)[0]["accounts"][0]["disabled"] is True

    for request in tenants.delete_tenant("acme", ["acme-sensor"]):
        dynsec_ok(r, request)
    groups = dynsec_ok(r, tenants.LIST_GROUPS)["result"]["data"]
    roles = dynsec_ok(r, {"command": "listRoles"})["result"]["data"]
    assert tenants.tenants_from(groups, None, PREFIX) == []
    assert "tenant:acme" not in roles["roles"]
    missing = dynsec(r, {"command": "getClient", "username": "acme-sensor"})
    assert (missing["ok"], missing["error"]) == (False, "the broker refused getClient: Client not found")
    assert missing["result"] == {"command": "getClient", "error": "Client not found"}

    # Nothing of the control traffic, and no password, reached Redis or the bridge's log.
    assert not [t for t in history_topics(r) if t.startswith("$CONTROL")]
    assert password not in json.dumps([f for _, f in r.xrange(protocol.KEY_HISTORY)])
    assert password not in dynsec_bridge.output()


def test_the_broker_refusal_comes_back_in_its_own_words(
    dynsec_broker: DynsecMosquitto, dynsec_bridge: BridgeProcess, text_redis: redis.Redis
) -> None:
    for request in tenants.create_tenant("beta", PREFIX):
        dynsec_ok(text_redis, request)
    again = dynsec(text_redis, tenants.create_tenant("beta", PREFIX)[0])

    assert again["ok"] is False
    assert again["error"] == "the broker refused createRole: Role already exists"
    assert again["result"]["error"] == "Role already exists"


def test_a_plain_password_is_refused_by_the_bridge_and_never_sent(
    dynsec_broker: DynsecMosquitto, dynsec_bridge: BridgeProcess, text_redis: redis.Redis
) -> None:
    answer = dynsec(text_redis, {"command": "createClient", "username": "x1", "password": "plain"})

    assert answer["ok"] is False and "plain text is refused" in answer["error"]
    assert "Client not found" in dynsec(text_redis, {"command": "getClient", "username": "x1"})["error"]


def test_the_compose_bootstrap_script_gives_the_bridge_an_account_that_bridges_and_publishes(
    tmp_path: Path,
) -> None:
    """mosquitto/dynsec-bootstrap.sh (the compose profile "dynsec") on this machine's broker: once,
    and a second run leaves the file alone."""
    config_file = tmp_path / "dynamic-security.json"
    conf = tmp_path / "bootstrap.conf"
    conf.write_text(f"plugin {DYNSEC_PLUGIN}\nplugin_opt_config_file {config_file}\n")
    env = env_with(MQTT_USERNAME="mqtt-bridge", MQTT_PASSWORD="bootstrap-pw-1")
    script = str(REPO / "mosquitto" / "dynsec-bootstrap.sh")
    first = subprocess.run(["sh", script, str(conf)], env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "bootstrap-pw-1" not in first.stdout + first.stderr
    before = config_file.read_text()
    again = subprocess.run(["sh", script, str(conf)], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "nothing to do" in again.stdout and config_file.read_text() == before

    broker = ShippedMosquitto(
        tmp_path,
        source=MOSQUITTO_DYNSEC_CONF,
        paths={"plugin": Path(DYNSEC_PLUGIN), "plugin_opt_config_file": config_file},
    )
    broker.start()
    try:
        with MqttRecorder(
            broker.port, ["data/#", "$SYS/broker/uptime"], username="mqtt-bridge", password="bootstrap-pw-1"
        ) as bridge_account:
            assert not any(code.is_failure for code in bridge_account.granted)
            sender = Device(broker.port, "mqtt-bridge", "bootstrap-pw-1").start()
            try:
                assert not sender.publish("data/x", b"1").is_failure  # the bridge-data role
                assert sender.publish("$CONTROL/other", b"1").is_failure
            finally:
                sender.stop()
            wait_for(lambda: bridge_account.received(lambda m: m.topic == "data/x"), 10, what="data/x")
            wait_for(lambda: bridge_account.received(lambda m: m.topic.startswith("$SYS")), 10, what="$SYS")
    finally:
        broker.stop()


# --- the dashboard's Tenants API on the real broker (issue 21, defects 1, 12 and 17) ----------

TOKEN = "tenants-integration-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Origin": "http://localhost"}


@dataclass
class Stack:
    """One dynsec broker, Redis, the real bridge and the dashboard's app (in this process), shared
    by the tests below: each uses names of its own, so they do not disturb one another."""

    broker: DynsecMosquitto
    bridge: BridgeProcess
    redis: redis.Redis
    dashboard: FlaskClient


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("tenants-api")
    broker, redis_proc = DynsecMosquitto(workdir), start_redis(workdir)
    broker.start()
    bridge = BridgeProcess(
        workdir,
        broker.port,
        redis_proc.port,
        MQTT_USERNAME=DYNSEC_BRIDGE_USER,
        MQTT_PASSWORD=DYNSEC_BRIDGE_PASSWORD,
        CONFIG_SECRET_KEY=KEY,
    )
    try:
        bridge.start()
        settings = DashboardSettings.from_env(
            {
                "DASHBOARD_TOKEN": TOKEN,
                "DASHBOARD_SECRET_KEY": "integration-session-key",
                "REDIS_HOST": "127.0.0.1",
                "REDIS_PORT": str(redis_proc.port),
                "CONFIG_SECRET_KEY": KEY,
                "DASHBOARD_TENANT_PREFIX": PREFIX,
            }
        )
        client = redis.Redis(port=redis_proc.port, socket_timeout=10, decode_responses=True)
        app = create_app(settings, redis_client=client, start_relay=False)
        yield Stack(broker, bridge, client, app.test_client())
        client.close()
    finally:
        bridge.kill()
        broker.stop()
        redis_proc.stop()


def account(r: redis.Redis, username: str) -> dict[str, Any]:
    return dynsec_ok(r, tenants.get_client(username))["result"]["data"]["client"]


def test_no_route_and_no_command_can_lock_the_bridge_out_or_touch_another_tenant(stack: Stack) -> None:
    r, dashboard, dynsec_bridge = stack.redis, stack.dashboard, stack.bridge
    for name, device in (("acme", "acme-dev"), ("other", "other-dev")):
        assert dashboard.post("/api/tenants", json={"name": name}, headers=HEADERS).status_code == 201
        made = dashboard.post(f"/api/tenants/{name}/accounts", json={"username": device}, headers=HEADERS)
        assert made.status_code == 201, made.json
    since = dynsec_bridge.status()["since"]  # type: ignore[index]
    bridge_before = account(r, DYNSEC_BRIDGE_USER)

    outside = [
        dashboard.post(f"/api/tenants/acme/accounts/{DYNSEC_BRIDGE_USER}/disable", headers=HEADERS),
        dashboard.delete(f"/api/tenants/acme/accounts/{DYNSEC_BRIDGE_USER}", headers=HEADERS),
        dashboard.post("/api/tenants/acme/accounts/other-dev/disable", headers=HEADERS),
        dashboard.delete("/api/tenants/acme/accounts/other-dev", headers=HEADERS),
    ]
    direct = [
        dynsec(r, {"command": "disableClient", "username": DYNSEC_BRIDGE_USER}),
        dynsec(r, {"command": "deleteClient", "username": DYNSEC_BRIDGE_USER}),
        dynsec(r, {"command": "removeClientRole", "username": DYNSEC_BRIDGE_USER, "rolename": "admin"}),
        dynsec(r, {"command": "deleteRole", "rolename": "admin"}),
    ]
    inside = dashboard.post("/api/tenants/acme/accounts/acme-dev/disable", headers=HEADERS)

    for answer in outside:
        assert answer.status_code == 404 and "nothing was changed" in answer.json["error"], answer.json
    for answer in direct:
        assert answer["ok"] is False, answer
        assert f"the bridge connects to the broker with the account {DYNSEC_BRIDGE_USER!r}" in answer["error"]
    # What was asked of the tenant's own account happened, and the API says so.
    assert inside.status_code == 200 and inside.json["ok"] is True
    assert account(r, "acme-dev").get("disabled") is True
    assert not account(r, "other-dev").get("disabled")
    assert account(r, DYNSEC_BRIDGE_USER) == bridge_before
    status = dynsec_bridge.status()
    assert status is not None and status["connected"] is True and status["since"] == since


def test_a_publish_to_control_topics_cannot_bypass_the_dynsec_checks(stack: Stack) -> None:
    dashboard, text_redis = stack.dashboard, stack.redis
    backdoor = json.dumps(
        {"commands": [{"command": "createClient", "username": "backdoor", "password": "x"}]}
    )
    open_door = json.dumps({"commands": [{"command": "setDefaultACLAccess", "acls": []}]})

    via_api = dashboard.post(
        "/api/publish", json={"topic": "$CONTROL/dynamic-security/v1", "payload": backdoor}, headers=HEADERS
    )
    via_redis = round_trip(
        text_redis,
        {
            **protocol.command_body(protocol.CMD_PUBLISH, "$CONTROL/dynamic-security/v1", payload=open_door),
            "id": "c1",
        },
        10,
    )

    assert via_api.status_code == 400 and "starts with '$'" in via_api.json["error"]
    assert via_redis["ok"] is False and "belong to the broker" in via_redis["error"]
    missing = dynsec(text_redis, tenants.get_client("backdoor"))
    assert missing["result"]["error"] == "Client not found"


def test_a_tenant_half_made_when_its_bridge_died_can_be_finished_or_deleted(stack: Stack) -> None:
    """The bridge (or a group's leader) died between the role and the group of a new tenant."""
    dashboard, text_redis = stack.dashboard, stack.redis
    for name in ("half", "gone"):
        dynsec_ok(text_redis, tenants.create_tenant(name, PREFIX)[0])  # its role only

    finished = dashboard.post("/api/tenants", json={"name": "half"}, headers=HEADERS)
    deleted = dashboard.delete("/api/tenants/gone", headers=HEADERS)
    again = dashboard.delete("/api/tenants/gone", headers=HEADERS)

    assert finished.status_code == 201, finished.json
    listed = dashboard.get("/api/tenants", headers=HEADERS).json
    assert "half" in [t["name"] for t in listed["tenants"]] and "gone" not in [
        t["name"] for t in listed["tenants"]
    ]
    assert deleted.status_code == 200, deleted.json
    roles = dynsec_ok(text_redis, tenants.LIST_ROLES)["result"]["data"]["roles"]
    assert "tenant:gone" not in roles and "tenant:half" in roles
    assert again.status_code == 404


def test_a_subscription_the_broker_refuses_is_a_failure_in_its_words(stack: Stack) -> None:
    """SUBACK's reason code (issue 21, defect 13), on MQTT 5: a role of the bridge's account denies
    one filter (set up with mosquitto_ctrl: the bridge itself refuses to change its own account).
    The filters start with '$' so that the bridge's own '#' does not cover them (a covered filter
    is not subscribed on the broker at all)."""
    since = stack.bridge.status()["since"]  # type: ignore[index]
    stack.broker.ctrl("createRole", "no-secrets")
    stack.broker.ctrl("addRoleACL", "no-secrets", "subscribeLiteral", "$private/#", "deny", "10")
    stack.broker.ctrl("addClientRole", DYNSEC_BRIDGE_USER, "no-secrets", "10")
    # The plugin drops a client whose roles change; the bridge is back once its status says so.
    wait_for(
        lambda: (status := stack.bridge.status()) and status["connected"] and status["since"] != since,
        20,
        what="the bridge to reconnect with its new role",
    )

    def subscribe(topic_filter: str) -> dict[str, Any]:
        body = build_command(protocol.CMD_SUBSCRIBE, {"filter": topic_filter}, "filter")
        return round_trip(stack.redis, body, 10)

    try:
        refused, allowed = subscribe("$private/#"), subscribe("$public/#")
    finally:
        stack.broker.ctrl("removeClientRole", DYNSEC_BRIDGE_USER, "no-secrets")

    assert (refused["ok"], refused["error"]) == (False, "the broker refused the subscribe: Not authorized")
    assert not stack.redis.hexists(protocol.KEY_SUBSCRIPTIONS, "$private/#")  # forgotten, not retried
    assert allowed["ok"] is True
