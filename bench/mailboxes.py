"""Mailboxes at scale: SMTP ingest into 50 routed mailboxes against one, and reads in one of 50.

Ingest (`--part ingest`): each repetition starts two servers, the real CLI with its default
settings as `bench/ingest.py` runs it: "single" (no mailbox settings: everything in the default
mailbox) and "boxes" (`--mailbox-config` naming `--boxes` mailboxes p0..p49, each with a
`rcpt: "*@pK.test"` route and an `auth: "pK-ci"` route, in that order, so a recipient of pK is
matched after 2K routes that are not its own). Both take the same `smtpload` load, whose
recipients go round the 50 domains (`--rcpt 'user@p{n}.test' --spread 50`), in
`bench/ingest.py`'s three modes, back to back and alternating which goes first; each mode gives
one paired ratio boxes / single per repetition, and the table shows their median. Every message
sent must be stored (`bench/ingest.py`'s count), each in its routed mailbox (counted in the
database afterwards: every pK got its share on "boxes", the default mailbox all on "single").
Retention is the default `--max 500`, which applies per mailbox: "single" prunes, "boxes" (each
mailbox far under 500) does not.

Reads (`--part reads`): fills a database with `--messages` messages spread over the mailboxes in
runs of 100 (`bench/scale.py`'s messages and fill, through `Mailbox.deliver` with the mailbox
given as routing gives it), then times, in interleaved rounds, the reads of one mailbox through
the REST API under `/mailbox/NAME/` of a server in its own process (`-m 0 --disable-checks`, as
`bench/scale.py`), on one kept-alive connection: first and last page, word, substring,
`header:` and `from:` searches, a message, the mailboxes list with its counts; and the same
reads in this process through the facade's `BoxView`, the server's work without HTTP. Medians
of the rounds (best in brackets). Another mailbox's message under the prefix must be a 404.
`--postgres` does the same on a PostgreSQL cluster of its own (tests/pgserver.py, fsync off).

    .venv/bin/python bench/mailboxes.py [--part ingest,reads] [--boxes 50] [-n 2000]
        [--repeat 5] [--warmup 200] [--modes reuse,serial,fresh] [--lean]
        [--messages 100000] [--rounds 7] [--database PATH|URL] [--postgres] [--box p7]

Targets: ingest >= 0.9x of the single mailbox in each mode; reads in one mailbox as a single
mailbox of 100,000 (docs/performance.md: first page < 10 ms, deep page < 20 ms, searches
< 50 ms, open < 10 ms). Exit status 1 if a message was lost or misrouted, a read failed or
found nothing, or another mailbox's message showed; 2 if a server did not start.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from _common import HOST, REPO, start_mailpit
from ingest import MODES, Child, Mode, Tally, _median, find_smtpload, one_run, start_child
from scale import fill

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.store.open import is_postgres

BOX = "p{k}"  # the mailboxes' names; recipients user@p{k}.test are routed to them


def revision() -> str:
    """The checkout measured: its commit, and whether the code has uncommitted changes (other
    work in the same checkout is measured with it)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError:
        return "not a git checkout"
    return out.stdout.strip() or "not a git checkout"


def load_average() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def write_config(path: Path, boxes: int) -> None:
    """A --mailbox-config with `boxes` mailboxes, each routed by a recipient glob and a username."""
    lines = ["mailboxes:"]
    for k in range(boxes):
        name = BOX.format(k=k)
        lines += [
            f"  - name: {name}",
            "    routes:",
            f'      - rcpt: "*@{name}.test"',
            f'      - auth: "{name}-ci"',
        ]
    path.write_text("\n".join(lines) + "\n")


