"""POP3 server over the mailbox: RFC 1939 with CAPA (RFC 2449) and STLS (RFC 2595); each login
reads its own mailbox (access.primary_box)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailpit_py.mailaccess.access import decode_plain, primary_box
from mailpit_py.mailaccess.lineserver import Connection, LineTooLong, MailReader
from mailpit_py.mailbox.facade import IndexEntry, MessageNotFound

if TYPE_CHECKING:
    from mailpit_py.mailbox.boxview import BoxView

log = logging.getLogger("mailpit_py.pop3")

IDLE_TIMEOUT = 600.0  # RFC 1939 section 3: an autologout timer of at least 10 minutes
MAX_BAD_COMMANDS = 20  # then the client is not speaking POP3; hang up


def wire_form(data: bytes) -> bytes:
    """`data` as a POP3 multi-line body: CRLF line endings, dot-stuffed, with the final dot line.

    A client that undoes the stuffing gets the stored bytes back exactly when they use CRLF;
    bare LF endings (stored as received) become CRLF, as the protocol requires.
    """
    if not data:
        return b".\r\n"
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    out = bytearray()
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.startswith(b"."):
            out += b"."  # RFC 1939 section 3: byte-stuff lines that start with the terminator
        out += line + b"\r\n"
    out += b".\r\n"
    return bytes(out)


def wire_size(data: bytes) -> int:
    """The octets of `data` as RETR sends it, before dot-stuffing (RFC 1939 sizes): bare LF
    line endings count as CRLF, and a last line without an ending gets one."""
    if not data:
        return 0
    lines = data.count(b"\n")
    size = len(data) + lines - data.count(b"\r\n")
    return size if data.endswith(b"\n") else size + 2 - data.endswith(b"\r")


def top_of(raw: bytes, lines: int) -> bytes:
    """The header, the blank line and the first `lines` lines of the body (TOP)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end >= 0:
            break
    else:
        return raw  # no body at all: the whole message is header
    head, body = raw[: end + len(sep)], raw[end + len(sep) :]
    body_lines = body.splitlines(keepends=True)
    return head + b"".join(body_lines[:lines])


@dataclass
class _Session:
    conn: Connection
    user: str = ""
    authed: bool = False
    view: BoxView | None = None  # the login's mailbox (its maildrop), once logged in
    drop: list[IndexEntry] = field(default_factory=list)  # the maildrop as of login
    deleted: set[int] = field(default_factory=set)  # message numbers marked with DELE
    sizes: list[int] | None = None  # each message's size as sent, worked out at first need


