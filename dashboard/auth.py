"""Who may use the dashboard: token/password checks, the session cookie, and the CSRF rule.

Three ways in (docs/dashboard-api.md): ``Authorization: Bearer``, a session cookie set by
``POST /api/login`` or ``/?token=``, and for Socket.IO also ``auth={"token": ...}``.
Cookie-authenticated POST/DELETE must come from our own origin; Bearer requests are exempt,
since a browser never adds that header on its own.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Request, session
from werkzeug.datastructures import Headers

from bridge.errors import ConfigError
from dashboard.config import DashboardSettings

logger = logging.getLogger(__name__)

HeaderMap = Headers | Mapping[str, str]

SESSION_KEY = "login"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Authenticator:
    def __init__(self, settings: DashboardSettings):
        self.enabled = settings.auth_enabled
        self.mode = settings.auth_mode
        self._secrets = [s.encode() for s in (settings.token, settings.password) if s]
        self._fingerprint = settings.credentials_fingerprint
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

    # --- sessions ---------------------------------------------------------------------------
    def log_in(self) -> None:
        session.clear()
        session[SESSION_KEY] = self._fingerprint
        session.permanent = True

    @staticmethod
    def log_out() -> None:
        session.clear()

    def session_valid(self) -> bool:
        value = session.get(SESSION_KEY)
        return isinstance(value, str) and hmac.compare_digest(value, self._fingerprint)

    # --- requests ------------------------------------------------------------------------------
    def bearer_valid(self, headers: HeaderMap) -> bool:
        return self.check_secret(bearer_token(headers))

    def request_allowed(self, request: Request) -> bool:
        """Logged in by Bearer header or session cookie (always, when auth is off)."""
        if not self.enabled:
            return True
        return self.bearer_valid(request.headers) or self.session_valid()

    def socket_allowed(self, auth: Any, headers: HeaderMap) -> bool:
        """A Socket.IO connect: ``auth`` token/password, Bearer header, or the session cookie."""
        if not self.enabled:
            return True
        if isinstance(auth, dict) and (
            self.check_secret(auth.get("token")) or self.check_secret(auth.get("password"))
        ):
            return True
        return self.bearer_valid(headers) or self.session_valid()


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
    """Safe methods and valid Bearer requests need no origin check."""
    if request.method not in STATE_CHANGING:
        return True
    return bearer_token(request.headers) is not None and (
        not authenticator.enabled or authenticator.bearer_valid(request.headers)
    )
