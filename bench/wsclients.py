"""N websocket clients on /api/events in one process, recording the IDs of `new` events in order.

Lightweight, like a browser's native websocket: raw sockets after the handshake, and the
server's (unmasked) frames parsed just enough to take the `ID` out of each `new` frame, so the
clients' own CPU blurs the server's as little as possible. Protocol with the parent: prints
`ready` once every client has its hello (`stats`) frame, so is subscribed; then reads the
number of messages sent from stdin, waits until every client has that many `new` events (or
was closed, or 60 s passed), and prints one JSON line:
{"ids": [[id, ...] per client], "closed": [close code or null per client]}.

    python bench/wsclients.py URL N    (URL like http://127.0.0.1:8025/api/events)
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

NEW = b'{"Type": "new", "Data": {"ID": "'


def connect(host: str, port: int, path: str) -> tuple[socket.socket, bytes]:
    s = socket.create_connection((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, _, rest = buf.partition(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise SystemExit(f"no websocket upgrade: {head!r}")
    while b'"Type": "stats"' not in rest:  # the hello frame: subscribed from here on
        rest += s.recv(4096)
    return s, rest


class Client:
    def __init__(self, sock: socket.socket, pending: bytes) -> None:
        self.sock = sock
        self.buf = bytearray(pending)
        self.ids: list[str] = []
        self.closed: int | None = None

    def frames(self) -> None:
        """Take every complete frame off the buffer."""
        buf, pos = self.buf, 0
        while len(buf) - pos >= 2:
            opcode, n = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                head, n = 4, int.from_bytes(buf[pos + 2 : pos + 4], "big")
            elif n == 127:
                head, n = 10, int.from_bytes(buf[pos + 2 : pos + 10], "big")
            if len(buf) - pos < head + n:
                break
            payload = bytes(buf[pos + head : pos + head + n])
            pos += head + n
            if opcode == 1 and payload.startswith(NEW):
                self.ids.append(payload[len(NEW) : payload.index(b'"', len(NEW))].decode())
            elif opcode == 8:
                self.closed = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        del buf[:pos]

    def read(self) -> None:
        self.frames()  # what arrived with the hello
        while self.closed is None:
            data = self.sock.recv(262144)
            if not data:
                self.closed = self.closed or 1006
                return
            self.buf += data
            self.frames()


def main() -> int:
    url, n = urlsplit(sys.argv[1]), int(sys.argv[2])
    assert url.hostname and url.port
    clients = [Client(*connect(url.hostname, url.port, url.path)) for _ in range(n)]
    for c in clients:
        threading.Thread(target=c.read, daemon=True).start()
    print("ready", flush=True)
    expected = int(sys.stdin.readline())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(
        len(c.ids) < expected and c.closed is None for c in clients
    ):
        time.sleep(0.05)
    print(json.dumps({"ids": [c.ids for c in clients], "closed": [c.closed for c in clients]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
