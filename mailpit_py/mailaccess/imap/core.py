"""The IMAP listener's core: sessions and their commands' dispatch, the folder snapshot each
session keeps up to date from the bus, which folders a login sees, and how a message enters and
leaves a folder (folders are a mailbox's INBOX and its tags)."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from mailpit_py import events
from mailpit_py.mailaccess.access import Access, primary_box
from mailpit_py.mailaccess.imap.folders import (
    DELIMITER,
    INBOX,
    Folder,
    FolderSpace,
    folder_space,
)
from mailpit_py.mailaccess.imap.session import (
    IDLE_TIMEOUT,
    LEFT_INBOX,
    SYSTEM_FLAGS,
    Logout,
    NoMailbox,
    Session,
    deleted_mark,
)
from mailpit_py.mailaccess.imap.syntax import (
    Atom,
    ImapSyntaxError,
    Token,
    decode_mailbox,
    literal_at_end,
    text,
    tokenize,
)
from mailpit_py.mailaccess.lineserver import Connection, LineTooLong, MailReader
from mailpit_py.mailbox.facade import IndexEntry, Mailbox, MessageNotFound
from mailpit_py.mailbox.tags import clean_tag

if TYPE_CHECKING:
    from mailpit_py.mailbox.boxview import BoxView

log = logging.getLogger("mailpit_py.imap")

MAX_GARBAGE = 20  # untagged lines in a row before the server hangs up
MAX_COMMAND_LITERAL = 1024 * 1024  # literals outside APPEND are names, passwords, search words
TAGGED_ONE_BY_ONE = 100  # messages entering or leaving a folder whose tags are read one by one
FLAG_LOG = 10_000  # flag changes kept for the sessions that have yet to tell their clients
SIZES_KEPT = 100_000  # RFC822.SIZEs measured and kept (~13 MB), the least recently asked go
PRE_AUTH_COMMAND = 8 * 1024  # before a login: room for LOGIN with literal name and password
# A tag is any ASTRING-CHAR but "+" (RFC 3501 section 9): no controls, spaces or specials.
_TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')
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


class ImapCore(MailReader):
    """The IMAP listener without its commands (server.py, folder_commands.py): logins from
    `access`; every read and write goes through the mailbox."""

    protocol = "imap"

    def __init__(self, access: Access, mailbox: Mailbox, label: str = "") -> None:
        super().__init__(access, mailbox, label)
        # Flags other than \Seen (which is the read state the UI shows), by UID, shared by every
        # session; kept in the store too, so they survive a restart.
        self.flags: dict[int, set[str]] = mailbox.imap_flags()
        self._flags_version = 0  # bumped by each change of self.flags
        # (version, UID) of the latest flag changes, so that each session tells its client of
        # those another session made (an unsolicited FETCH, RFC 3501 section 7.4.2): a phone
        # flags a message, the laptop idling in that folder shows it at once.
        self._flag_log: deque[tuple[int, int]] = deque(maxlen=FLAG_LOG)
        # Tag folders made by CREATE that no message is in yet, as (mailbox, tag).
        self.created: set[tuple[str, str]] = set()
        # Bumped (on the listener loop) for each change: `generation` for every change,
        # `_everywhere` for one that concerns every mailbox, `generations[box]` for one in that
        # mailbox; a session's mark is the sum of the last two, so only its own mailbox's
        # changes make it read its folder again.
        self.generation = 0
        self._everywhere = 0
        self.generations: dict[str, int] = {}
        # IDLE waiters, each with the mailbox whose changes wake it (None: any change).
        self._waiters: dict[asyncio.Event, str | None] = {}
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        # The UIDNEXT told of each mailbox (see _uid_numbers), and its lock: worker threads.
        self._uidnext: dict[str, int] = {}
        self._uidnext_lock = threading.Lock()
        # RFC822.SIZE as sent (CRLF line endings) by UID, at most SIZES_KEPT (server.py).
        self._sizes: OrderedDict[int, int] = OrderedDict()
        self._sizes_lock = threading.Lock()

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
                        # Only the sessions of that mailbox look again (or of every one).
                        self.listener.call_soon(partial(self._bump, event.box))
                if sub.ended.is_set():
                    return

    def _bump(self, box: str = events.EVERY_BOX) -> None:
        self.generation += 1
        if box == events.EVERY_BOX:
            self._everywhere += 1
        else:
            self.generations[box] = self.generations.get(box, 0) + 1
        self._wake(box)

    def _wake(self, box: str) -> None:
        """Wake the sessions idling in `box` (or every mailbox) to tell what changed."""
        for waiter, waits_for in self._waiters.items():
            if box == events.EVERY_BOX or waits_for in (None, box):
                waiter.set()

    def _generation(self, box: str) -> int:
        """The change mark of `box`: it moves with every change there or everywhere."""
        return self._everywhere + self.generations.get(box, 0)

    # -- the session loop -----------------------------------------------------------------------

    def capabilities(self, s: Session) -> str:
        caps = ["IMAP4rev1", "LITERAL+", "SASL-IR", "IDLE", "NAMESPACE", "UNSELECT", "ID"]
        caps += ["CHILDREN", "UIDPLUS", "MOVE"]
        if not s.user:
            caps.append("AUTH=PLAIN")
            if self.access.tls is not None and not s.conn.tls:
                caps.append("STARTTLS")
        return " ".join(caps)

    async def _session(self, conn: Connection) -> None:
        s = Session(conn)
        name = f"mailpit-py ({self.label})" if self.label else "mailpit-py"
        await self._send(s, f"* OK [CAPABILITY {self.capabilities(s)}] {name} IMAP4rev1 ready")
        try:
            while True:
                data = await self._read_command(s)
                if data is None:
                    return
                await self._run(s, data)
        except Logout:
            return

    async def _read_command(self, s: Session) -> bytes | None:
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
                await s.conn.hang_up()
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

    def _literal_refused(self, s: Session, command: bytes, size: int) -> str:
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

    async def _send(self, s: Session, line: str | bytes) -> None:
        data = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
        await s.conn.write(data + b"\r\n")

    async def _run(self, s: Session, data: bytes) -> None:
        if not data.strip():
            return  # an empty line, or a command already answered while reading it
        tag = "*"
        try:
            first, _, rest = data.partition(b" ")
            if not _TAG.fullmatch(first):
                s.garbage += 1
                if s.garbage > MAX_GARBAGE:
                    await self._send(s, "* BYE this does not look like IMAP")
                    raise Logout
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
            handler: Callable[[Session, str, list[Token]], Awaitable[str]] | None = getattr(
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
        except NoMailbox as exc:
            await self._send(s, f"{tag} NO [NOPERM] {exc}")
        except (Logout, ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("IMAP command failed")
            await self._send(s, f"{tag} NO [SERVERBUG] internal error, see the server log")

    def _refuse(self, s: Session, command: str) -> str:
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

    def _flags(self, s: Session, uid: int) -> list[str]:
        entry = s.entries.get(uid)
        stored = self.flags.get(uid, ())
        flags = sorted(f for f in stored if " " not in f and f != "\\Deleted")
        if deleted_mark(s.folder) in stored:
            flags.append("\\Deleted")
            flags.sort()
        if entry is not None and entry.read:
            flags.insert(0, "\\Seen")
        return flags

    def _keywords(self, s: Session) -> frozenset[str]:
        """Every keyword ($Forwarded, $Junk, a label) a message of the selected folder has now
        (only its own: the labels of another mailbox are not this login's to see); worked out
        again only after a change, as every command of a session with a folder selected asks."""
        mark = (self._flags_version, len(s.uids), s.uids[-1] if s.uids else 0)
        if mark != s.keywords_of:
            flags = self.flags
            found = {f for uid in s.uids for f in flags.get(uid, ()) if f[:1] != "\\"}
            s.keywords_of = mark
            return frozenset(found)
        return s.keywords

    def _save_flags(self, changes: dict[int, set[str]]) -> None:
        """Keep flags in the store (worker thread). Every caller's UIDs are those of a session's
        folder, read from its own mailbox's index, so they go to the store unchecked: a
        mailbox view would check them by reading that whole index again."""
        self.mailbox.save_imap_flags(changes)

    def _set_flags(self, uid: int, flags: set[str]) -> None:
        """Replace a message's flags and marks (a new set: worker threads read the old one)."""
        self._flags_version += 1
        self._flag_log.append((self._flags_version, uid))
        if flags:
            self.flags[uid] = flags
        else:
            self.flags.pop(uid, None)

    async def _announce_flags(self, s: Session) -> None:
        """A FLAGS response (with PERMANENTFLAGS) when the keywords in use have changed, so a
        client offers the new ones (RFC 3501 section 7.2.6)."""
        keywords = self._keywords(s)
        if keywords == s.keywords:
            return
        s.keywords = keywords
        await self._send(s, "\r\n".join(self._flags_lines(s)))

    def _flags_lines(self, s: Session) -> list[str]:
        flags = " ".join([*SYSTEM_FLAGS, *sorted(s.keywords)])
        permanent = "" if s.readonly else f"{flags} \\*"
        return [f"* FLAGS ({flags})", f"* OK [PERMANENTFLAGS ({permanent})] flags and keywords"]

    async def _load(self, s: Session) -> list[IndexEntry]:
        assert s.view is not None
        return await s.conn.call(self._index, s.view, s.folder)

    def _index(self, view: BoxView, folder: str | None) -> list[IndexEntry]:
        """The messages in a folder of a mailbox, oldest first (worker thread): a tag's, or
        INBOX's, which is every message of the mailbox but those moved out of it to a tag
        folder."""
        if folder not in (None, INBOX):
            return view.index(folder)
        index = view.index()
        left = {uid for uid, flags in list(self.flags.items()) if LEFT_INBOX in flags}
        if not left:
            return index
        # A message whose last tag went (in the web UI, say) is back in INBOX, so that every
        # message is in some folder.
        tagged = {e.imap_uid for tag in view.tags() for e in view.index(tag)}
        return [e for e in index if e.imap_uid not in left or e.imap_uid not in tagged]

    def _uid_numbers(self, view: BoxView) -> tuple[int, int]:
        """(UIDVALIDITY, UIDNEXT) of a mailbox's folders (worker thread).

        UIDs are the messages' row numbers across every mailbox, never reused, so one
        UIDVALIDITY serves every folder. UIDNEXT is the database's next row number when a
        mailbox is first asked for, then moves only when the mailbox gets a message with a
        higher UID: the database's own moves with every mailbox's mail, so a login polling
        STATUS would learn when another mailbox got some, and RFC 3501 (2.3.1.1) wants it
        to change only when messages are added to the mailbox, never to go down."""
        own = view.next_imap_uid()
        with self._uidnext_lock:
            told = self._uidnext.get(view.box)
            if told is None:
                told = self.mailbox.next_imap_uid()
            told = self._uidnext[view.box] = max(told, own)
        return view.uid_validity(), told

    async def _refresh(self, s: Session, expunge: bool, force: bool = False) -> None:
        """Tell the client what changed since its last update: expunged messages (when that may
        be said now), new flags, and new messages (RFC 3501 section 7.3 and 7.4)."""
        if s.generation == self._generation(s.box) and force:
            # A command that looks for news reads the folder again only when the mailbox's
            # newest UID or counts moved since it was last read (the bus may not have told of
            # the change yet): a NOOP read the whole index each time, 0.1 s at 10,000 messages.
            assert s.view is not None
            force = await s.conn.call(self._mark, s.view) != s.known
        if s.generation == self._generation(s.box) and not force:
            if s.flag_mark != self._flags_version:  # only flags changed: no index to read
                flagged = self._flagged_since(s)
                numbered = enumerate(s.uids, 1)
                lines = [self._flags_fetch(s, n, uid) for n, uid in numbered if uid in flagged]
                if lines:
                    await self._send(s, "\r\n".join(lines))
            return
        generation = self._generation(s.box)
        assert s.view is not None
        s.known = await s.conn.call(self._mark, s.view)  # (before the index: see above)
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
        flagged = self._flagged_since(s)
        for seq, uid in enumerate(s.uids, 1):
            old, new = s.entries.get(uid), now.get(uid)
            if new is None:
                continue
            s.entries[uid] = new
            if (old is not None and old.read != new.read) or uid in flagged:
                out.append(self._flags_fetch(s, seq, uid))
        last = s.uids[-1] if s.uids else 0
        added = [e for e in index if e.imap_uid > last]
        if added:
            s.uids += [e.imap_uid for e in added]
            s.entries.update((e.imap_uid, e) for e in added)
            out.append(f"* {len(s.uids)} EXISTS")
        if out:
            await self._send(s, "\r\n".join(out))

    def _mark(self, view: BoxView) -> tuple[int, int, int]:
        """What tells that a mailbox changed, cheaply: its next UID, total and unread."""
        return (view.next_imap_uid(), *view.counts())

    def _flags_fetch(self, s: Session, seq: int, uid: int) -> str:
        return f"* {seq} FETCH (FLAGS ({' '.join(self._flags(s, uid))}))"

    def _flagged_since(self, s: Session) -> set[int]:
        """The UIDs whose flags changed since the session last told its client (the oldest
        changes may have left the log: those are seen at the client's next FETCH FLAGS)."""
        mark, s.flag_mark = s.flag_mark, self._flags_version
        own_from, own_to = s.own_flags
        found = set()
        for version, uid in reversed(self._flag_log):
            if version <= mark:
                break
            if not own_from < version <= own_to:
                found.add(uid)
        return found

    def _space(self, user: str) -> FolderSpace:
        """The folders `user` sees now (worker thread: mailboxes come and go while it reads)."""
        existing = [box.name for box in self.mailbox.boxes()]
        allowed = self.mailbox.config.allowed_boxes(user)
        primary = primary_box(user, existing, allowed, self.mailbox.config.mailbox_auto)
        if primary is None:
            raise NoMailbox(user)
        return folder_space(primary, existing, allowed)

    def _tags(self, box: str) -> list[str]:
        """The tag folders of a mailbox: its tags, and the empty folders CREATE made there."""
        tags = self.mailbox.view(box).tags()
        return [*tags, *(t for b, t in self.created if b == box and t not in tags)]

    def _folders(self, s: Session) -> tuple[FolderSpace, list[tuple[str, bool]]]:
        """Every folder the session's login sees: (name, has children)."""
        space = self._space(s.user)
        return space, space.listing({box: self._tags(box) for box in space.boxes})

    def _folder(self, s: Session, token: Token) -> Folder | None:
        """The folder a name means for this login (INBOX in any case, one of its mailboxes, or
        a tag folder of one), or None: no such folder, or a mailbox it may not see."""
        return self._find(s, decode_mailbox(text(token)))

    def _find(self, s: Session, name: str) -> Folder | None:
        """The folder a decoded name means for this login, or None (see _folder)."""
        found = self._space(s.user).parse(name)
        if found is None or found.is_inbox:
            return found
        return found if found.folder in self._tags(found.box) else None

    @staticmethod
    def _unnamable(found: Folder | None, name: str) -> str:
        """Why a (decoded) name cannot be a folder to make or put messages in, or ''. A tag
        folder is a tag, and a tag's name is cleaned (mailbox/tags.py): a folder made under
        another name, `Archives/2026` say, would fill a folder `Archives 2026` instead, and the
        client would never find what it put there."""
        if found is None or not found.folder.strip() or any(ord(c) < 32 for c in name):
            return f"NO [CANNOT] {name[:40]!r} cannot be a folder (a tag) name"
        if not found.is_inbox and clean_tag(found.folder) != found.folder:
            return (
                f"NO [CANNOT] {name[:40]!r} cannot be a folder name: a folder is a tag, whose "
                f"name has letters, digits, spaces, '-', '_', '.' and '@' only (no {DELIMITER} "
                "below a tag folder either)"
            )
        return ""

    def _forget(self, s: Session, uids: list[int]) -> list[str]:
        """Drop messages from the session's view; the EXPUNGE responses that say so."""
        # In one pass, not a list search and delete each: at 100,000 messages those took
        # minutes. Each EXPUNGE's number counts those already said to be gone (7.4.1).
        doomed = set(uids)
        lines: list[str] = []
        kept: list[int] = []
        for seq, uid in enumerate(s.uids, 1):
            if uid in doomed:
                lines.append(f"* {seq - len(lines)} EXPUNGE")
                s.entries.pop(uid, None)
            else:
                kept.append(uid)
        s.uids = kept
        self._bump(s.box)  # other sessions in this folder see it go
        return lines

    # Folders are INBOX and the tags. A message in several folders is one message (as a label
    # in several places): removing it from a folder removes that membership, and only the
    # removal of its last one deletes it, so a copy survives the expunge of its original.

    def _leave(self, view: BoxView, folder: str | None, messages: list[tuple[int, str]]) -> None:
        """Take messages ((UID, ID) pairs) out of a folder of a mailbox; delete those left in
        none."""
        gone: list[str] = []
        changed: dict[int, set[str]] = {}
        if folder in (None, INBOX):
            tagged = self._tagged(view, [msg_id for _, msg_id in messages])
            for uid, msg_id in messages:
                if msg_id in tagged:  # it lives on in its tag folders
                    flags = self.flags.get(uid, set()) - {"\\Deleted"}
                    changed[uid] = flags | {LEFT_INBOX}
                else:
                    gone.append(msg_id)
        else:
            mark = deleted_mark(folder)
            now = self._retag(view, [msg_id for _, msg_id in messages], remove=folder)
            for uid, msg_id in messages:
                left = now.get(msg_id)
                flags = self.flags.get(uid, set())
                if left is not None and not left and LEFT_INBOX in flags:
                    gone.append(msg_id)  # that folder held its last copy
                else:
                    changed[uid] = flags - {mark}
        for uid, flags in changed.items():
            self._set_flags(uid, flags)
        if changed:
            self._save_flags(changed)
        if gone:
            view.delete(gone)
            went = set(gone)  # (a list's `in` made this loop quadratic: seconds at 10,000)
            for uid, msg_id in messages:
                if msg_id in went:
                    self._set_flags(uid, set())  # (its stored flags went with the message)

    def _enter(self, view: BoxView, folder: str, messages: list[tuple[int, str]]) -> None:
        """Put messages ((UID, ID) pairs) into a folder of their mailbox (COPY, MOVE): tag
        them, or bring them back to INBOX."""
        if folder == INBOX:
            changed = {
                uid: self.flags[uid] - {LEFT_INBOX}
                for uid, _ in messages
                if LEFT_INBOX in self.flags.get(uid, ())
            }
            for uid, flags in changed.items():
                self._set_flags(uid, flags)
            if changed:
                self._save_flags(changed)
            return
        self._retag(view, [msg_id for _, msg_id in messages], add=folder)

    def _tagged(self, view: BoxView, ids: list[str]) -> set[str]:
        """Which of these messages have a tag (are in some tag folder)."""
        return {msg_id for msg_id, tags in self._tags_of(view, ids).items() if tags}

    def _tags_of(self, view: BoxView, ids: list[str]) -> dict[str, list[str]]:
        """The tags of each of these messages (one gone is left out): a read of each, or, for
        many, of the tag folders (an EXPUNGE or a MOVE of a whole folder read every message)."""
        if len(ids) > TAGGED_ONE_BY_ONE:
            found: dict[str, list[str]] = {msg_id: [] for msg_id in ids}
            for tag in view.tags():
                for entry in view.index(tag):
                    if entry.uid in found:
                        found[entry.uid].append(tag)
            return found
        found = {}
        for msg_id in ids:
            try:
                found[msg_id] = list(view.summary(msg_id)["Tags"])
            except MessageNotFound:
                continue
        return found

    def _retag(
        self, view: BoxView, ids: list[str], add: str = "", remove: str = ""
    ) -> dict[str, list[str]]:
        """Add or remove one tag on messages (folders are tags): the tags of each now (one gone
        is left out). Messages whose tags end the same are tagged in one write, not one each
        (a COPY of 10,000 messages was 10,000 writes)."""
        now: dict[str, list[str]] = {}
        writes: dict[tuple[str, ...], list[str]] = {}
        for msg_id, tags in self._tags_of(view, ids).items():
            wanted = [t for t in tags if t != remove] + ([add] if add and add not in tags else [])
            now[msg_id] = wanted
            if wanted != tags:
                writes.setdefault(tuple(wanted), []).append(msg_id)
        for wanted_tags, group in writes.items():
            view.set_tags(group, list(wanted_tags))
        return now
