"""While someone searches during a burst, the writer keeps the search index nearly current (every
few messages instead of every 256), so the next search waits for a few messages' index rows."""

from __future__ import annotations

import pytest

from helpers import wait_until
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store import writer

ENV = Envelope("a@example.com", ("b@example.org",))


def indexed(mb: Mailbox) -> int:
    with mb.store.reading() as conn:
        return int(conn.execute("SELECT count(*) FROM messages_fts").fetchone()[0])


def test_after_a_search_new_messages_are_indexed_in_small_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer, "INDEX_DELAY", 60.0)  # no quiet-moment index write in the test
    mb = Mailbox(Config(database=":memory:", max_messages=0))
    try:
        mb.deliver(ENV, b"Subject: first\r\n\r\nhello\r\n").result(10)
        assert mb.search("hello")[1] == 1  # a search: its barrier writes the index
        assert indexed(mb) == 1
        for i in range(writer.INDEX_BATCH_SEARCHED + 2):
            mb.deliver(ENV, f"Subject: m{i}\r\n\r\nhello {i}\r\n".encode()).result(10)
        # Without a search just before, these would wait for 256 messages or a quiet moment.
        wait_until(
            lambda: indexed(mb) >= 1 + writer.INDEX_BATCH_SEARCHED,
            what="the index written after a few messages",
        )
        assert writer.INDEX_BATCH_SEARCHED < writer.INDEX_BATCH
    finally:
        mb.close()


def test_without_a_recent_search_the_index_waits_for_a_full_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer, "INDEX_DELAY", 60.0)
    monkeypatch.setattr(writer, "SEARCHED_RECENTLY", 0.0)  # every search is long ago
    mb = Mailbox(Config(database=":memory:", max_messages=0))
    try:
        mb.deliver(ENV, b"Subject: first\r\n\r\nhello\r\n").result(10)
        assert mb.search("hello")[1] == 1
        for i in range(writer.INDEX_BATCH_SEARCHED + 2):
            mb.deliver(ENV, f"Subject: m{i}\r\n\r\nhello {i}\r\n".encode()).result(10)
        assert indexed(mb) == 1  # still waiting for a full batch or a quiet moment
        assert mb.search("hello")[1] == writer.INDEX_BATCH_SEARCHED + 3  # the barrier
    finally:
        mb.close()
