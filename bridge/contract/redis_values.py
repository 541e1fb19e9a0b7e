"""Values read back from Redis, checked before they are used.

Anyone who can write to Redis (an operator with ``redis-cli``, a bug, a restore of an old dump)
can leave a value of the wrong type, a negative one, or one so large that turning it into a
float raises: a 400-digit uptime once stopped the bridge's housekeeping thread for good. So a
value from Redis is never trusted: each reader asks one of the functions here, which answer None
for anything unusable, and reports the bad value to ``REJECTED``, which logs the first one of
each place and counts them all (the bridge's heartbeat and both programs' metrics show the
count). The caller then replaces the value: with a default, or by writing a good one over it.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

logger = logging.getLogger(__name__)

# A browser's JSON.parse keeps integers exact up to here; every count and token stays below.
MAX_COUNT = 2**53 - 1
# Seconds since 1970 up to the year 3000: any later "time" is damage, not a clock.
MAX_UNIX_TIME = 32_503_680_000.0
# A duration (an uptime, an age) of more than about 300 years is damage too.
MAX_SECONDS = 10_000_000_000.0
_LOGGED_PLACES_MAX = 1000  # places remembered for "log once"; past that, every one is DEBUG


def count(value: Any) -> int | None:
    """A whole number from 0 to MAX_COUNT (not a bool), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    return None


def seconds(value: Any, high: float = MAX_SECONDS) -> float | None:
    """A finite number from 0 to ``high`` (not a bool), as a float; else None. Comparing first
    and converting after means a huge integer is refused rather than overflowing."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= high:
        return None  # also NaN, which compares false with everything
    converted = float(value)
    return converted if math.isfinite(converted) else None


def unix_time(value: Any) -> float | None:
    """A time in Unix seconds between 1970 and the year 3000, else None."""
    return seconds(value, MAX_UNIX_TIME)


def short_text(value: Any, limit: int = 200) -> str | None:
    """Text of at most ``limit`` characters, else None."""
    return value if isinstance(value, str) and len(value) <= limit else None


class Rejections:
    """Counts the bad values found in Redis and logs them: the first one of each place at
    WARNING, the rest at DEBUG (a value rewritten every few seconds must not flood the log)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logged: set[str] = set()
        self.count = 0

    def report(self, where: str, problem: str) -> None:
        """``where``: the key (and field) it was read from; ``problem``: what was wrong, in words,
        never the value itself (it may be huge, or hold something not meant for a log)."""
        where = where[:200]  # a key or field name may be long: the log line stays short
        with self._lock:
            self.count += 1
            first = where not in self._logged and len(self._logged) < _LOGGED_PLACES_MAX
            self._logged.add(where)
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "ignored a bad value in Redis at %s: %s; it is replaced (further ones there are logged at DEBUG)",
            where,
            problem,
        )


# One per process, like a logger: every reader in the process reports here.
REJECTED = Rejections()
