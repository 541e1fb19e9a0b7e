"""One member's part in a bridge group (BRIDGE_GROUP): keeps or seeks the leader lease, keeps
its own record and heartbeat, and, while it leads, does the group's singleton writes (fenced).

Called from the housekeeping thread only; the command thread asks ``leading()``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis

from bridge.contract import protocol
from bridge.group import membership
from bridge.group.fencing import FencedAnnouncer
from bridge.group.lease import LeaderLease

logger = logging.getLogger(__name__)


class GroupRole:
    def __init__(
        self,
        client: redis.Redis,
        group: str,
        member: str,
        started_at: float,
        *,
        names: protocol.Names,
        lease: LeaderLease | None = None,
        clock: Callable[[], float] = time.monotonic,
        client_id: str = "",
        on_member_dead: Callable[[str, dict[str, Any]], None] = lambda member, record: None,
    ):
        self.names = names
        self.client = client
        self.group = group
        self.member = member
        self.started_at = started_at
        self.lease = lease or LeaderLease(client, member, names=names, clock=clock)
        self.announcer = FencedAnnouncer(client, names)
        self.clock = clock
        self.client_id = client_id
        self.on_member_dead = on_member_dead  # the leader takes over a dead member's session
        self._was_leading = False
        self._renew_due = 0.0

    def leading(self) -> bool:
        return self.lease.leading()

    def holds_lease(self) -> bool:
        """Asked of Redis, just before an act-once command: is the lease still this member's?"""
        token = self.token()
        if token is None:
            return False
        current = protocol.loads_object(self.client.get(self.names.KEY_LEADER))
        return current is not None and current.get("token") == token and current.get("member") == self.member

    def token(self) -> int | None:
        return self.lease.token if self.lease.leading() else None

    def tick(self) -> bool:
        """Renew or seek the lease when due. True when this member just became the leader (so
        its state messages are announced at once)."""
        now = self.clock()
        if now >= self._renew_due:
            self._renew_due = now + protocol.LEADER_RENEW_INTERVAL
            try:
                self.lease.tick()
            except redis.RedisError:
                if not self.lease.leading():
                    self.lease.lose()
                raise
        leading = self.lease.leading()
        became = leading and not self._was_leading
        if self._was_leading and not leading:
            logger.warning("member %s stops the leader's work", self.member)
        self._was_leading = leading
        return became

    def announce(self, channel: str, message: Mapping[str, Any], publish: bool = True) -> bool:
        """Leader only: publish a state message and keep it as ``:latest``, fenced by the token."""
        token = self.token()
        if token is None:
            return False
        message = {**message, "leader": self.member} if channel == protocol.CHANNEL_STATUS else message
        if not self.announcer.announce(channel, message, token, publish):
            logger.warning("a later leader wrote %s; this member's stale write was refused", channel)
            return False
        return True

    def record(self, heartbeat: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **heartbeat,
            "member": self.member,
            "client_id": self.client_id,
            "group": self.group,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "leader": self.leading(),
            "alive": True,
            "started_at": self.started_at,
        }

    def heartbeat(
        self, heartbeat: Mapping[str, Any], topics: list[Any] | None, status: Mapping[str, Any]
    ) -> None:
        """This member's heartbeat; the leader also prunes the members and keeps the group's
        heartbeat (``mqtt:bridge:heartbeat``, counters of the whole group) and status key."""
        membership.write_member(self.client, self.member, self.record(heartbeat), topics, self.names)
        if not self.leading():
            return
        seconds, micros = self.client.time()
        dead = membership.prune(self.client, seconds + micros / 1e6, self.names)
        members = membership.read_members(self.client, self.names)
        for member in dead:
            if member in members and member != self.member:
                self.on_member_dead(member, members[member])
        group = {
            **heartbeat,
            "group": self.group,
            "leader": self.member,
            "members": sorted(m for m, r in members.items() if r.get("alive", True)),
            "counters": membership.group_counters(members),
        }
        self.client.set(self.names.KEY_HEARTBEAT, protocol.dumps(group), ex=protocol.HEARTBEAT_TTL)
        self.announce(protocol.CHANNEL_STATUS, status, publish=False)  # restored after a Redis restart

    def stop(self) -> bool:
        """A clean stop: free the lease and leave the member list. True when this was the last
        live member (then the group's final status is this member's to say)."""
        leading = self.leading()
        self.lease.release()
        membership.forget_member(self.client, self.member, self.names)
        others = [
            m for m, r in membership.read_members(self.client, self.names).items() if r.get("alive", True)
        ]
        return leading and not others
