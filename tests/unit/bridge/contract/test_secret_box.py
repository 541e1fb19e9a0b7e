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
    SealError,
    SecretBox,
    generate_key,
    open_command_secret,
    seal_for_command,
)

SECRET = "s3cr3t pässword"


def test_a_sealed_password_opens_with_the_same_key_and_is_not_readable() -> None:
    key = generate_key()
    sealed = SecretBox.from_setting(key).seal(SECRET)  # type: ignore[union-attr]

    assert SECRET not in sealed
    assert SecretBox.from_setting(key).open(sealed) == SECRET  # type: ignore[union-attr]


def test_unset_or_blank_means_no_box() -> None:
    assert SecretBox.from_setting(None) is None
    assert SecretBox.from_setting("   ") is None


def test_rotation_seals_with_the_first_key_and_opens_with_any() -> None:
    old, new = generate_key(), generate_key()
    sealed_long_ago = SecretBox([old]).seal(SECRET)
    rotated = SecretBox.from_setting(f"{new}, {old}")
    assert rotated is not None

    assert rotated.open(sealed_long_ago) == SECRET
    assert SecretBox([new]).open(rotated.seal(SECRET)) == SECRET


@pytest.mark.parametrize("sealed", [SECRET, "", None, 42, "gAAAAA-not-really", "ünïcode"])
def test_plain_text_and_junk_are_refused_without_echoing_them(sealed: object) -> None:
    box = SecretBox([generate_key()])

    with pytest.raises(SealError) as refused:
        box.open(sealed)

    assert SECRET not in str(refused.value)
    if isinstance(sealed, str) and sealed:
        assert sealed not in str(refused.value)


def test_another_key_or_a_stale_seal_is_refused() -> None:
    key = generate_key()
    sealed_in_1970 = Fernet(key.encode()).encrypt_at_time(SECRET.encode(), 1_000_000).decode()

    with pytest.raises(SealError, match="not sealed with this CONFIG_SECRET_KEY"):
        SecretBox([generate_key()]).open(SecretBox([key]).seal(SECRET))
    assert SecretBox([key]).open(sealed_in_1970) == SECRET  # no age limit asked for
    with pytest.raises(SealError, match="more than 60 s ago"):
        SecretBox([key]).open(sealed_in_1970, max_age=60)


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

    assert SecretBox([key]).open(SecretBox([key]).seal(SECRET)) == SECRET


# --- secrets inside commands ---------------------------------------------------------------


def test_a_command_secret_travels_sealed_and_opens_on_the_other_side() -> None:
    box = SecretBox([generate_key()])
    field = seal_for_command(box, SECRET)

    assert set(field) == {"sealed"} and SECRET not in json.dumps(field)
    assert open_command_secret(box, field, "password") == SECRET


@pytest.mark.parametrize("value", [SECRET, {"plain": SECRET}, {"sealed": SECRET}, None, 7])
def test_a_command_secret_in_plain_text_is_refused_without_echoing_it(value: object) -> None:
    with pytest.raises(InvalidCommand) as refused:
        open_command_secret(SecretBox([generate_key()]), value, "password")

    assert str(refused.value).startswith("password")
    assert SECRET not in str(refused.value)


def test_without_a_key_a_command_secret_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidCommand, match="CONFIG_SECRET_KEY is not set"):
        open_command_secret(None, {"sealed": "x"}, "password")


def test_a_command_secret_sealed_long_ago_cannot_be_replayed() -> None:
    key = generate_key()
    old = Fernet(key.encode()).encrypt_at_time(SECRET.encode(), int(time.time() - COMMAND_SECRET_MAX_AGE - 5))

    with pytest.raises(InvalidCommand, match="sealed more than 120 s ago"):
        open_command_secret(SecretBox([key]), {"sealed": old.decode()}, "password")


def test_the_cli_seals_a_password_from_standard_input_without_echoing_it() -> None:
    key = generate_key()
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "seal"],
        input=SECRET + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "CONFIG_SECRET_KEY": key},
    )

    assert SECRET not in done.stdout + done.stderr
    assert open_command_secret(SecretBox([key]), json.loads(done.stdout), "password") == SECRET


def test_the_cli_will_not_seal_without_a_key() -> None:
    env = {name: value for name, value in os.environ.items() if name != "CONFIG_SECRET_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "seal"],
        input=SECRET,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )

    assert done.returncode == 2
    assert "CONFIG_SECRET_KEY is not set" in done.stderr and done.stdout == ""
