"""The server versions this project relies on, checked on every new connection to Redis.

Redis >= 7.0: the dashboard's login guard uses ``EXPIRE ... NX`` (7.0; on 6.x the failure counter
would never expire) and its history API exclusive stream ranges (6.2). mosquitto >= 2.0: the
client list reads mosquitto 2.0's connect/disconnect log lines. docs/operations.md lists these.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import redis

REDIS_MIN = (7, 0)
MOSQUITTO_MIN = (2, 0)

_REDIS_VERSION_LINE = re.compile(r"^redis_version:([0-9][0-9.]*)", re.MULTILINE)
_MOSQUITTO_VERSION = re.compile(r"^mosquitto version ([0-9]+\.[0-9]+)")


def version_tuple(text: str) -> tuple[int, ...]:
    """``"7.0.15"`` -> ``(7, 0, 15)``; digits only, so a suffix such as ``-rc1`` is ignored."""
    return tuple(int(part) for part in re.findall(r"[0-9]+", text)[:3])


def _shown(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version[:2])


def redis_refusal(found: str, program: str) -> str | None:
    """The one-line refusal for a Redis older than REDIS_MIN, or None when it is new enough."""
    version = version_tuple(found)
    if not version or version >= REDIS_MIN:  # unreadable: a compatible server, given the benefit
        return None
    return f"Redis {_shown(version)} found; {program} needs ≥ {_shown(REDIS_MIN)}"


def mosquitto_shortfall(found: str) -> str | None:
    """A sentence when ``$SYS/broker/version`` names a mosquitto older than MOSQUITTO_MIN.

    Other brokers (and versions this cannot read) get None: the bridge works with any broker,
    only the client list depends on mosquitto's own log lines.
    """
    match = _MOSQUITTO_VERSION.match(found.strip())
    if not match:
        return None
    version = version_tuple(match.group(1))
    if version >= MOSQUITTO_MIN:
        return None
    return (
        f"mosquitto {_shown(version)} found; the client list needs mosquitto ≥ {_shown(MOSQUITTO_MIN)} "
        "(its connect and disconnect log lines); everything else works"
    )


class RedisVersionCheck:
    """A redis-py ``redis_connect_func``: every new connection asks ``INFO server`` first.

    So the check holds at start and again after every reconnect (a Redis replaced by an older
    one). An old Redis makes the connection fail with ``redis.ConnectionError`` carrying the
    refusal; ``refusal`` keeps it and ``on_refused`` is told once, to log it and stop the program.
    """

    def __init__(self, program: str, on_refused: Callable[[str], None] | None = None):
        self.program = program
        self.on_refused = on_refused
        self.refusal: str | None = None

    def __call__(self, connection: Any) -> None:
        connection.on_connect()
        self.verify(connection)

    def verify(self, connection: Any) -> None:
        """The check alone, on a connection whose handshake is done (RedisCluster's hook runs
        its own handshake and then this)."""
        connection.send_command("INFO", "server")
        info = connection.read_response()
        text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
        found = _REDIS_VERSION_LINE.search(text)
        refusal = redis_refusal(found.group(1), self.program) if found else None
        if refusal is None:
            return
        first = self.refusal is None
        self.refusal = refusal
        if first and self.on_refused is not None:
            self.on_refused(refusal)
        raise redis.ConnectionError(refusal)


def version_check_of(client: Any) -> RedisVersionCheck | None:
    """The RedisVersionCheck that ``client``'s connections run on connect, if any (a standalone
    or Sentinel client's pool holds it; a RedisCluster holds its ``verify``)."""
    # The cluster's first: asking a not yet connected cluster client for anything else connects it.
    found = getattr(client, "user_on_connect_func", None)
    if found is None and hasattr(client, "connection_pool"):
        found = client.connection_pool.connection_kwargs.get("redis_connect_func")
    found = getattr(found, "__self__", found)  # a bound ``verify``
    return found if isinstance(found, RedisVersionCheck) else None
