"""Bridge-group names and filters: the group and member ids, and the
refusal of overlapping filters (their copies would land on different members, where none can
remove the duplicate)."""

from __future__ import annotations

from collections.abc import Iterable

from bridge.contract.errors import ConfigError
from bridge.ingest.dedup import can_overlap
from bridge.ingest.subscriptions import is_data_filter

_NOT_IN_GROUP_NAME = ("/", "+", "#")
MEMBER_MAX_CHARS = 200


def check_group_name(group: str) -> None:
    if any(c in group for c in _NOT_IN_GROUP_NAME) or len(group.encode()) > 1000:
        raise ConfigError(
            "BRIDGE_GROUP must be a short name without '/', '+' or '#' "
            f"(it becomes $share/<group>/…), got {group!r}"
        )


def check_member_id(member: str) -> None:
    if len(member) > MEMBER_MAX_CHARS or not member.isprintable():
        raise ConfigError(f"BRIDGE_MEMBER must be printable and at most {MEMBER_MAX_CHARS} characters")


def overlap_sentence(new: str, existing: Iterable[str]) -> str | None:
    """Why ``new`` cannot join the group's filters, or None."""
    for other in existing:
        if other != new and is_data_filter(other) and is_data_filter(new) and can_overlap(new, other):
            return (
                f"{new!r} overlaps {other!r}: in a bridge group a message matching both would reach "
                "two members and be forwarded twice; subscribe to one filter that covers both instead"
            )
    return None


def refuse_overlaps(filters: Iterable[str], where: str) -> None:
    chosen: list[str] = []
    for topic_filter in filters:
        sentence = overlap_sentence(topic_filter, chosen)
        if sentence:
            raise ConfigError(f"{where}: {sentence}")
        chosen.append(topic_filter)
