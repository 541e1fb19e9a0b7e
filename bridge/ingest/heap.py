"""Giving memory back after a burst: glibc keeps what Python freed unless told otherwise.

Measured (bench/memory.py, 6,000 messages of 256 KB): the bridge's RSS went from 43 to 139 MiB
during the burst and stayed at 131 MiB afterwards. glibc raises its mmap threshold each time a
large block mapped on its own is freed, so from the second burst message on, 256 KB payloads
come from the arenas (one per thread that allocates: paho's reads them, the writer frees them)
and the freed space stays in the process. So the arenas are capped at start, and once the queue
has drained after holding many bytes, ``malloc_trim`` returns what they still hold: back to
44 MiB (fixing the mmap threshold instead did as well, at a page fault per payload page).

Without glibc (musl, macOS) every call here does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

logger = logging.getLogger(__name__)

M_ARENA_MAX = -8  # a mallopt parameter, from glibc's malloc.h
ARENA_MAX = 2
TRIM_AFTER_BYTES = 16 * 1024 * 1024  # a queue that held this much is worth a trim once drained


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


def tune() -> bool:
    """At start, before the threads allocate: at most ARENA_MAX arenas."""
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(M_ARENA_MAX, ARENA_MAX))


def trim() -> None:
    """Return the arenas' free memory to the system (a few ms; after a burst only)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
