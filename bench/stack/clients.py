"""The Socket.IO clients: many per process, each timing every message it receives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from bench.stack.frames import FrameJson, RawFrame
from bench.stack.histogram import Histogram, sent_at
from bench.stack.procstat import rss_mib

CONNECT_CONCURRENCY = 20  # clients connecting at once
DRAIN_MAX = 5.0  # seconds to wait for the last frames after the publisher stopped


@dataclass
class ClientStats:
    index: int
    worker: int | None = None
    frames: int = 0
    delivered: int = 0
    skipped: int = 0
    connected: bool = False
    dropped_at: float | None = None
    drop_reason: str = ""
    snapshot: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Run:
    hist: Histogram = field(default_factory=Histogram)
    per_second_max: dict[int, float] = field(default_factory=dict)
    t0: float = 0.0  # publisher start, wall clock
    loop_lag: Histogram = field(default_factory=Histogram)


def make_client(stats: ClientStats, run: Run, full_decode: bool = False) -> Any:
    import socketio

    # Plain json (--full-decode) or FrameJson; either way not python-engineio's default module,
    # whose int guard routes every JSON integer through a Python callback.
    decoder = json if full_decode else FrameJson
    sio = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False, json=decoder)

    def on_snapshot(data: dict[str, Any]) -> None:
        stats.worker = data.get("worker")
        stats.snapshot.set()

    def on_frame(data: RawFrame | dict[str, Any]) -> None:
        now = time.time()
        if isinstance(data, RawFrame):
            times, count, skipped = data.read()
            step = RawFrame.SAMPLE_EVERY
        else:
            times, skipped = [sent_at(m["payload"]) for m in data["messages"]], data["skipped"]
            count, step = len(times), 1
        stats.frames += 1
        stats.delivered += count
        stats.skipped += skipped
        if not times:
            return
        # The hot path: one tight loop, no per-message calls. Each sample weighs for the messages
        # it stands for, so the histogram counts every message.
        hist = run.hist
        bins, top, scale = hist.bins, len(hist.bins) - 1, Histogram.PER_SECOND
        worst = 0.0
        for t in times:
            lat = now - t
            i = int(lat * scale)
            bins[i if 0 <= i < top else (0 if i < 0 else top)] += step
            if lat > worst:
                worst = lat
        bins[i if 0 <= i < top else (0 if i < 0 else top)] -= (
            step * len(times) - count
        )  # the last one's share
        hist.count += count
        hist.max = max(hist.max, worst)
        second = int(now - run.t0)
        if worst > run.per_second_max.get(second, 0.0):
            run.per_second_max[second] = worst

    def on_disconnect(*reason: Any) -> None:
        if stats.connected and stats.dropped_at is None:
            stats.dropped_at = time.time()
            stats.drop_reason = str(reason[0]) if reason else "?"
        stats.connected = False

    sio.on("snapshot", on_snapshot)
    sio.on("mqtt_messages", on_frame)
    sio.on("disconnect", on_disconnect)
    return sio


async def connect_clients(
    url: str, token: str, count: int, run: Run, full_decode: bool, first_index: int = 0
) -> tuple[list[Any], list[ClientStats], list[str]]:
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
    stats = [ClientStats(first_index + i) for i in range(count)]
    clients = [make_client(s, run, full_decode) for s in stats]
    errors: list[str] = []

    async def one(sio: Any, st: ClientStats) -> None:
        async with sem:
            try:
                await sio.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=15)
                await asyncio.wait_for(st.snapshot.wait(), 15)
                st.connected = True
            except Exception as exc:
                errors.append(f"client {st.index}: {type(exc).__name__}: {exc}")

    await asyncio.gather(*(one(c, s) for c, s in zip(clients, stats, strict=True)))
    return clients, stats, errors


async def watch_loop_lag(run: Run, stop: asyncio.Event) -> None:
    """How late this process's event loop wakes up: the clients' own queueing delay."""
    period = 0.02
    while not stop.is_set():
        t = time.monotonic()
        await asyncio.sleep(period)
        run.loop_lag.add_all((time.monotonic() - t - period,))


async def sample_rss(pids: list[int], peak: dict[int, float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for pid in pids:
            value = rss_mib(pid)
            if value is not None:
                peak[pid] = max(peak.get(pid, 0.0), value)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def run_probe(url: str, token: str, workers: int) -> None:
    """A control client per worker in its own, otherwise idle process: what a browser with a CPU
    of its own sees under the same load. Measures until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    kept: list[tuple[Any, ClientStats, Run]] = []

    async def attempt(index: int) -> None:
        st, run = ClientStats(index), Run(t0=time.time())
        sio = make_client(st, run)
        await sio.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=15)
        await asyncio.wait_for(st.snapshot.wait(), 15)
        if len(kept) < workers and all(other.worker != st.worker for _, other, _ in kept):
            st.connected = True
            kept.append((sio, st, run))
        else:
            await sio.disconnect()

    # Where a connection lands is Gunicorn's (the kernel's) choice, and one at a time from idle they
    # tend to land on the same worker: connect a few at once, keep one per worker.
    for round_ in range(5):
        if len(kept) >= workers:
            break
        await asyncio.gather(*(attempt(round_ * 10 + i) for i in range(2 * workers)))
    print("ready", flush=True)
    parent = os.getppid()
    while not stop.is_set() and os.getppid() == parent:  # bounded: ends with the benchmark
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    result = [
        {
            "worker": st.worker,
            "frames": st.frames,
            "delivered": st.delivered,
            "skipped": st.skipped,
            "dropped": st.dropped_at is not None,
            "hist": run.hist.to_json(),
        }
        for _, st, run in kept
    ]
    for sio, st, _ in kept:
        st.connected = False
        await sio.disconnect()
    print(json.dumps(result), flush=True)


