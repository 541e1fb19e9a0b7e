"""The project's exceptions, in one small tree.

    BridgeError                 base of everything raised on purpose here
    ├── ConfigError             a setting is missing or malformed (names the variable)
    └── InvalidCommand          a command or API body breaks the Redis contract
        (its message is shown to people as is, so it must explain the problem)

Built-in ConnectionError and TimeoutError are never shadowed.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base class for errors raised deliberately by the bridge and the dashboard."""


class ConfigError(BridgeError):
    """A configuration value is missing or malformed; the message names the variable."""


class InvalidCommand(BridgeError):
    """A command (from Redis or the REST API) that cannot be carried out as given.

    ``command_id`` and ``command`` carry what could be read of the command before it
    failed, so the answer can still name it.
    """

    def __init__(self, message: str, *, command_id: str | None = None, command: str | None = None):
        super().__init__(message)
        self.command_id = command_id
        self.command = command
