"""IMAP4rev1 server over the mailboxes (RFC 3501, the parts mail clients use, plus IDLE from
RFC 2177): INBOX is a login's own mailbox, each tag a folder of its own, and each other mailbox
it may see a folder with its tags inside (folders.py)."""

from __future__ import annotations

import asyncio
import logging
import re
from functools import partial
from typing import TYPE_CHECKING, Any

from mailpit_py.mailaccess.access import decode_plain
from mailpit_py.mailaccess.imap.core import SIZES_KEPT
from mailpit_py.mailaccess.imap.folder_commands import FolderCommands
from mailpit_py.mailaccess.imap.folders import INBOX, Folder
from mailpit_py.mailaccess.imap.mime import (
    Entity,
    bodystructure,
    crlf,
    crlf_size,
    envelope,
    parse_entity,
    parse_section,
    section_bytes,
)
from mailpit_py.mailaccess.imap.search import Candidate, compile_search
from mailpit_py.mailaccess.imap.session import (
    IDLE_TIMEOUT,
    Logout,
    NoMailbox,
    Session,
    deleted_mark,
    flag_names,
    internal_date,
    kept_with,
    uid_set,
)
from mailpit_py.mailaccess.imap.syntax import (
    Atom,
    ImapSyntaxError,
    SequenceSet,
    Token,
    decode_mailbox,
    literal,
    text,
)
from mailpit_py.mailbox.facade import IndexEntry, MessageNotFound

if TYPE_CHECKING:
    from mailpit_py.mailbox.boxview import BoxView

log = logging.getLogger("mailpit_py.imap")

_FETCH_BODY = re.compile(r"(BODY|BODY\.PEEK)\[(.*)\](?:<(\d+)\.(\d+)>)?", re.I | re.S)
_MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}