class Pop3Server(MailReader):
    """The POP3 listener: logins from `access`, reads and deletes through the mailbox."""

    protocol = "pop3"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Sizes as sent by message ID (messages never change): counting line endings reads
        # every message, so a login after the first pays only for the new ones; kept per
        # mailbox, so that logins to different mailboxes do not evict each other's.
        self._wire_sizes: dict[str, dict[str, int]] = {}

    # -- one client ---------------------------------------------------------------------------

    async def _session(self, conn: Connection) -> None:
        s = _Session(conn)
        name = f"mailpit-py ({self.label})" if self.label else "mailpit-py"
        await self._ok(s, f"{name} POP3 server ready")
        bad = 0
        while True:
            try:
                line = await conn.readline(IDLE_TIMEOUT)
            except TimeoutError:
                await self._err(s, "idle for too long, closing (autologout)")
                return
            except LineTooLong:
                await self._err(s, "line too long (RFC 2449 allows 255 octets)")
                await s.conn.hang_up()
                return
            if not line:
                return  # the client went away: no UPDATE state, nothing deleted (RFC 1939)
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            command, _, rest = text.partition(" ")
            command = command.upper()
            args = rest.split()
            handler = getattr(self, f"_cmd_{command.lower()}", None) if command.isalpha() else None
            if handler is None:
                bad += 1
                await self._err(s, f"unknown command {command[:20]!r}" if command else "no command")
                if bad >= MAX_BAD_COMMANDS:
                    return
                continue
            if await handler(s, args, rest):
                return

    async def _ok(self, s: _Session, text: str = "") -> None:
        await s.conn.write(b"+OK" + (b" " + text.encode() if text else b"") + b"\r\n")

    async def _multi(self, s: _Session, text: str, body: bytes) -> None:
        """A multi-line answer: +OK line, then the body stuffed and ended by a dot line."""
        await s.conn.write(b"+OK " + text.encode() + b"\r\n" + wire_form(body))

    async def _err(self, s: _Session, text: str) -> None:
        await s.conn.write(b"-ERR " + text.encode() + b"\r\n")

    async def _need_transaction(self, s: _Session) -> bool:
        if not s.authed:
            await self._err(s, "log in first (USER and PASS)")
            return False
        return True

    async def _message(self, s: _Session, arg: str) -> int | None:
        """The message number `arg` when it names a message that is not deleted; else -ERR."""
        if not arg.isdigit() or not 1 <= int(arg) <= len(s.drop):
            await self._err(s, f"no such message: {arg[:20]}")
            return None
        number = int(arg)
        if number in s.deleted:
            await self._err(s, f"message {number} already deleted")
            return None
        return number

    # -- AUTHORIZATION state (RFC 1939 section 4) ---------------------------------------------

    async def _cmd_capa(self, s: _Session, args: list[str], rest: str) -> bool:
        caps = ["TOP", "UIDL", "RESP-CODES", "PIPELINING", "IMPLEMENTATION mailpit-py"]
        if not s.authed:
            caps[:0] = ["USER", "SASL PLAIN"]
            if self.access.tls is not None and not s.conn.tls:
                caps.append("STLS")
        await self._multi(s, "capability list follows", "\r\n".join(caps).encode())
        return False

    async def _cmd_stls(self, s: _Session, args: list[str], rest: str) -> bool:
        if self.access.tls is None:
            await self._err(s, "STLS is not available: the server has no --pop3-tls-cert")
        elif s.conn.tls:
            await self._err(s, "already using TLS")
        elif s.authed:
            await self._err(s, "STLS only before logging in (RFC 2595 section 4)")
        else:
            await self._ok(s, "begin TLS negotiation")
            await s.conn.start_tls()
            s.user = ""  # nothing said in clear text carries over (RFC 2595 section 4)
        return False

    async def _cmd_user(self, s: _Session, args: list[str], rest: str) -> bool:
        if s.authed:
            await self._err(s, "already logged in")
        elif len(args) != 1:
            await self._err(s, "USER takes one argument, the user name")
        else:
            s.user = args[0]
            await self._ok(s, "send PASS")
        return False

    async def _cmd_pass(self, s: _Session, args: list[str], rest: str) -> bool:
        if s.authed:
            await self._err(s, "already logged in")
            return False
        if not s.user:
            await self._err(s, "send USER first")
            return False
        # RFC 1939 section 7: the password may contain spaces; it is the rest of the line.
        user, s.user = s.user, ""
        await self._login(s, user, rest)
        return False

    async def _cmd_auth(self, s: _Session, args: list[str], rest: str) -> bool:
        """SASL PLAIN (RFC 5034), with or without an initial response."""
        if s.authed:
            await self._err(s, "already logged in")
            return False
        if not args:
            await self._multi(s, "mechanisms follow", b"PLAIN")
            return False
        if args[0].upper() != "PLAIN" or len(args) > 2:
            await self._err(s, f"mechanism {args[0][:20]} is not supported; use PLAIN")
            return False
        if len(args) == 2:
            answer = args[1]
        else:
            await s.conn.write(b"+ \r\n")
            answer = (await s.conn.readline(IDLE_TIMEOUT)).decode("ascii", "replace").strip()
        if answer == "*":
            await self._err(s, "authentication cancelled")
            return False
        plain = decode_plain(answer)
        if plain is None:
            await self._err(s, "not a usable PLAIN response: base64 of NUL user NUL password")
            return False
        await self._login(s, *plain)
        return False

    async def _login(self, s: _Session, user: str, password: str) -> None:
        if not password or not await s.conn.call(self.access.credentials.check, user, password):
            log.warning("POP3 login failed for %r from %s", user, s.conn.peer)
            self.mailbox.telemetry.inc("pop3_logins", "failed")
            await self._err(s, "[AUTH] invalid user name or password")
            return
        box = await s.conn.call(self._maildrop, user)
        if box is None:
            log.warning("POP3 login %r from %s refused: no mailbox", user, s.conn.peer)
            await self._err(
                s,
                f"[AUTH] user {user!r} may see no mailbox: the mailbox config's access lists "
                "none for it",
            )
            return
        s.view = self.mailbox.view(box)
        s.drop = await s.conn.call(s.view.index)
        self.mailbox.telemetry.inc("pop3_logins", "ok")
        s.authed = True
        s.user = user
        log.info(
            "POP3 login %r from %s: mailbox %s, %d messages", user, s.conn.peer, box, len(s.drop)
        )
        await self._ok(s, f"logged in, {len(s.drop)} messages")

    def _maildrop(self, user: str) -> str | None:
        """The mailbox `user` reads (worker thread: it reads which mailboxes exist)."""
        config = self.mailbox.config
        existing = [box.name for box in self.mailbox.boxes()]
        return primary_box(user, existing, config.allowed_boxes(user), config.mailbox_auto)

    async def _cmd_quit(self, s: _Session, args: list[str], rest: str) -> bool:
        if not s.authed or not s.deleted:
            await self._ok(s, "bye")
            return True
        # The UPDATE state (RFC 1939 section 6): deletions happen now, through the mailbox,
        # so the web UI sees them live.
        uids = [s.drop[n - 1].uid for n in sorted(s.deleted)]
        assert s.view is not None
        try:
            # announced as one prune, as Mailpit does after a POP3 session's deletions
            gone = await s.conn.call(functools.partial(s.view.delete, prune=True), uids)
        except Exception as exc:
            log.exception("POP3 delete failed")
            await self._err(s, f"some deleted messages not removed: {exc}")
            return True
        # (A message deleted elsewhere meanwhile, in the web UI say, is not counted again.)
        await self._ok(s, f"bye, {len(gone)} messages deleted")
        return True

    # -- TRANSACTION state (RFC 1939 section 5) -----------------------------------------------

    def _measure(self, view: BoxView, drop: list[IndexEntry]) -> list[int]:
        """Each message's size as RETR sends it (worker thread: it reads the messages)."""
        known = self._wire_sizes.get(view.box, {})
        sizes = []
        for entry in drop:
            size = known.get(entry.uid)
            if size is None:
                try:
                    size = wire_size(view.raw(entry.uid))
                except MessageNotFound:
                    size = entry.size  # gone meanwhile: RETR will say so
            sizes.append(size)
        self._wire_sizes[view.box] = {e.uid: n for e, n in zip(drop, sizes, strict=True)}
        return sizes

    async def _sizes(self, s: _Session) -> list[int]:
        if s.sizes is None:
            assert s.view is not None
            s.sizes = await s.conn.call(self._measure, s.view, s.drop)
        return s.sizes

    async def _cmd_stat(self, s: _Session, args: list[str], rest: str) -> bool:
        if await self._need_transaction(s):
            sizes = await self._sizes(s)
            live = [size for n, size in enumerate(sizes, 1) if n not in s.deleted]
            await self._ok(s, f"{len(live)} {sum(live)}")
        return False

    async def _cmd_list(self, s: _Session, args: list[str], rest: str) -> bool:
        sizes = await self._sizes(s) if s.authed else []
        await self._listing(s, args, lambda n, e: str(sizes[n - 1]), "scan listing")
        return False

    async def _cmd_uidl(self, s: _Session, args: list[str], rest: str) -> bool:
        # The message ID: unique and never reused, as RFC 1939 section 7 asks of UIDL.
        await self._listing(s, args, lambda n, e: e.uid, "unique-id listing")
        return False

    async def _listing(
        self, s: _Session, args: list[str], show: Callable[[int, IndexEntry], str], what: str
    ) -> None:
        if not await self._need_transaction(s):
            return
        if len(args) > 1:
            await self._err(s, "one message number at most")
        elif args:
            number = await self._message(s, args[0])
            if number is not None:
                await self._ok(s, f"{number} {show(number, s.drop[number - 1])}")
        else:
            lines = [f"{n} {show(n, e)}" for n, e in enumerate(s.drop, 1) if n not in s.deleted]
            await self._multi(s, f"{what} follows", "\r\n".join(lines).encode())

    async def _raw(self, s: _Session, number: int) -> bytes | None:
        assert s.view is not None
        try:
            return await s.conn.call(s.view.raw, s.drop[number - 1].uid)
        except MessageNotFound:
            await self._err(s, f"message {number} was deleted meanwhile")
            return None

    async def _target(self, s: _Session, args: list[str], usage: str, ok: bool) -> int | None:
        """The message a RETR/TOP/DELE names, after the state and argument checks."""
        if not await self._need_transaction(s):
            return None
        if not ok:
            await self._err(s, usage)
            return None
        return await self._message(s, args[0])

    async def _cmd_retr(self, s: _Session, args: list[str], rest: str) -> bool:
        number = await self._target(s, args, "RETR takes one message number", len(args) == 1)
        raw = None if number is None else await self._raw(s, number)
        if raw is not None:
            await self._multi(s, f"{wire_size(raw)} octets", raw)
        return False

    async def _cmd_top(self, s: _Session, args: list[str], rest: str) -> bool:
        usage = "TOP takes a message number and a number of lines"
        number = await self._target(s, args, usage, len(args) == 2 and args[1].isdigit())
        raw = None if number is None else await self._raw(s, number)
        if raw is not None:
            await self._multi(s, "top of message follows", top_of(raw, int(args[1])))
        return False

    async def _cmd_dele(self, s: _Session, args: list[str], rest: str) -> bool:
        number = await self._target(s, args, "DELE takes one message number", len(args) == 1)
        if number is not None:
            s.deleted.add(number)
            await self._ok(s, f"message {number} deleted (at QUIT)")
        return False

    async def _cmd_rset(self, s: _Session, args: list[str], rest: str) -> bool:
        if await self._need_transaction(s):
            s.deleted.clear()
            await self._ok(s, f"{len(s.drop)} messages, none marked deleted")
        return False

    async def _cmd_noop(self, s: _Session, args: list[str], rest: str) -> bool:
        if await self._need_transaction(s):
            await self._ok(s)
        return False
