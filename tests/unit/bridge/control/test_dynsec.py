"""cmd_dynsec: checked dynamic-security commands, answers matched to their command, sealed
passwords opened only for the broker, and $CONTROL traffic kept out of Redis."""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from typing import Any

import fakeredis
import pytest

from bridge.contract import protocol
from bridge.contract.secret_box import NO_KEY, SecretBox, account_binding, generate_key, seal_for_command
from bridge.control.commands import CommandProcessor
from bridge.control.dynsec import DYNSEC_RESPONSE_TOPIC, DYNSEC_TOPIC, DynsecClient
from bridge.ingest.counters import Counters
from bridge.ingest.mqtt_source import Item
from bridge.ingest.outgoing import UnknownOutcome
from bridge.ingest.redis_sink import RedisSink
from bridge.ingest.subscriptions import SubscriptionSet
from bridge.ingest.writer import Writer, drain
from bridge.insight.topics import TopicIndex
from tests.helpers import wait_for
from tests.unit.dynsec_fake import FakeDynsecBroker

BOX = SecretBox([generate_key()])


@pytest.fixture
def broker() -> FakeDynsecBroker:
    return FakeDynsecBroker()


@pytest.fixture
def dynsec(broker: FakeDynsecBroker) -> DynsecClient:
    client = DynsecClient(broker, BOX, timeout=0.5)
    broker.deliver = client.on_control
    return client


@pytest.fixture
def processor(r: fakeredis.FakeRedis, broker: FakeDynsecBroker, dynsec: DynsecClient) -> CommandProcessor:
    found = CommandProcessor(broker, SubscriptionSet(("#",), 1), RedisSink(r, 100), Counters())  # type: ignore[arg-type]
    found.register(protocol.CMD_DYNSEC, dynsec.handle, background=True)
    return found


def run(processor: CommandProcessor, r: fakeredis.FakeRedis, request: Any, **extra: Any) -> dict[str, Any]:
    """One cmd_dynsec through the processor (a background command) and its published answer."""
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(protocol.CHANNEL_RESULTS)
    body = {"type": protocol.CMD_DYNSEC, "id": "d1", "dynsec": request, **extra}
    answer = processor.handle(json.dumps(body))
    if answer is None:  # ran in the background: it publishes its own answer

        def published() -> dict[str, Any] | None:
            message = pubsub.get_message(timeout=0.05)
            return json.loads(message["data"]) if message else None

        answer = wait_for(published, 5, what="the background answer")
    pubsub.close()
    return answer


def test_a_command_goes_to_the_control_topic_and_the_broker_answer_comes_back_in_result(
    processor: CommandProcessor, r: fakeredis.FakeRedis, broker: FakeDynsecBroker
) -> None:
    broker.clients["u1"] = {"username": "u1", "password": "x", "roles": [], "groups": []}

    answer = run(processor, r, {"command": "listClients"})

    assert (answer["ok"], answer["error"], answer["command"]) == (True, None, "cmd_dynsec")
    assert answer["result"] == {"command": "listClients", "data": {"totalCount": 1, "clients": ["u1"]}}
    assert broker.subscribed == [DYNSEC_RESPONSE_TOPIC]
    sent = json.loads(broker.requests[0])["commands"]
    assert len(sent) == 1 and sent[0]["command"] == "listClients" and sent[0]["correlationData"]


