"""SMTP ingest benchmark: mailpit_py against a bare aiosmtpd sink, under the same load.

Each repetition starts two servers, each in its own subprocess (so neither shares a GIL with the
load generator nor with the other):

* ``sink``: plain aiosmtpd ``SMTP`` protocol on ``loop.create_server`` (no ``Controller``),
  whose ``handle_DATA`` answers "250 OK" and throws the message away: the reference.
* ``mailpit_py``: the real CLI entry point (``mailpit_py.cli.main``) with the settings users
  run: ``-s 127.0.0.1:0 -l 127.0.0.1:0 --enable-prometheus true`` and nothing else, so the
  default store (a temporary SQLite file), retention (``--max 500``), a log line per message
  (to a file here) and the background checks. ``--lean`` adds ``-m 0 -q`` (nothing pruned, no
  line per message), as this bench measured before. A thin wrapper prints the bound SMTP port,
  the database path and the API's URL once the server has started.
* ``mailhog`` (only with ``--mailhog PATH``): a MailHog binary given by path, with its default
  in-memory storage and log; the column is left out when no binary is given or it is missing.

Load comes from the project's generator ``bench/smtpload.py`` (or ``$MAILPIT_PY_SMTPLOAD``),
itself a separate process, in three modes:

* ``reuse``: 8 connections, each sending many messages over one session;
* ``serial``: 1 connection, one message after another;
* ``fresh``: 8 connections, a new connection (EHLO ... QUIT) for every message.

Each of the ``--repeat`` repetitions starts a new pair of servers, warms both up and runs each
mode on both back to back, alternating which goes first; the table shows the median msgs/s and
the median of the paired ratios. mailpit_py acknowledges DATA only after the
commit, so after every run the number of messages its database ever inserted (SQLite's
``sqlite_sequence`` of ``messages``, read with sqlite3 from here: retention deletes rows, never
that) must have grown by exactly the number sent; MailHog's API total likewise. The exit status
is 1 if any message was lost or any run failed.

Below the table: how busy each server's busiest thread (its event loop) was during the runs, and
mailpit_py's mean time from the end of a message's DATA to its commit (from ``/metrics``): a
loop that is far from busy while the rate is lower is waiting for commits, not computing.

Usage: .venv/bin/python bench/ingest.py [-n 2000] [--repeat 3] [--size 2000] [--warmup 200]
    [--lean] [--mailhog PATH] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import select
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from _common import HOST, REPO, SMTPLOAD, busiest_share, cpu_seconds, thread_cpu

TARGETS = ("sink", "mailpit_py")
REFERENCES = ("sink", "mailhog")  # what mailpit_py's rate is compared with, in that order


@dataclass(frozen=True)
class Mode:
    name: str
    connections: int
    fresh: bool
    label: str
    extra: tuple[str, ...] = ()  # more smtpload arguments (bench/mailboxes.py: its recipients)


MODES = (
    Mode("reuse", 8, False, "8 conns, reused sessions"),
    Mode("serial", 1, False, "1 conn, sequential"),
    Mode("fresh", 8, True, "8 conns, new conn per msg"),
)


# -- the servers under test (run in child processes) ---------------------------------------------


def _exit_on_stdin_eof(on_eof: Callable[[], None]) -> None:
    """Stop when the parent goes away (its end of our stdin closes), even if it was killed."""

    def watch() -> None:
        # os.read on the raw descriptor: a daemon thread blocked inside sys.stdin's buffered
        # reader makes interpreter shutdown abort ("could not acquire lock").
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        on_eof()

    threading.Thread(target=watch, name="stdin-eof", daemon=True).start()


class DiscardHandler:
    """aiosmtpd handler: accept every message, keep nothing."""

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


async def _serve_sink() -> None:
    import logging

    from aiosmtpd.smtp import SMTP

    # aiosmtpd logs every command at INFO; mailpit_py silences it the same way.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handler = DiscardHandler()
    server = await loop.create_server(
        # A fixed hostname: the default would call socket.getfqdn() for every connection.
        lambda: SMTP(handler, hostname="localhost", enable_SMTPUTF8=True),
        host=HOST,
        port=0,
    )
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    _exit_on_stdin_eof(lambda: loop.call_soon_threadsafe(stop.set))
    port = server.sockets[0].getsockname()[1]
    print(f"READY port={port} db=-", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def report_ready(after: Callable[[Any], None] | None = None) -> None:
    """Make the server print the READY line start_child reads once it has started (its SMTP
    port, database and API), first calling `after(server)` when given (bench/reuseport.py)."""
    from mailpit_py.server import Server

    original_start = Server.start

    def start_and_report(self: Server) -> Server:
        original_start(self)
        assert self.mailbox is not None
        if after is not None:
            after(self)
        _host, port = self.smtp_address
        web = self.http_url if self.http is not None else "-"
        print(f"READY port={port} db={self.mailbox.database_path} web={web}", flush=True)
        return self

    Server.start = start_and_report  # type: ignore[method-assign]


def _serve_mailpit(tree: Path, lean: bool) -> int:
    # The checkout to run: this one, or bench/ab.py's other revision (its code, these settings).
    sys.path.insert(0, str(tree))
    from mailpit_py import cli
    from mailpit_py.config.settings import field_names

    report_ready()
    # cli.main turns SIGTERM into a clean stop (in-flight commits, temp file removed).
    _exit_on_stdin_eof(lambda: os.kill(os.getpid(), signal.SIGTERM))
    argv = ["-s", f"{HOST}:0"]
    if lean:
        argv += ["-m", "0", "-q"]  # nothing pruned, no line per message
    if "enable_prometheus" in field_names():
        # /metrics on the UI listener, for the DATA-to-commit latency (scraped between runs;
        # the counters behind it are kept whether or not the endpoint is on).
        argv += ["--enable-prometheus", "true"]
    if "http_addr" in field_names():
        # The web UI/API listener: loopback and a free port, never the fixed default 8025.
        argv += ["-l", f"{HOST}:0"]
    return cli.main(argv)


def serve(kind: str, tree: Path, lean: bool) -> int:
    if kind == "sink":
        asyncio.run(_serve_sink())
        return 0
    return _serve_mailpit(tree, lean)


# -- the driver --------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    stderr: IO[bytes]  # the child's stderr, kept in a temporary file to show problems
    port: int = 0
    db: str | None = None
    web: str | None = None  # mailpit_py's API, for /metrics; MailHog's, for its count

    def commit_latency(self) -> tuple[float, int] | None:
        """(sum of seconds, count) of mailpit_py's DATA-to-commit histogram, from /metrics."""
        if self.web is None or self.name == "mailhog":
            return None
        try:
            with urllib.request.urlopen(f"{self.web}/metrics", timeout=10) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        found = dict(_COMMIT_METRIC.findall(text))
        if "sum" not in found or "count" not in found:
            return None
        return float(found["sum"]), int(float(found["count"]))

    def mailhog_total(self) -> int | None:
        """The messages MailHog holds (its API's total), None when it does not answer."""
        try:
            url = f"{self.web}/api/v2/messages?limit=1"
            with urllib.request.urlopen(url, timeout=10) as resp:
                return int(json.load(resp)["total"])
        except (OSError, ValueError, KeyError):
            return None

    def stderr_tail(self, lines: int = 8) -> list[str]:
        self.stderr.seek(0)
        text = self.stderr.read().decode(errors="replace")
        return [line for line in text.splitlines() if line.strip()][-lines:]

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the server process, all threads (Linux /proc; else None)."""
        try:
            return cpu_seconds(self.proc.pid)
        except (OSError, IndexError):
            return None

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it does not exit in time."""
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


