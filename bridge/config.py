"""The bridge's settings: read once from the environment, validated, frozen.

Every variable is listed in ``VARIABLES`` (name, default, help), which drives the CLI flags and
is checked against docs/configuration.md by the tests. A bad value raises ConfigError naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.contract.env import REDIS_VARIABLES, EnvReader, RedisSettings, Variable, bracket, read_secret_key
from bridge.contract.errors import ConfigError, InvalidCommand
from bridge.contract.protocol import Names, bridge_name_problem, validate_topic_filter

VARIABLES: tuple[Variable, ...] = (
    Variable("MQTT_BROKER_HOST", "localhost", "broker host name or address"),
    Variable(
        "BRIDGE_NAME",
        None,
        "this bridge's name when several brokers share one Redis (lower-case letters, digits and -, "
        "at most 32): its channels and keys move under mqtt:brokers:<name>:; unset = the unnamed names",
    ),
    Variable("MQTT_BROKER_PORT", "1883", "broker port"),
    Variable("MQTT_USERNAME", None, "user name for the broker"),
    Variable("MQTT_PASSWORD", None, "password for the broker", secret=True),
    Variable("MQTT_CLIENT_ID", "mqtt-bridge-service", "the bridge's MQTT client id"),
    Variable("MQTT_TOPICS", "#", "comma-separated topic filters bridged from the start"),
    Variable("MQTT_PROTOCOL", "5", "MQTT protocol version: 5 or 3.1.1"),
    Variable("MQTT_KEEPALIVE", "30", "keepalive interval in seconds"),
    Variable("MQTT_QOS", "1", "QoS of the bridge's own subscriptions (0, 1 or 2)"),
    Variable(
        "MQTT_SESSION_EXPIRY",
        "3600",
        "seconds the broker keeps the bridge's session (and queues its QoS 1/2 messages) while it is "
        "away; 0 = a fresh session on every connect",
    ),
    Variable(
        "MQTT_RECEIVE_MAXIMUM",
        "1000",
        "QoS 1/2 messages the broker may send before the bridge acknowledges them (MQTT 5)",
    ),
    Variable("MQTT_STATUS_TOPIC", "mqtt-redis-bridge/status", "retained online/offline topic (last will)"),
    Variable("MQTT_TLS", "false", "connect with TLS (true/false)"),
    Variable("MQTT_TLS_CA", None, "CA certificate file for TLS"),
    Variable("MQTT_TLS_CERT", None, "client certificate file for TLS"),
    Variable("MQTT_TLS_KEY", None, "client key file for TLS"),
    Variable("MQTT_TLS_INSECURE", "false", "skip the broker host name check (testing only)"),
    Variable(
        "MQTT_MAX_PACKET_SIZE",
        None,
        "largest MQTT packet the broker accepts, in bytes (its max_packet_size): a publish command "
        "above it is refused before it is sent. An MQTT 5 broker says its own when the bridge "
        "connects; set this for MQTT 3.1.1 (unset = only MQTT's own limit)",
    ),
    Variable(
        "CONFIG_TLS_DIR",
        None,
        "the directory from which a connection test or switch (dashboard, cmd_test_connection, "
        "cmd_configure) may read CA, certificate and key files; unset = commands may name no files",
    ),
    *REDIS_VARIABLES,
    Variable("STATS_INTERVAL", "5", "seconds between broker stats snapshots"),
    Variable("HISTORY_MAXLEN", "10000", "approximate length of the mqtt:history stream"),
    Variable(
        "HISTORY_MAX_BYTES",
        "67108864",
        "approximate size cap of the mqtt:history stream in bytes (0 = length cap only)",
    ),
    Variable("QUEUE_MAXSIZE", "100000", "messages buffered between MQTT and Redis before dropping"),
    Variable(
        "QUEUE_MAX_BYTES",
        "67108864",
        "bytes (payloads, topics and per-message overhead) buffered between MQTT and Redis before "
        "dropping; whichever of QUEUE_MAXSIZE and this is reached first applies",
    ),
    Variable(
        "PAYLOAD_MAX_BYTES",
        "1048576",
        "larger MQTT payloads are forwarded cut to this size and flagged truncated",
    ),
    Variable(
        "WRITER_LINGER_MS",
        "0",
        "milliseconds the writer waits after a pass that found less than a full batch, so the next "
        "pass takes more: 0 = each message is written as soon as it is queued (lowest latency); 10 "
        "= the former 10 ms pause (less CPU per message at moderate rates, 10 ms more latency)",
    ),
    Variable(
        "PROPERTIES_MAX_BYTES",
        "65536",
        "MQTT 5 properties larger than this (as JSON) are forwarded cut: user properties are dropped "
        "from the end, and the message says so (properties_truncated)",
    ),
    Variable("TOPICS_MAX", "10000", "topics kept in the topic index (least recently seen evicted)"),
    Variable("METRICS_PORT", None, "port for the Prometheus endpoint (unset = off)"),
    Variable(
        "CONFIG_SECRET_KEY",
        None,
        "Fernet key(s), comma-separated newest first, that seal broker passwords in commands and in "
        "Redis; the dashboard needs the same (make one with: mqtt-redis-bridge secret-key)",
        secret=True,
    ),
    Variable("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
    Variable(
        "BRIDGE_GROUP",
        None,
        "run as a member of this bridge group: data filters become $share/<group>/<filter> and one "
        "member leads (unset = a single bridge)",
    ),
    Variable(
        "BRIDGE_MEMBER",
        None,
        "this member's id in its bridge group (default: MQTT_CLIENT_ID, which must then differ per member)",
    ),
)


@dataclass(frozen=True)
class Settings:
    broker_host: str
    broker_port: int
    client_id: str
    topics: tuple[str, ...]
    protocol: int  # paho's constants: 5 (MQTTv5) or 4 (MQTTv311)
    keepalive: int
    subscribe_qos: int
    status_topic: str
    redis: RedisSettings
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = False
    max_packet_size: int | None = None  # MQTT_MAX_PACKET_SIZE; None = MQTT's own limit
    tls_dir: str | None = None  # CONFIG_TLS_DIR
    session_expiry: int = 3600
    receive_maximum: int = 1000
    stats_interval: float = 5.0
    history_maxlen: int = 10_000
    history_max_bytes: int = 64 * 1024 * 1024
    queue_maxsize: int = 100_000
    queue_max_bytes: int = 64 * 1024 * 1024
    topics_max: int = 10_000
    payload_max_bytes: int = 1024 * 1024
    properties_max_bytes: int = 64 * 1024
    writer_linger_ms: int = 0
    metrics_port: int | None = None
    config_secret_key: str | None = field(default=None, repr=False)
    log_level: str = "INFO"
    group: str | None = None  # BRIDGE_GROUP; None = the single bridge, exactly as before
    member: str = ""  # BRIDGE_MEMBER, filled from client_id when unset
    bridge_name: str | None = None

    @property
    def names(self) -> Names:
        """This bridge's Redis names (today's for an unnamed bridge)."""
        return Names(self.bridge_name)

    @property
    def broker(self) -> str:
        """``host:port``, safe to show anywhere (no credentials)."""
        return f"{bracket(self.broker_host)}:{self.broker_port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        read = EnvReader(os.environ if environ is None else environ, VARIABLES)
        protocol_text = read.required("MQTT_PROTOCOL")
        protocols = {"5": 5, "5.0": 5, "3.1.1": 4, "311": 4, "4": 4}
        if protocol_text not in protocols:
            raise ConfigError(f"MQTT_PROTOCOL must be 5 or 3.1.1, got {protocol_text!r}")
        client_id = read.required("MQTT_CLIENT_ID")
        if len(client_id.encode()) > 65535:
            raise ConfigError("MQTT_CLIENT_ID is too long")
        level = read.log_level("LOG_LEVEL")
        status_topic = read.required("MQTT_STATUS_TOPIC")
        if "+" in status_topic or "#" in status_topic:
            raise ConfigError("MQTT_STATUS_TOPIC must be a plain topic without + or #")
        group, member = _group_fields(read, client_id)
        username = read.text("MQTT_USERNAME")
        password = read.secret("MQTT_PASSWORD")
        if password and not username:
            raise ConfigError("MQTT_PASSWORD is set but MQTT_USERNAME is not")
        return cls(
            broker_host=read.required("MQTT_BROKER_HOST"),
            broker_port=read.port("MQTT_BROKER_PORT"),
            client_id=client_id,
            topics=parse_topics(read.required("MQTT_TOPICS")),
            protocol=protocols[protocol_text],
            keepalive=read.integer("MQTT_KEEPALIVE", 5, 3600),
            subscribe_qos=read.integer("MQTT_QOS", 0, 2),
            session_expiry=read.integer("MQTT_SESSION_EXPIRY", 0, 0xFFFFFFFF),
            receive_maximum=read.integer("MQTT_RECEIVE_MAXIMUM", 1, 65535),
            status_topic=status_topic,
            redis=RedisSettings.from_env(read.environ),
            username=username,
            password=password,
            tls=read.flag("MQTT_TLS"),
            tls_ca=read.existing_file("MQTT_TLS_CA"),
            tls_cert=read.existing_file("MQTT_TLS_CERT"),
            tls_key=read.existing_file("MQTT_TLS_KEY"),
            tls_insecure=read.flag("MQTT_TLS_INSECURE"),
            max_packet_size=_max_packet_size(read),
            tls_dir=_tls_dir(read),
            stats_interval=read.number("STATS_INTERVAL", 0.1, 3600),
            history_maxlen=read.integer("HISTORY_MAXLEN", 0, 100_000_000),
            history_max_bytes=read.integer("HISTORY_MAX_BYTES", 0, 1 << 40),
            queue_maxsize=read.integer("QUEUE_MAXSIZE", 100, 10_000_000),
            queue_max_bytes=read.integer("QUEUE_MAX_BYTES", 1024 * 1024, 1 << 40),
            topics_max=read.integer("TOPICS_MAX", 10, 10_000_000),
            payload_max_bytes=read.integer("PAYLOAD_MAX_BYTES", 1024, 16 * 1024 * 1024),
            properties_max_bytes=read.integer("PROPERTIES_MAX_BYTES", 1024, 16 * 1024 * 1024),
            writer_linger_ms=read.integer("WRITER_LINGER_MS", 0, 1000),
            metrics_port=read.optional_port("METRICS_PORT"),
            config_secret_key=read_secret_key(read),
            log_level=level,
            bridge_name=read_bridge_name(read),
            group=group,
            member=member,
        )


def _max_packet_size(read: EnvReader) -> int | None:
    if read.text("MQTT_MAX_PACKET_SIZE") is None:
        return None
    # 20 bytes: a PUBLISH with a short topic and no payload still fits; 268,435,460: MQTT's own cap
    return read.integer("MQTT_MAX_PACKET_SIZE", 20, 268_435_460)


def _tls_dir(read: EnvReader) -> str | None:
    path = read.text("CONFIG_TLS_DIR")
    if path is not None and not os.path.isdir(path):
        raise ConfigError(f"CONFIG_TLS_DIR names {path!r}, which is not a directory")
    return path


def read_bridge_name(read: EnvReader) -> str | None:
    name = read.text("BRIDGE_NAME")
    if name is not None and (problem := bridge_name_problem(name)):
        raise ConfigError(f"BRIDGE_NAME {problem}")
    return name


def _group_fields(read: EnvReader, client_id: str) -> tuple[str | None, str]:
    """BRIDGE_GROUP / BRIDGE_MEMBER, checked; with no group the member id is only a label."""
    from bridge.group.filters import check_group_name, check_member_id, refuse_overlaps

    group = read.text("BRIDGE_GROUP")
    member = read.text("BRIDGE_MEMBER") or client_id
    if group is None:
        return None, member
    check_group_name(group)
    check_member_id(member)
    if read.required("MQTT_PROTOCOL") not in ("5", "5.0"):
        # The leader tells its retained sweep from the shared copies by subscription identifier.
        raise ConfigError("BRIDGE_GROUP needs MQTT_PROTOCOL=5 (MQTT 5 subscription identifiers)")
    refuse_overlaps(parse_topics(read.required("MQTT_TOPICS")), "MQTT_TOPICS")
    return group, member


def parse_topics(text: str) -> tuple[str, ...]:
    """MQTT_TOPICS: comma-separated filters; duplicates removed, order kept."""
    topics: list[str] = []
    for part in text.split(","):
        candidate = part.strip()
        if not candidate:
            continue
        try:
            validate_topic_filter(candidate)
        except InvalidCommand as exc:
            raise ConfigError(f"MQTT_TOPICS: {exc}") from None
        if candidate not in topics:
            topics.append(candidate)
    return tuple(topics)
