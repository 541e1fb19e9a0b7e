"""Reading ``mqtt_messages`` frames as a benchmark client must: cheaply, and checked now and then."""

from __future__ import annotations

import json
from typing import Any

from bench.stack.histogram import sent_at


class RawFrame:
    """An ``mqtt_messages`` frame's JSON text as received, read without building its dicts.

    At the defaults the clients in this one process take ~400k messages/s; decoding every frame into
    dicts cost this process about twice the CPU of the scan below, and that CPU is taken from the same
    two cores the server runs on. One frame in VERIFY_EVERY is also fully decoded and compared.
    """

    VERIFY_EVERY = 50
    # Latency is read from every SAMPLE_EVERY-th message of a frame (the first, the oldest, always),
    # each standing for the messages up to the next sample: 200 clients at 2,000 msg/s are 400,000
    # messages a second, and parsing every send time cost the client processes most of a core of
    # the same two the dashboard runs on. Counts (delivered, skipped) are always exact.
    SAMPLE_EVERY = 10
    seen = 0
    verified = 0
    mismatched = 0

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def read(self) -> tuple[list[float], int, int]:
        """(the send time of every SAMPLE_EVERY-th message from the first, messages, skipped)."""
        text = self.text
        parts = text.split('"payload":"')
        count = len(parts) - 1
        step = self.SAMPLE_EVERY
        times = [float(p[: p.index(" ")]) for p in parts[1::step]]
        skipped = int(text[text.rindex('"skipped":') + 10 : -1])  # the frame ends with ...,"skipped":N}
        RawFrame.seen += 1
        if RawFrame.seen % self.VERIFY_EVERY == 1:
            frame = json.loads(text)
            RawFrame.verified += 1
            every = [sent_at(m["payload"]) for m in frame["messages"]]
            if every[::step] != times or len(every) != count or frame["skipped"] != skipped:
                RawFrame.mismatched += 1
        return times, count, skipped


class FrameJson:
    """The ``json`` handed to python-socketio (its ``json=`` option): frames become RawFrames;
    everything else is plain ``json`` (not python-engineio's default module, whose int guard
    calls back into Python for every JSON integer)."""

    HEAD = '["mqtt_messages",'
    dumps = staticmethod(json.dumps)

    @staticmethod
    def loads(text: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(text, str) and text.startswith(FrameJson.HEAD):
            return ["mqtt_messages", RawFrame(text[len(FrameJson.HEAD) : -1])]
        return json.loads(text, *args, **kwargs)


# --- the helper processes (own processes, so neither competes for this one's GIL) -------------
