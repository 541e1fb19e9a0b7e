"""One run: start the load, the baseline, the probes and the client processes, and collect."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from bench.stack.clients import Run, merge_groups, sample_rss
from bench.stack.frames import RawFrame
from bench.stack.histogram import Histogram
from bench.stack.procstat import children, cpu_seconds, machine_cpu, rss_mib
from tests.helpers import REPO, DashboardProcess, env_with


async def read_ready(proc: asyncio.subprocess.Process, what: str) -> None:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if line.strip() != b"ready":
        raise RuntimeError(f"{what} did not start (exit code {proc.returncode}): {line!r}")


async def stop_and_read(proc: asyncio.subprocess.Process) -> Any:
    proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return json.loads(out)


async def measure(
    args: argparse.Namespace, dashboard: DashboardProcess, pids: dict[str, int]
) -> dict[str, Any]:
    assert dashboard.token is not None
    me = asyncio.current_task()
    assert me is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, me.cancel)  # clean-up runs below
    run = Run()
    here = [sys.executable, str(REPO / "bench" / "fanout.py")]  # its roles run the same script
    helpers: list[asyncio.subprocess.Process] = []
    groups: list[asyncio.subprocess.Process] = []
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        # the control clients first, so they are connected through the whole run
        probe = await asyncio.create_subprocess_exec(
            *here,
            "--role",
            "probe",
            "--url",
            dashboard.url,
            stdout=subprocess.PIPE,
            env=env_with(BENCH_DASHBOARD_TOKEN=dashboard.token),  # not on a command line
        )
        helpers.append(probe)
        await read_ready(probe, "the probe clients")

        # The measured clients, spread over --client-processes processes of their own.
        shares = [args.clients // args.client_processes] * args.client_processes
        for i in range(args.clients % args.client_processes):
            shares[i] += 1
        first = 0
        for share in shares:
            group = await asyncio.create_subprocess_exec(
                *here,
                "--role",
                "clients",
                "--url",
                dashboard.url,
                "--count",
                str(share),
                "--first-index",
                str(first),
                *(["--full-decode"] if args.full_decode else []),
                stdout=subprocess.PIPE,
                env=env_with(BENCH_DASHBOARD_TOKEN=dashboard.token),
            )
            first += share
            groups.append(group)
            helpers.append(group)
        await asyncio.gather(*(read_ready(g, "a client process") for g in groups))

        baseline = await asyncio.create_subprocess_exec(
            *here, "--role", "baseline", "--redis-port", str(args.redis_port), stdout=subprocess.PIPE
        )
        helpers.append(baseline)
        await read_ready(baseline, "the baseline subscriber")

        workers = sorted(children(dashboard.pid))
        rss_start = {pid: rss_mib(pid) for pid in workers}
        rss_peak: dict[int, float] = {}
        tasks.append(asyncio.create_task(sample_rss(workers, rss_peak, stop)))
        await asyncio.sleep(1.0)  # a quiet second: lag and RSS start from idle

        all_pids = {
            **pids,
            **{f"worker {pid}": pid for pid in workers},
            "baseline": baseline.pid,
            "probe": probe.pid,
            **{f"clients {i + 1}": g.pid for i, g in enumerate(groups)},
        }
        run.t0 = time.time()
        cpu_start = {name: cpu_seconds(pid) for name, pid in all_pids.items()}
        machine_start = machine_cpu()
        wall_start = time.monotonic()
        publisher = await asyncio.create_subprocess_exec(
            *here,
            "--role",
            "publisher",
            "--broker-port",
            str(args.broker_port),
            "--rate",
            str(args.rate),
            "--duration",
            str(args.duration),
            "--payload-bytes",
            str(args.payload_bytes),
            stdout=subprocess.PIPE,
        )
        helpers.append(publisher)
        all_pids["publisher"] = publisher.pid
        cpu_start["publisher"] = 0.0
        # The publisher's CPU is read while it runs (its /proc entry goes when it exits).
        publisher_cpu = 0.0
        communicate = asyncio.create_task(publisher.communicate())
        deadline = time.monotonic() + args.duration + 60
        while not communicate.done():
            publisher_cpu = cpu_seconds(publisher.pid) or publisher_cpu
            if time.monotonic() > deadline:
                raise RuntimeError("the publisher did not finish in time")
            await asyncio.wait([communicate], timeout=0.2)
        out, _ = communicate.result()
        if publisher.returncode != 0:
            raise RuntimeError(f"the publisher failed with exit code {publisher.returncode}")
        pub = json.loads(out)

        await asyncio.sleep(1.0)  # the last frames leave one frame interval (100 ms) later
        wall = time.monotonic() - wall_start
        cpu_end = {name: cpu_seconds(pid) for name, pid in all_pids.items()}
        cpu_end["publisher"] = publisher_cpu
        machine_end = machine_cpu()
        rss_end = {pid: rss_mib(pid) for pid in workers}
        # Each client process waits for its last frames itself, then reports.
        group_results = await asyncio.gather(*(stop_and_read(g) for g in groups))
        base_hist = Histogram.from_json(await stop_and_read(baseline))
        probes = await stop_and_read(probe)
        stats, errors, connect_time = merge_groups(group_results, run)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for proc in helpers:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    cpu = {
        name: 100 * (cpu_end[name] - cpu_start[name]) / wall  # type: ignore[operator]
        for name in all_pids
        if cpu_start.get(name) is not None and cpu_end.get(name) is not None
    }
    jiffies, idle, steal = (e - s for e, s in zip(machine_end, machine_start, strict=True))
    return {
        "run": run,
        "stats": stats,
        "errors": errors,
        "connect_time": connect_time,
        "publisher": pub,
        "baseline": base_hist,
        "probes": probes,
        "workers": workers,
        "rss": {"start": rss_start, "peak": rss_peak, "end": rss_end},
        "cpu": cpu,
        "machine": {
            "busy": 100 * (jiffies - idle) / max(1, jiffies),
            "steal": 100 * steal / max(1, jiffies),
            "cores": os.cpu_count(),
        },
        "wall": wall,
        "verified": (RawFrame.verified, RawFrame.mismatched),
    }
