"""Bridge-group names and filters: the group and member ids, ``$share/<group>/<filter>``, and the
refusal of overlapping filters (their copies would land on different members, where none can
remove the duplicate)."""

from __future__ import annotations

from collections.abc import Iterable

from bridge.dedup import can_overlap
from bridge.errors import ConfigError

SHARE_PREFIX = "$share/"
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


def is_data_filter(topic_filter: str) -> bool:
    """Data filters are shared in a group; $SYS (stats), $CONTROL (the answers to the leader's own
    requests, which must all reach it) and already-shared filters are not."""
    return not topic_filter.startswith(("$SYS", "$CONTROL/", SHARE_PREFIX))


def shared(group: str, topic_filter: str) -> str:
    """The filter as the broker sees it in group mode."""
    return f"{SHARE_PREFIX}{group}/{topic_filter}" if is_data_filter(topic_filter) else topic_filter


def unshared(group: str, topic_filter: str) -> str:
    prefix = f"{SHARE_PREFIX}{group}/"
    return topic_filter[len(prefix) :] if topic_filter.startswith(prefix) else topic_filter


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
