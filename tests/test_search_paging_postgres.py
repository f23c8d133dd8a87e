"""On PostgreSQL, a lone free-text term found in many of the newest messages is paged newest
first with an early stop and counted with one plain read: the same pages and counts, read and
unread, as the general query that joins every match to its message."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store.postgres import queries
from mailpit_py.store.postgres.backend import PgStore
from mailpit_py.store.search import parse_query
from pgserver import PgServer

BODIES = ["see example.com/quarterly", "quarterly figures", "nothing here", "headquarters"]


@pytest.fixture(scope="module")
def mailbox(pg_server: PgServer) -> Iterator[Mailbox]:
    name = pg_server.create_database()
    mb = Mailbox(Config(database=pg_server.url(name), max_messages=0))
    try:
        for i in range(60):
            raw = f"Subject: s{i}\r\nFrom: a{i}@example.com\r\n\r\n{BODIES[i % 4]} {i}\r\n"
            mb.deliver(Envelope("a@example.com", ("b@example.org",)), raw.encode()).result(10)
        ids = [m["ID"] for m in mb.list_messages(0, 60)]
        mb.mark_read(ids[::3])  # some read, spread over the matches
        yield mb
    finally:
        mb.close()
        pg_server.drop_database(name)


def general(mb: Mailbox, query: str, start: int, limit: int) -> tuple[list[str], int, int]:
    """The page and counts of the query every other search takes (the early stop turned off)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(queries, "lone_free_text", lambda terms: None)
        rows, matched, unread = mb.store.search_page(parse_query(query), start, limit)
    return [r["uid"] for r in rows], matched, unread


@pytest.mark.parametrize("query", ["example.com", "quarter", "arterl", "a1@example"])
def test_dense_pages_and_counts_match_the_general_query(
    mailbox: Mailbox, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "SAMPLE_ROWS", 20)  # this small mailbox's newest 20 rows
    monkeypatch.setattr(queries, "EARLY_STOP_ROWS", 10_000)
    terms = parse_query(query)
    store = mailbox.store
    assert isinstance(store, PgStore)
    params = queries.lone_free_text(terms)
    assert params is not None
    for start, limit in ((0, 5), (5, 5), (10, 50), (200, 5)):
        dense = store._dense_free_text_page(params, start, limit)
        if query == "a1@example":  # in few of the newest: through the indexes instead
            assert dense is None
            continue
        assert dense is not None
        rows, matched, unread = dense
        assert ([r["uid"] for r in rows], matched, unread) == general(mailbox, query, start, limit)
        assert unread < matched  # some matches are read
        got = mailbox.store.search_page(terms, start, limit)
        assert ([r["uid"] for r in got[0]], got[1], got[2]) == general(mailbox, query, start, limit)
