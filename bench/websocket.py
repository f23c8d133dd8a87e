"""Ingest rate with live websocket clients connected, as a ratio to the rate with none.

Starts mailpit_py (the CLI, in its own process, default temporary store, nothing pruned) and
sends the same SMTP load (8 connections reusing their sessions, ~2 KB messages, the
`bench/smtpload.py` generator in its own process) with 0 and then N websocket clients on
`/api/events`, alternating the order over `--repeat` rounds; prints the median rates and their
ratio. The clients run in their own process and count the `new` events they receive: a client
that misses one makes the run fail (exit status 1). Target (live updates must not slow ingest):
ratio >= 0.9 with 5 clients.

    .venv/bin/python bench/websocket.py [-n 3000] [--clients 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys

from _common import SMTPLOAD, cpu_seconds, start_mailpit

CLIENTS = r"""
# Lightweight clients, like a browser's native websocket: raw sockets after the handshake,
# counting `new` frames in the byte stream (server frames are unmasked) without decoding them,
# so the clients' own CPU cost does not blur the server's.
import base64, json, os, socket, sys, threading, time
from urllib.parse import urlsplit
url, n = urlsplit(sys.argv[1]), int(sys.argv[2])
NEEDLE = b'"Type": "new"'
counts = [0] * n
def connect():
    s = socket.create_connection((url.hostname, url.port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {url.path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert b" 101 " in head.split(b"\r\n")[0], head
    while b'"Type": "stats"' not in rest:  # the hello frame: subscribed from here on
        rest += s.recv(4096)
    return s
socks = [connect() for _ in range(n)]
def read(i, s):
    tail = b""
    while True:
        data = s.recv(262144)
        if not data:
            return
        chunk = tail + data
        counts[i] += chunk.count(NEEDLE)
        tail = chunk[-(len(NEEDLE) - 1):]
for i, s in enumerate(socks):
    threading.Thread(target=read, args=(i, s), daemon=True).start()
print("ready", flush=True)
expected = int(sys.stdin.readline())
deadline = time.monotonic() + 60
while min(counts) < expected and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps(counts), flush=True)
"""


def load(port: int, n: int) -> float:
    out = subprocess.run(
        [sys.executable, str(SMTPLOAD), "127.0.0.1", str(port), "-n", str(n), "-c", "8"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"rate=([\d.]+)/s", out)
    if not m:
        sys.exit(f"smtpload said: {out!r}")
    return float(m.group(1))


def with_clients(port: int, url: str, n: int, clients: int) -> tuple[float, list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CLIENTS, url + "api/events", str(clients)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "ready"
    try:
        rate = load(port, n)
        proc.stdin.write(f"{n}\n")
        proc.stdin.flush()
        counts = json.loads(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    return rate, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=3000, help="messages per run")
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = start_mailpit("-m", "0")
    proc, port, url = server.proc, server.port, server.url
    bare: list[float] = []
    live: list[float] = []
    cpu: dict[str, list[float]] = {"none": [], "ws": []}
    lost = False
    try:
        load(port, 200)  # warm-up
        for r in range(args.repeat):
            order = ("none", "ws") if r % 2 == 0 else ("ws", "none")
            for which in order:
                before = cpu_seconds(proc.pid)
                if which == "none":
                    bare.append(load(port, args.n))
                else:
                    rate, counts = with_clients(port, url, args.n, args.clients)
                    live.append(rate)
                    if min(counts) < args.n:
                        lost = True
                        print(f"clients missed events: received {counts} of {args.n}")
                cpu[which].append((cpu_seconds(proc.pid) - before) / args.n * 1e6)
    finally:
        proc.terminate()
        proc.wait(30)
    b, w = statistics.median(bare), statistics.median(live)
    cb, cw = statistics.median(cpu["none"]), statistics.median(cpu["ws"])
    print(f"{'clients':>8} {'msgs/s (median)':>16} {'server CPU us/msg':>18}")
    print(f"{0:>8} {b:>16.0f} {cb:>18.0f}")
    print(f"{args.clients:>8} {w:>16.0f} {cw:>18.0f}")
    print(f"server CPU per message with {args.clients} clients / none: {cw / cb:.2f}")
    print(f"ratio with {args.clients} websocket clients / none: {w / b:.2f} (target >= 0.90)")
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
