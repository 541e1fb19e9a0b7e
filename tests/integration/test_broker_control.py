"""Broker control against real brokers: the connection test in words, reconnect, and switching the
live connection to a broker with a password file (kept across a restart, reset to the environment).
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bridge.contract import protocol
from bridge.contract.secret_box import (
    PURPOSE_SAVED_SETTINGS,
    SecretBox,
    connection_binding,
    generate_key,
    seal_for_command,
)
from tests.helpers import MOSQUITTO, Process, free_port, wait_for
from tests.integration.mqtt_client import publish_all

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
KEY = generate_key()
BOX = SecretBox([KEY])


def sealed(password: str, port: int, user: str | None = "alice") -> dict[str, str]:
    """``password`` sealed, as the dashboard seals it, for a plain connection to 127.0.0.1:port."""
    return seal_for_command(BOX, password, connection_binding("127.0.0.1", port, user, False, False))


@pytest.fixture
def secured(workdir: Path) -> Iterator[Process]:
    """A second mosquitto that lets in only alice, with her password."""
    port = free_port()
    passwd = workdir / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "alice", PASSWORD], check=True)
    conf = workdir / "secured.conf"
    conf.write_text(
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        f"password_file {passwd}\n"
        "persistence false\n"
        "sys_interval 1\n"
        "log_dest stderr\n"
        f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
        f"listener {port} 127.0.0.1\n"
    )
    proc = Process([MOSQUITTO, "-c", str(conf)], port, workdir / "secured.log")
    proc.start()
    yield proc
    proc.stop()


def _command(r: redis.Redis, channels: Any, kind: str, wait: float = 15.0, **args: Any) -> dict[str, Any]:
    body = protocol.command_body(kind, command_id=f"{kind}-{os.urandom(4).hex()}", args=args)
    results = channels(protocol.CHANNEL_RESULTS)
    results.poll()
    r.publish(protocol.CHANNEL_COMMANDS, json.dumps(body))
    return results.wait(
        protocol.CHANNEL_RESULTS, lambda m: m["id"] == body["id"], wait, f"the answer to {kind}"
    )


def _status(r: redis.Redis) -> dict[str, Any]:
    found = protocol.loads_object(r.get(protocol.KEY_STATUS_LATEST))
    assert found is not None
    return found


def test_the_connection_test_says_what_happened_and_leaves_the_live_connection_alone(
    make_bridge: Any, secured: Process, r: redis.Redis, channels: Any
) -> None:
    bridge = make_bridge(CONFIG_SECRET_KEY=KEY).start()
    since = _status(r)["since"]
    wrong = _command(
        r,
        channels,
        protocol.CMD_TEST_CONNECTION,
        port=secured.port,
        username="alice",
        password=sealed("wrong", secured.port),
    )
    right = _command(
        r,
        channels,
        protocol.CMD_TEST_CONNECTION,
        port=secured.port,
        username="alice",
        password=sealed(PASSWORD, secured.port),
    )
    unused = free_port()
    nobody = _command(r, channels, protocol.CMD_TEST_CONNECTION, port=unused)

    # mosquitto 2.0 answers a wrong password with "not authorised"
    assert (wrong["ok"], wrong["result"]["outcome"]) == (False, "not_authorised")
    assert "does not authorise user 'alice' (wrong user name or password" in wrong["error"]
    assert (right["ok"], right["error"], right["result"]["outcome"]) == (True, None, "connected")
    assert right["result"]["message"].startswith(f"connected to 127.0.0.1:{secured.port} as user 'alice'")
    assert (nobody["ok"], nobody["result"]["outcome"]) == (False, "no_broker")
    assert nobody["error"].startswith(f"no MQTT broker answered at 127.0.0.1:{unused} (nothing listens there")
    assert all(a["result"]["seconds"] < 10 for a in (wrong, right, nobody))
    # the live connection never dropped, and no password is anywhere in the answers or the log
    assert _status(r)["connected"] is True and _status(r)["since"] == since
    assert PASSWORD not in json.dumps([wrong, right, nobody]) and PASSWORD not in bridge.output()


def test_a_password_in_plain_text_is_refused(
    bridge: Any, secured: Process, r: redis.Redis, channels: Any
) -> None:
    answer = _command(
        r, channels, protocol.CMD_TEST_CONNECTION, port=secured.port, username="alice", password=PASSWORD
    )

    assert answer["ok"] is False
    assert "CONFIG_SECRET_KEY is not set" in answer["error"]  # this bridge has no key at all


def test_reconnect_drops_and_remakes_the_live_connection(
    bridge: Any, r: redis.Redis, channels: Any, mosquitto: Process
) -> None:
    before = _status(r)
    answer = _command(r, channels, protocol.CMD_RECONNECT)

    assert (answer["ok"], answer["result"]["connected"]) == (True, True)
    wait_for(
        lambda: _status(r)["last_disconnected_at"] != before["last_disconnected_at"], 10, what="a new status"
    )
    assert _status(r)["connected"] is True and _status(r)["since"] > before["since"]
    wait_for(
        lambda: (protocol.loads_object(r.get(protocol.KEY_HEARTBEAT)) or {})["counters"]["reconnects"] == 1,
        10,
        what="the reconnect counted",
    )
    (switch,) = [json.loads(e) for e in r.lrange(protocol.KEY_CONNECTION_HISTORY, 0, -1)]
    assert (switch["action"], switch["to"], switch["connected"]) == (
        "reconnect",
        f"127.0.0.1:{mosquitto.port}",
        True,
    )


def test_configure_switches_persists_survives_a_restart_and_resets(
    make_bridge: Any, mosquitto: Process, secured: Process, r: redis.Redis, channels: Any
) -> None:
    bridge = make_bridge(CONFIG_SECRET_KEY=KEY).start()
    refused = _command(
        r,
        channels,
        protocol.CMD_CONFIGURE,
        port=secured.port,
        username="alice",
        password=sealed("no", secured.port),
    )
    assert refused["ok"] is False and refused["error"].startswith("not switched: the test failed")
    assert refused["result"]["switched"] is False and _status(r)["broker"] == f"127.0.0.1:{mosquitto.port}"

    switched = _command(
        r,
        channels,
        protocol.CMD_CONFIGURE,
        port=secured.port,
        username="alice",
        password=sealed(PASSWORD, secured.port),
    )
    assert (switched["ok"], switched["result"]["switched"], switched["result"]["connected"]) == (
        True,
        True,
        True,
    )
    assert _status(r)["broker"] == f"127.0.0.1:{secured.port}"
    # what the secured broker carries now reaches Redis
    live = channels(protocol.CHANNEL_MESSAGES)
    publish_to_secured(secured.port, "after/switch", b"1")
    live.wait(
        protocol.CHANNEL_MESSAGES, lambda m: m["topic"] == "after/switch", 10, "a message via the new broker"
    )
    saved = r.get(protocol.KEY_BROKER_SETTINGS)
    assert saved is not None and PASSWORD.encode() not in saved
    saved_for = connection_binding("127.0.0.1", secured.port, "alice", False, False, PURPOSE_SAVED_SETTINGS)
    assert BOX.open(json.loads(saved)["password_sealed"], saved_for) == PASSWORD
    connection = json.loads(r.get(protocol.KEY_CONNECTION) or b"{}")
    assert (connection["port"], connection["password"], connection["source"]) == (
        secured.port,
        "set",
        "saved",
    )

    bridge.stop()
    make_bridge(CONFIG_SECRET_KEY=KEY).start()
    assert _status(r)["broker"] == f"127.0.0.1:{secured.port}"  # the saved settings won

    reset = _command(r, channels, protocol.CMD_CONFIGURE, reset=True)
    assert (reset["ok"], reset["result"]["source"]) == (True, "environment")
    assert _status(r)["broker"] == f"127.0.0.1:{mosquitto.port}"
    assert r.get(protocol.KEY_BROKER_SETTINGS) is None
    history = [json.loads(e) for e in r.lrange(protocol.KEY_CONNECTION_HISTORY, 0, -1)]
    assert [(e["action"], e["to"]) for e in history] == [
        ("reset", f"127.0.0.1:{mosquitto.port}"),
        ("configure", f"127.0.0.1:{secured.port}"),
    ]


def test_saving_a_password_without_a_key_is_refused_in_words(
    bridge: Any, secured: Process, r: redis.Redis, channels: Any
) -> None:
    answer = _command(
        r, channels, protocol.CMD_CONFIGURE, port=secured.port, username="alice", password={"sealed": "x"}
    )

    assert answer["ok"] is False and "CONFIG_SECRET_KEY is not set" in answer["error"]
    assert r.get(protocol.KEY_BROKER_SETTINGS) is None


def publish_to_secured(port: int, topic: str, payload: bytes) -> None:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set("alice", PASSWORD)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


__all__ = ["publish_all"]


def test_a_reconnect_while_the_broker_is_down_says_so_and_the_bridge_keeps_trying(
    bridge: Any, mosquitto: Process, r: redis.Redis, channels: Any
) -> None:
    mosquitto.stop()
    wait_for(lambda: not _status(r)["connected"], 15, what="the bridge to see the broker gone")

    answer = _command(r, channels, protocol.CMD_RECONNECT)

    assert answer["ok"] is False and (answer["result"]["switched"], answer["result"]["connected"]) == (
        True,
        False,
    )
    assert "is not connected yet after 5 s; the bridge keeps trying" in answer["error"]
    mosquitto.start()
    wait_for(lambda: _status(r)["connected"], 40, what="the bridge back on the broker")
    bridge.assert_alive()


# --- where a password may go (issue 21, defect 11) -------------------------------------------


class Listener:
    """A loopback port that records every byte anyone sends it: where a stolen password would
    arrive (a CONNECT packet carries the user name and the password in clear)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.received = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn = self.server.accept()[0]
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(1.0)
                try:
                    while chunk := conn.recv(65536):
                        self.received += chunk
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(3)
        self.server.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.close()


