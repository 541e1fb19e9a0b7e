"""Which mosquitto dynamic-security commands ``cmd_dynsec`` carries, and the check of each.

The plugin's own command reference (mosquitto 2.0, plugins/dynamic-security/README.md) is the
source of the names and fields. Only the subset a tenant manager needs is accepted: each command
lists the fields it may carry, and a field nobody listed is refused, so that a typo is a sentence
rather than a silently ignored option. The broker checks the rest (whether a client exists, say)
and answers with its own error, which the bridge passes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bridge.contract.errors import InvalidCommand
from bridge.contract.protocol import validate_topic_filter

NAME_MAX = 256  # user, role and group names; far above anything a person types
TEXT_MAX = 1024  # textname / textdescription
LIST_MAX = 100  # roles, groups or ACLs in one command
ACL_TYPES = (
    "publishClientSend",
    "publishClientReceive",
    "subscribeLiteral",
    "subscribePattern",
    "unsubscribeLiteral",
    "unsubscribePattern",
)
# The fields that carry a password: sealed with CONFIG_SECRET_KEY on the way in (bridge/dynsec.py).
PASSWORD_FIELD = "password"  # noqa: S105 (a field name, not a password)

Check = Callable[[str, Any], Any]
Spec = dict[str, tuple[Check, bool]]


def _name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidCommand(f"{field} must be a non-empty string")
    if len(value) > NAME_MAX:
        raise InvalidCommand(f"{field} is longer than {NAME_MAX} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidCommand(f"{field} must not contain control characters")
    return value


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > TEXT_MAX:
        raise InvalidCommand(f"{field} must be a string of at most {TEXT_MAX} characters")
    return value


def _priority(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise InvalidCommand(f"{field} must be a whole number (a 32-bit priority)")
    return value


def _flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidCommand(f"{field} must be true or false")
    return value


def _count(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise InvalidCommand(f"{field} must be a whole number, -1 for all")
    return value


def _offset(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidCommand(f"{field} must be a whole number of at least 0")
    return value


def _acltype(field: str, value: Any) -> str:
    if value not in ACL_TYPES:
        raise InvalidCommand(f"{field} must be one of {', '.join(ACL_TYPES)}")
    return str(value)


def _acl_topic(field: str, value: Any) -> str:
    try:
        return validate_topic_filter(value)
    except InvalidCommand as exc:
        raise InvalidCommand(f"{field}: {exc}") from None


def _sealed(field: str, value: Any) -> Any:
    # Opened (and checked) by the handler, which holds the key; only the shape is checked here.
    if not isinstance(value, dict):
        raise InvalidCommand(f'{field} must be sealed, as {{"sealed": "<token>"}}; plain text is refused')
    return value


def _objects(item_fields: Mapping[str, tuple[Check, bool]]) -> Check:
    def check(field: str, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or len(value) > LIST_MAX:
            raise InvalidCommand(f"{field} must be a list of at most {LIST_MAX} objects")
        return [_fields(f"{field}[{index}]", item, item_fields) for index, item in enumerate(value)]

    return check


def _fields(where: str, body: Any, spec: Mapping[str, tuple[Check, bool]]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidCommand(f"{where} must be an object")
    unknown = sorted(set(body) - set(spec))
    if unknown:
        raise InvalidCommand(f"{where} does not take {', '.join(unknown)} (it takes {', '.join(spec)})")
    checked: dict[str, Any] = {}
    for name, (check, required) in spec.items():
        if name not in body:
            if required:
                raise InvalidCommand(f"{where} needs {name}")
            continue
        checked[name] = check(f"{where}: {name}", body[name])
    return checked


REQ, OPT = True, False
_ROLE_REFS = _objects({"rolename": (_name, REQ), "priority": (_priority, OPT)})
_GROUP_REFS = _objects({"groupname": (_name, REQ), "priority": (_priority, OPT)})
_ACLS = _objects(
    {
        "acltype": (_acltype, REQ),
        "topic": (_acl_topic, REQ),
        "priority": (_priority, OPT),
        "allow": (_flag, OPT),
    }
)
_LISTING: Spec = {"verbose": (_flag, OPT), "count": (_count, OPT), "offset": (_offset, OPT)}
_USER: Spec = {"username": (_name, REQ)}
_ROLE: Spec = {"rolename": (_name, REQ)}
_GROUP: Spec = {"groupname": (_name, REQ)}
_TEXTS: Spec = {"textname": (_text, OPT), "textdescription": (_text, OPT)}

COMMANDS: dict[str, Spec] = {
    "listClients": _LISTING,
    "getClient": _USER,
    "createClient": {
        **_USER,
        PASSWORD_FIELD: (_sealed, REQ),
        "clientid": (_name, OPT),
        **_TEXTS,
        "groups": (_GROUP_REFS, OPT),
        "roles": (_ROLE_REFS, OPT),
    },
    "deleteClient": _USER,
    "enableClient": _USER,
    "disableClient": _USER,
    "setClientPassword": {**_USER, PASSWORD_FIELD: (_sealed, REQ)},
    "addClientRole": {**_USER, **_ROLE, "priority": (_priority, OPT)},
    "removeClientRole": {**_USER, **_ROLE},
    "listRoles": _LISTING,
    "getRole": _ROLE,
    "createRole": {**_ROLE, **_TEXTS, "acls": (_ACLS, OPT)},
    "deleteRole": _ROLE,
    "addRoleACL": {
        **_ROLE,
        "acltype": (_acltype, REQ),
        "topic": (_acl_topic, REQ),
        "priority": (_priority, OPT),
        "allow": (_flag, OPT),
    },
    "removeRoleACL": {**_ROLE, "acltype": (_acltype, REQ), "topic": (_acl_topic, REQ)},
    "listGroups": _LISTING,
    "getGroup": _GROUP,
    "createGroup": {**_GROUP, **_TEXTS, "roles": (_ROLE_REFS, OPT)},
    "deleteGroup": _GROUP,
    "addGroupClient": {**_GROUP, **_USER, "priority": (_priority, OPT)},
    "removeGroupClient": {**_GROUP, **_USER},
    "addGroupRole": {**_GROUP, **_ROLE, "priority": (_priority, OPT)},
    "removeGroupRole": {**_GROUP, **_ROLE},
}


def check_request(request: Any) -> dict[str, Any]:
    """The dynamic-security command in ``cmd_dynsec``'s ``dynsec`` field, checked; the password,
    if any, still sealed. InvalidCommand with a sentence otherwise."""
    if not isinstance(request, dict):
        raise InvalidCommand(
            'cmd_dynsec needs a "dynsec" object holding one dynamic-security command, '
            'e.g. {"command": "listClients"}'
        )
    name = request.get("command")
    if not isinstance(name, str) or name not in COMMANDS:
        shown = repr(name)[:60] if isinstance(name, str) else "missing"
        raise InvalidCommand(
            f"dynsec command {shown} is not one the bridge carries; it carries {', '.join(COMMANDS)}"
        )
    fields = _fields(name, {k: v for k, v in request.items() if k != "command"}, COMMANDS[name])
    return {"command": name, **fields}
