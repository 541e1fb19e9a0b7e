"""Who may use the dashboard: token/password checks, the session cookie, and the CSRF rule.

Three ways in (docs/dashboard-api.md): ``Authorization: Bearer``, a session cookie set by
``POST /api/login`` or ``/?token=``, and for Socket.IO also ``auth={"token": ...}``.
Every token or password presented, whichever way, goes through ``Authenticator.authenticate``,
so each wrong one counts against the address (``LoginGuard``) and a blocked address gets no
further checks at all, not even of the right secret.
Cookie-authenticated POST/DELETE must come from our own origin; Bearer requests are exempt,
since a browser never adds that header on its own.

Named users (dashboard/users.py) log in with ``POST /api/login`` ``{"username", "password"}``;
their failures count against the address and against the user name. The token and
``DASHBOARD_PASSWORD`` are the bootstrap admin. Every request and socket is someone: a
``Principal`` (dashboard/policy.py), read again from Redis on each request, so a user changed or
disabled by an admin is out at once.
"""

from __future__ import annotations

import enum
import hmac
import logging
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Request, g, session
from werkzeug.datastructures import Headers

from bridge.contract.errors import ConfigError
from dashboard.config import DashboardSettings
from dashboard.login_guard import LoginGuard
from dashboard.policy import BOOTSTRAP, NOBODY_CHECKED, Principal
from dashboard.sessions import SessionStore
from dashboard.users import User, UserStore

logger = logging.getLogger(__name__)

HeaderMap = Headers | Mapping[str, str]

SESSION_KEY = "sid"  # the cookie holds only the session's id; Redis says whether it is valid
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TOO_MANY = "too many failed logins from your address: wait a minute and try again"
TOO_MANY_FOR_USER = "too many failed logins for this user name: wait a minute and try again"


class Check(enum.Enum):
    """The outcome of presenting credentials."""

    OK = "ok"
    NONE = "none"  # nothing was presented: not a guess, not counted
    WRONG = "wrong"  # counted against the address
    BLOCKED = "blocked"  # the address is over the limit: nothing was checked


