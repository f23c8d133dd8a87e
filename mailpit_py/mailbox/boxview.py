"""BoxView: the Mailbox facade bound to one mailbox, which the web, IMAP and POP3 hold."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from mailpit_py import events
from mailpit_py.mailbox import redact
from mailpit_py.mailbox.boxes import BoxInfo
from mailpit_py.mailbox.shapes import StoredMessage
from mailpit_py.models import Envelope

if TYPE_CHECKING:  # (the facade makes views: a run-time import would be circular)
    from mailpit_py.mailbox.facade import IndexEntry, Mailbox


class BoxView:
    """Mailbox's public methods for one mailbox, `box`, without the `box` parameter: another
    mailbox's message is exactly a message that does not exist (MessageNotFound, or skipped by
    a change). A view of a mailbox that does not exist reads as an empty one."""

    __slots__ = ("box", "mailbox")

    def __init__(self, mailbox: Mailbox, box: str) -> None:
        self.mailbox = mailbox
        self.box = box

    def __repr__(self) -> str:
        return f"BoxView({self.box!r})"

    # -- the mailbox itself ------------------------------------------------------------------

    def info(self) -> BoxInfo:
        """Its name, counts and creation time; BoxNotFound when it does not exist."""
        return self.mailbox.box_info(self.box)

    def exists(self) -> bool:
        return any(info.name == self.box for info in self.mailbox.boxes())

    def concerns(self, event: events.Event) -> bool:
        """Whether a subscriber to this mailbox is told of `event` (websocket, IMAP)."""
        return event.concerns(self.box)

    def totals(self) -> tuple[int, int, int]:
        """(messages accepted, their bytes, messages deleted) in this mailbox since start."""
        tally = self.mailbox.tally(self.box)
        return tally.accepted, tally.accepted_size, tally.deleted

    # -- delivery ------------------------------------------------------------------------------

    def deliver(self, envelope: Envelope, raw: bytes, **kw: Any) -> Future[str]:
        """Store a message in this mailbox, for every recipient of `envelope` (IMAP APPEND,
        the send API); Mailbox.deliver's keywords."""
        return self.mailbox.deliver(envelope, raw, boxes={self.box: list(envelope.rcpt_to)}, **kw)

    # -- reads ---------------------------------------------------------------------------------

    def resolve(self, msg_id: str) -> str:
        return self.mailbox.resolve(msg_id, self.box)

    def get(self, msg_id: str, *, mark_read: bool = False) -> StoredMessage:
        """The message; its SMTP log without another mailbox's recipients (mailbox/redact.py)."""
        msg = self.mailbox.get(msg_id, mark_read=mark_read, box=self.box)
        lines = redact.for_box(msg.transcript, self.box, self._owns, msg.id)
        return dataclasses.replace(msg, transcript=lines)

    def _owns(self, uid: str) -> bool:
        return self.mailbox.store.box_of(uid) == self.box

    def _session_shown(self, session: dict[str, Any]) -> dict[str, Any]:
        """A session as this mailbox shows it: its log without another mailbox's recipients,
        and of its messages only this mailbox's (a session sending to several mailboxes is
        listed in one, with the IDs of the copies the 250s named)."""
        lines = [(t["Time"], t["Dir"], t["Line"]) for t in session["Transcript"]]
        shown = redact.for_box(lines, self.box, self._owns)
        if shown == [list(line) for line in lines]:
            return session  # (every session of a single mailbox: nothing read twice)
        session["Transcript"] = [{"Time": t, "Dir": d, "Line": line} for t, d, line in shown]
        session["Messages"] = [uid for uid in session["Messages"] if self._owns(uid)]
        return session

    def summary(self, msg_id: str) -> dict[str, Any]:
        return self.mailbox.summary(msg_id, box=self.box)

    def list_messages(
        self, start: int = 0, limit: int = 50, before: float | None = None
    ) -> list[dict[str, Any]]:
        return self.mailbox.list_messages(start, limit, before, box=self.box)

    def search(
        self, query: str, start: int = 0, limit: int = 50, tz: str = "", before: float | None = None
    ) -> tuple[list[dict[str, Any]], int, int]:
        return self.mailbox.search(query, start, limit, tz, before, box=self.box)

    def counts(self) -> tuple[int, int]:
        return self.mailbox.counts(box=self.box)

    def statistics(self, now: float | None = None) -> dict[str, Any]:
        return self.mailbox.statistics(now, box=self.box)

    def raw(self, msg_id: str) -> bytes:
        return self.mailbox.raw(msg_id, box=self.box)

    def raw_stream(self, msg_id: str) -> tuple[int, Iterator[bytes]]:
        return self.mailbox.raw_stream(msg_id, box=self.box)

    def part(self, msg_id: str, part_id: str) -> tuple[str, bytes]:
        return self.mailbox.part(msg_id, part_id, box=self.box)

    def part_stream(self, msg_id: str, part_id: str) -> tuple[str, int, Iterator[bytes]]:
        return self.mailbox.part_stream(msg_id, part_id, box=self.box)

    def checks(self, msg_id: str) -> dict[str, Any] | None:
        return self.mailbox.checks(msg_id, box=self.box)

    def relay_history(self, msg_id: str) -> dict[str, Any]:
        return self.mailbox.relay_history(msg_id, box=self.box)

    def index(self, tag: str | None = None) -> list[IndexEntry]:
        return self.mailbox.index(tag, box=self.box)

    def tags(self) -> list[str]:
        return self.mailbox.tags(box=self.box)

    def tag_counts(self) -> dict[str, int]:
        return self.mailbox.tag_counts(box=self.box)

    def session(self, session_id: str) -> dict[str, Any]:
        return self._session_shown(self.mailbox.session(session_id, box=self.box))

    def session_count(self) -> int:
        return self.mailbox.session_count(box=self.box)

    def sessions(self, start: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        return [self._session_shown(s) for s in self.mailbox.sessions(start, limit, box=self.box)]

    # IMAP's numbering: UIDs are message ids, unique across mailboxes, so the database's
    # UIDVALIDITY holds for every mailbox; flags are keyed by those ids.

    def uid_validity(self) -> int:
        return self.mailbox.uid_validity()

    def next_imap_uid(self) -> int:
        """One past this mailbox's newest UID (1 when it is empty): the lowest UIDNEXT it may
        have (the IMAP server keeps the one it told from going down). Not the database's next
        id, which moves with every mailbox's mail: a login polling STATUS would learn when
        another mailbox got some."""
        uid = self.mailbox.store.latest_uid(box=self.box)
        row = None if uid is None else self.mailbox.store.summary(uid)
        return 1 if row is None else int(row["id"]) + 1

    def imap_flags(self) -> dict[int, set[str]]:
        """The IMAP flags of this mailbox's messages (other than \\Seen), by IMAP UID."""
        flags = self.mailbox.imap_flags()
        if not flags:
            return flags
        mine = {entry.imap_uid for entry in self.index()}
        return {uid: found for uid, found in flags.items() if uid in mine}

    def save_imap_flags(self, changes: dict[int, set[str]]) -> None:
        """Replace the flags of these IMAP UIDs; another mailbox's are skipped."""
        mine = {entry.imap_uid for entry in self.index()}
        own = {uid: found for uid, found in changes.items() if uid in mine}
        if own:
            self.mailbox.save_imap_flags(own)

    # -- writes --------------------------------------------------------------------------------

    def mark_read(self, uids: Sequence[str] | None, read: bool = True) -> list[str]:
        return self.mailbox.mark_read(uids, read, box=self.box)

    def mark_search(self, query: str, read: bool = True, tz: str = "") -> list[str]:
        return self.mailbox.mark_search(query, read, tz, box=self.box)

    def delete(self, uids: Sequence[str], *, prune: bool = False) -> list[str]:
        return self.mailbox.delete(uids, prune=prune, box=self.box)

    def delete_search(self, query: str, tz: str = "") -> list[str]:
        return self.mailbox.delete_search(query, tz, box=self.box)

    def delete_all(self) -> int:
        return self.mailbox.delete_all(box=self.box)

    def set_tags(self, uids: Sequence[str], tags: Sequence[str]) -> list[str]:
        return self.mailbox.set_tags(uids, tags, box=self.box)

    def rename_tag(self, old: str, new: str) -> list[str]:
        return self.mailbox.rename_tag(old, new, box=self.box)

    def delete_tag(self, tag: str) -> list[str]:
        return self.mailbox.delete_tag(tag, box=self.box)

    def queue_relay(
        self, msg_id: str, kind: str, mail_from: str, rcpts: Sequence[str], raw: bytes
    ) -> int:
        return self.mailbox.queue_relay(msg_id, kind, mail_from, rcpts, raw, box=self.box)
