"""Dashboard users, kept in Redis (``KEY_DASHBOARD_USERS``, a hash shared by every worker).

A user has a name, a password (stored only as a scrypt hash, dashboard/passwords.py), one role,
optionally a tenant (then only that tenant's topics, on one broker) or just a broker, and a
``stamp``: a random value every session of theirs carries. Changing the role, tenant, broker or
password, or disabling the user, draws a new stamp, so every older session stops being valid at
once on every worker (dashboard/auth.py compares them on each request).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import redis

from bridge.contract.errors import InvalidCommand
from bridge.contract.protocol import KEY_DASHBOARD_USERS, UNNAMED_BROKER, dumps, loads_object
from dashboard.brokers import valid_broker
from dashboard.passwords import PasswordHasher, PasswordProblem, check_new_password
from dashboard.policy import ADMIN, ROLES
from dashboard.tenants import check_tenant_name

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
USERS_MAX = 1000  # a dashboard's people, not a directory; keeps the Users page one list
_UPDATE_TRIES = 5  # optimistic retries when two admins change the same user at once


class UserProblem(ValueError):
    """A user or a change that cannot be made; the message says why (the API answers 400)."""


class NoSuchUser(UserProblem):
    """The user does not exist (the API answers 404)."""


def check_username(name: object) -> str:
    if not isinstance(name, str) or not USERNAME.match(name):
        raise UserProblem(
            "a user name is 1-64 letters, digits, ., @, - or _, starting with a letter or digit"
        )
    return name


def check_role(role: object) -> str:
    if role not in ROLES:
        raise UserProblem(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    assert isinstance(role, str)
    return role


def check_binding(role: str, tenant: object, broker: object) -> tuple[str | None, str | None]:
    """A user's tenant and broker: a tenant user is always on one broker (``default`` unless
    named); an admin cannot be a tenant's (admins change the broker and every tenant)."""
    if tenant is not None:
        try:
            tenant = check_tenant_name(tenant)
        except InvalidCommand as exc:
            raise UserProblem(str(exc)) from None
        if role == ADMIN:
            raise UserProblem("a tenant user can be a viewer or an operator, not an admin")
    if broker is not None and (not isinstance(broker, str) or not valid_broker(broker)):
        raise UserProblem(
            "broker must be a bridge name (lower-case letters, digits and -, at most 32) or 'default'"
        )
    if tenant is not None and broker is None:
        broker = UNNAMED_BROKER
    return tenant, broker


