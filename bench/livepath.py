"""Live path: ingest at a steady 500 msgs/s with 20 websocket clients, as a ratio to none.

Starts mailpit_py (the CLI, in its own process, default temporary store, nothing pruned). A
paced sender (bench/pace.py, own process, 8 connections reusing their sessions, ~2 KB messages)
sends `--rate` messages/s for `--seconds`, with no websocket client and with `--clients`
clients on /api/events (bench/wsclients.py, own process), alternating over `--repeat` rounds.

Every client that kept up (was not closed by the server for falling behind) must have received
a `new` event for every message of its run, in the order the server assigned them: the list API
after the run, newest first, reversed. Prints the median achieved rate, the server's CPU per
message and the sender's latency for both cases, and the ratios (the performance target: ingest with
20 clients >= 0.9x the rate with none). Exit status 1 if a client that kept up missed an event or
got one out of order, or the sender had SMTP errors.

If the server cannot take `--rate` even with no client (a small or busy machine), the bench says
so, measures the highest rate it takes with none (`bench/smtpload.py`, unpaced, 8
connections) and runs both cases at 80% of that instead.

    .venv/bin/python bench/livepath.py [--rate 500] [--seconds 10] [--clients 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import urllib.request

from _common import SMTPLOAD, Mailpit, PaceResult, finish_paced, start_mailpit, start_paced

HERE = __file__.rsplit("/", 1)[0]


def listed_ids(url: str, newest: int) -> list[str]:
    """The IDs of the `newest` messages, oldest first (the list API pages newest first)."""
    ids: list[str] = []
    while len(ids) < newest:
        limit = min(10_000, newest - len(ids))
        query = f"api/v1/messages?start={len(ids)}&limit={limit}"
        with urllib.request.urlopen(url + query, timeout=60) as resp:
            page = json.loads(resp.read())["messages"]
        if not page:
            break
        ids += [m["ID"] for m in page]
    return ids[::-1]


def max_rate(port: int, seconds: float, guess: float) -> float:
    """The unpaced rate with no client, from bench/smtpload.py (8 connections)."""
    n = str(max(500, int(guess * seconds)))
    cmd = [sys.executable, str(SMTPLOAD), "127.0.0.1", str(port), "-n", n, "-c", "8"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"rate=([\d.]+)/s", out)
    if not m:
        sys.exit(f"smtpload said: {out!r}")
    return float(m.group(1))


def run(
    server: Mailpit, rate: float, seconds: float, clients: int
) -> tuple[PaceResult, float, list[tuple[bool, str]]]:
    """One paced run; returns what the sender saw, server CPU us/msg and any client problems."""
    watchers = None
    if clients:
        watchers = subprocess.Popen(
            [sys.executable, f"{HERE}/wsclients.py", server.url + "api/events", str(clients)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert watchers.stdout is not None and watchers.stdin is not None
        if watchers.stdout.readline().strip() != "ready":
            sys.exit("websocket clients did not connect")
    problems: list[tuple[bool, str]] = []  # (an event was lost or out of order, what)
    try:
        cpu = server.cpu_seconds()
        load = finish_paced(start_paced(server.port, rate, seconds), timeout=seconds * 3 + 120)
        cpu_us = (server.cpu_seconds() - cpu) / max(load.sent, 1) * 1e6
        if watchers is not None:
            assert watchers.stdout is not None and watchers.stdin is not None
            watchers.stdin.write(f"{load.sent}\n")
            watchers.stdin.flush()
            got = json.loads(watchers.stdout.readline())
            expected = listed_ids(server.url, load.sent)
            for i, (ids, closed) in enumerate(zip(got["ids"], got["closed"], strict=True)):
                if closed is not None:
                    problems.append(
                        (False, f"client {i} closed by the server ({closed}): fell behind")
                    )
                elif ids != expected:
                    missing = len(set(expected) - set(ids))
                    order = (
                        "in order"
                        if ids == [x for x in expected if x in set(ids)]
                        else "OUT OF ORDER"
                    )
                    text = f"client {i}: {len(ids)} of {len(expected)} events"
                    text += f", {missing} missing, {order}"
                    problems.append((True, text))
    finally:
        if watchers is not None:
            watchers.kill()
            watchers.wait()
    return load, cpu_us, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="messages per second (500)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per run (10)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = start_mailpit("-m", "0")
    rate = args.rate
    results: dict[int, list[tuple[PaceResult, float]]] = {0: [], args.clients: []}
    bad = False
    short = 0  # runs that fell short of the asked rate
    try:
        probe, _, _ = run(server, rate, min(args.seconds, 5), 0)  # also the warm-up
        if probe.rate < 0.95 * rate:
            top = max_rate(server.port, min(args.seconds, 5), probe.rate)
            rate = int(top * 0.8)
            print(
                f"this machine does not take {args.rate:g} msgs/s even with no client "
                f"(paced: {probe.rate:.0f}/s; unpaced, 8 connections: {top:.0f}/s); "
                f"running both cases at {rate}/s (80% of the unpaced rate)",
                flush=True,
            )
        for r in range(args.repeat):
            order = (0, args.clients) if r % 2 == 0 else (args.clients, 0)
            for clients in order:
                load, cpu_us, problems = run(server, rate, args.seconds, clients)
                results[clients].append((load, cpu_us))
                print(
                    f"  run {r + 1}, {clients:>2} clients: {load.rate:6.1f} msgs/s, "
                    f"{cpu_us:5.0f} us CPU/msg, p99 {load.p99_ms:5.1f} ms, "
                    f"behind {load.behind_ms:6.0f} ms"
                    + (f", {len(problems)} client problem(s)" if problems else ""),
                    flush=True,
                )
                for lost, text in problems:
                    print(f"    {text}")
                    bad = bad or lost
                if load.errors:
                    print(f"    the sender had {load.errors} SMTP errors")
                    bad = True
                if load.rate < 0.95 * rate:
                    short += 1
    finally:
        server.stop()

    def med(clients: int, pick) -> float:  # type: ignore[no-untyped-def]
        return statistics.median(pick(x) for x in results[clients])

    print()
    print(f"live path: {rate:g} msgs/s asked, {args.seconds:g} s per run, median of {args.repeat}")
    print(f"{'clients':>8} {'msgs/s':>8} {'server CPU us/msg':>18} {'p50 ms':>7} {'p99 ms':>7}")
    for clients in (0, args.clients):
        print(
            f"{clients:>8} {med(clients, lambda x: x[0].rate):>8.1f} "
            f"{med(clients, lambda x: x[1]):>18.0f} {med(clients, lambda x: x[0].p50_ms):>7.1f} "
            f"{med(clients, lambda x: x[0].p99_ms):>7.1f}"
        )
    rate_ratio = med(args.clients, lambda x: x[0].rate) / med(0, lambda x: x[0].rate)
    cpu_ratio = med(0, lambda x: x[1]) / med(args.clients, lambda x: x[1])
    print(f"ingest rate, {args.clients} clients / none: {rate_ratio:.2f} (target >= 0.90)")
    print(f"messages per CPU second, {args.clients} clients / none: {cpu_ratio:.2f}")
    if short:
        print(f"{short} run(s) fell more than 5% short of {rate:g} msgs/s: the machine was busy")
    print("every event received, in order" if not bad else "FAILED: see the problems above")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
