"""Broker settings from commands and in Redis: what may change, where the password may go, and
that it is never readable in what is described or saved."""

from __future__ import annotations

import json

import fakeredis
import pytest

from bridge.config import Settings
from bridge.contract import protocol
from bridge.contract.errors import InvalidCommand
from bridge.contract.secret_box import NO_KEY, SecretBox, connection_binding, generate_key, seal_for_command
from bridge.control import broker_settings

BOX = SecretBox([generate_key()])
LIVE = Settings.from_env(
    {"MQTT_BROKER_HOST": "broker.local", "MQTT_USERNAME": "alice", "MQTT_PASSWORD": "s3cret-live"}
)


def sealed_for(secret: str, host: str = "broker.local", port: int = 1883, user: str | None = "alice") -> dict:
    """``secret`` sealed as the dashboard seals it for a connection to host:port as user (no TLS)."""
    return seal_for_command(BOX, secret, connection_binding(host, port, user, False, False))


def test_absent_fields_keep_the_live_values() -> None:
    found = broker_settings.from_command({"port": 8883, "tls": True}, LIVE, BOX)

    assert (found.broker_host, found.broker_port, found.tls, found.username) == (
        "broker.local",
        8883,
        True,
        "alice",
    )


def test_the_live_password_stays_only_with_the_same_host_port_and_user() -> None:
    same = broker_settings.from_command({"keepalive": 60}, LIVE, BOX)
    elsewhere = broker_settings.from_command({"host": "attacker.example"}, LIVE, BOX)
    other_user = broker_settings.from_command({"username": "bob"}, LIVE, BOX)

    assert same.password == "s3cret-live"
    assert elsewhere.password is None and other_user.password is None


def test_a_sealed_password_is_opened_and_null_means_none() -> None:
    sealed = broker_settings.from_command({"password": sealed_for("new one")}, LIVE, BOX)
    cleared = broker_settings.from_command({"password": None, "username": None}, LIVE, BOX)

    assert sealed.password == "new one"
    assert (cleared.password, cleared.username) == (None, None)


@pytest.mark.parametrize(
    ("args", "box", "words"),
    [
        ({"password": "plain text"}, BOX, "password must be sealed with CONFIG_SECRET_KEY"),
        ({"password": {"sealed": "x"}}, None, NO_KEY),
        ({"port": 0}, BOX, "port must be a whole number from 1 to 65535"),
        ({"port": "1883"}, BOX, "port must be a whole number"),
        ({"host": "a b"}, BOX, "host must be a host name or address"),
        ({"protocol": "4.0"}, BOX, 'protocol must be "5" or "3.1.1"'),
        ({"keepalive": 1}, BOX, "keepalive must be a whole number of seconds from 5 to 3600"),
        ({"tls": "yes"}, BOX, "tls must be true or false"),
        ({"tls_ca": "/no/such/ca.pem"}, BOX, "tls_ca: this bridge takes no file paths from commands"),
        ({"colour": "red"}, BOX, "unknown field 'colour'"),
        ({"username": None, "password": sealed_for("x", user=None)}, BOX, "a password needs a username"),
        (
            {"username": "alice\r\nFAKE LOG LINE"},
            BOX,
            "username must not contain control characters (found U+000D)",
        ),
        ({"host": "broker\x00.local"}, BOX, "host must not contain control characters (found U+0000)"),
        ({"password": sealed_for("pw\nwith a newline")}, BOX, "password must not contain control characters"),
        ({"tls_ca": "ca\n.pem"}, BOX, "tls_ca must not contain control characters"),
    ],
)
def test_bad_settings_are_refused_in_words(args: dict, box: SecretBox | None, words: str) -> None:
    with pytest.raises(InvalidCommand) as caught:
        broker_settings.from_command(args, LIVE, box)
    assert words in str(caught.value)
    assert "s3cret-live" not in str(caught.value)


def test_described_settings_never_hold_the_password() -> None:
    described = broker_settings.describe(LIVE, broker_settings.SOURCE_ENVIRONMENT)

    assert described["password"] == "set" and "s3cret-live" not in json.dumps(described)
    assert described["protocol"] == "5" and described["broker"] == "broker.local:1883"


def test_saved_settings_hold_the_password_sealed_and_come_back_on_load() -> None:
    r = fakeredis.FakeRedis()
    wanted = broker_settings.from_command(
        {
            "host": "other",
            "port": 1884,
            "username": "bob",
            "password": sealed_for("pw", "other", 1884, "bob"),
        },
        LIVE,
        BOX,
    )
    r.set(protocol.KEY_BROKER_SETTINGS, broker_settings.saved_record(wanted, BOX))

    raw = r.get(protocol.KEY_BROKER_SETTINGS)
    loaded = broker_settings.load_saved(r, LIVE, BOX)

    assert raw is not None and b'pw"' not in raw and json.loads(raw)["password_sealed"]
    assert loaded is not None
    assert (loaded.broker_host, loaded.broker_port, loaded.username, loaded.password) == (
        "other",
        1884,
        "bob",
        "pw",
    )
    assert loaded.client_id == LIVE.client_id


