"""Deleting every message answers within DELETE_ALL_WAIT even when the store takes longer
(a million messages took 8-13 s), and the clients still hear the truncate once it commits."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mailpit_py import events
from mailpit_py.config.settings import Config
from mailpit_py.mailbox import facade
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store.records import StoreError

RAW = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\n\r\nbody\r\n"


def test_a_slow_delete_of_everything_answers_then_still_announces_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(facade, "DELETE_ALL_WAIT", 0.2)
    # A file, so reads go on beside the writer (in memory they take turns with it).
    mb = Mailbox(Config(database=str(tmp_path / "mail.db"), max_messages=0))
    try:
        mb.deliver(Envelope("a@example.com", ("b@example.org",)), RAW).result(timeout=10)
        sub = mb.bus.subscribe()
        release = threading.Event()
        # The writer runs jobs in order: one that waits holds the delete behind it, as a delete
        # of a million rows holds its request.
        mb.store.submit(lambda s: release.wait(30))
        with pytest.raises(StoreError, match="takes longer than 0.2s: it goes on"):
            mb.delete_all()
        assert mb.counts()[0] == 1  # not deleted yet
        release.set()

        def truncate_heard() -> bool:
            while (event := sub.get(timeout=10)) is not None:
                if isinstance(event, events.Truncate):
                    return True
            return False

        assert truncate_heard()
        assert mb.counts()[0] == 0
        sub.close()
    finally:
        mb.close()


def test_a_quick_delete_of_everything_returns_its_count_and_announces_it() -> None:
    mb = Mailbox(Config(database=":memory:", max_messages=0))
    try:
        for _ in range(3):
            mb.deliver(Envelope("a@example.com", ("b@example.org",)), RAW).result(timeout=10)
        sub = mb.bus.subscribe()
        assert mb.delete_all() == 3
        event = sub.get(timeout=10)
        while event is not None and not isinstance(event, events.Truncate):
            event = sub.get(timeout=10)
        assert isinstance(event, events.Truncate)
        sub.close()
    finally:
        mb.close()
