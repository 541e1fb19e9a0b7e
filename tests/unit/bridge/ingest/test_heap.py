"""Giving memory back after a burst: the glibc calls are made, and do nothing elsewhere."""

from __future__ import annotations

import platform

import pytest

from bridge.ingest import heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_the_arenas_are_capped_and_trimmed_on_glibc() -> None:
    assert heap.tune() is True
    heap.trim()  # returns nothing; must not fail


def test_without_glibc_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_LIBC", None)
    assert heap.tune() is False
    heap.trim()
