"""The dashboard's settings: read once from the environment, validated, frozen.

``VARIABLES`` lists every ``DASHBOARD_*`` variable (name, default, help) so the docs can be
checked against it; the Redis variables are the bridge's (``bridge.contract.env.RedisSettings``).
A bad value raises ConfigError naming the variable.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeVar

from bridge.contract.env import EnvReader, RedisSettings, Variable, read_secret_key
from bridge.contract.errors import ConfigError
from bridge.contract.protocol import UNNAMED_BROKER, bridge_name_problem
from dashboard.host_rules import Network, parse_hosts, parse_networks

T = TypeVar("T")

VARIABLES: tuple[Variable, ...] = (
    Variable("DASHBOARD_HOST", "0.0.0.0", "address the dashboard listens on"),  # noqa: S104 - a server's default
    Variable("DASHBOARD_PORT", "8082", "port the dashboard listens on"),
    Variable("DASHBOARD_WORKERS", "2", "Gunicorn worker processes"),
    Variable("DASHBOARD_AUTH", "on", "on, or off to disable login (a warning is logged and shown)"),
    Variable(
        "DASHBOARD_TOKEN", None, "login token (generated at start when no token or password)", secret=True
    ),
    Variable("DASHBOARD_PASSWORD", None, "login password, accepted wherever the token is", secret=True),
    Variable(
        "DASHBOARD_SECRET_KEY",
        None,
        "key that signs session cookies (default: derived from the token/password)",
        secret=True,
    ),
    Variable(
        "DASHBOARD_SESSION_TTL",
        "604800",
        "seconds a login stays valid without use (each use extends it; logout ends it at once)",
    ),
    Variable(
        "DASHBOARD_ALLOWED_HOSTS",
        None,
        "host names the dashboard answers to, comma-separated (.example.com includes subdomains, "
        "* any); localhost and IP addresses always (default: this machine's host names)",
    ),
    Variable(
        "DASHBOARD_TRUSTED_PROXIES",
        None,
        "addresses or networks of reverse proxies whose X-Forwarded-For/-Proto/-Host are honoured "
        "(default: none)",
    ),
    Variable("DASHBOARD_FRAME_INTERVAL", "0.1", "seconds between mqtt_messages frames to a browser"),
    Variable("DASHBOARD_FRAME_MAX", "500", "messages per frame at most (the newest; the rest are counted)"),
    Variable(
        "DASHBOARD_CLIENT_BUFFER",
        "8388608",
        "bytes a worker holds for one browser at most; one further behind gets no frames until it "
        "catches up (they are counted as skipped), and no frame is larger",
    ),
    Variable("DASHBOARD_HISTORY_ON_CONNECT", "100", "recent messages sent in the snapshot on connect"),
    Variable("DASHBOARD_COMMAND_TIMEOUT", "5", "seconds to wait for the bridge to answer a command"),
    Variable("DASHBOARD_MAX_BODY", "1048576", "largest accepted request body in bytes"),
    Variable(
        "DASHBOARD_TENANT_PREFIX",
        "tenants",
        "topic levels under which each tenant gets its own <prefix>/<tenant>/# (the Tenants page)",
    ),
    Variable("DASHBOARD_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
    Variable(
        "DASHBOARD_BROKERS",
        None,
        "comma-separated bridge names (BRIDGE_NAME; 'default' is the unnamed bridge) that /health "
        "expects online; unset = every bridge that ever registered in Redis, so one that stops is "
        "reported, not forgotten",
    ),
)

# The names of the auth modes, not secrets.
AUTH_TOKEN = "token"  # noqa: S105
AUTH_PASSWORD = "password"  # noqa: S105
AUTH_OFF = "off"

_ON_WORDS = ("on", "true", "yes", "1")
_OFF_WORDS = ("off", "false", "no", "0")
# Fixed salt: the key must come out the same in every worker and after every restart, so
# sessions survive both; the secret itself provides the entropy.
_KEY_SALT = b"mqtt-redis-bridge dashboard session key v1"
_KEY_ROUNDS = 100_000  # slows offline guessing of a weak password from a signed cookie


@dataclass(frozen=True)
class DashboardSettings:
    redis: RedisSettings
    host: str = "0.0.0.0"  # noqa: S104 - a server's default; DASHBOARD_HOST narrows it
    port: int = 8082
    workers: int = 2
    auth_enabled: bool = True
    token: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    config_secret_key: str | None = field(default=None, repr=False)
    session_ttl: int = 604_800
    allowed_hosts: tuple[str, ...] | None = None  # None: this machine's host names
    trusted_proxies: tuple[Network, ...] = ()
    frame_interval: float = 0.1
    frame_max: int = 500
    client_buffer: int = 8 * 1024 * 1024
    history_on_connect: int = 100
    command_timeout: float = 5.0
    max_body: int = 1_048_576
    tenant_prefix: str = "tenants"
    log_level: str = "INFO"
    brokers: tuple[str, ...] | None = None  # DASHBOARD_BROKERS; None: every registered bridge

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DashboardSettings:
        read = EnvReader(os.environ if environ is None else environ, VARIABLES)
        return cls(
            redis=RedisSettings.from_env(read.environ),
            host=read.required("DASHBOARD_HOST"),
            port=read.integer("DASHBOARD_PORT", 1, 65535),
            workers=read.integer("DASHBOARD_WORKERS", 1, 64),
            auth_enabled=read.flag("DASHBOARD_AUTH"),
            token=_secret(read, "DASHBOARD_TOKEN"),
            password=_secret(read, "DASHBOARD_PASSWORD"),
            secret_key=_secret(read, "DASHBOARD_SECRET_KEY"),
            config_secret_key=read_secret_key(read),
            session_ttl=read.integer("DASHBOARD_SESSION_TTL", 60, 366 * 86_400),
            allowed_hosts=_parsed(read, "DASHBOARD_ALLOWED_HOSTS", parse_hosts),
            trusted_proxies=_parsed(read, "DASHBOARD_TRUSTED_PROXIES", parse_networks) or (),
            frame_interval=read.number("DASHBOARD_FRAME_INTERVAL", 0.01, 10),
            frame_max=read.integer("DASHBOARD_FRAME_MAX", 1, 10_000),
            client_buffer=read.integer("DASHBOARD_CLIENT_BUFFER", 64 * 1024, 1024 * 1024 * 1024),
            history_on_connect=read.integer("DASHBOARD_HISTORY_ON_CONNECT", 0, 1000),
            command_timeout=read.number("DASHBOARD_COMMAND_TIMEOUT", 0.1, 120),
            max_body=read.integer("DASHBOARD_MAX_BODY", 1024, 1024 * 1024 * 1024),
            tenant_prefix=_tenant_prefix(read),
            log_level=read.log_level("DASHBOARD_LOG_LEVEL"),
            brokers=_parsed(read, "DASHBOARD_BROKERS", parse_brokers),
        )

    @property
    def auth_mode(self) -> str:
        """What /api/session reports, so the UI knows which login form to show."""
        if not self.auth_enabled:
            return AUTH_OFF
        return AUTH_PASSWORD if self.password else AUTH_TOKEN

    @property
    def needs_token(self) -> bool:
        """Auth is on but nothing to log in with: the runner must generate a token first."""
        return self.auth_enabled and not (self.token or self.password)

    @cached_property
    def session_key(self) -> str:
        """The Flask secret key: explicit, or derived from the login secrets.

        Never random per process: every Gunicorn worker must sign and accept the same cookies.
        Deriving it from the secrets also means changing the token logs everyone out.
        Cached: the derivation is deliberately slow.
        """
        if self.secret_key:
            return self.secret_key
        material = f"{self.token or ''}\x00{self.password or ''}".encode()
        return hashlib.pbkdf2_hmac("sha256", material, _KEY_SALT, _KEY_ROUNDS).hex()

    @cached_property
    def credentials_fingerprint(self) -> str:
        """Part of every session's Redis key: after a token or password change, no session
        made before it is found any more (all revoked)."""
        material = f"{self.token or ''}\x00{self.password or ''}".encode()
        return hmac.new(self.session_key.encode(), material, hashlib.sha256).hexdigest()[:32]


def parse_brokers(text: str) -> tuple[str, ...]:
    """DASHBOARD_BROKERS: bridge names (BRIDGE_NAME), ``default`` for the unnamed bridge."""
    names: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue
        problem = None if name == UNNAMED_BROKER else bridge_name_problem(name)
        if problem:
            raise ValueError(f"a bridge name {problem} ('{UNNAMED_BROKER}' is the unnamed bridge)")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError("names no bridge; leave it unset to expect every registered bridge")
    return tuple(names)


def _secret(read: EnvReader, name: str) -> str | None:
    """A secret as given (not stripped: a deliberate inner or outer space must still match), but
    one that is only whitespace is a mistake (a stray ``NAME= `` in a file), not a secret."""
    value = read.secret(name)
    if value is not None and not value.strip():
        raise ConfigError(f"{name} is only whitespace: set a real value, or leave it unset")
    return value


TENANT_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


def _tenant_prefix(read: EnvReader) -> str:
    """Topic levels, no wildcards, no leading $ or /: each tenant's ACLs are ``<prefix>/<name>/#``."""
    value = read.required("DASHBOARD_TENANT_PREFIX")
    if len(value) > 200 or not TENANT_PREFIX.match(value):
        raise ConfigError(
            "DASHBOARD_TENANT_PREFIX must be one or more topic levels of letters, digits, - or _ "
            f"separated by / (e.g. tenants or org/acme), got {value!r}"
        )
    return value


