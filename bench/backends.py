"""PostgreSQL against SQLite: mailpit_py under the same SMTP ingest load on each store, in
paired, alternating rounds.

Each round starts both servers afresh (the real CLI with the default settings, as
``bench/ingest.py`` runs it: SQLite in a temporary file, as by default; PostgreSQL with
``--database``), warms both up, then runs each mode on both back to back, alternating which
goes first, so drift in this machine's speed falls on both. Every message must be stored (the
rows are counted after every run, as in ``bench/ingest.py``). The summary, per mode: the median
of the paired ratios PostgreSQL / SQLite, their range, each store's median msgs/s, and the CPU
per message of mailpit_py's process and of PostgreSQL's (its server processes, read from /proc
around each run): on a machine whose cores are all busy the rates follow the CPU a message costs
in all, and that ratio (SQLite's CPU per message over PostgreSQL's with its server's) moves far
less with the machine's load than the rates do.

Without --database a PostgreSQL cluster of the run's own is started (tests/pgserver.py: fsync
off, synchronous_commit on), and one database of it is shared by the rounds (retention keeps it
small).

Usage: .venv/bin/python bench/backends.py [--rounds 5] [-n 2000] [--modes reuse,serial,fresh]
                                          [--database URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from _common import REPO
from ingest import MODES, Child, Tally, find_smtpload, one_run, start_child

STORES = ("sqlite", "postgresql")


def start(store: str, url: str) -> Child:
    """A server on `store`: PostgreSQL through MP_DATABASE, which the child reads at start (and
    bench/ingest.py's count of stored rows reads for a postgresql:// database)."""
    if store == "postgresql":
        os.environ["MP_DATABASE"] = url
    else:
        os.environ.pop("MP_DATABASE", None)
    try:
        return start_child("mailpit_py", name=store)
    finally:
        os.environ["MP_DATABASE"] = url


def _ticks(pid: str | int) -> int:
    """utime + stime + cutime + cstime of a process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15])


def server_cpu(url: str) -> float:
    """CPU seconds of the PostgreSQL server behind `url`: its postmaster and every process of
    it (reaped ones through the postmaster's children's times); 0 when it is not on this
    machine."""
    import psycopg

    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            # (read while its backend lives: it exits with the connection)
            postmaster = Path(f"/proc/{row[0]}/stat").read_text().rsplit(")", 1)[1].split()[1]
        total = _ticks(postmaster)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == postmaster:
                        total += _ticks(entry.name)
                except OSError:
                    continue
    except (OSError, psycopg.Error):
        return 0.0
    return total / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=5, help="paired rounds (5)")
    ap.add_argument("-n", type=int, default=2000, help="messages per mode and run (2000)")
    ap.add_argument("--modes", default="reuse,serial,fresh", help="comma list of modes")
    ap.add_argument("--size", type=int, default=2000, help="approximate message size (2000)")
    ap.add_argument("--warmup", type=int, default=200, help="warm-up messages per server (200)")
    ap.add_argument("--database", help="the PostgreSQL database (default: a cluster of its own)")
    args = ap.parse_args(argv)
    modes = [m for m in MODES if m.name in {s.strip() for s in args.modes.split(",")}]
    if not modes or args.n <= 0 or args.rounds <= 0:
        ap.error("need a known mode, -n > 0 and --rounds > 0")
    pg = None
    url = args.database
    if not url:
        sys.path.insert(0, str(REPO / "tests"))
        from pgserver import start_server  # type: ignore[import-not-found]  # (tests/ on the path)

        pg = start_server()
        url = pg.url(pg.create_database())
    smtpload = find_smtpload()
    tally = Tally()
    children: list[Child] = []
    pg_cpu: dict[str, list[float]] = {}  # mode -> PostgreSQL's CPU us per message, per run
    try:
        for rnd in range(args.rounds):
            order = STORES if rnd % 2 == 0 else STORES[::-1]
            children = [start(store, url) for store in order]
            for child in children:
                one_run(tally, smtpload, child, modes[0], args.warmup, args.size, "warmup", [child])
            for mode in modes:
                rates = {}
                for child in children:
                    before = server_cpu(url) if child.name == "postgresql" else 0.0
                    res = one_run(
                        tally, smtpload, child, mode, args.n, args.size, f"#{rnd + 1}", children
                    )
                    rates[child.name] = res.rate if res else float("nan")
                    if child.name == "postgresql" and res is not None and res.sent:
                        used = server_cpu(url) - before
                        pg_cpu.setdefault(mode.name, []).append(used / res.sent * 1e6)
                print(
                    f"  round {rnd + 1}, {mode.name:6}: SQLite {rates['sqlite']:6.0f}  "
                    f"PostgreSQL {rates['postgresql']:6.0f} msgs/s  "
                    f"ratio {rates['postgresql'] / rates['sqlite']:.2f}",
                    flush=True,
                )
            for child in children:
                child.stop()
            children = []
    finally:
        for child in children:
            child.stop()
        if pg is not None:
            pg.close()
    print(f"\n{args.n} msgs of ~{args.size} bytes per mode and run, {args.rounds} paired rounds:")
    for mode in modes:
        sq = tally.rates.get((mode.name, "sqlite"), [])
        pq = tally.rates.get((mode.name, "postgresql"), [])
        ratios = [p / s for p, s in zip(pq, sq, strict=False) if s > 0]
        if not ratios:
            continue
        cpu = {
            store: statistics.median(tally.cpu_us.get((mode.name, store), [float("nan")]))
            for store in STORES
        }
        server = statistics.median(pg_cpu.get(mode.name, [float("nan")]))
        print(
            f"  {mode.label:28}: PostgreSQL / SQLite median {statistics.median(ratios):.2f} "
            f"(range {min(ratios):.2f}-{max(ratios):.2f}); msgs/s SQLite "
            f"{statistics.median(sq):.0f}, PostgreSQL {statistics.median(pq):.0f}; CPU/msg: "
            f"SQLite {cpu['sqlite']:.0f} us, PostgreSQL {cpu['postgresql']:.0f} + server "
            f"{server:.0f} us; CPU ratio {cpu['sqlite'] / (cpu['postgresql'] + server):.2f}"
        )
    for failure in tally.failures:
        print(f"FAILED: {failure}")
    return 1 if tally.failures or tally.lost else 0


if __name__ == "__main__":
    sys.exit(main())
