from __future__ import annotations

import json
import threading

import fakeredis
import pytest

from bridge.contract import protocol
from bridge.contract.backoff import NoWait
from bridge.control.commands import CommandListener, CommandProcessor
from bridge.ingest.counters import Counters
from bridge.ingest.redis_sink import RedisSink
from bridge.ingest.subscriptions import SubscriptionSet
from tests.helpers import wait_for
from tests.unit.bridge.fakes import FakeBroker


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
def processor(broker: FakeBroker, r: fakeredis.FakeRedis) -> CommandProcessor:
    subs = SubscriptionSet(("sensors/#",), 1)
    return CommandProcessor(broker, subs, RedisSink(r, 100), Counters())  # type: ignore[arg-type]


def _send(processor: CommandProcessor, **body: object) -> dict:
    return processor.handle(json.dumps(body))


def test_publish_reaches_the_broker_with_the_right_bytes(
    processor: CommandProcessor, broker: FakeBroker
) -> None:
    result = _send(processor, type="cmd_publish", id="p1", topic="lights/1", payload="on", qos=1, retain=True)
    assert (result["ok"], result["id"], result["command"], result["error"]) == (
        True,
        "p1",
        "cmd_publish",
        None,
    )
    assert broker.published == [("lights/1", b"on", 1, True)]


def test_publish_while_disconnected_fails_fast_with_a_clear_error(
    processor: CommandProcessor, broker: FakeBroker
) -> None:
    broker.connected = False
    result = _send(processor, type="cmd_publish", id="p2", topic="a", payload="x")
    assert result["ok"] is False
    assert "not connected" in result["error"]


def test_subscribe_is_persisted_and_applied(
    processor: CommandProcessor, broker: FakeBroker, r: fakeredis.FakeRedis
) -> None:
    result = _send(processor, type="cmd_subscribe", id="s1", topic="alerts/+", qos=2)
    assert result["ok"] is True
    assert broker.subscribed == {"alerts/+": 2}
    stored = protocol.parse_subscription_record(r.hget(protocol.KEY_SUBSCRIPTIONS, "alerts/+"))
    assert stored["qos"] == 2 and stored["created_at"] > 0


def test_configured_topics_are_not_written_to_redis(
    processor: CommandProcessor, r: fakeredis.FakeRedis
) -> None:
    assert _send(processor, type="cmd_subscribe", topic="sensors/#")["ok"] is True
    assert r.hlen(protocol.KEY_SUBSCRIPTIONS) == 0
    result = _send(processor, type="cmd_unsubscribe", topic="sensors/#")
    assert result["ok"] is False and "MQTT_TOPICS" in result["error"]


def test_subscribe_while_disconnected_is_kept_for_the_reconnect(
    processor: CommandProcessor, broker: FakeBroker, r: fakeredis.FakeRedis
) -> None:
    broker.connected = False
    assert _send(processor, type="cmd_subscribe", topic="late/#")["ok"] is True
    assert broker.subscribed == {}
    assert ("late/#", 0) in processor.subscriptions.broker_filters()
    assert r.hexists(protocol.KEY_SUBSCRIPTIONS, "late/#")


def test_refused_subscription_is_reported_and_forgotten(
    processor: CommandProcessor, broker: FakeBroker, r: fakeredis.FakeRedis
) -> None:
    broker.refuse.add("secret/#")
    result = _send(processor, type="cmd_subscribe", id="s9", topic="secret/#")
    assert result["ok"] is False and "Not authorized" in result["error"]
    assert not r.hexists(protocol.KEY_SUBSCRIPTIONS, "secret/#")
    assert "secret/#" not in dict(processor.subscriptions.broker_filters())


def test_an_expired_command_is_answered_not_run(
    processor: CommandProcessor, broker: FakeBroker, r: fakeredis.FakeRedis
) -> None:
    seconds, micros = r.time()
    now = seconds + micros / 1e6
    late = _send(processor, type="cmd_publish", id="x1", topic="door/open", payload="1", expires_at=now - 2)
    assert (late["ok"], late["id"]) == (False, "x1")
    assert "expired" in late["error"] and "it was not run" in late["error"]
    assert broker.published == []
    in_time = _send(
        processor, type="cmd_publish", id="x2", topic="door/open", payload="1", expires_at=now + 60
    )
    assert in_time["ok"] is True
    assert broker.published == [("door/open", b"1", 0, False)]


def test_an_expired_subscribe_is_not_saved(processor: CommandProcessor, r: fakeredis.FakeRedis) -> None:
    result = _send(processor, type="cmd_subscribe", id="s9", topic="late/#", expires_at=1.0)
    assert result["ok"] is False
    assert not r.hexists(protocol.KEY_SUBSCRIPTIONS, "late/#")


def test_unsubscribe_removes_from_broker_and_redis(
    processor: CommandProcessor, broker: FakeBroker, r: fakeredis.FakeRedis
) -> None:
    _send(processor, type="cmd_subscribe", topic="alerts/+")
    result = _send(processor, type="cmd_unsubscribe", id="u1", topic="alerts/+")
    assert result["ok"] is True
    assert "alerts/+" not in broker.subscribed
    assert not r.hexists(protocol.KEY_SUBSCRIPTIONS, "alerts/+")
    again = _send(processor, type="cmd_unsubscribe", topic="alerts/+")
    assert again["ok"] is False and "not subscribed" in again["error"]


@pytest.mark.parametrize(
    ("raw", "expected_id", "words"),
    [
        (b"\xff\xfe garbage", None, "not valid JSON"),
        (b'{"type": "cmd_publish", "id": 7, "topic": "a/#"}', None, "id must be a string"),
        (b'{"type": "cmd_publish", "id": {"x": 1}, "topic": "a"}', None, "id must be a string"),
        (b'{"type": "cmd_publish", "id": 7, "topic": "fine"}', None, "so the command was not run"),
        (b'{"type": "cmd_publish", "id": "k", "topic": "a", "qos": 5}', "k", "qos must be 0, 1 or 2"),
        (b'{"type": "cmd_nope", "id": "z"}', "z", "unknown command type"),
    ],
)
def test_bad_commands_are_answered_not_crashed_on(
    processor: CommandProcessor, broker: FakeBroker, raw: bytes, expected_id: str | None, words: str
) -> None:
    result = processor.handle(raw)
    assert (result["ok"], result["id"]) == (False, expected_id)
    assert words in result["error"]
    assert broker.published == []
    assert processor.counters.commands_failed == 1


def test_listener_answers_over_redis(processor: CommandProcessor, r: fakeredis.FakeRedis) -> None:
    stop = threading.Event()
    listener = CommandListener(r, processor, stop, backoff=NoWait())
    results = r.pubsub(ignore_subscribe_messages=True)
    results.subscribe(protocol.CHANNEL_RESULTS)
    listener.start()
    try:
        wait_for(listener.ready.is_set, 5, what="listener subscribed")
        r.publish(
            protocol.CHANNEL_COMMANDS,
            json.dumps({"type": "cmd_publish", "id": "r1", "topic": "x", "payload": "1"}),
        )
        r.publish(protocol.CHANNEL_COMMANDS, "{{{")
        answers: list[dict] = []

        def two_answers() -> bool:
            msg = results.get_message(timeout=0.05)
            if msg is not None:
                answers.append(json.loads(msg["data"]))
            return len(answers) == 2

        wait_for(two_answers, 5, what="two answers")
        assert [(a["id"], a["ok"]) for a in answers] == [("r1", True), (None, False)]
    finally:
        stop.set()
        listener.join(5)
    assert not listener.is_alive()
