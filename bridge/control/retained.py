"""``cmd_clear_retained``: clear retained messages under a filter, paced (docs/channels.md
"Clearing retained messages").

A retained message is cleared by publishing an empty retained message to its topic. Under a
wildcard filter the bridge can clear only the topics it has seen a retained message on (the
topic index); a broker may hold others the bridge has never seen, and the answer says so. An exact
topic is cleared whether the bridge has seen it or not.
"""

from __future__ import annotations

import logging
import threading
import time

from bridge.contract import protocol
from bridge.control.commands import PUBLISH_ACK_TIMEOUT, Answer, CommandProcessor
from bridge.ingest.mqtt_source import MqttSource
from bridge.ingest.outgoing import UnknownOutcome
from bridge.insight.topics import TopicIndex

logger = logging.getLogger(__name__)

CLEAR_RATE = 100.0  # clears a second at most, each acknowledged (QoS 1) before the next
CLEAR_MAX = 500  # per command, so one answers in about 5 s; the answer says how many remain
NOT_SEEN = (
    "only retained topics the bridge has seen are cleared; retained messages on topics it has never "
    "seen (or saw before they were retained) are not"
)


class RetainedClearer:
    def __init__(self, source: MqttSource, topics: TopicIndex, stop: threading.Event | None = None):
        self.source = source
        self.topics = topics
        self.stop = stop or threading.Event()

    def register(self, processor: CommandProcessor) -> None:
        processor.register(protocol.CMD_CLEAR_RETAINED, self.clear, background=True)

    def clear(self, command: protocol.Command) -> Answer:
        topic_filter = command.topic
        exact = "+" not in topic_filter and "#" not in topic_filter and not topic_filter.startswith("$share/")
        known = self.topics.retained_under(topic_filter)
        targets = [topic_filter] if exact else known
        cleared: list[str] = []
        error = None
        interval = 1.0 / CLEAR_RATE
        for topic in targets[:CLEAR_MAX]:
            started = time.monotonic()
            error = self.source.publish(topic, b"", 1, True, PUBLISH_ACK_TIMEOUT)
            if error is not None:
                break
            self.topics.forget_retained(topic)
            cleared.append(topic)
            if self.stop.wait(max(0.0, interval - (time.monotonic() - started))):
                break
        remaining = len(targets) - len(cleared)
        logger.info("cleared %d retained topics under %r (%d left)", len(cleared), topic_filter, remaining)
        result = {
            "cleared": len(cleared),
            "topics": cleared[:100],
            "remaining": remaining,
            "note": NOT_SEEN if not exact else None,
        }
        if error is not None:
            # A refusal ("Not authorized" in PUBACK) leaves that topic as it was: not counted.
            stopped = f"stopped after clearing {len(cleared)} of {len(targets)}: {error}"
            return Answer(UnknownOutcome(stopped) if isinstance(error, UnknownOutcome) else stopped, result)
        if remaining:
            result["note"] = (
                f"cleared {len(cleared)} of {len(targets)} (at most {CLEAR_MAX} a command); "
                f"send it again for the rest. {NOT_SEEN}"
            )
        return Answer(None, result)
