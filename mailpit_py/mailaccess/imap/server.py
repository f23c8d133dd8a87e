"""IMAP4rev1 server over the mailbox (RFC 3501, the parts mail clients use, plus IDLE from
RFC 2177): INBOX holds every message and each tag is a folder of its own."""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from mailpit_py import events
from mailpit_py.mailaccess.access import Access, decode_plain
from mailpit_py.mailaccess.imap.mime import (
    Entity,
    bodystructure,
    envelope,
    parse_entity,
    parse_section,
    section_bytes,
)
from mailpit_py.mailaccess.imap.search import Candidate, compile_search
from mailpit_py.mailaccess.imap.syntax import (
    Atom,
    ImapSyntaxError,
    SequenceSet,
    Token,
    decode_mailbox,
    encode_mailbox,
    list_match,
    literal,
    literal_at_end,
    string,
    text,
    tokenize,
)
from mailpit_py.mailaccess.lineserver import Connection, LineTooLong, MailReader
from mailpit_py.mailbox.facade import IndexEntry, Mailbox, MessageNotFound
from mailpit_py.models import Envelope

log = logging.getLogger("mailpit_py.imap")

IDLE_TIMEOUT = 30 * 60.0  # RFC 3501 section 5.4: an autologout timer of at least 30 minutes
MAX_GARBAGE = 20  # untagged lines in a row before the server hangs up
MAX_COMMAND_LITERAL = 1024 * 1024  # literals outside APPEND are names, passwords, search words
PRE_AUTH_COMMAND = 8 * 1024  # before a login: room for LOGIN with literal name and password
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
_FETCH_BODY = re.compile(r"(BODY|BODY\.PEEK)\[(.*)\](?:<(\d+)\.(\d+)>)?", re.I | re.S)
# A tag is any ASTRING-CHAR but "+" (RFC 3501 section 9): no controls, spaces or specials.
_TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')
_MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}
# Which commands each state allows (RFC 3501 section 6).
_ANY = {"CAPABILITY", "NOOP", "LOGOUT", "ID"}
_NOT_AUTHENTICATED = {"STARTTLS", "AUTHENTICATE", "LOGIN"}
_AUTHENTICATED = {
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "NAMESPACE",
    "ENABLE",
    "IDLE",
}
_SELECTED = {
    "CHECK",
    "CLOSE",
    "UNSELECT",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "UID",
}
# After these, an EXPUNGE response must wait (RFC 3501 section 7.4.1).
_NO_EXPUNGE = {"FETCH", "STORE", "SEARCH"}
_LOOK = {"NOOP", "CHECK", "SEARCH", "IDLE"}  # commands that ask "what is new?"


class _Logout(Exception):
    """The session ends (LOGOUT, timeout, a client that cannot be understood)."""


@dataclass
class _Session:
    conn: Connection
    user: str = ""
    folder: str | None = None  # None: nothing selected; "INBOX" or a tag name
    readonly: bool = False
    uids: list[int] = field(default_factory=list)  # UID of each message sequence number
    entries: dict[int, IndexEntry] = field(default_factory=dict)
    generation: int = -1  # the server's change counter as of the last update sent
    parsed: OrderedDict[int, Entity] = field(default_factory=OrderedDict)
    garbage: int = 0  # lines in a row without a tag: past a limit this is not an IMAP client
    keywords: frozenset[str] = frozenset()  # the keywords the last FLAGS response listed

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


