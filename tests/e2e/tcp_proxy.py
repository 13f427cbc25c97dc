"""A loopback TCP forwarder that a test can cut, to partition the operator from a site."""

from __future__ import annotations

import contextlib
import socket
import threading


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        self.open = True
        self._socks: set[socket.socket] = set()
        # Connections left open but silent by a black-hole cut; they never carry data again.
        self._silenced: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # the 5 s were for connecting; a quiet watch is fine
            with self._lock:
                self._socks |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if src in self._silenced:
                    continue  # dropped, like packets into a black hole
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self, *, blackhole: bool = False) -> None:
        """Sever the link and refuse new connections until `restore`.

        By default every connection is reset, as when a peer goes away. With
        `blackhole`, they stay open and silent for good, as when a partition drops
        packets and the state of the old connections is lost: their readers learn
        nothing until their own timeouts.
        """
        self.open = False
        with self._lock:
            socks = list(self._socks)
            self._socks.clear()
            if blackhole:
                self._silenced.update(socks)
                return
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
                s.close()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()
