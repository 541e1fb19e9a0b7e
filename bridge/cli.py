"""``mqtt-redis-bridge``: run the bridge (default), ``healthcheck``, ``demo`` sensors, ``secret-key``
or ``seal`` (a password sealed for a command, read from standard input, bound to where it may go:
``--for connection`` with the broker settings it is for, ``--for account --account NAME``).

Every setting is an environment variable and also a flag (``MQTT_BROKER_HOST`` is
``--mqtt-broker-host``); a flag wins over the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from bridge import __version__
from bridge.config import VARIABLES, Settings
from bridge.contract import protocol
from bridge.contract.env import EnvReader, RedisSettings, read_secret_key
from bridge.contract.errors import ConfigError

logger = logging.getLogger("bridge")


def _flag(name: str) -> str:
    return "--" + name.lower().replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mqtt-redis-bridge",
        description="Bridge one MQTT broker connection into Redis pub/sub, streams and keys.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=("run", "healthcheck", "demo", "secret-key", "seal"),
        help="run the bridge (default); healthcheck: exit 0 only if the bridge is healthy; "
        "demo: publish simulated sensor data to the broker; "
        "secret-key: print a new key for CONFIG_SECRET_KEY; "
        'seal: read a password from standard input and print it as {"sealed": …} for a command '
        "(see --for)",
    )
    parser.add_argument(
        "--for",
        dest="seal_for",
        choices=("connection", "account"),
        help="seal: what the password is for. connection: a cmd_test_connection or cmd_configure to "
        "the broker named by --mqtt-broker-host, --mqtt-broker-port, --mqtt-username, --mqtt-tls "
        "and --mqtt-tls-insecure (or their variables); account: a cmd_dynsec password for the "
        "account --account on this bridge's broker (BRIDGE_NAME)",
    )
    parser.add_argument("--account", help="seal --for account: the dynamic-security account's user name")
    settings = parser.add_argument_group("settings (each also an environment variable)")
    for variable in VARIABLES:
        default = f" (default {variable.default})" if variable.default is not None else ""
        settings.add_argument(
            _flag(variable.name),
            dest=variable.name,
            metavar="VALUE",
            help=f"{variable.name}: {variable.help}{default}",
        )
    parser.add_argument("--demo-rate", type=float, default=2.0, help="demo: messages per second per device")
    parser.add_argument(
        "--demo-duration", type=float, default=None, help="demo: stop after this many seconds"
    )
    return parser


def _seal(env: dict[str, str], seal_for: str | None, account: str | None) -> int:
    """Print the sealed form of the password on standard input (its one line, without the
    newline), for commands sent from a shell, bound to what ``seal_for`` names; the password
    itself is never echoed."""
    from bridge.config import read_bridge_name
    from bridge.contract.secret_box import (
        NO_KEY,
        SecretBox,
        account_binding,
        connection_binding,
        seal_for_command,
    )

    if seal_for is None or (seal_for == "account") != bool(account):
        print(
            "mqtt-redis-bridge: seal needs --for connection (with the broker settings the password "
            "is for) or --for account --account NAME",
            file=sys.stderr,
        )
        return 2
    try:
        read = EnvReader(env, VARIABLES)
        box = SecretBox.from_setting(read_secret_key(read))
        if seal_for == "account":
            binding = account_binding(protocol.Names(read_bridge_name(read)).broker, account or "")
        else:
            binding = connection_binding(
                read.required("MQTT_BROKER_HOST"),
                read.port("MQTT_BROKER_PORT"),
                read.text("MQTT_USERNAME"),
                read.flag("MQTT_TLS"),
                read.flag("MQTT_TLS_INSECURE"),
            )
    except ConfigError as exc:
        print(f"mqtt-redis-bridge: {exc}", file=sys.stderr)
        return 2
    if box is None:
        print(f"mqtt-redis-bridge: {NO_KEY}", file=sys.stderr)
        return 2
    secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        print("mqtt-redis-bridge: no password on standard input", file=sys.stderr)
        return 2
    print(protocol.dumps(seal_for_command(box, secret, binding)))
    return 0


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = dict(os.environ if environ is None else environ)
    env.update({v.name: getattr(args, v.name) for v in VARIABLES if getattr(args, v.name) is not None})
    if args.command == "secret-key":
        from bridge.contract.secret_box import generate_key

        print(generate_key())
        return 0
    if args.command == "seal":
        return _seal(env, args.seal_for, args.account)
    try:
        if args.command == "healthcheck":
            return _healthcheck(env)
        settings = Settings.from_env(env)
    except ConfigError as exc:
        print(f"mqtt-redis-bridge: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if settings.log_level != "DEBUG":
        logging.getLogger("paho").setLevel(logging.WARNING)
    if args.command == "demo":
        from bridge.demo import run_demo

        run_demo(
            settings.broker_host,
            settings.broker_port,
            rate=args.demo_rate,
            duration=args.demo_duration,
            username=settings.username,
            password=settings.password,
        )
        return 0
    return run(settings)


def _healthcheck(env: dict[str, str]) -> int:
    from bridge.config import read_bridge_name
    from bridge.contract.protocol import Names
    from bridge.ingest import redis_sink
    from bridge.insight import health

    client = redis_sink.connect(RedisSettings.from_env(env))
    read = EnvReader(env, VARIABLES)
    # A named bridge's healthcheck reads that bridge's keys, not the unnamed one's.
    names = Names(read_bridge_name(read))
    if read.text("BRIDGE_GROUP"):  # a group member checks itself, told which by its environment
        member = read.text("BRIDGE_MEMBER") or read.required("MQTT_CLIENT_ID")
        healthy, line = health.check_member(client, member, names=names)
    else:
        healthy, line = health.check(client, names=names)
    print(line)
    return 0 if healthy else 1


def run(settings: Settings) -> int:
    import redis

    from bridge.contract.server_versions import RedisVersionCheck
    from bridge.ingest import redis_sink
    from bridge.service import Bridge

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    # At start and after every reconnect: a Redis too old for the project stops the bridge.
    def refuse(refusal: str) -> None:
        logger.error("%s", refusal)
        stop.set()

    version_check = RedisVersionCheck("mqtt-redis-bridge", on_refused=refuse)
    client = redis_sink.connect(settings.redis, version_check)
    # Connecting runs the check, before anything starts; a Redis that is down is waited for.
    with contextlib.suppress(redis.RedisError):
        client.ping()
    if version_check.refusal:
        return 1
    bridge = Bridge(settings, client)
    bridge.start()
    code = bridge.supervise(stop)
    bridge.stop()
    return code or (1 if version_check.refusal else 0)
