"""What the parts of an SMTP session share: its state, and how a refusal is marked and sent,
a chaos trigger's and the receiver profile's among them."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from typing import TYPE_CHECKING

from aiosmtpd.smtp import SMTP

from mailpit_py.ids import new_id
from mailpit_py.mailbox.boxes import DEFAULT_BOX
from mailpit_py.receiver.engine import Refusal as ReceiverRefusal
from mailpit_py.receiver.engine import Session as ReceiverSession
from mailpit_py.smtp.policy import Refusal
from mailpit_py.smtp.replies import ENHANCED, HAS_ENHANCED, MAIL_RCPT_OK
from mailpit_py.smtp.transcript import Transcript

if TYPE_CHECKING:
    from mailpit_py.smtp.protocol import AuthResult
    from mailpit_py.smtp.server import SmtpServer

log = logging.getLogger("mailpit_py.smtp")

# A session's own record keeps the IDs of at most this many of the messages it delivered
# (newest); its transactions are bounded by KEEP_TRANSACTIONS in transcript.py.
KEEP_DELIVERED = 1000


class SessionBase(SMTP):
    """The session's own state and refusals, under the command modules and smtp/protocol.py.

    The command modules (smtp/commands.py, smtp/auth_exchange.py, smtp/delivery.py) and
    smtp/connection.py use aiosmtpd's public API and what this class declares, never
    aiosmtpd's internals: what they need of those, smtp/protocol.py gives under the names
    below, so that it stays the one module a new aiosmtpd is checked against
    (tests/test_smtp_drift.py).
    """

    # The client's stream itself, not the recording wrapper (set by protocol.py on connect).
    _stream: asyncio.StreamReader

    def __init__(self, server: SmtpServer) -> None:
        # Our state only: aiosmtpd's constructor is not called (protocol.py's _smtp_init sets
        # what it would, without its per-connection method discovery).
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

    # -- given by smtp/protocol.py (they read aiosmtpd's internals) -------------------------

    def _new_envelope(self) -> None:
        """A fresh envelope after DATA, as aiosmtpd's own DATA sets one."""
        raise NotImplementedError

    def _encrypted(self) -> bool:
        """Whether the connection has switched to TLS (STARTTLS or implicit)."""
        raise NotImplementedError

    def _offers(self, mechanism: str) -> bool:
        """Whether an auth_* method implements the AUTH mechanism."""
        raise NotImplementedError

    def _login_required(self) -> bool:
        """Whether this listener requires AUTH before mail (--smtp-auth-required)."""
        raise NotImplementedError

    def _parse_path(self, arg: str) -> tuple[str | None, str | None]:
        """A MAIL or RCPT argument's address and the parameters after it."""
        raise NotImplementedError

    def _note_activity(self) -> None:
        """The client sent something: the idle timeout counts from now."""
        raise NotImplementedError

    def _auth_outcome(self, user: str | None, *, handled: bool = True) -> AuthResult:
        """What an auth_* method returns: a login as `user`, or a failure whose reply was sent
        (handled) or is aiosmtpd's 535."""
        raise NotImplementedError

    # -- refusals ----------------------------------------------------------------------------

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

    @property
    def _server_session_id(self) -> str:
        sid = getattr(self, "_sid", None)
        if sid is None:
            sid = self._sid = new_id()
        return sid