@dataclass
class RunResult:
    sent: int
    rate: float
    p50_ms: float
    p99_ms: float


@dataclass
class Tally:
    rates: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    p50: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    p99: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    cpu_us: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # server CPU/msg
    # The server's busiest thread (its event loop) during a run: CPU time over wall time.
    busy: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    # mailpit_py: mean time from the end of DATA to the commit, from /metrics
    commit_ms: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    after_us: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # ...after the run
    # mode -> mailpit_py's rate / the sink's, one per repetition (the two ran back to back)
    paired: dict[str, list[float]] = field(default_factory=dict)
    # mode -> mailpit_py's rate / MailHog's, likewise (with --mailhog)
    paired_mailhog: dict[str, list[float]] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)  # mode -> messages not stored / not sent
    failures: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_mailhog(binary: Path, timeout: float = 30.0) -> Child:
    """MailHog as users run it (in-memory storage, its log to a file here), on free ports."""
    err = tempfile.TemporaryFile()  # noqa: SIM115 - owned by the Child, read after it exits
    smtp, api, ui = _free_port(), _free_port(), _free_port()
    proc = subprocess.Popen(
        [str(binary), "-smtp-bind-addr", f"{HOST}:{smtp}", "-api-bind-addr", f"{HOST}:{api}"]
        + ["-ui-bind-addr", f"{HOST}:{ui}", "-hostname", "localhost"],
        stdin=subprocess.PIPE,
        stdout=err,
        stderr=err,
    )
    child = Child("mailhog", proc, err, port=smtp, web=f"http://{HOST}:{api}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection((HOST, smtp), timeout=1) as s:
                if s.recv(100).startswith(b"220") and child.mailhog_total() is not None:
                    return child
        except OSError:
            time.sleep(0.05)
    child.stop(grace=5)
    why = " | ".join(child.stderr_tail()) or f"no SMTP greeting within {timeout:.0f}s"
    raise RuntimeError(f"MailHog did not start (exit {proc.returncode}): {why}")


def start_child(
    kind: str,
    timeout: float = 30.0,
    tree: Path = REPO,
    name: str | None = None,
    lean: bool = False,
) -> Child:
    """Start a server: `kind` "sink" or "mailpit_py", the latter from the checkout at `tree`
    (this one by default; bench/ab.py passes another to compare two versions), with the
    default settings or, `lean`, ``-m 0 -q``."""
    err = tempfile.TemporaryFile()  # noqa: SIM115 - owned by the Child, read after it exits
    serve = [sys.executable, str(Path(__file__).resolve()), "--serve", kind, "--tree", str(tree)]
    proc = subprocess.Popen(
        serve + (["--lean"] if lean else []),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=err,
        cwd=tree,
    )
    child = Child(name or kind, proc, err)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            break
        if proc.poll() is not None:
            break
    m = re.match(rb"READY port=(\d+) db=(.*?)(?: web=(\S+))?$", line.strip())
    if not m:
        child.stop(grace=5)
        why = " | ".join(child.stderr_tail()) or f"no READY line within {timeout:.0f}s"
        raise RuntimeError(f"{kind} server did not start (exit {proc.returncode}): {why}")
    child.port = int(m.group(1))
    db = m.group(2).decode()
    child.db = None if db == "-" else db
    web = (m.group(3) or b"-").decode()
    child.web = None if web == "-" else web.rstrip("/")
    return child


def stored_count(db: str) -> int:
    """Messages mailpit_py's database ever inserted, read independently of mailpit_py's code:
    the AUTOINCREMENT high-water mark of ``messages``, which retention's deletes leave alone
    (on PostgreSQL, ``--database``: the sequence of its ids, likewise)."""
    if db.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(os.environ["MP_DATABASE"]) as pg:
            row = pg.execute("SELECT last_value, is_called FROM messages_id_seq").fetchone()
        return int(row[0]) if row and row[1] else 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()


def child_stored(child: Child) -> int | None:
    """Messages the server has stored so far, or None for the sink (which keeps nothing)."""
    if child.db:
        return stored_count(child.db)
    if child.name == "mailhog":
        return child.mailhog_total()
    return None


_RESULT = re.compile(
    r"sent=(\d+) seconds=([\d.]+) rate=(\d+)/s p50=([\d.]+)ms p99=([\d.]+)ms", re.ASCII
)


_COMMIT_METRIC = re.compile(r"^mailpit_commit_latency_seconds_(sum|count) (\S+)$", re.M)


def run_load(smtpload: Path, port: int, n: int, mode: Mode, size: int) -> RunResult:
    cmd = [sys.executable, str(smtpload), HOST, str(port), "-n", str(n)]
    cmd += ["-c", str(mode.connections), "--size", str(size)]
    if mode.fresh:
        cmd.append("--fresh")
    cmd += mode.extra
    timeout = max(120.0, n / 10)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    m = _RESULT.search(out.stdout)
    if out.returncode != 0 or not m:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"smtpload exit {out.returncode}: {' | '.join(tail)}")
    # smtpload's own rate, from its exact clock: the seconds it prints have two decimals, which
    # is 2% off for a half-second run and zero for a tiny one.
    return RunResult(int(m.group(1)), float(m.group(3)), float(m.group(4)), float(m.group(5)))


