"""A TCP proxy in front of a real redis-server that can pretend to be an older Redis.

With ``old`` set, ``INFO`` answers say ``redis_version:6.`` instead of ``7.`` (same length, so
the RESP framing holds); everything else passes through untouched. ``drop_connections()``
closes every client connection, as a Redis restart would.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.helpers import free_port

REAL = b"redis_version:7."
OLD = b"redis_version:6."


class OldRedisProxy:
    def __init__(self, upstream_port: int, *, old: bool = True):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.old = old
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_server and self.old:
                    data = data.replace(REAL, OLD)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def drop_connections(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.drop_connections()
