"""The Redis contract (version 1): every channel and key name, message type and JSON shape.

The bridge and the dashboard both import this module; no other file spells a Redis name.
docs/channels.md describes the same contract for people with ``redis-cli``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from bridge.errors import InvalidCommand

CONTRACT_VERSION = 1

# --- pub/sub channels -------------------------------------------------------------------
CHANNEL_MESSAGES = "mqtt:messages"
CHANNEL_STATS = "mqtt:broker:stats"
CHANNEL_STATUS = "mqtt:broker:status"
CHANNEL_CLIENTS = "mqtt:clients"
CHANNEL_TOPICS = "mqtt:topics"
CHANNEL_COMMANDS = "mqtt:commands"
CHANNEL_RESULTS = "mqtt:commands:results"
# dashboard -> every dashboard worker: a session was logged out, close its open sockets
CHANNEL_SESSION_REVOKED = "mqtt:dashboard:session:revoked"

# --- keys ---------------------------------------------------------------------------------
KEY_STATS_LATEST = "mqtt:broker:stats:latest"
KEY_STATUS_LATEST = "mqtt:broker:status:latest"
KEY_CLIENTS_LATEST = "mqtt:clients:latest"
KEY_TOPICS_LATEST = "mqtt:topics:latest"
KEY_SUBSCRIPTIONS = "mqtt:subscriptions"  # hash: filter -> {"qos", "created_at"}
KEY_HISTORY = "mqtt:history"  # stream; one field, HISTORY_FIELD, holding the message JSON
KEY_HEARTBEAT = "mqtt:bridge:heartbeat"
# Bridge group (BRIDGE_GROUP): hash member id -> JSON {pid, host, leader, started_at, counters, …}
KEY_MEMBERS = "mqtt:bridge:members"
# The leader lease: JSON {member, pid, host, since, token} with a TTL; renewed only by its holder
KEY_LEADER = "mqtt:bridge:leader"
# INCR counter: the fencing token of every new lease is the next number (never reused)
KEY_LEADER_TOKEN = "mqtt:bridge:leader:token"  # noqa: S105 (a fencing token counter, not a secret)
# + member id: one member's own heartbeat (string with TTL), as KEY_HEARTBEAT is for one bridge
KEY_MEMBER_HEARTBEAT_PREFIX = "mqtt:bridge:heartbeat:"
# hash member id -> JSON topic-index snapshot of that member's share; the leader merges them
KEY_MEMBER_TOPICS = "mqtt:bridge:member-topics"
# + a per-process id: the last chunk of messages that bridge process wrote (TTL 1 h), so a chunk
# sent again after a lost reply is not written twice (bridge/redis_sink.py)
KEY_APPLIED_PREFIX = "mqtt:bridge:applied:"
# hash: "<client id>@<host:port>" -> JSON list of the filters the broker holds in that bridge's
# persistent session, so a resumed session can drop the ones no longer wanted
KEY_SESSION_FILTERS = "mqtt:bridge:session-filters"
# Lists of compact stats points (oldest first): every snapshot for STATS_HISTORY_FINE_SECONDS,
# and one a minute for STATS_HISTORY_MINUTES minutes (bridge/stats_history.py).
KEY_STATS_HISTORY = "mqtt:broker:stats:history"
KEY_STATS_HISTORY_MINUTE = "mqtt:broker:stats:history:minute"
# The dashboard's shared publish templates (hash: id -> JSON) and its recent publishes (list).
KEY_PUBLISH_TEMPLATES = "mqtt:dashboard:publish-templates"
KEY_PUBLISH_HISTORY = "mqtt:dashboard:publish-history"
# + client address: failed dashboard logins, with a TTL (the dashboard's login guard)
KEY_LOGIN_FAILURES_PREFIX = "mqtt:dashboard:login-failures:"
# + a hash of the session id: one dashboard login, with a TTL; deleting it logs that session out
KEY_DASHBOARD_SESSION_PREFIX = "mqtt:dashboard:session:"

LATEST_KEY = {
    CHANNEL_STATS: KEY_STATS_LATEST,
    CHANNEL_STATUS: KEY_STATUS_LATEST,
    CHANNEL_CLIENTS: KEY_CLIENTS_LATEST,
    CHANNEL_TOPICS: KEY_TOPICS_LATEST,
}
# What a dashboard relays: the bridge's output channels (never the command channel).
OUTPUT_CHANNELS = (CHANNEL_MESSAGES, CHANNEL_STATS, CHANNEL_STATUS, CHANNEL_CLIENTS, CHANNEL_TOPICS)

HISTORY_FIELD = "data"

STATS_HISTORY_FINE_SECONDS = 15 * 60
STATS_HISTORY_MAX_FINE_POINTS = 3_600  # a very short STATS_INTERVAL keeps less than 15 minutes
STATS_HISTORY_MINUTES = 24 * 60

HEARTBEAT_INTERVAL = 5.0  # seconds between refreshes
HEARTBEAT_TTL = 15  # seconds; an older heartbeat means the bridge is down
LEADER_TTL = 6.0  # seconds a leader lease lasts unless renewed
LEADER_RENEW_INTERVAL = 2.0  # so a lost leader is replaced within LEADER_TTL + this (< 10 s)
MEMBER_FORGET_AFTER = 600.0  # a dead member stays listed (with its loss estimate) this long

# --- message types ------------------------------------------------------------------------
TYPE_MESSAGE = "message_received"
TYPE_STATS = "stats_update"
TYPE_STATUS = "status_change"
TYPE_CLIENTS = "clients_update"
TYPE_TOPICS = "topics_update"
TYPE_RESULT = "command_result"
CMD_PUBLISH = "cmd_publish"
CMD_SUBSCRIBE = "cmd_subscribe"
CMD_UNSUBSCRIBE = "cmd_unsubscribe"
COMMAND_TYPES = (CMD_PUBLISH, CMD_SUBSCRIBE, CMD_UNSUBSCRIBE)

ENCODING_UTF8 = "utf-8"
ENCODING_BASE64 = "base64"
ENCODINGS = (ENCODING_UTF8, ENCODING_BASE64)

MAX_TOPIC_BYTES = 65_535  # MQTT's own limit on a topic name or filter
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024  # a command's payload; far above any dashboard use
MAX_COMMAND_BYTES = 12 * 1024 * 1024  # raw command text (base64 inflates by 4/3)
MAX_ID_CHARS = 200
# The longest a command runs once the bridge starts it: its waits for a SUBACK or PUBACK are 3 s
# (bridge/commands.py). A client that gives up after T seconds sets ``expires_at`` at most
# T - COMMAND_RUN_MAX seconds ahead, so a command the bridge starts is answered in time.
COMMAND_RUN_MAX = 3.5
DEFAULT_PAYLOAD_MAX_BYTES = 1024 * 1024  # PAYLOAD_MAX_BYTES: larger payloads are forwarded cut


def dumps(obj: Any) -> str:
    """Compact JSON that keeps non-ASCII text readable in redis-cli."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def envelope(message_type: str, **fields: Any) -> dict[str, Any]:
    """A contract message: every one carries ``type`` and ``timestamp`` (Unix seconds)."""
    return {"type": message_type, "timestamp": time.time(), **fields}


