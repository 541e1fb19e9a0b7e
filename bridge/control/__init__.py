"""Control: the commands that arrive on ``mqtt:commands`` and their handlers.

Publish/subscribe, the broker connection (test, reconnect, configure), subscription pause and
per-filter statistics, clearing retained messages, and dynamic security. Each command is answered
once on ``mqtt:commands:results``. The top part: it may use insight, the group, the data path and
the contract.
"""
