"""Reading the environment, shared by both programs: typed values that fail naming the variable,
where Redis is (standalone, Sentinel or Cluster), and the secret key that seals passwords.

Each program lists its own variables (``bridge.config.VARIABLES``, ``dashboard.config.VARIABLES``);
the Redis ones, which both read the same way, are here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from bridge.contract.errors import ConfigError


@dataclass(frozen=True)
class Variable:
    name: str
    default: str | None
    help: str
    secret: bool = False


# Where Redis is: the same variables, read the same way, in both programs.
REDIS_VARIABLES: tuple[Variable, ...] = (
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
)
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class EnvReader:
    """Typed values from an environment mapping; every failure names the variable.

    Blank means unset, and unset means the variable's documented default.
    """

    def __init__(self, environ: Mapping[str, str], variables: tuple[Variable, ...] = REDIS_VARIABLES):
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
        return cls(url=f"redis://{auth}{bracket(host)}:{port}/{db}", where=f"{host}:{port}/{db}")

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
        shown = ",".join(f"{bracket(h)}:{p}" for h, p in sentinels)
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
            first, seeds = f"redis://{auth}{bracket(host)}:{port}/0", ((host, port),)
            where = f"{host}:{port}"
        if read.environ.get("REDIS_DB", "").strip() not in ("", "0"):
            raise refuse_db
        more = "".join(f",{bracket(h)}:{p}" for h, p in seeds[1:])
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


def bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def read_secret_key(read: EnvReader) -> str | None:
    """CONFIG_SECRET_KEY, checked now so that a bad key stops the start, not the first command."""
    from bridge.contract.secret_box import SecretBox  # here: it imports cryptography, which only this needs

    text = read.secret("CONFIG_SECRET_KEY")
    SecretBox.from_setting(text)
    return text


def markdown_table(variables: tuple[Variable, ...]) -> str:
    """The variables as a Markdown table, as docs/configuration.md shows them (a test keeps
    the document and this list in step)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for v in variables:
        default = f"`{v.default}`" if v.default is not None else "(unset)"
        secret = " **Secret**: never logged or shown." if v.secret else ""
        rows.append(f"| `{v.name}` | {default} | {v.help}.{secret} |")
    return "\n".join(rows)
