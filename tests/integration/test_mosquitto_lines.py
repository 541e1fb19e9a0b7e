"""Where mosquitto 2.0 and 2.1 differ, played against the broker under test (``MOSQUITTO_BIN``;
``make test`` runs this file on Debian's 2.0 and on 2.1.2): its log lines, a client that vanishes
or misses its keepalive, a take-over of the bridge's client id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from bridge.contract import protocol
from bridge.insight.clients import ClientTracker
from tests.helpers import MOSQUITTO_VERSION, Process, free_port, start_mosquitto, wait_for
from tests.mosquitto_recordings import EXPECTED, V5, V311, connect, play, read_packet, takeover_notice

pytestmark = pytest.mark.integration

SENDS_TAKEOVER = MOSQUITTO_VERSION >= (2, 1)  # DISCONNECT 0x8E to the MQTT 5 client taken over


def test_every_step_of_the_log_scenario_reads_right_on_this_broker(workdir: Path, mosquitto: Process) -> None:
    def start_bridge(client_id: str) -> Any:
        extra = f"connection to-main\naddress 127.0.0.1:{mosquitto.port}\nremote_clientid {client_id}\n"
        other = start_mosquitto(workdir, free_port(), extra + "topic bridged/# out 0\n")
        return other.stop

    steps = play(mosquitto.port, start_bridge)

    tracker = ClientTracker()
    for step in steps:
        for line in step.lines:
            tracker.update("$SYS/broker/log/N", line.encode(), 1.0)
        listed = {c["client_id"]: (c["protocol"], c["username"]) for c in tracker.snapshot()}
        assert listed == EXPECTED[step.name], f"after {step.name!r}: {step.lines}"
    expected = "DISCONNECT reason 0x8E" if SENDS_TAKEOVER else "nothing, the connection was closed"
    assert takeover_notice(steps).endswith(expected)


def _clients(r: redis.Redis) -> dict[str, dict[str, Any]]:
    latest = protocol.loads_object(r.get(protocol.KEY_CLIENTS_LATEST)) or {}
    return {c["client_id"]: c for c in latest.get("clients", [])}


def test_a_client_that_vanishes_or_misses_its_keepalive_leaves_the_list(
    bridge: Any, mosquitto: Process, r: redis.Redis
) -> None:
    vanishing = connect(mosquitto.port, "pump-3", V311)  # will close its socket without DISCONNECT
    silent = connect(mosquitto.port, "valve-9", V5, keepalive=1)  # will never ping
    try:
        listed = wait_for(lambda: {"pump-3", "valve-9"} <= set(_clients(r)) and _clients(r), 10, what="both")
        assert (listed["pump-3"]["protocol"], listed["valve-9"]["protocol"]) == ("MQTT 3.1.1", "MQTT 5")
        vanishing.close()
        # 2.0 checks keepalives every few seconds, 2.1 on time: 1.5 x 1 s plus up to ~5 s.
        wait_for(lambda: not {"pump-3", "valve-9"} & set(_clients(r)), 15, what="both to leave the list")
    finally:
        vanishing.close()
        silent.close()


def test_a_takeover_of_the_bridges_client_id_is_reported_as_such(
    make_bridge: Any, mosquitto: Process, channels: Any
) -> None:
    bridge = make_bridge(MQTT_CLIENT_ID="bridge-under-test", MQTT_PROTOCOL="5").start()
    statuses = channels(protocol.CHANNEL_STATUS)
    statuses.poll()

    intruder = connect(mosquitto.port, "bridge-under-test", V5)  # takes over the bridge's session
    try:
        lost = statuses.wait(protocol.CHANNEL_STATUS, lambda m: m["connected"] is False, 10, "the loss")
        if SENDS_TAKEOVER:
            assert "another client connected" in lost["reason"] and "took over its session" in lost["reason"]
            assert "MQTT_CLIENT_ID" in lost["reason"]
        else:  # 2.0 closes the socket without a word: it reads as a lost connection
            assert lost["reason"].startswith("lost the connection")
        # The bridge takes its id back (and the intruder is the one disconnected now).
        statuses.wait(protocol.CHANNEL_STATUS, lambda m: m["connected"] is True, 15, "the bridge back")
        assert read_packet(intruder) in (None, (0xE0, bytes([0x8E, 0x00])), (0xE0, bytes([0x8E])))
    finally:
        intruder.close()
    bridge.assert_alive()
