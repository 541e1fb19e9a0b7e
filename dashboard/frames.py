"""Batching of MQTT messages into ``mqtt_messages`` frames, per client topic filter.

Pure logic, no I/O: the relay feeds messages in and takes frames out every frame interval.
Clients are grouped by filter, so the work per message is one match per *distinct* filter,
however many browsers share it; each group becomes one Socket.IO room.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bridge.contract.protocol import UNNAMED_BROKER, topic_matches, validate_topic_filter

EVERYTHING: str | None = None  # the filter key of clients that want every message


def normalise_filter(raw: object) -> str | None:
    """A client's filter: ``""`` or ``"#"`` mean everything (EVERYTHING); else a valid MQTT filter.

    Raises InvalidCommand with the bridge's own words for a malformed filter.
    """
    if raw is None or raw == "" or raw == "#":
        return EVERYTHING
    return validate_topic_filter(raw)


def room_for(topic_filter: str | None, broker: str = UNNAMED_BROKER) -> str:
    """The Socket.IO room of every client of ``broker`` with this filter (rooms are local to a
    worker). The unnamed broker keeps the rooms it always had; another's start with its name, so
    a frame for one broker's room can never reach a client of another."""
    room = "frames:#" if topic_filter is EVERYTHING else f"frames:filter:{topic_filter}"
    return room if broker == UNNAMED_BROKER else f"broker:{broker}:{room}"


def broker_room(broker: str) -> str:
    """The room of every client watching ``broker``: its status, stats, lists and health go there."""
    return f"broker:{broker}"


# What one message adds to a frame's JSON besides its topic and payload (field names, numbers).
_MESSAGE_OVERHEAD = 120


def message_size(message: dict[str, Any]) -> int:
    """About how many bytes a message takes in a frame (cheap: no JSON encoding)."""
    payload, topic = message.get("payload"), message.get("topic")
    return (
        _MESSAGE_OVERHEAD
        + (len(payload) if isinstance(payload, str) else 0)
        + (len(topic) if isinstance(topic, str) else 0)
    )


@dataclass
class _Buffer:
    """Messages waiting for the next frame of one filter; the oldest fall out first, when there
    are more than ``capacity`` or they would take more than ``max_bytes`` (the newest one stays)."""

    capacity: int
    max_bytes: int | None = None
    messages: deque[dict[str, Any]] = field(init=False)
    sizes: deque[int] = field(init=False)
    size: int = 0
    skipped: int = 0

    def __post_init__(self) -> None:
        self.messages = deque()
        self.sizes = deque()

    def add(self, message: dict[str, Any]) -> None:
        size = message_size(message)
        self.messages.append(message)
        self.sizes.append(size)
        self.size += size
        while len(self.messages) > 1 and (
            len(self.messages) > self.capacity or (self.max_bytes is not None and self.size > self.max_bytes)
        ):
            self.messages.popleft()
            self.size -= self.sizes.popleft()
            self.skipped += 1

    def clear(self) -> None:
        self.messages.clear()
        self.sizes.clear()
        self.size = 0
        self.skipped = 0


@dataclass(frozen=True)
class Frame:
    """One ``mqtt_messages`` frame for every client in ``room``."""

    topic_filter: str | None
    room: str
    clients: int
    data: dict[str, Any]

    @property
    def message_count(self) -> int:
        return len(self.data["messages"])