# --- payloads -----------------------------------------------------------------------------
def encode_payload(payload: bytes) -> tuple[str, str]:
    """Bytes to (text, encoding): UTF-8 text travels as is, anything else as base64."""
    try:
        return payload.decode("utf-8"), ENCODING_UTF8
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode("ascii"), ENCODING_BASE64


def decode_payload(text: str, encoding: str) -> bytes:
    """The inverse of :func:`encode_payload`; raises InvalidCommand on bad input."""
    if encoding == ENCODING_UTF8:
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidCommand("payload is not valid UTF-8 text") from None
    if encoding == ENCODING_BASE64:
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise InvalidCommand("payload is not valid base64") from None
    raise InvalidCommand(f"encoding must be one of {', '.join(ENCODINGS)}")


_json_text = json.encoder.encode_basestring  # C-accelerated; keeps non-ASCII readable


def message_json(
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    timestamp: float,
    topic_cache: dict[str, str] | None = None,
    max_payload: int = DEFAULT_PAYLOAD_MAX_BYTES,
    dup: bool = False,
) -> str:
    """The ``message_received`` JSON, as published on CHANNEL_MESSAGES and kept in history.

    This is the bridge's hot path, so the JSON is assembled by hand (``tests/unit`` prove it
    equals ``json.dumps`` of the same fields); ``topic_cache`` saves re-quoting known topics.
    A payload over ``max_payload`` bytes is cut to that size and flagged ``truncated`` with its
    real ``size``: Redis disconnects a subscriber whose pending output passes 32 MB, so one huge
    message would otherwise cut every dashboard off.
    """
    extra = ',"dup":true' if dup else ""  # a redelivery (MQTT DUP flag); absent when false
    if len(payload) > max_payload:
        extra += f',"truncated":true,"size":{len(payload)}'
        payload = payload[:max_payload]
    head = topic_cache.get(topic) if topic_cache is not None else None
    if head is None:
        head = '{"type":"' + TYPE_MESSAGE + '","topic":' + _json_text(topic)
        if topic_cache is not None and len(topic) <= 256:  # bounded: 10,000 short topics at most
            if len(topic_cache) >= 10_000:
                topic_cache.clear()
            topic_cache[topic] = head
    try:
        text = _json_text(payload.decode("utf-8")) + ',"encoding":"utf-8"'
    except UnicodeDecodeError:
        text = '"' + base64.b64encode(payload).decode("ascii") + '","encoding":"base64"'
    return (
        f'{head},"payload":{text},"qos":{qos},"retain":{"true" if retain else "false"},'
        f'"timestamp":{timestamp!r}{extra}}}'
    )


