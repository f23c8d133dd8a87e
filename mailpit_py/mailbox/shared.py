"""Instances sharing one database hear of each other's changes: this instance's mailbox events
go to the others through the store (notify), and theirs come onto this instance's bus, so
every instance's websocket clients and IMAP sessions see every instance's mail."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from mailpit_py import events
from mailpit_py.ids import new_id
from mailpit_py.mailbox.boxes import is_box_name
from mailpit_py.mailbox.facade import Mailbox, MessageNotFound
from mailpit_py.store.records import StoreError

log = logging.getLogger("mailpit_py.mailbox")

# What the other instances are told of (stats and SMTP errors stay with their instance). Of the
# mailboxes' counts, only that the mailboxes themselves changed (one made, renamed or deleted
# there): each instance reads every mailbox's counts from the database and tells its own
# clients (Mailbox.changed_elsewhere), so the list is never one instance's copy.
SHARED: dict[str, type[events.Event]] = {
    cls.type: cls
    for cls in (
        events.NewMessage,
        events.Update,
        events.Delete,
        events.Truncate,
        events.Prune,
        events.MailboxCounts,
        events.MailboxRenamed,
    )
}
MAX_IDS = 200  # a Prune naming more IDs says none (its frame's Data is null anyway)
BATCH = 100  # notifications sent in one round trip at most
# Tries of a notification's round trip and of a new message's summary read before they are given
# up: after the database restarted, pooled connections used moments before are handed out
# unchecked (a check costs a round trip per read) and fail once each before they are replaced,
# so one failure says little about the next try.
TRIES = 10


class SharedEvents:
    """The bridge between one mailbox's bus and the other instances on its database."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.origin = new_id()  # this instance, so that it skips its own notifications
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._sub: events.Subscription | None = None
        self._names: set[str] | None = None  # the mailboxes the last counts event named

    def start(self) -> SharedEvents:
        """Start relaying, when the store has other instances to hear (else do nothing)."""
        self._sub = self.mailbox.bus.subscribe()
        if not self.mailbox.store.listen(self._received):
            self._sub.close()
            self._sub = None
            return self
        self._thread = threading.Thread(target=self._forward, name="shared-events", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._sub is not None:
            self._sub.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _forward(self) -> None:
        sub = self._sub
        assert sub is not None
        while not self._stopping.is_set() and not sub.ended.is_set():
            if sub.dropped.is_set():
                log.warning("shared events: fell behind the bus; other instances missed some")
                sub = self._sub = self.mailbox.bus.subscribe()
            # What came meanwhile goes together: one round trip for a burst of deliveries.
            batch = [sub.get(timeout=0.5)]
            while len(batch) < BATCH and not sub.queue.empty():
                batch.append(sub.get(timeout=0))
            told = [
                self._message(event)
                for event in batch
                if event is not None
                and not event.remote
                and event.type in SHARED
                and self._worth_telling(event)
            ]
            self._notify(told)

    def _notify(self, told: list[str]) -> None:
        for attempt in range(TRIES):
            try:
                self.mailbox.store.notify(told)
                return
            except ValueError as exc:
                log.warning("shared events: the other instances were not told: %s", exc)
                return
            except StoreError as exc:  # (a failed NOTIFY was not sent: trying again is safe)
                if attempt == TRIES - 1:
                    log.warning("shared events: the other instances were not told: %s", exc)

    def _worth_telling(self, event: events.Event) -> bool:
        """A counts event is told when the mailboxes it names are not those of the last one:
        the others hear of every delivery already (each message's `new`)."""
        if not isinstance(event, events.MailboxCounts):
            return True
        names = {str(d.get("Name")) for d in event.data or () if isinstance(d, dict)}
        if names == self._names:
            return False
        self._names = names
        return True

    def _message(self, event: events.Event) -> str:
        data: Any = event.data
        if isinstance(event, events.NewMessage):
            data = {"ID": data["ID"]}  # they read the summary themselves (it may be large)
        elif isinstance(event, events.Prune) and len((data or {}).get("IDs", ())) > MAX_IDS:
            data = {"IDs": []}
        elif isinstance(event, events.MailboxCounts):
            data = None  # (the others read the counts themselves; the list may be long)
        # The mailbox goes along: the other instances' subscribers hear their own mailbox's.
        return json.dumps(
            {"Origin": self.origin, "Type": event.type, "Data": data, "Box": event.box}
        )

    def _received(self, message: str) -> None:
        try:
            note = json.loads(message)
            cls = SHARED[note["Type"]]
        except (ValueError, KeyError, TypeError):
            log.warning("shared events: ignored a notification that is not ours")
            return
        if note.get("Origin") == self.origin:
            return
        data = note.get("Data")
        box = note.get("Box")
        if not isinstance(box, str) or not (box == events.EVERY_BOX or is_box_name(box)):
            box = events.DEFAULT_BOX  # (an instance from before mailboxes: every message's)
        if cls is events.NewMessage:
            data = self._summary(data)
            if data is None:
                return
        if cls is events.MailboxRenamed and not _renaming(data):
            log.warning("shared events: ignored a mailbox rename that names no two mailboxes")
            return
        if cls is not events.MailboxCounts:  # (this instance publishes its own, just below)
            self.mailbox.bus.publish(cls(data, remote=True, box=box))
        self.mailbox.changed_elsewhere()  # this instance's clients get the new counts too

    def _summary(self, data: Any) -> dict[str, Any] | None:
        """The summary a `new` event names; None when it is gone again or stays unreadable."""
        try:
            uid = str(data["ID"])
        except (KeyError, TypeError):
            return None
        for attempt in range(TRIES):
            try:
                return self.mailbox.summary(uid)
            except MessageNotFound:
                return None  # deleted since: nothing to announce
            except StoreError as exc:
                if attempt == TRIES - 1:
                    log.warning("shared events: message %s not announced: %s", uid, exc)
        return None


def _renaming(data: Any) -> bool:
    """Whether a rename told by another instance names two mailboxes (pages follow its To)."""
    return isinstance(data, dict) and all(
        isinstance(data.get(key), str) and is_box_name(data[key]) for key in ("From", "To")
    )
