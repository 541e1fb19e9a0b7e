"""The record of what the broker holds in the bridge's persistent session."""

from __future__ import annotations

from bridge.ingest.session import SessionFilters


def test_a_resumed_session_yields_the_filters_no_longer_wanted() -> None:
    session = SessionFilters()
    session.load({"$SYS/#", "keep/#", "old/#"})
    assert session.connected(resumed=True, wanted={"$SYS/#", "keep/#"}) == ["old/#"]
    assert session.take_change() == ["$SYS/#", "keep/#"]
    assert session.take_change() is None  # saved once


def test_a_new_session_holds_exactly_what_was_subscribed() -> None:
    session = SessionFilters()
    session.load({"old/#"})
    assert session.connected(resumed=False, wanted={"a/#"}) == []
    assert session.take_change() == ["a/#"]


def test_a_session_resumed_before_the_record_was_read_is_checked_later() -> None:
    session = SessionFilters()
    assert session.connected(resumed=True, wanted={"a/#"}) == []
    assert session.resumed_unknown and not session.loaded()
    session.load({"a/#", "b/#"})
    assert session.loaded()


def test_commands_change_the_record_and_a_failed_save_is_offered_again() -> None:
    session = SessionFilters()
    session.connected(resumed=False, wanted={"a/#"})
    session.take_change()
    session.update(add=["c/#"])
    session.update(remove=["a/#"])
    assert session.take_change() == ["c/#"]
    session.unsaved()
    assert session.take_change() == ["c/#"]
