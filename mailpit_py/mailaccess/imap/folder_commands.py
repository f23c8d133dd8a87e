"""IMAP commands on folders rather than messages: CREATE, DELETE, RENAME, LIST, STATUS,
APPEND and the like."""

from __future__ import annotations

import asyncio

from mailpit_py.mailaccess.imap.core import ImapCore
from mailpit_py.mailaccess.imap.folders import INBOX, Folder
from mailpit_py.mailaccess.imap.session import (
    LEFT_INBOX,
    Session,
    deleted_mark,
    flag_names,
    kept_with,
    parse_date_time,
)
from mailpit_py.mailaccess.imap.syntax import (
    ImapSyntaxError,
    Token,
    decode_mailbox,
    encode_mailbox,
    list_match,
    string,
    text,
)
from mailpit_py.models import Envelope


class FolderCommands(ImapCore):
    """The commands of the authenticated state that name a folder (RFC 3501 section 6.3)."""

    async def _cmd_create(self, s: Session, tag: str, args: list[Token]) -> str:
        """A new folder is a tag no message has yet: kept by this server until a message gets
        it (clients make their Sent, Drafts, Trash or a sync's folders before filling them)."""
        if len(args) != 1:
            raise ImapSyntaxError("CREATE takes a mailbox name")
        name = decode_mailbox(text(args[0])).rstrip("/")
        if await s.conn.call(self._find, s, name) is not None:
            return "NO [ALREADYEXISTS] that folder exists already"
        space = await s.conn.call(self._space, s.user)
        found = space.parse(name)
        refused = self._unnamable(found, name)
        if refused:
            return refused
        assert found is not None
        self.created.add((found.box, found.folder))
        return "OK CREATE completed (an empty folder until a message is put in it)"

    async def _cmd_delete(self, s: Session, tag: str, args: list[Token]) -> str:
        """Deleting a tag's folder removes the tag everywhere; the messages stay in INBOX."""
        if len(args) != 1:
            raise ImapSyntaxError("DELETE takes a mailbox name")
        found = await s.conn.call(self._folder, s, args[0])
        if found is None:
            return "NO [NONEXISTENT] no such mailbox"
        if found.is_inbox:
            return (
                "NO [CANNOT] INBOX cannot be deleted"
                if text(args[0]).upper() == INBOX
                else "NO [CANNOT] a mailbox cannot be deleted over IMAP: use the web UI or the API"
            )
        self.created.discard((found.box, found.folder))
        await s.conn.call(self.mailbox.view(found.box).delete_tag, found.folder)
        return "OK DELETE completed (the tag is gone, the messages are in INBOX)"

    async def _cmd_rename(self, s: Session, tag: str, args: list[Token]) -> str:
        """Renaming a tag's folder renames the tag."""
        if len(args) != 2:
            raise ImapSyntaxError("RENAME takes the old and the new mailbox name")
        found = await s.conn.call(self._folder, s, args[0])
        if found is None:
            return "NO [NONEXISTENT] no such mailbox"
        space = await s.conn.call(self._space, s.user)
        new = space.parse(decode_mailbox(text(args[1])))
        if found.is_inbox or new is None or new.is_inbox:
            return (
                "NO [CANNOT] INBOX and mailboxes cannot be renamed over IMAP (a mailbox: in the "
                "web UI or the API), nor a folder renamed to one"
            )
        if new.box != found.box:
            return "NO [CANNOT] a tag folder stays in its mailbox: rename it within that mailbox"
        refused = self._unnamable(new, decode_mailbox(text(args[1])))
        if refused:
            return refused
        if (found.box, found.folder) in self.created:
            self.created.discard((found.box, found.folder))
            self.created.add((new.box, new.folder))
        view = self.mailbox.view(found.box)
        if found.folder in await s.conn.call(view.tags):  # else an empty folder CREATE made
            await s.conn.call(view.rename_tag, found.folder, new.folder)
        return "OK RENAME completed"

    async def _cmd_subscribe(self, s: Session, tag: str, args: list[Token]) -> str:
        return "OK every folder is subscribed"

    _cmd_unsubscribe = _cmd_subscribe

    async def _cmd_namespace(self, s: Session, tag: str, args: list[Token]) -> str:
        await self._send(s, '* NAMESPACE (("" "/")) NIL NIL')
        return "OK NAMESPACE completed"

    async def _cmd_enable(self, s: Session, tag: str, args: list[Token]) -> str:
        await self._send(s, "* ENABLED")
        return "OK nothing to enable"

    async def _cmd_list(self, s: Session, tag: str, args: list[Token]) -> str:
        return await self._list(s, args, "LIST")

    async def _cmd_lsub(self, s: Session, tag: str, args: list[Token]) -> str:
        return await self._list(s, args, "LSUB")

    async def _list(self, s: Session, args: list[Token], command: str) -> str:
        if len(args) != 2:
            raise ImapSyntaxError(f"{command} takes a reference and a mailbox pattern")
        reference, pattern = text(args[0]), text(args[1])
        if not pattern:
            await self._send(s, f'* {command} (\\Noselect) "/" ""')
            return f"OK {command} completed"
        lines = []
        _, folders = await s.conn.call(self._folders, s)
        for folder, children in folders:
            name = encode_mailbox(folder)
            wanted = reference + pattern
            if folder == INBOX and wanted.upper().startswith(INBOX):
                wanted = INBOX + wanted[5:]
            if list_match(wanted, name):
                attrs = "\\HasChildren" if children else "\\HasNoChildren"
                lines.append(f'* {command} ({attrs}) "/" {string(name).decode()}')
        if lines:
            await self._send(s, "\r\n".join(lines))
        return f"OK {command} completed"

    async def _cmd_status(self, s: Session, tag: str, args: list[Token]) -> str:
        if len(args) != 2 or not isinstance(args[1], list):
            raise ImapSyntaxError("STATUS takes a mailbox name and a list of items")
        found = await s.conn.call(self._folder, s, args[0])
        if found is None:
            return "NO [NONEXISTENT] no such mailbox"
        view = self.mailbox.view(found.box)
        index = await s.conn.call(self._index, view, found.folder)
        validity, next_uid = await s.conn.call(self._uid_numbers, view)
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
        space = await s.conn.call(self._space, s.user)
        name = string(encode_mailbox(space.name(found))).decode()
        await self._send(s, f"* STATUS {name} ({' '.join(items)})")
        return "OK STATUS completed"

    async def _cmd_append(self, s: Session, tag: str, args: list[Token]) -> str:
        """APPEND (RFC 3501 6.3.11) with the client's flags and date: a client that uploads its
        mail (offlineimap, mbsync) keeps what it read, flagged and answered, and when it came."""
        if len(args) < 2 or not isinstance(args[-1], bytes) or len(args) > 4:
            raise ImapSyntaxError("APPEND takes a mailbox, maybe flags and a date, and a literal")
        options = args[1:-1]
        flags: set[str] = set()
        if options and isinstance(first := options[0], list):
            flags = flag_names(first)
            del options[0]
        received: float | None = None
        if options:
            if isinstance(options[0], list) or len(options) > 1:
                raise ImapSyntaxError("APPEND takes the flags, then the date-time, in that order")
            received = parse_date_time(text(options[0]))
        found = await s.conn.call(self._folder, s, args[0])
        if found is None:
            return "NO [TRYCREATE] no such mailbox: APPEND to INBOX, a tag or a mailbox of yours"
        uid = await self._add_message(s, found, args[-1], flags, received)
        validity = await s.conn.call(self.mailbox.uid_validity)
        return f"OK [APPENDUID {validity} {uid}] APPEND completed"

    async def _add_message(
        self, s: Session, folder: Folder, raw: bytes, flags: set[str], received: float | None
    ) -> int:
        """Store a new message in a folder (APPEND, a COPY into another mailbox) with these
        flags; its UID once committed."""
        tags = [] if folder.is_inbox else [folder.folder]
        # Where it came from, in the fields the SMTP envelope has (the API's Envelope).
        origin = {"Peer": s.conn.peer, "TLS": s.conn.tls, "Username": s.user, "Protocol": "IMAP"}
        future = self.mailbox.view(folder.box).deliver(
            Envelope("", ()),
            raw,
            username=s.user,
            tags=tags,
            origin=origin,
            received_at=received,
        )
        msg_id = await asyncio.wrap_future(future)
        uid: int = await s.conn.call(self._appended, folder, msg_id, flags)
        self._bump(folder.box)
        return uid

    def _appended(self, folder: Folder, msg_id: str, flags: set[str]) -> int:
        """Give a new message its flags (worker thread); its UID."""
        uid = self.mailbox.row_number(msg_id)  # the row number is the UID
        kept = kept_with(set(), flags, deleted_mark(folder.folder))
        if not folder.is_inbox:
            kept.add(LEFT_INBOX)  # put in a tag folder: in that folder only
        if kept:
            self._set_flags(uid, kept)
            self._save_flags({uid: kept})
        if "\\Seen" in flags:
            self.mailbox.view(folder.box).mark_read([msg_id], True)
        return uid
