from __future__ import annotations

import base64
import json

import pytest

from bridge.contract import protocol
from bridge.contract.errors import InvalidCommand


@pytest.mark.parametrize(
    "payload",
    [b"", b"hello", "température 21°C".encode(), b'{"a": [1, 2]}', b'quote " and \\ and \n newline'],
)
def test_text_payloads_round_trip_as_utf8(payload: bytes) -> None:
    text, encoding = protocol.encode_payload(payload)
    assert encoding == "utf-8"
    assert protocol.decode_payload(text, encoding) == payload


@pytest.mark.parametrize("payload", [b"\xff\xfe\x00\x01", bytes(range(256)), b"ok\x80"])
def test_binary_payloads_round_trip_as_base64(payload: bytes) -> None:
    text, encoding = protocol.encode_payload(payload)
    assert encoding == "base64"
    assert base64.b64decode(text) == payload
    assert protocol.decode_payload(text, encoding) == payload


@pytest.mark.parametrize(
    ("topic", "payload", "qos", "retain"),
    [
        ("a/b", b"hi", 0, False),
        ("sensors/ü/☃", 'ünïcode \u2028 \x00 "q"'.encode(), 1, True),
        ("bin", b"\xff\x00\x10", 2, False),
        ("x" * 300, b"", 0, True),
    ],
)
def test_message_json_is_exactly_the_contract(topic: str, payload: bytes, qos: int, retain: bool) -> None:
    cache: dict[str, str] = {}
    for _ in range(2):  # second time through the topic cache
        raw = protocol.message_json(topic, payload, qos, retain, 1763811234.5, cache)
        text, encoding = protocol.encode_payload(payload)
        assert json.loads(raw) == {
            "type": "message_received",
            "topic": topic,
            "payload": text,
            "encoding": encoding,
            "qos": qos,
            "retain": retain,
            "timestamp": 1763811234.5,
        }


def test_message_json_keeps_text_readable_for_redis_cli() -> None:
    raw = protocol.message_json("t", "21°C".encode(), 0, False, 1.0)
    assert "21°C" in raw


def _command(**fields: object) -> str:
    return json.dumps({"type": "cmd_publish", "topic": "a/b", **fields})


def test_publish_command_defaults() -> None:
    command = protocol.parse_command(_command(id="c1"))
    assert command == protocol.Command(
        type="cmd_publish", topic="a/b", id="c1", payload=b"", qos=0, retain=False
    )


def test_base64_publish_decodes_to_bytes() -> None:
    command = protocol.parse_command(
        _command(payload=base64.b64encode(b"\xff\x00").decode(), encoding="base64")
    )
    assert command.payload == b"\xff\x00"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"text"', "must be a JSON object"),
        (json.dumps({"type": "cmd_explode", "topic": "a"}), "unknown command type 'cmd_explode'"),
        (json.dumps({"topic": "a"}), "unknown command type"),
        (json.dumps({"type": "cmd_publish"}), "topic is missing"),
        (_command(topic=""), "topic is empty"),
        (_command(topic=5), "topic must be a string"),
        (_command(topic="a/+/b"), "contains a wildcard"),
        (_command(topic="a/#"), "contains a wildcard"),
        (_command(topic="a\x00b"), "U+0000"),
        (_command(topic="a\x01b"), "control or non-character U+0001"),
        (json.dumps({"type": "cmd_subscribe", "topic": "x\u0085/#"}), "U+0085"),
        (_command(topic="x" * 65_536), "65,536 bytes; MQTT allows at most 65,535"),
        (_command(qos=3), "qos must be 0, 1 or 2"),
        (_command(qos="1"), "qos must be 0, 1 or 2"),
        (_command(qos=True), "qos must be 0, 1 or 2"),
        (_command(retain="yes"), "retain must be true or false"),
        (_command(payload=42), "payload must be a string"),
        (_command(payload={"a": 1}), "payload must be a string"),
        (_command(payload="@@@", encoding="base64"), "not valid base64"),
        (_command(encoding="latin-1"), "encoding must be one of utf-8, base64"),
        (
            json.dumps({"type": "cmd_subscribe", "topic": "a/#/b"}),
            "'#' must be a whole level and the last one",
        ),
        (json.dumps({"type": "cmd_subscribe", "topic": "a/b#"}), "'#' must be a whole level"),
        (json.dumps({"type": "cmd_subscribe", "topic": "a/b+/c"}), "'+' must fill a whole level"),
        (json.dumps({"type": "cmd_unsubscribe", "topic": ""}), "topic filter is empty"),
        (json.dumps({"type": "cmd_subscribe", "topic": "$share/g"}), "shared subscription"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_bad_commands_say_what_is_wrong(raw: str, words: str) -> None:
    with pytest.raises(InvalidCommand) as caught:
        protocol.parse_command(raw)
    assert words in str(caught.value)


def test_error_keeps_a_string_id_and_the_command_name() -> None:
    with pytest.raises(InvalidCommand) as caught:
        protocol.parse_command(_command(id="abc", qos=7))
    assert caught.value.command_id == "abc"
    assert caught.value.command == "cmd_publish"


def test_an_absent_or_null_id_means_no_id() -> None:
    assert protocol.parse_command(_command(id=None)).id is None
    assert protocol.parse_command(json.dumps({"type": "cmd_publish", "topic": "a"})).id is None


@pytest.mark.parametrize(
    ("bad_id", "said"),
    [
        (5, "a number"),
        (1.5, "a number"),
        (True, "true/false"),
        (["x"], "a list"),
        ({"a": 1}, "an object"),
        ("", "an empty string"),
        ("x" * 1000, "a string of 1,000 characters"),
    ],
)
def test_an_unusable_id_refuses_the_command(bad_id: object, said: str) -> None:
    # Answered with id null, the sender could never match the answer: so it is not run at all.
    with pytest.raises(InvalidCommand, match=f"id must be a string.*got {said}, so the command was not run"):
        protocol.parse_command(_command(id=bad_id))


@pytest.mark.parametrize("value", [1.7e9, 1_700_000_000])
def test_expires_at_is_read_as_seconds(value: float) -> None:
    assert protocol.parse_command(_command(expires_at=value)).expires_at == float(value)


@pytest.mark.parametrize("value", ["soon", True, [1], {"t": 1}])
def test_a_malformed_expires_at_is_refused(value: object) -> None:
    with pytest.raises(InvalidCommand, match="expires_at must be a number"):
        protocol.parse_command(_command(id="e1", expires_at=value))


def test_nan_expires_at_is_refused() -> None:
    with pytest.raises(InvalidCommand, match="expires_at must be a number"):
        protocol.parse_command('{"type": "cmd_publish", "topic": "a", "expires_at": NaN}')


def test_huge_command_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidCommand, match="the limit is"):
        protocol.parse_command(b"{" + b" " * (protocol.MAX_COMMAND_BYTES + 1))


