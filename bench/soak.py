"""Soak: mailpit_py at a steady rate for many minutes, with --max 500; resources must stay flat.

Starts mailpit_py (the CLI, in its own process, `--max 500`, a file database in a temporary
directory) and sends it a steady `--rate` messages/s (bench/pace.py in its own process, 4
connections: 2 keep one session for the whole run, as an app's pooled connection does, and 2
start a new session every 100 messages, so connections churn too) for `--minutes`. Every
`--interval` seconds it samples the server's resident memory (VmRSS from /proc/PID/status), the
database file size and its -wal, the open file descriptors (/proc/PID/fd) and the thread count,
and prints them as a table as it goes.

Verdict, ignoring the first 20% of the samples (warm-up), with "early" the second fifth of the
samples (20%-40% of the run) and "late" the last half (50%-100%):

* RSS and database size (file + -wal): flat when max(late) <= 1.10 * max(early);
* descriptors and threads: flat when median(late) == median(early) and max(late) <= max(early)
  (a leak raises both; a connection caught mid-reconnect moves only single samples).

Exit status 1 if anything is not flat, the sender had errors or fell short of the rate by more
than 10%, or the server died; 0 otherwise.

    .venv/bin/python bench/soak.py [--minutes 20] [--rate 100] [--interval SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _common import (
    finish_paced,
    kept_after,
    proc_fds,
    proc_kb,
    proc_threads,
    start_mailpit,
    start_paced,
)

MAX_MESSAGES = 500
CONNECTIONS = 4
RECONNECT_EVERY = 100
KEEP_SESSIONS = 2


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the load started
    rss_mb: float
    db_mb: float  # database file + -wal
    wal_mb: float
    fds: int
    threads: int
    cpu_pct: float  # server CPU since the previous sample, % of one core


def file_mb(path: str) -> float:
    try:
        return os.path.getsize(path) / 1e6
    except OSError:
        return 0.0


def check(samples: list[Sample]) -> list[tuple[str, str, bool]]:
    """(what, early -> late, flat?) for each resource; see the module docstring for the rules."""
    n = len(samples)
    early = samples[n // 5 : max(2 * n // 5, n // 5 + 1)]
    late = samples[n // 2 :]
    verdicts = []
    for name, attr in (("RSS MB", "rss_mb"), ("db+wal MB", "db_mb")):
        e, lt = max(getattr(s, attr) for s in early), max(getattr(s, attr) for s in late)
        verdicts.append((name, f"max {e:.1f} -> {lt:.1f} ({lt / e:.2f}x)", lt <= 1.10 * e))
    for name, attr in (("open fds", "fds"), ("threads", "threads")):
        ev, lv = [getattr(s, attr) for s in early], [getattr(s, attr) for s in late]
        me, ml = statistics.median(ev), statistics.median(lv)
        flat = me == ml and max(lv) <= max(ev)
        verdicts.append((name, f"median {me:g} -> {ml:g}, max {max(ev)} -> {max(lv)}", flat))
    return verdicts


def stored(url: str) -> int:
    with urllib.request.urlopen(url + "api/v1/messages?limit=1", timeout=30) as resp:
        return int(json.loads(resp.read())["total"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second (100)")
    parser.add_argument("--interval", type=float, help="seconds between samples (run / 40, <= 10)")
    args = parser.parse_args()
    seconds = args.minutes * 60
    interval = args.interval or max(1.0, min(10.0, seconds / 40))
    tmp = tempfile.TemporaryDirectory(prefix="mailpit-soak-")
    db = str(Path(tmp.name) / "soak.db")
    server = start_mailpit("--max", str(MAX_MESSAGES), "-d", db)
    print(
        f"soak: {args.rate:g} msgs/s for {args.minutes:g} min, --max {MAX_MESSAGES}, "
        f"database {db}, sample every {interval:g} s, server pid {server.pid}",
        flush=True,
    )
    head = f"{'t s':>6} {'RSS MB':>7} {'db+wal MB':>9} {'wal MB':>7} {'fds':>4} {'threads':>7}"
    head += f" {'CPU %':>6}"
    print(head)
    print("-" * len(head), flush=True)
    samples: list[Sample] = []
    sender = start_paced(
        server.port, args.rate, seconds, CONNECTIONS, 2000, RECONNECT_EVERY, KEEP_SESSIONS
    )
    died = False
    try:
        start = time.monotonic()
        last_cpu, last_t = server.cpu_seconds(), start
        while sender.poll() is None:
            time.sleep(max(0.0, start + (len(samples) + 1) * interval - time.monotonic()))
            if sender.poll() is not None:
                break
            if server.proc.poll() is not None:
                died = True
                break
            now, cpu = time.monotonic(), server.cpu_seconds()
            s = Sample(
                now - start,
                proc_kb(server.pid, "VmRSS") / 1024,
                file_mb(db) + file_mb(db + "-wal"),
                file_mb(db + "-wal"),
                proc_fds(server.pid),
                proc_threads(server.pid),
                (cpu - last_cpu) / (now - last_t) * 100,
            )
            last_cpu, last_t = cpu, now
            samples.append(s)
            print(
                f"{s.t:>6.0f} {s.rss_mb:>7.1f} {s.db_mb:>9.2f} {s.wal_mb:>7.2f} {s.fds:>4} "
                f"{s.threads:>7} {s.cpu_pct:>6.0f}",
                flush=True,
            )
        load = finish_paced(sender, timeout=120)
        kept = stored(server.url) if server.proc.poll() is None else -1
    finally:
        if sender.poll() is None:
            sender.kill()
        code = server.stop()
        tmp.cleanup()
    print()
    print(
        f"sender: {load.sent} messages in {load.seconds:.0f} s = {load.rate:.1f}/s "
        f"(asked {args.rate:g}/s), p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms, "
        f"at most {load.behind_ms:.0f} ms behind schedule, {load.errors} errors"
    )
    # Retention prunes in batches: between 500 and 500 plus its slack, exactly as computed.
    expected = kept_after(load.sent, MAX_MESSAGES)
    print(
        f"messages kept at the end: {kept}, expected {expected} (--max {MAX_MESSAGES}, pruned in"
        f" batches); server exit status {code}"
    )
    bad = died or load.errors > 0 or load.rate < 0.9 * args.rate or kept != expected
    if died:
        print("SERVER DIED: " + " | ".join(server.log_tail))
    if len(samples) < 5:
        print(f"too few samples ({len(samples)}) to judge: use a longer run or --interval")
        return 1
    print(
        f"after warm-up (first {samples[len(samples) // 5].t:.0f} s): "
        "early = second fifth, late = last half"
    )
    for what, text, flat in check(samples):
        print(f"  {what:<10} {text:<40} {'flat' if flat else 'GROWING'}")
        bad = bad or not flat
    print("verdict: " + ("NOT FLAT or failed" if bad else "flat"))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
