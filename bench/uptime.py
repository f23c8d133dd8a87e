"""Long uptime: many HTTP requests, websocket connects and SMTP messages; resources must stay flat.

A catcher runs for days: a container healthcheck hits /readyz every few seconds, the UI's tab
reconnects its websocket, tests poll the API, and mail keeps arriving. Anything held per request,
per connection or per message shows up as descriptors, threads or memory that only grow. This
bench starts mailpit_py as users run it (the CLI with its default settings: `--max 500`
retention, the background checks, one log line per message; only the listeners are on loopback
and port 0, and the database in a temporary directory) and, in `--rounds` equal rounds, sends it:

* HTTP requests, a new connection each (as curl, a healthcheck or a test's requests do): the
  message list, a search, one message, its headers, /readyz and /api/v1/info in turn, from 4
  threads at once;
* websocket sessions on /api/events from 2 threads: handshake, the first frame, a close
  handshake (as a browser tab that goes away);
* SMTP messages through bench/pace.py in its own process (8 connections, a new session every 100
  messages), at `--rate` per second.

All three run at once in each round. After each round, once the server's CPU is quiet (its
background checks done), it samples the server's descriptors (/proc/PID/fd), threads and
resident memory (VmRSS). Totals by default: 50,000 requests, 5,000 websocket connects, 100,000
messages.

Verdict, with the first two rounds as warm-up ("early" = rounds 2-3, "late" = the last half):
descriptors and threads flat when they rise by at most 5 within the late rounds (a pool may step
up once while it fills: the HTTP server starts a thread only when all are busy; a leak climbs
round after round) and stay within the pools' bounds of the early figure (+16 descriptors: 8
idle read connections, 2 each; +64 threads); RSS flat when max(late) <= 1.10 * max(early).
Exit 1 if anything grew, a request failed, a message was lost or the server died.

    .venv/bin/python bench/uptime.py [--requests 50000] [--websockets 5000] [--messages 100000]
        [--rounds 10] [--rate 1500]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from _common import (
    HOST,
    cpu_seconds,
    finish_paced,
    kept_after,
    proc_fds,
    proc_kb,
    proc_threads,
    start_mailpit,
    start_paced,
)

HTTP_THREADS = 4
WS_THREADS = 2
SMTP_CONNECTIONS = 8
RECONNECT_EVERY = 100


@dataclass(frozen=True)
class Sample:
    round: int
    fds: int
    threads: int
    rss_mb: float


class Load:
    """Counts what the HTTP and websocket clients did, across their threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.websockets = 0
        self.errors: list[str] = []

    def error(self, what: str) -> None:
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(what)


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_worker(port: int, prefix: str, count: int, load: Load) -> None:
    paths = [
        "api/v1/messages?limit=50",
        "api/v1/search?query=ipsum&limit=20",
        "readyz",
        "api/v1/info",
    ]
    msg_id = ""
    for i in range(count):
        if i % 6 == 4 and msg_id:
            path = f"api/v1/message/{msg_id}"
        elif i % 6 == 5 and msg_id:
            path = f"api/v1/message/{msg_id}/headers"
        else:
            path = paths[i % len(paths)]
        try:
            status, body = get(port, prefix + path)
        except OSError as exc:
            load.error(f"{path}: {exc}")
            continue
        if status != 200:
            load.error(f"{path}: HTTP {status} {body[:200]!r}")
            continue
        if path.startswith("api/v1/messages"):
            messages = json.loads(body)["messages"]
            msg_id = messages[len(messages) // 2]["ID"] if messages else ""
        with load.lock:
            load.requests += 1


class _Frames:
    """Reads the server's (unmasked) websocket frames from a socket."""

    def __init__(self, sock: socket.socket, buffered: bytes) -> None:
        self.sock = sock
        self.buf = buffered

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("the server closed the connection mid-frame")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def next_opcode(self) -> int:
        b0, b1 = self._take(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(self._take(2), "big")
        elif n == 127:
            n = int.from_bytes(self._take(8), "big")
        self._take(n)
        return b0 & 0x0F


def ws_connect(port: int, prefix: str) -> None:
    """One websocket session as a browser tab has it: the handshake, the first frame the server
    sends (its stats), a close, the server's close in answer, then the TCP close."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sock.sendall(
            (
                f"GET {prefix}api/events HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise OSError("closed during the handshake")
            data += chunk
        if not data.startswith(b"HTTP/1.1 101"):
            raise OSError(f"no upgrade: {data[:100]!r}")
        frames = _Frames(sock, data.partition(b"\r\n\r\n")[2])
        if frames.next_opcode() != 0x1:
            raise OSError("the first frame is not text")
        mask = os.urandom(4)  # clients mask what they send
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"\x03\xe8"))
        sock.sendall(b"\x88\x82" + mask + payload)
        while frames.next_opcode() != 0x8:  # events that were on their way, then the close
            pass


def ws_worker(port: int, prefix: str, count: int, load: Load) -> None:
    for _ in range(count):
        try:
            ws_connect(port, prefix)
        except OSError as exc:
            load.error(f"websocket: {exc}")
            continue
        with load.lock:
            load.websockets += 1


def wait_quiet(pid: int, limit: float = 60.0) -> None:
    """Until the server used under 5% of a core over half a second (its checks are done)."""
    deadline = time.monotonic() + limit
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now - last < 0.025:
            return
        last = now


def stored_total(port: int, prefix: str) -> int:
    status, body = get(port, prefix + "api/v1/messages?limit=1")
    return int(json.loads(body)["total"]) if status == 200 else -1


def judge(samples: list[Sample]) -> list[tuple[str, str, bool]]:
    early = samples[2:4] or samples[-1:]
    late = samples[len(samples) // 2 :]
    verdicts = []
    for name, attr, pool in (("open fds", "fds", 16), ("threads", "threads", 64)):
        # A pool may step up once while it fills (the HTTP server's threads, the idle read
        # connections, two descriptors each), never past its bound; a leak climbs round after
        # round. So: no rise of more than 5 within the late rounds, and within the pool's bound.
        ev, lv = [getattr(s, attr) for s in early], [getattr(s, attr) for s in late]
        rise = lv[-1] - min(lv)
        flat = rise <= 5 and max(lv) <= max(ev) + pool
        verdicts.append((name, f"max {max(ev)} -> {max(lv)}, late rise {rise}", flat))
    e, lt = max(s.rss_mb for s in early), max(s.rss_mb for s in late)
    per_10k = (late[-1].rss_mb - late[0].rss_mb) / max(1, len(late) - 1)
    verdicts.append(
        (
            "RSS MB",
            f"max {e:.1f} -> {lt:.1f} ({lt / e:.2f}x), late {per_10k:+.2f} MB a round",
            lt <= 1.10 * e,
        )
    )
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50_000, help="HTTP requests (50,000)")
    parser.add_argument("--websockets", type=int, default=5_000, help="websocket connects (5,000)")
    parser.add_argument("--messages", type=int, default=100_000, help="SMTP messages (100,000)")
    parser.add_argument("--rounds", type=int, default=10, help="sample after each (10, >= 5)")
    parser.add_argument("--rate", type=float, default=1500.0, help="SMTP messages/s asked (1500)")
    args = parser.parse_args()
    if args.rounds < 5:
        parser.error("--rounds must be at least 5: two are warm-up, and the verdict compares")
    tmp = tempfile.TemporaryDirectory(prefix="mailpit-uptime-")
    server = start_mailpit("-d", str(Path(tmp.name) / "uptime.db"))
    url = urlsplit(server.url)
    port, prefix = url.port or 80, url.path
    print(
        f"uptime: {args.requests} HTTP requests, {args.websockets} websocket connects, "
        f"{args.messages} SMTP messages in {args.rounds} rounds; default settings; "
        f"server pid {server.pid}",
        flush=True,
    )
    print(f"{'round':>5} {'fds':>5} {'threads':>7} {'RSS MB':>7} {'sent':>7} {'round s':>7}")
    load = Load()
    samples: list[Sample] = []
    sent = smtp_errors = 0
    died = False
    try:
        for r in range(args.rounds):
            t0 = time.monotonic()
            n_msgs = args.messages // args.rounds
            sender = start_paced(
                server.port,
                args.rate,
                n_msgs / args.rate,
                SMTP_CONNECTIONS,
                2000,
                RECONNECT_EVERY,
            )
            per_thread = args.requests // args.rounds // HTTP_THREADS
            workers = [
                threading.Thread(target=http_worker, args=(port, prefix, per_thread, load))
                for _ in range(HTTP_THREADS)
            ]
            per_ws_thread = args.websockets // args.rounds // WS_THREADS
            workers += [
                threading.Thread(target=ws_worker, args=(port, prefix, per_ws_thread, load))
                for _ in range(WS_THREADS)
            ]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            result = finish_paced(sender, timeout=n_msgs / args.rate * 5 + 120)
            sent += result.sent
            smtp_errors += result.errors
            if server.proc.poll() is not None:
                died = True
                break
            wait_quiet(server.pid)
            s = Sample(
                r + 1,
                proc_fds(server.pid),
                proc_threads(server.pid),
                proc_kb(server.pid, "VmRSS") / 1024,
            )
            samples.append(s)
            print(
                f"{s.round:>5} {s.fds:>5} {s.threads:>7} {s.rss_mb:>7.1f} {sent:>7} "
                f"{time.monotonic() - t0:>7.1f}",
                flush=True,
            )
        total = stored_total(port, prefix) if not died else -1
    finally:
        code = server.stop()
        tmp.cleanup()
    print()
    print(
        f"done: {load.requests} HTTP requests answered 200, {load.websockets} websocket sessions, "
        f"{sent} messages sent with {smtp_errors} SMTP errors; {total} kept (--max 500); "
        f"server exit status {code}"
    )
    bad = died or bool(load.errors) or smtp_errors > 0 or total != kept_after(sent, 500)
    for e in load.errors:
        print(f"  error: {e}")
    if died:
        print("SERVER DIED: " + " | ".join(server.log_tail))
        return 1
    print("warm-up: rounds 1-2; early = rounds 3-4, late = the last half")
    for what, text, flat in judge(samples):
        print(f"  {what:<9} {text:<42} {'flat' if flat else 'GROWING'}")
        bad = bad or not flat
    print("verdict: " + ("NOT FLAT or failed" if bad else "flat"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
