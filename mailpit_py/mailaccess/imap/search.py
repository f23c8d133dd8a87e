"""IMAP SEARCH keys (RFC 3501 section 6.4.4) compiled into predicates over one message."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from mailpit_py.mailaccess.imap.syntax import (
    Atom,
    ImapSyntaxError,
    SequenceSet,
    Token,
    is_sequence_set,
    text,
)

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


@dataclass
class Candidate:
    """One message as SEARCH sees it; the stored message is loaded only when a key needs it."""

    seq: int
    uid: int
    measure: Callable[[], int]  # -> RFC822.SIZE, which may read the message (LARGER, SMALLER)
    created: float
    flags: set[str]
    load: Callable[[], dict[str, Any]]  # -> {"headers": [(name, value)], "text": str}
    _loaded: dict[str, Any] | None = field(default=None, repr=False)
    _size: int | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = self.measure()
        return self._size

    @property
    def data(self) -> dict[str, Any]:
        if self._loaded is None:
            self._loaded = self.load()
        return self._loaded

    def header(self, name: str) -> str:
        return "\n".join(v for n, v in self.data["headers"] if n.lower() == name)


Predicate = Callable[[Candidate, int, int], bool]  # (message, largest seq, largest uid)


def parse_date(token: Token) -> dt.date:
    value = text(token)
    try:
        day, month, year = value.split("-")
        return dt.date(int(year), _MONTHS.index(month.lower()) + 1, int(day))
    except (ValueError, IndexError):
        raise ImapSyntaxError(f"{value!r} is not a date like 1-Feb-2026") from None


def compile_search(tokens: list[Token]) -> Predicate:
    """Every key must hold (SEARCH ANDs its keys)."""
    if not tokens:
        raise ImapSyntaxError("SEARCH needs at least one key")
    stream = iter(tokens)
    keys = []
    for token in stream:
        keys.append(_key(token, stream))
    return lambda c, s, u: all(k(c, s, u) for k in keys)


def _next(stream: Iterator[Token], what: str) -> Token:
    try:
        return next(stream)
    except StopIteration:
        raise ImapSyntaxError(f"{what} needs an argument") from None


def _contains(haystack: str, needle: str) -> bool:
    return needle.casefold() in haystack.casefold()


def _key(token: Token, stream: Iterator[Token]) -> Predicate:
    if isinstance(token, list):
        return compile_search(token)
    if is_sequence_set(token):
        seqs = SequenceSet.parse(text(token))
        return lambda c, s, u: seqs.contains(c.seq, s)
    if not isinstance(token, Atom):
        raise ImapSyntaxError("a search key was expected")
    key = token.upper()
    flag_keys = {
        "ANSWERED": ("\\Answered", True),
        "DELETED": ("\\Deleted", True),
        "DRAFT": ("\\Draft", True),
        "FLAGGED": ("\\Flagged", True),
        "SEEN": ("\\Seen", True),
        "UNANSWERED": ("\\Answered", False),
        "UNDELETED": ("\\Deleted", False),
        "UNDRAFT": ("\\Draft", False),
        "UNFLAGGED": ("\\Flagged", False),
        "UNSEEN": ("\\Seen", False),
        "OLD": ("\\Recent", False),
        "RECENT": ("\\Recent", True),
        "NEW": ("\\Recent", True),  # nothing is \Recent here, so NEW matches nothing
    }
    if key == "ALL":
        return lambda c, s, u: True
    if key in flag_keys:
        flag, present = flag_keys[key]
        return lambda c, s, u: (flag in c.flags) == present
    if key in ("KEYWORD", "UNKEYWORD"):
        word = text(_next(stream, key)).lower()
        want = key == "KEYWORD"
        return lambda c, s, u: (word in {f.lower() for f in c.flags}) == want
    if key == "NOT":
        inner = _key(_next(stream, key), stream)
        return lambda c, s, u: not inner(c, s, u)
    if key == "OR":
        left = _key(_next(stream, key), stream)
        right = _key(_next(stream, key), stream)
        return lambda c, s, u: left(c, s, u) or right(c, s, u)
    if key == "UID":
        uids = SequenceSet.parse(text(_next(stream, key)))
        return lambda c, s, u: uids.contains(c.uid, u)
    if key in ("LARGER", "SMALLER"):
        value = text(_next(stream, key))
        if not value.isdigit():
            raise ImapSyntaxError(f"{key} needs a number of octets")
        size = int(value)
        if key == "LARGER":
            return lambda c, s, u: c.size > size
        return lambda c, s, u: c.size < size
    if key in ("BEFORE", "ON", "SINCE"):
        day = parse_date(_next(stream, key))
        return _date_test(key, day, lambda c: dt.datetime.fromtimestamp(c.created, dt.UTC).date())
    if key in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        day = parse_date(_next(stream, key))
        return _date_test(key[4:], day, _sent_date)
    if key in ("FROM", "TO", "CC", "BCC", "SUBJECT"):
        needle = text(_next(stream, key))
        name = key.lower()
        return lambda c, s, u: _contains(c.header(name), needle)
    if key == "HEADER":
        name = text(_next(stream, key)).lower()
        needle = text(_next(stream, key))
        return lambda c, s, u: any(
            n.lower() == name and _contains(v, needle) for n, v in c.data["headers"]
        )
    if key == "BODY":
        needle = text(_next(stream, key))
        return lambda c, s, u: _contains(c.data["text"], needle)
    if key == "TEXT":
        needle = text(_next(stream, key))
        return lambda c, s, u: (
            _contains(c.data["text"], needle)
            or any(_contains(f"{n}: {v}", needle) for n, v in c.data["headers"])
        )
    raise ImapSyntaxError(f"unknown search key {key}")


def _sent_date(c: Candidate) -> dt.date | None:
    value = c.header("date").split("\n")[0]
    try:
        return parsedate_to_datetime(value).date() if value else None
    except (TypeError, ValueError, IndexError):
        return None


def _date_test(key: str, day: dt.date, date_of: Callable[[Candidate], dt.date | None]) -> Predicate:
    def test(c: Candidate, s: int, u: int) -> bool:
        d = date_of(c)
        if d is None:
            return False
        if key == "BEFORE":
            return d < day
        if key == "ON":
            return d == day
        return d >= day

    return test
