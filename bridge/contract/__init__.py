"""The shared part: what the bridge and the dashboard both rely on, and nothing else.

Every Redis channel and key name and the JSON shapes (``protocol``), the error tree, MQTT 5
property checks, sealed secrets, building Redis clients for standalone/Sentinel/Cluster, server
version checks, backoff, and reading the environment. It imports nothing else of this project;
the dashboard imports nothing of the bridge but this (checked by ``make lint``).
"""