class ImapServer(FolderCommands):
    """The IMAP listener: logins from `access`; every read and write goes through the mailbox."""

    # -- any state ---------------------------------------------------------------------------------

    async def _cmd_capability(self, s: Session, tag: str, args: list[Token]) -> str:
        await self._send(s, f"* CAPABILITY {self.capabilities(s)}")
        return "OK CAPABILITY completed"

    async def _cmd_noop(self, s: Session, tag: str, args: list[Token]) -> str:
        return "OK NOOP completed"

    async def _cmd_check(self, s: Session, tag: str, args: list[Token]) -> str:
        return "OK CHECK completed"

    async def _cmd_logout(self, s: Session, tag: str, args: list[Token]) -> str:
        await self._send(s, "* BYE logging out")
        await self._send(s, f"{tag} OK LOGOUT completed")
        raise Logout

    async def _cmd_id(self, s: Session, tag: str, args: list[Token]) -> str:
        await self._send(s, '* ID ("name" "mailpit-py")')
        return "OK ID completed"

    # -- not authenticated -------------------------------------------------------------------------

    async def _cmd_starttls(self, s: Session, tag: str, args: list[Token]) -> str:
        if self.access.tls is None:
            return "NO STARTTLS is not available: the server has no --imap-tls-cert"
        if s.conn.tls:
            return "BAD already using TLS"
        await self._send(s, f"{tag} OK begin TLS negotiation now")
        await s.conn.start_tls()
        return ""

    async def _login(self, s: Session, user: str, password: str) -> str:
        if not await s.conn.call(self.access.credentials.check, user, password):
            log.warning("IMAP login failed for %r from %s", user, s.conn.peer)
            self.mailbox.telemetry.inc("imap_logins", "failed")
            return "NO [AUTHENTICATIONFAILED] invalid user name or password"
        try:
            await s.conn.call(self._space, user)
        except NoMailbox as exc:
            log.warning("IMAP login %r from %s refused: no mailbox", user, s.conn.peer)
            return f"NO [AUTHORIZATIONFAILED] {exc}"
        s.user = user
        self.mailbox.telemetry.inc("imap_logins", "ok")
        log.info("IMAP login %r from %s", user, s.conn.peer)
        return f"OK [CAPABILITY {self.capabilities(s)}] logged in"

    async def _cmd_login(self, s: Session, tag: str, args: list[Token]) -> str:
        if len(args) != 2:
            raise ImapSyntaxError("LOGIN takes a user name and a password")
        return await self._login(s, text(args[0]), text(args[1]))

    async def _cmd_authenticate(self, s: Session, tag: str, args: list[Token]) -> str:
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

    async def _cmd_select(self, s: Session, tag: str, args: list[Token]) -> str:
        return await self._select(s, args, readonly=False)

    async def _cmd_examine(self, s: Session, tag: str, args: list[Token]) -> str:
        return await self._select(s, args, readonly=True)

    async def _select(self, s: Session, args: list[Token], readonly: bool) -> str:
        if len(args) != 1:
            raise ImapSyntaxError("SELECT and EXAMINE take a mailbox name")
        s.folder = None
        s.uids, s.entries = [], {}
        found = await s.conn.call(self._folder, s, args[0])
        if found is None:
            space = await s.conn.call(self._space, s.user)
            more = ", or a mailbox LIST shows" if space.others else ""
            return f"NO [NONEXISTENT] no mailbox {text(args[0])[:100]!r}: INBOX or a tag name{more}"
        s.box, s.view = found.box, self.mailbox.view(found.box)
        s.folder, s.readonly = found.folder, readonly
        s.generation = self._generation(s.box)
        s.flag_mark = self._flags_version
        s.known = await s.conn.call(self._mark, s.view)
        index = await self._load(s)
        s.uids = [e.imap_uid for e in index]
        s.entries = {e.imap_uid: e for e in index}
        validity, next_uid = await s.conn.call(self._uid_numbers, s.view)
        unseen = next((n for n, e in enumerate(index, 1) if not e.read), None)
        s.keywords_of = (-1, -1, -1)
        s.keywords = await s.conn.call(self._keywords, s)
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

    async def _cmd_idle(self, s: Session, tag: str, args: list[Token]) -> str:
        """RFC 2177: changes are pushed as they happen until the client says DONE."""
        waiter = asyncio.Event()
        self._waiters[waiter] = s.box if s.folder is not None else None
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
            self._waiters.pop(waiter, None)
            if not reading.done():
                reading.cancel()
        try:
            line = reading.result()
        except TimeoutError:
            await self._send(s, "* BYE idle for too long, logging out")
            raise Logout from None
        if not line:
            raise Logout
        if line.strip().upper() != b"DONE":
            return "BAD expected DONE to end IDLE"
        return "OK IDLE terminated"

    # -- selected ----------------------------------------------------------------------------------

    async def _cmd_close(self, s: Session, tag: str, args: list[Token]) -> str:
        if not s.readonly:
            await self._expunge(s, None, report=False)
        s.folder = None
        s.uids, s.entries = [], {}
        return "OK CLOSE completed"

    async def _cmd_unselect(self, s: Session, tag: str, args: list[Token]) -> str:
        s.folder = None
        s.uids, s.entries = [], {}
        return "OK UNSELECT completed"

    async def _cmd_expunge(self, s: Session, tag: str, args: list[Token]) -> str:
        if s.readonly:
            return "NO mailbox is read-only (EXAMINE)"
        await self._expunge(s, None, report=True)
        return "OK EXPUNGE completed"

    async def _expunge(self, s: Session, only: set[int] | None, report: bool) -> None:
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
        assert s.view is not None
        await s.conn.call(self._leave, s.view, s.folder, [(u, s.entries[u].uid) for u in doomed])
        lines = self._forget(s, doomed)
        if report:
            await self._send(s, "\r\n".join(lines))

    async def _cmd_uid(self, s: Session, tag: str, args: list[Token]) -> str:
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

    async def _uid_expunge(self, s: Session, args: list[Token], by_uid: bool) -> str:
        """UID EXPUNGE (RFC 4315): only the \\Deleted messages of a UID set."""
        if len(args) != 1:
            raise ImapSyntaxError("UID EXPUNGE takes a UID set")
        if s.readonly:
            return "NO mailbox is read-only (EXAMINE)"
        only = {uid for _, uid in self._targets(s, args[0], True)}
        await self._expunge(s, only, report=True)
        return "OK UID EXPUNGE completed"

    async def _cmd_move(self, s: Session, tag: str, args: list[Token]) -> str:
        return await self._move(s, args, False)

    async def _cmd_fetch(self, s: Session, tag: str, args: list[Token]) -> str:
        return await self._fetch(s, args, False)

    async def _cmd_search(self, s: Session, tag: str, args: list[Token]) -> str:
        return await self._search(s, args, False)

    async def _cmd_store(self, s: Session, tag: str, args: list[Token]) -> str:
        return await self._store(s, args, False)

    async def _cmd_copy(self, s: Session, tag: str, args: list[Token]) -> str:
        return await self._copy(s, args, False)

    def _targets(self, s: Session, token: Token, by_uid: bool) -> list[tuple[int, int]]:
        """(sequence number, UID) of the messages a set names, in mailbox order."""
        numbers = SequenceSet.parse(text(token))
        if by_uid:
            largest = s.uids[-1] if s.uids else 0
            return [(n, uid) for n, uid in enumerate(s.uids, 1) if numbers.contains(uid, largest)]
        if s.uids and not numbers.bounded(len(s.uids)):  # empty: "1:*" finds nothing, no error
            raise ImapSyntaxError("no such message (the sequence number is beyond the last)")
        return [(n, uid) for n, uid in enumerate(s.uids, 1) if numbers.contains(n, len(s.uids))]

    # FETCH (RFC 3501 section 6.4.5)

    async def _fetch(self, s: Session, args: list[Token], by_uid: bool) -> str:
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

    def _entity(self, s: Session, uid: int, msg_id: str) -> Entity:
        entity = s.parsed.get(uid)
        if entity is None:
            assert s.view is not None
            entity = parse_entity(crlf(s.view.raw(msg_id)))
            s.parsed[uid] = entity
            while len(s.parsed) > 8:
                s.parsed.popitem(last=False)
        return entity

    def _size(self, s: Session, uid: int, entry: IndexEntry) -> int:
        """RFC822.SIZE: the octets BODY[] sends, CRLF line endings and all (worker thread). The
        stored size counts a bare LF as one octet, so each message is measured once, and the
        last sizes measured are kept (a message never changes; its UID is never reused)."""
        entity = s.parsed.get(uid)
        if entity is not None:
            return len(entity.raw)
        with self._sizes_lock:
            size = self._sizes.get(uid)
            if size is not None:
                self._sizes.move_to_end(uid)
                return size
        assert s.view is not None
        size = crlf_size(s.view.raw(entry.uid))
        with self._sizes_lock:
            self._sizes[uid] = size
            while len(self._sizes) > SIZES_KEPT:
                self._sizes.popitem(last=False)
        return size

    def _fetch_one(
        self,
        s: Session,
        seq: int,
        uid: int,
        entry: IndexEntry,
        items: list[str],
        marks_seen: bool,
    ) -> bytes:
        """One `* n FETCH (...)` response (runs on a worker thread: it reads the store)."""
        parts: list[bytes] = []
        if marks_seen and not entry.read:
            assert s.view is not None
            s.view.mark_read([entry.uid], True)
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
                parts.append(b"RFC822.SIZE %d" % self._size(s, uid, entry))
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

    async def _search(self, s: Session, args: list[Token], by_uid: bool) -> str:
        if len(args) >= 2 and isinstance(args[0], Atom) and args[0].upper() == "CHARSET":
            if text(args[1]).upper() not in ("UTF-8", "US-ASCII"):
                return "NO [BADCHARSET (UTF-8 US-ASCII)] charset not supported"
            args = args[2:]
        predicate = compile_search(args)
        found = await s.conn.call(self._search_run, s, predicate, by_uid)
        await self._send(s, "* SEARCH" + "".join(f" {n}" for n in found))
        return "OK SEARCH completed"

    def _search_run(self, s: Session, predicate: Any, by_uid: bool) -> list[int]:
        view = s.view
        assert view is not None
        largest_uid = s.uids[-1] if s.uids else 0
        found = []
        for seq, uid in enumerate(s.uids, 1):
            entry = s.entries.get(uid)
            if entry is None:
                continue
            candidate = Candidate(
                seq,
                uid,
                partial(self._size, s, uid, entry),
                entry.created,
                set(self._flags(s, uid)),
                partial(self._search_data, view, entry.uid),
            )
            try:
                if predicate(candidate, len(s.uids), largest_uid):
                    found.append(uid if by_uid else seq)
            except MessageNotFound:
                continue
        return found

    def _search_data(self, view: BoxView, msg_id: str) -> dict[str, Any]:
        stored = view.get(msg_id)
        body = f"{stored.detail['Text']}\n{stored.detail['HTML']}"
        return {"headers": [tuple(h) for h in stored.detail["Headers"]], "text": body}

    # STORE (RFC 3501 section 6.4.6)

    async def _store(self, s: Session, args: list[Token], by_uid: bool) -> str:
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
        flags = flag_names(raw_flags)
        mode, silent = m.group(1), bool(m.group(2))
        mine = deleted_mark(s.folder)
        seen_on: list[int] = []
        seen_off: list[int] = []
        before = self._flags_version
        for _, uid in targets:
            entry = s.entries.get(uid)
            if entry is None:
                continue
            current = set(self._flags(s, uid))
            new = flags if mode == "" else current | flags if mode == "+" else current - flags
            if ("\\Seen" in new) != bool(entry.read):
                (seen_on if "\\Seen" in new else seen_off).append(uid)
                s.entries[uid] = entry._replace(read=int("\\Seen" in new))
            self._set_flags(uid, kept_with(self.flags.get(uid, set()), new, mine))
        s.own_flags = (before, self._flags_version)  # answered below, not told again
        changed = {uid: set(self.flags.get(uid, ())) for _, uid in targets if uid in s.entries}
        assert s.view is not None
        if changed:
            await s.conn.call(self._save_flags, changed)
            self._wake(s.box)  # the other sessions idling in this mailbox tell their clients
        for uids, read in ((seen_on, True), (seen_off, False)):
            if uids:
                # The read state the web UI shows: through the mailbox, which publishes it.
                await s.conn.call(s.view.mark_read, [s.entries[u].uid for u in uids], read)
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

    # COPY and MOVE (RFC 3501 6.4.7, RFC 6851): into a tag folder of the same mailbox tags the
    # messages, into its INBOX brings them back there; the UIDs stay (COPYUID says so, RFC
    # 4315). Into another mailbox's folder, each is stored there as a new message (new UID).

    async def _copy(self, s: Session, args: list[Token], by_uid: bool) -> str:
        found = await self._copy_into(s, args, "COPY", by_uid)
        if isinstance(found, str):
            return found
        code, _ = found
        return f"OK {code}COPY completed"

    async def _move(self, s: Session, args: list[Token], by_uid: bool) -> str:
        if s.readonly:
            return "NO mailbox is read-only (EXAMINE)"
        found = await self._copy_into(s, args, "MOVE", by_uid)
        if isinstance(found, str):
            return found
        code, moved = found
        if moved:
            assert s.view is not None
            pairs = [(u, s.entries[u].uid) for u in moved]
            await s.conn.call(self._leave, s.view, s.folder, pairs)
            lines = self._forget(s, moved)
            await self._send(s, "\r\n".join([f"* OK {code}moved", *lines]))
        return "OK MOVE completed"

    async def _copy_into(
        self, s: Session, args: list[Token], command: str, by_uid: bool = False
    ) -> str | tuple[str, list[int]]:
        """Put the messages a COPY/MOVE names into its folder: (COPYUID code, their UIDs), or
        the answer when it cannot."""
        if len(args) != 2:
            raise ImapSyntaxError(f"{command} takes a message set and a mailbox")
        targets = self._targets(s, args[0], by_uid)
        name = decode_mailbox(text(args[1]))
        space = await s.conn.call(self._space, s.user)
        # A name that is no folder yet is a new tag folder of the mailbox it names.
        target = space.parse(name)
        refused = self._unnamable(target, name)
        if refused:
            return refused
        assert target is not None
        if command == "MOVE" and target == Folder(s.box, s.folder or INBOX):
            return "NO [CANNOT] the messages are in that folder already"
        uids = [uid for _, uid in targets if uid in s.entries]
        if not uids:
            return ("", [])
        validity = await s.conn.call(self.mailbox.uid_validity)
        if target.box != s.box:
            new = [await self._copy_one(s, target, uid) for uid in uids]
            return (f"[COPYUID {validity} {uid_set(uids)} {uid_set(new)}] ", uids)
        assert s.view is not None
        pairs = [(u, s.entries[u].uid) for u in uids]
        await s.conn.call(self._enter, s.view, target.folder, pairs)
        self._bump(s.box)
        return (f"[COPYUID {validity} {uid_set(uids)} {uid_set(uids)}] ", uids)

    async def _copy_one(self, s: Session, target: Folder, uid: int) -> int:
        """Store a copy of a message in another mailbox's folder, with its flags in this
        folder but \\Deleted (as a copy a move leaves behind is doomed, never the one moved);
        the copy's UID."""
        assert s.view is not None
        entry = s.entries[uid]
        raw = await s.conn.call(s.view.raw, entry.uid)
        flags = set(self._flags(s, uid)) - {"\\Deleted"}
        return await self._add_message(s, target, raw, flags, entry.created)
