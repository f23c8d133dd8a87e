"""What the Mailbox facade's parts (reads and writes, delivery, mailbox management) share."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from mailpit_py import events
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.hooks import DeliveryHooks
from mailpit_py.mailbox.tags import AutoTags
from mailpit_py.observability.stats import MinuteCounter
from mailpit_py.observability.telemetry import Telemetry
from mailpit_py.store.interface import StoreBackend

T = TypeVar("T")


class MessageNotFound(LookupError):
    """No message with that ID (or no message at all, for `latest`)."""

    def __init__(self, msg_id: str) -> None:
        super().__init__(
            "no messages in the mailbox" if msg_id == "latest" else f"message {msg_id!r} not found"
        )
        self.msg_id = msg_id


class SessionNotFound(LookupError):
    """No logged SMTP session with that ID (or none of the mailbox asked)."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"SMTP session {session_id!r} not found")


@dataclass
class BoxTally:
    """What one mailbox took and lost since start, for its statistics view."""

    accepted: int = 0
    accepted_size: int = 0
    deleted: int = 0
    arrivals: MinuteCounter = field(default_factory=MinuteCounter)


class MailboxBase:
    """The state every part of the facade reads (set by Mailbox.__init__) and their helpers."""

    config: Config
    store: StoreBackend
    bus: events.Bus
    hooks: DeliveryHooks
    auto_tags: AutoTags
    telemetry: Telemetry
    arrivals: MinuteCounter
    accepted: int
    accepted_size: int
    deleted: int
    last_delivery: float
    _parsers: ThreadPoolExecutor
    _stats_dirty: threading.Event
    _tallies: dict[str, BoxTally]

    def _changed(self) -> None:
        """Counts changed: the stats thread publishes them, throttled."""
        if not self._stats_dirty.is_set():  # set() takes a Condition even when it is set
            self._stats_dirty.set()

    def tally(self, box: str) -> BoxTally:
        """The tally of one mailbox (made on first use; a dict insert is atomic)."""
        found = self._tallies.get(box)
        if found is None:
            found = self._tallies.setdefault(box, BoxTally())
        return found

    def _count_deleted(self, by_box: list[tuple[str, list[str]]]) -> None:
        for box, gone in by_box:
            self.deleted += len(gone)
            self.tally(box).deleted += len(gone)

    def box_max(self, box: str) -> int:
        """How many messages mailbox `box` keeps (0: no limit): its own `max` from the mailbox
        configuration when it has one, else --max."""
        found = self.config.box_max(box)
        return self.config.max_messages if found is None else found

    def _box_names(self, box: str | None) -> list[str]:
        """The mailboxes a change asked with `box` covers: that one, or every one."""
        return [box] if box is not None else [row[0] for row in self.store.mailboxes()]

    def _each_box(
        self, box: str | None, op: Callable[[StoreBackend, str], list[T]]
    ) -> Callable[[StoreBackend], list[tuple[str, list[T]]]]:
        """A write job running `op` once per mailbox `box` covers, so that what it changed is
        told to that mailbox's subscribers alone. For every mailbox (None) the list is read
        before the job: a message whose ID a caller holds is in a mailbox listed by then (the
        mailbox's row commits with its first message), and one a search in the job would find
        in a mailbox made meanwhile is left as if it came after the search."""
        names = self._box_names(box)

        def job(store: StoreBackend) -> list[tuple[str, list[T]]]:
            found = [(name, op(store, name)) for name in names]
            return [(name, changed) for name, changed in found if changed]

        return job

    def resolve(self, msg_id: str, box: str | None = None) -> str:
        """The ID `msg_id` names ('latest': the newest message of `box`); MessageNotFound for
        'latest' of an empty mailbox, and for a message of another mailbox than `box`."""
        if msg_id == "latest":
            uid = self.store.latest_uid(box=box)
            if uid is None:
                raise MessageNotFound(msg_id)
            return uid
        if box is not None and self.store.box_of(msg_id) != box:
            raise MessageNotFound(msg_id)
        return msg_id

    def _latest(self, msg_id: str, box: str | None) -> str:
        """As resolve, leaving the mailbox to the caller, which reads it with the message."""
        return self.resolve(msg_id, box) if msg_id == "latest" else msg_id