def test_huge_payload_is_refused() -> None:
    with pytest.raises(InvalidCommand, match="payload is 8,388,609 bytes"):
        protocol.parse_command(_command(payload="x" * (protocol.MAX_PAYLOAD_BYTES + 1)))


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("#", "a/b", True),
        ("#", "$SYS/broker/uptime", False),
        ("+/b", "$SYS/b", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/b", "a/b", True),
        ("a/b", "a/b/", False),
        ("+", "", True),
        ("$share/g/a/+", "a/b", True),
    ],
)
def test_topic_matching_follows_mqtt(topic_filter: str, topic: str, expected: bool) -> None:
    assert protocol.topic_matches(topic_filter, topic) is expected


def test_command_body_round_trips_through_the_parser() -> None:
    body = protocol.command_body("cmd_publish", "a/b", command_id="x1", payload="hi", qos=1, retain=True)
    command = protocol.parse_command(protocol.dumps(body))
    assert (command.id, command.payload, command.qos, command.retain) == ("x1", b"hi", 1, True)


def test_command_result_shape() -> None:
    result = protocol.command_result("x1", "cmd_publish", False, "boom")
    assert {k: result[k] for k in ("type", "id", "command", "ok", "error")} == {
        "type": "command_result",
        "id": "x1",
        "command": "cmd_publish",
        "ok": False,
        "error": "boom",
    }
    assert isinstance(result["timestamp"], float)


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage",
        b"[]",
        b'{"qos": 9, "created_at": "x"}',
        b'{"created_at": 1e999}',  # infinite: "Infinity" is not JSON a browser can read
        b'{"created_at": ' + b"9" * 400 + b"}",
    ],
)
def test_damaged_subscription_records_fall_back_to_qos_0(raw: bytes) -> None:
    assert protocol.parse_subscription_record(raw) == {"qos": 0, "created_at": None}


def test_an_id_that_cannot_be_sent_back_refuses_the_command() -> None:
    # A lone surrogate survives json.loads but not encoding: echoing it would kill the answer.
    with pytest.raises(InvalidCommand, match="id must be a string") as caught:
        protocol.parse_command('{"type": "cmd_publish", "id": "\\ud800", "topic": "a"}')
    assert caught.value.command_id is None


@pytest.mark.parametrize("raw", ['{"timestamp": NaN}', '{"x": Infinity}', '{"x": -Infinity}', "[1]", "\xff"])
def test_loads_object_refuses_what_a_browser_could_not_parse(raw: str) -> None:
    assert protocol.loads_object(raw) is None


def test_a_payload_over_the_limit_is_cut_and_says_so() -> None:
    message = json.loads(protocol.message_json("cam/1", b"x" * 5000, 0, False, 1.0, max_payload=1024))
    assert message["payload"] == "x" * 1024
    assert (message["truncated"], message["size"]) == (True, 5000)
    assert "truncated" not in json.loads(
        protocol.message_json("cam/1", b"x" * 1024, 0, False, 1.0, max_payload=1024)
    )


def test_a_command_without_a_topic_carries_its_own_fields_in_args() -> None:
    body = protocol.command_body(
        protocol.CMD_TEST_CONNECTION, command_id="t1", args={"host": "broker", "port": 1883}
    )
    command = protocol.parse_command(protocol.dumps(body))

    assert "topic" not in body and "qos" not in body
    assert (command.type, command.topic, dict(command.args)) == (
        "cmd_test_connection",
        "",
        {"host": "broker", "port": 1883},
    )


def test_args_cannot_override_the_common_fields() -> None:
    with pytest.raises(ValueError, match="common fields"):
        protocol.command_body(protocol.CMD_CONFIGURE, args={"id": "sneaky"})


def test_a_result_object_appears_only_when_given() -> None:
    plain = protocol.command_result("a", protocol.CMD_PUBLISH, True, None)
    with_data = protocol.command_result("b", protocol.CMD_CLEAR_RETAINED, True, None, {"cleared": 3})

    assert "result" not in plain
    assert with_data["result"] == {"cleared": 3}
