"""A TCP proxy in front of redis-server that can lose one reply, as a flaky network does."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.helpers import free_port


class ReplyDroppingProxy:
    """Forwards every connection to Redis. Once armed with ``drop_reply_after(n)``, the first
    connection that sends a request of more than ``n`` bytes gets it through to Redis (which runs
    it) but never sees the reply: the proxy closes that connection instead."""

    def __init__(self, redis_port: int):
        self.redis_port = redis_port
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._armed_at: int | None = None
        self._lock = threading.Lock()
        self.dropped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def drop_reply_after(self, request_bytes: int) -> None:
        with self._lock:
            self._armed_at = request_bytes

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.redis_port))
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
                with self._lock:
                    lose = self._armed_at is not None and sent[0] > self._armed_at
                    if lose:
                        self._armed_at = None
                if lose:
                    self.dropped.set()
                    break
                sent[0] = 0
                client.sendall(data)
        self._close(client, server)

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closing = True
        self._listener.close()
        self._close(*self._sockets)
