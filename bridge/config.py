"""The bridge's settings: read once from the environment, validated, frozen.

Every variable is listed in ``VARIABLES`` (name, default, help), which drives the CLI flags and
is checked against docs/configuration.md by the tests. A bad value raises ConfigError naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from bridge.errors import ConfigError, InvalidCommand
from bridge.protocol import Names, bridge_name_problem, validate_topic_filter


@dataclass(frozen=True)
class Variable:
    name: str
    default: str | None
    help: str
    secret: bool = False


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
        "REDIS_URL", None, "redis:// or rediss:// URL; overrides REDIS_HOST/PORT/PASSWORD/DB", secret=True
    ),
    Variable("REDIS_HOST", "localhost", "Redis host"),
    Variable("REDIS_PORT", "6379", "Redis port"),
    Variable("REDIS_PASSWORD", None, "Redis password", secret=True),
    Variable("REDIS_DB", "0", "Redis database number"),
    Variable(
        "REDIS_SENTINELS",
        None,
        "comma-separated host:port of Redis Sentinels; set = ask them for the master (with "
        "REDIS_PASSWORD/REDIS_DB, not REDIS_URL)",
    ),
    Variable(
        "REDIS_SENTINEL_MASTER", None, "the master's name in the Sentinels (required with REDIS_SENTINELS)"
    ),
    Variable("REDIS_SENTINEL_PASSWORD", None, "password of the Sentinels themselves", secret=True),
    Variable(
        "REDIS_CLUSTER",
        "false",
        "Redis Cluster: seed nodes from REDIS_URL (several as host:port,host:port) or REDIS_HOST/PORT; "
        "database 0 only",
    ),
    Variable("STATS_INTERVAL", "5", "seconds between broker stats snapshots"),
    Variable("HISTORY_MAXLEN", "10000", "approximate length of the mqtt:history stream"),
    Variable(
        "HISTORY_MAX_BYTES",
        "67108864",
        "approximate size cap of the mqtt:history stream in bytes (0 = length cap only)",
    ),
    Variable("QUEUE_MAXSIZE", "100000", "messages buffered between MQTT and Redis before dropping"),
    Variable(
        "PAYLOAD_MAX_BYTES",
        "1048576",
        "larger MQTT payloads are forwarded cut to this size and flagged truncated",
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
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class EnvReader:
    """Typed values from an environment mapping; every failure names the variable.

    Blank means unset, and unset means the variable's documented default.
    """

    def __init__(self, environ: Mapping[str, str], variables: tuple[Variable, ...] = VARIABLES):
        self.environ = environ
        self.defaults = {v.name: v.default for v in variables}

    def text(self, name: str) -> str | None:
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            return self.defaults.get(name)
        return value.strip()

    def secret(self, name: str) -> str | None:
        """A password or token, not stripped: a deliberate leading space must still match."""
        return self.environ.get(name) or None

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise ConfigError(f"{name} must be set")
        return value

    def integer(self, name: str, low: int, high: int) -> int:
        raw = self.required(name)
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def number(self, name: str, low: float, high: float) -> float:
        raw = self.required(name)
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {raw}")
        return value

    def flag(self, name: str) -> bool:
        raw = self.required(name).lower()
        if raw in TRUE_WORDS:
            return True
        if raw in FALSE_WORDS:
            return False
        raise ConfigError(f"{name} must be on/true or off/false, got {raw!r}")

    def port(self, name: str) -> int:
        return self.integer(name, 1, 65535)

    def optional_port(self, name: str) -> int | None:
        return None if self.text(name) is None else self.port(name)

    def log_level(self, name: str) -> str:
        level = self.required(name).upper()
        if level not in LOG_LEVELS:
            raise ConfigError(f"{name} must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        return level

    def existing_file(self, name: str) -> str | None:
        path = self.text(name)
        if path is not None and not os.path.isfile(path):
            raise ConfigError(f"{name} names {path!r}, which is not a readable file")
        return path


@dataclass(frozen=True)
class RedisSettings:
    """Where Redis is. ``url`` may hold a password: never log it, log ``where`` instead.

    ``mode`` is ``standalone`` (``url``), ``sentinel`` (ask ``sentinels`` for ``sentinel_master``,
    then use ``password``/``db`` there) or ``cluster`` (``url`` names the seed nodes, with more in
    ``seeds``). bridge/redis_topology.py builds the client for each.
    """

    url: str = field(repr=False)
    where: str
    mode: str = "standalone"
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    db: int = 0
    seeds: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RedisSettings:
        read = EnvReader(environ)
        cluster = read.flag("REDIS_CLUSTER")
        sentinels_text = read.text("REDIS_SENTINELS")
        if sentinels_text:
            if cluster:
                raise ConfigError("REDIS_SENTINELS and REDIS_CLUSTER=true exclude each other: set one")
            return cls._sentinel(read, sentinels_text)
        url = read.text("REDIS_URL")
        if cluster:
            return cls._cluster(read, url)
        if url:
            return cls(url=url, where=_redis_url_where(url))
        host = read.required("REDIS_HOST")
        port = read.port("REDIS_PORT")
        db = read.integer("REDIS_DB", 0, 10_000)
        password = read.secret("REDIS_PASSWORD")
        auth = f":{_quote(password)}@" if password else ""
        return cls(url=f"redis://{auth}{_bracket(host)}:{port}/{db}", where=f"{host}:{port}/{db}")

    @classmethod
    def _sentinel(cls, read: EnvReader, text: str) -> RedisSettings:
        if read.text("REDIS_URL"):
            # The URL would name one server and its database, which the Sentinels decide instead.
            raise ConfigError(
                "REDIS_URL and REDIS_SENTINELS exclude each other: "
                "with Sentinel, give REDIS_PASSWORD and REDIS_DB"
            )
        master = read.text("REDIS_SENTINEL_MASTER")
        if not master:
            raise ConfigError(
                "REDIS_SENTINEL_MASTER must be set with REDIS_SENTINELS (the master's name there)"
            )
        sentinels = parse_host_ports("REDIS_SENTINELS", text, default_port=26379)
        db = read.integer("REDIS_DB", 0, 10_000)
        shown = ",".join(f"{_bracket(h)}:{p}" for h, p in sentinels)
        return cls(
            url="",
            where=f"sentinel {master}@{shown}/{db}",
            mode="sentinel",
            sentinels=sentinels,
            sentinel_master=master,
            sentinel_password=read.secret("REDIS_SENTINEL_PASSWORD"),
            password=read.secret("REDIS_PASSWORD"),
            db=db,
        )

    @classmethod
    def _cluster(cls, read: EnvReader, url: str | None) -> RedisSettings:
        refuse_db = ConfigError(
            "REDIS_DB must be 0 with REDIS_CLUSTER=true: a Redis Cluster has only database 0"
        )
        if url:
            if url.startswith("unix:"):
                raise ConfigError(
                    "REDIS_URL must name host:port seed nodes with REDIS_CLUSTER=true, not a socket"
                )
            first, seeds = _cluster_seeds(url)
            where = _redis_url_where(first)
            if urlsplit(first).path.strip("/") not in ("", "0"):
                raise refuse_db
        else:
            host = read.required("REDIS_HOST")
            port = read.port("REDIS_PORT")
            if read.integer("REDIS_DB", 0, 10_000) != 0:
                raise refuse_db
            password = read.secret("REDIS_PASSWORD")
            auth = f":{_quote(password)}@" if password else ""
            first, seeds = f"redis://{auth}{_bracket(host)}:{port}/0", ((host, port),)
            where = f"{host}:{port}"
        if read.environ.get("REDIS_DB", "").strip() not in ("", "0"):
            raise refuse_db
        more = "".join(f",{_bracket(h)}:{p}" for h, p in seeds[1:])
        return cls(url=first, where=f"cluster {where}{more}", mode="cluster", seeds=seeds)


def parse_host_ports(name: str, text: str, default_port: int) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (IPv6 in brackets); a part without a port gets ``default_port``."""
    found: list[tuple[str, int]] = []
    for part in text.split(","):
        item = part.strip()
        if not item:
            continue
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
        else:
            host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
        if not host or port_text is None:
            raise ConfigError(f"{name} must be host:port,host:port…, got {item!r}")
        try:
            port = int(port_text) if port_text else default_port
        except ValueError:
            raise ConfigError(f"{name} has a port that is not a number in {item!r}") from None
        if not 1 <= port <= 65535:
            raise ConfigError(f"{name} has a port outside 1-65535 in {item!r}")
        found.append((host, port))
    if not found:
        raise ConfigError(f"{name} names no host:port")
    return tuple(found)


