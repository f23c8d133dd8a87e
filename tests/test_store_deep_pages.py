"""A page of the message list past the middle is found from the oldest end: the same pages as
from the newest end, with gaps from deletions, in the whole store and in one mailbox, and it
steps over the entries from the nearer end only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers import sqlite_steps
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope

ENV = Envelope("a@example.com", ("b@example.org",))
N = 400


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    # No background checks: their writes would share the connection whose steps are counted.
    mb = Mailbox(Config(database=":memory:", max_messages=0, disable_checks=True))
    try:
        for i in range(N):
            raw = f"Subject: m{i}\r\nFrom: a@example.com\r\n\r\nbody {i}\r\n".encode()
            boxes = {"shop": list(ENV.rcpt_to)} if i % 3 == 0 else None
            mb.deliver(ENV, raw, boxes=boxes).result(10)
        ids = [m["ID"] for m in mb.list_messages(0, N)]
        mb.delete(ids[5::7])  # gaps in the ids, spread over the whole list
        yield mb
    finally:
        mb.close()


def subjects(rows: list[dict[str, object]]) -> list[object]:
    return [r["Subject"] for r in rows]


@pytest.mark.parametrize("box", [None, "shop"])
def test_every_page_is_the_slice_of_the_whole_list(mailbox: Mailbox, box: str | None) -> None:
    everything = subjects(mailbox.list_messages(0, 10_000, box=box))
    total = len(everything)
    assert total > 100
    starts = [0, 1, 49, total // 2 - 1, total // 2, total // 2 + 1, total - 51, total - 50]
    starts += [total - 2, total - 1, total, total + 1, total + 500]
    for start in starts:
        for limit in (1, 7, 50, 10_000):
            page = subjects(mailbox.list_messages(start, limit, box=box))
            assert page == everything[start : start + limit], (start, limit)


def vm_steps(mailbox: Mailbox, start: int, box: str | None = None) -> int:
    """SQLite virtual machine steps (in hundreds) to read one page: what OFFSET walks."""
    return sqlite_steps(mailbox.store, lambda: mailbox.list_messages(start, 20, box=box))


@pytest.mark.parametrize("box", [None, "shop"])
def test_a_page_near_the_end_steps_over_no_more_than_one_near_the_start(
    mailbox: Mailbox, box: str | None
) -> None:
    total = len(mailbox.list_messages(0, 10_000, box=box))
    near_start = vm_steps(mailbox, 20, box)
    near_end = vm_steps(mailbox, total - 40, box)
    middle = vm_steps(mailbox, total // 2 - 10, box)
    # From the newest end, a page near the end stepped over every entry before it.
    assert near_end <= near_start + 2
    assert middle > near_end


def test_tag_counts_of_a_mailbox_holding_every_message_read_the_tags_alone() -> None:
    mb = Mailbox(Config(database=":memory:", max_messages=0, disable_checks=True))
    try:
        for i in range(300):
            mb.deliver(ENV, f"Subject: m{i}\r\n\r\nbody\r\n".encode()).result(10)
        mb.set_tags([mb.list_messages(0, 1)[0]["ID"]], ["one"])
        every = sqlite_steps(mb.store, lambda: mb.store.tag_counts())
        boxed = sqlite_steps(mb.store, lambda: mb.store.tag_counts(box="default"))
        assert mb.store.tag_counts(box="default") == mb.store.tag_counts() == {"one": 1}
        assert boxed <= every + 2  # the list shows these with every page
    finally:
        mb.close()
