"""Prometheus metrics of one dashboard worker, in a registry of its own.

A registry per app (not prometheus-client's global one) so tests can build many apps, and
so /metrics shows only the dashboard's figures. Each worker reports its own; Prometheus
sums them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bridge.contract.redis_values import REJECTED

CONTENT_TYPE = CONTENT_TYPE_LATEST


class DashboardMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.socket_clients = Gauge(
            "mqtt_dashboard_socket_clients",
            "Socket.IO clients connected to this worker",
            registry=self.registry,
        )
        self.frames_sent = Counter(
            "mqtt_dashboard_frames_sent_total",
            "mqtt_messages frames sent to browsers (one per client per frame)",
            registry=self.registry,
        )
        self.frames_withheld = Counter(
            "mqtt_dashboard_frames_withheld_total",
            "frames not sent to a client with more than DASHBOARD_CLIENT_BUFFER bytes queued "
            "(its messages are counted as skipped in its next frame)",
            registry=self.registry,
        )
        self.messages_sent = Counter(
            "mqtt_dashboard_messages_sent_total",
            "MQTT messages sent to browsers inside frames (counted per client)",
            registry=self.registry,
        )
        self.messages_skipped = Counter(
            "mqtt_dashboard_messages_skipped_total",
            "MQTT messages left out of full frames (counted per client)",
            registry=self.registry,
        )
        self.relay_received = Counter(
            "mqtt_dashboard_relay_received_total",
            "messages this worker's relay received from Redis pub/sub",
            registry=self.registry,
        )
        self.relay_invalid = Counter(
            "mqtt_dashboard_relay_invalid_total",
            "messages from Redis that were not contract JSON and were dropped",
            registry=self.registry,
        )
        self.relay_reconnects = Counter(
            "mqtt_dashboard_relay_reconnects_total",
            "times this worker's relay reconnected to Redis after losing it",
            registry=self.registry,
        )
        self.relay_connected = Gauge(
            "mqtt_dashboard_relay_connected",
            "1 while this worker's relay is subscribed to Redis",
            registry=self.registry,
        )
        self.redis_values_rejected = Gauge(
            "mqtt_dashboard_redis_values_rejected",
            "values this worker found damaged in Redis (wrong type, out of range) and did not use",
            registry=self.registry,
        )
        self.redis_values_rejected.set_function(lambda: REJECTED.count)
        self.commands = Counter(
            "mqtt_dashboard_commands_total",
            "commands sent to the bridge, by outcome",
            ["outcome"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
