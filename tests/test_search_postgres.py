"""The search suites (tests/test_search.py, tests/test_search_substring.py) run again on the
PostgreSQL store: every test of theirs that searches a mailbox is collected here too, with
their fixtures' mailboxes on a database of the suite's PostgreSQL server instead of SQLite, so
a query means the same on both backends."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
import test_search
import test_search_substring
from test_search import COUNT, Corpus, fill

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from pgserver import PgServer

FIXTURES = {"corpus", "small", "mailbox"}
# Tests of SQLite's own tables (its FTS5 trigram index's integrity check), not of a search.
SQLITE_ONLY = {"test_deleted_messages_leave_the_substring_index"}

for _module in (test_search, test_search_substring):
    for _name, _test in vars(_module).items():
        if _name in SQLITE_ONLY or not _name.startswith("test_"):
            continue
        if FIXTURES & set(inspect.signature(_test).parameters):
            globals()[f"{_name}_pg" if _name in globals() else _name] = _test


def _mailbox(pg_server: PgServer) -> Iterator[Mailbox]:
    name = pg_server.create_database()
    mb = Mailbox(Config(database=pg_server.url(name), max_messages=0))
    try:
        yield mb
    finally:
        mb.close()
        pg_server.drop_database(name)


@pytest.fixture(scope="module")
def corpus(pg_server: PgServer) -> Iterator[Corpus]:
    for mb in _mailbox(pg_server):
        yield Corpus(mb, fill(mb, COUNT))


@pytest.fixture
def small(pg_server: PgServer) -> Iterator[Corpus]:
    for mb in _mailbox(pg_server):
        yield Corpus(mb, fill(mb, 60))


@pytest.fixture
def mailbox(pg_server: PgServer) -> Iterator[Mailbox]:
    yield from _mailbox(pg_server)
