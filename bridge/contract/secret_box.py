"""Secrets that cross Redis, sealed with ``CONFIG_SECRET_KEY`` (Fernet, from ``cryptography``).

The dashboard seals a broker password before it puts a command on Redis, and the bridge opens it;
broker settings the bridge keeps in Redis hold the password sealed too. Both read the same key.
Several keys, comma-separated and newest first, rotate it: sealing uses the first, opening tries
each (``MultiFernet``). Nothing here ever puts a secret or a key into an error message.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bridge.contract.errors import BridgeError, ConfigError, InvalidCommand

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


# A sealed secret inside a command is accepted for this long after sealing: enough for any queue,
# short enough that a command copied out of Redis (MONITOR, a log) cannot be replayed later.
COMMAND_SECRET_MAX_AGE = 120.0


def seal_for_command(box: SecretBox, secret: str) -> dict[str, str]:
    """How a secret travels in a command: ``{"sealed": "<Fernet token>"}``."""
    return {"sealed": box.seal(secret)}


def open_command_secret(box: SecretBox | None, value: object, field: str) -> str:
    """The secret a command carries in ``field``; InvalidCommand (never the secret) otherwise.

    Plain text is refused even when it would work, so that no client gets into the habit of
    sending passwords readable to anyone who can SUBSCRIBE or MONITOR on Redis.
    """
    if box is None:
        raise InvalidCommand(NO_KEY)
    if not isinstance(value, dict) or set(value) != {"sealed"}:
        raise InvalidCommand(
            f'{field} must be sealed with {VARIABLE}, as {{"sealed": "<token>"}} (the dashboard does '
            "this; from a shell: mqtt-redis-bridge seal); plain text is refused so that a password "
            "never crosses Redis readable"
        )
    try:
        return box.open(value["sealed"], max_age=COMMAND_SECRET_MAX_AGE)
    except SealError as exc:
        raise InvalidCommand(f"{field}: {exc}") from None
