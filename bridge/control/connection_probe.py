"""Try broker settings in a separate, short-lived MQTT connection and say what happened, in words.

The probe never touches the live connection: its own client id, a clean start, and a disconnect as
soon as the broker has answered. ``outcome`` is for programs, ``sentence`` for people; neither ever
holds the password.

The answer says what a person setting up a broker connection needs, and no more: whether an MQTT
broker answered and what it said, whether the host name exists, whether a TLS server's certificate
is trusted. Whether a port is closed, silent, or speaks something else is one outcome,
``no_broker``: told apart, they would make the connection test a port scanner for anyone who may
use it (the dashboard and the bridge also limit how often it runs).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bridge.contract import protocol

# Every outcome the probe can report.
CONNECTED = "connected"
BAD_CREDENTIALS = "bad_credentials"
NOT_AUTHORISED = "not_authorised"
REFUSED = "refused"  # any other CONNACK refusal
HOST_NOT_FOUND = "host_not_found"
TLS_FAILED = "tls_failed"  # a TLS server answered, but its certificate (or ours) would not do
NO_BROKER = "no_broker"  # refused, silent, closed without a CONNACK, not TLS, unreachable: one answer
OUTCOMES = (CONNECTED, BAD_CREDENTIALS, NOT_AUTHORISED, REFUSED, HOST_NOT_FOUND, TLS_FAILED, NO_BROKER)
PROBE_TIMEOUT = protocol.PROBE_TIMEOUT


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect: the subset of the bridge's settings a connection needs."""

    host: str
    port: int
    protocol: int = 5  # paho's constants: 5 (MQTTv5) or 4 (MQTTv311)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = False
    keepalive: int = 30

    @classmethod
    def from_settings(cls, settings: Any) -> Endpoint:
        """The live connection's endpoint (``bridge.config.Settings`` or anything shaped so)."""
        return cls(
            host=settings.broker_host,
            port=settings.broker_port,
            protocol=settings.protocol,
            username=settings.username,
            password=settings.password,
            tls=settings.tls,
            tls_ca=settings.tls_ca,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
            tls_insecure=settings.tls_insecure,
            keepalive=settings.keepalive,
        )

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class ProbeResult:
    outcome: str
    sentence: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.outcome == CONNECTED

    def as_result(self) -> dict[str, Any]:
        """The ``result`` object of a ``cmd_test_connection`` answer."""
        return {"outcome": self.outcome, "message": self.sentence, "seconds": round(self.seconds, 3)}


def probe(
    endpoint: Endpoint, client_id_base: str = "mqtt-redis-bridge", timeout: float = PROBE_TIMEOUT
) -> ProbeResult:
    """Connect once with ``endpoint``, wait for the broker's answer, disconnect; never raises."""
    started = time.monotonic()
    deadline = started + timeout
    # Never the live session's id: taking it would disconnect the live bridge.
    client_id = f"{client_id_base[:40]}-probe-{secrets.token_hex(4)}"
    answer: list[Any] = []
    closed: list[bool] = []
    client: mqtt.Client | None = None

    def result(outcome: str, sentence: str) -> ProbeResult:
        return ProbeResult(outcome, sentence, time.monotonic() - started)

    try:
        if endpoint.tls:
            _check_tls(endpoint, deadline)
        client = _client(endpoint, client_id, answer, closed)
        client.connect_timeout = max(0.1, deadline - time.monotonic())
        if endpoint.protocol == 5:
            client.connect(endpoint.host, endpoint.port, keepalive=endpoint.keepalive, clean_start=True)
        else:  # 3.1.1 has no clean start; the client was made with clean_session=True
            client.connect(endpoint.host, endpoint.port, keepalive=endpoint.keepalive)
        while not answer and not closed and time.monotonic() < deadline:
            client.loop(timeout=min(0.1, max(0.01, deadline - time.monotonic())))
    except socket.gaierror:
        return result(HOST_NOT_FOUND, f"host {endpoint.host!r} not found")
    except _TlsFailed as exc:
        return result(TLS_FAILED, f"TLS with {endpoint.where} failed: {exc}")
    except (OSError, ValueError):  # refused, timed out, reset, a TLS error before any TLS answer
        return result(NO_BROKER, _no_broker(endpoint))
    finally:
        if client is not None:
            _close(client, bool(answer and not answer[0].is_failure))
    if not answer:
        return result(NO_BROKER, _no_broker(endpoint))
    return _from_reason(answer[0], endpoint, result)


