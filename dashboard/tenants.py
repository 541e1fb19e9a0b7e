"""Tenants as mosquitto dynamic-security objects: what each tenant operation sends (no I/O here).

A tenant ``acme`` is a role and a group, both named ``tenant:acme``. The role's ACLs allow
publish and subscribe under ``<prefix>/acme/#`` only (mosquitto 2.0 has no ``%u`` substitution in
these ACLs, hence one role per tenant); the plugin's defaults deny everything else. An account
(a device or a person) is a dynamic-security client in the tenant's group.

Membership is read from the clients (``listClients`` verbose: each client's groups), never from
a group's own client list: mosquitto 2.0.11 answers ``getGroup``/``listGroups`` with garbled
user names after ``addGroupClient`` (seen on the real broker), while each client's group list is
right. For the same reason a tenant is deleted accounts first, then the group, then the role.
"""

from __future__ import annotations

import re
from typing import Any

from bridge.contract.errors import InvalidCommand

TENANT_MARK = "tenant:"
# Matched whole (fullmatch): "$" would also match before a trailing newline.
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")


def check_tenant_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidCommand(
            "a tenant name is 1-63 lower-case letters, digits, - or _, starting with a letter or digit "
            "(it becomes a topic level)"
        )
    return name


def check_username(name: Any) -> str:
    if not isinstance(name, str) or not USERNAME.fullmatch(name):
        raise InvalidCommand(
            "an account name is 1-128 letters, digits, ., @, - or _, starting with a letter or digit"
        )
    return name


def object_name(tenant: str) -> str:
    """The role's and the group's name."""
    return TENANT_MARK + tenant


def tenant_topic(prefix: str, tenant: str) -> str:
    return f"{prefix}/{tenant}/#"


def create_tenant(tenant: str, prefix: str) -> list[dict[str, Any]]:
    name, topic = object_name(tenant), tenant_topic(prefix, tenant)
    acls = [
        {"acltype": kind, "topic": topic, "allow": True}
        for kind in ("publishClientSend", "publishClientReceive", "subscribePattern", "unsubscribePattern")
    ]
    return [
        {"command": "createRole", "rolename": name, "textname": f"tenant {tenant}: {topic}", "acls": acls},
        {"command": "createGroup", "groupname": name, "roles": [{"rolename": name}]},
    ]


def undo_create_tenant(tenant: str) -> list[dict[str, Any]]:
    return [
        {"command": "deleteGroup", "groupname": object_name(tenant)},
        {"command": "deleteRole", "rolename": object_name(tenant)},
    ]


def add_account(tenant: str, username: str, sealed_password: dict[str, str]) -> list[dict[str, Any]]:
    # createClient with "groups" garbles the group's client list in 2.0.11 too: two commands.
    return [
        {
            "command": "createClient",
            "username": username,
            "password": sealed_password,
            "textname": f"account of tenant {tenant}",
        },
        {"command": "addGroupClient", "groupname": object_name(tenant), "username": username},
    ]


def delete_tenant(tenant: str, usernames: list[str]) -> list[dict[str, Any]]:
    """Accounts first, then the group, then the role; each step may find its object already
    gone (a tenant half made, or half deleted, when a bridge died), which is not an error."""
    return [{"command": "deleteClient", "username": u} for u in usernames] + undo_create_tenant(tenant)


LIST_GROUPS = {"command": "listGroups"}
LIST_ROLES = {"command": "listRoles"}
LIST_CLIENTS = {"command": "listClients", "verbose": True}
# The plugin's words (mosquitto 2.0 and 2.1) for what a resumed create or a repeated delete meets.
ROLE_EXISTS = "Role already exists"
ROLE_NOT_FOUND = "Role not found"
GROUP_NOT_FOUND = "Group not found"
CLIENT_NOT_FOUND = "Client not found"


def get_client(username: str) -> dict[str, Any]:
    return {"command": "getClient", "username": username}


def in_tenant(client_data: Any, tenant: str) -> bool:
    """Whether a ``getClient`` answer's account is in ``tenant``'s group."""
    client = client_data.get("client") if isinstance(client_data, dict) else None
    groups = client.get("groups") if isinstance(client, dict) else None
    return any(isinstance(g, dict) and g.get("groupname") == object_name(tenant) for g in groups or [])


def names_in(listing: Any, field: str) -> list[str]:
    """The names in a non-verbose ``listGroups``/``listRoles`` answer's ``data``."""
    found = listing.get(field) if isinstance(listing, dict) else None
    return [n for n in found or [] if isinstance(n, str)]


def tenants_from(groups_data: Any, clients_data: Any, prefix: str) -> list[dict[str, Any]]:
    """The tenants and their accounts, from a ``listGroups`` and a verbose ``listClients`` answer."""
    names = [
        g[len(TENANT_MARK) :]
        for g in (groups_data or {}).get("groups", [])
        if isinstance(g, str) and g.startswith(TENANT_MARK)
    ]
    accounts: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for client in (clients_data or {}).get("clients", []):
        if not isinstance(client, dict):
            continue
        for group in client.get("groups") or []:
            groupname = group.get("groupname") if isinstance(group, dict) else None
            tenant = groupname[len(TENANT_MARK) :] if isinstance(groupname, str) else None
            if tenant in accounts:
                accounts[tenant].append(
                    {"username": client.get("username"), "disabled": bool(client.get("disabled", False))}
                )
    return [
        {
            "name": name,
            "topic": tenant_topic(prefix, name),
            "accounts": sorted(accounts[name], key=lambda a: str(a["username"])),
        }
        for name in sorted(names)
    ]
