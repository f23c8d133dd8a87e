"""`from:` (and the other address prefixes) and `header:Name:value` find their candidates
through an index instead of reading every message: the same matches as before (the exact
match still decides), while a search for a rare value steps over the candidates only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store import search_sql

ENV = Envelope("a@example.com", ("b@example.org",))
N = 300
# Names whose case variants differ in length or script, and what JSON escapes.
NAMES = ["Straße Müller", "ИВАН Петров", "山田 太郎", 'Ann "Boss" Lee', "C:\\Share", "Bob"]


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    mb = Mailbox(Config(database=":memory:", max_messages=0))
    try:
        for i in range(N):
            name = NAMES[i % len(NAMES)].replace("\\", "\\\\").replace('"', '\\"')
            raw = (
                f'From: "{name}" <s{i % 37}@example.com>\r\nTo: user{i % 11}@example.org\r\n'
                f"Cc: Kopie <cc{i % 5}@example.net>\r\nX-Campaign: c{i % 10}\r\n"
                f"X-Ref: ref-{i}-{'ä' if i % 4 else 'Ä'}\r\nSubject: m{i}\r\n\r\nbody\r\n"
            )
            mb.deliver(ENV, raw.encode()).result(10)
        mb.mark_read([m["ID"] for m in mb.list_messages(0, N)][::4])

        # One segment per index, as a long-lived store's are merged: what is counted below is
        # then the rows a search reads, not the fresh index's many small segments.
        def optimize(store: Any) -> None:
            for table in ("messages_fts", "messages_tri"):
                store._wconn.execute(f"INSERT INTO {table}({table}) VALUES ('optimize')")

        mb.store.write(optimize)
        yield mb
    finally:
        mb.close()


def found(mb: Mailbox, query: str) -> tuple[list[str], int, int]:
    rows, total, unread = mb.search(query, 0, 1000)
    return [r["ID"] for r in rows], total, unread


QUERIES = [
    "from:s7@",
    "from:S7@EXAMPLE",
    "from:straße",
    "from:STRASSE",
    "from:STRAßE",
    "from:иван",
    "from:Иван",
    "from:山田",
    "from:boss",
    'from:"boss\\" lee"',
    "from:<s7@example.com>",
    'from:"Lee <s1"',
    "from:c:\\share",
    "from:s7",
    "-from:s7@",
    "to:user3@",
    "cc:kopie",
    "addressed:example.net",
    "addressed:müller",
    "addressed:muller",
    "from:zz",
]


@pytest.mark.parametrize("query", QUERIES)
def test_address_searches_find_what_reading_every_row_finds(
    mailbox: Mailbox, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexed = found(mailbox, query)
    monkeypatch.setattr(search_sql, "address_candidates", lambda value: None)
    assert indexed == found(mailbox, query)


def test_the_address_lookup_is_there_for_the_queries_it_serves() -> None:
    assert search_sql.address_candidates("s7@") is not None
    assert search_sql.address_candidates("Lee <s1") is not None  # the longer piece, "Lee"
    assert search_sql.address_candidates("zz") is None  # shorter than a trigram: read rows
    assert search_sql.address_candidates("a<b") is None


def vm_steps(mb: Mailbox, query: str) -> int:
    """SQLite virtual machine steps (in hundreds) a search takes."""
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0

    store: Any = mb.store
    conn = store._wconn  # in memory, reads run on the writer's one connection
    conn.set_progress_handler(tick, 100)
    try:
        mb.search(query, 0, 1)
    finally:
        conn.set_progress_handler(None, 0)
    return steps


def test_a_rare_address_steps_over_its_candidates_not_every_message(mailbox: Mailbox) -> None:
    # Its negation must look at every message; the search itself only at its few matches.
    assert vm_steps(mailbox, "from:s7@") * 4 < vm_steps(mailbox, "-from:s7@")
    assert vm_steps(mailbox, "to:user3@") * 3 < vm_steps(mailbox, "-to:user3@")
