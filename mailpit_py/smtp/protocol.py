"""The SMTP protocol: aiosmtpd's SMTP subclass, the one module that touches aiosmtpd's internals."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import re
import socket
import time
from asyncio import sslproto
from base64 import b64decode
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from aiosmtpd.smtp import (
    BOGUS_LIMIT,
    MISSING,
    SMTP,
    AuthResult,
    LoginPassword,
    TLSSetupException,
    _AuthMechAttr,
    login_always_fail,
    syntax,
)
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session as SmtpSession

from mailpit_py import jsontext
from mailpit_py.ids import new_id
from mailpit_py.mailbox.boxes import DEFAULT_BOX
from mailpit_py.models import Envelope
from mailpit_py.receiver.engine import Refusal as ReceiverRefusal
from mailpit_py.receiver.engine import Session as ReceiverSession
from mailpit_py.smtp.auth import (
    MAX_FAILURES,
    PLAIN_TEXT_MECHANISMS,
    cram_md5_challenge,
    split_cram_md5,
    split_plain,
)
from mailpit_py.smtp.data import crcrlf_in_headers, read_data
from mailpit_py.smtp.policy import REVERSE_DNS_TIMEOUT, Refusal
from mailpit_py.smtp.replies import (
    CONTROL,
    DEFAULT_RULES,
    ENHANCED,
    HAS_ENHANCED,
    MAIL_RCPT_OK,
    STRICT_HEADERS,
    control_character,
    not_utf8,
)
from mailpit_py.smtp.trace import fmt_addr, protocol_name, received_header, username
from mailpit_py.smtp.transcript import Transcript
from mailpit_py.store.records import SessionRecord, Ticket

if TYPE_CHECKING:
    from mailpit_py.smtp.server import SmtpServer

log = logging.getLogger("mailpit_py.smtp")

# aiosmtpd's private API, used here and nowhere else, each with why. aiosmtpd keeps no promise
# about these: pyproject.toml pins the versions they were checked against, and
# tests/test_smtp_drift.py fails when one is gone, changes its signature, or when the upstream
# code this module copies or replaces changes (then re-read it against ours and record it).
AIOSMTPD_PRIVATE: dict[str, str] = {
    # Module names outside aiosmtpd.smtp.__all__.
    "BOGUS_LIMIT": "our command loop ends a session after as many unknown commands as theirs",
    "AuthResult": "what auth_* methods return (documented, but not exported)",
    "_AuthMechAttr": "the values of _auth_methods, which _smtp_init builds",
    "login_always_fail": "the _auth_callback aiosmtpd's constructor sets by default",
    # SMTP.__init__, replaced by _smtp_init (it evaluated every property per connection).
    "SMTP.__init__": "_smtp_init sets the same attributes, for the arguments we would pass",
    "SMTP.__ident__": "the greeting's text, read by the command loop",
    "SMTP._decode_data": "set by _smtp_init as the constructor does (bytes, not str)",
    "SMTP._timeout_duration": "the idle timeout, set by _smtp_init, used by _reset_timeout",
    "SMTP._timeout_handle": "the idle timer: _reset_timeout re-arms it lazily",
    "SMTP._tls_handshake_okay": "the command loop refuses commands after a refused handshake",
    "SMTP._tls_protocol": "set by the TLS switch; says whether the session is encrypted",
    "SMTP._original_transport": "set by the TLS switch; connection_lost closes it",
    "SMTP._handler_coroutine": "the session's task: cancelled to hang up",
    "SMTP._auth_require_tls": "cleared: smtp_AUTH decides per mechanism instead",
    "SMTP._auth_required": "--smtp-auth-required, read by check_auth_needed",
    "SMTP._proxy_timeout": "set by _smtp_init as the constructor does",
    "SMTP._authenticator": "set by _smtp_init as the constructor does",
    "SMTP._auth_callback": "set by _smtp_init as the constructor does",
    "SMTP._auth_methods": "AUTH mechanisms found once per class (_method_names)",
    "SMTP._handle_hooks": "handler hooks found once per class (_method_names)",
    "SMTP._ehlo_hook_ver": "which handle_EHLO form aiosmtpd calls (the 5-argument one)",
    "SMTP._smtp_methods": "the command table our loop dispatches on (and the gate wraps)",
    "SMTP._enforce_call_limit": "off: command call limits are never enabled",
    "SMTP.command_size_limits": "aiosmtpd's class-wide dict of per-verb line limits",
    # Methods overridden or called.
    "SMTP._handle_client": "replaced: the connect refusal, implicit TLS, then _command_loop",
    "SMTP._cb_client_connected": "wraps the reader to record lines; sets _reader/_writer",
    "SMTP._reader": "the (recording) stream; connection_made swaps its _transport after TLS",
    "SMTP._writer": "push writes replies to it",
    "SMTP._reset_timeout": "replaced: the idle timer is re-armed only when it fires early",
    "SMTP._timeout_cb": "extended: a 421 before aiosmtpd closes the connection",
    "SMTP._set_post_data_state": "a new envelope after DATA (our smtp_DATA replaces theirs)",
    "SMTP._create_session": "our Session (no deprecation warning per AUTH)",
    "SMTP._create_envelope": "our Envelope (with the ignored recipients)",
    "SMTP._getaddr": "a regex for the common address forms, theirs for the rest",
    "Session._login_data": "where Session keeps login_data (our property reads it silently)",
}

IDENT = "ESMTP mailpit-py ready"
# Seconds a client waits for its commit before 451 (it can retry). A message whose write has
# not started by then is dropped from the writer's queue, so a 451 always means not stored.
STORE_DEADLINE = 30.0
# MAIL FROM:<a@b.example> and RCPT TO:<...> as nearly every client sends them: a dot-atom local
# part and a host name. aiosmtpd parses each with the email package's header parser and builds
# a typing.Protocol class per call (about 6% of the server's CPU); these take a regex instead,
# and anything else (quotes, comments, routes, literals, UTF-8) still goes the careful way.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_PATH = re.compile(
    rf"\s*<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:[ \t]+(?=[^\s(])|$)"
)  # RFC 3207 section 4: what a client may send before STARTTLS when TLS is required.
_BEFORE_STARTTLS = frozenset({"EHLO", "HELO", "NOOP", "RSET", "STARTTLS", "QUIT"})
# RFC 4954 section 5: AUTH=<> (the submitter is not known) or the submitter's address as xtext
# (RFC 3461 section 4: printable ASCII but "+" and "=", and "+" with two upper-case hex digits).
_AUTH_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})+")
# A session's own record keeps the IDs of at most this many of the messages it delivered
# (newest); its transactions are bounded by KEEP_TRANSACTIONS in transcript.py.
KEEP_DELIVERED = 1000


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


class _Session(SmtpSession):
    """aiosmtpd's session without the warning its deprecated login_data logs on every AUTH."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class CatcherEnvelope(SmtpEnvelope):
    """aiosmtpd's envelope plus the recipients --smtp-ignore-rejected-recipients dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.ignored: list[str] = []


class CatcherSMTP(SMTP):
    """aiosmtpd's protocol with our transcript, replies, DATA reader and storage contract."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server
        self.transcript = Transcript()
        self._in_auth = False
        self._in_ehlo = False
        self._in_help = False
        self._after_refusal = False  # the 503s that follow a refused greeting are no refusals
        self._last_command = ""
        self._last_code = ""
        # The newest message IDs (bounded: a session may stay open for millions of messages).
        self._delivered: collections.deque[str] = collections.deque(maxlen=KEEP_DELIVERED)
        self._outcome = ""
        self._quit = False
        self._errors = 0
        self._storing = False
        self._eof_while_storing = False
        self._lost = False
        self._handshaking = False
        self._rule: tuple[str, str] | None = None  # the rule of the refusal being sent
        self._held: list[bytes] = []  # the first lines of a multi-line reply, sent with its last
        self._context_rule = ""  # the rule of any refusal during this command (AUTH)
        self._auth_failures = 0
        self._connect_refusal: Refusal | None = None
        self._rdns: asyncio.Task[str] | None = None
        # The receiver's verdicts of this session (--receiver; None when permissive).
        self._verdicts: ReceiverSession | None = None
        self._receiver_refusal: ReceiverRefusal | None = None  # the last one, with its detail
        self._kept_refused: collections.deque[str] = collections.deque(maxlen=KEEP_DELIVERED)
        self._box = DEFAULT_BOX  # the mailbox of the session's last message, for its log
        self.ip = ""
        self._smtp_init(server)
        # We decide per mechanism whether TLS is needed (smtp_AUTH), and check AUTH ourselves.
        self._auth_require_tls = False
        self._auth_required = server.login_required
        if server.gated:
            # Checks before every command (STARTTLS required, chaos Drop); only when configured,
            # so the default path costs nothing extra.
            self._smtp_methods = {n: self._gate(n, m) for n, m in self._smtp_methods.items()}

    def _smtp_init(self, server: SmtpServer) -> None:
        """What aiosmtpd's `SMTP.__init__` sets up, for the arguments this server passes.

        aiosmtpd finds the smtp_*, auth_* and handle_* methods with inspect.getmembers on every
        new connection, which also evaluates every property: a quarter of the server's time
        with a new connection per message. The names are found once per class here instead
        (tests/test_smtp.py checks the result against aiosmtpd's own constructor).
        """
        cfg = server.config
        self.__ident__ = IDENT
        self.loop = server.loop
        asyncio.StreamReaderProtocol.__init__(
            self,
            asyncio.StreamReader(loop=self.loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected,
            loop=self.loop,
        )
        self.event_handler = server
        self.data_size_limit = cfg.max_message_size
        self.enable_SMTPUTF8 = True
        self._decode_data = False
        self.command_size_limits.clear()  # (aiosmtpd's class-wide dict, reset per connection)
        self.hostname = cfg.smtp_hostname or socket.getfqdn()
        self.tls_context = server.tls_context
        self.require_starttls = False
        self._timeout_duration = cfg.smtp_timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = True
        self._proxy_timeout = None
        self._authenticator = None
        self._auth_callback = login_always_fail
        self._auth_required = False
        # (mypy takes these classes for unhashable: asyncio.Protocol declares no __hash__)
        names = _method_names(type(self), type(server))  # type: ignore[arg-type]
        self._auth_methods = {
            mech: _AuthMechAttr(getattr(self if builtin else server, attr), builtin)
            for mech, attr, builtin in names.auth
        }
        self._handle_hooks = {hook: getattr(server, attr) for hook, attr in names.hooks}
        self._ehlo_hook_ver = "new" if "EHLO" in self._handle_hooks else None
        self._smtp_methods = {verb: getattr(self, attr) for verb, attr in names.commands}
        self._enforce_call_limit = False

    # -- recording -----------------------------------------------------------------------

    def _cb_client_connected(self, reader: asyncio.StreamReader, writer: Any) -> None:
        super()._cb_client_connected(_RecordingReader(reader, self), writer)  # type: ignore[arg-type]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:
            peer = transport.get_extra_info("peername")
            sock = transport.get_extra_info("sockname")
            self.transcript.add(
                "I",
                f"connected from {fmt_addr(peer)} to {fmt_addr(sock)} "
                f"(listener {self._server.name})",
            )
            self.ip = str(peer[0]) if isinstance(peer, tuple) else ""
            receiver = self._server.receiver
            if receiver is not None:
                self._verdicts = receiver.session(self.ip)
            policy = self._server.policy
            over_limit = policy.opened(self.ip)  # counted even when refused: closed() pairs it
            self._connect_refusal = policy.client(self.ip) or over_limit
            if self._server.config.smtp_reverse_dns and self.ip:
                self._rdns = self._server.loop.create_task(self._reverse_dns())
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
        if self._in_help and reply[:4] == b"250 ":
            reply = b"214" + reply[3:]
        reply = self._with_enhanced_code(reply)
        text = reply.decode("utf-8", "replace")
        if "\r" in text:
            text = text.replace("\r\n", "\n")  # a receiver profile's multi-line reply, whole
        chaos = self._server.chaos
        if chaos is not None and reply[3:4] != b"-":  # once per reply, before its last line
            pause = chaos.delay()
            if pause:
                await asyncio.sleep(pause)  # the Delay trigger: a slow server
        self._last_code = text[:3]
        self.transcript.add("S", text)
        if reply[:1] in (b"4", b"5") and not self._after_refusal:
            rule, detail = self._rule or (
                self._context_rule or DEFAULT_RULES.get(self._last_code, "protocol"),
                "",
            )
            self._rule = None
            self._refused(text, rule, detail)
        if reply[3:4] == b"-" and b"\r\n" not in reply:
            # More lines of this reply follow (EHLO's extensions): the client reads nothing until
            # the last one, so all go out in one write, not one system call and packet each.
            self._held.append(reply + b"\r\n")
            return
        if self._held:
            self._held.append(reply + b"\r\n")
            self._writer.write(b"".join(self._held))
            self._held.clear()
        else:
            self._writer.write(reply + b"\r\n")
        transport = self.transport
        if (
            transport is None or transport.is_closing() or transport.get_write_buffer_size()  # type: ignore[attr-defined]
        ):
            # Only a reply that did not go out at once needs the flow-control wait (aiosmtpd
            # awaits drain() after every reply).
            await self._writer.drain()
        if reply.startswith(b"421"):
            self._hang_up()  # 421 closes the transmission channel (RFC 5321 section 3.8)

    def _refused(self, reply: str, rule: str, detail: str) -> None:
        """Every refusal: its rule in the session log, an `error` event and a counter."""
        self._errors += 1
        self.transcript.add("I", f"rule {rule}: {detail}" if detail else f"rule {rule}")
        self._server.smtp_error(self, reply, rule)

    def mark(self, refusal: Refusal) -> str:
        """For handler hooks that return their reply: remember its rule; returns the reply."""
        self._rule = (refusal.rule, refusal.detail)
        return refusal.reply

    async def refuse(self, refusal: Refusal) -> None:
        await self.push(self.mark(refusal))

    async def receiver_check(
        self, stage: str, *, mail_from: str = "", raw: bytes = b"", rcpt_to: tuple[str, ...] = ()
    ) -> Refusal | None:
        """The receiver profile's answer at this stage (--receiver), or None to go on.

        Its verdicts need DNS (and spamd), so they run on an executor, bounded by the profile's
        timeout: a receiver that cannot decide in time accepts, and the transcript says so.
        """
        receiver, verdicts = self._server.receiver, self._verdicts
        if receiver is None or verdicts is None:
            return None
        if stage == "mail":
            receiver.new_transaction(verdicts)
        self._receiver_refusal = None
        if stage not in receiver.stages:
            return None  # no rule answers here: no thread hop
        assert self.session is not None
        work = functools.partial(
            receiver.check,
            verdicts,
            stage,
            helo=self.session.host_name or "",
            mail_from="" if mail_from == "<>" else mail_from,
            raw=raw,
            rcpt_to=rcpt_to,
            tls=self.session.ssl is not None,
        )
        timeout = receiver.profile.timeout
        try:
            found = await asyncio.wait_for(self.loop.run_in_executor(None, work), timeout)
        except TimeoutError:
            self.transcript.add(
                "I", f"receiver {receiver.profile.name}: no verdict within {timeout:g}s: accepted"
            )
            return None
        except Exception:
            log.exception("receiver checks failed")
            self.transcript.add("I", f"receiver {receiver.profile.name}: checks failed: accepted")
            return None
        for note in verdicts.notes:
            self.transcript.add("I", note)
        verdicts.notes.clear()
        if found is None:
            return None
        self._receiver_refusal = found
        simulated = f", simulated: client {found.client_ip}" if found.simulated else ""
        return Refusal(
            found.reply,
            f"receiver:{found.rule}",
            f"{found.profile} at {found.stage}: {found.detail}{simulated}",
        )

    def _hang_up(self) -> None:
        if self.transport is not None:
            self.transport.close()
        task = self._handler_coroutine
        if task is not None and not task.done():
            task.cancel()

    def chaos_refusal(self, stage: str) -> Refusal | None:
        """The refusal of a chaos trigger when it fires at this stage (see chaos.py)."""
        chaos = self._server.chaos
        code = chaos.fire(stage) if chaos is not None else None
        if code is None:
            return None
        enhanced = ENHANCED.get(str(code), f"{str(code)[0]}.0.0")
        return Refusal(
            f"{code} {enhanced} Error: chaos {stage} trigger",
            f"chaos-{stage.lower()}",
            f"the chaos {stage} trigger fired",
        )

    async def _chaos_refused(self, stage: str) -> bool:
        refusal = self.chaos_refusal(stage)
        if refusal is None:
            return False
        await self.refuse(refusal)
        return True

    def _gate(self, name: str, method: Callable[[Any], Awaitable[None]]) -> Any:
        async def gated(arg: Any) -> None:
            server = self._server
            if (
                server.config.smtp_require_starttls
                and self._tls_protocol is None
                and name not in _BEFORE_STARTTLS
            ):
                await self.refuse(
                    Refusal(
                        "530 5.7.0 Must issue a STARTTLS command first",
                        "require-starttls",
                        f"{name} before STARTTLS",
                    )
                )
                return
            if server.chaos is not None and server.chaos.drop():
                self.transcript.add("I", f"chaos Drop trigger at {name}: closed without a reply")
                self._outcome = "dropped by chaos"
                server.smtp_error(self, f"connection dropped at {name} (chaos)", "chaos-drop")
                self._hang_up()
                return
            await method(arg)

        return functools.wraps(method)(gated)  # HELP reads the syntax attributes

    def _with_enhanced_code(self, reply: bytes) -> bytes:
        code = reply[:3].decode("ascii", "replace")
        if (self._in_ehlo and code == "250") or code not in ENHANCED:
            return reply
        if HAS_ENHANCED.match(reply):
            return reply
        if self.session is not None and code == "220" and self._last_command != "STARTTLS":
            return reply  # the greeting
        enhanced = ENHANCED[code]
        if code == "250":
            enhanced = MAIL_RCPT_OK.get(self._last_command, enhanced)
        sep = reply[3:4] or b" "
        return reply[:3] + sep + enhanced.encode() + b" " + reply[4:]

    # -- connection and TLS ----------------------------------------------------------------

    async def _handle_client(self) -> None:
        server = self._server
        if server.config.smtp_require_tls and not await self._start_tls():
            return  # implicit TLS (SMTPS): nothing is said before the handshake
        refusal = self._connect_refusal or self.chaos_refusal("Connect")
        if refusal is None and self._verdicts is not None:
            refusal = await self.receiver_check("connect")
        if refusal is None:
            await self._command_loop()
            return
        # The refusal replaces the greeting. After a 421 we close; after a 554 RFC 5321
        # section 3.1 says to wait for QUIT and answer anything else with 503.
        self._outcome = "refused"
        await self.refuse(refusal)
        if self.transport is not None and not refusal.reply.startswith("421"):
            await self._refused_session(refusal)

    async def _command_loop(self) -> None:
        """aiosmtpd's command loop (`SMTP._handle_client`) with the same replies, leaner per line.

        aiosmtpd's loop formats two log records per line even when its logger is off, and
        re-arms a timer per command; lines are read here straight from the stream (recorded
        as they come) rather than through the recording wrapper. Proxy protocol and command
        call limits, which aiosmtpd supports and this server never enables, are left out.
        """
        assert self.session is not None
        reader: asyncio.StreamReader = self._reader._inner  # type: ignore[attr-defined]
        await self.push(f"220 {self.hostname} {self.__ident__}")
        bogus_budget = BOGUS_LIMIT
        methods = self._smtp_methods
        while self.transport is not None:
            try:
                try:
                    line = await reader.readuntil()
                except asyncio.IncompleteReadError:
                    # The client half-closed and every line it sent before is answered: the
                    # session is over (a line cut short by the close is no command).
                    self._hang_up()
                    return
                except asyncio.LimitOverrunError as error:
                    # Line too long: read to its end before answering (as aiosmtpd does).
                    self.record_client_line(b"[command line too long]")
                    await reader.read(error.consumed)
                    while True:
                        try:
                            await reader.readuntil()
                            break
                        except asyncio.LimitOverrunError as e:
                            await reader.read(e.consumed)
                    await self.push("500 Command line too long")
                    continue
                self.record_client_line(line)
                line = line.rstrip(b"\r\n")
                if not line:
                    await self.push("500 Error: bad syntax")
                    continue
                command_bytes, _, arg_bytes = line.partition(b" ")
                try:
                    command = command_bytes.upper().decode("ascii")
                except UnicodeDecodeError:
                    await self.push("500 Error: bad syntax")
                    continue
                bad_bytes = control = False
                try:
                    arg = arg_bytes.strip().decode("utf-8") if arg_bytes else None
                except UnicodeDecodeError:
                    arg, bad_bytes = None, True
                else:
                    control = arg is not None and CONTROL.search(arg) is not None
                max_sz = (
                    self.command_size_limits[command]
                    if self.session.extended_smtp
                    else self.command_size_limit
                )
                if len(line) > max_sz:
                    await self.push("500 Command line too long")
                    continue
                if not self._tls_handshake_okay and command != "QUIT":
                    await self.push("554 Command refused due to lack of security")
                    continue
                method = methods.get(command)
                if method is None:
                    bogus_budget -= 1
                    if bogus_budget < 1:
                        await self.push("502 5.5.1 Too many unrecognized commands, goodbye.")
                        self.transport.close()
                        continue
                    await self.push(f'500 Error: command "{command}" not recognized')
                    continue
                if bad_bytes:
                    # Bytes that are not UTF-8 are never a valid name or address (RFC 6531 allows
                    # UTF-8, RFC 5321 ASCII). Taken as they came, they reached the store as
                    # lone surrogates that no page or API answer could encode again.
                    await self.refuse(not_utf8(command))
                    continue
                if control:
                    # No name, address or parameter has a control character (RFC 5321 4.1.2);
                    # a bare CR in an EHLO name went as it came into the Received header.
                    await self.refuse(control_character(command))
                    continue
                self._reset_timeout()  # a valid command
                await method(arg)
            except (asyncio.CancelledError, ConnectionResetError):
                # The connection went away (aiosmtpd cancels this task from connection_lost).
                self._writer.close()
                raise
            except Exception as error:
                status = None
                try:
                    status = await self.handle_exception(error)
                except Exception as inner_error:
                    status = f"500 Error: ({type(inner_error).__name__}) {inner_error}"
                finally:
                    if isinstance(error, TLSSetupException):
                        self.transport.close()
                        self.connection_lost(error)
                    else:
                        await self.push(status or "500 Error: Cannot describe error")

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Note the activity; the idle timer is re-armed only when it fires early, instead of a
        new timer for every command as aiosmtpd does."""
        now = self.loop.time()
        self._idle_since = now
        self._idle_limit = duration or self._timeout_duration
        if self._timeout_handle is None or self._timeout_handle.cancelled():
            self._timeout_handle = self.loop.call_at(now + self._idle_limit, self._idle_check)

    def _idle_check(self) -> None:
        due = self._idle_since + self._idle_limit
        if self.loop.time() >= due:
            self._timeout_cb()
        else:
            self._timeout_handle = self.loop.call_at(due, self._idle_check)

    async def _refused_session(self, refusal: Refusal) -> None:
        while self.transport is not None:
            try:
                line = await self._reader.readuntil()
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                break
            if line.strip().upper() == b"QUIT":
                self._quit = True
                await self.push("221 2.0.0 Bye")
                break
            # The connection was refused once, by the 554: what follows is its consequence, not
            # a fresh refusal, so it is not counted, published or logged with a rule (an error
            # rate would count each command of a client that does not give up, and the
            # session's last refusal would read 503 instead of the 554 that says why).
            self._after_refusal = True
            await self.push("503 5.5.1 Error: this connection was refused, send QUIT")
        self._hang_up()

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        if arg:
            await self.push("501 5.5.4 Syntax: STARTTLS")
        elif not self.tls_context:
            await self.push("454 4.7.0 TLS not available")
        elif self._tls_protocol is not None:
            await self.push("503 5.5.1 Error: TLS is already active")
        else:
            await self.push("220 2.0.0 Ready to start TLS")
            await self._start_tls()

    async def _start_tls(self) -> bool:
        """Switch the connection to TLS (STARTTLS or implicit); a failed handshake is logged
        with its reason and ends only this session."""
        assert self.tls_context is not None and self.transport is not None
        waiter = self.loop.create_future()
        # Our idle timeout ends a silent handshake first (_timeout_cb); asyncio's is a backstop.
        self._handshaking = True
        self._tls_protocol = sslproto.SSLProtocol(
            self.loop,
            self,
            self.tls_context,
            waiter,
            server_side=True,
            ssl_handshake_timeout=self._timeout_duration * 2,  # type: ignore[arg-type]
        )
        self._original_transport = self.transport
        self._original_transport.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(self._original_transport)
        try:
            await waiter  # on success the SSL layer calls connection_made (new session)
            if self.session is None or self.session.ssl is None:
                # A connection closed mid-handshake wakes the waiter without an error.
                raise ConnectionResetError("closed before the handshake completed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            if self._outcome == "timeout":
                reason = f"no TLS handshake within {self._timeout_duration:g}s" + (
                    " (a client speaking plain SMTP to this implicit-TLS port?)"
                    if self._server.config.smtp_require_tls
                    else ""
                )
            elif isinstance(exc, ConnectionResetError):
                reason = f"the client closed the connection during the handshake ({reason})"
            self.transcript.add("I", f"TLS handshake failed: {reason}")
            self._outcome = "tls failed"
            self._server.smtp_error(self, f"TLS handshake failed: {reason}", "tls-handshake")
            # The SSL layer never told us of the connection, so it will not report its end.
            self.connection_lost(exc)
            return False
        finally:
            self._handshaking = False
        return True

    # -- commands ------------------------------------------------------------------------

    # Each override carries aiosmtpd's @syntax again (a method defined here does not inherit
    # it), or HELP, which lists only methods with one, left the command out.
    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        if hostname and await self._chaos_refused("Helo"):
            return
        self._in_ehlo = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_ehlo = False

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        if hostname and await self._chaos_refused("Helo"):
            return
        self._in_ehlo = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._in_ehlo = False

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        self._in_auth = True
        self._context_rule = "auth"
        try:
            await self._auth(arg)
        finally:
            self._in_auth = False
            self._context_rule = ""

    async def _auth(self, arg: str) -> None:
        auth = self._server.auth
        assert self.session is not None
        if not auth.enabled:
            await self.push("502 5.5.1 Error: authentication is not enabled on this server")
            return
        if await self.check_helo_needed("EHLO"):
            return
        args = (arg or "").split()
        if args:
            args[0] = args[0].upper()  # mechanism names are case-insensitive (RFC 4954)
        mech = args[0] if args else ""
        ready = self.session.extended_smtp and not self.session.authenticated
        if ready and mech and mech not in auth.mechanisms:
            # Not offered (--smtp-auth-mechanisms, or CRAM-MD5 with hashed passwords only):
            # refused as unknown, as RFC 4954 section 4 says, and no failed login.
            await self.push("504 5.5.4 Unrecognized authentication type")
            return
        if ready and mech in self._auth_methods:
            if (
                mech in PLAIN_TEXT_MECHANISMS
                and self._tls_protocol is None
                and not auth.allow_insecure
            ):
                await self.refuse(
                    Refusal(
                        "538 5.7.11 Encryption required for requested authentication mechanism",
                        "auth-encryption",
                        f"{mech} over a plain connection: STARTTLS first "
                        "(or start with --smtp-auth-allow-insecure)",
                    )
                )
                return
            if await self._chaos_refused("Authentication"):
                return
        self._last_code = ""
        await super().smtp_AUTH(" ".join(args))
        if self._last_code == "535":
            self._auth_failures += 1
            if self._auth_failures >= MAX_FAILURES:
                await self.refuse(
                    Refusal(
                        "421 4.7.0 Error: too many failed authentication attempts, closing",
                        "auth-failures",
                        f"{self._auth_failures} failed AUTH attempts in this session",
                    )
                )

    async def check_auth_needed(self, caller_method: str) -> bool:
        assert self.session is not None
        if self._auth_required and not self.session.authenticated:
            await self.refuse(
                Refusal(
                    "530 5.7.0 Authentication required",
                    "auth-required",
                    f"{caller_method} before AUTH",
                )
            )
            return True
        return False

    # AUTH mechanisms (aiosmtpd finds auth_* methods; auth_CRAM__MD5 is "CRAM-MD5"). Ours check
    # passwords off the event loop and leave the password out of the session.

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        blob = await self._initial_or_challenge(args, b"")
        pair = split_plain(blob) if blob is not None else None
        if blob is not None and pair is None:
            await self.push("501 5.5.2 Error: cannot split the PLAIN credentials")
        if pair is None:
            return AuthResult(success=False, handled=True)
        return await self._login("PLAIN", *pair)

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        user = await self._initial_or_challenge(args, b"Username:")
        password = await self._challenge(b"Password:") if user is not None else None
        if user is None or password is None:
            return AuthResult(success=False, handled=True)
        return await self._login(
            "LOGIN", user.decode("utf-8", "replace"), password.decode("utf-8", "replace")
        )

    async def auth_CRAM__MD5(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) > 1:
            await self.push("501 5.5.4 Error: CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        challenge = cram_md5_challenge(self.hostname)
        blob = await self._challenge(challenge)
        if blob is None:
            return AuthResult(success=False, handled=True)
        pair = split_cram_md5(blob)
        if pair is not None and self._server.auth.hashed(pair[0]):
            # The stored hash cannot check an HMAC, so whether the digest is right is unknown:
            # RFC 4954's 534 ("mechanism too weak" for that user) says to try another, and it
            # is not counted as a wrong password (smtplib then goes on to PLAIN).
            await self.refuse(
                Refusal(
                    "534 5.7.9 Error: CRAM-MD5 cannot be checked for this user (the password "
                    "is stored as a hash): use PLAIN or LOGIN",
                    "auth-mechanism",
                    f"CRAM-MD5 for {pair[0]!r}, whose password is a hash",
                )
            )
            return AuthResult(success=False, handled=True)
        ok = pair is not None and self._server.auth.check_cram_md5(pair[0], challenge, pair[1])
        return self._auth_result("CRAM-MD5", pair[0] if pair else "", ok)

    async def _challenge(self, challenge: bytes) -> bytes | None:
        blob = await self.challenge_auth(challenge)
        return None if blob is MISSING else blob

    async def _initial_or_challenge(self, args: list[str], challenge: bytes) -> bytes | None:
        if len(args) == 1:
            return await self._challenge(challenge)
        try:
            return b64decode(args[1].encode(), validate=True)
        except ValueError:
            await self.push("501 5.5.2 Error: cannot decode base64")
            return None

    async def _login(self, mech: str, user: str, password: str) -> AuthResult:
        return self._auth_result(mech, user, await self._server.auth.check(user, password))

    def _auth_result(self, mech: str, user: str, ok: bool) -> AuthResult:
        if ok:
            self.transcript.add("I", f"authenticated as {user!r} with {mech}")
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        self._rule = ("auth-failed", f"{mech} credentials for {user!r} rejected")
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        # aiosmtpd knows no AUTH parameter (555). Ours checks it and hands the rest on; the
        # submitter it names is not trusted (RFC 4954 section 5 allows ignoring it), so it
        # changes nothing about the message. Only looked at when the line has one.
        if arg and "AUTH=" in arg.upper():
            assert self.session is not None
            if self.session.extended_smtp and not (
                self._auth_required and not self.session.authenticated
            ):
                arg, refusal = self._take_auth_parameter(arg)
                if refusal is not None:
                    await self.refuse(refusal)
                    return
        await super().smtp_MAIL(arg)

    def _take_auth_parameter(self, arg: str) -> tuple[str, Refusal | None]:
        """MAIL's argument without its valid AUTH= parameter, or the refusal of a bad one."""
        if arg[:5].upper() != "FROM:":
            return arg, None  # aiosmtpd answers the syntax error
        rest = arg[5:].strip()
        address, params = self._getaddr(rest)
        if address is None or not params or not rest.endswith(params):
            return arg, None
        tokens = params.split()
        auth = [t for t in tokens if t.upper().startswith("AUTH=")]
        if not auth:
            return arg, None
        value = auth[0][5:]
        if len(auth) > 1 or (value != "<>" and not _AUTH_XTEXT.fullmatch(value)):
            return arg, Refusal(
                "501 5.5.4 Error: malformed AUTH parameter: use AUTH=<> or AUTH=address "
                "(xtext, RFC 4954 section 5), once",
                "syntax",
                f"MAIL with {' '.join(auth)!r}",
            )
        others = [t for t in tokens if not t.upper().startswith("AUTH=")]
        return "FROM:" + rest[: len(rest) - len(params)].rstrip() + "".join(
            " " + t for t in others
        ), None

    @syntax("HELP [command]")
    async def smtp_HELP(self, arg: str) -> None:
        # RFC 5321 section 4.2.1 and 4.3.2: HELP is answered with 214, not aiosmtpd's 250.
        self._in_help = True
        try:
            await super().smtp_HELP(arg)
        finally:
            self._in_help = False

    @syntax("QUIT")
    async def smtp_QUIT(self, arg: str) -> None:
        self._quit = True
        await super().smtp_QUIT(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None and self.session is not None
        ignored = getattr(self.envelope, "ignored", None)
        if not self.envelope.rcpt_tos and not ignored:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        reader: asyncio.StreamReader = self._reader._inner  # type: ignore[attr-defined]
        raw, too_big, size, lines = await read_data(reader, self.data_size_limit or 0)
        if raw is None:
            # The client gave up mid-DATA (nothing was acknowledged): close so the session ends
            # and is recorded.
            if self.transport is not None:
                self.transport.close()
            return
        over = ", over the size limit" if too_big else ""
        self.transcript.add("C", f"[message data: {size} octets, {lines} lines{over}]")
        self.transcript.add("C", ".")
        if too_big:
            self._set_post_data_state()
            await self.push(
                f"552 5.3.4 Error: message exceeds the maximum size of "
                f"{self.data_size_limit} octets"
            )
            return
        if not self.envelope.rcpt_tos:
            # Every recipient was dropped by --smtp-ignore-rejected-recipients: accepted, not kept.
            self._set_post_data_state()
            self.transcript.add("I", "message discarded: every recipient was ignored")
            await self.push("250 2.0.0 Ok: discarded, no allowed recipients")
            return
        if await self._chaos_refused("Data"):
            self._set_post_data_state()
            return
        if self._server.config.smtp_strict_rfc_headers and crcrlf_in_headers(raw):
            self._set_post_data_state()
            await self.refuse(STRICT_HEADERS)
            return
        mail_from = self.envelope.mail_from or ""
        env = Envelope(
            # aiosmtpd keeps the null sender as "<>"; the envelope says "" (RFC 5321 4.5.5).
            mail_from="" if mail_from == "<>" else mail_from,
            rcpt_to=tuple(self.envelope.rcpt_tos),
            smtputf8=bool(self.envelope.smtp_utf8),
        )
        self._set_post_data_state()
        routed = await self._server.routing.at_data(
            env.rcpt_to, raw, username(self.session), self.transcript
        )
        if routed.refusal is not None:
            await self.refuse(routed.refusal)  # nothing stored: a recipient has no mailbox
            return
        if routed.boxes:
            self._box = next(iter(routed.boxes))
        refused: Refusal | None = None
        if self._verdicts is not None:
            refused = await self.receiver_check(
                "data", mail_from=mail_from, raw=raw, rcpt_to=env.rcpt_to
            )
        verdict = self._receiver_refusal if refused is not None else None
        uid = new_id()
        if self._rdns is not None:
            raw = (
                received_header(self.session, self.ip, self.hostname, await self._rdns, uid, raw)
                + raw
            )
        ok_reply = f"250 2.0.0 Ok: queued as {uid}"
        if refused is not None:
            # Kept to be read, marked refused; the client hears the refusal, not the 250.
            ok_reply = refused.reply
            self.transcript.add(
                "I", f"{refused.detail} (rule {refused.rule}): refused, kept as {uid}"
            )
        offset = self.transcript.offset()
        # The commit's outcome comes back on this loop through one future of our own, with a
        # deadline timer: a cancelled session never cancels the delivery itself, and this costs
        # less per message than wait_for(shield(wrap_future(...))) or a Future per delivery.
        loop = self.loop
        waiter: asyncio.Future[str] = loop.create_future()
        inflight = self._server.inflight
        inflight.add(waiter)
        self._storing = True
        ticket = Ticket()
        try:
            self._server.mailbox.deliver_then(
                lambda stored, exc: loop.call_soon_threadsafe(  # type: ignore[arg-type]
                    _settle, waiter, stored, exc
                ),
                env,
                raw,
                uid=uid,
                username=username(self.session),
                session_uid=self._server_session_id,
                transcript=self.transcript.for_message(
                    [offset, "S", ok_reply.replace("\r\n", "\n")]
                ),
                received_at=time.time(),
                origin={
                    "Helo": self.session.host_name or "",
                    "Peer": fmt_addr(self.session.peer),
                    "TLS": self.session.ssl is not None,
                    "Username": username(self.session),
                    "Protocol": protocol_name(self.session),
                    "Listener": self._server.name,
                },
                ticket=ticket,
                refused=verdict.to_api() if verdict is not None else None,
                boxes=routed.boxes,
            )
            timer = loop.call_later(STORE_DEADLINE, _expire, waiter, ticket)
            try:
                await waiter
            finally:
                timer.cancel()
        except Exception as exc:
            # Storage first: a message that is not committed is never acknowledged.
            log.error("storing message from %s failed: %s", fmt_addr(self.session.peer), exc)
            if refused is not None:
                await self.refuse(refused)  # refused either way: the client hears why
                return
            await self.push("451 4.3.0 Error: message could not be stored, try again later")
            return
        finally:
            inflight.discard(waiter)
            self._storing = False
        if refused is not None:
            self._kept_refused.append(uid)
            await self.refuse(refused)
            if self._eof_while_storing and self.transport is not None:
                self.transport.close()
            return
        self._delivered.append(uid)
        self._server.policy.delivered(self.ip)
        # --- relay (relay/service.py): with forward-smtp-errors the message is relayed now and
        # the upstream's refusal is this session's answer instead of the 250.
        relay_inline = self._server.mailbox.relay_inline
        if relay_inline is not None:
            refusal = await self._server.loop.run_in_executor(None, relay_inline, uid, env, raw)
            if refusal:
                await self.push(refusal)
                return
        # --- end relay
        await self.push(ok_reply)
        if self._eof_while_storing and self.transport is not None:
            self.transport.close()  # the client had half-closed: it has its answer now

    def _create_session(self) -> SmtpSession:
        return _Session(self.loop)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _SIMPLE_PATH.match(arg) if arg else None
        if match is None:
            return super()._getaddr(arg)
        addr = match.group(1)
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, arg[match.end() :]

    def _create_envelope(self) -> SmtpEnvelope:
        return CatcherEnvelope()

    async def _reverse_dns(self) -> str:
        """Started at connect; bounded by a short timeout so it never holds the session up."""
        try:
            name = await asyncio.wait_for(self._server.reverse_lookup(self.ip), REVERSE_DNS_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            self.transcript.add("I", f"reverse DNS of {self.ip}: no answer in time")
            return ""
        except Exception as exc:
            self.transcript.add("I", f"reverse DNS of {self.ip}: {str(exc) or type(exc).__name__}")
            return ""
        self.transcript.add("I", f"reverse DNS of {self.ip}: {name}")
        return name

    def eof_received(self) -> bool | None:
        if self.session is None or self.session.ssl is None:
            # A half-close over plain TCP: the lines already sent are still answered (a
            # session piped whole into `nc`, pipelined commands, a message being stored), then
            # the command loop meets the end of the stream and closes. aiosmtpd cancels the
            # session task instead, and a task cancelled before its first step never runs its
            # clean-up, so a client that half-closed before the greeting was held open until
            # the idle timeout.
            return asyncio.StreamReaderProtocol.eof_received(self)
        if self._storing:
            # Over TLS: keep the write side open so the client still hears whether its
            # message was stored, instead of aiosmtpd cancelling the session.
            self._eof_while_storing = True
            return True
        return super().eof_received()  # aiosmtpd's: over TLS the session ends at once

    # -- timeouts and the end of the session ---------------------------------------------

    def _timeout_cb(self) -> None:
        self._outcome = "timeout"
        if self._handshaking:
            pass  # nothing can be said mid-handshake; _start_tls logs why it failed
        elif self.transport is not None and not self.transport.is_closing():
            reply = f"421 4.4.2 {self.hostname} Error: timeout exceeded, closing connection"
            self.transcript.add("S", reply)
            self._refused(reply, "timeout", f"idle for {self._server.config.smtp_timeout:g}s")
            self.transport.write(reply.encode() + b"\r\n")  # type: ignore[attr-defined]
        super()._timeout_cb()

    def connection_lost(self, error: Exception | None) -> None:
        if self._lost:
            return  # a failed TLS handshake reports it already
        self._lost = True
        was_open = self.transport is not None
        super().connection_lost(error)
        self._server.policy.closed(self.ip)
        if self._rdns is not None:
            self._rdns.cancel()
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
            peer=fmt_addr(self.session.peer),
            local=fmt_addr(local) if local else self._server.address_text,
            helo=self.session.host_name or "",
            tls=self.session.ssl is not None,
            username=username(self.session),
            outcome=outcome,
            messages=(*self._delivered, *self._kept_refused),
            transcript=_json(t.entries),
            mailbox=self._box,
        )


class _MethodNames(NamedTuple):
    auth: tuple[tuple[str, str, bool], ...]  # (mechanism, attribute, on the protocol itself)
    hooks: tuple[tuple[str, str], ...]  # (hook, handler attribute)
    commands: tuple[tuple[str, str], ...]  # (verb, attribute)


@functools.cache
def _method_names(protocol: type, handler: type) -> _MethodNames:
    """aiosmtpd's method discovery, done on the classes (once) instead of on each instance;
    the same precedence: a handler's auth_* mechanism replaces the protocol's."""
    auth: dict[str, tuple[str, str, bool]] = {}
    for cls, builtin in ((protocol, True), (handler, False)):
        for attr in sorted(dir(cls)):
            if attr.startswith("auth_"):
                func = getattr(cls, attr)
                mech = getattr(
                    func, "__auth_mechanism_name__", attr.replace("auth_", "").replace("__", "-")
                )
                auth[mech] = (mech, attr, builtin)
    return _MethodNames(
        auth=tuple(auth.values()),
        hooks=tuple((a.replace("handle_", ""), a) for a in dir(handler) if a.startswith("handle_")),
        commands=tuple((a.replace("smtp_", ""), a) for a in dir(protocol) if a.startswith("smtp_")),
    )


def _settle(waiter: asyncio.Future[str], stored: str | None, exc: BaseException | None) -> None:
    """Pass a delivery's outcome (from the store's thread) to the session waiting for it."""
    if waiter.done():
        return  # the deadline passed first (or the session went away)
    if exc is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(str(stored))


def _expire(waiter: asyncio.Future[str], ticket: Ticket) -> None:
    """The deadline: 451 for a message the writer has not started, which it then skips. One it
    has started is being committed now (briefly): its outcome is the answer."""
    if not waiter.done() and ticket.cancel():
        waiter.set_exception(TimeoutError(f"not committed within {STORE_DEADLINE:g} s"))


def _json(value: Any) -> str:
    return jsontext.dumps(value)
