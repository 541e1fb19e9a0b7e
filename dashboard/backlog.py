"""How much this worker holds for one browser, queued for its WebSocket but not yet written.

Engine.IO queues every packet per client without a limit; a stalled tab (or a slow link) would
let that queue grow until the worker runs out of memory. The relay asks this before each frame
and withholds frames from a client that is over ``DASHBOARD_CLIENT_BUFFER``.
"""

from __future__ import annotations

from typing import Any

from flask_socketio import SocketIO

NAMESPACE = "/"


class SocketBacklog:
    def __init__(self, socketio: SocketIO):
        self.socketio = socketio

    def __call__(self, sid: str) -> int:
        """Bytes queued for this Socket.IO client (0 when it is unknown or already gone)."""
        server: Any = self.socketio.server
        if server is None:
            return 0
        eio_sid = server.manager.eio_sid_from_sid(sid, NAMESPACE)
        socket = server.eio.sockets.get(eio_sid) if eio_sid is not None else None
        # Engine.IO's per-client queue (a gevent or stdlib queue); ``.queue`` is its deque.
        pending = getattr(getattr(socket, "queue", None), "queue", None)
        if pending is None:
            return 0
        return sum(_packet_size(packet) for packet in list(pending))


def _packet_size(packet: Any) -> int:
    data = getattr(packet, "data", None)
    return len(data) if isinstance(data, str | bytes) else 0
