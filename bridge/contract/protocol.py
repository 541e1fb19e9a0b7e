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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.contract.errors import InvalidCommand
from bridge.contract.redis_values import unix_time

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
# The live broker connection as the bridge runs it (password only as "set"/"not set"), the broker
# settings saved by cmd_configure (password sealed with CONFIG_SECRET_KEY), and a list of the
# switches of the live connection, newest first (bridge/broker_settings.py).
KEY_CONNECTION = "mqtt:bridge:connection"
KEY_BROKER_SETTINGS = "mqtt:bridge:broker-settings"
KEY_CONNECTION_HISTORY = "mqtt:bridge:connection:history"
# hash: paused filter -> JSON {"qos", "paused_at"}: unsubscribed on the broker, kept in the list
KEY_SUBSCRIPTIONS_PAUSED = "mqtt:subscriptions:paused"
# per-filter message counts (JSON object, refreshed by the bridge with the topic list)
KEY_SUBSCRIPTION_STATS = "mqtt:subscriptions:stats"
# bridge group only: member id -> that member's own counts (its share), which the leader adds up
# into KEY_SUBSCRIPTION_STATS
KEY_SUBSCRIPTION_STATS_MEMBERS = "mqtt:subscriptions:stats:members"
# + client address: failed dashboard logins, with a TTL (the dashboard's login guard)
KEY_LOGIN_FAILURES_PREFIX = "mqtt:dashboard:login-failures:"
# + a hash of the session id: one dashboard login, with a TTL; deleting it logs that session out
KEY_DASHBOARD_SESSION_PREFIX = "mqtt:dashboard:session:"
# + a hash of who asked (session, token or address): connection tests in the current minute
KEY_CONNECTION_TESTS_PREFIX = "mqtt:dashboard:connection-tests:"
# + a user name: failed dashboard logins as that user, from any address, with a TTL
KEY_USER_LOGIN_FAILURES_PREFIX = "mqtt:dashboard:user-login-failures:"
# hash: user name -> JSON {username, role, tenant, broker, disabled, password (scrypt hash), stamp, …}
KEY_DASHBOARD_USERS = "mqtt:dashboard:users"
# stream: the audit trail (who did what, when), trimmed to about AUDIT_MAXLEN entries
KEY_AUDIT = "mqtt:dashboard:audit"
# JSON {tenant: [account user names]} as the broker's dynamic security last listed them, with a TTL
KEY_TENANT_ACCOUNTS = "mqtt:dashboard:tenant-accounts"

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
CMD_TEST_CONNECTION = "cmd_test_connection"
CMD_RECONNECT = "cmd_reconnect"
CMD_CONFIGURE = "cmd_configure"
CMD_PAUSE_SUBSCRIPTION = "cmd_pause_subscription"
CMD_RESUME_SUBSCRIPTION = "cmd_resume_subscription"
CMD_CLEAR_RETAINED = "cmd_clear_retained"
CMD_DYNSEC = "cmd_dynsec"
COMMAND_TYPES = (
    CMD_PUBLISH,
    CMD_SUBSCRIBE,
    CMD_UNSUBSCRIBE,
    CMD_TEST_CONNECTION,
    CMD_RECONNECT,
    CMD_CONFIGURE,
    CMD_PAUSE_SUBSCRIPTION,
    CMD_RESUME_SUBSCRIPTION,
    CMD_CLEAR_RETAINED,
    CMD_DYNSEC,
)
# The commands whose ``topic`` is a topic filter (publish's is a topic name; the rest have none).
FILTER_COMMANDS = (
    CMD_SUBSCRIBE,
    CMD_UNSUBSCRIBE,
    CMD_PAUSE_SUBSCRIPTION,
    CMD_RESUME_SUBSCRIPTION,
    CMD_CLEAR_RETAINED,
)
# Fields every command may carry; anything else in the body travels in ``Command.args`` for the
# command's own handler to check.
COMMON_COMMAND_FIELDS = frozenset(
    ("type", "timestamp", "id", "topic", "payload", "encoding", "qos", "retain", "expires_at")
)

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
# How long the bridge's longer commands may take, so that a client waits a little longer and gets
# the bridge's own words rather than a bare timeout.
PROBE_TIMEOUT = 8.0  # cmd_test_connection gives up after this; well inside the 10 s promised
# cmd_dynsec: the plugin answers in milliseconds; a broker without it (or an account that may not
# use $CONTROL) never answers at all.
DYNSEC_TIMEOUT = 5.0
# cmd_configure's fields that may change; the password is {"sealed": …}, or null for none.
CONNECTION_FIELDS = (
    "host",
    "port",
    "protocol",
    "username",
    "password",
    "tls",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "tls_insecure",
    "keepalive",
)
CONNECTION_HISTORY_MAX = 50  # switches kept in KEY_CONNECTION_HISTORY
# A command_result's ``outcome`` when it failed but may have taken effect all the same.
OUTCOME_UNKNOWN = "unknown"
# The broker's control topics (dynamic security): never forwarded to Redis, since a request may
# carry a password in clear.
CONTROL_PREFIX = "$CONTROL/"


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
    properties: Mapping[str, Any] | None = None,
    size: int | None = None,
    properties_size: int | None = None,
) -> str:
    """The ``message_received`` JSON, as published on CHANNEL_MESSAGES and kept in history.

    This is the bridge's hot path, so the JSON is assembled by hand (``tests/unit`` prove it
    equals ``json.dumps`` of the same fields); ``topic_cache`` saves re-quoting known topics.
    A payload over ``max_payload`` bytes is cut to that size and flagged ``truncated`` with its
    real ``size``: Redis disconnects a subscriber whose pending output passes 32 MB, so one huge
    message would otherwise cut every dashboard off. ``properties`` (MQTT 5, as
    ``bridge.mqtt5_properties.from_paho`` gives them) appear only when a message had some.
    ``size``: the payload's size as received, when it was cut before this call (the bridge cuts
    payloads before queueing them, so a message's bytes never wait in memory whole).
    ``properties_size``: the properties' JSON size before they were cut to PROPERTIES_MAX_BYTES
    (flagged ``properties_truncated``), when they were.
    """
    extra = ',"dup":true' if dup else ""  # a redelivery (MQTT DUP flag); absent when false
    if properties:
        extra += ',"properties":' + dumps(properties)
    if properties_size is not None:
        extra += f',"properties_truncated":true,"properties_size":{properties_size}'
    if size is None or size < len(payload):
        size = len(payload)
    if len(payload) > max_payload:
        payload = payload[:max_payload]
    if size > len(payload):
        extra += f',"truncated":true,"size":{size}'
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


