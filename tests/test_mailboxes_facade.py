"""Mailboxes in the facade: events name their mailbox, a BoxView sees its mailbox alone (on
SQLite and PostgreSQL), delivery stores a copy per routed mailbox in one job, retention keeps
each mailbox's newest, and mailboxes are created, renamed, emptied and deleted with events."""

from __future__ import annotations

from mailpit_py import events
from mailpit_py.mailbox.boxes import DEFAULT_BOX


def test_every_event_names_its_mailbox_and_counts_concern_every_mailbox() -> None:
    assert events.DEFAULT_BOX == DEFAULT_BOX
    for cls in (
        events.NewMessage,
        events.Update,
        events.Delete,
        events.Truncate,
        events.Prune,
        events.Stats,
        events.SmtpError,
    ):
        assert cls({}).box == DEFAULT_BOX
        event = cls({}, box="proj")
        assert event.concerns("proj") and not event.concerns(DEFAULT_BOX)
    counts = events.MailboxCounts([{"Name": "default", "Total": 1, "Unread": 0}])
    assert counts.box == events.EVERY_BOX
    assert counts.concerns("proj") and counts.concerns(DEFAULT_BOX)
    # The frame stays Mailpit's: the mailbox is for the subscribers' filter, not the client.
    assert counts.to_api() == {
        "Type": "mailboxes",
        "Data": [{"Name": "default", "Total": 1, "Unread": 0}],
    }
    assert events.Truncate(box="proj").to_api() == {"Type": "truncate", "Data": None}
