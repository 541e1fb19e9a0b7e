"""mqtt-redis-bridge: one MQTT connection into Redis pub/sub, streams and keys."""

__version__ = "0.1.0"