def test_a_sealed_password_seen_on_redis_cannot_be_replayed_to_another_host(
    make_bridge: Any, secured: Process, listener: Listener, r: redis.Redis, channels: Any
) -> None:
    make_bridge(CONFIG_SECRET_KEY=KEY).start()
    seen_on_redis = sealed(PASSWORD, secured.port)  # what MONITOR shows of a real connection test

    replayed = _command(
        r,
        channels,
        protocol.CMD_TEST_CONNECTION,
        port=listener.port,
        username="alice",
        password=seen_on_redis,
    )
    meant = _command(
        r, channels, protocol.CMD_TEST_CONNECTION, port=secured.port, username="alice", password=seen_on_redis
    )

    assert replayed["ok"] is False and "sealed for another destination (its port differ" in replayed["error"]
    assert listener.connections == 0 and PASSWORD.encode() not in listener.received
    assert meant["ok"] is True  # where it was sealed for, it still works


def test_saved_settings_whose_host_was_changed_in_redis_do_not_send_the_password_there(
    make_bridge: Any, mosquitto: Process, secured: Process, listener: Listener, r: redis.Redis, channels: Any
) -> None:
    bridge = make_bridge(CONFIG_SECRET_KEY=KEY).start()
    switched = _command(
        r,
        channels,
        protocol.CMD_CONFIGURE,
        port=secured.port,
        username="alice",
        password=sealed(PASSWORD, secured.port),
    )
    assert switched["ok"] is True, switched
    bridge.stop()
    # Someone who can write Redis (but has no CONFIG_SECRET_KEY) points the saved settings elsewhere.
    record = json.loads(r.get(protocol.KEY_BROKER_SETTINGS) or b"{}")
    r.set(protocol.KEY_BROKER_SETTINGS, json.dumps({**record, "port": listener.port}))

    restarted = make_bridge(CONFIG_SECRET_KEY=KEY).start()

    assert _status(r)["broker"] == f"127.0.0.1:{mosquitto.port}"  # the environment's settings
    assert listener.connections == 0 and PASSWORD.encode() not in listener.received
    assert "ignoring the broker settings saved in Redis" in restarted.output()
    assert "sealed for another destination" in restarted.output() and PASSWORD not in restarted.output()


