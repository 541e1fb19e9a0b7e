"""The connection probe against real mosquitto listeners: each failure said in words, never the password.

One broker with a password file, a plain listener and a TLS listener (a CA and a server
certificate made here), plus a port where nothing listens and one that accepts and never answers.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.control import connection_probe
from bridge.control.connection_probe import Endpoint, probe
from tests.helpers import MOSQUITTO, Process, free_port, wait_for

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def _write_pki(folder: Path) -> dict[str, Path]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe test CA")])
    ca = _certificate("probe test CA", ca_key, ca_name, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate("localhost", server_key, ca_name, ca_key, ca=False)
    files = {"ca": folder / "ca.crt", "cert": folder / "server.crt", "key": folder / "server.key"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


class SecuredBroker:
    def __init__(self, workdir: Path):
        self.port, self.tls_port = free_port(), free_port()
        self.pki = _write_pki(workdir)
        passwd = workdir / "passwd"
        subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "alice", PASSWORD], check=True)
        conf = workdir / "secured.conf"
        conf.write_text(
            "per_listener_settings false\n"
            "allow_anonymous false\n"
            f"password_file {passwd}\n"
            "persistence false\n"
            "log_dest stderr\n"
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
            f"listener {self.port} 127.0.0.1\n"
            f"listener {self.tls_port} 127.0.0.1\n"
            f"cafile {self.pki['ca']}\ncertfile {self.pki['cert']}\nkeyfile {self.pki['key']}\n"
        )
        self.process = Process([MOSQUITTO, "-c", str(conf)], self.port, workdir / "secured.log")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    found = SecuredBroker(tmp_path_factory.mktemp("probe"))
    found.process.start()
    wait_for(lambda: _listening(found.tls_port), 10, what="the TLS listener")
    yield found
    found.process.stop()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for sock in accepted:
        sock.close()
    server.close()


@pytest.mark.parametrize("protocol", [5, 4])
def test_the_right_password_connects(broker: SecuredBroker, protocol: int) -> None:
    found = probe(Endpoint("127.0.0.1", broker.port, protocol=protocol, username="alice", password=PASSWORD))

    assert found.outcome == connection_probe.CONNECTED, found.sentence
    assert found.sentence.startswith(f"connected to 127.0.0.1:{broker.port} as user 'alice'")


@pytest.mark.parametrize("protocol", [5, 4])
def test_a_wrong_password_is_explained_and_not_shown(broker: SecuredBroker, protocol: int) -> None:
    found = probe(Endpoint("127.0.0.1", broker.port, protocol=protocol, username="alice", password="hunter2"))

    # mosquitto 2.0 answers "not authorised" where MQTT has "bad user name or password"
    assert found.outcome == connection_probe.NOT_AUTHORISED
    assert found.sentence == (
        f"127.0.0.1:{broker.port} does not authorise user 'alice' "
        "(wrong user name or password, or the user may not connect)"
    )
    assert "hunter2" not in repr(found)


def test_no_user_name_on_a_broker_that_wants_one(broker: SecuredBroker) -> None:
    found = probe(Endpoint("127.0.0.1", broker.port, protocol=5))

    assert found.outcome in (connection_probe.NOT_AUTHORISED, connection_probe.BAD_CREDENTIALS)
    assert "an anonymous client" in found.sentence


def no_broker(port: int, tls: bool = False) -> str:
    over = " over TLS" if tls else ""
    return (
        f"no MQTT broker answered at 127.0.0.1:{port}{over} (nothing listens there, something other "
        "than MQTT does, or the network drops the connection): check the host, the port and TLS"
    )


def test_an_unused_port_is_no_broker() -> None:
    port = free_port()
    found = probe(Endpoint("127.0.0.1", port))

    assert (found.outcome, found.sentence) == (connection_probe.NO_BROKER, no_broker(port))


def test_a_host_that_does_not_exist() -> None:
    found = probe(Endpoint("no-such-broker.invalid", 1883))

    assert (found.outcome, found.sentence) == (
        connection_probe.HOST_NOT_FOUND,
        "host 'no-such-broker.invalid' not found",
    )


def test_tls_with_the_right_ca_connects(broker: SecuredBroker) -> None:
    found = probe(
        Endpoint(
            "127.0.0.1",
            broker.tls_port,
            username="alice",
            password=PASSWORD,
            tls=True,
            tls_ca=str(broker.pki["ca"]),
        )
    )

    assert found.outcome == connection_probe.CONNECTED, found.sentence
    assert found.sentence.endswith("(MQTT 5, TLS)")


def test_tls_with_an_unknown_ca_says_the_certificate_failed(broker: SecuredBroker) -> None:
    found = probe(Endpoint("127.0.0.1", broker.tls_port, username="alice", password=PASSWORD, tls=True))

    assert found.outcome == connection_probe.TLS_FAILED
    assert found.sentence.startswith(
        f"TLS with 127.0.0.1:{broker.tls_port} failed: certificate verify failed"
    )


@pytest.fixture
def http_port() -> Iterator[int]:
    """A port where something other than MQTT answers (an HTTP server's refusal) and hangs up."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn = server.accept()[0]
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    server.close()


def test_a_port_scanner_learns_nothing_from_the_answers(
    broker: SecuredBroker, silent_port: int, http_port: int
) -> None:
    """Closed, silent, another protocol, a TLS port without TLS or a plain port with it: one answer
    (issue 21, defect 14). Only an MQTT broker's own answer, or a TLS server's certificate, is told."""
    refused = free_port()
    cases = [
        (refused, False),
        (silent_port, False),
        (http_port, False),
        (http_port, True),
        (broker.tls_port, False),
        (broker.port, True),
    ]
    for port, tls in cases:
        found = probe(
            Endpoint("127.0.0.1", port, tls=tls, tls_ca=str(broker.pki["ca"]) if tls else None), timeout=2
        )
        assert (found.outcome, found.sentence) == (connection_probe.NO_BROKER, no_broker(port, tls)), (
            port,
            tls,
        )
    assert probe(Endpoint("127.0.0.1", silent_port), timeout=1.0).seconds < 3  # gives up on time


def test_the_probe_does_not_disturb_a_client_with_the_live_id(broker: SecuredBroker) -> None:
    import paho.mqtt.client as mqtt

    gone: list[object] = []
    live = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="mqtt-redis-bridge")
    live.username_pw_set("alice", PASSWORD)
    live.on_disconnect = lambda *args: gone.append(args)
    live.connect("127.0.0.1", broker.port)
    live.loop_start()
    try:
        wait_for(live.is_connected, 5, what="the live client")
        assert probe(Endpoint("127.0.0.1", broker.port, username="alice", password=PASSWORD)).ok
        assert live.is_connected() and not gone
    finally:
        live.disconnect()
        live.loop_stop()
