"""The record of one SMTP session: its lines with time offsets, bounded for long sessions."""

from __future__ import annotations

import time
from typing import Any

from mailpit_py import jsontext

# A session's own record keeps its preamble and this many of its latest transactions.
KEEP_TRANSACTIONS = 10
# Lines kept of the preamble and of each transaction: NOOP re-arms the idle timer, so a client
# may send commands for as long as it likes (300,000 NOOPs were 600,000 lines, 115 MB). The
# rest are counted in a note that takes the last kept line's place.
MAX_LINES = 2000


class Transcript:
    """The lines of one SMTP session with millisecond offsets; AUTH secrets are masked."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.started = time.time()
        self.entries: list[list[Any]] = []
        self.preamble_end: int | None = None  # index where the first transaction began
        self.txn_start = 0
        self._starts: list[int] = []  # where each transaction after the first one began
        self.omitted = 0  # transactions dropped from this session's record (see _trim)
        self._preamble_json: str | None = None  # its entries as JSON, without the brackets
        self._cut = 0  # lines of the current part (preamble or transaction) not kept

    def offset(self) -> float:
        """Milliseconds since the session began, to a tenth (round(x, 1) costs 2.5x this)."""
        return int((time.monotonic() - self.t0) * 10000 + 0.5) / 10

    def add(self, direction: str, line: str) -> None:
        if len(self.entries) - self.txn_start < MAX_LINES:
            self.entries.append([self.offset(), direction, line])
            return
        self._cut += 1
        self.entries[-1] = [
            self.offset(),
            "I",
            f"{self._cut + 1} more lines of this part of the session are not kept",
        ]

    def begin_transaction(self) -> None:
        self._cut = 0
        if self.preamble_end is not None:
            self._starts.append(len(self.entries))
            if len(self._starts) > 2 * KEEP_TRANSACTIONS:
                self._trim()
        self.txn_start = len(self.entries)

    def _trim(self) -> None:
        """Drop all but the last KEEP_TRANSACTIONS transactions after the preamble.

        A client that keeps one session open for hours (a queue worker) would otherwise grow
        this list, and the session's row in the log, by every message it sends; each message
        keeps its own transcript anyway.
        """
        assert self.preamble_end is not None
        start = self.preamble_end + (1 if self.omitted else 0)  # after the earlier note
        end = self._starts[-KEEP_TRANSACTIONS]
        self.omitted += len(self._starts) - KEEP_TRANSACTIONS + (0 if self.omitted else 1)
        del self.entries[start:end]
        note = [
            self.entries[start][0] if start < len(self.entries) else 0,
            "I",
            f"{self.omitted} earlier transactions of this session are not kept here "
            "(each message keeps its own transcript)",
        ]
        if start == self.preamble_end:
            self.entries.insert(start, note)
            removed = end - start - 1
        else:
            self.entries[self.preamble_end] = note
            removed = end - start
        self._starts = [at - removed for at in self._starts[-KEEP_TRANSACTIONS:]]

    def for_message(self, last: list[Any]) -> str:
        """The session preamble plus the current MAIL..DATA exchange and `last`, as JSON text.

        The preamble is everything before the first message's MAIL (EHLO, STARTTLS, AUTH and
        any refused attempts), so later messages do not repeat earlier transactions. It never
        changes once the first message began, so its JSON is written once per session, not for
        every message a long session delivers.
        """
        if self.preamble_end is None:
            self.preamble_end = self.txn_start
        if self._preamble_json is None:
            self._preamble_json = jsontext.dumps(self.entries[: self.preamble_end])[1:-1]
        tail = jsontext.dumps([*self.entries[self.txn_start :], last])[1:-1]
        return f"[{self._preamble_json}, {tail}]" if self._preamble_json else f"[{tail}]"