def settle(children: list[Child], window: float = 0.3, timeout: float = 60.0) -> None:
    """Wait until no server is busy (mailpit_py's background message checks catch up after a
    burst): each run then starts on a quiet machine, and neither server's leftover work is
    charged to the other's run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = [c.cpu_seconds() for c in children]
        time.sleep(window)
        after = [c.cpu_seconds() for c in children]
        pairs = zip(before, after, strict=True)
        if all(a is None or b is None or (b - a) < 0.03 * window for a, b in pairs):
            return


def one_run(
    tally: Tally,
    smtpload: Path,
    child: Child,
    mode: Mode,
    n: int,
    size: int,
    tag: str,
    children: list[Child],
) -> RunResult | None:
    key = (mode.name, child.name)
    settle(children)
    before = child_stored(child)
    commits0 = child.commit_latency()
    threads0, wall0 = thread_cpu(child.proc.pid), time.monotonic()
    cpu0 = child.cpu_seconds()
    try:
        res = run_load(smtpload, child.port, n, mode, size)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        tally.failures.append(f"{tag} {mode.name} -> {child.name}: {exc}")
        res = None
    cpu1 = child.cpu_seconds()
    busy = busiest_share(threads0, thread_cpu(child.proc.pid), time.monotonic() - wall0)
    commits1 = child.commit_latency()
    sent = res.sent if res else 0
    after_count = child_stored(child)
    if before is not None and after_count is not None:
        stored = after_count - before
        if res is None:
            # smtpload gave up part way: count what it managed, which must all be stored.
            sent = stored
        if stored != sent or sent != n:
            tally.lost[mode.name] = tally.lost.get(mode.name, 0) + max(n - stored, 0)
            tally.failures.append(
                f"{tag} {mode.name} -> {child.name}: asked {n}, sent {sent}, stored {stored}"
            )
    elif res is None or sent != n:
        tally.lost[mode.name] = tally.lost.get(mode.name, 0) + n - sent
    if res is not None and tag != "warmup":
        tally.rates.setdefault(key, []).append(res.rate)
        tally.p50.setdefault(key, []).append(res.p50_ms)
        tally.p99.setdefault(key, []).append(res.p99_ms)
        tally.busy.setdefault(key, []).append(busy)
        if commits0 and commits1 and commits1[1] > commits0[1]:
            mean = (commits1[0] - commits0[0]) / (commits1[1] - commits0[1])
            tally.commit_ms.setdefault(key, []).append(mean * 1000)
        if cpu0 is not None and cpu1 is not None and res.sent:
            tally.cpu_us.setdefault(key, []).append((cpu1 - cpu0) / res.sent * 1e6)
            # Work left for after the burst (the background checks): charged per message too.
            settle([child])
            cpu2 = child.cpu_seconds()
            if cpu2 is not None:
                tally.after_us.setdefault(key, []).append((cpu2 - cpu1) / res.sent * 1e6)
    return res


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(
    tally: Tally,
    modes: tuple[Mode, ...],
    n: int,
    size: int,
    repeat: int,
    targets: tuple[str, ...] = TARGETS,
) -> None:
    mailhog = "mailhog" in targets
    print()
    print(f"ingest: {n} msgs/mode, ~{size} B each, median of {repeat}, {os.cpu_count()} CPUs")
    print(
        "(mp = mailpit_py; ratio = mp / sink, paired; CPU = server process, all threads, per"
        " message; +after = mp's CPU after the burst, the background checks)"
    )
    mh_head = f" {'MailHog':>8} {'mp/MH':>5}" if mailhog else ""
    head = (
        f"{'mode':<26} {'sink msgs/s':>11}{mh_head} {'mailpit_py msgs/s':>17} {'ratio':>5}"
        f"  {'CPU us/msg sink/mp +after':>25}  {'mp p50/p99 ms':>13}"
    )
    print(head)
    print("-" * len(head))
    for mode in modes:
        sink = _median(tally.rates.get((mode.name, "sink"), []))
        mp = _median(tally.rates.get((mode.name, "mailpit_py"), []))
        # The median of the repetitions' paired ratios: each pair ran back to back, so a
        # repetition when the whole machine was slow does not count against one server only.
        pairs = tally.paired.get(mode.name, [])
        ratio = _median(pairs) if pairs else (mp / sink if sink > 0 else float("nan"))
        mh_text = ""
        if mailhog:
            mh = _median(tally.rates.get((mode.name, "mailhog"), []))
            mh_text = f" {mh:>8.0f} {_median(tally.paired_mailhog.get(mode.name, [])):>5.2f}"
        cpu = [_median(tally.cpu_us.get((mode.name, t), [])) for t in TARGETS]
        after = _median(tally.after_us.get((mode.name, "mailpit_py"), []))
        cpu_text = f"{cpu[0]:.0f} / {cpu[1]:.0f} +{after:.0f}"
        p50 = _median(tally.p50.get((mode.name, "mailpit_py"), []))
        p99 = _median(tally.p99.get((mode.name, "mailpit_py"), []))
        lat = f"{p50:.1f} / {p99:.1f}"
        print(
            f"{mode.label:<26} {sink:>11.0f}{mh_text} {mp:>17.0f} {ratio:>5.2f}"
            f"  {cpu_text:>25}  {lat:>13}"
        )
    if mailhog:
        cpu_mh = [_median(tally.cpu_us.get((m.name, "mailhog"), [])) for m in modes]
        print(
            "MailHog's CPU us/msg: "
            + ", ".join(f"{m.name} {c:.0f}" for m, c in zip(modes, cpu_mh, strict=True))
        )
    print()
    print(
        "Where mailpit_py waits: its event loop's thread is busy for this share of the run"
        " (the sink's for comparison), and a message waits this long from the end of its DATA"
        " to its commit (the 250 follows):"
    )
    for mode in modes:
        busy = [_median(tally.busy.get((mode.name, t), [])) * 100 for t in TARGETS]
        commit = _median(tally.commit_ms.get((mode.name, "mailpit_py"), []))
        print(
            f"  {mode.label:<26} loop busy sink {busy[0]:3.0f}% / mp {busy[1]:3.0f}%,"
            f"  DATA to commit {commit:.2f} ms"
        )
    print()
    for mode in modes:
        runs = []
        for target in targets:
            rates = tally.rates.get((mode.name, target), [])
            runs.append(f"{target} " + ", ".join(f"{r:.0f}" for r in rates))
        print(f"  msgs/s per run, {mode.name:<7} " + "; ".join(runs))
        for label, paired in (("", tally.paired), (" vs MailHog", tally.paired_mailhog)):
            pairs = paired.get(mode.name, [])
            if pairs:
                shown = ", ".join(f"{r:.2f}" for r in pairs)
                print(f"  paired ratios{label},  {mode.name:<7} {shown} (min {min(pairs):.2f})")


def find_smtpload() -> Path:
    if not SMTPLOAD.is_file():
        raise RuntimeError(
            f"smtpload not found at {SMTPLOAD}: set MAILPIT_PY_SMTPLOAD to the load generator"
        )
    return SMTPLOAD


def _targets(args: argparse.Namespace) -> tuple[str, ...]:
    """The servers of each repetition: the sink, MailHog when given and there, mailpit_py."""
    mailhog = args.mailhog is not None and args.mailhog.is_file()
    return ("sink", "mailhog", "mailpit_py") if mailhog else TARGETS


def _repetition(
    tally: Tally, smtpload: Path, modes: tuple[Mode, ...], rep: int, args: argparse.Namespace
) -> tuple[int, int]:
    """One repetition on new servers: warm-up, then each mode on each, the order alternating.
    Returns (messages mailpit_py stored, messages sent to it)."""
    children: list[Child] = []
    stored = 0
    targets = _targets(args)
    try:
        for kind in targets:
            if kind == "mailhog":
                children.append(start_mailhog(args.mailhog))
            else:
                children.append(start_child(kind, lean=args.lean))
        mp = next(c for c in children if c.name == "mailpit_py")
        # (a --database kept across repetitions already holds the earlier ones' messages)
        base = stored_count(mp.db) if mp.db else 0
        others = ", ".join(f"{c.name} on {HOST}:{c.port}" for c in children if c is not mp)
        print(
            f"repetition {rep + 1}: {others}; mailpit_py on {HOST}:{mp.port} (database "
            f"{mp.db}{', -m 0 -q' if args.lean else ', default settings'}); load: {smtpload}",
            flush=True,
        )
        if args.warmup > 0:
            for child in children:
                for mode in modes:
                    one_run(
                        tally, smtpload, child, mode, args.warmup, args.size, "warmup", children
                    )
        for mode in modes:
            order = children if (rep + MODES.index(mode)) % 2 == 0 else children[::-1]
            rates: dict[str, float] = {}
            for child in order:
                res = one_run(
                    tally, smtpload, child, mode, args.n, args.size, f"#{rep + 1}", children
                )
                shown = f"{res.rate:7.0f} msgs/s" if res else "   FAILED"
                print(f"  run {rep + 1} {mode.name:<7} {child.name:<11} {shown}", flush=True)
                if res:
                    rates[child.name] = res.rate
            mine = rates.get("mailpit_py")
            if mine is not None and rates.get("sink", 0) > 0:
                tally.paired.setdefault(mode.name, []).append(mine / rates["sink"])
            if mine is not None and rates.get("mailhog", 0) > 0:
                tally.paired_mailhog.setdefault(mode.name, []).append(mine / rates["mailhog"])
        stored = stored_count(mp.db) - base if mp.db else 0
    finally:
        for child in children:
            child.stop()
    for child in children:
        if child.proc.returncode not in (0, -signal.SIGTERM):
            tally.failures.append(f"{child.name} server exited with {child.proc.returncode}")
        for line in child.stderr_tail():
            print(f"  {child.name} stderr: {line}")
        child.stderr.close()
    return stored, (max(args.warmup, 0) + args.n) * len(modes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("-n", type=int, default=2000, help="messages per mode and run (2000)")
    ap.add_argument(
        "--repeat", type=int, default=3, help="repetitions, each on new server processes (3)"
    )
    ap.add_argument("--size", type=int, default=2000, help="approximate message size (2000)")
    ap.add_argument("--warmup", type=int, default=200, help="warm-up messages per server (200)")
    ap.add_argument(
        "--modes", default=",".join(m.name for m in MODES), help="comma list: reuse,serial,fresh"
    )
    ap.add_argument(
        "--lean",
        action="store_true",
        help="run mailpit_py with -m 0 -q (nothing pruned, no line per message) instead of the"
        " default settings",
    )
    ap.add_argument(
        "--mailhog",
        type=Path,
        metavar="PATH",
        help="a MailHog binary to measure too (its column is left out when PATH is missing)",
    )
    ap.add_argument(
        "--database",
        metavar="URL",
        help="run mailpit_py on this database (e.g. postgresql://user:pw@host/db, shared by the"
        " repetitions) instead of a temporary SQLite file",
    )
    ap.add_argument("--serve", choices=TARGETS, help=argparse.SUPPRESS)
    ap.add_argument("--tree", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        return serve(args.serve, args.tree, args.lean)
    if args.database:
        os.environ["MP_DATABASE"] = args.database  # the servers started below read it

    wanted = {s.strip() for s in args.modes.split(",") if s.strip()}
    modes = tuple(m for m in MODES if m.name in wanted)
    if not modes or args.n <= 0 or args.repeat <= 0:
        ap.error("need at least one known mode, -n > 0 and --repeat > 0")
    if args.mailhog is not None and not args.mailhog.is_file():
        print(f"ingest: no MailHog binary at {args.mailhog}: its column is left out")
    tally = Tally()
    total = expected = 0
    try:
        smtpload = find_smtpload()
        for rep in range(args.repeat):
            # New servers for every repetition: one process can stay ~15% faster or slower
            # than an identical one for its whole life, so runs on one pair are not
            # independent samples (bench/ab.py found this).
            stored, sent = _repetition(tally, smtpload, modes, rep, args)
            total += stored
            expected += sent
    except RuntimeError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 2

    print_table(tally, modes, args.n, args.size, args.repeat, _targets(args))
    print()
    print(f"mailpit_py stored {total} of {expected} messages sent in this run (warm-up included)")
    for mode in modes:
        lost = tally.lost.get(mode.name, 0)
        print(f"  {mode.name:<7} {'OK, none lost' if not lost else f'LOST {lost}'}")
    for failure in tally.failures:
        print(f"  problem: {failure}")
    bad = bool(tally.failures) or any(tally.lost.values()) or total != expected
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