class Authenticator:
    def __init__(
        self,
        settings: DashboardSettings,
        guard: LoginGuard,
        sessions: SessionStore,
        users: UserStore,
        user_guard: LoginGuard | None = None,
    ):
        self.enabled = settings.auth_enabled
        self.guard = guard
        self.user_guard = user_guard
        self.sessions = sessions
        self.users = users
        self.mode = settings.auth_mode
        self._secrets = [s.encode() for s in (settings.token, settings.password) if s]
        if self.enabled and not self._secrets:
            # Refuse to run wide open by accident; mqtt-dashboard generates a token first.
            raise ConfigError(
                "DASHBOARD_TOKEN or DASHBOARD_PASSWORD must be set when DASHBOARD_AUTH is on "
                "(mqtt-dashboard generates a token for you)"
            )

    def check_secret(self, candidate: object) -> bool:
        """True when ``candidate`` is the token or the password; constant-time per secret."""
        if not isinstance(candidate, str) or not candidate:
            return False
        given = candidate.encode()
        matched = False
        for secret in self._secrets:
            # No short-circuit: the time taken does not reveal which secret was close.
            matched |= hmac.compare_digest(given, secret)
        return matched

    def authenticate(self, candidates: Iterable[object], address: str | None) -> Check:
        """Check the presented secrets (empty ones are not presented), counting a failure.

        The one way any credential is checked: login form, ``/?token=``, Bearer header and
        Socket.IO ``auth`` all come here, so no path is a free guess.
        """
        presented = [c for c in candidates if c is not None and c != ""]
        if not presented:
            return Check.NONE
        if self.guard.blocked(address):
            return Check.BLOCKED
        # Check every candidate (no short-circuit), so timing does not tell which one was wrong.
        results = [self.check_secret(c) for c in presented]
        if any(results):
            return Check.OK
        self.guard.failed(address)
        return Check.WRONG

    def authenticate_user(
        self, username: object, password: object, address: str | None
    ) -> tuple[Check, User | None]:
        """A named user's login: counted against the address and the user name alike."""
        if not username or not password:
            return Check.NONE, None
        name = (username if isinstance(username, str) else repr(username))[:200]  # a bounded Redis key
        if self.guard.blocked(address) or (self.user_guard is not None and self.user_guard.blocked(name)):
            return Check.BLOCKED, None
        user = self.users.verify(username, password)
        if user is not None:
            return Check.OK, user
        self.guard.failed(address)
        if self.user_guard is not None:
            self.user_guard.failed(name)
        return Check.WRONG, None

    # --- sessions ---------------------------------------------------------------------------
    def log_in(self, user: User | None = None) -> None:
        """A new server-side session (never the old id: no session fixation) in the cookie, for
        ``user``, or for the bootstrap admin when None."""
        self.sessions.revoke(session.get(SESSION_KEY))
        session.clear()
        if user is None:
            session[SESSION_KEY] = self.sessions.create()
        else:
            session[SESSION_KEY] = self.sessions.create(user.username, user.stamp)
        session.permanent = True
        self.forget_check()
        g._principal = principal_of(user)

    def log_out(self) -> None:
        """Revoke the session on the server: a copy of the cookie is worthless from now on."""
        session_id = session.get(SESSION_KEY)
        session.clear()  # first: the browser forgets it even if Redis fails (503) below
        self.forget_check()
        self.sessions.revoke(session_id)

    def session_principal(self) -> Principal | None:
        """Who the cookie's session belongs to, while it is live and its user unchanged
        (raises redis.RedisError when Redis is down)."""
        session_id = session.get(SESSION_KEY)
        record = self.sessions.read(session_id) if session_id is not None else None
        if record is None:
            return None
        username = record.get("user")
        if username is None:
            return BOOTSTRAP
        user = self.users.get(username)
        if user is None or user.disabled or user.stamp != record.get("stamp"):
            # Changed, disabled or deleted since this login: the session is over for good.
            self.sessions.revoke(session_id)
            return None
        return principal_of(user)

    def session_valid(self) -> bool:
        """The cookie names a live session (raises redis.RedisError when Redis is down)."""
        return self.session_principal() is not None

    def session_store_key(self) -> str | None:
        """The Redis key of the cookie's session, if the cookie names one (valid or not)."""
        value = session.get(SESSION_KEY)
        return self.sessions.key(value) if isinstance(value, str) and value else None

    # --- requests ------------------------------------------------------------------------------
    def request_check(self, request: Request) -> Check:
        """A Bearer header when one is sent (checked and counted), else the session cookie.

        Remembered for the rest of the request, so one request is never counted twice.
        """
        if not self.enabled:
            g._principal = NOBODY_CHECKED
            return Check.OK
        cached = g.get("_auth_check")
        if isinstance(cached, Check):
            return cached
        token = bearer_token(request.headers)
        principal = None
        if token is not None:
            check = self.authenticate([token], request.remote_addr)
            principal = BOOTSTRAP if check is Check.OK else None
        else:
            principal = self.session_principal()
            check = Check.OK if principal is not None else Check.NONE
        g._auth_check = check
        g._principal = principal
        return check

    def principal(self, request: Request) -> Principal | None:
        """Who this request is (None: nobody logged in)."""
        if self.request_check(request) is not Check.OK:
            return None
        found: Principal | None = g.get("_principal")
        return found

    def forget_check(self) -> None:
        """After a login or logout in this request the cached answer is out of date."""
        g.pop("_auth_check", None)
        g.pop("_principal", None)

    def request_allowed(self, request: Request) -> bool:
        return self.request_check(request) is Check.OK

    def socket_login(
        self, auth: Any, headers: HeaderMap, address: str | None
    ) -> tuple[Check, Principal | None]:
        """A Socket.IO connect: ``auth`` token/password and the Bearer header, else the cookie."""
        if not self.enabled:
            return Check.OK, NOBODY_CHECKED
        candidates: list[object] = [bearer_token(headers)]
        if isinstance(auth, dict):
            candidates += [auth.get("token"), auth.get("password")]
        check = self.authenticate(candidates, address)
        if check is Check.OK:
            return check, BOOTSTRAP
        if check is Check.NONE:
            principal = self.session_principal()
            if principal is not None:
                return Check.OK, principal
        return check, None

    def socket_check(self, auth: Any, headers: HeaderMap, address: str | None) -> Check:
        return self.socket_login(auth, headers, address)[0]


def principal_of(user: User | None) -> Principal:
    if user is None:
        return BOOTSTRAP
    return Principal(user.username, user.role, user.tenant, user.broker)


def bearer_token(headers: HeaderMap) -> str | None:
    value = headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def same_origin(request: Request) -> bool:
    """The CSRF rule: the request's Origin (or else Referer) names the host it was sent to.

    A request with neither header is refused: every browser sends Origin on a cross-site
    POST, so only non-browser clients omit both, and those can use a Bearer token instead.
    """
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return False
    netloc = urlsplit(source).netloc.lower()
    return bool(netloc) and netloc == request.host.lower()


def csrf_exempt(request: Request, authenticator: Authenticator) -> bool:
    """Safe methods and valid Bearer requests need no origin check (a browser never adds
    that header to a cross-site request on its own)."""
    if request.method not in STATE_CHANGING:
        return True
    if bearer_token(request.headers) is None:
        return False
    return authenticator.request_check(request) is Check.OK