def validate_publish_topic(topic: object) -> str:
    """A topic a command may publish to (cmd_publish, the dashboard, a template): a topic name that
    does not start with '$'. Such topics are the broker's: $SYS its statistics, $CONTROL its
    administration (a publish there would bypass cmd_dynsec's checks)."""
    topic = validate_topic_name(topic)
    if topic.startswith("$"):
        raise InvalidCommand(
            f"topic {_show(topic)} starts with '$': topics starting with '$' belong to the broker "
            "($SYS for its statistics, $CONTROL for its administration), so the bridge does not "
            "publish to them on anyone's behalf"
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
    """A validated command for the bridge. ``payload`` is already decoded to bytes.

    ``topic`` is a topic name (publish), a filter (FILTER_COMMANDS) or empty (the rest).
    ``args`` holds the body's other fields, unchecked: each command's handler checks its own.
    """

    type: str
    topic: str = ""
    id: str | None = None
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    expires_at: float | None = None  # Unix seconds by the Redis server's clock (TIME)
    args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in COMMAND_TYPES:
            raise InvalidCommand(f"unknown command type {self.type!r}")
        if self.type == CMD_PUBLISH:
            validate_publish_topic(self.topic)
        elif self.type in FILTER_COMMANDS:
            validate_topic_filter(self.topic)
        if self.type == CMD_CLEAR_RETAINED and self.topic.startswith("$"):
            # A clear publishes an empty retained message: the same rule as for a publish.
            raise InvalidCommand(
                f"topic filter {_show(self.topic)} starts with '$': retained messages on the broker's "
                "own topics ($SYS, $CONTROL) are not the bridge's to clear"
            )
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
    takes_topic = kind == CMD_PUBLISH or kind in FILTER_COMMANDS
    if takes_topic and "topic" not in body:
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
        topic=body["topic"] if takes_topic else "",
        id=command_id,
        payload=payload,
        qos=qos,
        retain=retain,
        expires_at=None if expires_at is None else float(expires_at),
        args={name: value for name, value in body.items() if name not in COMMON_COMMAND_FIELDS},
    )


