#!/usr/bin/env python3
"""Two mailpit_py instances on one PostgreSQL database against one: ingest and event latency.

Throughput: N messages over C SMTP sessions (bench/smtpload.py) sent to one instance, then the
same load split in halves sent at once to two instances on the same database; msgs/s is N over
the wall time until the last half finished, and every message is counted in the database
afterwards (a run that lost one fails). Event latency: single messages sent one at a time to
instance A, timed from A's 250 to the websocket `new` frame at instance B (LISTEN/NOTIFY
between them), median and p95; with one instance, to A's own websocket for comparison.

    .venv/bin/python bench/instances.py [--database postgresql://...] [-n 4000] [-c 8]
        [--events 200] [--repeat 1]

Without --database a PostgreSQL cluster of its own is started (tests/pgserver.py: fsync off,
as the test suite runs it), with a fresh database per run. With --database, that database is
emptied (DELETE through the API) before each run. Both instances and PostgreSQL share this
machine's cores, so on 2 cores a second instance can only add what the first left idle.
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import REPO, Mailpit, start_mailpit
from simple_websocket import Client

SMTPLOAD = Path(__file__).resolve().parent / "smtpload.py"


def api(server: Mailpit, path: str, method: str = "GET") -> object:
    req = urllib.request.Request(server.url + path, method=method)
    with urllib.request.urlopen(req, timeout=60) as resp:
        raw = resp.read()
    return json.loads(raw) if raw.strip().startswith(b"{") else raw


def total(server: Mailpit) -> int:
    got = api(server, "api/v1/messages?limit=1")
    assert isinstance(got, dict)
    return int(got["total"])


@contextmanager
def databases(url: str | None) -> Iterator[Callable[[], str]]:
    """A function giving an empty database's URL for each run."""
    if url:
        yield lambda: url
        return
    sys.path.insert(0, str(REPO / "tests"))
    from pgserver import start_server  # type: ignore[import-not-found]  # (tests/ on the path)

    pg = start_server()
    try:
        yield lambda: pg.url(pg.create_database())
    finally:
        pg.close()


@contextmanager
def instances(url: str, count: int) -> Iterator[list[Mailpit]]:
    started: list[Mailpit] = []
    try:
        for _ in range(count):  # one after the other: the first creates the schema
            started.append(start_mailpit("--database", url, "--max", "0"))
        api(started[0], "api/v1/messages", "DELETE")
        yield started
    finally:
        for server in started:
            server.stop()


def smtpload(server: Mailpit, n: int, c: int, size: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(SMTPLOAD), "127.0.0.1", str(server.port), "-n", str(n)]
    cmd += ["-c", str(c), "--size", str(size)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def ingest(servers: list[Mailpit], n: int, c: int, size: int) -> float:
    """msgs/s of N messages split evenly over the servers' SMTP listeners at once."""
    share, sessions = n // len(servers), max(1, c // len(servers))
    began = time.perf_counter()
    loads = [smtpload(server, share, sessions, size) for server in servers]
    for proc in loads:
        out, _ = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            sys.exit(f"smtpload failed: {out.strip()}")
    took = time.perf_counter() - began
    sent = share * len(servers)
    stored = total(servers[0])
    if stored != sent:
        sys.exit(f"{sent} messages acknowledged, {stored} stored: a message was lost")
    return sent / took


class NewFrames:
    """A websocket client noting when each `new` frame arrived, by subject."""

    def __init__(self, server: Mailpit) -> None:
        self.ws = Client.connect(server.url.replace("http://", "ws://") + "api/events")
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                raw = self.ws.receive(timeout=60)
            except Exception:  # closed
                return
            now = time.perf_counter()
            frame = json.loads(raw or "{}")
            if frame.get("Type") == "new":
                with self.cond:
                    self.arrived[frame["Data"]["Subject"]] = now
                    self.cond.notify_all()

    def wait(self, subject: str, timeout: float = 30.0) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: subject in self.arrived, timeout=timeout):
                sys.exit(f"no `new` frame for {subject!r} within {timeout} s")
            return self.arrived[subject]

    def close(self) -> None:
        self.ws.close()


def event_latency(sender: Mailpit, watcher: Mailpit, count: int) -> tuple[float, float]:
    """(median, p95) ms from the sender's 250 to the watcher's websocket `new` frame."""
    frames = NewFrames(watcher)
    waits: list[float] = []
    try:
        with smtplib.SMTP("127.0.0.1", sender.port, timeout=30) as client:
            for i in range(count):
                subject = f"latency {os.getpid()} {i}"
                msg = f"From: a@example.com\r\nTo: b@example.org\r\nSubject: {subject}\r\n\r\nx\r\n"
                client.sendmail("a@example.com", ["b@example.org"], msg.encode())
                acked = time.perf_counter()
                waits.append((frames.wait(subject) - acked) * 1000)
    finally:
        frames.close()
    waits.sort()
    return statistics.median(waits), waits[min(len(waits) - 1, int(len(waits) * 0.95))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--database", help="postgresql://... (default: a cluster of its own)")
    ap.add_argument("-n", type=int, default=4000, help="messages per throughput run (4000)")
    ap.add_argument("-c", type=int, default=8, help="SMTP sessions in all (8)")
    ap.add_argument("--size", type=int, default=2000, help="approximate message size (2000)")
    ap.add_argument("--events", type=int, default=200, help="messages timed for latency (200)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each mode (1)")
    args = ap.parse_args(argv)
    print(f"cores: {os.cpu_count()}, n={args.n}, sessions={args.c}, size={args.size}")
    with databases(args.database) as fresh:
        for rep in range(args.repeat):
            with instances(fresh(), 1) as (a,):
                one = ingest([a], args.n, args.c, args.size)
                api(a, "api/v1/messages", "DELETE")
                own = event_latency(a, a, args.events)
            with instances(fresh(), 2) as (a, b):
                two = ingest([a, b], args.n, args.c, args.size)
                api(a, "api/v1/messages", "DELETE")
                other = event_latency(a, b, args.events)
            print(
                f"run {rep + 1}: one instance {one:.0f} msgs/s, two {two:.0f} msgs/s "
                f"({two / one:.2f}x); 250 -> new frame: same instance median {own[0]:.1f} ms "
                f"p95 {own[1]:.1f} ms, other instance median {other[0]:.1f} ms "
                f"p95 {other[1]:.1f} ms",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