@dataclass(frozen=True)
class User:
    username: str
    role: str
    password: str  # the scrypt hash, never the password
    stamp: str
    tenant: str | None = None
    broker: str | None = None
    disabled: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0

    def public(self) -> dict[str, Any]:
        """What the API and the command line show: everything but the hash and the stamp."""
        return {
            "username": self.username,
            "role": self.role,
            "tenant": self.tenant,
            "broker": self.broker,
            "disabled": self.disabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_json(cls, raw: Any) -> User | None:
        """A stored record; None when it is missing or damaged (a damaged user cannot log in)."""
        record = loads_object(raw)
        if record is None:
            return None
        fields: dict[str, Any] = {k: record[k] for k in cls.__dataclass_fields__ if k in record}
        try:
            user = cls(**fields)
        except TypeError:
            return None
        well_formed = (
            all(isinstance(v, str) for v in (user.username, user.password, user.stamp))
            and user.role in ROLES
            and all(v is None or isinstance(v, str) for v in (user.tenant, user.broker))
            and isinstance(user.disabled, bool)
        )
        return user if well_formed else None


def new_stamp() -> str:
    return secrets.token_urlsafe(12)


class UserStore:
    def __init__(self, client: redis.Redis, hasher: PasswordHasher | None = None):
        self.redis = client
        self.hasher = hasher or PasswordHasher()

    def get(self, name: object) -> User | None:
        if not isinstance(name, str) or not USERNAME.match(name):
            return None
        return User.from_json(self.redis.hget(KEY_DASHBOARD_USERS, name))

    def any(self) -> bool:
        """Whether any named user exists (the login page then offers the user form first)."""
        return bool(self.redis.hlen(KEY_DASHBOARD_USERS))

    def all(self) -> list[User]:
        raw: dict[str, str] = self.redis.hgetall(KEY_DASHBOARD_USERS)  # type: ignore[assignment]
        found = (User.from_json(value) for value in raw.values())
        return sorted((u for u in found if u is not None), key=lambda u: u.username.casefold())

    def add(
        self, name: object, password: object, role: object, tenant: object = None, broker: object = None
    ) -> User:
        username = check_username(name)
        role = check_role(role)
        tenant, broker = check_binding(role, tenant, broker)
        hashed = self._hash(password)
        if self.redis.hlen(KEY_DASHBOARD_USERS) >= USERS_MAX:
            raise UserProblem(f"there are already {USERS_MAX} users: delete one first")
        now = time.time()
        user = User(username, role, hashed, new_stamp(), tenant, broker, False, now, now)
        if not self.redis.hsetnx(KEY_DASHBOARD_USERS, username, dumps(asdict(user))):
            raise UserProblem(f"a user named {username!r} already exists")
        return user

    def update(self, name: object, /, **changes: Any) -> User:
        """Change any of ``role``, ``tenant``, ``broker``, ``password``, ``disabled``; returns the
        new record. Every change draws a new stamp, ending the user's sessions."""
        username = check_username(name)
        unknown = set(changes) - {"role", "tenant", "broker", "password", "disabled"}
        if unknown:
            raise UserProblem(
                f"unknown field {sorted(unknown)[0]!r}: a user's role, tenant, broker, password or "
                "disabled can change"
            )
        if "disabled" in changes and not isinstance(changes["disabled"], bool):
            raise UserProblem("disabled must be true or false")
        hashed = self._hash(changes["password"]) if "password" in changes else None
        for _ in range(_UPDATE_TRIES):
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(KEY_DASHBOARD_USERS)
                    current = User.from_json(pipe.hget(KEY_DASHBOARD_USERS, username))
                    if current is None:
                        raise NoSuchUser(f"no user named {username!r}")
                    updated = self._changed(current, changes, hashed)
                    pipe.multi()
                    pipe.hset(KEY_DASHBOARD_USERS, username, dumps(asdict(updated)))
                    pipe.execute()
                    return updated
                except redis.WatchError:
                    continue
        raise UserProblem(f"{username!r} was being changed by someone else at the same moment: try again")

    def _changed(self, current: User, changes: dict[str, Any], hashed: str | None) -> User:
        role = check_role(changes.get("role", current.role))
        tenant = changes.get("tenant", current.tenant)
        broker = changes.get("broker", current.broker)
        if "tenant" in changes and changes["tenant"] is None and "broker" not in changes:
            broker = None  # no longer a tenant's: no longer held to the tenant's broker either
        tenant, broker = check_binding(role, tenant, broker)
        return replace(
            current,
            role=role,
            tenant=tenant,
            broker=broker,
            disabled=changes.get("disabled", current.disabled),
            password=hashed or current.password,
            stamp=new_stamp(),
            updated_at=time.time(),
        )

    def delete(self, name: object) -> None:
        username = check_username(name)
        if not self.redis.hdel(KEY_DASHBOARD_USERS, username):
            raise NoSuchUser(f"no user named {username!r}")

    def verify(self, name: object, password: object) -> User | None:
        """The user, when the name exists, is enabled and the password is theirs; else None.

        An unknown name costs the same time as a wrong password, so a reply's speed does not say
        which names exist.
        """
        user = self.get(name)
        if user is None:
            self.hasher.burn()
            return None
        if not self.hasher.verify(password, user.password) or user.disabled:
            return None
        return user

    def _hash(self, password: object) -> str:
        try:
            return self.hasher.hash(check_new_password(password))
        except PasswordProblem as exc:
            raise UserProblem(str(exc)) from None