def _parsed(read: EnvReader, name: str, parse: Callable[[str], tuple[T, ...]]) -> tuple[T, ...] | None:
    raw = read.text(name)
    if raw is None:
        return None
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def ensure_login_token(environ: MutableMapping[str, str]) -> str | None:
    """Generate DASHBOARD_TOKEN into ``environ`` when auth is on and no secret is set.

    Called once, in the process that starts the workers, so all of them inherit the same
    token. Returns the new token, or None when one was not needed.
    """
    read = EnvReader(environ, VARIABLES)
    if not read.flag("DASHBOARD_AUTH") or read.secret("DASHBOARD_TOKEN") or read.secret("DASHBOARD_PASSWORD"):
        return None
    token = secrets.token_urlsafe(32)
    environ["DASHBOARD_TOKEN"] = token
    return token


@dataclass(frozen=True)
class ServerSettings:
    """What the Gunicorn master needs before it forks the workers.

    Deliberately without the Redis settings: reading those may import redis-py, and anything the
    master imports is imported before gevent patches the workers (its MonkeyPatchWarning).
    """

    host: str
    port: int
    workers: int
    log_level: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServerSettings:
        read = EnvReader(environ, VARIABLES)
        return cls(
            host=read.required("DASHBOARD_HOST"),
            port=read.integer("DASHBOARD_PORT", 1, 65535),
            workers=read.integer("DASHBOARD_WORKERS", 1, 64),
            log_level=read.log_level("DASHBOARD_LOG_LEVEL"),
        )
