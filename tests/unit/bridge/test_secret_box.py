"""Passwords sealed with CONFIG_SECRET_KEY: round trip, rotation, and refusals that leak nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from bridge.errors import ConfigError
from bridge.secret_box import SealError, SecretBox, generate_key

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
