"""Delete all on a big SQLite file, through a real server: the API's answer, then the writer's
freeing of what it set aside (each step timed in the server), and a delivery's latency meanwhile.

The file is one bench/scale.py filled and kept (`scale.py -n 1000000 --keep --db FILE`); it is
emptied by the run. The server runs in a child process (`--max 0 --disable-checks`), whose
writer reports each freeing step's time (BEGIN to COMMIT). The client delivers a message over
SMTP (one open connection) every --every seconds, before the delete (the baseline) and until
the freeing is done, timing each DATA to its 250.

    .venv/bin/python bench/deleteall.py --db FILE [--cold] [--every 0.25]

--cold first drops the file's pages from the OS cache (posix_fadvise, this file's alone), as
after a reboot or when the file does not fit in memory.

    .venv/bin/python bench/deleteall.py --db FILE --tables

--tables changes nothing: it times what emptying each table costs (the old delete all's
statements, and the new one's renames), each in a transaction rolled back, from a cold cache
and again warm.
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
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MESSAGE = (
    b"From: Probe <probe@example.com>\r\nTo: user@example.org\r\nSubject: probe\r\n\r\n"
    b"A delivery timed while the freeing runs.\r\n"
)


def serve(db: str) -> int:
    """The child: the CLI's server, its freeing steps timed and printed as they commit."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(BENCH))
    from ingest import report_ready

    from mailpit_py import cli
    from mailpit_py.store import drain

    step = drain.Drain.drain_step

    def timed(self: drain.Drain) -> None:
        due = self.drain_waiting() and time.monotonic() >= self._drain_after
        table = self._aside[0].split("_", 2)[2] if due and self._aside else "-"
        started = time.perf_counter()
        step(self)
        if due:
            took = time.perf_counter() - started
            print(f"STEP {took:.6f} {int(not self.drain_waiting())} {table}", flush=True)

    drain.Drain.drain_step = timed  # type: ignore[method-assign]
    report_ready()
    args = ["-s", "127.0.0.1:0", "-l", "127.0.0.1:0", "--database", db]
    return cli.main([*args, "--max", "0", "--disable-checks"])


# What emptying costs, statement by statement: the old delete all freed every table in its
# transaction (the triggers dropped first, so each DELETE truncates); the new one renames the
# blob tables aside (drain.set_aside) and frees the rest.
TABLE_STEPS = (
    ("messages", "DELETE FROM messages"),
    ("message_data", "DELETE FROM message_data"),
    ("parts", "DELETE FROM parts"),
    ("headers", "DELETE FROM headers"),
    (
        "tags, message_checks, imap_flags",
        "DELETE FROM tags; DELETE FROM message_checks; DELETE FROM imap_flags",
    ),
    ("messages_tri (drop)", "DROP TABLE messages_tri"),
    ("messages_fts (drop)", "DROP TABLE messages_fts"),
)


def time_tables(db: str) -> None:
    """Each table's emptying, in a transaction rolled back: cold (the file evicted), then warm."""
    import sqlite3

    sys.path.insert(0, str(REPO))
    from mailpit_py.store.drain import set_aside
    from mailpit_py.store.messages import SET_ASIDE
    from mailpit_py.store.schema import COUNTER_TRIGGER_NAMES, MAILBOX_TRIGGER_NAMES

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA secure_delete=0")  # as the store's connections
    triggers = [f"DROP TRIGGER {n}" for n in (*COUNTER_TRIGGER_NAMES, *MAILBOX_TRIGGER_NAMES)]
    steps = [
        *TABLE_STEPS,
        ("the renames (every table set aside)", None),
    ]
    for label, sql in steps:
        times = []
        for cold in (True, False):
            if cold:
                evict(db)
            conn.execute("BEGIN IMMEDIATE")
            for statement in triggers:
                conn.execute(statement)
            t = time.perf_counter()
            if sql is None:
                set_aside(conn, SET_ASIDE)
            else:
                for statement in sql.split("; "):
                    conn.execute(statement)
            times.append(time.perf_counter() - t)
            conn.execute("ROLLBACK")
        print(f"  {label:<34} cold {times[0]:7.2f} s, warm {times[1]:7.2f} s", flush=True)
    conn.close()


def evict(path: str) -> None:
    for name in (path, path + "-wal"):
        try:
            fd = os.open(name, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class Server:
    def __init__(self, db: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", db],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            raise SystemExit(f"the server did not start: {line!r}")
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        self.smtp_port = int(fields["port"])
        self.api = fields["web"].rstrip("/") + "/api/v1"
        self.steps: list[float] = []
        self.tables: dict[str, list[float]] = {}
        self.drained = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("STEP "):
                _, took, done, table = line.split()
                self.steps.append(float(took))
                self.tables.setdefault(table, []).append(float(took))
                if done == "1":
                    self.drained.set()

    def call(self, method: str, path: str) -> bytes:
        req = urllib.request.Request(self.api + path, method=method)
        with urllib.request.urlopen(req, timeout=600) as resp:
            return bytes(resp.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def ms(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"n={len(values)} median {statistics.median(values) * 1000:.1f} ms, "
        f"p95 {p95 * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="a file bench/scale.py filled (--keep)")
    parser.add_argument("--cold", action="store_true", help="drop the file from the OS cache")
    parser.add_argument("--every", type=float, default=0.25, help="seconds between deliveries")
    parser.add_argument("--tables", action="store_true", help="time each table's emptying")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if not args.db or not os.path.isfile(args.db):
        parser.error(f"no such file: {args.db} (fill one with bench/scale.py --keep)")
    size = os.path.getsize(args.db)
    if args.tables:
        print(f"each table's emptying, rolled back ({args.db}, {size / 1e6:,.0f} MB):")
        time_tables(args.db)
        return 0
    started = time.perf_counter()
    server = Server(args.db)
    print(f"server up in {time.perf_counter() - started:.1f} s, file {size / 1e6:,.0f} MB")
    try:
        info = json.loads(server.call("GET", "/info"))
        print(f"  messages {info['Messages']:,}, DatabaseSize {info['DatabaseSize'] / 1e6:,.0f} MB")
        smtp = smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=600)
        pause = threading.Event()

        def deliver() -> float:
            t = time.perf_counter()
            smtp.sendmail("probe@example.com", ["user@example.org"], MESSAGE)
            return time.perf_counter() - t

        before = []
        for _ in range(8):
            before.append(deliver())
            pause.wait(args.every)
        print(f"  delivery before the delete: {ms(before)}")
        if args.cold:
            evict(args.db)
        t = time.perf_counter()
        server.call("DELETE", "/messages")
        answered = time.perf_counter()
        print(f"  DELETE /api/v1/messages answered in {answered - t:.2f} s")
        during = []
        while not server.drained.is_set():
            during.append(deliver())
            pause.wait(args.every)
        drained = time.perf_counter()
        smtp.quit()
        steps = server.steps
        print(
            f"  freeing done {drained - answered:.1f} s after the answer: {len(steps)} steps, "
            f"{sum(steps):.1f} s in them; a step {ms(steps)}"
        )
        for table, took in server.tables.items():
            print(f"    {table:<16} {sum(took):6.1f} s: {ms(took)}")
        print(f"  delivery during the freeing: {ms(during)}")
        info = json.loads(server.call("GET", "/info"))
        size_mb = info["DatabaseSize"] / 1e6
        print(f"  after: messages {info['Messages']}, DatabaseSize {size_mb:,.0f} MB")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