def stored_by_box(db: str) -> dict[str, int]:
    """Messages per mailbox in a server's SQLite database, read with sqlite3 (read-only)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT mailbox, count(*) FROM messages GROUP BY mailbox").fetchall()
    finally:
        conn.close()
    return {str(box): int(count) for box, count in rows}


def start_server(name: str, config: Path | None, lean: bool) -> Child:
    """bench/ingest.py's mailpit_py child; the mailbox config reaches it by its MP_ variable."""
    os.environ.pop("MP_MAILBOX_CONFIG", None)
    if config is not None:
        os.environ["MP_MAILBOX_CONFIG"] = str(config)
    try:
        return start_child("mailpit_py", name=name, lean=lean)
    finally:
        os.environ.pop("MP_MAILBOX_CONFIG", None)


def routing_problems(child: Child, boxes: int) -> list[str]:
    """What is wrong with where a server put the messages: on "boxes" every pK must hold some
    and the default mailbox none; on "single" all must be in the default mailbox."""
    assert child.db is not None
    counts = stored_by_box(child.db)
    if child.name == "single":
        stray = {b: c for b, c in counts.items() if b != "default"}
        return [f"single: messages outside the default mailbox: {stray}"] if stray else []
    names = {BOX.format(k=k) for k in range(boxes)}
    problems = [
        f"boxes: {c} messages in {b!r}, no routed mailbox"
        for b, c in counts.items()
        if b not in names
    ]
    missing = sorted(names - counts.keys())
    if missing:
        problems.append(f"boxes: nothing routed to {', '.join(missing[:5])}")
    return problems


def routing_us(config: Path, boxes: int, rounds: int = 3, each: int = 100) -> float:
    """Microseconds the router takes for one recipient of this configuration (Router.matches,
    in this process), the recipients going round the mailboxes as the load's do; best of
    `rounds`. Part of the server's CPU per message, shown apart from the rates' noise."""
    from mailpit_py.mailbox.routing import Router

    router = Router.from_config(Config(mailbox_config=str(config)))
    rcpts = [f"user@{BOX.format(k=k)}.test" for k in range(boxes)]
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(each):
            for rcpt in rcpts:
                router.matches("", "default", [rcpt])
        best = min(best, (time.perf_counter() - t) / (each * len(rcpts)))
    return best * 1e6


def ingest(args: argparse.Namespace) -> int:
    wanted = {s.strip() for s in args.modes.split(",") if s.strip()}
    spread = ("--rcpt", "user@" + BOX.replace("{k}", "{n}") + ".test", "--spread", str(args.boxes))
    modes = [dataclasses.replace(m, extra=spread) for m in MODES if m.name in wanted]
    smtpload = find_smtpload()
    tally = Tally()
    problems: list[str] = []
    loads: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="mailpit-boxes-") as tmp:
        config = Path(tmp) / "mailboxes.yaml"
        write_config(config, args.boxes)
        print(f"ingest: {args.boxes} mailboxes ({config}) against one; {args.n} msgs per run")
        print(
            f"routing one recipient: {routing_us(config, args.boxes):.1f} us (Router.matches in"
            f" this process, best of 3; {load_average()})",
            flush=True,
        )
        for rep in range(args.repeat):
            children: list[Child] = []
            try:
                for name in ("single", "boxes") if rep % 2 == 0 else ("boxes", "single"):
                    children.append(
                        start_server(name, config if name == "boxes" else None, args.lean)
                    )
                for child in children:
                    for mode in modes:
                        one_run(tally, smtpload, child, mode, args.warmup, 2000, "warmup", children)
                for i, mode in enumerate(modes):
                    order = children if (rep + i) % 2 == 0 else children[::-1]
                    rates: dict[str, float] = {}
                    for child in order:
                        res = one_run(
                            tally, smtpload, child, mode, args.n, 2000, f"#{rep + 1}", children
                        )
                        rates[child.name] = res.rate if res else float("nan")
                    ratio = rates["boxes"] / rates["single"] if rates["single"] > 0 else 0.0
                    tally.paired.setdefault(mode.name, []).append(ratio)
                    loads.setdefault(mode.name, []).append(load_average())
                    print(
                        f"  run {rep + 1} {mode.name:<7} single {rates['single']:6.0f}"
                        f"  boxes {rates['boxes']:6.0f} msgs/s  ratio {ratio:.2f}"
                        f"  ({load_average()})",
                        flush=True,
                    )
                for child in children:
                    problems += routing_problems(child, args.boxes)
            except RuntimeError as exc:
                print(f"mailboxes: {exc}", file=sys.stderr)
                return 2
            finally:
                for child in children:
                    child.stop()
                    child.stderr.close()
    print_ingest(tally, modes, args, loads)
    problems += tally.failures
    problems += [f"{mode}: {lost} messages lost" for mode, lost in tally.lost.items() if lost]
    for problem in problems:
        print(f"  problem: {problem}")
    if not problems:
        print("every message stored, each in its routed mailbox")
    return 1 if problems else 0


