"""Passwords sealed with CONFIG_SECRET_KEY: round trip, rotation, and refusals that leak nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from cryptography.fernet import Fernet

from bridge.contract.errors import ConfigError, InvalidCommand
from bridge.contract.secret_box import (
    COMMAND_SECRET_MAX_AGE,
    PURPOSE_SAVED_SETTINGS,
    SealError,
    SecretBox,
    account_binding,
    connection_binding,
    generate_key,
    open_command_secret,
    seal_for_command,
)

SECRET = "s3cr3t pässword"
TO_BROKER = connection_binding("broker.example", 8883, "alice", True, False)


def test_a_sealed_password_opens_with_the_same_key_and_is_not_readable() -> None:
    key = generate_key()
    sealed = SecretBox.from_setting(key).seal(SECRET, TO_BROKER)  # type: ignore[union-attr]

    assert SECRET not in sealed
    assert SecretBox.from_setting(key).open(sealed, TO_BROKER) == SECRET  # type: ignore[union-attr]


def test_unset_or_blank_means_no_box() -> None:
    assert SecretBox.from_setting(None) is None
    assert SecretBox.from_setting("   ") is None


def test_rotation_seals_with_the_first_key_and_opens_with_any() -> None:
    old, new = generate_key(), generate_key()
    sealed_long_ago = SecretBox([old]).seal(SECRET, TO_BROKER)
    rotated = SecretBox.from_setting(f"{new}, {old}")
    assert rotated is not None

    assert rotated.open(sealed_long_ago, TO_BROKER) == SECRET
    assert SecretBox([new]).open(rotated.seal(SECRET, TO_BROKER), TO_BROKER) == SECRET


@pytest.mark.parametrize("sealed", [SECRET, "", None, 42, "gAAAAA-not-really", "ünïcode"])
def test_plain_text_and_junk_are_refused_without_echoing_them(sealed: object) -> None:
    box = SecretBox([generate_key()])

    with pytest.raises(SealError) as refused:
        box.open(sealed, TO_BROKER)

    assert SECRET not in str(refused.value)
    if isinstance(sealed, str) and sealed:
        assert sealed not in str(refused.value)


def test_another_key_or_a_stale_seal_is_refused() -> None:
    key = generate_key()
    box = SecretBox([key])
    sealed_in_1970 = box._fernet.encrypt_at_time(
        json.dumps({"v": 2, **TO_BROKER.as_json(), "secret": SECRET}).encode(), 1_000_000
    ).decode()

    with pytest.raises(SealError, match="not sealed with this CONFIG_SECRET_KEY"):
        SecretBox([generate_key()]).open(box.seal(SECRET, TO_BROKER), TO_BROKER)
    assert box.open(sealed_in_1970, TO_BROKER) == SECRET  # no age limit asked for
    with pytest.raises(SealError, match="more than 60 s ago"):
        box.open(sealed_in_1970, TO_BROKER, max_age=60)


def test_a_bad_key_names_its_position_never_its_value() -> None:
    good = generate_key()
    with pytest.raises(ConfigError) as bad:
        SecretBox.from_setting(f"{good},not-a-key-at-all")

    assert "key 2 is not a Fernet key" in str(bad.value)
    assert "not-a-key-at-all" not in str(bad.value) and good not in str(bad.value)


def test_the_cli_prints_a_usable_key() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "secret-key"], capture_output=True, text=True, check=True, timeout=60
    )
    key = done.stdout.strip()

    assert SecretBox([key]).open(SecretBox([key]).seal(SECRET, TO_BROKER), TO_BROKER) == SECRET


# --- where a sealed secret may go (issue 21, defect 11) ------------------------------------


@pytest.mark.parametrize(
    ("elsewhere", "differs"),
    [
        (connection_binding("attacker.example", 8883, "alice", True, False), "host"),
        (connection_binding("broker.example", 1883, "alice", True, False), "port"),
        (connection_binding("broker.example", 8883, "mallory", True, False), "username"),
        (connection_binding("broker.example", 8883, "alice", False, False), "tls"),
        (connection_binding("broker.example", 8883, "alice", True, True), "tls_insecure"),
    ],
)
def test_a_secret_opens_only_for_the_destination_it_was_sealed_for(elsewhere: object, differs: str) -> None:
    box = SecretBox([generate_key()])
    sealed = box.seal(SECRET, TO_BROKER)

    with pytest.raises(SealError) as refused:
        box.open(sealed, elsewhere)  # type: ignore[arg-type]

    assert f"sealed for another destination (its {differs} differ" in str(refused.value)
    assert SECRET not in str(refused.value)
    assert box.open(sealed, connection_binding(" broker.example ", 8883, "alice", True, False)) == SECRET


def test_a_secret_opens_only_for_the_purpose_it_was_sealed_for() -> None:
    box = SecretBox([generate_key()])
    saved = connection_binding("broker.example", 8883, "alice", True, False, PURPOSE_SAVED_SETTINGS)
    account = account_binding("default", "alice")

    with pytest.raises(SealError, match="sealed for another use"):
        box.open(box.seal(SECRET, saved), TO_BROKER)
    with pytest.raises(SealError, match="sealed for another use"):
        box.open(box.seal(SECRET, account), TO_BROKER)
    with pytest.raises(SealError, match="sealed for another destination"):
        box.open(box.seal(SECRET, account), account_binding("broker-2", "alice"))


def test_a_secret_sealed_by_an_older_version_is_refused_with_what_to_do() -> None:
    key = generate_key()
    old_style = Fernet(key.encode()).encrypt(SECRET.encode()).decode()  # the bare secret, bound to nothing

    with pytest.raises(SealError, match="sealed by an older version") as refused:
        SecretBox([key]).open(old_style, TO_BROKER)
    assert "saved again from the dashboard" in str(refused.value) and SECRET not in str(refused.value)


# --- secrets inside commands ---------------------------------------------------------------


def test_a_command_secret_travels_sealed_and_opens_on_the_other_side() -> None:
    box = SecretBox([generate_key()])
    field = seal_for_command(box, SECRET, TO_BROKER)

    assert set(field) == {"sealed"} and SECRET not in json.dumps(field)
    assert open_command_secret(box, field, "password", TO_BROKER) == SECRET


@pytest.mark.parametrize("value", [SECRET, {"plain": SECRET}, {"sealed": SECRET}, None, 7])
def test_a_command_secret_in_plain_text_is_refused_without_echoing_it(value: object) -> None:
    with pytest.raises(InvalidCommand) as refused:
        open_command_secret(SecretBox([generate_key()]), value, "password", TO_BROKER)

    assert str(refused.value).startswith("password")
    assert SECRET not in str(refused.value)


def test_without_a_key_a_command_secret_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidCommand, match="CONFIG_SECRET_KEY is not set"):
        open_command_secret(None, {"sealed": "x"}, "password", TO_BROKER)


def test_a_command_secret_sealed_long_ago_cannot_be_replayed() -> None:
    box = SecretBox([generate_key()])
    plain = json.dumps({"v": 2, **TO_BROKER.as_json(), "secret": SECRET}).encode()
    old = box._fernet.encrypt_at_time(plain, int(time.time() - COMMAND_SECRET_MAX_AGE - 5))

    with pytest.raises(InvalidCommand, match="sealed more than 120 s ago"):
        open_command_secret(box, {"sealed": old.decode()}, "password", TO_BROKER)


def test_the_cli_seals_a_password_for_a_connection_without_echoing_it() -> None:
    key = generate_key()
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bridge", "seal", "--for", "connection"),
            *("--mqtt-broker-host", "broker.example", "--mqtt-broker-port", "8883"),
            *("--mqtt-username", "alice", "--mqtt-tls", "true"),
        ],
        input=SECRET + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "CONFIG_SECRET_KEY": key},
    )

    assert SECRET not in done.stdout + done.stderr
    assert open_command_secret(SecretBox([key]), json.loads(done.stdout), "password", TO_BROKER) == SECRET
    with pytest.raises(InvalidCommand, match="sealed for another destination"):
        elsewhere = connection_binding("elsewhere", 8883, "alice", True, False)
        open_command_secret(SecretBox([key]), json.loads(done.stdout), "password", elsewhere)


def test_the_cli_seals_a_password_for_an_account_of_a_named_bridge() -> None:
    key = generate_key()
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "seal", "--for", "account", "--account", "dev-1"],
        input=SECRET + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "CONFIG_SECRET_KEY": key, "BRIDGE_NAME": "plant-2"},
    )

    sealed = json.loads(done.stdout)
    assert (
        open_command_secret(SecretBox([key]), sealed, "password", account_binding("plant-2", "dev-1"))
        == SECRET
    )


def test_the_cli_says_what_a_seal_is_for_when_not_told() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "seal"],
        input=SECRET + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CONFIG_SECRET_KEY": generate_key()},
    )

    assert done.returncode == 2 and "seal needs --for connection" in done.stderr and done.stdout == ""


def test_the_cli_will_not_seal_without_a_key() -> None:
    env = {name: value for name, value in os.environ.items() if name != "CONFIG_SECRET_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "seal", "--for", "connection"],
        input=SECRET,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )

    assert done.returncode == 2
    assert "CONFIG_SECRET_KEY is not set" in done.stderr and done.stdout == ""
