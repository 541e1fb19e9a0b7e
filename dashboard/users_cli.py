"""``mqtt-dashboard users …``: the dashboard's users from the command line (the first admin of a
fresh install, scripts, a locked-out team), on the same Redis the dashboard reads.

    mqtt-dashboard users add NAME --role ROLE [--tenant TENANT] [--broker BROKER]   (password on stdin)
    mqtt-dashboard users list | set-role NAME ROLE | set-password NAME | disable NAME | enable NAME
    mqtt-dashboard users delete NAME

A password is read from standard input (its first line), or asked for twice on a terminal; it is
never an argument, so it stays out of the shell's history and the process list. Every change is
written to the audit trail as ``(command line)``, and running dashboards close the user's sockets.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import redis

from bridge.contract import redis_topology
from bridge.contract.errors import ConfigError
from bridge.contract.server_versions import RedisVersionCheck
from dashboard.audit import COMMAND_LINE, OK, PASSWORD_GIVEN, AuditLog
from dashboard.config import DashboardSettings
from dashboard.policy import ROLES
from dashboard.sessions import announce_user_revoked
from dashboard.users import User, UserProblem, UserStore

PROG = "mqtt-dashboard users"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Manage the dashboard's users (stored in Redis; the REDIS_* variables say where).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = commands.add_parser("add", help="add a user; the password is read from standard input")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--tenant", help="limit the user to this tenant's topics (viewer or operator only)")
    add.add_argument("--broker", help="limit the user to this broker (default for a tenant user: default)")
    commands.add_parser("list", help="list the users")
    set_role = commands.add_parser("set-role", help="change a user's role (ends their sessions)")
    set_role.add_argument("name")
    set_role.add_argument("role", choices=ROLES)
    for name, text in (
        ("set-password", "set a new password, read from standard input (ends their sessions)"),
        ("disable", "stop a user logging in (ends their sessions)"),
        ("enable", "let a disabled user log in again"),
        ("delete", "delete a user (ends their sessions)"),
    ):
        commands.add_parser(name, help=text).add_argument("name")
    return parser


def read_password(stdin: TextIO, ask: bool) -> str:
    """The first line of standard input, or, on a terminal, a password typed twice."""
    if ask:
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise UserProblem("the two passwords differ")
        return first
    return stdin.readline().rstrip("\r\n")


def describe(user: User) -> str:
    where = f", tenant {user.tenant}" if user.tenant else ""
    where += f" on broker {user.broker}" if user.broker else ""
    state = ", disabled" if user.disabled else ""
    return f"{user.username} ({user.role}{where}{state})"


def connect(settings: DashboardSettings) -> redis.Redis:
    client: redis.Redis = redis_topology.connect(
        settings.redis,
        RedisVersionCheck(PROG),
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=10,
    )
    return client


def run(args: argparse.Namespace, client: Any, stdin: TextIO) -> str:
    """Carry out one command; returns the line to print."""
    users = UserStore(client)
    if args.command == "list":
        return "\n".join(describe(u) for u in users.all()) or "no users yet"
    detail: dict[str, Any] = {"username": args.name}
    if args.command == "add":
        user = users.add(args.name, read_password(stdin, stdin.isatty()), args.role, args.tenant, args.broker)
        action, done = "user_create", "added"
        detail.update(role=user.role, tenant=user.tenant, broker=user.broker, password=PASSWORD_GIVEN)
    elif args.command == "delete":
        users.delete(args.name)
        action, done, user = "user_delete", "deleted", None
    else:
        if args.command == "set-password":
            changes: dict[str, Any] = {"password": read_password(stdin, stdin.isatty())}
            detail["password"] = PASSWORD_GIVEN
        elif args.command == "set-role":
            changes = {"role": args.role}
        else:
            changes = {"disabled": args.command == "disable"}
        user = users.update(args.name, **changes)
        action, done = "user_change", "changed"
        detail.update({k: v for k, v in changes.items() if k != "password"})
    if args.command != "add":
        announce_user_revoked(client, args.name)  # running dashboards close the user's sockets
    AuditLog(client).record(action, COMMAND_LINE, OK, detail=detail)
    return f"{done} {describe(user) if user else args.name}"


def main(
    argv: Sequence[str],
    environ: Mapping[str, str],
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    client: Any = None,
) -> int:
    """0 when done; 1 when the change cannot be made (said in one line); 2 for bad usage."""
    stdin, out = stdin or sys.stdin, out or sys.stdout
    args = _parser().parse_args(list(argv))
    try:
        if client is None:
            client = connect(DashboardSettings.from_env(environ))
        print(run(args, client, stdin), file=out)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except UserProblem as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except redis.RedisError as exc:
        print(f"{PROG}: Redis is not reachable ({exc})", file=sys.stderr)
        return 1
    return 0
