"""`mailpit-py reindex` keeps mailboxes: after the index is rebuilt, a search in each mailbox
finds its own messages alone (words, substrings, header values), on SQLite and PostgreSQL."""

from __future__ import annotations

from test_reindex import ENV, empty_index, reindex

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.store.open import open_store
from mailpit_py.store.search import parse_query

BOXES = {"aardvark": "default", "bumblebee": "farm", "chinchilla": "farm", "dromedary": "zoo"}


def fill(database: str) -> None:
    """One message per word, each in its mailbox; every body says "body"."""
    mb = Mailbox(Config(database=database, max_messages=0))
    try:
        for word, box in BOXES.items():
            raw = (
                f"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: about the {word}\r\n"
                f"X-Animal: {word}-header\r\n\r\nThe {word} body text.\r\n"
            ).encode()
            mb.deliver(ENV, raw, boxes={box: list(ENV.rcpt_to)}).result(10)
        mb.create_box("empty")
    finally:
        mb.close()


def found(database: str, query: str, box: str) -> int:
    """How many messages a search in `box` finds, asked of the store alone."""
    store = open_store(database)
    try:
        return store.search_page(parse_query(query), 0, 10, box=box)[1]
    finally:
        store.close()


def boxes(database: str) -> list[tuple[str, int, int, float]]:
    store = open_store(database)
    try:
        return store.mailboxes()
    finally:
        store.close()


def test_a_search_in_each_mailbox_works_after_reindex(database: str) -> None:
    fill(database)
    before = boxes(database)
    empty_index(database)
    assert found(database, "bumblebee", "farm") == 0
    done = reindex(database)
    assert done.returncode == 0, done.stderr
    assert boxes(database) == before  # mailboxes, counts and times as they were
    for word, box in BOXES.items():
        for other in ("default", "farm", "zoo", "empty"):
            want = 1 if other == box else 0
            assert found(database, word, other) == want, (word, other)
            assert found(database, word[1:6], other) == want, (word, other)  # substrings
            assert found(database, f"header:X-Animal:{word}-header", other) == want
    counts = {box: found(database, "body", box) for box in ("default", "farm", "zoo", "empty")}
    assert counts == {"default": 1, "farm": 2, "zoo": 1, "empty": 0}
