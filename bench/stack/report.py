"""The printed report: latency, delivery, spread over workers, memory and CPU."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.stack.clients import ClientStats, Run
from bench.stack.frames import RawFrame
from bench.stack.histogram import Histogram

TARGET_P99 = 0.250  # seconds


def by_value(item: tuple[str, float]) -> float:
    return -item[1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def report(args: argparse.Namespace, res: dict[str, Any], workdir: Path) -> bool:
    run: Run = res["run"]
    stats: list[ClientStats] = res["stats"]
    pub = res["publisher"]
    base: Histogram = res["baseline"]
    sent = pub["sent"]
    connected = [s for s in stats if s.worker is not None]
    dropped = [s for s in stats if s.dropped_at is not None]
    frames = sum(s.frames for s in stats)
    delivered = sum(s.delivered for s in stats)
    skipped = sum(s.skipped for s in stats)
    expected = sent * len(connected)
    missing = expected - delivered - skipped
    pct = 100 / max(1, expected)

    print(
        f"\nfan-out: {args.clients} Socket.IO clients (websocket only) on 2 gevent workers, "
        f"{args.rate:,.0f} msg/s x {args.duration:g} s of {args.payload_bytes}-byte QoS 0"
    )
    print(
        f"  load: {sent:,} sent in {pub['elapsed']:.2f} s ({sent / pub['elapsed']:,.0f} msg/s), "
        f"max schedule lag {pub['max_lag'] * 1000:.1f} ms, {pub['late']} sent > 5 ms late"
    )
    print(f"  connect: {len(connected)}/{args.clients} clients in {res['connect_time']:.1f} s")
    for err in res["errors"][:5]:
        print(f"    {err}")
    spread: dict[int, int] = {}
    for s in connected:
        if s.worker is not None:
            spread[s.worker] = spread.get(s.worker, 0) + 1
    print(
        "  clients per worker (snapshot 'worker'): "
        + ", ".join(f"pid {pid}: {n}" for pid, n in sorted(spread.items()))
        + "".join(f", pid {pid}: 0" for pid in res["workers"] if pid not in spread)
    )

    p99, b99 = run.hist.percentile(99), base.percentile(99)
    print("  latency, MQTT publish -> receiver          p50        p99       p999        max    samples")
    rows = [(f"{args.clients} clients, {args.client_processes} processes (all)", run.hist)]
    rows += [
        (f"probe on worker {p['worker']} (own process)", Histogram.from_json(p["hist"]))
        for p in res["probes"]
    ]
    rows.append(("bridge only: redis-py subscriber", base))
    for label, hist in rows:
        print(
            f"    {label:36s} {ms(hist.percentile(50))} {ms(hist.percentile(99))} "
            f"{ms(hist.percentile(99.9))} {ms(hist.max)} {hist.count:>10,}"
        )
    print(
        f"  ratio dashboard p99 / bridge-only p99 = {p99 / b99:.1f} x  "
        f"(what the dashboard adds on top of the bridge, measured at the {args.clients} clients)"
    )
    print(
        "  worst client latency in each second of the run (ms): "
        + " ".join(f"{run.per_second_max[sec] * 1000:.0f}" for sec in sorted(run.per_second_max))
    )
    per_client = frames / max(1, len(connected))
    print(
        f"  frames delivered: {frames:,} ({per_client:.0f} per client, "
        f"{per_client / pub['elapsed']:.1f}/s per client while publishing)"
    )
    print(
        f"  messages: expected {expected:,} ({sent:,} x {len(connected)} clients), "
        f"delivered {delivered:,} ({delivered * pct:.2f} %), skipped {skipped:,} ({skipped * pct:.2f} %), "
        f"neither {missing:,}"
    )
    for p in res["probes"]:
        print(
            f"    probe on worker {p['worker']}: delivered {p['delivered']:,}, skipped {p['skipped']:,} "
            f"of {sent:,}, {p['frames']} frames{', DROPPED' if p['dropped'] else ''}"
        )
    print(f"    bridge-only subscriber received {base.count:,} of {sent:,}")
    verified, mismatched = res["verified"]
    if args.full_decode:
        print("  frames decoded in full (--full-decode)")
    else:
        print(
            f"  frames read by scanning their JSON text, latency from every {RawFrame.SAMPLE_EVERY}th "
            "message "
            f"(weighted); {verified:,} frames also decoded in full and compared: {mismatched} mismatched"
        )
    print(f"  clients dropped during the run: {len(dropped)}")
    for s in dropped[:5]:
        at = (s.dropped_at or 0) - run.t0
        print(f"    client {s.index} (worker {s.worker}) at {at:+.1f} s: {s.drop_reason}")
    rss = res["rss"]
    for pid in res["workers"]:
        start, peak, end = (rss[k].get(pid) or 0.0 for k in ("start", "peak", "end"))
        print(
            f"  worker {pid} RSS: {start:.1f} MiB before the load, peak {peak:.1f} MiB, {end:.1f} MiB after"
        )
    machine = res["machine"]
    print(
        f"  CPU over the load ({res['wall']:.1f} s; % of one core; the machine has {machine['cores']} cores, "
        f"{machine['busy']:.0f} % busy in all, steal {machine['steal']:.1f} %):"
    )
    print(
        "    "
        + ", ".join(f"{name} {value:.0f} %" for name, value in sorted(res["cpu"].items(), key=by_value))
    )
    print(
        f"  the client processes' event loops woke late by p99 {run.loop_lag.percentile(99) * 1000:.1f} ms, "
        f"max {run.loop_lag.max * 1000:.1f} ms"
    )
    print(
        f"  note: the {args.clients} clients run in {args.client_processes} processes on the same shared "
        "cores as the workers, bridge, mosquitto and redis, so their figures still include some CPU "
        "queueing of their own (see the loop lag); the probes (one idle process) show it without."
    )
    met = p99 <= TARGET_P99 and not dropped and len(connected) == args.clients
    print(
        f"  target: p99 <= {TARGET_P99 * 1000:.0f} ms, no client dropped: "
        f"{'MET' if met else 'NOT MET'} (p99 {p99 * 1000:.0f} ms, {len(dropped)} dropped, "
        f"{args.clients - len(connected)} not connected)"
    )
    if args.keep:
        print(f"  logs: {workdir}")
    return met
