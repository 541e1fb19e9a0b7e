"""An in-memory stand-in for mosquitto's dynamic security plugin, for unit tests.

It answers as mosquitto 2.0.11 does (shapes and error texts recorded from the real broker; the
integration test tests/integration/test_dynsec_tenants.py runs the same operations there): one
``{"responses": [...]}`` message per request on the response topic, echoing correlationData.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from bridge.control.dynsec import DYNSEC_RESPONSE_TOPIC, DYNSEC_TOPIC
from bridge.ingest.mqtt_source import Item


class FakeDynsecBroker:
    def __init__(self) -> None:
        self.connected = True
        self.answering = True
        self.deliver: Callable[[list[Item]], None] | None = None  # DynsecClient.on_control
        self.requests: list[bytes] = []  # raw payloads as published (they hold clear passwords)
        self.subscribed: list[str] = []
        self.clients: dict[str, dict[str, Any]] = {}
        self.roles: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}

    def is_connected(self) -> bool:
        return self.connected

    def subscribe(self, topic_filter: str, qos: int, timeout: float = 3.0) -> str | None:
        self.subscribed.append(topic_filter)
        return None

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, timeout: float) -> str | None:
        assert topic == DYNSEC_TOPIC
        self.requests.append(payload)
        if not self.answering:
            return None
        responses = [self._answer(c) for c in json.loads(payload)["commands"]]
        body = json.dumps({"responses": responses}).encode()
        assert self.deliver is not None
        self.deliver([(DYNSEC_RESPONSE_TOPIC, body, 0, False, time.time(), 0, False)])
        return None

    def _answer(self, command: dict[str, Any]) -> dict[str, Any]:
        name = command["command"]
        response: dict[str, Any] = {"command": name}
        try:
            data = getattr(self, "_" + name)(command)
        except LookupError as exc:
            response["error"] = exc.args[0]
        else:
            if data is not None:
                response["data"] = data
        if "correlationData" in command:
            response["correlationData"] = command["correlationData"]
        return response

    # --- the commands the tenants page uses ----------------------------------------------------
    def _createRole(self, c: dict[str, Any]) -> None:
        if c["rolename"] in self.roles:
            raise LookupError("Role already exists")
        self.roles[c["rolename"]] = {"rolename": c["rolename"], "acls": c.get("acls", [])}

    def _deleteRole(self, c: dict[str, Any]) -> None:
        if self.roles.pop(c["rolename"], None) is None:
            raise LookupError("Role not found")

    def _listRoles(self, c: dict[str, Any]) -> dict[str, Any]:
        return {"totalCount": len(self.roles), "roles": sorted(self.roles)}

    def _createGroup(self, c: dict[str, Any]) -> None:
        if c["groupname"] in self.groups:
            raise LookupError("Group already exists")
        for role in c.get("roles", []):
            if role["rolename"] not in self.roles:
                raise LookupError("Role not found")
        self.groups[c["groupname"]] = {"groupname": c["groupname"], "roles": c.get("roles", [])}

    def _deleteGroup(self, c: dict[str, Any]) -> None:
        if self.groups.pop(c["groupname"], None) is None:
            raise LookupError("Group not found")
        for client in self.clients.values():
            client["groups"] = [g for g in client["groups"] if g["groupname"] != c["groupname"]]

    def _listGroups(self, c: dict[str, Any]) -> dict[str, Any]:
        return {"totalCount": len(self.groups), "groups": sorted(self.groups)}

    def _createClient(self, c: dict[str, Any]) -> None:
        if c["username"] in self.clients:
            raise LookupError("Client already exists")
        self.clients[c["username"]] = {
            "username": c["username"],
            "password": c["password"],
            "roles": [],
            "groups": [],
        }

    def _client(self, c: dict[str, Any]) -> dict[str, Any]:
        if c["username"] not in self.clients:
            raise LookupError("Client not found")
        return self.clients[c["username"]]

    def _addGroupClient(self, c: dict[str, Any]) -> None:
        if c["groupname"] not in self.groups:
            raise LookupError("Group not found")
        self._client(c)["groups"].append({"groupname": c["groupname"]})

    def _deleteClient(self, c: dict[str, Any]) -> None:
        self._client(c)
        del self.clients[c["username"]]

    def _disableClient(self, c: dict[str, Any]) -> None:
        self._client(c)["disabled"] = True

    def _enableClient(self, c: dict[str, Any]) -> None:
        self._client(c).pop("disabled", None)

    def _addClientRole(self, c: dict[str, Any]) -> None:
        if c["rolename"] not in self.roles:
            raise LookupError("Role not found")
        self._client(c)["roles"].append({"rolename": c["rolename"]})

    def _setClientPassword(self, c: dict[str, Any]) -> None:
        self._client(c)["password"] = c["password"]

    def _getGroup(self, c: dict[str, Any]) -> dict[str, Any]:
        if c["groupname"] not in self.groups:
            raise LookupError("Group not found")
        return {"group": self.groups[c["groupname"]]}

    def _addRoleACL(self, c: dict[str, Any]) -> None:
        if c["rolename"] not in self.roles:
            raise LookupError("Role not found")
        self.roles[c["rolename"]]["acls"].append({k: c[k] for k in ("acltype", "topic") if k in c})

    def _getClient(self, c: dict[str, Any]) -> dict[str, Any]:
        client = {k: v for k, v in self._client(c).items() if k != "password"}
        return {"client": client}

    def _listClients(self, c: dict[str, Any]) -> dict[str, Any]:
        clients = [{k: v for k, v in x.items() if k != "password"} for x in self.clients.values()]
        return {"totalCount": len(clients), "clients": clients if c.get("verbose") else sorted(self.clients)}
