"""Reads in one mailbox among many: fills a store with N messages spread over B mailboxes, then
times, best of 5 in process, the reads the UI and API make in one mailbox (and, for reference,
over every mailbox): the first and a deep page, the counts, and the searches of bench/scale.py.

    .venv/bin/python bench/boxscale.py [-n 100000] [--boxes 50] [--database URL|PATH]

Without --database a PostgreSQL cluster of its own is started (tests/pgserver.py: fsync off);
a SQLite path is filled the same way. A database that holds messages already is reused. The
targets are docs/performance.md's: first page < 10 ms, deep page < 20 ms, searches < 50 ms.
Messages go in through the store's writer (parsed and recorded as delivery does, 500 per job),
without the SMTP and facade layers, to fill 100,000 in minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scale import best  # noqa: E402

from mailpit_py.mailbox.record import build_record  # noqa: E402
from mailpit_py.models import Envelope  # noqa: E402
from mailpit_py.parse.message import parse_message  # noqa: E402
from mailpit_py.store.interface import StoreBackend  # noqa: E402
from mailpit_py.store.open import open_store  # noqa: E402
from mailpit_py.store.records import MessageRecord  # noqa: E402
from mailpit_py.store.search import parse_query  # noqa: E402

ENVELOPE = Envelope("sender@example.com", ("user@example.org",))
JOB = 500  # messages per writer job


def message(i: int) -> bytes:
    """Message `i`: bench/scale.py's small messages (1 in 100 a "quarterly" report)."""
    subject = f"Report {i} quarterly" if i % 100 == 0 else f"Hello {i} word{i % 1000}"
    return (
        f"From: Sender {i % 97} <s{i % 97}@example.com>\r\nTo: user{i % 50}@example.org\r\n"
        f"X-Campaign: c{i % 10}\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n"
        f"Subject: {subject}\r\n\r\n"
        f"Body of message {i}, lorem ipsum dolor sit amet {i % 777}.\r\n"
    ).encode()


def box_of(i: int, boxes: int) -> str:
    """Runs of 100 messages take turns over the mailboxes: each one gets every kind of message
    (a "quarterly" report per run, each campaign 10 times), newest last, as all do."""
    return "default" if boxes <= 1 else f"project{(i // 100) % boxes}"


def insert_all(recs: list[MessageRecord], store: StoreBackend) -> None:
    for rec in recs:
        store.insert_message(rec)


def fill(store: StoreBackend, n: int, boxes: int) -> None:
    started = time.perf_counter()
    for first in range(0, n, JOB):
        recs = []
        for i in range(first, min(first + JOB, n)):
            raw = message(i)
            rec = build_record(
                f"m{i:07}", parse_message(raw, ENVELOPE), raw, created=time.time(),
                username="", session_uid="", transcript=(), envelope=ENVELOPE,
            )  # fmt: skip
            recs.append(rec._replace(mailbox=box_of(i, boxes)))
        store.write(partial(insert_all, recs), timeout=600)
    store.index_barrier(600)
    print(f"stored {n} messages in {boxes} mailboxes in {time.perf_counter() - started:.0f} s")


SEARCHES = (
    "quarterly",  # a word in 1 message in 100
    "uarterl",  # a substring of it
    "4711",  # a substring inside numbers
    "ample.com",  # in every message
    "header:X-Campaign:c3",
    "from:s42@",
    "is:unread",
)


def reads(store: StoreBackend, box: str | None) -> None:
    total = store.counts(box)[0]
    where = f"mailbox {box!r}" if box else "every mailbox"
    print(f"{where} ({total} messages):")
    best("first page", lambda: store.list_summaries(0, 50, box))
    deep = max(0, total - 50)
    best(f"page at {deep}", lambda: store.list_summaries(deep, 50, box))
    best("counts", lambda: store.counts(box))
    for query in SEARCHES:
        terms = parse_query(query)
        found = store.search_page(terms, 0, 50, box)[1]
        best(f"search {query} ({found})", partial(store.search_page, terms, 0, 50, box))
    if box is not None:
        best("mailboxes() list", store.mailboxes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000, help="messages (100000)")
    ap.add_argument("--boxes", type=int, default=50, help="mailboxes they are spread over (50)")
    ap.add_argument("--database", help="a postgresql:// URL or a SQLite path (default: a new "
                    "PostgreSQL cluster of this run's own)")  # fmt: skip
    ap.add_argument("--box", default="project7", help="the mailbox read (project7)")
    args = ap.parse_args()
    pg = None
    url = args.database
    if not url:
        sys.path.insert(0, str(REPO / "tests"))
        from pgserver import start_server  # type: ignore[import-not-found]  # (tests/ on the path)

        pg = start_server()
        url = pg.url(pg.create_database())
    store = open_store(url)
    try:
        if store.counts()[0] == 0:
            fill(store, args.n, args.boxes)
            if url.startswith("postgres"):
                import psycopg

                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE")
        reads(store, args.box)
        reads(store, None)
    finally:
        store.close()
        if pg is not None:
            pg.close()


if __name__ == "__main__":
    main()
