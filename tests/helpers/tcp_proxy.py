"""A loopback TCP proxy a test can cut and restore: a broker "going away" for one
server without stopping the Redis every other test (and engineer) shares."""

from __future__ import annotations

import selectors
import socket
import threading
from typing import Self


class TcpProxy(threading.Thread):
    """Forward 127.0.0.1:<port> to ``upstream``; ``cut()`` closes every connection
    and turns new ones away (accepted, then closed at once) until ``restore()``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.cutting = False
        self.stopped = False
        self.pairs: dict[socket.socket, socket.socket] = {}
        self.lock = threading.Lock()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped = True
        self.join(5)

    def cut(self) -> None:
        with self.lock:
            self.cutting = True

    def restore(self) -> None:
        with self.lock:
            self.cutting = False

    def _close(self, sock: socket.socket) -> None:
        other = self.pairs.pop(sock, None)
        for s in (sock, other):
            if s is None:
                continue
            self.pairs.pop(s, None)
            try:
                self.selector.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()

    def run(self) -> None:
        try:
            while not self.stopped:
                with self.lock:
                    cutting = self.cutting
                if cutting:
                    for sock in list(self.pairs):
                        self._close(sock)
                for key, _ in self.selector.select(0.02):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self.listener:
                        client, _ = self.listener.accept()
                        if cutting:
                            client.close()
                            continue
                        server = socket.create_connection(self.upstream, timeout=2)
                        self.pairs[client], self.pairs[server] = server, client
                        for s in (client, server):
                            s.setblocking(True)
                            self.selector.register(s, selectors.EVENT_READ)
                        continue
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    other = self.pairs.get(sock)
                    if not data or other is None:
                        self._close(sock)
                        continue
                    other.sendall(data)
        finally:
            for sock in list(self.pairs):
                self._close(sock)
            self.selector.close()
            self.listener.close()
