"""Secrets that cross Redis, sealed with ``CONFIG_SECRET_KEY`` (Fernet, from ``cryptography``).

The dashboard seals a broker password before it puts a command on Redis, and the bridge opens it;
broker settings the bridge keeps in Redis hold the password sealed too. Both read the same key.
Several keys, comma-separated and newest first, rotate it: sealing uses the first, opening tries
each (``MultiFernet``). Nothing here ever puts a secret or a key into an error message.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bridge.errors import BridgeError, ConfigError

VARIABLE = "CONFIG_SECRET_KEY"
NO_KEY = (
    f"{VARIABLE} is not set, so no password can be saved or sent to the bridge; give the bridge and "
    "the dashboard the same key (make one with: mqtt-redis-bridge secret-key)"
)


class SealError(BridgeError):
    """A sealed secret that cannot be opened: another key, altered, too old, or not sealed at all."""


def generate_key() -> str:
    """A new key for ``CONFIG_SECRET_KEY`` (32 random bytes, URL-safe base64)."""
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    def __init__(self, keys: list[str]):
        if not keys:
            raise ConfigError(f"{VARIABLE} must hold at least one key")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                # Which key, never what it is.
                raise ConfigError(
                    f"{VARIABLE}: key {position} is not a Fernet key (32 bytes in URL-safe base64, "
                    "44 characters; make one with: mqtt-redis-bridge secret-key)"
                ) from None
        self._fernet = MultiFernet(fernets)

    @classmethod
    def from_setting(cls, text: str | None) -> SecretBox | None:
        """The box for a ``CONFIG_SECRET_KEY`` value; None when it is unset or blank."""
        if text is None or not text.strip():
            return None
        return cls([part.strip() for part in text.split(",") if part.strip()])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, sealed: object, max_age: float | None = None) -> str:
        """The secret in ``sealed``; ``max_age`` (seconds) refuses one sealed longer ago."""
        if not isinstance(sealed, str) or not sealed:
            raise SealError("a sealed password must be a non-empty string")
        try:
            token = sealed.encode("ascii")
        except UnicodeEncodeError:
            raise SealError("that is not a sealed password (plain text is not accepted)") from None
        try:
            opened = self._fernet.decrypt(token, ttl=None if max_age is None else int(max_age))
        except InvalidToken:
            raise SealError(
                f"the password was not sealed with this {VARIABLE}, was altered"
                + (f", or was sealed more than {max_age:g} s ago" if max_age is not None else "")
                + " (plain text is not accepted)"
            ) from None
        try:
            return opened.decode("utf-8")
        except UnicodeDecodeError:
            raise SealError("the sealed password is not UTF-8 text") from None
