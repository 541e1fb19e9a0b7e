"""Byte budgets of what the data path writes: a message's MQTT 5 properties, and the history
stream's length under HISTORY_MAX_BYTES.

Properties are cut in paho's thread, before the message is queued, so 40 MB of user properties
never wait in memory or reach Redis. The history's length follows the bytes actually written,
newest first, so one large message evicts at most its own bytes' worth of older entries.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from bridge.contract import protocol


def _json_size(value: Any) -> int:
    return len(protocol.dumps(value).encode("utf-8"))


def cap_properties(properties: Mapping[str, Any], max_bytes: int) -> tuple[dict[str, Any], int | None]:
    """``properties`` cut to at most ``max_bytes`` of JSON, and their size before the cut (None
    when nothing was cut). User properties go first, from the end (the first pairs are usually
    the ones a reader looks for); then any other property that alone is too large."""
    size = _json_size(properties)
    if size <= max_bytes:
        return dict(properties), None
    kept = {name: value for name, value in properties.items() if name != "user_properties"}
    # What remains is small by nature (content type, expiry, ...); one too large alone goes too.
    for name in sorted(kept, key=lambda n: _json_size(kept[n]), reverse=True):
        if _json_size(kept) <= max_bytes:
            break
        del kept[name]
    pairs = properties.get("user_properties") or []
    room = max_bytes - _json_size(kept) - len(',"user_properties":[]')
    chosen: list[Any] = []
    for pair in pairs:
        cost = _json_size(pair) + (1 if chosen else 0)
        if cost > room:
            break
        chosen.append(pair)
        room -= cost
    if chosen:
        kept["user_properties"] = chosen
    return kept, size


class HistoryBudget:
    """The history stream's length cap: HISTORY_MAXLEN entries, fewer when the newest entries
    the bridge wrote add up to more than HISTORY_MAX_BYTES, and fewer still after Redis ran out
    of memory.

    The written entries are kept as (entries, bytes) records, newest last, covering at most
    HISTORY_MAXLEN entries and HISTORY_MAX_BYTES bytes: the cap is the number of entries they
    hold once the bytes filled up. So one 1 MiB message among 200-byte ones evicts about 1 MiB of
    old entries (5,000 of them only when the budget was already full), not the history: an
    average entry size would have jumped to 1 MiB and cut the stream to 64 entries.
    """

    RECORDS = 2048  # records kept at most: small chunks are merged into the newest record

    def __init__(self, maxlen: int, max_bytes: int):
        self.configured = maxlen
        self.max_bytes = max_bytes
        self.oom_cap: int | None = None
        self._records: deque[list[int]] = deque()  # [entries, bytes], oldest first
        self._entries = 0
        self._bytes = 0
        self._full = False  # the bytes reached max_bytes once: from then on the count is the cap
        self._merge_below = max(1, maxlen // (self.RECORDS // 2))

    def observe(self, messages: list[Any], start: int, end: int) -> None:
        if not self.max_bytes or not self.configured or end <= start:
            return
        count, size = end - start, sum(map(len, messages[start:end]))
        records = self._records
        if records and records[-1][0] < self._merge_below:
            records[-1][0] += count
            records[-1][1] += size
        else:
            records.append([count, size])
        self._entries += count
        self._bytes += size
        self._evict()

    def _evict(self) -> None:
        records = self._records
        while records and (self._entries > self.configured or self._bytes > self.max_bytes):
            if self._bytes > self.max_bytes:
                self._full = True
            oldest = records[0]
            over_entries = self._entries - self.configured
            over_bytes = self._bytes - self.max_bytes
            per_entry = oldest[1] / oldest[0]
            # Entries to drop from the oldest record: enough for both limits, proportionally.
            drop = max(over_entries, int(-(-over_bytes // per_entry)) if over_bytes > 0 else 0)
            # The newest record always keeps one entry: the message just written stays.
            if len(records) == 1:
                drop = min(drop, oldest[0] - 1)
                if drop <= 0:
                    return
            if drop >= oldest[0]:
                records.popleft()
                self._entries -= oldest[0]
                self._bytes -= oldest[1]
                continue
            freed = int(per_entry * drop)
            oldest[0] -= drop
            oldest[1] -= freed
            self._entries -= drop
            self._bytes -= freed

    def cap(self, entries: int) -> None:
        self.oom_cap = max(1, entries) if self.oom_cap is None else max(1, min(self.oom_cap, entries))

    def maxlen(self) -> int:
        if self.configured == 0:
            return 0  # history off
        limit = self.configured
        if self.max_bytes and self._full:
            limit = min(limit, max(1, self._entries))
        if self.oom_cap is not None:
            limit = min(limit, self.oom_cap)
        return limit