def command_body(
    kind: str,
    topic: str | None = None,
    *,
    command_id: str | None = None,
    payload: str = "",
    encoding: str = ENCODING_UTF8,
    qos: int = 0,
    retain: bool = False,
    expires_at: float | None = None,
    args: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON a client (the dashboard, a script) publishes on CHANNEL_COMMANDS; ``args`` are
    the command's own fields (anything but COMMON_COMMAND_FIELDS)."""
    body = envelope(kind, id=command_id)
    if topic is not None:
        body["topic"] = topic
    if kind == CMD_PUBLISH or kind in (CMD_SUBSCRIBE, CMD_UNSUBSCRIBE):
        body["qos"] = qos
    if kind == CMD_PUBLISH:
        body.update(payload=payload, encoding=encoding, retain=retain)
    if args:
        clash = COMMON_COMMAND_FIELDS.intersection(args)
        if clash:
            raise ValueError(f"args may not hold the common fields {sorted(clash)}")
        body.update(args)
    if expires_at is not None:
        body["expires_at"] = expires_at
    return body


def command_result(
    command_id: str | None,
    command: str | None,
    ok: bool,
    error: str | None,
    result: Mapping[str, Any] | None = None,
    outcome: str | None = None,
) -> dict[str, Any]:
    """The answer to one command. A command that returns data puts it in ``result`` (an object,
    documented per command in docs/channels.md); absent when it returns none. ``outcome`` is
    OUTCOME_UNKNOWN for a failed command that may have taken effect all the same (a publish sent
    but never acknowledged); absent otherwise, where ``ok: false`` means it did not."""
    answer = envelope(TYPE_RESULT, id=command_id, command=command, ok=ok, error=None if ok else error)
    if result is not None:
        answer["result"] = dict(result)
    if outcome is not None and not ok:
        answer["outcome"] = outcome
    return answer


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
        # a time, or none: a huge or infinite number would end up in JSON no browser can parse
        "created_at": unix_time(created),
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


# --- many brokers: one bridge per broker, each under its own names ---------------------------
# Unset BRIDGE_NAME keeps every name above exactly as it is; a named bridge moves each per-broker
# name from "mqtt:X" to "mqtt:brokers:<name>:X". Every CHANNEL_*/KEY_* constant of this module is
# per broker unless GLOBAL_NAMES lists it, so a name added later moves with its bridge by itself
# (tests/unit/bridge/test_broker_names.py fails for a name that is neither).
BROKERS_PREFIX = "mqtt:brokers:"
# Sorted set: bridge name -> Unix time of its last heartbeat. Refreshed with the heartbeat, never
# trimmed by the bridges, so a dashboard remembers a bridge that died and reports it offline.
KEY_BROKER_REGISTRY = "mqtt:brokers"
# The unnamed bridge's name in the registry, the dashboard's URLs and DASHBOARD_BROKERS.
UNNAMED_BROKER = "default"
BRIDGE_NAME_MAX = 32
_BRIDGE_NAME = re.compile(r"[a-z0-9-]{1,32}")
# Names that belong to the dashboard (or to every broker at once), never to one bridge: its
# logins, users, sessions and audit trail, the registry itself, and the publish templates (a
# template is a saved topic and payload, worth running on any broker; the publish history records
# what went to one broker, so it is per broker, as is the list of a broker's tenant accounts).
GLOBAL_NAMES = frozenset(
    {
        "CHANNEL_SESSION_REVOKED",
        "KEY_LOGIN_FAILURES_PREFIX",
        "KEY_DASHBOARD_SESSION_PREFIX",
        "KEY_CONNECTION_TESTS_PREFIX",
        "KEY_USER_LOGIN_FAILURES_PREFIX",
        "KEY_DASHBOARD_USERS",
        "KEY_AUDIT",
        "KEY_PUBLISH_TEMPLATES",
        "KEY_BROKER_REGISTRY",
    }
)


def bridge_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a bridge's name, or None when it can."""
    if not _BRIDGE_NAME.fullmatch(name):
        return f"must be 1 to {BRIDGE_NAME_MAX} lower-case letters, digits or '-', got {_show(name, 40)}"
    if name == UNNAMED_BROKER:
        return f"{UNNAMED_BROKER!r} is how the unnamed bridge is shown; leave BRIDGE_NAME unset for it"
    return None


def name_constants() -> dict[str, str]:
    """Every Redis name this module spells: constant name -> value."""
    return {
        key: value
        for key, value in globals().items()
        if key.startswith(("CHANNEL_", "KEY_")) and isinstance(value, str)
    }


class Names:
    """The Redis names of one bridge: ``names.KEY_HISTORY`` etc., as the module constants are
    for the unnamed bridge (``Names(None)``) and moved under ``mqtt:brokers:<name>:`` for a named
    one. Components take a Names instead of reading the module constants, so one dashboard
    process can serve several brokers."""

    __slots__ = ("_names", "bridge_name", "broker", "latest_key", "output_channels")

    def __init__(self, bridge_name: str | None = None):
        if bridge_name is not None and (problem := bridge_name_problem(bridge_name)):
            raise ValueError(f"bridge name {problem}")
        self.bridge_name = bridge_name
        self.broker = bridge_name or UNNAMED_BROKER  # what the registry and the dashboard call it
        self._names = {
            key: value if key in GLOBAL_NAMES else per_broker_name(value, bridge_name)
            for key, value in name_constants().items()
        }
        self.latest_key = {self._names[k]: self._names[v] for k, v in _LATEST_NAMES}
        self.output_channels = tuple(self._names[k] for k in _OUTPUT_NAMES)

    def __getattr__(self, attr: str) -> str:
        try:
            return self._names[attr]
        except KeyError:
            raise AttributeError(f"no Redis name {attr!r} in bridge.contract.protocol") from None

    def __repr__(self) -> str:
        return f"Names({self.bridge_name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Names) and other.bridge_name == self.bridge_name

    def __hash__(self) -> int:
        return hash(self.bridge_name)


def per_broker_name(name: str, bridge_name: str | None) -> str:
    """The one rule: "mqtt:X" -> "mqtt:brokers:<bridge_name>:X"; unchanged when unnamed."""
    if bridge_name is None:
        return name
    return BROKERS_PREFIX + bridge_name + ":" + name.removeprefix("mqtt:")


def names_for(broker: str | None) -> Names:
    """The names of the broker the dashboard calls ``broker`` (UNNAMED_BROKER or None: unnamed)."""
    return Names(None if broker in (None, UNNAMED_BROKER) else broker)


# LATEST_KEY and OUTPUT_CHANNELS above, by constant name, so a Names can move them too.
_LATEST_NAMES = (
    ("CHANNEL_STATS", "KEY_STATS_LATEST"),
    ("CHANNEL_STATUS", "KEY_STATUS_LATEST"),
    ("CHANNEL_CLIENTS", "KEY_CLIENTS_LATEST"),
    ("CHANNEL_TOPICS", "KEY_TOPICS_LATEST"),
)
_OUTPUT_NAMES = ("CHANNEL_MESSAGES", "CHANNEL_STATS", "CHANNEL_STATUS", "CHANNEL_CLIENTS", "CHANNEL_TOPICS")


def broker_of_channel(channel: str) -> tuple[str, str] | None:
    """(broker, unnamed channel) for a bridge's output channel, e.g. "mqtt:brokers:a:messages"
    -> ("a", "mqtt:messages"); "mqtt:messages" -> ("default", "mqtt:messages"); None otherwise."""
    if channel in OUTPUT_CHANNELS:
        return UNNAMED_BROKER, channel
    if not channel.startswith(BROKERS_PREFIX):
        return None
    name, _, rest = channel[len(BROKERS_PREFIX) :].partition(":")
    unnamed = "mqtt:" + rest
    if unnamed not in OUTPUT_CHANNELS or bridge_name_problem(name):
        return None
    return name, unnamed