async def run_client_group(url: str, token: str, count: int, first_index: int, full_decode: bool) -> None:
    """``count`` of the measured clients in this process, one of --client-processes: spread over
    processes, the clients' own CPU queueing no longer dominates what they measure (one process
    for all 200 used 73 % of a core and saw p99 3.9 s while each worker's probe saw 130 ms).
    Measures until SIGTERM, waits for the last frames, prints its figures as JSON."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    run = Run(t0=0.0)  # per-second maxima keyed by absolute second; the parent aligns them
    started = time.monotonic()
    clients, stats, errors = await connect_clients(url, token, count, run, full_decode, first_index)
    connect_time = time.monotonic() - started
    lag_stop = asyncio.Event()
    lag = asyncio.create_task(watch_loop_lag(run, lag_stop))
    print("ready", flush=True)
    parent = os.getppid()
    while not stop.is_set() and os.getppid() == parent:  # bounded: ends with the benchmark
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    # Drain: the last frames leave one frame interval after the publisher stopped, plus backlog.
    drain_start, last_total = time.monotonic(), -1
    while time.monotonic() - drain_start < DRAIN_MAX:
        total = sum(st.delivered + st.skipped for st in stats)
        if total == last_total:
            break
        last_total = total
        await asyncio.sleep(0.5)
    lag_stop.set()
    lag.cancel()
    result = {
        "connect_time": connect_time,
        "errors": errors,
        "hist": run.hist.to_json(),
        "loop_lag": run.loop_lag.to_json(),
        "per_second_max": run.per_second_max,
        "verified": [RawFrame.verified, RawFrame.mismatched],
        "stats": [
            {
                "index": st.index,
                "worker": st.worker,
                "frames": st.frames,
                "delivered": st.delivered,
                "skipped": st.skipped,
                "dropped_at": st.dropped_at,
                "drop_reason": st.drop_reason,
            }
            for st in stats
        ],
    }
    for st in stats:
        st.connected = False  # from here on a disconnect is ours, not a drop
    await asyncio.gather(
        *(asyncio.wait_for(c.disconnect(), 5) for c in clients if c.connected), return_exceptions=True
    )
    print(json.dumps(result), flush=True)


def merge_groups(groups: list[dict[str, Any]], run: Run) -> tuple[list[ClientStats], list[str], float]:
    """The client processes' figures as one: histograms and per-second maxima merged."""
    stats: list[ClientStats] = []
    errors: list[str] = []
    for group in groups:
        run.hist.merge(Histogram.from_json(group["hist"]))
        run.loop_lag.merge(Histogram.from_json(group["loop_lag"]))
        for second, worst in group["per_second_max"].items():
            key = int(int(second) - run.t0)
            run.per_second_max[key] = max(run.per_second_max.get(key, 0.0), worst)
        errors += group["errors"]
        RawFrame.verified += group["verified"][0]
        RawFrame.mismatched += group["verified"][1]
        for item in group["stats"]:
            st = ClientStats(item["index"], worker=item["worker"], frames=item["frames"])
            st.delivered, st.skipped = item["delivered"], item["skipped"]
            st.dropped_at, st.drop_reason = item["dropped_at"], item["drop_reason"]
            stats.append(st)
    return stats, errors, max((g["connect_time"] for g in groups), default=0.0)