class ImapServer(MailReader):
    """The IMAP listener: logins from `access`; every read and write goes through the mailbox."""

    protocol = "imap"

    def __init__(self, access: Access, mailbox: Mailbox, label: str = "") -> None:
        super().__init__(access, mailbox, label)
        # Flags other than \Seen (which is the read state the UI shows), by UID, shared by every
        # session; kept in the store too, so they survive a restart.
        self.flags: dict[int, set[str]] = mailbox.imap_flags()
        self._flags_version = 0  # bumped by each change of self.flags
        self._keywords_seen: tuple[int, frozenset[str]] = (-1, frozenset())
        self.created: set[str] = set()  # folders made by CREATE that no message is in yet
        self.generation = 0  # bumped (on the listener loop) for each change in the mailbox
        self._waiters: set[asyncio.Event] = set()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        super().start()
        self._watcher = threading.Thread(target=self._watch, name="imap-bus", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stopping.set()
        super().stop()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None

    # -- changes from the bus (new mail for IDLE, deletes, read state) -------------------------

    def _watch(self) -> None:
        interesting = (
            events.NewMessage,
            events.Delete,
            events.Truncate,
            events.Prune,
            events.Update,
        )
        while not self._stopping.is_set():
            with self.mailbox.bus.subscribe() as sub:
                while not self._stopping.is_set() and not sub.ended.is_set():
                    event = sub.get(timeout=0.25)
                    if sub.dropped.is_set():
                        self.listener.call_soon(self._bump)  # missed some: everyone re-reads
                        break
                    if isinstance(event, interesting):
                        self.listener.call_soon(self._bump)
                if sub.ended.is_set():
                    return

    def _bump(self) -> None:
        self.generation += 1
        for waiter in self._waiters:
            waiter.set()

    # -- the session loop -----------------------------------------------------------------------

    def capabilities(self, s: _Session) -> str:
        caps = ["IMAP4rev1", "LITERAL+", "SASL-IR", "IDLE", "NAMESPACE", "UNSELECT", "ID"]
        caps += ["CHILDREN", "UIDPLUS", "MOVE"]
        if not s.user:
            caps.append("AUTH=PLAIN")
            if self.access.tls is not None and not s.conn.tls:
                caps.append("STARTTLS")
        return " ".join(caps)

    async def _session(self, conn: Connection) -> None:
        s = _Session(conn)
        name = f"mailpit-py ({self.label})" if self.label else "mailpit-py"
        await self._send(s, f"* OK [CAPABILITY {self.capabilities(s)}] {name} IMAP4rev1 ready")
        try:
            while True:
                data = await self._read_command(s)
                if data is None:
                    return
                await self._run(s, data)
        except _Logout:
            return

    async def _read_command(self, s: _Session) -> bytes | None:
        """One command with its literals inline; None when the client has gone."""
        buf = bytearray()
        while True:
            try:
                line = await s.conn.readline(IDLE_TIMEOUT)
            except TimeoutError:
                await self._send(s, "* BYE idle for too long, logging out")
                return None
            except LineTooLong:
                await self._send(s, "* BYE command line too long")
                return None
            if not line:
                return None
            buf += line
            announced = literal_at_end(line)
            if announced is None:
                return bytes(buf)
            size, non_sync = announced
            refused = self._literal_refused(s, bytes(buf), size)
            if refused:
                if non_sync:  # the bytes are on their way and cannot be skipped safely
                    await self._send(s, f"* BYE {refused}")
                    return None
                tag = bytes(buf).split(b" ", 1)[0].decode("ascii", "replace")
                await self._send(s, f"{tag} NO [TOOBIG] {refused}")
                return b""
            if not non_sync:
                await self._send(s, "+ go ahead")
            data = await s.conn.readexactly(size, IDLE_TIMEOUT)
            if len(data) < size:
                return None
            buf += data

    def _literal_refused(self, s: _Session, command: bytes, size: int) -> str:
        """Why a literal of `size` octets after `command` (so far) is refused, or ''.

        Before a login nobody has shown they may store anything: a literal is a user name or a
        password, so a few KB at most, or a stranger could make the server buffer 50 MB."""
        total = len(command) + size
        if not s.user:
            if total > PRE_AUTH_COMMAND:
                return (
                    f"literal of {size} octets is too large before a login "
                    f"(at most {PRE_AUTH_COMMAND} octets a command): log in first"
                )
            return ""
        words = command.split(b" ", 3)
        appending = len(words) > 1 and words[1].upper() == b"APPEND"
        limit = (
            (self.mailbox.config.max_message_size or 1 << 62) if appending else MAX_COMMAND_LITERAL
        )
        if size > limit or total > limit + MAX_COMMAND_LITERAL:
            what = "--max-message-size" if appending else "the limit for a command's literals"
            return f"literal of {size} octets is too large ({what} is {limit})"
        return ""

    async def _send(self, s: _Session, line: str | bytes) -> None:
        data = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
        await s.conn.write(data + b"\r\n")

    async def _run(self, s: _Session, data: bytes) -> None:
        if not data.strip():
            return  # an empty line, or a command already answered while reading it
        tag = "*"
        try:
            first, _, rest = data.partition(b" ")
            if not _TAG.fullmatch(first):
                s.garbage += 1
                if s.garbage > MAX_GARBAGE:
                    await self._send(s, "* BYE this does not look like IMAP")
                    raise _Logout
                raise ImapSyntaxError("a command starts with a tag")
            s.garbage = 0
            tag = first.decode("ascii")
            tokens = tokenize(rest)
            name = tokens[0] if tokens else None
            if not isinstance(name, Atom):
                raise ImapSyntaxError("a command name was expected after the tag")
            command = name.upper()
            args = tokens[1:]
            refused = self._refuse(s, command)
            if refused:
                await self._send(s, f"{tag} BAD {refused}")
                return
            handler: Callable[[_Session, str, list[Token]], Awaitable[str]] | None = getattr(
                self, f"_cmd_{command.lower()}", None
            )
            if handler is None:
                await self._send(s, f"{tag} BAD unknown command {command[:30]}")
                return
            if s.folder is not None:
                # New mail first. Commands that look for news read the mailbox even when the
                # bus has not told us yet, so a client that just sent a message finds it.
                sub = text(args[0]).upper() if command == "UID" and args else ""
                force = command in _LOOK or sub == "SEARCH"
                await self._refresh(s, expunge=command not in _NO_EXPUNGE, force=force)
            result = await handler(s, tag, args)
            if not result:
                return  # the handler answered already (STARTTLS)
            if s.folder is not None:
                await self._refresh(s, expunge=command not in _NO_EXPUNGE)
                await self._announce_flags(s)
            await self._send(s, f"{tag} {result}")
        except ImapSyntaxError as exc:
            await self._send(s, f"{tag} BAD {exc}")
        except MessageNotFound as exc:
            await self._send(s, f"{tag} NO {exc}")
        except (_Logout, ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("IMAP command failed")
            await self._send(s, f"{tag} NO [SERVERBUG] internal error, see the server log")

    def _refuse(self, s: _Session, command: str) -> str:
        """Why `command` is not allowed in this state, or ''."""
        if command in _ANY:
            return ""
        if command in _NOT_AUTHENTICATED:
            return "already logged in" if s.user else ""
        if command in _AUTHENTICATED or command in _SELECTED:
            if not s.user:
                return f"{command} needs a login first (LOGIN or AUTHENTICATE PLAIN)"
            if command in _SELECTED and s.folder is None:
                return f"{command} needs a selected mailbox (SELECT or EXAMINE first)"
        return ""

    # -- mailbox snapshot -------------------------------------------------------------------------

    def _flags(self, s: _Session, uid: int) -> list[str]:
        entry = s.entries.get(uid)
        stored = self.flags.get(uid, ())
        flags = sorted(f for f in stored if " " not in f and f != "\\Deleted")
        if deleted_mark(s.folder) in stored:
            flags.append("\\Deleted")
            flags.sort()
        if entry is not None and entry.read:
            flags.insert(0, "\\Seen")
        return flags

    def _keywords(self) -> frozenset[str]:
        """Every keyword ($Forwarded, $Junk, a label) some message has now (worked out again
        only after a change: every command of a session with a folder selected asks)."""
        version, keywords = self._keywords_seen
        if version != self._flags_version:
            version = self._flags_version
            keywords = frozenset(
                f for flags in list(self.flags.values()) for f in flags if f[:1] != "\\"
            )
            self._keywords_seen = (version, keywords)
        return keywords

    def _set_flags(self, uid: int, flags: set[str]) -> None:
        """Replace a message's flags and marks (a new set: worker threads read the old one)."""
        self._flags_version += 1
        if flags:
            self.flags[uid] = flags
        else:
            self.flags.pop(uid, None)

    async def _announce_flags(self, s: _Session) -> None:
        """A FLAGS response (with PERMANENTFLAGS) when the keywords in use have changed, so a
        client offers the new ones (RFC 3501 section 7.2.6)."""
        keywords = self._keywords()
        if keywords == s.keywords:
            return
        s.keywords = keywords
        await self._send(s, "\r\n".join(self._flags_lines(s)))

    def _flags_lines(self, s: _Session) -> list[str]:
        flags = " ".join([*SYSTEM_FLAGS, *sorted(s.keywords)])
        permanent = "" if s.readonly else f"{flags} \\*"
        return [f"* FLAGS ({flags})", f"* OK [PERMANENTFLAGS ({permanent})] flags and keywords"]

    async def _load(self, s: _Session) -> list[IndexEntry]:
        return await s.conn.call(self._index, s.folder)

    def _index(self, folder: str | None) -> list[IndexEntry]:
        """The messages in a folder, oldest first (worker thread): a tag's, or INBOX's, which
        is every message but those moved out of it to a tag folder."""
        if folder not in (None, "INBOX"):
            return self.mailbox.index(folder)
        index = self.mailbox.index()
        left = {uid for uid, flags in list(self.flags.items()) if LEFT_INBOX in flags}
        if not left:
            return index
        # A message whose last tag went (in the web UI, say) is back in INBOX, so that every
        # message is in some folder.
        tagged = {e.imap_uid for tag in self.mailbox.tags() for e in self.mailbox.index(tag)}
        return [e for e in index if e.imap_uid not in left or e.imap_uid not in tagged]

    async def _refresh(self, s: _Session, expunge: bool, force: bool = False) -> None:
        """Tell the client what changed since its last update: expunged messages (when that may
        be said now), new flags, and new messages (RFC 3501 section 7.3 and 7.4)."""
        if s.generation == self.generation and not force:
            return
        generation = self.generation
        index = await self._load(s)
        now = {e.imap_uid: e for e in index}
        out: list[str] = []
        if expunge:
            for seq in range(len(s.uids), 0, -1):
                uid = s.uids[seq - 1]
                if uid not in now:
                    out.append(f"* {seq} EXPUNGE")
                    del s.uids[seq - 1]
                    s.entries.pop(uid, None)
            s.generation = generation  # else what cannot be said yet is said next time
        for seq, uid in enumerate(s.uids, 1):
            old, new = s.entries.get(uid), now.get(uid)
            if new is None:
                continue
            s.entries[uid] = new
            if old is not None and old.read != new.read:
                out.append(f"* {seq} FETCH (FLAGS ({' '.join(self._flags(s, uid))}))")
        last = s.uids[-1] if s.uids else 0
        added = [e for e in index if e.imap_uid > last]
        if added:
            s.uids += [e.imap_uid for e in added]
            s.entries.update((e.imap_uid, e) for e in added)
            out.append(f"* {len(s.uids)} EXISTS")
        if out:
            await self._send(s, "\r\n".join(out))

    def _folders(self) -> list[str]:
        tags = self.mailbox.tags()
        empty = [name for name in self.created if name not in tags]
        return ["INBOX", *sorted([*tags, *empty], key=str.casefold)]

    def _folder(self, token: Token) -> str | None:
        """The folder a mailbox name means (INBOX in any case, or a tag), or None."""
        name = decode_mailbox(text(token))
        if name.upper() == "INBOX":
            return "INBOX"
        return name if name in self.created or name in self.mailbox.tags() else None

    # -- any state ---------------------------------------------------------------------------------

    async def _cmd_capability(self, s: _Session, tag: str, args: list[Token]) -> str:
        await self._send(s, f"* CAPABILITY {self.capabilities(s)}")
        return "OK CAPABILITY completed"

    async def _cmd_noop(self, s: _Session, tag: str, args: list[Token]) -> str:
        return "OK NOOP completed"

    async def _cmd_check(self, s: _Session, tag: str, args: list[Token]) -> str:
        return "OK CHECK completed"

    async def _cmd_logout(self, s: _Session, tag: str, args: list[Token]) -> str:
        await self._send(s, "* BYE logging out")
        await self._send(s, f"{tag} OK LOGOUT completed")
        raise _Logout

    async def _cmd_id(self, s: _Session, tag: str, args: list[Token]) -> str:
        await self._send(s, '* ID ("name" "mailpit-py")')
        return "OK ID completed"

    # -- not authenticated -------------------------------------------------------------------------

    async def _cmd_starttls(self, s: _Session, tag: str, args: list[Token]) -> str:
        if self.access.tls is None:
            return "NO STARTTLS is not available: the server has no --imap-tls-cert"
        if s.conn.tls:
            return "BAD already using TLS"
        await self._send(s, f"{tag} OK begin TLS negotiation now")
        await s.conn.start_tls()
        return ""

    async def _login(self, s: _Session, user: str, password: str) -> str:
        if not await s.conn.call(self.access.credentials.check, user, password):
            log.warning("IMAP login failed for %r from %s", user, s.conn.peer)
            self.mailbox.telemetry.inc("imap_logins", "failed")
            return "NO [AUTHENTICATIONFAILED] invalid user name or password"
        s.user = user
        self.mailbox.telemetry.inc("imap_logins", "ok")
        log.info("IMAP login %r from %s", user, s.conn.peer)
        return f"OK [CAPABILITY {self.capabilities(s)}] logged in"

    async def _cmd_login(self, s: _Session, tag: str, args: list[Token]) -> str:
        if len(args) != 2:
            raise ImapSyntaxError("LOGIN takes a user name and a password")
        return await self._login(s, text(args[0]), text(args[1]))

    async def _cmd_authenticate(self, s: _Session, tag: str, args: list[Token]) -> str:
        if not args or len(args) > 2:
            raise ImapSyntaxError("AUTHENTICATE takes a mechanism and maybe an initial response")
        if text(args[0]).upper() != "PLAIN":
            return f"NO [CANNOT] mechanism {text(args[0])[:20]} is not supported; use PLAIN"
        if len(args) == 2:
            answer = text(args[1])  # SASL-IR (RFC 4959)
        else:
            await self._send(s, "+ ")
            line = await s.conn.readline(IDLE_TIMEOUT)
            answer = line.decode("ascii", "replace").strip()
        if answer == "*":
            return "BAD authentication cancelled"
        plain = decode_plain(answer)
        if plain is None:
            return "BAD not a PLAIN response: base64 of authzid NUL user NUL password"
        user, password = plain
        return await self._login(s, user, password)

    # -- authenticated -----------------------------------------------------------------------------

    async def _cmd_select(self, s: _Session, tag: str, args: list[Token]) -> str:
        return await self._select(s, args, readonly=False)

    async def _cmd_examine(self, s: _Session, tag: str, args: list[Token]) -> str:
        return await self._select(s, args, readonly=True)

    async def _select(self, s: _Session, args: list[Token], readonly: bool) -> str:
        if len(args) != 1:
            raise ImapSyntaxError("SELECT and EXAMINE take a mailbox name")
        s.folder = None
        s.uids, s.entries = [], {}
        folder = await s.conn.call(self._folder, args[0])
        if folder is None:
            return f"NO [NONEXISTENT] no mailbox {text(args[0])[:100]!r}: INBOX or a tag name"
        s.folder, s.readonly = folder, readonly
        s.generation = self.generation
        index = await self._load(s)
        s.uids = [e.imap_uid for e in index]
        s.entries = {e.imap_uid: e for e in index}
        validity, next_uid = await s.conn.call(self._uid_numbers)
        unseen = next((n for n, e in enumerate(index, 1) if not e.read), None)
        s.keywords = await s.conn.call(self._keywords)
        lines = [
            *self._flags_lines(s),
            f"* {len(index)} EXISTS",
            "* 0 RECENT",
            *([f"* OK [UNSEEN {unseen}] first unseen"] if unseen else []),
            f"* OK [UIDVALIDITY {validity}] UIDs valid",
            f"* OK [UIDNEXT {next_uid}] predicted next UID",
        ]
        await self._send(s, "\r\n".join(lines))
        mode = "READ-ONLY" if readonly else "READ-WRITE"
        return f"OK [{mode}] {'EXAMINE' if readonly else 'SELECT'} completed"

    def _uid_numbers(self) -> tuple[int, int]:
        return self.mailbox.uid_validity(), self.mailbox.next_imap_uid()

    async def _cmd_create(self, s: _Session, tag: str, args: list[Token]) -> str:
        """A new folder is a tag no message has yet: kept by this server until a message gets
        it (clients make their Sent, Drafts, Trash or a sync's folders before filling them)."""
        if len(args) != 1:
            raise ImapSyntaxError("CREATE takes a mailbox name")
        name = decode_mailbox(text(args[0])).rstrip("/")
        if await s.conn.call(self._folder, args[0]) is not None or name.upper() == "INBOX":
            return "NO [ALREADYEXISTS] that folder exists already"
        if not name.strip() or any(ord(c) < 32 for c in name):
            return f"NO [CANNOT] {name[:40]!r} cannot be a folder (a tag) name"
        self.created.add(name)
        return "OK CREATE completed (an empty folder until a message is put in it)"

    async def _cmd_delete(self, s: _Session, tag: str, args: list[Token]) -> str:
        """Deleting a tag's folder removes the tag everywhere; the messages stay in INBOX."""
        if len(args) != 1:
            raise ImapSyntaxError("DELETE takes a mailbox name")
        folder = await s.conn.call(self._folder, args[0])
        if folder is None:
            return "NO [NONEXISTENT] no such mailbox"
        if folder == "INBOX":
            return "NO [CANNOT] INBOX cannot be deleted"
        self.created.discard(folder)
        await s.conn.call(self.mailbox.delete_tag, folder)
        return "OK DELETE completed (the tag is gone, the messages are in INBOX)"

    async def _cmd_rename(self, s: _Session, tag: str, args: list[Token]) -> str:
        """Renaming a tag's folder renames the tag."""
        if len(args) != 2:
            raise ImapSyntaxError("RENAME takes the old and the new mailbox name")
        folder = await s.conn.call(self._folder, args[0])
        if folder is None:
            return "NO [NONEXISTENT] no such mailbox"
        new = decode_mailbox(text(args[1]))
        if folder == "INBOX" or new.upper() == "INBOX":
            return "NO [CANNOT] INBOX cannot be renamed, nor a folder renamed to INBOX"
        if folder in self.created:
            self.created.discard(folder)
            self.created.add(new)
        await s.conn.call(self.mailbox.rename_tag, folder, new)
        return "OK RENAME completed"

    async def _cmd_subscribe(self, s: _Session, tag: str, args: list[Token]) -> str:
        return "OK every folder is subscribed"

    _cmd_unsubscribe = _cmd_subscribe

    async def _cmd_namespace(self, s: _Session, tag: str, args: list[Token]) -> str:
        await self._send(s, '* NAMESPACE (("" "/")) NIL NIL')
        return "OK NAMESPACE completed"

    async def _cmd_enable(self, s: _Session, tag: str, args: list[Token]) -> str:
        await self._send(s, "* ENABLED")
        return "OK nothing to enable"

    async def _cmd_list(self, s: _Session, tag: str, args: list[Token]) -> str:
        return await self._list(s, args, "LIST")

    async def _cmd_lsub(self, s: _Session, tag: str, args: list[Token]) -> str:
        return await self._list(s, args, "LSUB")

    async def _list(self, s: _Session, args: list[Token], command: str) -> str:
        if len(args) != 2:
            raise ImapSyntaxError(f"{command} takes a reference and a mailbox pattern")
        reference, pattern = text(args[0]), text(args[1])
        if not pattern:
            await self._send(s, f'* {command} (\\Noselect) "/" ""')
            return f"OK {command} completed"
        lines = []
        for folder in await s.conn.call(self._folders):
            name = encode_mailbox(folder)
            wanted = reference + pattern
            if folder == "INBOX" and wanted.upper().startswith("INBOX"):
                wanted = "INBOX" + wanted[5:]
            if list_match(wanted, name):
                lines.append(f'* {command} (\\HasNoChildren) "/" {string(name).decode()}')
        if lines:
            await self._send(s, "\r\n".join(lines))
        return f"OK {command} completed"

    async def _cmd_status(self, s: _Session, tag: str, args: list[Token]) -> str:
        if len(args) != 2 or not isinstance(args[1], list):
            raise ImapSyntaxError("STATUS takes a mailbox name and a list of items")
        folder = await s.conn.call(self._folder, args[0])
        if folder is None:
            return "NO [NONEXISTENT] no such mailbox"
        index = await s.conn.call(self._index, folder)
        validity, next_uid = await s.conn.call(self._uid_numbers)
        values = {
            "MESSAGES": len(index),
            "RECENT": 0,
            "UIDNEXT": next_uid,
            "UIDVALIDITY": validity,
            "UNSEEN": sum(1 for e in index if not e.read),
        }
        items = []
        for item in args[1]:
            key = text(item).upper()
            if key not in values:
                raise ImapSyntaxError(f"unknown STATUS item {key}")
            items.append(f"{key} {values[key]}")
        name = string(encode_mailbox(folder)).decode()
        await self._send(s, f"* STATUS {name} ({' '.join(items)})")
        return "OK STATUS completed"

    async def _cmd_append(self, s: _Session, tag: str, args: list[Token]) -> str:
        """APPEND (RFC 3501 6.3.11) with the client's flags and date: a client that uploads its
        mail (offlineimap, mbsync) keeps what it read, flagged and answered, and when it came."""
        if len(args) < 2 or not isinstance(args[-1], bytes) or len(args) > 4:
            raise ImapSyntaxError("APPEND takes a mailbox, maybe flags and a date, and a literal")
        options = args[1:-1]
        flags: set[str] = set()
        if options and isinstance(first := options[0], list):
            flags = _flag_names(first)
            del options[0]
        received: float | None = None
        if options:
            if isinstance(options[0], list) or len(options) > 1:
                raise ImapSyntaxError("APPEND takes the flags, then the date-time, in that order")
            received = parse_date_time(text(options[0]))
        folder = await s.conn.call(self._folder, args[0])
        if folder is None:
            return "NO [TRYCREATE] no such mailbox: APPEND to INBOX or a tag"
        tags = [] if folder == "INBOX" else [folder]
        # Where it came from, in the fields the SMTP envelope has (the API's Envelope).
        origin = {"Peer": s.conn.peer, "TLS": s.conn.tls, "Username": s.user, "Protocol": "IMAP"}
        future = self.mailbox.deliver(
            Envelope("", ()),
            args[-1],
            username=s.user,
            tags=tags,
            origin=origin,
            received_at=received,
        )
        msg_id = await asyncio.wrap_future(future)
        uid = await s.conn.call(self._appended, msg_id, folder, flags)
        validity = await s.conn.call(self.mailbox.uid_validity)
        return f"OK [APPENDUID {validity} {uid}] APPEND completed"

    def _appended(self, msg_id: str, folder: str, flags: set[str]) -> int:
        """Give an appended message its flags (worker thread); its UID."""
        row = self.mailbox.store.summary(msg_id)  # the row number is the UID
        if row is None:
            raise MessageNotFound(msg_id)
        uid = int(row["id"])
        kept = _kept_with(set(), flags, deleted_mark(folder))
        if folder != "INBOX":
            kept.add(LEFT_INBOX)  # appended to a tag folder: in that folder only
        if kept:
            self._set_flags(uid, kept)
            self.mailbox.save_imap_flags({uid: kept})
        if "\\Seen" in flags:
            self.mailbox.mark_read([msg_id], True)
        return uid

    async def _cmd_idle(self, s: _Session, tag: str, args: list[Token]) -> str:
        """RFC 2177: changes are pushed as they happen until the client says DONE."""
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        reading = asyncio.ensure_future(s.conn.readline(IDLE_TIMEOUT))
        try:
            await self._send(s, "+ idling")
            while True:
                waiter.clear()
                if s.folder is not None:
                    await self._refresh(s, expunge=True)
                changed = asyncio.ensure_future(waiter.wait())
                done, _ = await asyncio.wait(
                    {reading, changed}, return_when=asyncio.FIRST_COMPLETED
                )
                if reading in done:
                    changed.cancel()
                    break
        finally:
            self._waiters.discard(waiter)
            if not reading.done():
                reading.cancel()
        try:
            line = reading.result()
        except TimeoutError:
            await self._send(s, "* BYE idle for too long, logging out")
            raise _Logout from None
        if not line:
            raise _Logout
        if line.strip().upper() != b"DONE":
            return "BAD expected DONE to end IDLE"
        return "OK IDLE terminated"

    # -- selected ----------------------------------------------------------------------------------

    async def _cmd_close(self, s: _Session, tag: str, args: list[Token]) -> str:
        if not s.readonly:
            await self._expunge(s, None, report=False)
        s.folder = None
        s.uids, s.entries = [], {}
        return "OK CLOSE completed"

    async def _cmd_unselect(self, s: _Session, tag: str, args: list[Token]) -> str:
        s.folder = None
        s.uids, s.entries = [], {}
        return "OK UNSELECT completed"

    async def _cmd_expunge(self, s: _Session, tag: str, args: list[Token]) -> str:
        if s.readonly:
            return "NO mailbox is read-only (EXAMINE)"
        await self._expunge(s, None, report=True)
        return "OK EXPUNGE completed"

    async def _expunge(self, s: _Session, only: set[int] | None, report: bool) -> None:
        """Remove the messages flagged \\Deleted in this folder from it (RFC 3501 6.4.3; with
        `only`, those of a UID EXPUNGE set, RFC 4315)."""
        mine = deleted_mark(s.folder)
        doomed = [
            uid
            for uid in s.uids
            if mine in self.flags.get(uid, ()) and (only is None or uid in only)
        ]
        if not doomed:
            return
        await s.conn.call(self._leave, s.folder, [(u, s.entries[u].uid) for u in doomed])
        lines = self._forget(s, doomed)
        if report:
            await self._send(s, "\r\n".join(lines))

    def _forget(self, s: _Session, uids: list[int]) -> list[str]:
        """Drop messages from the session's view; the EXPUNGE responses that say so."""
        lines = []
        for uid in uids:
            seq = s.uids.index(uid) + 1
            lines.append(f"* {seq} EXPUNGE")
            del s.uids[seq - 1]
            s.entries.pop(uid, None)
        self._bump()  # other sessions in this folder see it go
        return lines

    # Folders are INBOX and the tags. A message in several folders is one message (as a label
    # in several places): removing it from a folder removes that membership, and only the
    # removal of its last one deletes it, so a copy survives the expunge of its original.

    def _leave(self, folder: str | None, messages: list[tuple[int, str]]) -> None:
        """Take messages ((UID, ID) pairs) out of a folder; delete those left in none."""
        gone: list[str] = []
        changed: dict[int, set[str]] = {}
        if folder in (None, "INBOX"):
            tagged = self._tagged([msg_id for _, msg_id in messages])
            for uid, msg_id in messages:
                if msg_id in tagged:  # it lives on in its tag folders
                    flags = self.flags.get(uid, set()) - {"\\Deleted"}
                    changed[uid] = flags | {LEFT_INBOX}
                else:
                    gone.append(msg_id)
        else:
            mark = deleted_mark(folder)
            for uid, msg_id in messages:
                left = self._retag(msg_id, remove=folder)
                flags = self.flags.get(uid, set())
                if left is not None and not left and LEFT_INBOX in flags:
                    gone.append(msg_id)  # that folder held its last copy
                else:
                    changed[uid] = flags - {mark}
        for uid, flags in changed.items():
            self._set_flags(uid, flags)
        if changed:
            self.mailbox.save_imap_flags(changed)
        if gone:
            self.mailbox.delete(gone)
            for uid, msg_id in messages:
                if msg_id in gone:
                    self._set_flags(uid, set())  # (its stored flags went with the message)

    def _enter(self, folder: str, messages: list[tuple[int, str]]) -> None:
        """Put messages ((UID, ID) pairs) into a folder (COPY, MOVE): tag them, or bring them
        back to INBOX."""
        if folder == "INBOX":
            changed = {
                uid: self.flags[uid] - {LEFT_INBOX}
                for uid, _ in messages
                if LEFT_INBOX in self.flags.get(uid, ())
            }
            for uid, flags in changed.items():
                self._set_flags(uid, flags)
            if changed:
                self.mailbox.save_imap_flags(changed)
            return
        for _, msg_id in messages:
            self._retag(msg_id, add=folder)

    def _tagged(self, ids: list[str]) -> set[str]:
        """Which of these messages have a tag (are in some tag folder)."""
        found = set()
        for msg_id in ids:
            try:
                if self.mailbox.summary(msg_id)["Tags"]:
                    found.add(msg_id)
            except MessageNotFound:
                continue
        return found

    def _retag(self, msg_id: str, add: str = "", remove: str = "") -> list[str] | None:
        """Add or remove one tag on a message (folders are tags): its tags now, None if gone."""
        try:
            tags = self.mailbox.summary(msg_id)["Tags"]
        except MessageNotFound:
            return None
        wanted = [t for t in tags if t != remove] + ([add] if add and add not in tags else [])
        if wanted != tags:
            self.mailbox.set_tags([msg_id], wanted)
        return wanted

    async def _cmd_uid(self, s: _Session, tag: str, args: list[Token]) -> str:
        if not args or not isinstance(args[0], Atom):
            raise ImapSyntaxError("UID takes FETCH, SEARCH, STORE, COPY, MOVE or EXPUNGE")
        sub = args[0].upper()
        handlers = {
            "FETCH": self._fetch,
            "SEARCH": self._search,
            "STORE": self._store,
            "COPY": self._copy,
            "MOVE": self._move,
            "EXPUNGE": self._uid_expunge,
        }
        if sub not in handlers:
            return (
                f"BAD UID {sub[:20]} is not supported (FETCH, SEARCH, STORE, COPY, MOVE, EXPUNGE)"
            )
        return await handlers[sub](s, args[1:], True)

    async def _uid_expunge(self, s: _Session, args: list[Token], by_uid: bool) -> str:
        """UID EXPUNGE (RFC 4315): only the \\Deleted messages of a UID set."""
        if len(args) != 1:
            raise ImapSyntaxError("UID EXPUNGE takes a UID set")
        if s.readonly:
            return "NO mailbox is read-only (EXAMINE)"
        only = {uid for _, uid in self._targets(s, args[0], True)}
        await self._expunge(s, only, report=True)
        return "OK UID EXPUNGE completed"

    async def _cmd_move(self, s: _Session, tag: str, args: list[Token]) -> str:
        return await self._move(s, args, False)

    async def _cmd_fetch(self, s: _Session, tag: str, args: list[Token]) -> str:
        return await self._fetch(s, args, False)

    async def _cmd_search(self, s: _Session, tag: str, args: list[Token]) -> str:
        return await self._search(s, args, False)

    async def _cmd_store(self, s: _Session, tag: str, args: list[Token]) -> str:
        return await self._store(s, args, False)

    async def _cmd_copy(self, s: _Session, tag: str, args: list[Token]) -> str:
        return await self._copy(s, args, False)

    def _targets(self, s: _Session, token: Token, by_uid: bool) -> list[tuple[int, int]]:
        """(sequence number, UID) of the messages a set names, in mailbox order."""
        numbers = SequenceSet.parse(text(token))
        if by_uid:
            largest = s.uids[-1] if s.uids else 0
            return [(n, uid) for n, uid in enumerate(s.uids, 1) if numbers.contains(uid, largest)]
        if s.uids and not numbers.bounded(len(s.uids)):  # empty: "1:*" finds nothing, no error
            raise ImapSyntaxError("no such message (the sequence number is beyond the last)")
        return [(n, uid) for n, uid in enumerate(s.uids, 1) if numbers.contains(n, len(s.uids))]

    # FETCH (RFC 3501 section 6.4.5)

    async def _fetch(self, s: _Session, args: list[Token], by_uid: bool) -> str:
        if len(args) != 2:
            raise ImapSyntaxError("FETCH takes a message set and data items")
        targets = self._targets(s, args[0], by_uid)
        spec = args[1]
        items = [text(i) for i in (spec if isinstance(spec, list) else [spec])]
        if len(items) == 1 and items[0].upper() in _MACROS and not isinstance(spec, list):
            items = _MACROS[items[0].upper()]
        for item in items:
            self._check_item(item)
        if by_uid and "UID" not in (i.upper() for i in items):
            items = ["UID", *items]
        marks_seen = not s.readonly and any(
            i.upper().startswith("BODY[") or i.upper() in ("RFC822", "RFC822.TEXT") for i in items
        )
        for seq, uid in targets:
            entry = s.entries.get(uid)
            if entry is None:
                continue
            try:
                response = await s.conn.call(self._fetch_one, s, seq, uid, entry, items, marks_seen)
            except MessageNotFound:
                continue  # deleted meanwhile; its EXPUNGE comes when it may be said
            await s.conn.write(response + b"\r\n")
        return "OK FETCH completed"

    def _check_item(self, item: str) -> None:
        simple = {
            "FLAGS",
            "UID",
            "INTERNALDATE",
            "RFC822.SIZE",
            "RFC822",
            "RFC822.HEADER",
            "RFC822.TEXT",
            "ENVELOPE",
            "BODYSTRUCTURE",
            "BODY",
        }
        if item.upper() in simple:
            return
        m = _FETCH_BODY.fullmatch(item)
        if m is None:
            raise ImapSyntaxError(f"unknown FETCH item {item[:40]}")
        parse_section(m.group(2))

    def _entity(self, s: _Session, uid: int, msg_id: str) -> Entity:
        entity = s.parsed.get(uid)
        if entity is None:
            entity = parse_entity(self.mailbox.raw(msg_id))
            s.parsed[uid] = entity
            while len(s.parsed) > 8:
                s.parsed.popitem(last=False)
        return entity

    def _fetch_one(
        self,
        s: _Session,
        seq: int,
        uid: int,
        entry: IndexEntry,
        items: list[str],
        marks_seen: bool,
    ) -> bytes:
        """One `* n FETCH (...)` response (runs on a worker thread: it reads the store)."""
        parts: list[bytes] = []
        if marks_seen and not entry.read:
            self.mailbox.mark_read([entry.uid], True)
            entry = entry._replace(read=1)
            s.entries[uid] = entry
            if "FLAGS" not in (i.upper() for i in items):
                items = [*items, "FLAGS"]
        for item in items:
            key = item.upper()
            if key == "FLAGS":
                parts.append(b"FLAGS (" + " ".join(self._flags(s, uid)).encode() + b")")
            elif key == "UID":
                parts.append(b"UID %d" % uid)
            elif key == "INTERNALDATE":
                parts.append(b'INTERNALDATE "' + internal_date(entry.created).encode() + b'"')
            elif key == "RFC822.SIZE":
                parts.append(b"RFC822.SIZE %d" % entry.size)
            else:
                entity = self._entity(s, uid, entry.uid)
                parts.append(self._fetch_content(entity, item))
        return b"* %d FETCH (" % seq + b" ".join(parts) + b")"

    def _fetch_content(self, entity: Entity, item: str) -> bytes:
        key = item.upper()
        if key in ("ENVELOPE", "BODYSTRUCTURE", "BODY"):
            try:
                if key == "ENVELOPE":
                    return b"ENVELOPE " + envelope(entity)
                return key.encode() + b" " + bodystructure(entity, key == "BODYSTRUCTURE")
            except Exception:
                # One odd message must not stop a client's sync: describe it as plain text.
                log.exception("IMAP %s of a stored message failed", key)
                if key == "ENVELOPE":
                    return b"ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
                size = len(entity.raw) - entity.body_start
                return key.encode() + b' ("TEXT" "PLAIN" NIL NIL NIL "7BIT" %d 0)' % size
        if key == "RFC822":
            return b"RFC822 " + literal(entity.raw)
        if key == "RFC822.HEADER":
            return b"RFC822.HEADER " + literal(entity.header)
        if key == "RFC822.TEXT":
            return b"RFC822.TEXT " + literal(entity.body)
        m = _FETCH_BODY.fullmatch(item)
        assert m is not None
        section = parse_section(m.group(2))
        data = section_bytes(entity, section)
        label = f"BODY[{m.group(2).upper() if not section.fields else m.group(2)}]"
        if data is None:
            data = b""
        if m.group(3) is not None:
            start, count = int(m.group(3)), int(m.group(4))
            data = data[start : start + count]
            label += f"<{start}>"
        return label.encode() + b" " + literal(data)

    # SEARCH (RFC 3501 section 6.4.4)

    async def _search(self, s: _Session, args: list[Token], by_uid: bool) -> str:
        if len(args) >= 2 and isinstance(args[0], Atom) and args[0].upper() == "CHARSET":
            if text(args[1]).upper() not in ("UTF-8", "US-ASCII"):
                return "NO [BADCHARSET (UTF-8 US-ASCII)] charset not supported"
            args = args[2:]
        predicate = compile_search(args)
        found = await s.conn.call(self._search_run, s, predicate, by_uid)
        await self._send(s, "* SEARCH" + "".join(f" {n}" for n in found))
        return "OK SEARCH completed"

    def _search_run(self, s: _Session, predicate: Any, by_uid: bool) -> list[int]:
        largest_uid = s.uids[-1] if s.uids else 0
        found = []
        for seq, uid in enumerate(s.uids, 1):
            entry = s.entries.get(uid)
            if entry is None:
                continue
            candidate = Candidate(
                seq,
                uid,
                entry.size,
                entry.created,
                set(self._flags(s, uid)),
                partial(self._search_data, entry.uid),
            )
            try:
                if predicate(candidate, len(s.uids), largest_uid):
                    found.append(uid if by_uid else seq)
            except MessageNotFound:
                continue
        return found

    def _search_data(self, msg_id: str) -> dict[str, Any]:
        stored = self.mailbox.get(msg_id)
        body = f"{stored.detail['Text']}\n{stored.detail['HTML']}"
        return {"headers": [tuple(h) for h in stored.detail["Headers"]], "text": body}

    # STORE (RFC 3501 section 6.4.6)

    async def _store(self, s: _Session, args: list[Token], by_uid: bool) -> str:
        if len(args) < 3:
            raise ImapSyntaxError("STORE takes a message set, FLAGS/+FLAGS/-FLAGS and flags")
        if s.readonly:
            return "NO mailbox is read-only (EXAMINE)"
        targets = self._targets(s, args[0], by_uid)
        action = text(args[1]).upper()
        m = re.fullmatch(r"([+-]?)FLAGS(\.SILENT)?", action)
        if m is None:
            raise ImapSyntaxError(f"{action[:30]} is not FLAGS, +FLAGS or -FLAGS")
        raw_flags = args[2] if isinstance(args[2], list) else args[2:]
        flags = _flag_names(raw_flags)
        mode, silent = m.group(1), bool(m.group(2))
        mine = deleted_mark(s.folder)
        seen_on: list[int] = []
        seen_off: list[int] = []
        for _, uid in targets:
            entry = s.entries.get(uid)
            if entry is None:
                continue
            current = set(self._flags(s, uid))
            new = flags if mode == "" else current | flags if mode == "+" else current - flags
            if ("\\Seen" in new) != bool(entry.read):
                (seen_on if "\\Seen" in new else seen_off).append(uid)
                s.entries[uid] = entry._replace(read=int("\\Seen" in new))
            self._set_flags(uid, _kept_with(self.flags.get(uid, set()), new, mine))
        changed = {uid: set(self.flags.get(uid, ())) for _, uid in targets if uid in s.entries}
        if changed:
            await s.conn.call(self.mailbox.save_imap_flags, changed)
        for uids, read in ((seen_on, True), (seen_off, False)):
            if uids:
                # The read state the web UI shows: through the mailbox, which publishes it.
                await s.conn.call(self.mailbox.mark_read, [s.entries[u].uid for u in uids], read)
        if not silent:
            lines = []
            for seq, uid in targets:
                if uid in s.entries:
                    flag_text = " ".join(self._flags(s, uid))
                    extra = f" UID {uid}" if by_uid else ""
                    lines.append(f"* {seq} FETCH (FLAGS ({flag_text}){extra})")
            if lines:
                await self._send(s, "\r\n".join(lines))
        return "OK STORE completed"

    # COPY and MOVE (RFC 3501 6.4.7, RFC 6851): into a tag folder tags the messages, into INBOX
    # brings them back there; the UIDs stay (COPYUID says so, RFC 4315).

    async def _copy(self, s: _Session, args: list[Token], by_uid: bool) -> str:
        found = await self._copy_into(s, args, "COPY", by_uid)
        if isinstance(found, str):
            return found
        code, _ = found
        return f"OK {code}COPY completed"

    async def _move(self, s: _Session, args: list[Token], by_uid: bool) -> str:
        if s.readonly:
            return "NO mailbox is read-only (EXAMINE)"
        found = await self._copy_into(s, args, "MOVE", by_uid)
        if isinstance(found, str):
            return found
        code, moved = found
        if moved:
            await s.conn.call(self._leave, s.folder, [(u, s.entries[u].uid) for u in moved])
            lines = self._forget(s, moved)
            await self._send(s, "\r\n".join([f"* OK {code}moved", *lines]))
        return "OK MOVE completed"

    async def _copy_into(
        self, s: _Session, args: list[Token], command: str, by_uid: bool = False
    ) -> str | tuple[str, list[int]]:
        """Put the messages a COPY/MOVE names into its folder: (COPYUID code, their UIDs), or
        the answer when it cannot."""
        if len(args) != 2:
            raise ImapSyntaxError(f"{command} takes a message set and a mailbox")
        targets = self._targets(s, args[0], by_uid)
        name = decode_mailbox(text(args[1]))
        folder = "INBOX" if name.upper() == "INBOX" else name
        if not folder.strip() or any(ord(c) < 32 for c in folder):
            return f"NO [CANNOT] {name[:40]!r} cannot be a folder (a tag) name"
        if command == "MOVE" and folder == s.folder:
            return "NO [CANNOT] the messages are in that folder already"
        uids = [uid for _, uid in targets if uid in s.entries]
        if not uids:
            return ("", [])
        await s.conn.call(self._enter, folder, [(u, s.entries[u].uid) for u in uids])
        validity = await s.conn.call(self.mailbox.uid_validity)
        self._bump()
        return (f"[COPYUID {validity} {uid_set(uids)} {uid_set(uids)}] ", uids)


def _kept_with(stored: set[str], shown: set[str], deleted: str) -> set[str]:
    """What to keep for a message whose flags in one folder are now `shown`: its marks, but
    that folder's \\Deleted as `shown` says (\\Seen is the read state, kept apart)."""
    marks = {f for f in stored if (" " in f or f == "\\Deleted") and f != deleted}
    kept = marks | (shown - {"\\Seen", "\\Deleted"})
    return kept | {deleted} if "\\Deleted" in shown else kept


def _flag_names(tokens: list[Token]) -> set[str]:
    """The flags of a STORE or APPEND, checked: \\Recent is the server's to set."""
    names = set()
    for token in tokens:
        if not isinstance(token, Atom) or not token or " " in token:
            raise ImapSyntaxError("a flag is an atom, such as \\Seen or $Label")
        name = _flag_name(token)
        if name.startswith("\\") and name not in SYSTEM_FLAGS and name != "\\Recent":
            raise ImapSyntaxError(f"unknown system flag {name[:30]}")
        names.add(name)
    names.discard("\\Recent")
    return names


def _flag_name(value: str) -> str:
    """System flags in their canonical case (\\seen -> \\Seen); keywords as given."""
    for flag in SYSTEM_FLAGS:
        if value.lower() == flag.lower():
            return flag
    return value
