"""The SMTP front door: an aiosmtpd protocol that records each conversation, answers with
enhanced status codes, and acknowledges DATA only after the message is committed."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import re
import threading
import time
from concurrent.futures import Future
from typing import Any

from aiosmtpd.smtp import SMTP
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session as SmtpSession

from mailpit_py import events
from mailpit_py.config import Config, split_hostport
from mailpit_py.ids import new_id
from mailpit_py.mailbox import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store import SessionRecord

log = logging.getLogger("mailpit_py.smtp")

IDENT = "ESMTP mailpit-py ready"
STORE_DEADLINE = 30.0  # seconds a client waits for its commit before 451 (it can retry)

# RFC 3463 enhanced codes for replies that aiosmtpd sends without one, by basic code. The
# greeting and the EHLO lines never carry one (RFC 2034 section 3).
_ENHANCED = {
    "214": "2.0.0",
    "220": "2.0.0",
    "221": "2.0.0",
    "235": "2.7.0",
    "250": "2.0.0",
    "252": "2.0.0",
    "421": "4.3.0",
    "450": "4.2.0",
    "451": "4.3.0",
    "452": "4.5.3",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "535": "5.7.8",
    "538": "5.7.11",
    "550": "5.1.0",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.7.0",
    "555": "5.5.4",
}
_HAS_ENHANCED = re.compile(rb"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}(?: |$)")
_MAIL_RCPT_OK = {"MAIL": "2.1.0", "RCPT": "2.1.5"}


class Transcript:
    """The lines of one SMTP session with millisecond offsets; AUTH secrets are masked."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.started = time.time()
        self.entries: list[list[Any]] = []
        self.preamble_end: int | None = None  # index where the first transaction began
        self.txn_start = 0

    def add(self, direction: str, line: str) -> None:
        offset = round((time.monotonic() - self.t0) * 1000, 1)
        self.entries.append([offset, direction, line])

    def begin_transaction(self) -> None:
        if self.preamble_end is None:
            self.preamble_end = len(self.entries)
        self.txn_start = len(self.entries)

    def for_message(self) -> list[list[Any]]:
        """The session preamble plus the current MAIL..DATA exchange."""
        pre = self.entries[: self.preamble_end if self.preamble_end is not None else 0]
        return [*pre, *self.entries[self.txn_start :]]


class _RecordingReader:
    """Wraps the protocol's StreamReader so every line the client sends is recorded."""

    def __init__(self, reader: asyncio.StreamReader, owner: CatcherSMTP) -> None:
        object.__setattr__(self, "_inner", reader)
        object.__setattr__(self, "_owner", owner)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        line = await self._inner.readuntil(separator)
        self._owner.record_client_line(line)
        return line

    async def readline(self) -> bytes:
        line = await self._inner.readline()
        self._owner.record_client_line(line)
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # aiosmtpd swaps the transport on the reader after STARTTLS.
        setattr(self._inner, name, value)


