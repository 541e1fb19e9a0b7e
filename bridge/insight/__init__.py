"""Broker insight: what the bridge learns about the broker and tells Redis about it.

``$SYS`` statistics and their history, the client list from the broker's log lines, the topic
index, the connection status, the heartbeat and health check, Prometheus metrics, and the
housekeeping thread that owns all of it. Builds on the group, the data path and the contract.
"""
