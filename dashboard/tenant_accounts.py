"""Which broker accounts belong to which tenant, so a tenant user's client list shows their own.

The broker's dynamic security is the source (``listClients``, each client's groups; see
dashboard/tenants.py for why not the groups' own lists). Asking takes a round trip through the
bridge, so the answer is kept in Redis (``KEY_TENANT_ACCOUNTS``, per broker) for ACCOUNTS_TTL
seconds and shared by every worker; a failed ask is remembered for FAILED_TTL, so a broker
without the plugin does not cost every request a wait.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis

from bridge.contract.protocol import CMD_DYNSEC, DYNSEC_TIMEOUT, dumps, loads_object, names_for
from dashboard.commands import NoAnswer, build_args_command, round_trip
from dashboard.tenants import LIST_CLIENTS, TENANT_MARK

logger = logging.getLogger(__name__)

ACCOUNTS_TTL = 60  # seconds: an account added on the Tenants page shows within a minute
FAILED_TTL = 15
ASK_TIMEOUT = DYNSEC_TIMEOUT + 5.0  # the bridge waits DYNSEC_TIMEOUT for the broker


def accounts_by_tenant(clients_data: Any) -> dict[str, list[str]]:
    """``{tenant: [user names]}`` from a verbose ``listClients`` answer."""
    found: dict[str, list[str]] = {}
    for client in (clients_data or {}).get("clients", []) if isinstance(clients_data, dict) else []:
        if not isinstance(client, dict) or not isinstance(client.get("username"), str):
            continue
        for group in client.get("groups") or []:
            name = group.get("groupname") if isinstance(group, dict) else None
            if isinstance(name, str) and name.startswith(TENANT_MARK):
                found.setdefault(name[len(TENANT_MARK) :], []).append(client["username"])
    return {tenant: sorted(names) for tenant, names in found.items()}


class TenantAccounts:
    def __init__(
        self,
        client: redis.Redis,
        timeout: float = ASK_TIMEOUT,
        spawn: Callable[[Callable[[], None]], Any] | None = None,
    ):
        self.redis = client
        self.timeout = timeout
        self.spawn = spawn  # starts a background task (the relay's refreshes); None: not offered
        self._asking: set[str] = set()

    def _key(self, broker: str) -> str:
        return names_for(broker).KEY_TENANT_ACCOUNTS

    def cached(self, broker: str) -> dict[str, Any] | None:
        """``{"tenants": {...}}`` or ``{"error": "..."}`` while fresh; None when nothing is kept."""
        return loads_object(self.redis.get(self._key(broker)))

    def refresh(self, broker: str) -> dict[str, list[str]] | None:
        """Ask the broker (through its bridge) and keep the answer; None when it cannot say."""
        body = build_args_command(CMD_DYNSEC, {"dynsec": LIST_CLIENTS})
        try:
            answer = round_trip(self.redis, body, self.timeout, names_for(broker))
        except NoAnswer as exc:
            answer = {"ok": False, "error": str(exc)}
        if answer.get("ok") is not True:
            logger.info("tenant accounts of broker %s unknown: %s", broker, answer.get("error"))
            self.redis.set(self._key(broker), dumps({"error": str(answer.get("error"))}), ex=FAILED_TTL)
            return None
        result = answer.get("result")
        tenants = accounts_by_tenant(result.get("data") if isinstance(result, dict) else None)
        self.redis.set(self._key(broker), dumps({"tenants": tenants}), ex=ACCOUNTS_TTL)
        return tenants

    def accounts(
        self, broker: str, tenant: str, wait: bool, then: Callable[[], Any] | None = None
    ) -> set[str] | None:
        """The tenant's account names; None when unknown. ``wait``: ask the broker now when
        nothing is kept (a REST call may wait); else ask in the background and call ``then``
        once the answer is kept (the relay may not wait)."""
        kept = self.cached(broker)
        if kept is not None:
            tenants = kept.get("tenants")
            return set(tenants.get(tenant, [])) if isinstance(tenants, dict) else None
        if wait:
            fresh = self.refresh(broker)
            return None if fresh is None else set(fresh.get(tenant, []))
        self.refresh_later(broker, then)
        return None

    def refresh_later(self, broker: str, then: Callable[[], Any] | None = None) -> None:
        """Ask in a background task (one at a time per broker), then call ``then``."""
        if self.spawn is None or broker in self._asking:
            return
        self._asking.add(broker)

        def ask() -> None:
            try:
                self.refresh(broker)
                if then is not None:
                    then()
            except redis.RedisError as exc:
                logger.warning("could not keep broker %s's tenant accounts: %s", broker, exc)
            finally:
                self._asking.discard(broker)

        self.spawn(ask)
