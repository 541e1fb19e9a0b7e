"""``mqtt-dashboard users …``: the same users and rules as the Users page, from a terminal."""

from __future__ import annotations

import io
import json

import fakeredis
import pytest

from bridge.contract.protocol import CHANNEL_SESSION_REVOKED, KEY_AUDIT
from dashboard import runner
from dashboard.users import UserStore
from dashboard.users_cli import main


def run(client: fakeredis.FakeRedis, *argv: str, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), {}, stdin=io.StringIO(stdin), out=out, client=client)
    return code, out.getvalue()


def test_add_reads_the_password_from_standard_input(redis_client: fakeredis.FakeRedis) -> None:
    code, out = run(
        redis_client, "add", "alice", "--role", "operator", "--tenant", "acme", stdin="a long password\n"
    )

    assert code == 0
    assert out == "added alice (operator, tenant acme on broker default)\n"
    assert UserStore(redis_client).verify("alice", "a long password") is not None  # the default cost
    assert "a long password" not in json.dumps(redis_client.hgetall("mqtt:dashboard:users"))


def test_list_set_role_disable_enable_set_password_delete(redis_client: fakeredis.FakeRedis) -> None:
    run(redis_client, "add", "bob", "--role", "viewer", stdin="first password\n")
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL_SESSION_REVOKED)

    assert run(redis_client, "set-role", "bob", "admin") == (0, "changed bob (admin)\n")
    assert run(redis_client, "disable", "bob") == (0, "changed bob (admin, disabled)\n")
    assert run(redis_client, "list") == (0, "bob (admin, disabled)\n")
    assert run(redis_client, "enable", "bob")[0] == 0
    assert run(redis_client, "set-password", "bob", stdin="second password\n")[0] == 0
    assert UserStore(redis_client).verify("bob", "second password") is not None
    assert run(redis_client, "delete", "bob") == (0, "deleted bob\n")
    assert run(redis_client, "list") == (0, "no users yet\n")

    # every change told the running dashboards to close bob's sockets
    told = [pubsub.get_message(timeout=1) for _ in range(6)]  # the first is the subscription's own
    assert [json.loads(m["data"])["user"] for m in told if m] == ["bob"] * 5
    actions = [json.loads(f["data"])["action"] for _, f in redis_client.xrange(KEY_AUDIT)]
    assert actions == ["user_create"] + ["user_change"] * 4 + ["user_delete"]
    entries = [json.loads(f["data"]) for _, f in redis_client.xrange(KEY_AUDIT)]
    assert {e["user"] for e in entries} == {"(command line)"}
    assert "second password" not in json.dumps(entries)
    pubsub.close()


@pytest.mark.parametrize(
    ("argv", "stdin", "words"),
    [
        (("add", "carol", "--role", "viewer"), "short\n", "at least 8 characters"),
        (("add", "carol", "--role", "admin", "--tenant", "acme"), "a long password\n", "not an admin"),
        (("set-role", "nobody", "viewer"), "", "no user named 'nobody'"),
        (("delete", "nobody"), "", "no user named 'nobody'"),
    ],
)
def test_a_change_that_cannot_be_made_fails_in_one_line(
    redis_client: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], argv: tuple, stdin: str, words: str
) -> None:
    code, _ = run(redis_client, *argv, stdin=stdin)

    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mqtt-dashboard users: ") and words in err


def test_an_unknown_role_is_a_usage_error(redis_client: fakeredis.FakeRedis) -> None:
    with pytest.raises(SystemExit) as exc:
        run(redis_client, "add", "carol", "--role", "root")
    assert exc.value.code == 2


def test_mqtt_dashboard_users_runs_the_users_command_not_gunicorn(capsys: pytest.CaptureFixture[str]) -> None:
    # A bad Redis setting stops it before any connection, in one line, as the dashboard would.
    assert runner.main(["users", "list"], environ={"REDIS_PORT": "many"}) == 2
    assert capsys.readouterr().err.startswith("mqtt-dashboard users: REDIS_PORT")