def test_saving_a_password_without_a_key_is_refused() -> None:
    with pytest.raises(InvalidCommand, match="CONFIG_SECRET_KEY is not set"):
        broker_settings.saved_record(LIVE, None)


def test_saved_settings_that_cannot_be_opened_fall_back_to_the_environment(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = fakeredis.FakeRedis()
    r.set(protocol.KEY_BROKER_SETTINGS, broker_settings.saved_record(LIVE, BOX))

    assert broker_settings.load_saved(r, LIVE, SecretBox([generate_key()])) is None  # another key
    assert broker_settings.load_saved(r, LIVE, None) is None  # no key
    assert "ignoring the broker settings saved in Redis" in caplog.text
    assert "s3cret-live" not in caplog.text


# --- where a password may go (issue 21, defect 11) -------------------------------------------


def test_a_password_sealed_for_one_broker_is_not_sent_to_another() -> None:
    """A sealed password seen on mqtt:commands, replayed in a command that names another host (or
    port, user, TLS), is refused: it opens only for the connection it was sealed for."""
    seen_on_redis = sealed_for("s3cret-elsewhere")

    for elsewhere in ({"host": "attacker.example"}, {"port": 1884}, {"username": "bob"}, {"tls": True}):
        with pytest.raises(InvalidCommand, match="sealed for another destination") as refused:
            broker_settings.from_command({**elsewhere, "password": seen_on_redis}, LIVE, BOX)
        assert "s3cret-elsewhere" not in str(refused.value)
    assert broker_settings.from_command({"password": seen_on_redis}, LIVE, BOX).password == "s3cret-elsewhere"


def test_the_live_password_stays_only_while_tls_stays_as_it_is() -> None:
    assert broker_settings.from_command({"tls_insecure": True}, LIVE, BOX).password is None
    assert broker_settings.from_command({"tls": True}, LIVE, BOX).password is None


def test_saved_settings_changed_in_redis_do_not_take_the_password_along(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whoever can write Redis changes the host of the saved settings: the next start must not
    send the saved password there. The settings are ignored as a whole (the environment's used)."""
    r = fakeredis.FakeRedis()
    saved = broker_settings.from_command(
        {
            "host": "other",
            "port": 1884,
            "username": "bob",
            "password": sealed_for("pw-b", "other", 1884, "bob"),
        },
        LIVE,
        BOX,
    )
    record = json.loads(broker_settings.saved_record(saved, BOX))
    for field, value in (
        ("host", "attacker.example"),
        ("port", 4444),
        ("username", "mallory"),
        ("tls", True),
    ):
        r.set(protocol.KEY_BROKER_SETTINGS, json.dumps({**record, field: value}))
        assert broker_settings.load_saved(r, LIVE, BOX) is None, field
    assert "sealed for another destination" in caplog.text and "pw-b" not in caplog.text
    r.set(protocol.KEY_BROKER_SETTINGS, json.dumps(record))
    assert broker_settings.load_saved(r, LIVE, BOX).password == "pw-b"  # type: ignore[union-attr]


def test_tls_files_come_only_from_config_tls_dir(tmp_path: pytest.TempPathFactory) -> None:
    tls_dir = tmp_path / "tls"  # type: ignore[operator]
    tls_dir.mkdir()
    (tls_dir / "ca.pem").write_text("not checked here")
    outside = tmp_path / "secret.key"  # type: ignore[operator]
    outside.write_text("x")
    (tls_dir / "link.pem").symlink_to(outside)
    live = Settings.from_env({"MQTT_BROKER_HOST": "broker.local", "CONFIG_TLS_DIR": str(tls_dir)})

    assert broker_settings.from_command({"tls_ca": "ca.pem"}, live, BOX).tls_ca == str(tls_dir / "ca.pem")
    assert broker_settings.from_command({"tls_ca": str(tls_dir / "ca.pem")}, live, BOX).tls_ca == str(
        tls_dir / "ca.pem"
    )
    for escape in (str(outside), "../secret.key", "link.pem", "/etc/passwd", "/no/such/file"):
        with pytest.raises(InvalidCommand, match="tls_ca must name a file inside CONFIG_TLS_DIR"):
            broker_settings.from_command({"tls_ca": escape}, live, BOX)
    with pytest.raises(InvalidCommand, match=r"tls_ca: no file 'missing\.pem' in CONFIG_TLS_DIR"):
        broker_settings.from_command({"tls_ca": "missing.pem"}, live, BOX)