# --- the connection test is no scanner and no line injector (issue 21, defect 14) -------------


def test_control_characters_in_any_field_are_refused_and_nothing_reaches_the_wire(
    make_bridge: Any, listener: Listener, r: redis.Redis, channels: Any
) -> None:
    make_bridge(CONFIG_SECRET_KEY=KEY).start()
    injected = "alice\r\n1700000000: New client connected from 6.6.6.6 as fake (p2, c1, k60)."
    answers = [
        _command(r, channels, protocol.CMD_TEST_CONNECTION, port=listener.port, username=injected),
        _command(r, channels, protocol.CMD_TEST_CONNECTION, host="127.0.0.1\x00evil", port=listener.port),
        _command(
            r,
            channels,
            protocol.CMD_TEST_CONNECTION,
            port=listener.port,
            username="alice",
            password=sealed("pw\nline", listener.port),
        ),
    ]

    for answer in answers:
        assert answer["ok"] is False and "must not contain control characters" in answer["error"], answer
    assert listener.connections == 0


def test_tls_files_come_only_from_config_tls_dir_and_the_answer_does_not_say_what_exists(
    make_bridge: Any, mosquitto: Process, workdir: Path, r: redis.Redis, channels: Any
) -> None:
    tls_dir = workdir / "tls"
    tls_dir.mkdir()
    make_bridge(CONFIG_TLS_DIR=str(tls_dir)).start()
    exists, missing = str(workdir / "secured.conf"), str(workdir / "no-such-file.pem")
    (workdir / "secured.conf").write_text("a file outside CONFIG_TLS_DIR")

    answers = [
        _command(r, channels, protocol.CMD_TEST_CONNECTION, port=mosquitto.port, tls=True, tls_ca=path)
        for path in (exists, missing, "../secured.conf")
    ]

    assert {a["error"] for a in answers} == {
        "tls_ca must name a file inside CONFIG_TLS_DIR (a file name there)"
    }


def test_the_bridge_runs_at_most_20_connection_tests_a_minute_whoever_asks(
    bridge: Any, r: redis.Redis, channels: Any
) -> None:
    """Anyone with redis-cli can send cmd_test_connection: the bridge's own limit holds for all."""
    unused = free_port()
    answers = [_command(r, channels, protocol.CMD_TEST_CONNECTION, port=unused) for _ in range(21)]

    assert all(a["result"]["outcome"] == "no_broker" for a in answers[:20])
    assert answers[20]["ok"] is False and "result" not in answers[20]
    assert answers[20]["error"].startswith("too many connection tests: this bridge runs at most 20 a minute")
