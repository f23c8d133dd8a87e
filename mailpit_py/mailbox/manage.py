"""Mailbox management (list, create, rename, empty, delete) and the throttled count events."""

from __future__ import annotations

import time

from mailpit_py import events
from mailpit_py.mailbox.base import MailboxBase
from mailpit_py.mailbox.boxes import (
    DEFAULT_BOX,
    BoxExists,
    BoxInfo,
    BoxNotFound,
    BoxRefused,
    clean_box_name,
    is_box_name,
)
from mailpit_py.mailbox.shapes import stats_data
from mailpit_py.store.interface import StoreBackend


class BoxAdmin(MailboxBase):
    """Mailbox's mailboxes (mailbox/facade.py): each change commits, then is announced."""

    # (total, unread) of each mailbox as last published, so that a round of count events
    # names only the mailboxes that changed.
    _published: dict[str, tuple[int, int]]

    def boxes(self) -> list[BoxInfo]:
        """Every mailbox, sorted by name ('default' always among them)."""
        return [BoxInfo(*row) for row in self.store.mailboxes()]

    def box_info(self, name: str) -> BoxInfo:
        """One mailbox; BoxNotFound when there is none of that name."""
        for info in self.boxes():
            if info.name == name:
                return info
        raise BoxNotFound(name)

    def renamed_to(self, name: str) -> str | None:
        """The name now of a mailbox once called `name` (the store keeps the latest renames,
        so every instance on it answers alike, after a restart too); None."""
        return self.store.mailbox_renamed(name)

    def create_box(self, name: str) -> str:
        """Make an empty mailbox; returns its name as cleaned (mailbox/boxes.py). ValueError
        for a name that cleans to nothing or is too long, BoxExists when it exists."""
        clean = clean_box_name(name)
        if not self.store.write(lambda s: s.create_mailbox(clean, time.time())):
            raise BoxExists(clean)
        self._changed()
        return clean

    def rename_box(self, old: str, new: str) -> str:
        """Rename a mailbox with its messages (their IDs stay); returns the new name as
        cleaned. BoxNotFound, BoxExists, BoxRefused for the default mailbox, ValueError for a
        bad new name. Its subscribers hear where it went, then a truncate (it is gone), the new
        name's a prune (reload: the messages are there now)."""
        if old == DEFAULT_BOX:
            raise BoxRefused("the default mailbox cannot be renamed")
        clean = clean_box_name(new)
        if clean == DEFAULT_BOX:
            raise BoxExists(clean)
        if not is_box_name(old):
            raise BoxNotFound(old)
        if clean == old:
            self.box_info(old)  # (BoxNotFound when there is none)
            return clean

        def job(store: StoreBackend) -> Exception | None:
            # A refusal is an answer, not a failed job (which the writer would log).
            try:
                store.rename_mailbox(old, clean)
            except KeyError:
                return BoxNotFound(old)
            except ValueError:
                return BoxExists(clean)
            return None

        refused = self.store.write(job)
        if refused is not None:
            raise refused
        self._move_tally(old, clean)
        self.bus.publish(events.MailboxRenamed({"From": old, "To": clean}, box=old))
        self.bus.publish(events.Truncate(box=old))
        self.bus.publish(events.Prune({"IDs": []}, box=clean))
        self._changed()
        return clean

    def delete_box(self, name: str) -> list[str]:
        """Delete a mailbox with its messages and sessions; the IDs deleted. BoxNotFound,
        BoxRefused for the default mailbox (which can be emptied instead)."""
        if name == DEFAULT_BOX:
            raise BoxRefused("the default mailbox cannot be deleted (empty it instead)")
        if not is_box_name(name):
            raise BoxNotFound(name)

        def job(store: StoreBackend) -> list[str] | BoxNotFound:
            try:
                return store.delete_mailbox(name)
            except KeyError:
                return BoxNotFound(name)

        gone = self.store.write(job)
        if isinstance(gone, BoxNotFound):
            raise gone
        self.deleted += len(gone)
        self._tallies.pop(name, None)
        self.bus.publish(events.Truncate(box=name))
        self._changed()
        return gone

    def _move_tally(self, old: str, new: str) -> None:
        found = self._tallies.pop(old, None)
        if found is not None:
            self._tallies[new] = found

    # -- the counts' events ---------------------------------------------------------------------

    def _publish_counts(self) -> None:
        """A `stats` event for each mailbox whose counts changed since the last round (to its
        subscribers), and a `mailboxes` event with every mailbox's when any changed."""
        counts = {name: (total, unread) for name, total, unread, _ in self.store.mailboxes()}
        if counts == self._published:
            return  # (a change undone within the round, or already told)
        for name, (total, unread) in counts.items():
            if self._published.get(name) != (total, unread):
                self.bus.publish(events.Stats(stats_data(total, unread), box=name))
        self._published = counts
        self.bus.publish(
            events.MailboxCounts(
                [{"Name": n, "Total": t, "Unread": u} for n, (t, u) in counts.items()]
            )
        )
