"""The main thread supervises the bridge's threads: one that dies (past its own error handling)
ends the process non-zero, so Docker or systemd restart it (issue 21, defect 9)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import fakeredis
import pytest

from bridge.config import Settings
from bridge.service import EXIT_THREAD_DIED, Bridge


class ThreadKilled(BaseException):
    """Escapes every ``except Exception``, as a real thread-killing failure would."""


@pytest.fixture
def bridge(r: fakeredis.FakeRedis) -> Iterator[Bridge]:
    settings = Settings.from_env({"MQTT_TOPICS": "#", "STATS_INTERVAL": "1"})
    made = Bridge(settings, r)
    made.writer.start()
    made.commands.start()
    made.housekeeper.start()
    yield made
    made.stop_event.set()
    made.housekeeper.stop_event.set()


def test_with_every_thread_alive_the_bridge_runs_until_told_to_stop(bridge: Bridge) -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    assert bridge.supervise(stop, interval=0.05) == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_thread_that_died_ends_the_process_non_zero(
    bridge: Bridge, caplog: pytest.LogCaptureFixture
) -> None:
    def die() -> None:
        raise ThreadKilled

    bridge.housekeeper.save_session = die  # called on every pass of the housekeeping loop
    caplog.set_level(logging.CRITICAL, logger="bridge.service")
    assert bridge.supervise(threading.Event(), interval=0.05) == EXIT_THREAD_DIED
    assert any("housekeeping thread has died" in rec.getMessage() for rec in caplog.records)
