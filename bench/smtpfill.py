"""Memory over SMTP: 100,000 messages through SMTP with the checks on, RSS sampled to the end.

Starts mailpit_py (the CLI in its own process, a file database in a temporary directory) with its
default settings (``--max 500``, the background checks, a log line per message), or with
``-m 0`` (nothing pruned: the database keeps every message), sends ``-n`` messages as fast as it
takes them (``smtpload.py``, 8 connections reusing sessions, its own process), samples the
server's VmRSS every ``--interval`` seconds, then waits until the server is idle (the checks of
the last messages done) and reads VmRSS, VmHWM (the peak), the database's size and how many
messages it holds. Target: RSS under 150 MB at the end. Exit status 1 if the sender had an
error, the server died, the mailbox does not hold what retention keeps, or the final RSS is over
``--limit-mb``.

    .venv/bin/python bench/smtpfill.py [-n 100000] [--max-messages 500] [--interval 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from _common import HOST, SMTPLOAD, cpu_seconds, kept_after, proc_kb, start_mailpit


def settle(pid: int, window: float = 1.0, timeout: float = 600.0) -> float:
    """Wait until the process uses under 3% of a CPU over `window` seconds; the seconds waited."""
    t0 = time.monotonic()
    pause = threading.Event()
    while time.monotonic() - t0 < timeout:
        before = cpu_seconds(pid)
        pause.wait(window)
        if cpu_seconds(pid) - before < 0.03 * window:
            break
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("-n", type=int, default=100_000, help="messages to send (100000)")
    ap.add_argument(
        "--max-messages", type=int, default=500, help="the server's --max (500; 0 keeps all)"
    )
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between samples (5)")
    ap.add_argument("--limit-mb", type=float, default=150.0, help="final RSS target (150)")
    args = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory(prefix="mailpit-smtpfill-")
    db = Path(tmp.name) / "fill.db"
    server = start_mailpit("-d", str(db), "-m", str(args.max_messages))
    print(
        f"smtpfill: {args.n} messages into mailpit_py (--max {args.max_messages}, checks on),"
        f" server pid {server.pid}",
        flush=True,
    )
    print(f"{'t s':>7} {'RSS MB':>7}", flush=True)
    t0 = time.monotonic()
    load = subprocess.Popen(
        [sys.executable, str(SMTPLOAD), HOST, str(server.port), "-n", str(args.n), "-c", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pause = threading.Event()
    peak_sampled = 0.0
    died = False
    try:
        while load.poll() is None:
            pause.wait(args.interval)
            if server.proc.poll() is not None:
                died = True
                break
            rss = proc_kb(server.pid, "VmRSS") / 1024
            peak_sampled = max(peak_sampled, rss)
            print(f"{time.monotonic() - t0:>7.0f} {rss:>7.1f}", flush=True)
        out, err = load.communicate(timeout=60)
        sent_seconds = time.monotonic() - t0
        idle_after = settle(server.pid) if not died else 0.0
        if not died:
            rss_end = proc_kb(server.pid, "VmRSS") / 1024
            hwm = proc_kb(server.pid, "VmHWM") / 1024
            with urllib.request.urlopen(f"{server.url}api/v1/messages?limit=1", timeout=30) as r:
                kept = int(json.load(r)["total"])
            size = sum(p.stat().st_size for p in Path(tmp.name).iterdir()) / 1e6
    finally:
        code = server.stop()
        tmp.cleanup()
    if died:
        print("SERVER DIED: " + " | ".join(server.log_tail))
        return 1
    result = (out or err).strip().splitlines()[-1:] or ["no output"]
    print(f"sender: {result[0]} ({sent_seconds:.0f} s)")
    expected = kept_after(args.n, args.max_messages)
    print(
        f"end (idle after {idle_after:.0f} s more): RSS {rss_end:.1f} MB, peak {hwm:.1f} MB"
        f" (sampled {peak_sampled:.1f}), database + WAL {size:.0f} MB, {kept} messages kept"
        f" (expected {expected}); server exit status {code}"
    )
    bad = load.returncode != 0 or kept != expected or rss_end > args.limit_mb
    print(f"verdict: {'FAILED' if bad else 'ok'} (final RSS target < {args.limit_mb:g} MB)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