class CatcherSMTP(SMTP):
    """aiosmtpd's protocol with our transcript, replies, DATA reader and storage contract."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server
        cfg = server.config
        self.transcript = Transcript()
        self._in_auth = False
        self._in_ehlo = False
        self._last_command = ""
        self._delivered: list[str] = []
        self._outcome = ""
        self._quit = False
        self._errors = 0
        self._storing = False
        self._eof_while_storing = False
        super().__init__(
            server,  # the handler: hooks for RCPT
            data_size_limit=cfg.max_message_size,
            enable_SMTPUTF8=True,
            hostname=cfg.smtp_hostname,
            ident=IDENT,
            timeout=cfg.smtp_timeout,
            loop=server.loop,
        )

    # -- recording -----------------------------------------------------------------------

    def _cb_client_connected(self, reader: asyncio.StreamReader, writer: Any) -> None:
        super()._cb_client_connected(_RecordingReader(reader, self), writer)  # type: ignore[arg-type]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:
            peer = transport.get_extra_info("peername")
            sock = transport.get_extra_info("sockname")
            self.transcript.add("I", f"connected from {_fmt_addr(peer)} to {_fmt_addr(sock)}")
        else:
            cipher = transport.get_extra_info("cipher")
            self.transcript.add(
                "I",
                f"TLS established: {cipher[1] if cipher else ''} "
                f"{cipher[0] if cipher else ''}".strip(),
            )
        super().connection_made(transport)

    def record_client_line(self, line: bytes) -> None:
        text = line.rstrip(b"\r\n").decode("utf-8", "replace")
        if self._in_auth:
            text = "****"  # an AUTH exchange carries credentials: never recorded
        else:
            verb, _, rest = text.partition(" ")
            self._last_command = verb.upper()
            if self._last_command == "AUTH":
                mech, _, initial = rest.partition(" ")
                text = f"{verb} {mech}" + (" ****" if initial else "")
            if self._last_command == "MAIL":
                self.transcript.begin_transaction()
        self.transcript.add("C", text)

    async def push(self, status: str | bytes) -> None:
        reply = status.encode("utf-8") if isinstance(status, str) else status
        reply = self._with_enhanced_code(reply)
        self.transcript.add("S", reply.decode("utf-8", "replace"))
        if reply[:1] in (b"4", b"5"):
            self._errors += 1
            self._server.smtp_error(self, reply.decode("utf-8", "replace"))
        await super().push(reply)

    def _with_enhanced_code(self, reply: bytes) -> bytes:
        code = reply[:3].decode("ascii", "replace")
        if (self._in_ehlo and code == "250") or code not in _ENHANCED:
            return reply
        if _HAS_ENHANCED.match(reply):
            return reply
        if self.session is not None and code == "220" and self._last_command != "STARTTLS":
            return reply  # the greeting
        enhanced = _ENHANCED[code]
        if code == "250":
            enhanced = _MAIL_RCPT_OK.get(self._last_command, enhanced)
        sep = reply[3:4] or b" "
        return reply[:3] + sep + enhanced.encode() + b" " + reply[4:]

    # -- commands ------------------------------------------------------------------------

    async def smtp_EHLO(self, hostname: str) -> None:
        self._in_ehlo = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_ehlo = False

    async def smtp_HELO(self, hostname: str) -> None:
        self._in_ehlo = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._in_ehlo = False

    async def smtp_AUTH(self, arg: str) -> None:
        self._in_auth = True
        try:
            await super().smtp_AUTH(arg)
        finally:
            self._in_auth = False

    async def smtp_QUIT(self, arg: str) -> None:
        self._quit = True
        await super().smtp_QUIT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None and self.session is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        raw, too_big = await self._read_data()
        if raw is None:
            return  # the connection went away mid-DATA: nothing was acknowledged
        lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") or not raw else 1)
        self.transcript.add("C", f"[message data: {len(raw)} octets, {lines} lines]")
        self.transcript.add("C", ".")
        if too_big:
            self._set_post_data_state()
            await self.push(
                f"552 5.3.4 Error: message exceeds the maximum size of "
                f"{self.data_size_limit} octets"
            )
            return
        mail_from = self.envelope.mail_from or ""
        env = Envelope(
            # aiosmtpd keeps the null sender as "<>"; the envelope says "" (RFC 5321 4.5.5).
            mail_from="" if mail_from == "<>" else mail_from,
            rcpt_to=tuple(self.envelope.rcpt_tos),
        )
        self._set_post_data_state()
        uid = new_id()
        ok_reply = f"250 2.0.0 Ok: queued as {uid}"
        snapshot = self.transcript.for_message()
        offset = round((time.monotonic() - self.transcript.t0) * 1000, 1)
        fut = self._server.mailbox.deliver(
            env,
            raw,
            uid=uid,
            username=_username(self.session),
            session_uid=self._server_session_id,
            transcript=[*snapshot, [offset, "S", ok_reply]],
            received_at=time.time(),
            origin={
                "Helo": self.session.host_name or "",
                "Peer": _fmt_addr(self.session.peer),
                "TLS": self.session.ssl is not None,
                "Username": _username(self.session),
                "Protocol": "ESMTP" if self.session.extended_smtp else "SMTP",
            },
        )
        self._server.inflight_add(fut)
        self._storing = True
        try:
            # shield: a cancelled session must not cancel the delivery itself.
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), STORE_DEADLINE)
        except Exception as exc:
            # Storage first (issue 2): a message that is not committed is never acknowledged.
            log.error("storing message from %s failed: %s", _fmt_addr(self.session.peer), exc)
            await self.push("451 4.3.0 Error: message could not be stored, try again later")
            return
        finally:
            self._storing = False
        self._delivered.append(uid)
        # --- relay (issue 6, relay.py): with forward-smtp-errors the message is relayed now and
        # the upstream's refusal is this session's answer instead of the 250.
        relay_inline = self._server.mailbox.relay_inline
        if relay_inline is not None:
            refusal = await self._server.loop.run_in_executor(None, relay_inline, uid, env, raw)
            if refusal:
                await self.push(refusal)
                return
        # --- end relay (issue 6)
        await self.push(ok_reply)
        if self._eof_while_storing and self.transport is not None:
            self.transport.close()  # the client had half-closed: it has its answer now

    def eof_received(self) -> bool | None:
        if self._storing:
            # The client sent its data and half-closed: keep the write side open so it still
            # hears whether its message was stored, instead of aiosmtpd cancelling the session.
            self._eof_while_storing = True
            return True
        return super().eof_received()

    async def _read_data(self) -> tuple[bytes | None, bool]:
        """Read up to the lone-dot line; returns (unstuffed bytes, over the size limit).

        Lines may end in CRLF or a bare LF, and may be longer than 998 octets: real apps send
        both, so we accept them and let the parser warn (RFC 5321 section 4.5.3.1.6).
        """
        reader = self._reader
        limit = self.data_size_limit or 0
        buf = bytearray()
        too_big = False
        scan = 0
        dropped = 0
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                # EOF mid-DATA: the client gave up; close so the session ends and is recorded.
                if self.transport is not None:
                    self.transport.close()
                return None, False
            buf += chunk
            end = _find_terminator(buf, scan)
            if end is None:
                # Keep the last 4 bytes for a terminator split across reads.
                scan = max(0, len(buf) - 4)
                if limit and dropped + len(buf) > limit:
                    too_big = True
                    keep = buf[-5:]
                    dropped += len(buf) - len(keep)
                    buf = bytearray(keep)
                    scan = 0
                continue
            body_end, after = end
            leftover = bytes(buf[after:])
            if leftover:
                # Pipelined commands after the data belong to the command loop.
                reader._buffer[0:0] = leftover
            if too_big or (limit and body_end > limit):
                return b"", True
            # One copy out, then the buffer goes, so a 50 MB message is held at most twice here
            # (slicing first would copy it twice more).
            del buf[body_end:]
            if buf.startswith(b"."):
                del buf[0]
            data = bytes(buf)
            del buf
            # Dot-unstuffing (RFC 5321 section 4.5.2): a leading dot on any line is removed;
            # replace() returns the same object when there is none.
            return data.replace(b"\n.", b"\n"), False

    # -- timeouts and the end of the session ---------------------------------------------

    def _timeout_cb(self) -> None:
        self._outcome = "timeout"
        if self.transport is not None and not self.transport.is_closing():
            reply = f"421 4.4.2 {self.hostname} Error: timeout exceeded, closing connection"
            self.transcript.add("S", reply)
            self._server.smtp_error(self, reply)
            self.transport.write(reply.encode() + b"\r\n")
        super()._timeout_cb()

    def connection_lost(self, error: Exception | None) -> None:
        was_open = self.transport is not None
        super().connection_lost(error)
        if was_open:
            self._server.session_ended(self)

    @property
    def _server_session_id(self) -> str:
        sid = getattr(self, "_sid", None)
        if sid is None:
            sid = self._sid = new_id()
        return sid

    def session_record(self) -> SessionRecord:
        assert self.session is not None
        t = self.transcript
        if self._delivered:
            outcome = "delivered"
        elif self._outcome:
            outcome = self._outcome
        elif self._errors:
            outcome = "rejected"
        elif self._quit:
            outcome = "no mail"
        else:
            outcome = "dropped"
        local = self.transport.get_extra_info("sockname") if self.transport else None
        return SessionRecord(
            uid=self._server_session_id,
            started=t.started,
            ended=time.time(),
            peer=_fmt_addr(self.session.peer),
            local=_fmt_addr(local) if local else self._server.address_text,
            helo=self.session.host_name or "",
            tls=self.session.ssl is not None,
            username=_username(self.session),
            outcome=outcome,
            messages=tuple(self._delivered),
            transcript=_json(t.entries),
        )


def _find_terminator(buf: bytearray, start: int) -> tuple[int, int] | None:
    """Find the lone '.' line: returns (end of data, index after the terminator)."""
    if start == 0:
        for term in (b".\r\n", b".\n"):
            if buf.startswith(term):
                return 0, len(term)
    pos = start
    while True:
        i = buf.find(b"\n.", pos)
        if i < 0:
            return None
        tail = buf[i + 2 : i + 4]
        if tail[:1] == b"\n":
            return i + 1, i + 3
        if tail == b"\r\n":
            return i + 1, i + 4
        if len(tail) < 2 and (not tail or tail == b"\r"):
            return None  # may complete with the next read
        pos = i + 1


def _username(session: SmtpSession) -> str:
    """The authenticated user name, if the client authenticated (shown as Username)."""
    data = session.auth_data if session.authenticated else None
    login = getattr(data, "login", data)
    if isinstance(login, bytes):
        return login.decode("utf-8", "replace")
    return str(login) if login else ""


def _fmt_addr(addr: Any) -> str:
    if not addr:
        return ""
    if isinstance(addr, tuple):
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(addr)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class SmtpServer:
    """Runs the SMTP listener on its own event loop thread; also aiosmtpd's handler object."""

    def __init__(self, config: Config, mailbox: Mailbox, bus: events.Bus) -> None:
        self.config = config
        self.mailbox = mailbox
        self.bus = bus
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._protocols: set[CatcherSMTP] = set()
        self._inflight: set[Future[Any]] = set()
        self._inflight_lock = threading.Lock()
        self.address: tuple[str, int] = ("", 0)
        self.sessions_total = 0
        self.rejected = 0

    @property
    def address_text(self) -> str:
        return _fmt_addr(self.address)

    # -- aiosmtpd handler hooks -----------------------------------------------------------

    async def handle_RCPT(
        self,
        server: CatcherSMTP,
        session: SmtpSession,
        envelope: SmtpEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= self.config.smtp_max_recipients:
            return (
                f"452 4.5.3 Error: too many recipients (at most "
                f"{self.config.smtp_max_recipients} per message)"
            )
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_EHLO(
        self,
        server: CatcherSMTP,
        session: SmtpSession,
        envelope: SmtpEnvelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        # aiosmtpd ends with "250 HELP"; we add what it does not advertise (RFC 2920, 2034).
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250 HELP"]

    async def handle_HELO(
        self, server: CatcherSMTP, session: SmtpSession, envelope: SmtpEnvelope, hostname: str
    ) -> str:
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_exception(self, error: Exception) -> str:
        log.exception("SMTP session error")
        return "451 4.3.0 Error: internal error, try again later"

    # -- bookkeeping ----------------------------------------------------------------------

    def smtp_error(self, proto: CatcherSMTP, reply: str) -> None:
        if reply.startswith("5"):
            self.rejected += 1
        peer = proto.session.peer if proto.session else None
        ip = peer[0] if isinstance(peer, tuple) else ""
        self.bus.publish(
            events.SmtpError({"Level": "error", "Type": "smtpd", "IP": ip, "Message": reply})
        )

    def inflight_add(self, fut: Future[Any]) -> None:
        with self._inflight_lock:
            self._inflight.add(fut)
        fut.add_done_callback(self._inflight_done)

    def _inflight_done(self, fut: Future[Any]) -> None:
        with self._inflight_lock:
            self._inflight.discard(fut)

    def session_ended(self, proto: CatcherSMTP) -> None:
        self._protocols.discard(proto)
        try:
            rec = proto.session_record()
        except Exception:
            log.exception("could not record SMTP session")
            return
        log.debug("session %s from %s: %s", rec.uid, rec.peer, rec.outcome)
        self.mailbox.record_session(rec)

    def _factory(self) -> CatcherSMTP:
        proto = CatcherSMTP(self)
        self._protocols.add(proto)
        self.sessions_total += 1
        return proto

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        host, port = split_hostport(self.config.smtp_addr, "--smtp")
        started: Future[None] = Future()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self._server = self.loop.run_until_complete(
                    self.loop.create_server(self._factory, host=host, port=port, reuse_address=True)
                )
            except Exception as exc:
                started.set_exception(exc)
                return
            # Port 0 asks the OS for a free port; read back what it chose (DESIGN.md trap).
            sockname = self._server.sockets[0].getsockname()
            self.address = (sockname[0], sockname[1])
            started.set_result(None)
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="smtp", daemon=True)
        self._thread.start()
        try:
            started.result(timeout=30)
        except OSError as exc:
            raise AddressInUse.explain(exc, self.config.smtp_addr, "--smtp") from exc
        log.debug("SMTP listening on %s", self.address_text)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let in-flight messages commit, then close every connection."""
        if self._thread is None:
            return
        server = self._server

        async def shutdown() -> None:
            if server is not None:
                server.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with self._inflight_lock:
                    pending = list(self._inflight)
                if not pending:
                    break
                await asyncio.wait([asyncio.wrap_future(f) for f in pending], timeout=0.5)
            for proto in list(self._protocols):
                if proto.transport is not None:
                    proto.transport.close()
            await asyncio.sleep(0)

        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout + 5)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self._thread = None
        # Let closed transports run their callbacks so sessions are recorded.
        try:
            self.loop.run_until_complete(asyncio.sleep(0))
        except RuntimeError:
            pass
        self.loop.close()


class AddressInUse(OSError):
    """The listen address cannot be bound; the message says what to do."""

    @classmethod
    def explain(cls, exc: OSError, addr: str, flag: str) -> AddressInUse:
        if exc.errno == errno.EADDRINUSE:
            return cls(
                f"{addr} is already in use: is another mail catcher running? "
                f"Choose another with {flag}"
            )
        return cls(f"cannot listen on {addr}: {exc.strerror or exc}")
