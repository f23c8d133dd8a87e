"""The SMTP protocol: aiosmtpd's SMTP subclass, the one module that touches aiosmtpd's internals."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import socket
from asyncio import sslproto
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from aiosmtpd.smtp import (
    BOGUS_LIMIT,
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

from mailpit_py.smtp.auth_exchange import AuthCommand
from mailpit_py.smtp.commands import EnvelopeCommands
from mailpit_py.smtp.connection import ConnectionEvents, RecordingReader
from mailpit_py.smtp.delivery import DataCommand
from mailpit_py.smtp.policy import Refusal
from mailpit_py.smtp.replies import (
    CONTROL,
    DEFAULT_RULES,
    control_character,
    not_utf8,
)
from mailpit_py.smtp.session_base import SessionBase

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
# MAIL FROM:<a@b.example> and RCPT TO:<...> as nearly every client sends them: a dot-atom local
# part and a host name. aiosmtpd parses each with the email package's header parser and builds
# a typing.Protocol class per call (about 6% of the server's CPU); these take a regex instead,
# and anything else (quotes, comments, routes, literals, UTF-8) still goes the careful way.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_PATH = re.compile(
    rf"\s*<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:[ \t]+(?=[^\s(])|$)"
)  # RFC 3207 section 4: what a client may send before STARTTLS when TLS is required.
_BEFORE_STARTTLS = frozenset({"EHLO", "HELO", "NOOP", "RSET", "STARTTLS", "QUIT"})
# RFC 5321 section 4.5.3.1.4 allows 512 octets a command line, and each service extension adds
# what its parameters need, after EHLO: MAIL 26 for SIZE (RFC 1870), 15 for BODY=8BITMIME,
# 9 for SMTPUTF8, 500 for AUTH= (RFC 4954 section 5), 109 for RET and ENVID (RFC 3461 section
# 4); RCPT 500 for ORCPT and 31 for NOTIFY.
_EXTENDED_LINE = {"MAIL": 512 + 26 + 15 + 9 + 500 + 109, "RCPT": 512 + 500 + 31}
# The longest line the stream reads whole (aiosmtpd's is 1001); a longer one is read to its
# end and refused.
_LINE_LIMIT = 2048


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


class CatcherSMTP(EnvelopeCommands, AuthCommand, DataCommand, ConnectionEvents, SessionBase):
    """aiosmtpd's protocol with our transcript, replies, DATA reader and storage contract.

    The commands and the connection's events are in the modules of its bases; this class holds
    what uses aiosmtpd's internals: set-up, the command loop, replies, TLS and timeouts.
    """

    def __init__(self, server: SmtpServer) -> None:
        super().__init__(server)  # the session's own state (session_base.py)
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
            asyncio.StreamReader(loop=self.loop, limit=_LINE_LIMIT),
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

    def _cb_client_connected(self, reader: asyncio.StreamReader, writer: Any) -> None:
        self._stream = reader
        super()._cb_client_connected(RecordingReader(reader, self), writer)  # type: ignore[arg-type]

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

    def _hang_up(self) -> None:
        if self.transport is not None:
            self.transport.close()
        task = self._handler_coroutine
        if task is not None and not task.done():
            task.cancel()

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
        """aiosmtpd's command loop (`SMTP._handle_client`) with its replies, leaner per line.

        Two replies differ: an unknown command is echoed only when printable, and the last of
        too many ends the session with 421 (aiosmtpd says 502 and closes). aiosmtpd's loop
        formats two log records per line even when its logger is off, and re-arms a timer per
        command; lines are read here straight from the stream (recorded as they come) rather
        than through the recording wrapper. Proxy protocol and command call limits, which
        aiosmtpd supports and this server never enables, are left out.
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
                    _EXTENDED_LINE.get(command, self.command_size_limit)
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
                        # The server closing the channel says so with 421 (RFC 5321 section
                        # 3.8); push() hangs up after it.
                        await self.push(
                            "421 4.7.0 Error: too many unrecognized commands, closing connection"
                        )
                        continue
                    if command.isprintable():
                        await self.push(f'500 Error: command "{command}" not recognized')
                    else:
                        # A reply is printable text (RFC 5321 section 4.2): no NUL, bare CR
                        # or terminal escape of the client's goes back in it.
                        await self.push("500 Error: command not recognized")
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

    # -- aiosmtpd's internals under the names the session's other modules use ---------------
    # (declared in session_base.py; none is called per command: check_auth_needed, run for
    # every MAIL, RCPT and DATA, reads _auth_required itself)

    _new_envelope = SMTP._set_post_data_state

    def _encrypted(self) -> bool:
        return self._tls_protocol is not None

    def _offers(self, mechanism: str) -> bool:
        return mechanism in self._auth_methods

    def _login_required(self) -> bool:
        return self._auth_required

    def _parse_path(self, arg: str) -> tuple[str | None, str | None]:
        return self._getaddr(arg)

    def _note_activity(self) -> None:
        self._reset_timeout()

    def _auth_outcome(self, user: str | None, *, handled: bool = True) -> AuthResult:
        if user is not None:
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        return AuthResult(success=False, handled=handled)

    def _create_session(self) -> SmtpSession:
        return _Session(self.loop)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _SIMPLE_PATH.match(arg) if arg else None
        if match is None:
            try:
                return super()._getaddr(arg)
            except Exception:
                # The email package's parser raises on some malformed input (`<`, `"`,
                # `a@[`): a malformed address (553), not an internal error (451, retried).
                return None, None
        addr = match.group(1)
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, arg[match.end() :]

    def _create_envelope(self) -> SmtpEnvelope:
        return CatcherEnvelope()

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
