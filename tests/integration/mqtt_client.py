"""A paho publisher for the integration tests."""

from __future__ import annotations

from collections.abc import Iterable

import paho.mqtt.client as mqtt


def publish_all(
    port: int, messages: Iterable[tuple[str, bytes]], qos: int = 1, client_id: str = "", retain: bool = False
) -> None:
    """Publish in order and return once the broker has acknowledged every message."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=qos, retain=retain) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()
