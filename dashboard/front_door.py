"""What every request passes before Flask or Socket.IO sees it: the trusted proxy and the Host check.

Both are WSGI middleware around the whole app, Socket.IO included (Flask-SocketIO answers
``/socket.io`` before Flask's own hooks run). Order, outermost first:

- ``TrustedProxies``: ``X-Forwarded-For/-Proto/-Host/-Port`` are applied (Werkzeug's ProxyFix,
  one hop) only when the connection comes from an address in DASHBOARD_TRUSTED_PROXIES; from
  anyone else they are ignored, so a client cannot pick the address it is counted under.
- ``AllowedHosts``: a Host header outside DASHBOARD_ALLOWED_HOSTS gets 400. A DNS-rebinding
  page controls both Origin and Host, so the same-origin rule alone lets it through; the Host it
  must send (its own domain name) is what it cannot choose.
- ``WholeWebSocketWrites``: a workaround for simple-websocket 1.1.0, which writes each WebSocket
  frame with one ``socket.send()`` and ignores a short write; see the class.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from werkzeug.middleware.proxy_fix import ProxyFix

from dashboard.host_rules import HostRule, Network

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_HOST_SHOWN = 100  # characters of a refused Host header repeated in the error


class AllowedHosts:
    def __init__(self, app: WSGIApp, rule: HostRule):
        self.app = app
        self.rule = rule

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST")
        if self.rule.allows(host):
            return self.app(environ, start_response)
        shown = (host or "")[:_HOST_SHOWN]
        logger.info("refused a request for Host %r (not in DASHBOARD_ALLOWED_HOSTS)", shown)
        message = f"Host {shown!r} is not served here: add it to DASHBOARD_ALLOWED_HOSTS"
        body = json.dumps({"error": message}).encode()
        start_response(
            "400 Bad Request",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]


class TrustedProxies:
    def __init__(self, app: WSGIApp, networks: tuple[Network, ...]):
        self.app = app
        self.networks = networks
        # One hop: the proxy appends the client it saw; anything further left the client wrote.
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=1, x_port=1)

    def trusted(self, address: str | None) -> bool:
        if not self.networks or not address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.trusted(environ.get("REMOTE_ADDR")):
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)


class _SendAll:
    """A socket whose ``send`` writes everything (``sendall``); all else is the socket's own."""

    def __init__(self, sock: Any):
        self._sock = sock

    def send(self, data: bytes, *flags: int) -> int:
        self._sock.sendall(data, *flags)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class WholeWebSocketWrites:
    """Give simple-websocket a socket whose ``send`` never writes only part of a frame.

    simple-websocket 1.1.0 sends each frame with one ``sock.send()`` and ignores the count it
    returns (upstream issue miguelgrinberg/simple-websocket#45). When a browser reads slowly the
    kernel takes only part of a large frame, the rest is lost, and the browser sees a corrupt
    stream. Only the Engine.IO writer greenlet sends on a socket, so ``sendall`` keeps frames whole
    without interleaving. Remove this once a fixed simple-websocket is locked.
    """

    KEYS = ("gunicorn.socket", "werkzeug.socket")

    def __init__(self, app: WSGIApp):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            for key in self.KEYS:
                if key in environ and not isinstance(environ[key], _SendAll):
                    environ[key] = _SendAll(environ[key])
        return self.app(environ, start_response)


def same_origin_socket(origin: str | None, environ: dict[str, Any]) -> bool:
    """Engine.IO's origin check, made the same as the REST one: Origin names the Host asked for.

    Engine.IO's own check also compares the scheme, which refuses every socket behind a TLS
    proxy that forwards the Host but not the scheme, while REST works. The scheme adds nothing
    here: a page on the same host name is the same site either way.
    """
    if not origin:
        return True  # not a browser (browsers always send Origin on a WebSocket handshake)
    netloc = urlsplit(origin).netloc.lower()
    return bool(netloc) and netloc == str(environ.get("HTTP_HOST", "")).lower()
