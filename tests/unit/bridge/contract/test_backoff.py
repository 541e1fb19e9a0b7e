from __future__ import annotations

import threading

import pytest

from bridge.contract.backoff import Backoff, NoWait


def test_delays_double_up_to_the_cap_and_start_over_after_a_success() -> None:
    backoff = Backoff(base=1, cap=8, jitter=0)
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    backoff.reset()
    assert backoff.next_delay() == 1


def test_jitter_only_shortens_the_delay() -> None:
    backoff = Backoff(base=1, cap=1, jitter=0.5)
    assert all(0.5 <= backoff.next_delay() <= 1 for _ in range(50))


def test_wait_returns_at_once_when_stopping() -> None:
    stop = threading.Event()
    stop.set()
    assert Backoff(base=30, cap=30).wait(stop) is True


def test_no_wait_counts_without_sleeping() -> None:
    backoff = NoWait()
    assert backoff.wait(threading.Event()) is False
    assert backoff.failures == 1


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="0 < base <= cap"):
        Backoff(base=5, cap=1)