def test_a_sealed_password_reaches_only_the_broker(
    processor: CommandProcessor,
    r: fakeredis.FakeRedis,
    broker: FakeDynsecBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sealed = seal_for_command(BOX, "s3cret-pw", account_binding("default", "dev1"))
    request = {"command": "createClient", "username": "dev1", "password": sealed}

    answer = run(processor, r, request)

    assert answer["ok"] is True and answer["result"] == {"command": "createClient"}
    assert broker.clients["dev1"]["password"] == "s3cret-pw"  # opened for the broker, which needs it
    assert "s3cret-pw" not in json.dumps(answer) and "s3cret-pw" not in caplog.text


@pytest.mark.parametrize(
    ("box", "password", "words"),
    [
        (BOX, "plain-text", "plain text is refused"),
        (BOX, {"sealed": "not-a-token"}, "password: the password was not sealed with this CONFIG_SECRET_KEY"),
        (None, None, NO_KEY),
    ],
)
def test_a_password_that_is_not_sealed_with_the_key_is_refused_and_nothing_is_sent(
    broker: FakeDynsecBroker, box: SecretBox | None, password: Any, words: str
) -> None:
    client = DynsecClient(broker, box, timeout=0.5)
    broker.deliver = client.on_control
    sealed = (
        seal_for_command(BOX, "hunter2-secret", account_binding("default", "u"))
        if password is None
        else password
    )
    command = protocol.Command(
        type=protocol.CMD_DYNSEC,
        args={"dynsec": {"command": "setClientPassword", "username": "u", "password": sealed}},
    )

    with pytest.raises(protocol.InvalidCommand) as refused:
        client.handle(command)

    assert words in str(refused.value)
    assert "hunter2-secret" not in str(refused.value) and "plain-text" not in str(refused.value)
    assert broker.requests == []


@pytest.mark.parametrize(
    ("request_body", "words"),
    [
        (None, 'needs a "dynsec" object'),
        ({"command": "setDefaultACLAccess"}, "'setDefaultACLAccess' is not one the bridge carries"),
        ({"command": "getClient"}, "getClient needs username"),
        ({"command": "getClient", "username": "u", "clientid": "x"}, "getClient does not take clientid"),
        ({"command": "deleteRole", "rolename": ""}, "rolename must be a non-empty string"),
        (
            {"command": "addRoleACL", "rolename": "r", "acltype": "publish", "topic": "a/#"},
            "acltype must be one of publishClientSend",
        ),
        (
            {"command": "addRoleACL", "rolename": "r", "acltype": "subscribePattern", "topic": "a/#/b"},
            "topic: ",
        ),
        (
            {"command": "createRole", "rolename": "r", "acls": [{"acltype": "subscribePattern"}]},
            "acls[0] needs topic",
        ),
        ({"command": "listClients", "count": "all"}, "count must be a whole number"),
        ({"command": "addClientRole", "username": "u", "rolename": "r", "priority": True}, "priority"),
    ],
)
def test_commands_outside_the_checked_subset_are_refused_in_words_and_never_sent(
    processor: CommandProcessor,
    r: fakeredis.FakeRedis,
    broker: FakeDynsecBroker,
    request_body: Any,
    words: str,
) -> None:
    answer = run(processor, r, request_body)

    assert answer["ok"] is False and words in answer["error"], answer["error"]
    assert broker.requests == []


def test_an_unknown_field_beside_dynsec_is_refused(
    processor: CommandProcessor, r: fakeredis.FakeRedis
) -> None:
    answer = run(processor, r, {"command": "listRoles"}, extra="x")

    assert answer["ok"] is False and "does not take extra" in answer["error"]


def test_the_broker_refusal_is_passed_on_in_its_own_words(
    processor: CommandProcessor, r: fakeredis.FakeRedis
) -> None:
    answer = run(processor, r, {"command": "deleteRole", "rolename": "nope"})

    assert (answer["ok"], answer["error"]) == (False, "the broker refused deleteRole: Role not found")
    assert answer["result"] == {"command": "deleteRole", "error": "Role not found"}


def test_a_broker_that_never_answers_gets_a_sentence_naming_the_plugin(
    dynsec: DynsecClient, broker: FakeDynsecBroker
) -> None:
    broker.answering = False

    answer = dynsec.handle(
        protocol.Command(type=protocol.CMD_DYNSEC, args={"dynsec": {"command": "listRoles"}})
    )

    assert answer.error is not None and "did not answer" in answer.error
    assert "dynamic security plugin" in answer.error
    # The broker took the command (PUBACK): it may have been carried out, and the answer says so.
    assert (
        isinstance(answer.error, UnknownOutcome) and "whether it was carried out is unknown" in answer.error
    )


def test_a_disconnected_broker_is_said_at_once(dynsec: DynsecClient, broker: FakeDynsecBroker) -> None:
    broker.connected = False

    answer = dynsec.handle(
        protocol.Command(type=protocol.CMD_DYNSEC, args={"dynsec": {"command": "listRoles"}})
    )

    assert answer.error == "the broker is not connected; the dynamic-security command was not sent"
    assert broker.requests == []


def test_answers_are_matched_by_correlation_data_not_by_arrival(dynsec: DynsecClient) -> None:
    """Another admin client shares the response topic; several commands wait at once."""
    seen: dict[str, Any] = {}

    class Slow(FakeDynsecBroker):
        def publish(self, topic: str, payload: bytes, qos: int, retain: bool, timeout: float) -> str | None:
            self.requests.append(payload)
            return None

    broker = Slow()
    client = DynsecClient(broker, BOX, timeout=5)

    def ask(name: str) -> None:
        seen[name] = client.request({"command": "getRole", "rolename": name})

    threads = [threading.Thread(target=ask, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(broker.requests) == 2, 5, what="both requests")
    ids = {
        json.loads(p)["commands"][0]["rolename"]: json.loads(p)["commands"][0]["correlationData"]
        for p in broker.requests
    }

    def response(*answers: dict[str, Any]) -> Item:
        return (
            DYNSEC_RESPONSE_TOPIC,
            json.dumps({"responses": list(answers)}).encode(),
            0,
            False,
            0.0,
            0,
            False,
        )

    client.on_control(
        [
            (DYNSEC_TOPIC, b'{"commands": []}', 0, False, 0.0, 0, False),  # a request seen via a wide filter
            response({"command": "getRole", "data": {"other": True}, "correlationData": "someone-else"}),
            response({"command": "getRole", "data": {"role": "b"}, "correlationData": ids["b"]}),
            (DYNSEC_RESPONSE_TOPIC, b"not json", 0, False, 0.0, 0, False),
            response({"command": "getRole", "data": {"role": "a"}, "correlationData": ids["a"]}),
        ]
    )
    for thread in threads:
        thread.join(5)

    assert seen["a"]["data"] == {"role": "a"} and seen["b"]["data"] == {"role": "b"}


def test_control_messages_never_reach_redis_and_are_acknowledged(r: fakeredis.FakeRedis) -> None:
    control: list[Item] = []
    acked: list[int] = []
    counters = Counters()
    subs = SubscriptionSet(("#", "$CONTROL/#"), 1)  # even a filter that names $CONTROL
    writer = Writer(
        deque(),
        RedisSink(r, history_maxlen=100),
        counters,
        TopicIndex(),
        lambda items: None,
        subs.forwards_sys,
        threading.Event(),
        ack=lambda mid, qos: acked.append(mid),
        on_control=control.extend,
    )
    request = b'{"commands":[{"command":"createClient","username":"u","password":"clear"}]}'
    items: deque[Item] = deque(
        [
            (DYNSEC_TOPIC, request, 1, False, 1.0, 5, False),
            (DYNSEC_RESPONSE_TOPIC, b'{"responses":[]}', 0, False, 1.0, 0, False),
            ("a/b", b"data", 0, False, 1.0, 0, False),
        ]
    )
    writer.process(drain(items, 10))

    history = [json.loads(fields[b"data"])["topic"] for _, fields in r.xrange(protocol.KEY_HISTORY)]
    assert history == ["a/b"]
    assert [item[0] for item in control] == [DYNSEC_TOPIC, DYNSEC_RESPONSE_TOPIC]
    assert acked == [5]  # no Redis write will acknowledge it, so the writer does
    assert (counters.forwarded, counters.system, writer.in_flight) == (1, 2, 0)


@pytest.mark.parametrize(
    ("broker_name", "username"),
    [("other-broker", "dev1"), ("default", "someone-else")],
)
def test_a_password_sealed_for_another_account_or_broker_is_refused_and_not_sent(
    broker: FakeDynsecBroker, broker_name: str, username: str
) -> None:
    client = DynsecClient(broker, BOX, timeout=0.5)
    broker.deliver = client.on_control
    sealed = seal_for_command(BOX, "pw-for-elsewhere", account_binding(broker_name, username))
    command = protocol.Command(
        type=protocol.CMD_DYNSEC,
        args={"dynsec": {"command": "createClient", "username": "dev1", "password": sealed}},
    )

    with pytest.raises(protocol.InvalidCommand, match="sealed for another destination"):
        client.handle(command)
    assert broker.requests == [] and "dev1" not in broker.clients


# --- the bridge's own account (issue 21, defect 1) ------------------------------------------

OWN = "mqtt-bridge"


@pytest.fixture
def guarded(broker: FakeDynsecBroker) -> DynsecClient:
    """A DynsecClient whose live connection uses the account OWN, which holds role "admin" and is in
    group "ops" (which has role "ops-role")."""
    broker.roles.update({name: {"rolename": name, "acls": []} for name in ("admin", "ops-role", "tenant:a")})
    broker.groups["ops"] = {"groupname": "ops", "roles": [{"rolename": "ops-role"}]}
    broker.clients[OWN] = {
        "username": OWN,
        "password": "x",
        "roles": [{"rolename": "admin"}],
        "groups": [{"groupname": "ops"}],
    }
    broker.clients["dev"] = {"username": "dev", "password": "y", "roles": [], "groups": []}
    client = DynsecClient(broker, BOX, timeout=0.5, own_username=lambda: OWN)
    broker.deliver = client.on_control
    return client


def _dynsec(request: dict[str, Any]) -> protocol.Command:
    return protocol.Command(type=protocol.CMD_DYNSEC, args={"dynsec": request})


@pytest.mark.parametrize(
    "request_body",
    [
        {"command": "disableClient", "username": OWN},
        {"command": "deleteClient", "username": OWN},
        {"command": "setClientPassword", "username": OWN, "password": "sealed below"},
        {"command": "addClientRole", "username": OWN, "rolename": "tenant:a"},
        {"command": "removeClientRole", "username": OWN, "rolename": "admin"},
        {"command": "addGroupClient", "groupname": "ops", "username": OWN},
        {"command": "removeGroupClient", "groupname": "ops", "username": OWN},
        {"command": "deleteRole", "rolename": "admin"},
        {"command": "deleteRole", "rolename": "ops-role"},  # held through its group
        {"command": "addRoleACL", "rolename": "admin", "acltype": "publishClientSend", "topic": "#"},
        {"command": "removeRoleACL", "rolename": "admin", "acltype": "publishClientSend", "topic": "#"},
        {"command": "deleteGroup", "groupname": "ops"},
        {"command": "removeGroupRole", "groupname": "ops", "rolename": "ops-role"},
    ],
)
def test_no_command_can_change_the_bridges_own_account(
    guarded: DynsecClient, broker: FakeDynsecBroker, request_body: dict[str, Any]
) -> None:
    if "password" in request_body:
        request_body = {
            **request_body,
            "password": seal_for_command(BOX, "new", account_binding("default", OWN)),
        }
    before = json.dumps([broker.clients, broker.roles, broker.groups], sort_keys=True)

    answer = guarded.handle(_dynsec(request_body))

    assert (
        answer.error is not None
        and f"the bridge connects to the broker with the account {OWN!r}" in answer.error
    )
    assert json.dumps([broker.clients, broker.roles, broker.groups], sort_keys=True) == before
    sent = [json.loads(p)["commands"][0]["command"] for p in broker.requests]
    assert request_body["command"] not in sent  # at most the lookups (getClient, getGroup) went out


def test_the_same_commands_on_other_accounts_roles_and_groups_still_run(
    guarded: DynsecClient, broker: FakeDynsecBroker
) -> None:
    broker.groups["tenant:a"] = {"groupname": "tenant:a", "roles": []}
    for request_body in (
        {"command": "disableClient", "username": "dev"},
        {"command": "deleteRole", "rolename": "tenant:a"},
        {"command": "deleteGroup", "groupname": "tenant:a"},
    ):
        assert guarded.handle(_dynsec(request_body)).error is None, request_body
    assert broker.clients["dev"]["disabled"] is True
    assert "tenant:a" not in broker.roles and "tenant:a" not in broker.groups


def test_without_a_user_name_the_bridge_has_no_account_to_protect(broker: FakeDynsecBroker) -> None:
    broker.clients[OWN] = {"username": OWN, "password": "x", "roles": [], "groups": []}
    client = DynsecClient(broker, BOX, timeout=0.5, own_username=lambda: None)
    broker.deliver = client.on_control

    assert client.handle(_dynsec({"command": "disableClient", "username": OWN})).error is None