class FrameRouter:
    """Which client wants what, and the messages each distinct filter has waiting."""

    def __init__(self, frame_max: int, frame_bytes: int | None = None, broker: str = UNNAMED_BROKER):
        if frame_max < 1:
            raise ValueError("frame_max must be at least 1")
        self.broker = broker
        self.frame_max = frame_max
        self.frame_bytes = frame_bytes
        self._filter_of: dict[str, str | None] = {}
        self._members: dict[str | None, set[str]] = {}
        self._buffers: dict[str | None, _Buffer] = {}
        # Messages of frames a client did not get because it was behind; told in its next frame.
        self._withheld: dict[str, int] = {}

    # --- clients ----------------------------------------------------------------------------
    def add_client(self, client_id: str, topic_filter: str | None = EVERYTHING) -> None:
        self.remove_client(client_id)
        self._filter_of[client_id] = topic_filter
        self._members.setdefault(topic_filter, set()).add(client_id)
        self._buffers.setdefault(topic_filter, _Buffer(self.frame_max, self.frame_bytes))

    def remove_client(self, client_id: str) -> str | None:
        """Forget a client; returns its old filter (EVERYTHING when it had none)."""
        old = self._filter_of.pop(client_id, EVERYTHING)
        self._withheld.pop(client_id, None)
        members = self._members.get(old)
        if members is not None:
            members.discard(client_id)
            if not members:
                # Nobody left wants this filter: stop matching and buffering for it.
                del self._members[old]
                self._buffers.pop(old, None)
        return old

    def set_filter(self, client_id: str, topic_filter: str | None) -> str | None:
        """Move a client to another filter; returns the old one so its room can be left."""
        withheld = self._withheld.get(client_id, 0)
        old = self.remove_client(client_id)
        self.add_client(client_id, topic_filter)
        if withheld:
            self._withheld[client_id] = withheld
        return old

    def members(self, topic_filter: str | None) -> frozenset[str]:
        return frozenset(self._members.get(topic_filter, ()))

    # --- clients that fell behind ------------------------------------------------------------
    def withhold(self, client_id: str, messages: int) -> None:
        """A frame of ``messages`` was not sent to this client; its next frame says so."""
        if client_id in self._filter_of:
            self._withheld[client_id] = self._withheld.get(client_id, 0) + messages

    def take_withheld(self, client_id: str) -> int:
        return self._withheld.pop(client_id, 0)

    def filter_of(self, client_id: str) -> str | None:
        return self._filter_of.get(client_id, EVERYTHING)

    @property
    def client_count(self) -> int:
        return len(self._filter_of)

    @property
    def filter_count(self) -> int:
        return len(self._members)

    # --- messages -------------------------------------------------------------------------
    def add(self, message: dict[str, Any]) -> None:
        """Queue one ``message_received`` for every filter it matches."""
        topic = message.get("topic")
        if not isinstance(topic, str):
            return
        for topic_filter, buffer in self._buffers.items():
            if topic_filter is None or topic_matches(topic_filter, topic):  # None: EVERYTHING
                buffer.add(message)

    def take_frames(self) -> list[Frame]:
        """The frames due now (filters with nothing new send nothing); buffers start empty again."""
        frames: list[Frame] = []
        for topic_filter, buffer in self._buffers.items():
            if not buffer.messages and not buffer.skipped:
                continue
            frames.append(
                Frame(
                    topic_filter=topic_filter,
                    room=room_for(topic_filter, self.broker),
                    clients=len(self._members.get(topic_filter, ())),
                    data={"messages": list(buffer.messages), "skipped": buffer.skipped},
                )
            )
            buffer.clear()
        return frames


class BrokerRouters:
    """One FrameRouter per broker that has clients on this worker: a broker's messages are added
    to its own router only, so its frames cannot carry another broker's messages."""

    def __init__(self, default: FrameRouter):
        self.default = default
        self._routers: dict[str, FrameRouter] = {default.broker: default}
        self._broker_of: dict[str, str] = {}

    def get(self, broker: str) -> FrameRouter | None:
        return self._routers.get(broker)

    def for_broker(self, broker: str) -> FrameRouter:
        router = self._routers.get(broker)
        if router is None:
            router = FrameRouter(self.default.frame_max, self.default.frame_bytes, broker)
            self._routers[broker] = router
        return router

    def add_client(self, client_id: str, broker: str, topic_filter: str | None = EVERYTHING) -> FrameRouter:
        self.remove_client(client_id)
        router = self.for_broker(broker)
        router.add_client(client_id, topic_filter)
        self._broker_of[client_id] = broker
        return router

    def remove_client(self, client_id: str) -> None:
        broker = self._broker_of.pop(client_id, None)
        router = self._routers.get(broker or self.default.broker)
        if router is not None:
            router.remove_client(client_id)
            if router is not self.default and router.client_count == 0:
                del self._routers[router.broker]

    def router_of(self, client_id: str) -> FrameRouter:
        return self._routers.get(self._broker_of.get(client_id, self.default.broker), self.default)

    def broker_of(self, client_id: str) -> str:
        return self._broker_of.get(client_id, self.default.broker)

    def all(self) -> list[FrameRouter]:
        return list(self._routers.values())

    def brokers_watched(self) -> list[str]:
        """The brokers with a client on this worker (the unnamed one always: its health is logged)."""
        return list(self._routers)

    @property
    def client_count(self) -> int:
        return sum(router.client_count for router in self._routers.values())
