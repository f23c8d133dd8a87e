"""`from:` (and the other address prefixes) and `header:Name:value` find their candidates
through an index instead of reading every message: the same matches as before (the exact
match still decides), while a search for a rare value steps over the candidates only."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import sqlite_steps
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store import queries, search_sql
from mailpit_py.store.schema import MIGRATIONS

HEADER_VALUES_MIGRATION = 17  # the header value index

ENV = Envelope("a@example.com", ("b@example.org",))
N = 300
# Names whose case variants differ in length or script, and what JSON escapes.
NAMES = ["Straße Müller", "ИВАН Петров", "山田 太郎", 'Ann "Boss" Lee', "C:\\Share", "Bob"]


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    # No background checks: their writes would share the connection whose steps are counted.
    mb = Mailbox(Config(database=":memory:", max_messages=0, disable_checks=True))
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
    return sqlite_steps(mb.store, lambda: mb.search(query, 0, 1))


def test_a_rare_address_steps_over_its_candidates_not_every_message(mailbox: Mailbox) -> None:
    # Its negation must look at every message; the search itself only at its few matches.
    assert vm_steps(mailbox, "from:s7@") * 4 < vm_steps(mailbox, "-from:s7@")
    assert vm_steps(mailbox, "to:user3@") * 3 < vm_steps(mailbox, "-to:user3@")


HEADER_QUERIES = [
    "header:X-Campaign:c3",
    "header:x-campaign:C",
    "header:X-Campaign:c",
    "header:X-Campaign:zz",
    "header:X-Ref:ä",
    "header:X-Ref:Ä",
    "header:X-Ref:ref-1",
    "header:X-Ref:%",
    "header:X-Ref:_",
    "header:X-Ref",
    "header:Nope:x",
    "-header:X-Campaign:c3",
    "header:X-Campaign:c3 from:s7@",
    "header:X-Campaign:c3 -header:X-Ref:ä",
    "header:X-Campaign:c3 is:unread",
]


@pytest.mark.parametrize("query", HEADER_QUERIES)
def test_header_searches_find_what_testing_every_value_finds(
    mailbox: Mailbox, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_values = found(mailbox, query)
    monkeypatch.setattr(queries, "HEADER_VALUES_MAX", 0)  # every header has more values
    assert by_values == found(mailbox, query)
    monkeypatch.setattr(queries, "HEADER_VALUES_MAX", 5)  # X-Campaign has 10: tested each
    assert by_values == found(mailbox, query)


def test_a_header_value_reads_the_distinct_values_not_every_message(mailbox: Mailbox) -> None:
    # Ten distinct campaigns among N messages: the search seeks each, then reads its 30 matches,
    # where presence alone must read every message's entry.
    assert vm_steps(mailbox, "header:X-Campaign:c3") * 3 < vm_steps(mailbox, "header:X-Campaign")


def test_an_older_database_gets_the_header_value_index(tmp_path: Path) -> None:
    db = str(tmp_path / "old.db")
    mb = Mailbox(Config(database=db, max_messages=0))
    for i in range(20):
        raw = f"X-Campaign: c{i % 4}\r\nSubject: m{i}\r\n\r\nbody\r\n".encode()
        mb.deliver(ENV, raw).result(10)
    mb.close()
    conn = sqlite3.connect(db)
    conn.executescript(  # as migration 16 left it
        "DROP INDEX headers_name_value_message; "
        "CREATE INDEX headers_name_value ON headers (name, message, value); "
        f"PRAGMA user_version = {HEADER_VALUES_MIGRATION - 1};"
    )
    conn.close()
    mb = Mailbox(Config(database=db, max_messages=0))
    try:
        assert mb.search("header:X-Campaign:c1", 0, 50)[1] == 5
    finally:
        mb.close()
    conn = sqlite3.connect(db)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "headers_name_value_message" in indexes and "headers_name_value" not in indexes
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


@pytest.mark.parametrize("read", ["none", "some", "all"])
def test_a_lone_header_term_pages_and_counts_as_the_general_query(
    read: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mb = Mailbox(Config(database=":memory:", max_messages=0, disable_checks=True))
    try:
        for i in range(120):
            extra = "X-Campaign: c3\r\n" if i % 7 == 0 else ""  # twice in some messages
            raw = f"X-Campaign: c{i % 4}\r\n{extra}Subject: m{i}\r\n\r\nbody\r\n".encode()
            mb.deliver(ENV, raw).result(10)
        ids = [m["ID"] for m in mb.list_messages(0, 200)]
        mb.mark_read(ids[::3] if read == "some" else ids if read == "all" else [])
        taken: list[int] = []
        lone_page = queries._lone_header_page

        def counted(*args: Any) -> Any:
            taken.append(1)
            return lone_page(*args)

        monkeypatch.setattr(queries, "_lone_header_page", counted)
        for query in ("header:X-Campaign:c3", "header:x-campaign:C", "header:X-Campaign:zz"):
            for start, limit in ((0, 10), (10, 10), (25, 50), (500, 5)):
                fast = found_page(mb, query, start, limit)
                monkeypatch.setattr(queries, "HEADER_VALUES_MAX", 0)
                assert fast == found_page(mb, query, start, limit), (query, start)
                monkeypatch.setattr(queries, "HEADER_VALUES_MAX", 1_000)
        assert taken
    finally:
        mb.close()


def found_page(mb: Mailbox, query: str, start: int, limit: int) -> tuple[list[str], int, int]:
    rows, total, unread = mb.search(query, start, limit)
    return [r["ID"] for r in rows], total, unread