def print_ingest(
    tally: Tally, modes: list[Mode], args: argparse.Namespace, loads: dict[str, list[str]]
) -> None:
    median = _median
    print()
    print(
        f"ingest, {args.boxes} mailboxes / one, median of {args.repeat} paired ratios"
        f" (default settings{', -m 0 -q' if args.lean else ''}; target >= 0.9):"
    )
    head = (
        f"{'mode':<26} {'single msgs/s':>13} {'boxes msgs/s':>12} {'ratio':>5}"
        f" {'range':>9}  {'CPU us/msg single/boxes':>23}  load average"
    )
    print(head)
    print("-" * len(head))
    for mode in modes:
        single = median(tally.rates.get((mode.name, "single"), []))
        boxes = median(tally.rates.get((mode.name, "boxes"), []))
        pairs = tally.paired.get(mode.name, [])
        cpu = [median(tally.cpu_us.get((mode.name, n), [])) for n in ("single", "boxes")]
        spread = f"{min(pairs):.2f}-{max(pairs):.2f}" if pairs else "-"
        print(
            f"{mode.label:<26} {single:>13.0f} {boxes:>12.0f} {median(pairs):>5.2f} {spread:>9}"
            f"  {cpu[0]:>11.0f} / {cpu[1]:<9.0f}  {', '.join(loads.get(mode.name, []))}"
        )


# -- reads in one mailbox ---------------------------------------------------------------------

SEARCHES = (
    ("word", "quarterly"),
    ("substring", "uarterl"),
    ("substring everywhere", "ample.com"),
    ("header:", "header:X-Campaign:c3"),
    ("from:", "from:s42@"),
)