def _no_broker(endpoint: Endpoint) -> str:
    tls = " over TLS" if endpoint.tls else ""
    return (
        f"no MQTT broker answered at {endpoint.where}{tls} (nothing listens there, something other "
        "than MQTT does, or the network drops the connection): check the host, the port and TLS"
    )


def _client(endpoint: Endpoint, client_id: str, answer: list[Any], closed: list[bool]) -> mqtt.Client:
    protocol = mqtt.MQTTv5 if endpoint.protocol == 5 else mqtt.MQTTv311
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        clean_session=True if protocol == mqtt.MQTTv311 else None,
    )
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set(
            ca_certs=endpoint.tls_ca,
            certfile=endpoint.tls_cert,
            keyfile=endpoint.tls_key,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(endpoint.tls_insecure)
    client.on_connect = lambda _c, _u, _flags, reason, _props: answer.append(reason)
    client.on_disconnect = lambda *_args: closed.append(True)
    client.suppress_exceptions = True
    return client


class _TlsFailed(Exception):
    """The TLS handshake failed; the message says why."""


def _check_tls(endpoint: Endpoint, deadline: float) -> None:
    """The TLS handshake alone, first, with the context paho will use.

    Its own sockets, closed whatever happens: paho leaves a socket unclosed when its handshake
    fails. Only a failure that shows a TLS server answered (its certificate is not trusted, or it
    sent an alert) is _TlsFailed; anything else propagates as the OSError it is (no broker).
    """
    try:
        context = ssl.create_default_context(cafile=endpoint.tls_ca)
        if endpoint.tls_cert:
            context.load_cert_chain(endpoint.tls_cert, endpoint.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise _TlsFailed(f"the CA, certificate or key file cannot be used ({_os_reason(exc)})") from None
    context.check_hostname = not endpoint.tls_insecure
    with socket.create_connection(
        (endpoint.host, endpoint.port), timeout=max(0.1, deadline - time.monotonic())
    ) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=endpoint.host):
                pass
        except ssl.SSLCertVerificationError as exc:
            raise _TlsFailed(_tls_reason(exc)) from None
        except ssl.SSLError as exc:
            if "ALERT" in str(exc.reason or "").upper():  # a TLS server said no (a client certificate?)
                raise _TlsFailed(_tls_reason(exc)) from None
            raise


def _from_reason(reason: Any, endpoint: Endpoint, result: Any) -> ProbeResult:
    name = str(getattr(reason, "getName", lambda: reason)())
    who = f"user {endpoint.username!r}" if endpoint.username else "an anonymous client"
    if not reason.is_failure:
        how = ("MQTT 5" if endpoint.protocol == 5 else "MQTT 3.1.1") + (", TLS" if endpoint.tls else "")
        return result(CONNECTED, f"connected to {endpoint.where} as {who} ({how})")
    if name == "Bad user name or password":
        return result(BAD_CREDENTIALS, f"{endpoint.where} refused the user name or password of {who}")
    if name == "Not authorized":
        # mosquitto 2.0 answers a wrong password with this too, not with "bad user name or password"
        why = " (wrong user name or password, or the user may not connect)" if endpoint.username else ""
        return result(NOT_AUTHORISED, f"{endpoint.where} does not authorise {who}{why}")
    return result(REFUSED, f"{endpoint.where} refused the connection: {name}")


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed ({exc.verify_message})"
    return str(exc.reason or exc.strerror or type(exc).__name__).replace("_", " ").lower()


def _os_reason(exc: Exception) -> str:
    return str(getattr(exc, "strerror", None) or exc or type(exc).__name__)


def _close(client: mqtt.Client, connected: bool) -> None:
    """Leave politely when the broker let us in; in every case, leave no socket behind."""
    with contextlib.suppress(OSError, ValueError):
        if connected:
            client.disconnect()
            client.loop(timeout=0.05)
        sock = client.socket()
        if sock is not None:
            sock.close()
