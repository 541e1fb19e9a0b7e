"""The topic index: every topic seen, its message count, last activity and last payload.

Updated by the writer thread once per batch, read by the housekeeping thread; bounded by
TOPICS_MAX with the least recently seen topics evicted.
"""

from __future__ import annotations

import codecs
import threading
from collections import Counter
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from bridge.contract.protocol import topic_matches

PREVIEW_CHARS = 120
_PREVIEW_BYTES = PREVIEW_CHARS * 4  # enough UTF-8 for PREVIEW_CHARS characters
_utf8_decoder = codecs.getincrementaldecoder("utf-8")
_topic_of = itemgetter(0)
_retain_of = itemgetter(3)


class _Entry:
    __slots__ = (
        "last_payload",
        "last_seen",
        "last_size",
        "messages",
        "retained",
        "retained_payload",
        "retained_size",
    )

    def __init__(self) -> None:
        self.messages = 0
        self.last_seen = 0.0
        self.retained = False
        self.last_payload = b""  # only the head the preview needs: 10,000 topics x 1 MB must not stay
        self.last_size = 0
        self.retained_payload = b""  # the head of the retained message, when one was seen
        self.retained_size = 0


def preview(payload: bytes, limit: int = PREVIEW_CHARS, size: int | None = None) -> str:
    """A short, always-printable view of a payload, for lists and tooltips. ``size`` is the
    whole payload's length when ``payload`` is only its head."""
    size = len(payload) if size is None else size
    head = payload[: limit * 4]
    try:
        # final=False when the head was cut: a character split at the cut is not binary data.
        text = _utf8_decoder().decode(head, final=len(head) >= size)
    except UnicodeDecodeError:
        return f"<{size:,} bytes of binary data>"
    return text[:limit] + "…" if len(text) > limit or size > len(head) else text


class TopicIndex:
    def __init__(self, max_topics: int = 10_000):
        self.max_topics = max_topics
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.changed = False

    def observe(self, items: Sequence[tuple[Any, ...]]) -> None:
        """Count a batch of (topic, payload, qos, retain, timestamp).

        Counting and picking each topic's last message run in C (Counter, dict over zip), so
        the per-message cost stays off the writer thread's Python loop; only distinct topics
        are visited one by one.
        """
        topics = list(map(_topic_of, items))
        counts = Counter(topics)
        latest = dict(zip(topics, items, strict=True))
        retained = {item[0] for item in items if item[3]} if any(map(_retain_of, items)) else ()
        entries = self._entries
        with self._lock:
            for topic, (_, payload, _qos, retain, timestamp, *_) in latest.items():
                entry = entries.get(topic)
                if entry is None:
                    entry = entries[topic] = _Entry()
                entry.messages += counts[topic]
                entry.last_seen = timestamp
                entry.last_payload = payload[:_PREVIEW_BYTES]
                entry.last_size = len(payload)
                # The broker flags a message as retained only when it replays a stored one; an
                # empty payload is how a retained message is cleared.
                if retain:
                    entry.retained = bool(payload)
                    entry.retained_payload, entry.retained_size = payload[:_PREVIEW_BYTES], len(payload)
                elif not payload:
                    entry.retained = False
                elif topic in retained:
                    entry.retained = True
                    retained_item = [i for i in items if i[0] == topic and i[3]][-1]
                    entry.retained_payload = retained_item[1][:_PREVIEW_BYTES]
                    entry.retained_size = len(retained_item[1])
            if len(entries) > self.max_topics:
                self._evict()
            self.changed = True

    def _evict(self) -> None:
        # Evict in bulk (down to 90 %) so the sort runs rarely rather than once per new topic.
        keep = int(self.max_topics * 0.9)
        newest = sorted(self._entries.items(), key=lambda pair: pair[1].last_seen, reverse=True)
        self._entries = dict(newest[:keep])

    def __len__(self) -> int:
        return len(self._entries)

    def snapshot(self) -> list[dict[str, Any]]:
        """The index as contract dicts, most recently seen first."""
        with self._lock:
            rows = [
                (
                    topic,
                    e.messages,
                    e.last_seen,
                    e.retained,
                    e.last_payload,
                    e.last_size,
                    e.retained_payload,
                    e.retained_size,
                )
                for topic, e in self._entries.items()
            ]
            self.changed = False
        rows.sort(key=lambda row: row[2], reverse=True)
        return [
            {
                "topic": topic,
                "messages": messages,
                "last_seen": last_seen,
                "retained": retained,
                "last_payload_preview": preview(payload, size=size),
                # the retained message's own payload (the last one may be a later, live message)
                "retained_payload_preview": preview(kept, size=kept_size) if retained else None,
            }
            for topic, messages, last_seen, retained, payload, size, kept, kept_size in rows
        ]

    def retained_under(self, topic_filter: str) -> list[str]:
        """The topics under ``topic_filter`` the bridge saw a retained message on (and no clear since)."""
        with self._lock:
            found = [t for t, e in self._entries.items() if e.retained]
        return sorted(t for t in found if topic_matches(topic_filter, t))

    def forget_retained(self, topic: str) -> None:
        """A clear the bridge sent itself: the topic holds no retained message any more."""
        with self._lock:
            entry = self._entries.get(topic)
            if entry is not None:
                entry.retained, entry.retained_payload, entry.retained_size = False, b"", 0
                self.changed = True
