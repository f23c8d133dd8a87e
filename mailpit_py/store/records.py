"""The values the store exchanges with the layers above, whatever the backend."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol


class StoreError(RuntimeError):
    """The store could not do what was asked (disk full, locked past the deadline, closed)."""


class TagError(ValueError):
    """A tag rename that cannot be done, as Mailpit refuses it: the message says why (400)."""


_TICKETS = threading.Lock()  # (one for all tickets: each is taken twice at most, briefly)


class Ticket:
    """A queued write that its submitter may give up on until the writer starts it.

    SMTP answers 451 when a message is not committed by its deadline; a job still waiting then
    must never commit afterwards, or the client's retry stores the message twice. Whichever
    comes first wins: cancel() (the job is skipped) or the writer's start (cancel() then returns
    False, and the submitter waits for the commit that is under way).
    """

    __slots__ = ("_state",)

    def __init__(self) -> None:
        self._state = 0  # 0 waiting, 1 started, 2 cancelled

    def cancel(self) -> bool:
        """True when the job will not run (cancelled now or before); False once it started."""
        with _TICKETS:
            if self._state == 0:
                self._state = 2
            return self._state == 2

    def start(self) -> bool:
        """The writer's side: True when the job may run (it can no longer be cancelled)."""
        with _TICKETS:
            if self._state == 0:
                self._state = 1
            return self._state == 1


class MessageRecord(NamedTuple):
    """One message as the store keeps it; built by mailbox from the parsed message (a
    NamedTuple for the same reason as models.ParsedMessage: one per message, built fast)."""

    uid: str
    mailbox: str
    created: float
    size: int
    message_id: str
    subject: str
    from_json: str
    to_json: str
    cc_json: str
    bcc_json: str
    reply_to_json: str
    username: str
    snippet: str
    attachments: int
    inline_count: int
    session_uid: str
    raw: bytes
    detail: bytes | str  # detailcodec.encode: a pickle, or JSON text for non-plain data
    transcript: str
    parts: Sequence[tuple[str, str, bytes]]  # (part_id, content_type, data)
    tags: Sequence[str]
    headers: Sequence[tuple[str, str]]
    fts: tuple[str, str, str, str, str]  # subject, addresses, body, attachments, headers
    refused: str = ""  # JSON of the receiver's refusal (--receiver); "" when accepted
    listener: str = ""  # the SMTP listener that took it (--smtp-listener)


@dataclass(frozen=True)
class SessionRecord:
    """One SMTP session for the session log, with its transcript as JSON."""

    uid: str
    started: float
    ended: float
    peer: str
    local: str
    helo: str
    tls: bool
    username: str
    outcome: str
    messages: Sequence[str]
    transcript: str
    mailbox: str = "default"  # the mailbox its messages went to (store/interface.py)


class Row(Protocol):
    """A row read back: its columns by name (sqlite3.Row is one; another backend's row or a
    dict-like record will do). The column names are those of the summary, session and outbox
    reads in interface.py."""

    def __getitem__(self, key: str, /) -> Any: ...

    def keys(self) -> list[str]: ...