def box_of(boxes: int) -> Callable[[int], str]:
    """Runs of 100 messages take turns over the mailboxes, so each gets every kind of message
    (bench/scale.py's 1-in-100 report with an attachment once per run)."""
    return lambda i: BOX.format(k=(i // 100) % boxes)


def timed_rounds(reads: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Every read once per round, the rounds one after another (so a busy moment of the
    machine touches every read alike); a warm-up round first."""
    for fn in reads.values():
        fn()
    times: dict[str, list[float]] = {label: [] for label in reads}
    for _ in range(rounds):
        for label, fn in reads.items():
            t = time.perf_counter()
            fn()
            times[label].append((time.perf_counter() - t) * 1000)
    return times


def show(title: str, times: dict[str, list[float]]) -> None:
    """Medians (best) per read; a read with a whole-store twin gets its figure and the ratio."""
    whole = any(label.startswith(WHOLE) for label in times)
    print(f"  {title} ({load_average()}):")
    if whole:
        print(f"    {'':<44} {'mailbox':>8}  {'':<13} {'whole store':>11}  ratio")
    for label, ms in times.items():
        if label.startswith(WHOLE):
            continue
        line = f"    {label:<44} {statistics.median(ms):8.2f} ms  (best {min(ms):6.2f})"
        other = times.get(WHOLE + label)
        if other:
            ratio = statistics.median(ms) / max(statistics.median(other), 1e-6)
            line += f" {statistics.median(other):8.2f} ms  {ratio:5.2f}"
        print(line)


class Api:
    """GET on one kept-alive HTTP connection, as a browser keeps it; JSON answers decoded."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.root = parts.path.rstrip("/")
        self.conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=60)

    def get(self, path: str, expect: int = 200) -> Any:
        self.conn.request("GET", self.root + path)
        resp = self.conn.getresponse()
        body = resp.read()
        if resp.status != expect:
            raise RuntimeError(f"GET {path}: {resp.status}, wanted {expect}: {body[:200]!r}")
        return json.loads(body) if expect == 200 else None


def api_reads(api: Api, box: str, total: int, uid: str) -> dict[str, Callable[[], Any]]:
    pre = f"/mailbox/{box}/api/v1"
    deep = max(0, total - 50)
    reads: dict[str, Callable[[], Any]] = {
        "GET messages (first page)": partial(api.get, f"{pre}/messages?limit=50"),
        f"GET messages?start={deep} (last page)": partial(
            api.get, f"{pre}/messages?start={deep}&limit=50"
        ),
    }
    for label, query in SEARCHES:
        url = f"{pre}/search?query={quote(query)}&limit=50"
        reads[f"GET search {query} ({label})"] = partial(api.get, url)
    reads["GET message/ID"] = partial(api.get, f"{pre}/message/{uid}")
    reads["GET /api/v1/mailboxes (every count)"] = partial(api.get, "/api/v1/mailboxes")
    return reads


WHOLE = "whole store: "  # a read over every mailbox: one mailbox holding every message


def view_reads(mb: Mailbox, box: str, total: int, uid: str) -> dict[str, Callable[[], Any]]:
    """The mailbox's reads through its BoxView, each followed by the same read over the whole
    store (box None, the path of an instance with one mailbox): the single-mailbox figure of
    this size, timed in the same rounds, so the two compare on a loaded machine."""
    view = mb.view(box)
    every = mb.counts()[0]
    reads: dict[str, Callable[[], Any]] = {}

    def both(label: str, mine: Callable[[], Any], whole: Callable[[], Any]) -> None:
        reads[label] = mine
        reads[WHOLE + label] = whole

    both("list, first page", partial(view.list_messages, 0, 50), partial(mb.list_messages, 0, 50))
    both(
        "list, last page",
        partial(view.list_messages, max(0, total - 50), 50),
        partial(mb.list_messages, max(0, every - 50), 50),
    )
    both("counts (total, unread)", view.counts, mb.counts)
    for label, query in SEARCHES:
        both(
            f"search {query} ({label})",
            partial(view.search, query, 0, 50),
            partial(mb.search, query, 0, 50),
        )
    both("open a message", partial(view.get, uid), partial(mb.get, uid))
    return reads


def check_reads(api: Api, box: str, boxes: int, total: int, other_uid: str) -> list[str]:
    """What the reads must show: the mailbox's own total, matches of every search, and another
    mailbox's message answering 404 under this mailbox's prefix."""
    problems = []
    pre = f"/mailbox/{box}/api/v1"
    listed = api.get(f"{pre}/messages?limit=1")
    if listed["total"] != total:
        problems.append(f"{box} lists {listed['total']} messages, expected {total}")
    for _label, query in SEARCHES:
        found = api.get(f"{pre}/search?query={quote(query)}&limit=50")["messages_count"]
        print(f"    {query!r} finds {found} in {box}")
        if not found:
            problems.append(f"search {query!r} found nothing in {box}")
    api.get(f"{pre}/message/{other_uid}", expect=404)
    names = [m["Name"] for m in api.get("/api/v1/mailboxes")["Mailboxes"]]
    if len(names) < boxes:
        problems.append(f"/api/v1/mailboxes lists {len(names)} mailboxes, expected {boxes}+")
    return problems


def reads(args: argparse.Namespace, where: str) -> int:
    mb = Mailbox(Config(database=where, max_messages=0))
    try:
        if mb.counts()[0] == 0:
            mb.close()
            fill(where, args.messages, box_of(args.boxes))
            if is_postgres(where):
                import psycopg

                with psycopg.connect(where, autocommit=True) as conn:
                    conn.execute("ANALYZE")  # as autovacuum would after a bulk load
            mb = Mailbox(Config(database=where, max_messages=0))
        every = mb.counts()[0]
        total = mb.view(args.box).counts()[0]
        other = BOX.format(k=0) if args.box != BOX.format(k=0) else BOX.format(k=1)
        other_uid = mb.view(other).list_messages(0, 1)[0]["ID"]
        uid = mb.view(args.box).list_messages(min(500, total - 1), 1)[0]["ID"]
        kind = "PostgreSQL" if is_postgres(where) else "SQLite"
        print(
            f"reads: {every} messages in {len(mb.boxes())} mailboxes ({kind}); mailbox "
            f"{args.box!r} holds {total}; {args.rounds} rounds"
        )
        show(
            "in process, the facade's BoxView",
            timed_rounds(view_reads(mb, args.box, total, uid), args.rounds),
        )
    finally:
        mb.close()
    server = start_mailpit("--database", where, "-m", "0", "--disable-checks")
    try:
        api = Api(server.url)
        problems = check_reads(api, args.box, args.boxes, total, other_uid)
        times = timed_rounds(api_reads(api, args.box, total, uid), args.rounds)
        show(
            f"over HTTP under /mailbox/{args.box}/ ({server.url}, one kept-alive connection)", times
        )
    finally:
        server.stop()
    for problem in problems:
        print(f"  problem: {problem}")
    return 1 if problems else 0


def reads_on(args: argparse.Namespace) -> int:
    """The reads on --database, else on a new PostgreSQL cluster (--postgres), else on a
    temporary SQLite file."""
    if args.database:
        return reads(args, args.database)
    if args.postgres:
        sys.path.insert(0, str(REPO / "tests"))
        from pgserver import start_server as start_pg  # type: ignore[import-not-found]

        pg = start_pg()
        try:
            return reads(args, pg.url(pg.create_database()))
        finally:
            pg.close()
    tmp = tempfile.mkdtemp(prefix="mailpit-boxes-")
    try:
        return reads(args, os.path.join(tmp, "boxes.db"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--part", default="ingest,reads", help="ingest, reads or both (both)")
    ap.add_argument("--boxes", type=int, default=50, help="mailboxes (50)")
    ap.add_argument("-n", type=int, default=2000, help="ingest: messages per mode and run (2000)")
    ap.add_argument("--repeat", type=int, default=5, help="ingest: repetitions, new servers (5)")
    ap.add_argument("--warmup", type=int, default=200, help="ingest: warm-up msgs per server")
    ap.add_argument("--modes", default="reuse,serial,fresh", help="ingest: comma list")
    ap.add_argument("--lean", action="store_true", help="ingest: both with -m 0 -q")
    ap.add_argument("--messages", type=int, default=100_000, help="reads: messages (100000)")
    ap.add_argument("--rounds", type=int, default=7, help="reads: timed rounds (7)")
    ap.add_argument("--box", default="p7", help="reads: the mailbox read (p7)")
    ap.add_argument(
        "--database",
        help="reads: a SQLite path or postgresql:// URL (reused when it holds messages)",
    )
    ap.add_argument(
        "--postgres",
        action="store_true",
        help="reads: on a PostgreSQL cluster of its own (tests/pgserver.py)",
    )
    args = ap.parse_args(argv)
    parts = {p.strip() for p in args.part.split(",") if p.strip()}
    if not parts or parts - {"ingest", "reads"} or args.boxes < 2 or args.n < 1:
        ap.error("--part takes ingest and/or reads; --boxes at least 2, -n at least 1")
    if "reads" in parts and args.box not in {BOX.format(k=k) for k in range(args.boxes)}:
        ap.error(f"--box must be one of p0..p{args.boxes - 1}")
    print(f"mailpit_py at {revision()}, {os.cpu_count()} CPUs, {load_average()}")
    status = 0
    if "ingest" in parts:
        status = max(status, ingest(args))
    if "reads" in parts:
        status = max(status, reads_on(args))
    return status


if __name__ == "__main__":
    sys.exit(main())
