"""Typed mailbox events and a thread-safe publish/subscribe bus that never blocks a publisher."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

from mailpit_py import jsontext

# The mailbox of an event that names none; mailbox/boxes.py's DEFAULT_BOX (the bus sits below the
# mailbox layer, so the name is repeated here, and a test keeps the two equal).
DEFAULT_BOX = "default"
EVERY_BOX = "*"  # an event every mailbox's subscribers hear (MailboxCounts, a change to all)


@dataclass(frozen=True, eq=False)
class Event:
    """Base of every event; `type` is the websocket frame's Type (Mailpit's names).

    `box` is the mailbox the event concerns, or EVERY_BOX: the websocket and IMAP pass a
    subscriber only its own mailbox's events (and EVERY_BOX's), so that no client hears of
    another mailbox's messages; the frame itself stays Mailpit's ({"Type", "Data"})."""

    type: ClassVar[str] = ""
    data: Any = None
    # Made by another instance sharing the database (mailbox/shared.py), told here so that
    # websockets and IMAP see it; work done once per message (the webhook) skips it.
    remote: bool = False
    box: str = DEFAULT_BOX

    def concerns(self, box: str) -> bool:
        """Whether a subscriber to mailbox `box` is told of this event."""
        return self.box == box or self.box == EVERY_BOX

    def to_api(self) -> dict[str, Any]:
        return {"Type": self.type, "Data": self.data}

    @cached_property
    def frame(self) -> str:
        """The JSON text frame, encoded once however many clients receive it."""
        return jsontext.dumps(self.to_api())


@dataclass(frozen=True, eq=False)
class NewMessage(Event):
    type: ClassVar[str] = "new"


@dataclass(frozen=True, eq=False)
class Update(Event):
    type: ClassVar[str] = "update"


@dataclass(frozen=True, eq=False)
class Delete(Event):
    type: ClassVar[str] = "delete"


@dataclass(frozen=True, eq=False)
class Truncate(Event):
    type: ClassVar[str] = "truncate"


@dataclass(frozen=True, eq=False)
class Prune(Event):
    """Many messages went at once (retention, a large delete, POP3) or the tags changed.

    `data` holds the removed IDs for subscribers in this process; the frame's Data is null, as
    Mailpit sends it: a client reloads what it shows."""

    type: ClassVar[str] = "prune"

    def to_api(self) -> dict[str, Any]:
        return {"Type": self.type, "Data": None}


@dataclass(frozen=True, eq=False)
class MailboxRenamed(Event):
    """A mailbox was renamed: `data` is {"From": old, "To": new}, `box` the old name.

    Told to the old name's subscribers before its truncate, so that a page showing that mailbox
    can follow its messages to the new address: the truncate and the counts without the old name
    alone would tell it the mailbox was deleted."""

    type: ClassVar[str] = "mailbox-renamed"


@dataclass(frozen=True, eq=False)
class Stats(Event):
    type: ClassVar[str] = "stats"


@dataclass(frozen=True, eq=False)
class MailboxCounts(Event):
    """Every mailbox's counts changed: `data` is [{"Name", "Total", "Unread"}], sorted by name.

    Published throttled, as `stats`, with box EVERY_BOX (a mailbox list shows them all)."""

    type: ClassVar[str] = "mailboxes"
    box: str = EVERY_BOX


@dataclass(frozen=True, eq=False)
class SmtpError(Event):
    type: ClassVar[str] = "error"


@dataclass
class Subscription:
    """One subscriber's bounded queue; `dropped` is set when it fell behind and was cut off."""

    bus: Bus
    queue: queue.Queue[Event] = field(default_factory=lambda: queue.Queue(maxsize=1000))
    dropped: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)  # the bus shut down

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after `timeout` seconds (lets a handler notice a gone peer)."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Bus:
    """Fan-out of events to subscribers; publish() never blocks (DESIGN.md convention 4)."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._queue_size = queue_size

    def subscribe(self) -> Subscription:
        sub = Subscription(self, queue.Queue(maxsize=self._queue_size))
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subs)

    def close(self) -> None:
        """End every subscription (server shutdown): their readers stop and close."""
        with self._lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.ended.set()

    def publish(self, event: Event) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            try:
                sub.queue.put_nowait(event)
            except queue.Full:
                # A subscriber that falls behind is dropped rather than slowing delivery; it
                # sees `dropped` set and reconnects (and reloads its view) when it wants more.
                sub.dropped.set()
                self.unsubscribe(sub)
