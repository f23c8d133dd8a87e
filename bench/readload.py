"""Reads while mail pours in: the first page of the list and a word search, during ingest.

Starts mailpit_py as users run it (the CLI with its default settings: ``--max 500``, a log line
per message, the background checks; loopback listeners on port 0, a file database in a temporary
directory), then sends ``-n`` messages as fast as it takes them (``smtpload.py``, 8 connections
reusing sessions, in its own process) and, meanwhile, from this process, one request after
another on one kept-alive HTTP connection, as the web UI's browser makes them: the first page of
the list (``GET /api/v1/messages``) and a search for a word every message holds
(``GET /api/v1/search?query=ipsum``), in turns, ``--pause`` seconds apart. Prints the median,
90th percentile and worst time of each (targets: median under 20 ms), how many requests ran
during the ingest, and the ingest rate; exits 1 if a request failed, a search found nothing, or
the sender had an error.

    .venv/bin/python bench/readload.py [-n 20000] [--pause 0.02] [--lean]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from _common import HOST, SMTPLOAD, start_mailpit

READS = {
    "list, first page": "/api/v1/messages?limit=50",
    "search 'ipsum' (every message)": "/api/v1/search?query=ipsum&limit=50",
}


def reader(
    url: str, pause: float, stop: threading.Event, times: dict[str, list[float]], errors: list[str]
) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=30)
    wait = threading.Event()
    seen = set()  # reads that have returned messages: from then on, each must
    try:
        while not stop.is_set():
            for label, path in READS.items():
                t0 = time.perf_counter()
                try:
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    body = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    errors.append(f"{label}: {exc}")
                    conn.close()
                    conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port)
                    continue
                elapsed = time.perf_counter() - t0
                if resp.status != 200:
                    errors.append(f"{label}: HTTP {resp.status}")
                elif json.loads(body).get("messages"):
                    seen.add(label)
                elif label in seen:  # (before the first delivery there is nothing to find)
                    errors.append(f"{label}: no messages")
                times[label].append(elapsed * 1000)
                wait.wait(pause)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("-n", type=int, default=20000, help="messages to send (20000)")
    ap.add_argument("--pause", type=float, default=0.02, help="seconds between requests (0.02)")
    ap.add_argument("--lean", action="store_true", help="mailpit_py with -m 0 -q instead")
    args = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory(prefix="mailpit-readload-")
    extra = ["-m", "0", "-q"] if args.lean else []
    server = start_mailpit("-d", str(Path(tmp.name) / "read.db"), *extra)
    times: dict[str, list[float]] = {label: [] for label in READS}
    errors: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=reader, args=(server.url, args.pause, stop, times, errors), daemon=True
    )
    try:
        print(
            f"readload: {args.n} messages (8 connections, reused sessions) into mailpit_py"
            f" ({'-m 0 -q' if args.lean else 'default settings'}), reads every {args.pause:g} s",
            flush=True,
        )
        load = subprocess.Popen(
            [sys.executable, str(SMTPLOAD), HOST, str(server.port), "-n", str(args.n), "-c", "8"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        thread.start()
        out, err = load.communicate(timeout=max(300.0, args.n / 20))
        stop.set()
        thread.join(timeout=60)
    finally:
        stop.set()
        code = server.stop()
        tmp.cleanup()
    print(f"ingest: {out.strip() or err.strip()[-300:]}")
    print(f"{'read':<34} {'n':>5} {'median ms':>10} {'p90 ms':>8} {'max ms':>8}")
    bad = load.returncode != 0 or bool(errors) or code not in (0, None)
    for label, values in times.items():
        if not values:
            print(f"{label:<34} no request completed")
            bad = True
            continue
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
        med = statistics.median(ordered)
        print(f"{label:<34} {len(values):>5} {med:>10.2f} {p90:>8.2f} {ordered[-1]:>8.2f}")
    for e in errors[:10]:
        print(f"problem: {e}")
    print(f"verdict: {'FAILED' if bad else 'ok'} (server exit status {code})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
