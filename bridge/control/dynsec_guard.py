"""What ``cmd_dynsec`` may never do: lock the bridge out of its own broker.

The bridge connects with an account of its own (``MQTT_USERNAME``, or the user name of settings
saved from the dashboard). Disabled, deleted, given another password, or with its roles or groups
changed, that account would be dropped by the broker and every reconnect refused; recovery would
need a hand edit of the plugin's file. So these commands are refused for it here, in the bridge
where every ``cmd_dynsec`` runs, whichever route or ``redis-cli`` line sent them:

- on the account itself: delete, disable, a new password, a role added or removed, a group joined
  or left;
- on a role it holds (directly or through a group): delete it, add or remove an ACL;
- on a group it is in: delete it, add or remove a role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ACCOUNT_COMMANDS = frozenset(
    (
        "deleteClient",
        "disableClient",
        "setClientPassword",
        "addClientRole",
        "removeClientRole",
        "addGroupClient",
        "removeGroupClient",
    )
)
ROLE_COMMANDS = frozenset(("deleteRole", "addRoleACL", "removeRoleACL"))
GROUP_COMMANDS = frozenset(("deleteGroup", "addGroupRole", "removeGroupRole"))


@dataclass(frozen=True)
class Holdings:
    """The roles (directly or through its groups) and groups of the bridge's own account."""

    roles: frozenset[str]
    groups: frozenset[str]


def needs_holdings(request: dict[str, Any]) -> bool:
    """Whether checking ``request`` needs the bridge account's roles and groups (a round trip)."""
    return request["command"] in ROLE_COMMANDS | GROUP_COMMANDS


def refusal(request: dict[str, Any], own: str | None, holdings: Callable[[], Holdings | str]) -> str | None:
    """Why ``request`` may not be sent, or None. ``own`` is the bridge's user name (None: it
    connects without one, so it has no account to protect); ``holdings`` looks up its roles and
    groups, or says why it cannot."""
    if not own:
        return None
    name = request["command"]
    why = (
        f"the bridge connects to the broker with the account {own!r}, and {name} would change it "
        "(the broker would then drop the bridge and refuse it for good); not sent"
    )
    if name in ACCOUNT_COMMANDS:
        return why if request.get("username") == own else None
    if not needs_holdings(request):
        return None
    found = holdings()
    if isinstance(found, str):
        return f"cannot tell whether {name} would change the bridge's own account {own!r} ({found}); not sent"
    if name in ROLE_COMMANDS and request.get("rolename") in found.roles:
        return f"role {request.get('rolename')!r} belongs to the bridge's own account: {why}"
    if name in GROUP_COMMANDS and request.get("groupname") in found.groups:
        return f"group {request.get('groupname')!r} holds the bridge's own account: {why}"
    return None


def holdings_from(client_data: Any, group_roles: Callable[[str], list[str] | str]) -> Holdings | str:
    """The account's holdings from a ``getClient`` answer's ``data``, asking ``group_roles`` for the
    roles of each of its groups (the plugin's own answer shapes)."""
    client = client_data.get("client") if isinstance(client_data, dict) else None
    if not isinstance(client, dict):
        return "the broker's answer to getClient had no client"
    roles = {r.get("rolename") for r in client.get("roles") or [] if isinstance(r, dict)}
    groups = {g.get("groupname") for g in client.get("groups") or [] if isinstance(g, dict)}
    for group in sorted(g for g in groups if isinstance(g, str)):
        found = group_roles(group)
        if isinstance(found, str):
            return found
        roles.update(found)
    return Holdings(
        frozenset(r for r in roles if isinstance(r, str)), frozenset(g for g in groups if isinstance(g, str))
    )
