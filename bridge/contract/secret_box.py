"""Secrets that cross Redis, sealed with ``CONFIG_SECRET_KEY`` (Fernet, from ``cryptography``),
each bound to what it is for and where it may go.

The dashboard seals a broker password before it puts a command on Redis, and the bridge opens it;
broker settings the bridge keeps in Redis hold the password sealed too. Both read the same key.
Several keys, comma-separated and newest first, rotate it: sealing uses the first, opening tries
each (``MultiFernet``). Nothing here ever puts a secret or a key into an error message.

A sealed secret carries its ``Binding`` inside the token: a purpose (a connection test or switch,
the saved settings, a dynamic-security account) and a destination (host, port, user name, TLS for
a broker connection; the broker and the account for dynamic security). Fernet authenticates the
whole plaintext, so nobody without the key can change the binding, and ``open`` refuses a secret
whose binding is not the one the caller is about to use it for: a password seen on
``mqtt:commands`` cannot be replayed to another host, and saved settings whose host was changed in
Redis do not take the password along.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bridge.contract.errors import BridgeError, ConfigError, InvalidCommand

VARIABLE = "CONFIG_SECRET_KEY"
NO_KEY = (
    f"{VARIABLE} is not set, so no password can be saved or sent to the bridge; give the bridge and "
    "the dashboard the same key (make one with: mqtt-redis-bridge secret-key)"
)
# What a sealed secret may be used for.
PURPOSE_CONNECTION = "broker-connection"  # cmd_test_connection and cmd_configure
PURPOSE_SAVED_SETTINGS = "saved-broker-settings"  # the password kept in mqtt:bridge:broker-settings
PURPOSE_DYNSEC_ACCOUNT = "dynsec-account"  # a password cmd_dynsec gives to an account
SEAL_VERSION = 2  # version 1 held the bare secret, bound to nothing
OLD_SEAL = (
    "the password was sealed by an older version of mqtt-redis-bridge, without a destination, and is "
    "no longer accepted: seal it again (the dashboard does so on every send; saved broker settings "
    "must be saved again from the dashboard)"
)


class SealError(BridgeError):
    """A sealed secret that cannot be opened: another key, altered, too old, bound elsewhere, or
    not sealed at all."""


@dataclass(frozen=True)
class Binding:
    """What a sealed secret is for (``purpose``) and where it may go (``destination``)."""

    purpose: str
    destination: tuple[tuple[str, str | int | bool | None], ...]

    def as_json(self) -> dict[str, object]:
        return {"purpose": self.purpose, "to": dict(self.destination)}


def connection_binding(
    host: str,
    port: int,
    username: str | None,
    tls: bool,
    tls_insecure: bool,
    purpose: str = PURPOSE_CONNECTION,
) -> Binding:
    """A broker password's binding: the connection it may be sent over, as the bridge will make it
    (host stripped, no user name as None), so the dashboard and the bridge compute the same."""
    return Binding(
        purpose,
        (
            ("host", host.strip()),
            ("port", int(port)),
            ("username", username or None),
            ("tls", bool(tls)),
            ("tls_insecure", bool(tls_insecure)),
        ),
    )


def account_binding(broker: str, username: str) -> Binding:
    """A dynamic-security account's password: for that account, on that broker (the dashboard's
    broker name, ``default`` for the unnamed bridge)."""
    return Binding(PURPOSE_DYNSEC_ACCOUNT, (("broker", broker), ("username", username)))


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

    def seal(self, secret: str, binding: Binding) -> str:
        plain = json.dumps({"v": SEAL_VERSION, **binding.as_json(), "secret": secret}, ensure_ascii=False)
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def open(self, sealed: object, binding: Binding, max_age: float | None = None) -> str:
        """The secret in ``sealed`` if it was sealed for ``binding``; ``max_age`` (seconds)
        refuses one sealed longer ago."""
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
            body = json.loads(opened.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        if (
            not isinstance(body, dict)
            or body.get("v") != SEAL_VERSION
            or not isinstance(body.get("secret"), str)
        ):
            raise SealError(OLD_SEAL)
        wanted = binding.as_json()
        if body.get("purpose") != wanted["purpose"]:
            raise SealError(
                f"the password was sealed for another use ({_shown(body.get('purpose'))}, not "
                f"{binding.purpose}); it is not used here"
            )
        differ = _differing(body.get("to"), dict(binding.destination))
        if differ:
            raise SealError(
                f"the password was sealed for another destination (its {', '.join(differ)} "
                "differ from where it would go now); it is not sent there. Seal it for these settings"
            )
        secret: str = body["secret"]
        return secret


def _differing(sealed_to: object, wanted: Mapping[str, object]) -> list[str]:
    if not isinstance(sealed_to, dict):
        return list(wanted)
    return [name for name in sorted(set(wanted) | set(sealed_to)) if sealed_to.get(name) != wanted.get(name)]


def _shown(value: object) -> str:
    return value[:40] if isinstance(value, str) else "unknown"


# A sealed secret inside a command is accepted for this long after sealing: enough for any queue,
# short enough that a command copied out of Redis (MONITOR, a log) cannot be replayed later.
COMMAND_SECRET_MAX_AGE = 120.0


def seal_for_command(box: SecretBox, secret: str, binding: Binding) -> dict[str, str]:
    """How a secret travels in a command: ``{"sealed": "<Fernet token>"}``."""
    return {"sealed": box.seal(secret, binding)}


def open_command_secret(box: SecretBox | None, value: object, field: str, binding: Binding) -> str:
    """The secret a command carries in ``field``, if sealed for ``binding``; InvalidCommand (never
    the secret) otherwise.

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
        return box.open(value["sealed"], binding, max_age=COMMAND_SECRET_MAX_AGE)
    except SealError as exc:
        raise InvalidCommand(f"{field}: {exc}") from None