def _cluster_seeds(url: str) -> tuple[str, tuple[tuple[str, int], ...]]:
    """REDIS_URL with REDIS_CLUSTER=true may list several seed nodes, ``redis://:pw@h1:7000,h2:7001``:
    the URL with the first alone (checked as usual), and every seed's (host, port)."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    auth, at, hosts = netloc.rpartition("@")
    parts = hosts.split(",")
    first = f"{scheme}{sep}{auth}{at}{parts[0]}{slash}{tail}"
    _redis_url_where(first)  # the usual checks, without echoing the URL
    seeds = parse_host_ports("REDIS_URL", hosts, default_port=6379)
    return first, seeds


URL_SHAPE = (
    "expected redis://[[user]:password@]host[:port][/db], rediss://… or unix:///path; "
    "percent-encode / ? # @ % in a password (# is %23)"
)


def _redis_url_where(url: str) -> str:
    """Check REDIS_URL as the client will read it, and return its safe ``host:port`` (or path).

    No message repeats any part of the URL or of a parser's error: either may hold the password
    (urlsplit's "Port could not be cast to integer value as 's3cr3tpw'" did).
    """
    malformed = ConfigError(f"REDIS_URL is malformed: {URL_SHAPE}")
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except ValueError:
        raise malformed from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://")
    if "#" in url:
        # Never meaningful in a Redis URL; an unencoded # in a password silently cut it off, and
        # redis://:1234#x@redis/0 connected to localhost:1234 without a password.
        raise ConfigError(f"REDIS_URL must not contain '#': {URL_SHAPE}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"REDIS_URL names no host: {URL_SHAPE}")
    if parts.scheme != "unix" and parts.path.strip("/") and not parts.path.strip("/").isdigit():
        # redis-py would ignore a database that is not a number and use 0 without a word.
        raise ConfigError(f"REDIS_URL has a database (after the host) that is not a number: {URL_SHAPE}")
    import redis.connection  # here, not at the top: the Gunicorn master imports this module

    try:
        # Parse it now, as the client will: a bad URL fails at start, in one line.
        redis.connection.parse_url(url)
    except (ValueError, TypeError):
        raise malformed from None
    return parts.path if parts.scheme == "unix" else f"{parts.hostname}:{port}"


def _quote(text: str) -> str:
    return quote(text, safe="")


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


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
    session_expiry: int = 3600
    receive_maximum: int = 1000
    stats_interval: float = 5.0
    history_maxlen: int = 10_000
    history_max_bytes: int = 64 * 1024 * 1024
    queue_maxsize: int = 100_000
    topics_max: int = 10_000
    payload_max_bytes: int = 1024 * 1024
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
        return f"{_bracket(self.broker_host)}:{self.broker_port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        read = EnvReader(os.environ if environ is None else environ)
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
            stats_interval=read.number("STATS_INTERVAL", 0.1, 3600),
            history_maxlen=read.integer("HISTORY_MAXLEN", 0, 100_000_000),
            history_max_bytes=read.integer("HISTORY_MAX_BYTES", 0, 1 << 40),
            queue_maxsize=read.integer("QUEUE_MAXSIZE", 100, 10_000_000),
            topics_max=read.integer("TOPICS_MAX", 10, 10_000_000),
            payload_max_bytes=read.integer("PAYLOAD_MAX_BYTES", 1024, 16 * 1024 * 1024),
            metrics_port=read.optional_port("METRICS_PORT"),
            config_secret_key=read_secret_key(read),
            log_level=level,
            bridge_name=read_bridge_name(read),
            group=group,
            member=member,
        )


def read_secret_key(read: EnvReader) -> str | None:
    """CONFIG_SECRET_KEY, checked now so that a bad key stops the start, not the first command."""
    from bridge.secret_box import SecretBox  # here: it imports cryptography, which only this needs

    text = read.secret("CONFIG_SECRET_KEY")
    SecretBox.from_setting(text)
    return text


def read_bridge_name(read: EnvReader) -> str | None:
    name = read.text("BRIDGE_NAME")
    if name is not None and (problem := bridge_name_problem(name)):
        raise ConfigError(f"BRIDGE_NAME {problem}")
    return name


def _group_fields(read: EnvReader, client_id: str) -> tuple[str | None, str]:
    """BRIDGE_GROUP / BRIDGE_MEMBER, checked; with no group the member id is only a label."""
    from bridge.group_filters import check_group_name, check_member_id, refuse_overlaps

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


def markdown_table(variables: tuple[Variable, ...]) -> str:
    """The variables as a Markdown table, as docs/configuration.md shows them (a test keeps
    the document and this list in step)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for v in variables:
        default = f"`{v.default}`" if v.default is not None else "(unset)"
        secret = " **Secret**: never logged or shown." if v.secret else ""
        rows.append(f"| `{v.name}` | {default} | {v.help}.{secret} |")
    return "\n".join(rows)
