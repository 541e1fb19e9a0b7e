from __future__ import annotations

import pytest

from bridge.ingest.dedup import CopyFilter, can_overlap


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("a/+", "+/b", True),
        ("a/#", "a", True),
        ("a/+", "a", False),
        ("a/b", "a/c", False),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
        ("a/+/c", "a/b/+", True),
        ("a/+/c", "a/b/d", False),
        ("$share/g/a/#", "a/b", True),
    ],
)
def test_can_overlap(a: str, b: str, expected: bool) -> None:
    assert can_overlap(a, b) is expected
    assert can_overlap(b, a) is expected


def test_only_the_copy_for_the_lowest_matching_filter_is_kept() -> None:
    copies = CopyFilter()
    first, second = copies.assign("a/+"), copies.assign("+/b")
    assert copies.active
    assert copies.is_first_copy("a/b", [first])
    assert not copies.is_first_copy("a/b", [second])
    assert copies.is_first_copy("a/b", [second, first])  # a broker may send one copy with both ids
    assert copies.is_first_copy("x/b", [second])  # only +/b matches: its copy is the only one


def test_no_overlap_means_nothing_to_check() -> None:
    copies = CopyFilter()
    copies.assign("$SYS/#")
    copies.assign("#")
    assert not copies.active
    copies.assign("sensors/#")
    assert copies.active
    copies.forget("sensors/#")
    assert not copies.active
    copies.reset()
    assert copies.assign("x") == 1
