"""Prometheus endpoint (optional, METRICS_PORT): the bridge's counters and the broker's gauges."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bridge.contract.redis_values import REJECTED
from bridge.ingest.counters import Counters

logger = logging.getLogger(__name__)

# stats field -> (metric name, help, is a counter)
_BROKER = {
    "uptime_seconds": ("mosquitto_uptime_seconds", "Broker uptime", False),
    "clients_connected": ("mosquitto_clients_connected", "Clients connected to the broker", False),
    "clients_maximum": ("mosquitto_clients_maximum", "Most clients ever connected at once", False),
    "subscriptions": ("mosquitto_subscriptions", "Active subscriptions", False),
    "retained_messages": ("mosquitto_retained_messages", "Retained messages held", False),
    "messages_received": ("mosquitto_messages_received", "Messages received by the broker", True),
    "messages_sent": ("mosquitto_messages_sent", "Messages sent by the broker", True),
    "bytes_received": ("mosquitto_bytes_received", "Bytes received by the broker", True),
    "bytes_sent": ("mosquitto_bytes_sent", "Bytes sent by the broker", True),
    "publish_dropped": ("mosquitto_publish_dropped", "Messages the broker dropped (queues full)", True),
}


class BridgeCollector(Collector):
    def __init__(
        self, counters: Counters, stats: Callable[[], dict[str, Any]], connected: Callable[[], bool]
    ):
        self.counters = counters
        self.stats = stats
        self.connected = connected

    def collect(self) -> Iterator[Metric]:
        c = self.counters.snapshot()
        for name, help_text in (
            ("received", "MQTT messages received by the bridge"),
            ("forwarded", "Messages written to Redis"),
            ("dropped", "Messages dropped (queue full or Redis unreachable)"),
            ("system", "$SYS messages read for the broker stats and not forwarded"),
        ):
            yield CounterMetricFamily(f"mqtt_bridge_messages_{name}", help_text, value=c[name])
        yield CounterMetricFamily(
            "mqtt_bridge_reconnects", "Reconnections to the broker", value=c["reconnects"]
        )
        commands = CounterMetricFamily("mqtt_bridge_commands", "Commands answered", labels=["result"])
        commands.add_metric(["ok"], c["commands_ok"])
        commands.add_metric(["failed"], c["commands_failed"])
        yield commands
        yield GaugeMetricFamily(
            "mqtt_bridge_queue_depth", "Messages waiting for Redis", value=c["queue_depth"]
        )
        yield CounterMetricFamily(
            "mqtt_bridge_redis_values_rejected",
            "Values found damaged in Redis (wrong type, out of range) and replaced",
            value=REJECTED.count,
        )
        yield GaugeMetricFamily(
            "mqtt_bridge_broker_connected", "1 when connected to the broker", value=int(self.connected())
        )
        data = self.stats()
        for field, (name, help_text, is_counter) in _BROKER.items():
            value = data.get(field)
            if isinstance(value, int | float):
                family = CounterMetricFamily if is_counter else GaugeMetricFamily
                yield family(name, help_text, value=value)


def serve(port: int, collector: BridgeCollector, host: str = "0.0.0.0") -> None:  # noqa: S104 (a metrics port is meant to be scraped)
    registry = CollectorRegistry()
    registry.register(collector)
    start_http_server(port, addr=host, registry=registry)
    logger.info("Prometheus metrics on port %d", port)
