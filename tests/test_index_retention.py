"""With retention on, the search index of messages that retention prunes before anyone searches
is never written, and a rolled-back delete puts a message's waiting index rows back."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store import writer
from mailpit_py.store.sqlite import Store

ENV = Envelope("a@example.com", ("b@example.org",))


def indexed(store: Store) -> int:
    with store.reading() as conn:
        return int(conn.execute("SELECT count(*) FROM messages_fts").fetchone()[0])


def test_messages_pruned_before_a_search_are_never_indexed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(writer, "INDEX_DELAY", 60.0)  # no quiet-moment index write in the test
    monkeypatch.setattr(writer, "SEARCHED_RECENTLY", 0.0)
    mb = Mailbox(Config(database=str(tmp_path / "kept.db"), max_messages=5))
    try:
        for i in range(writer.INDEX_BATCH + 40):
            mb.deliver(ENV, f"Subject: m{i}\r\n\r\nneedle {i}\r\n".encode()).result(10)
        store = mb.store
        assert isinstance(store, Store)
        # Before, a full batch of 256 was written (and most of it deleted again at once); now
        # only what retention keeps waits, and nothing was written.
        assert indexed(store) == 0
        assert len(store._pending_index) <= 5
        # A search still finds every kept message, and only those.
        assert mb.search("needle")[1] == 5
        assert indexed(store) == 5
    finally:
        mb.close()


def test_without_retention_the_index_is_written_every_batch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(writer, "INDEX_DELAY", 60.0)
    monkeypatch.setattr(writer, "SEARCHED_RECENTLY", 0.0)
    mb = Mailbox(Config(database=str(tmp_path / "all.db"), max_messages=0))
    try:
        for i in range(writer.INDEX_BATCH + 1):
            mb.deliver(ENV, f"Subject: m{i}\r\n\r\nneedle {i}\r\n".encode()).result(10)
        store = mb.store
        assert isinstance(store, Store)
        assert indexed(store) >= writer.INDEX_BATCH  # nothing is pruned, so nothing is held
    finally:
        mb.close()


def test_a_rolled_back_delete_leaves_the_message_searchable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(writer, "INDEX_DELAY", 60.0)
    store = Store(str(tmp_path / "undo.db"))
    try:
        gate = threading.Event()
        store.submit(lambda s: gate.wait(10))  # holds the writer while the jobs below queue
        first = store.submit(lambda s: s.queue_index(1, [], ("kept", "", "", "", "")))

        def delete_then_fail(s: Store) -> None:
            s.unqueue_index([1])  # as a delete of message 1 does
            raise RuntimeError("this job fails after its delete")

        failing = store.submit(delete_then_fail)
        gate.set()
        first.result(10)
        with pytest.raises(Exception, match="fails after its delete"):
            failing.result(10)
        # The failed job's delete was rolled back, so the row it took out waits again.
        assert [p[0] for p in store._pending_index] == [1]
    finally:
        store.close()


def test_a_large_max_holds_back_a_bounded_number_of_messages(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(writer, "INDEX_DELAY", 60.0)
    monkeypatch.setattr(writer, "SEARCHED_RECENTLY", 0.0)
    monkeypatch.setattr(writer, "INDEX_BATCH", 4)
    monkeypatch.setattr(writer, "INDEX_HOLD_MAX", 6)
    mb = Mailbox(Config(database=str(tmp_path / "big.db"), max_messages=100_000))
    try:
        for i in range(12):
            mb.deliver(ENV, f"Subject: m{i}\r\n\r\nneedle {i}\r\n".encode()).result(10)
        store = mb.store
        assert isinstance(store, Store)
        # Retention keeps 100,000, yet no more than INDEX_BATCH + INDEX_HOLD_MAX wait.
        assert indexed(store) >= 12 - (4 + 6)
        assert len(store._pending_index) <= 4 + 6
    finally:
        mb.close()


def test_a_deleted_or_renamed_mailbox_holds_nothing_back(tmp_path: Path) -> None:
    mb = Mailbox(Config(database=str(tmp_path / "boxes.db"), max_messages=5))
    try:
        for name in ("a", "b"):
            mb.create_box(name)
            mb.deliver(ENV, b"Subject: x\r\n\r\nx\r\n", boxes={name: list(ENV.rcpt_to)}).result(10)
        store = mb.store
        assert isinstance(store, Store)
        assert {"a", "b"} <= set(store._index_hold)
        mb.delete_box("a")
        mb.rename_box("b", "c")
        store.write(lambda s: None)  # (the writer has run both)
        assert not {"a", "b"} & set(store._index_hold)
    finally:
        mb.close()
