"""Commands carried out by registered handlers: data in ``result``, their own checks, and
background commands that do not hold up the ones behind them."""

from __future__ import annotations

import json
import threading
from typing import Any

import fakeredis
import pytest

from bridge.contract import protocol
from bridge.contract.errors import InvalidCommand
from bridge.control.commands import BACKGROUND_LIMIT, Answer, CommandProcessor
from bridge.ingest.counters import Counters
from bridge.ingest.redis_sink import RedisSink
from bridge.ingest.subscriptions import SubscriptionSet
from tests.helpers import wait_for
from tests.unit.bridge.fakes import FakeBroker


@pytest.fixture
def processor(r: fakeredis.FakeRedis) -> CommandProcessor:
    return CommandProcessor(FakeBroker(), SubscriptionSet(("#",), 1), RedisSink(r, 100), Counters())  # type: ignore[arg-type]


def _handle(processor: CommandProcessor, **body: Any) -> dict[str, Any] | None:
    return processor.handle(json.dumps(body))


def test_a_registered_command_answers_with_its_result_object(processor: CommandProcessor) -> None:
    seen: list[protocol.Command] = []

    def reconnect(command: protocol.Command) -> Answer:
        seen.append(command)
        return Answer(result={"outcome": "connected", "reason": command.args["reason"]})

    processor.register(protocol.CMD_RECONNECT, reconnect)
    answer = _handle(processor, type="cmd_reconnect", id="c1", reason="settings changed")

    assert answer is not None
    assert (answer["ok"], answer["error"], answer["result"]) == (
        True,
        None,
        {"outcome": "connected", "reason": "settings changed"},
    )
    assert seen[0].topic == "" and seen[0].args == {"reason": "settings changed"}
    assert processor.counters.commands_ok == 1


def test_a_command_without_data_has_no_result_field(processor: CommandProcessor) -> None:
    answer = _handle(processor, type="cmd_publish", id="p", topic="a", payload="1")

    assert answer is not None and "result" not in answer


def test_a_contract_command_this_bridge_has_no_handler_for_is_refused_in_words(
    processor: CommandProcessor,
) -> None:
    answer = _handle(processor, type="cmd_dynsec", id="d1")

    assert answer is not None and answer["ok"] is False and answer["id"] == "d1"
    assert answer["error"].startswith("this bridge does not carry out cmd_dynsec")
    assert processor.counters.commands_failed == 1


def test_a_handlers_own_check_is_the_answer(processor: CommandProcessor) -> None:
    def check(command: protocol.Command) -> None:
        raise InvalidCommand("port must be a number from 1 to 65535")

    processor.register(protocol.CMD_TEST_CONNECTION, check)
    answer = _handle(processor, type="cmd_test_connection", id="t1", port="x")

    assert answer is not None
    assert (answer["ok"], answer["error"]) == (False, "port must be a number from 1 to 65535")


def test_a_filter_command_still_needs_a_valid_filter(processor: CommandProcessor) -> None:
    processor.register(protocol.CMD_CLEAR_RETAINED, lambda command: None)

    missing = _handle(processor, type="cmd_clear_retained", id="x1")
    bad = _handle(processor, type="cmd_clear_retained", id="x2", topic="a/#/b")

    assert missing is not None and missing["error"] == "topic is missing"
    assert bad is not None and "malformed" in bad["error"]


def test_only_types_of_the_contract_can_be_registered(processor: CommandProcessor) -> None:
    with pytest.raises(ValueError, match="not a command type"):
        processor.register("cmd_reboot", lambda command: None)


def test_a_background_command_answers_from_its_thread_and_holds_up_nothing(
    processor: CommandProcessor, r: fakeredis.FakeRedis
) -> None:
    release = threading.Event()

    def slow_test(command: protocol.Command) -> Answer:
        release.wait(10)
        return Answer(result={"outcome": "connected"})

    processor.register(protocol.CMD_TEST_CONNECTION, slow_test, background=True)
    results = r.pubsub(ignore_subscribe_messages=True)
    results.subscribe(protocol.CHANNEL_RESULTS)

    assert _handle(processor, type="cmd_test_connection", id="slow") is None  # answered later
    behind = _handle(processor, type="cmd_publish", id="next", topic="a", payload="1")
    assert behind is not None and behind["ok"] is True  # not held up by the slow one

    release.set()
    answers: list[dict[str, Any]] = []

    def answered() -> bool:
        message = results.get_message(timeout=0.05)
        if message is not None:
            answers.append(json.loads(message["data"]))
        return bool(answers)

    wait_for(answered, 5, what="the background command's answer")
    assert (answers[0]["id"], answers[0]["ok"], answers[0]["result"]) == (
        "slow",
        True,
        {"outcome": "connected"},
    )
    wait_for(lambda: processor.counters.commands_ok == 2, 5, what="both counted")


def test_background_commands_beyond_the_limit_are_refused_not_queued(processor: CommandProcessor) -> None:
    release = threading.Event()
    processor.register(
        protocol.CMD_TEST_CONNECTION, lambda command: release.wait(10) and None, background=True
    )
    try:
        for n in range(BACKGROUND_LIMIT):
            assert _handle(processor, type="cmd_test_connection", id=f"t{n}") is None
        refused = _handle(processor, type="cmd_test_connection", id="one-too-many")
    finally:
        release.set()

    assert refused is not None and refused["ok"] is False
    assert f"already running {BACKGROUND_LIMIT} long commands" in refused["error"]


def test_an_expired_background_command_is_answered_at_once_and_not_run(
    processor: CommandProcessor, r: fakeredis.FakeRedis
) -> None:
    ran: list[str] = []
    processor.register(
        protocol.CMD_TEST_CONNECTION, lambda command: ran.append(command.id or "") or None, background=True
    )
    seconds, _ = r.time()

    answer = _handle(processor, type="cmd_test_connection", id="late", expires_at=seconds - 10)

    assert answer is not None and answer["ok"] is False and "expired" in answer["error"]
    assert ran == []
