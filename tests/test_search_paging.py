"""A one-term free-text search (the search box's usual query) is paged by merging the word and
substring indexes and counted over them: the same pages and counts, read and unread, as the
general query that reads every match."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store import queries
from mailpit_py.store.search import parse_query
from mailpit_py.store.search_sql import lone_substring

BODIES = [
    "The Crème brûlée report",  # the word index folds diacritics: "creme" finds it
    "quarterly figures attached",  # word prefix and substring ("quart", "arterl")
    "see example.com/quarterly",
    "nothing to see",
    "headquarters moved",  # a substring inside a word only
]


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    mb = Mailbox(Config(database=":memory:", max_messages=0))
    try:
        for i in range(60):
            raw = f"Subject: s{i}\r\nFrom: a{i}@example.com\r\n\r\n{BODIES[i % 5]} {i}\r\n"
            mb.deliver(Envelope("a@example.com", ("b@example.org",)), raw.encode()).result(10)
        ids = [m["ID"] for m in mb.list_messages(0, 60)]
        mb.mark_read(ids[::3])  # some read, spread over the matches
        yield mb
    finally:
        mb.close()


def general(mb: Mailbox, query: str, start: int, limit: int) -> tuple[list[str], int, int]:
    terms = parse_query(query)
    rows = mb.store.search(terms, start, limit)
    return [r["uid"] for r in rows], *mb.store.count_matches(terms)


def fast(mb: Mailbox, query: str, start: int, limit: int) -> tuple[list[str], int, int]:
    terms = parse_query(query)
    assert lone_substring(terms) is not None
    rows, matched, unread = mb.store.search_page(terms, start, limit)
    return [r["uid"] for r in rows], matched, unread


@pytest.mark.parametrize("query", ["creme", "quart", "arterl", "example.com", "zzzzz", "see"])
@pytest.mark.parametrize("probe_max", [queries.READ_PROBE_MAX, 20, 0])
def test_pages_and_counts_match_the_general_query(
    mailbox: Mailbox, query: str, probe_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queries, "READ_PROBE_MAX", probe_max)  # both ways of counting unread
    for start, limit in ((0, 5), (5, 5), (10, 50), (200, 5)):
        assert fast(mailbox, query, start, limit) == general(mailbox, query, start, limit)
    _, matched, unread = fast(mailbox, query, 0, 5)
    assert (matched, unread) != (0, 0) or query == "zzzzz"
    assert unread < matched or query == "zzzzz"  # some matches are read


def test_only_a_lone_positive_free_text_term_takes_this_way() -> None:
    assert lone_substring(parse_query("quarterly")) is not None
    for query in ("quarterly figures", "-quarterly", "subject:quarterly", "ab", "is:read"):
        assert lone_substring(parse_query(query)) is None, query
