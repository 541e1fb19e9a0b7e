"""TCP proxies in front of a real redis-server, for faults a real Redis will not make on demand.

``RedisProxy`` forwards every byte both ways and can drop every connection, as a restart would;
its subclasses change what comes back: ``ReplyDroppingProxy`` loses one reply (a flaky network),
``OldRedisProxy`` pretends to be Redis 6.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.helpers import free_port


class RedisProxy:
    def __init__(self, redis_port: int):
        self.redis_port = redis_port
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    # What subclasses change: the bytes a reply carries, or None to lose it (and the connection).
    def reply(self, data: bytes, request_bytes: int) -> bytes | None:
        return data

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.redis_port), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            sent = [0]  # bytes this connection sent since its last reply
            threading.Thread(target=self._upstream, args=(client, server, sent), daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client, sent), daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket, sent: list[int]) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                sent[0] += len(data)
                server.sendall(data)
        self._close(client, server)

    def _downstream(self, server: socket.socket, client: socket.socket, sent: list[int]) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                passed = self.reply(data, sent[0])
                if passed is None:
                    break
                sent[0] = 0
                client.sendall(passed)
        self._close(client, server)

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def drop_connections(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        self._close(*sockets)

    def close(self) -> None:
        self._closing = True
        self._listener.close()
        self.drop_connections()


class ReplyDroppingProxy(RedisProxy):
    """Once armed with ``drop_reply_after(n)``, the first connection that sends a request of more
    than ``n`` bytes gets it through to Redis (which runs it) but never sees the reply: the proxy
    closes that connection instead."""

    def __init__(self, redis_port: int):
        self._armed_at: int | None = None
        self.dropped = threading.Event()
        super().__init__(redis_port)

    def drop_reply_after(self, request_bytes: int) -> None:
        with self._lock:
            self._armed_at = request_bytes

    def reply(self, data: bytes, request_bytes: int) -> bytes | None:
        with self._lock:
            lose = self._armed_at is not None and request_bytes > self._armed_at
            if lose:
                self._armed_at = None
        if lose:
            self.dropped.set()
            return None
        return data


class OldRedisProxy(RedisProxy):
    """With ``old`` set, ``INFO`` answers say ``redis_version:6.`` instead of ``7.`` (same length,
    so the RESP framing holds); everything else passes through untouched."""

    REAL = b"redis_version:7."
    OLD = b"redis_version:6."

    def __init__(self, redis_port: int, *, old: bool = True):
        self.old = old
        super().__init__(redis_port)

    def reply(self, data: bytes, request_bytes: int) -> bytes | None:
        return data.replace(self.REAL, self.OLD) if self.old else data
