"""A latency histogram with constant memory, cheap per message (0.1 ms bins up to 60 s)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class Histogram:
    PER_SECOND = 10_000

    def __init__(self, top_seconds: float = 60.0):
        self.bins = [0] * (int(top_seconds * self.PER_SECOND) + 1)
        self.count = 0
        self.max = 0.0

    def add_all(self, latencies: Iterable[float]) -> None:
        bins, top, scale = self.bins, len(self.bins) - 1, self.PER_SECOND
        n = 0
        worst = self.max
        for lat in latencies:
            i = int(lat * scale)
            bins[i if 0 <= i < top else (0 if i < 0 else top)] += 1
            if lat > worst:
                worst = lat
            n += 1
        self.count += n
        self.max = worst

    def percentile(self, q: float) -> float:
        if not self.count:
            return float("nan")
        rank = max(1, round(q / 100 * self.count))
        seen = 0
        for i, n in enumerate(self.bins):
            seen += n
            if seen >= rank:
                return (i + 0.5) / self.PER_SECOND
        return self.max

    def to_json(self) -> dict[str, Any]:
        return {"bins": {i: n for i, n in enumerate(self.bins) if n}, "count": self.count, "max": self.max}

    def merge(self, other: Histogram) -> None:
        for i, n in enumerate(other.bins):
            if n:
                self.bins[i] += n
        self.count += other.count
        self.max = max(self.max, other.max)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Histogram:
        hist = cls()
        for i, n in data["bins"].items():
            hist.bins[int(i)] = n
        hist.count, hist.max = data["count"], data["max"]
        return hist


def sent_at(payload: str) -> float:
    """The send time a payload starts with (``"<time.time()> <seq> xxxx..."``)."""
    return float(payload[: payload.index(" ")])
