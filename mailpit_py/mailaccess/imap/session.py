"""One IMAP session's state, and the small helpers every command module shares: flags and
their hidden marks, APPEND dates, INTERNALDATE, UID sets."""

from __future__ import annotations

import datetime
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailpit_py.mailaccess.imap.mime import Entity
from mailpit_py.mailaccess.imap.syntax import Atom, ImapSyntaxError, Token
from mailpit_py.mailaccess.lineserver import Connection
from mailpit_py.mailbox.boxes import DEFAULT_BOX
from mailpit_py.mailbox.facade import IndexEntry

if TYPE_CHECKING:
    from mailpit_py.mailbox.boxview import BoxView

IDLE_TIMEOUT = 30 * 60.0  # RFC 3501 section 5.4: an autologout timer of at least 30 minutes
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
# Marks kept with a message's flags that no client sees: a flag is an atom, so a mark with a
# space can never clash with one. "Left INBOX": moved or expunged out of INBOX while a tag
# folder still holds it. "\Deleted <tag>": \Deleted as set in that tag's folder (plain
# \Deleted is INBOX's), since a message in two folders is two copies to a client, and the
# copy left behind by a move must not be doomed with the one moved.
LEFT_INBOX = "\\Left INBOX"
_DATE_TIME = re.compile(
    r"\s?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class Logout(Exception):
    """The session ends (LOGOUT, timeout, a client that cannot be understood)."""


class NoMailbox(LookupError):
    """The login's access gives it no mailbox at all (the mailbox config's `access`)."""

    def __init__(self, user: str) -> None:
        super().__init__(
            f"user {user!r} may see no mailbox: the mailbox config's access lists none for it"
        )


@dataclass
class Session:
    """One connection: its login, the selected folder, and what its client was told of it."""

    conn: Connection
    user: str = ""
    folder: str | None = None  # None: nothing selected; "INBOX" or a tag name, in `box`
    box: str = DEFAULT_BOX  # the mailbox of the selected folder
    view: BoxView | None = None  # that mailbox, through which every read and write goes
    readonly: bool = False
    uids: list[int] = field(default_factory=list)  # UID of each message sequence number
    entries: dict[int, IndexEntry] = field(default_factory=dict)
    generation: int = -1  # the server's change counter as of the last update sent
    known: tuple[int, int, int] = (0, 0, 0)  # the mailbox's _mark when its folder was read
    flag_mark: int = 0  # the flag change (core.py's version) the client was last told of
    # Its own last STORE's changes (the versions after the first, up to the second): its
    # answer told them, so they are not told again as another session's.
    own_flags: tuple[int, int] = (0, 0)
    parsed: OrderedDict[int, Entity] = field(default_factory=OrderedDict)
    garbage: int = 0  # lines in a row without a tag: past a limit this is not an IMAP client
    keywords: frozenset[str] = frozenset()  # the keywords the last FLAGS response listed
    keywords_of: tuple[int, int, int] = (-1, -1, -1)  # what `_keywords` last worked them from

    @property
    def tag(self) -> str | None:
        return None if self.folder in (None, "INBOX") else self.folder


def deleted_mark(folder: str | None) -> str:
    """How \\Deleted set in `folder` is kept (per folder: see LEFT_INBOX)."""
    return "\\Deleted" if folder in (None, "INBOX") else f"\\Deleted {folder}"


def parse_date_time(value: str) -> float:
    """An APPEND date-time (RFC 3501: "21-Nov-2026 10:00:00 +0100") as a Unix time."""
    m = _DATE_TIME.fullmatch(value)
    month = _MONTHS.index(m.group(2).title()) + 1 if m and m.group(2).title() in _MONTHS else 0
    if m is None or not month:
        raise ImapSyntaxError(f"{value[:40]!r} is not a date-time like 21-Nov-2026 10:00:00 +0000")
    day, year, hour, minute, second = (int(m.group(i)) for i in (1, 3, 4, 5, 6))
    offset = (int(m.group(8)) * 60 + int(m.group(9))) * 60 * (-1 if m.group(7) == "-" else 1)
    try:
        when = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.UTC)
    except ValueError as exc:
        raise ImapSyntaxError(f"{value[:40]!r} is not a real date: {exc}") from None
    return when.timestamp() - offset


def uid_set(uids: list[int]) -> str:
    """UIDs as a compact sequence set (1:3,7) for COPYUID."""
    runs: list[list[int]] = []
    for uid in uids:
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in runs)


def internal_date(created: float) -> str:
    t = time.gmtime(created)
    return (
        f"{t.tm_mday:02d}-{_MONTHS[t.tm_mon - 1]}-{t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def kept_with(stored: set[str], shown: set[str], deleted: str) -> set[str]:
    """What to keep for a message whose flags in one folder are now `shown`: its marks, but
    that folder's \\Deleted as `shown` says (\\Seen is the read state, kept apart)."""
    marks = {f for f in stored if (" " in f or f == "\\Deleted") and f != deleted}
    kept = marks | (shown - {"\\Seen", "\\Deleted"})
    return kept | {deleted} if "\\Deleted" in shown else kept


def flag_names(tokens: list[Token]) -> set[str]:
    """The flags of a STORE or APPEND, checked: \\Recent is the server's to set."""
    names = set()
    for token in tokens:
        if not isinstance(token, Atom) or not token or " " in token:
            raise ImapSyntaxError("a flag is an atom, such as \\Seen or $Label")
        name = flag_name(token)
        if name.startswith("\\") and name not in SYSTEM_FLAGS and name != "\\Recent":
            raise ImapSyntaxError(f"unknown system flag {name[:30]}")
        names.add(name)
    names.discard("\\Recent")
    return names


def flag_name(value: str) -> str:
    """System flags in their canonical case (\\seen -> \\Seen); keywords as given."""
    for flag in SYSTEM_FLAGS:
        if value.lower() == flag.lower():
            return flag
    return value
