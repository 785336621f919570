"""A TCP proxy on 127.0.0.1 between a matcher and its PostgreSQL server, for network faults without
touching the server:
- frozen: it stops forwarding in both directions but keeps every connection open, as a network that hangs
  (a stalled middlebox, a black-holed route) looks to a client; new connections are accepted by the kernel
  but not served;
- cut: every open connection is dropped and new ones are refused, as a link that is down."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Iterator


class FreezableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._refusing = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        """Drops every open connection and refuses new ones until `restore`."""
        self._refusing.set()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
            self._sockets.clear()

    def restore(self) -> None:
        self._refusing.clear()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            self._flowing.wait()
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        with selectors.DefaultSelector() as selector:
            selector.register(a, selectors.EVENT_READ)
            selector.register(b, selectors.EVENT_READ)
            while not self._closed.is_set():
                if not self._flowing.is_set():
                    self._flowing.wait(0.05)
                    continue
                for key, _ in selector.select(0.05):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    if not self._flowing.is_set():
                        break  # frozen mid-way: leave the bytes where they are
                    try:
                        data = source.recv(65536)
                        if not data:
                            raise OSError("closed")
                        peer[source].sendall(data)
                    except OSError:
                        for sock in (a, b):
                            with contextlib.suppress(OSError):
                                sock.close()
                        return


@contextlib.contextmanager
def proxy_to(target_host: str, target_port: int) -> Iterator[FreezableProxy]:
    proxy = FreezableProxy(target_host, target_port)
    try:
        yield proxy
    finally:
        proxy.close()