# --- topics -------------------------------------------------------------------------------
def validate_topic_name(topic: object) -> str:
    """A topic to publish to: non-empty text, no wildcards, within MQTT's length limit."""
    topic = _topic_text(topic, "topic")
    if "+" in topic or "#" in topic:
        raise InvalidCommand(
            f"topic {_show(topic)} contains a wildcard (+ or #); publish needs an exact topic"
        )
    return topic


def validate_topic_filter(topic_filter: object) -> str:
    """A subscription filter: '+' fills a whole level, '#' a whole last level."""
    topic_filter = _topic_text(topic_filter, "topic filter")
    levels = topic_filter.split("/")
    if levels[0] == "$share":
        if len(levels) < 3 or not levels[1] or "+" in levels[1] or "#" in levels[1]:
            raise InvalidCommand("a shared subscription must look like $share/<group>/<filter>")
        levels = levels[2:]
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise InvalidCommand(
                f"topic filter {_show(topic_filter)} is malformed: '#' must be a whole level and the last one"
            )
        if "+" in level and level != "+":
            raise InvalidCommand(
                f"topic filter {_show(topic_filter)} is malformed: '+' must fill a whole level"
            )
    return topic_filter


def _topic_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidCommand(f"{what} must be a string")
    if not value:
        raise InvalidCommand(f"{what} is empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidCommand(f"{what} is not valid UTF-8 text") from None
    forbidden = _FORBIDDEN_IN_TOPICS.search(value)
    if forbidden:
        # Mosquitto treats these as malformed UTF-8 and drops the connection that sent them.
        raise InvalidCommand(
            f"{what} contains the control or non-character U+{ord(forbidden.group()):04X}, "
            "which MQTT brokers refuse"
        )
    if size > MAX_TOPIC_BYTES:
        raise InvalidCommand(f"{what} is {size:,} bytes; MQTT allows at most {MAX_TOPIC_BYTES:,}")
    return value


def _show(text: str, limit: int = 80) -> str:
    """A topic quoted for an error message, shortened so a huge one cannot flood a log."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


# Control characters (C0, DEL, C1) and Unicode non-characters: MQTT says a topic SHOULD NOT hold
# them and mosquitto disconnects a client that sends them.
_NON_CHARACTERS = "".join(chr(plane << 16 | low) for plane in range(17) for low in (0xFFFE, 0xFFFF))
_FORBIDDEN_IN_TOPICS = re.compile(f"[\x00-\x1f\x7f-\x9f\ufdd0-\ufdef{_NON_CHARACTERS}]")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching, including the rule that wildcards never match a leading '$' level."""
    filter_levels = topic_filter.split("/")
    if filter_levels[0] == "$share" and len(filter_levels) > 2:
        filter_levels = filter_levels[2:]
    topic_levels = topic.split("/")
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


# --- commands -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    """A validated command for the bridge. ``payload`` is already decoded to bytes."""

    type: str
    topic: str
    id: str | None = None
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    expires_at: float | None = None  # Unix seconds by the Redis server's clock (TIME)

    def __post_init__(self) -> None:
        if self.type not in COMMAND_TYPES:
            raise InvalidCommand(f"unknown command type {self.type!r}")
        if self.type == CMD_PUBLISH:
            validate_topic_name(self.topic)
        else:
            validate_topic_filter(self.topic)
        if self.qos not in (0, 1, 2) or isinstance(self.qos, bool):
            raise InvalidCommand("qos must be 0, 1 or 2")
        if len(self.payload) > MAX_PAYLOAD_BYTES:
            raise InvalidCommand(
                f"payload is {len(self.payload):,} bytes; the limit is {MAX_PAYLOAD_BYTES:,}"
            )


def parse_command(raw: bytes | str) -> Command:
    """Read one command from the command channel; InvalidCommand says what is wrong."""
    if len(raw) > MAX_COMMAND_BYTES:
        raise InvalidCommand(f"command is {len(raw):,} bytes; the limit is {MAX_COMMAND_BYTES:,}")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidCommand("command is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidCommand("command must be a JSON object")
    raw_id = body.get("id")
    command_id = raw_id if _usable_id(raw_id) else None
    kind = body.get("type")
    name = kind if isinstance(kind, str) and kind in COMMAND_TYPES else None
    try:
        if raw_id is not None and command_id is None:
            # Answered with id null, the sender could not match the answer to its command, so
            # running it would actuate a device with nobody told: refuse it instead.
            raise InvalidCommand(
                f"id must be a string of 1 to {MAX_ID_CHARS} characters (or absent); "
                f"got {_describe(raw_id)}, so the command was not run"
            )
        return _command_from_body(body, command_id)
    except InvalidCommand as exc:
        raise InvalidCommand(str(exc), command_id=command_id, command=name) from None


def _describe(value: object) -> str:
    if isinstance(value, str):
        return f"a string of {len(value):,} characters" if value else "an empty string"
    return {bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def _usable_id(value: object) -> bool:
    """A string id that can be echoed back as JSON text (a lone surrogate cannot be sent)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _command_from_body(body: dict[str, Any], command_id: str | None) -> Command:
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in COMMAND_TYPES:
        shown = _show(kind) if isinstance(kind, str) else repr(type(kind).__name__)
        raise InvalidCommand(f"unknown command type {shown}; expected one of {', '.join(COMMAND_TYPES)}")
    if "topic" not in body:
        raise InvalidCommand("topic is missing")
    qos = body.get("qos", 0)
    if isinstance(qos, bool) or not isinstance(qos, int) or qos not in (0, 1, 2):
        raise InvalidCommand("qos must be 0, 1 or 2")
    retain = body.get("retain", False)
    if not isinstance(retain, bool):
        raise InvalidCommand("retain must be true or false")
    payload = b""
    if kind == CMD_PUBLISH:
        text = body.get("payload", "")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise InvalidCommand("payload must be a string (use encoding 'base64' for binary data)")
        encoding = body.get("encoding", ENCODING_UTF8)
        if encoding not in ENCODINGS:
            raise InvalidCommand(f"encoding must be one of {', '.join(ENCODINGS)}")
        payload = decode_payload(text, encoding)
    expires_at = body.get("expires_at")
    if expires_at is not None and (
        isinstance(expires_at, bool) or not isinstance(expires_at, int | float) or expires_at != expires_at
    ):
        raise InvalidCommand("expires_at must be a number (Unix seconds by the Redis server's clock)")
    return Command(
        type=kind,
        topic=body["topic"],
        id=command_id,
        payload=payload,
        qos=qos,
        retain=retain,
        expires_at=None if expires_at is None else float(expires_at),
    )


def command_body(
    kind: str,
    topic: str,
    *,
    command_id: str | None = None,
    payload: str = "",
    encoding: str = ENCODING_UTF8,
    qos: int = 0,
    retain: bool = False,
    expires_at: float | None = None,
) -> dict[str, Any]:
    """The JSON a client (the dashboard, a script) publishes on CHANNEL_COMMANDS."""
    body = envelope(kind, id=command_id, topic=topic, qos=qos)
    if kind == CMD_PUBLISH:
        body.update(payload=payload, encoding=encoding, retain=retain)
    if expires_at is not None:
        body["expires_at"] = expires_at
    return body


def command_result(
    command_id: str | None, command: str | None, ok: bool, error: str | None
) -> dict[str, Any]:
    return envelope(TYPE_RESULT, id=command_id, command=command, ok=ok, error=None if ok else error)


def subscription_record(qos: int, created_at: float) -> str:
    """The value stored per filter in KEY_SUBSCRIPTIONS."""
    return dumps({"qos": qos, "created_at": created_at})


def parse_subscription_record(raw: bytes | str) -> dict[str, Any]:
    """A stored subscription; a damaged record falls back to QoS 0 rather than being lost."""
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        record = {}
    qos = record.get("qos", 0)
    created = record.get("created_at")
    return {
        "qos": qos if qos in (0, 1, 2) and not isinstance(qos, bool) else 0,
        "created_at": created if isinstance(created, int | float) else None,
    }


def loads_object(raw: bytes | str | None) -> dict[str, Any] | None:
    """Parse a contract message; None for anything that is not a JSON object."""
    if raw is None:
        return None
    try:
        # NaN and Infinity are not JSON: a browser's JSON.parse would reject the whole frame.
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
