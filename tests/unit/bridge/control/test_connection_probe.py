"""The probe's sentences for broker answers that the test broker (mosquitto 2.0) never gives."""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from bridge.control import connection_probe
from bridge.control.connection_probe import Endpoint, ProbeResult, _from_reason


def _answer(name: str, endpoint: Endpoint) -> ProbeResult:
    return _from_reason(ReasonCode(PacketTypes.CONNACK, name), endpoint, lambda o, s: ProbeResult(o, s, 0.1))


def test_bad_user_name_or_password() -> None:
    found = _answer("Bad user name or password", Endpoint("broker", 1883, username="bob", password="x"))

    assert (found.outcome, found.sentence) == (
        connection_probe.BAD_CREDENTIALS,
        "broker:1883 refused the user name or password of user 'bob'",
    )


def test_any_other_refusal_is_named_as_the_broker_named_it() -> None:
    found = _answer("Server unavailable", Endpoint("::1", 1883))

    assert (found.outcome, found.sentence) == (
        connection_probe.REFUSED,
        "[::1]:1883 refused the connection: Server unavailable",
    )


def test_the_result_object_has_a_machine_readable_outcome() -> None:
    found = ProbeResult(connection_probe.NO_BROKER, "no MQTT broker answered", 8.0004)

    assert found.as_result() == {"outcome": "no_broker", "message": "no MQTT broker answered", "seconds": 8.0}
    assert not found.ok


def test_unusable_tls_files_are_said_to_be_so() -> None:
    found = connection_probe.probe(
        Endpoint("127.0.0.1", 1, tls=True, tls_ca="/nonexistent/ca.crt"), timeout=1
    )

    assert found.outcome == connection_probe.TLS_FAILED
    assert "the CA, certificate or key file cannot be used" in found.sentence
