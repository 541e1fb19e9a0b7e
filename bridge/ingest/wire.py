"""The data path's per-message work, compiled when it can be: the C module or its Python twin.

``bridge/ingest/_wire.c`` (built with the project, as hiredis is for redis-py) does per message
what this module's Python functions do, and the unit tests hold the two to identical output:

- ``scan``: read many MQTT packets per socket read; plain QoS 0/1 PUBLISH packets become ingest
  items with their payload already cut (used by ``fast_publish.FastClient``; C only: without the
  compiler paho's own read loop and the lean per-message handler run instead);
- ``encode``: the ``message_received`` JSON of a batch (``protocol.message_json`` per item);
- ``pubacks``: one buffer of PUBACKs for a batch's QoS 1 messages;
- ``weigh`` and ``take``: the ingest queue's byte budget.

Without a C compiler the build goes on without the module, and ``COMPILED`` is False: the bridge
runs the Python functions below (slower, equally correct) and says so once in its log.
"""

from __future__ import annotations

import importlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from bridge.contract import protocol

logger = logging.getLogger(__name__)

compiled: Any
try:
    compiled = importlib.import_module("bridge.ingest._wire")
except ImportError:  # no compiler where the project was built: the Python path below
    compiled = None

COMPILED = compiled is not None
# What an item holds besides its payload and topic (the tuple and its small objects); the same
# figure as ITEM_OVERHEAD in _wire.c, so both count the queue's bytes alike.
ITEM_OVERHEAD = 200
PUBACK = 0x40

# (topic, payload, qos, retain, timestamp, mid, dup[, properties[, size[, properties_size]]]),
# as mqtt_source.Item
Items = list[Any]


def warn_if_python() -> None:
    """One log line when the compiled path is missing (called once, at start)."""
    if not COMPILED:
        logger.warning(
            "the compiled data path (bridge/ingest/_wire.c) is not built, probably for want of a C "
            "compiler when the project was installed: running the pure-Python path, which forwards "
            "fewer messages per second (install gcc and the Python headers, then reinstall)"
        )


def item_weight(item: tuple[Any, ...]) -> int:
    return ITEM_OVERHEAD + len(item[0]) + len(item[1])


def py_weigh(items: Items) -> int:
    return sum(map(item_weight, items))


def py_take(queue: deque[Any], max_count: int, max_bytes: int) -> tuple[Items, int]:
    """Pop up to ``max_count`` items or ``max_bytes`` (at least one item, however large)."""
    taken: Items = []
    weight = 0
    popleft = queue.popleft
    for _ in range(min(len(queue), max_count)):
        if taken and weight >= max_bytes:
            break
        item = popleft()
        weight += item_weight(item)
        taken.append(item)
    return taken, weight


def encode_item(item: tuple[Any, ...], max_payload: int = protocol.DEFAULT_PAYLOAD_MAX_BYTES) -> str:
    """One item's JSON, in Python (the fallback of the C encoder, and MQTT 5 properties' path)."""
    properties = item[7] if len(item) > 7 else None
    size = item[8] if len(item) > 8 else None
    properties_size = item[9] if len(item) > 9 else None
    return protocol.message_json(
        item[0],
        item[1],
        item[2],
        item[3],
        item[4],
        None,
        max_payload,
        item[6],
        properties,
        size,
        properties_size,
    )


def py_encode(
    items: Items, max_payload: int, fallback: Callable[[tuple[Any, ...]], str | bytes] | None = None
) -> tuple[list[str | bytes], list[int]]:
    """(JSON of every item whose topic does not start with "$", indexes of those that do)."""
    messages: list[str | bytes] = []
    special: list[int] = []
    for index, item in enumerate(items):
        if item[0].startswith("$"):
            special.append(index)
        else:
            messages.append(encode_item(item, max_payload))
    return messages, special


def py_pubacks(items: Items, start: int, end: int) -> tuple[bytes, list[int]]:
    packet = bytearray()
    qos2: list[int] = []
    for item in items[start:end]:
        if item[2] == 1:
            packet += bytes((PUBACK, 2, item[5] >> 8, item[5] & 0xFF))
        elif item[2] == 2:
            qos2.append(item[5])
    return bytes(packet), qos2


if compiled is not None:
    weigh: Callable[[Items], int] = compiled.weigh
    take: Callable[[deque[Any], int, int], tuple[Items, int]] = compiled.take
    pubacks: Callable[[Items, int, int], tuple[bytes, list[int]]] = compiled.pubacks

    def encode(items: Items, max_payload: int) -> tuple[list[str | bytes], list[int]]:
        messages, special = compiled.encode(items, max_payload, partial_encode(max_payload))
        return messages, special

else:
    weigh = py_weigh
    take = py_take
    pubacks = py_pubacks

    def encode(items: Items, max_payload: int) -> tuple[list[str | bytes], list[int]]:
        return py_encode(items, max_payload)


_fallbacks: dict[int, Callable[[tuple[Any, ...]], str]] = {}


def partial_encode(max_payload: int) -> Callable[[tuple[Any, ...]], str]:
    """``encode_item`` bound to one payload cap (cached: the writer's cap never changes)."""
    found = _fallbacks.get(max_payload)
    if found is None:

        def found(item: tuple[Any, ...]) -> str:
            return encode_item(item, max_payload)

        _fallbacks.clear()
        _fallbacks[max_payload] = found
    return found
