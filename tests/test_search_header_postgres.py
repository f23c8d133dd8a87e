"""On PostgreSQL, header:Name:value lists the name's distinct values from headers_name_key and
reads only the rows of those that match; a name with too many values, and values longer than
the index's key, are still matched on their rows: the same answers as SQLite's clause."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store.postgres.search_sql import HEADER_DISTINCT_MAX, HEADER_KEY, build_where
from mailpit_py.store.search import parse_query
from pgserver import PgServer

LONG = "x" * (HEADER_KEY + 20)


@pytest.fixture(scope="module")
def db(pg_server: PgServer) -> Iterator[tuple[Mailbox, str]]:
    name = pg_server.create_database()
    url = pg_server.url(name)
    mb = Mailbox(Config(database=url, max_messages=0))
    try:
        pending = []
        for i in range(HEADER_DISTINCT_MAX + 40):  # X-Seq has more distinct values than listed
            raw = (
                f"Subject: s{i}\r\nX-Campaign: C{i % 10}\r\nX-Seq: q{i}z\r\n"
                f"X-Long: {LONG}{'needle' if i % 7 == 0 else 'hay'}\r\n\r\nbody {i}\r\n"
            )
            pending.append(mb.deliver(Envelope("a@example.com", ("b@example.org",)), raw.encode()))
        for fut in pending:
            fut.result(30)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE headers")
        yield mb, url
    finally:
        mb.close()
        pg_server.drop_database(name)


def subjects(mb: Mailbox, query: str) -> set[int]:
    found, _, _ = mb.search(query, 0, 1000)
    return {int(m["Subject"][1:]) for m in found}


def test_values_listed_from_the_index_match_as_substrings_in_any_case(
    db: tuple[Mailbox, str],
) -> None:
    mb, _ = db
    n = HEADER_DISTINCT_MAX + 40
    assert subjects(mb, "header:X-Campaign:c3") == {i for i in range(n) if i % 10 == 3}
    assert subjects(mb, "header:x-campaign:C") == set(range(n))
    assert subjects(mb, "-header:X-Campaign:c3") == {i for i in range(n) if i % 10 != 3}
    assert subjects(mb, "header:X-Campaign:zz") == set()
    assert subjects(mb, "header:X-Nothing:c3") == set()


def test_a_value_longer_than_the_key_is_matched_on_its_row(db: tuple[Mailbox, str]) -> None:
    mb, _ = db
    n = HEADER_DISTINCT_MAX + 40
    assert subjects(mb, "header:X-Long:needle") == {i for i in range(n) if i % 7 == 0}
    assert subjects(mb, "header:X-Long:xhay") == {i for i in range(n) if i % 7}


def test_a_name_with_more_distinct_values_than_listed_reads_its_rows(
    db: tuple[Mailbox, str],
) -> None:
    mb, _ = db
    assert subjects(mb, "header:X-Seq:q27z") == {27}
    assert subjects(mb, "header:X-Seq:7z") == {
        i for i in range(HEADER_DISTINCT_MAX + 40) if i % 10 == 7
    }


def test_the_plan_reads_the_value_index(db: tuple[Mailbox, str]) -> None:
    _, url = db
    where, params = build_where(parse_query("header:X-Campaign:c3"))
    with psycopg.connect(url) as conn:
        conn.execute("SET enable_seqscan = off")  # as search_page runs an indexed search
        plan = "\n".join(
            r[0] for r in conn.execute(f"EXPLAIN SELECT m.id FROM messages m WHERE {where}", params)
        )
    assert "headers_name_key" in plan
