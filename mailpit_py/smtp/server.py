"""The SMTP listener: runs the protocol on its own event loop thread and is aiosmtpd's handler
(the MAIL, RCPT, EHLO and HELO hooks, refusals counted and published, sessions recorded)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session as SmtpSession

from mailpit_py import events
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.mailbox.routing import Router
from mailpit_py.net.listen import listen_on
from mailpit_py.net.loopthread import AddressInUse as AddressInUse  # moved; still importable here
from mailpit_py.net.loopthread import LoopThread
from mailpit_py.net.tls import server_context
from mailpit_py.receiver.engine import Receiver
from mailpit_py.smtp.auth import SmtpAuth
from mailpit_py.smtp.chaos import Chaos, parse_triggers
from mailpit_py.smtp.policy import Policy, Refusal
from mailpit_py.smtp.protocol import CatcherEnvelope, CatcherSMTP
from mailpit_py.smtp.replies import non_ascii
from mailpit_py.smtp.routing import SessionRouting
from mailpit_py.smtp.trace import fmt_addr

log = logging.getLogger("mailpit_py.smtp")


def new_event_loop(tls: bool) -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (it cut the server's CPU per message by about 10% in
    bench/ingest.py), else asyncio's own loop.

    With TLS configured, asyncio's: STARTTLS and implicit TLS run asyncio's SSL protocol over
    the connection's transport (as aiosmtpd does), and how a failed handshake surfaces on a
    uvloop transport differs (it went unreported in tests/test_smtp_tls.py).
    """
    if tls:
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class SmtpServer:
    """Runs the SMTP listener on its own event loop thread; also aiosmtpd's handler object."""

    def __init__(
        self,
        config: Config,
        mailbox: Mailbox,
        bus: events.Bus,
        *,
        name: str = "default",
        auth_mode: str = "",
        receiver: Receiver | None = None,
    ) -> None:
        """One listener; `config` is its own (server.py derives one per --smtp-listener with its
        address and TLS mode), `auth_mode` "required", "optional" or "off" overrides what the
        credentials imply, and a non-permissive `receiver` refuses as its profile says."""
        self.config = config
        self.name = name  # the listener's name: in the transcript and each message's record
        self.mailbox = mailbox
        self.bus = bus
        self.loop = new_event_loop(tls=bool(config.smtp_tls_cert))
        thread = "smtp" if name == "default" else f"smtp-{name}"
        self._runner = LoopThread(thread, "SMTP", self.loop)
        self._protocols: set[CatcherSMTP] = set()
        # Sessions waiting for their message's commit (this loop's futures, only touched on it).
        self.inflight: set[asyncio.Future[str]] = set()
        self.sessions_total = 0
        self.rejected = 0
        # Each raises ConfigError (naming the flag) when it cannot be set up.
        self.tls_context = (
            server_context(config.smtp_tls_cert, config.smtp_tls_key, "--smtp-tls")
            if config.smtp_tls_cert
            else None
        )
        self.auth = SmtpAuth.from_config(config)
        if auth_mode == "off":
            self.auth = dataclasses.replace(self.auth, enabled=False)
        # A user list makes AUTH required; a listener may say otherwise (port 587 requires it,
        # port 25 offers none). Not named auth_*: aiosmtpd takes handler auth_* as mechanisms.
        self.login_required = auth_mode == "required" if auth_mode else self.auth.required
        # None when permissive: the default path then costs nothing extra per message.
        self.receiver = receiver if receiver is not None and not receiver.permissive else None
        self.policy = Policy(config)
        # Which mailbox each recipient goes to (docs/mailboxes.md); inactive without settings.
        self.routing = SessionRouting(Router.from_config(config), mailbox, name)
        self.chaos = (
            Chaos(parse_triggers(config.chaos_triggers), config.chaos_seed)
            if config.enable_chaos or config.chaos_triggers
            else None
        )
        self.gated = bool(config.smtp_require_starttls or self.chaos)
        # Replaceable (tests): ip -> PTR name; smtp.py bounds it with REVERSE_DNS_TIMEOUT.
        self.reverse_lookup: Callable[[str], Awaitable[str]] = self.policy.reverse_dns

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the listener is bound to: the real port when 0 was asked."""
        return self._runner.address

    @property
    def address_text(self) -> str:
        return fmt_addr(self.address)

    # -- aiosmtpd handler hooks -----------------------------------------------------------

    async def handle_MAIL(
        self,
        server: CatcherSMTP,
        session: SmtpSession,
        envelope: SmtpEnvelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if not envelope.smtp_utf8 and not address.isascii():
            return server.mark(non_ascii("sender", address))
        refusal = self.policy.rate(server.ip) or server.chaos_refusal("Sender")
        if refusal is None and self.receiver is not None:
            refusal = await server.receiver_check("mail", mail_from=address)
        if refusal is not None:
            return server.mark(refusal)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: CatcherSMTP,
        session: SmtpSession,
        envelope: CatcherEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address == "<>":
            # The null path is a reverse-path only (RFC 5321 sections 3.3 and 4.1.1.3: a
            # forward-path is a mailbox): a syntax error in the address, so 501 5.1.3 ("bad
            # destination mailbox address syntax"), as Postfix answers it, not 550 (no mailbox).
            return server.mark(
                Refusal(
                    "501 5.1.3 Error: bad recipient address syntax: <> is not a recipient",
                    "syntax",
                    "RCPT TO:<> (the null path is for MAIL FROM only)",
                )
            )
        if not envelope.smtp_utf8 and not address.isascii():
            return server.mark(non_ascii("recipient", address))
        # Ignored recipients got 250 too: the client sent them (and their list is bounded).
        if len(envelope.rcpt_tos) + len(envelope.ignored) >= self.config.smtp_max_recipients:
            return (
                f"452 4.5.3 Error: too many recipients (at most "
                f"{self.config.smtp_max_recipients} per message)"
            )
        # Relay access first, as Postfix checks smtpd_relay_restrictions before the rest.
        relay = self.policy.relay_access(address, server.ip, bool(session.authenticated))
        if relay is not None:
            return server.mark(relay)
        refusal = self.policy.recipient(address)
        if refusal is not None and self.config.smtp_ignore_rejected_recipients:
            # Accepted with 250 and dropped: what a silently filtering relay does.
            envelope.ignored.append(address)
            server.transcript.add("I", f"recipient ignored: {refusal.detail}")
            self.mailbox.telemetry.inc("smtp_ignored_recipients")
            return "250 2.1.5 OK"
        refusal = (
            refusal
            or self.routing.rcpt_refusal(address, session)
            or self.policy.greylist(server.ip, envelope.mail_from or "", address)
            or server.chaos_refusal("Recipient")
        )
        if refusal is None and self.receiver is not None:
            refusal = await server.receiver_check(
                "rcpt", mail_from=envelope.mail_from or "", rcpt_to=(address,)
            )
        if refusal is not None:
            return server.mark(refusal)
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
        # AUTH only where it can be used (plain-text mechanisms need TLS unless allowed).
        lines = [r for r in responses[:-1] if not r.startswith("250-AUTH")]
        mechanisms = self.auth.offered(encrypted=session.ssl is not None)
        if mechanisms:
            lines.append("250-AUTH " + " ".join(mechanisms))
        # aiosmtpd ends with "250 HELP"; we add what it does not advertise (RFC 2920, 2034).
        return [*lines, "250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250 HELP"]

    async def handle_HELO(
        self, server: CatcherSMTP, session: SmtpSession, envelope: SmtpEnvelope, hostname: str
    ) -> str:
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_exception(self, error: Exception) -> str:
        log.exception("SMTP session error")
        return "451 4.3.0 Error: internal error, try again later"

    # -- bookkeeping ----------------------------------------------------------------------

    def smtp_error(self, proto: CatcherSMTP, message: str, rule: str) -> None:
        """A refusal (or a fault such as a failed handshake): counted and pushed to the UI."""
        if message[:1] in ("4", "5"):
            if message.startswith("5"):
                self.rejected += 1
            self.mailbox.telemetry.inc("smtp_replies", f"{message[0]}xx", rule)
        # Mailpit's levels: a 4xx reply is a warning (try again), anything else an error
        level = "warning" if message[:1] == "4" else "error"
        data = {"Level": level, "Type": "smtpd", "IP": proto.ip, "Message": message}
        self.bus.publish(events.SmtpError({**data, "Rule": rule}))

    def session_ended(self, proto: CatcherSMTP) -> None:
        self._protocols.discard(proto)
        try:
            rec = proto.session_record()
        except Exception:
            log.exception("could not record SMTP session")
            return
        log.debug("session %s from %s: %s", rec.uid, rec.peer, rec.outcome)
        self.mailbox.telemetry.inc("smtp_sessions", rec.outcome)
        self.mailbox.telemetry.observe(
            "smtp_session_duration", max(0.0, rec.ended - rec.started), rec.outcome
        )
        self.mailbox.record_session(rec)

    def _factory(self) -> CatcherSMTP:
        proto = CatcherSMTP(self)
        self._protocols.add(proto)
        self.sessions_total += 1
        return proto

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        flag = "--smtp" if self.name == "default" else f"--smtp-listener {self.name}"

        async def listen() -> asyncio.Server:
            # listen_on() makes `[::]` dual-stack as in Mailpit (asyncio would make it IPv6
            # only), and binds Mailpit's unix:PATH:MODE too.
            sock = listen_on(self.config.smtp_addr, flag)
            return await self.loop.create_server(self._factory, sock=sock)

        self._runner.start(listen, self.config.smtp_addr, flag)
        log.debug("SMTP listener %s on %s", self.name, self.address_text)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let in-flight messages commit, then close every connection."""

        async def close_connections() -> None:
            deadline = time.monotonic() + timeout
            while self.inflight and time.monotonic() < deadline:
                await asyncio.wait(list(self.inflight), timeout=0.5)
            await asyncio.sleep(0)  # the sessions whose commits just ended send their answers
            for proto in list(self._protocols):
                if proto.transport is not None:
                    proto.transport.close()
            # Two turns: close() schedules connection_lost, which records the session.
            await asyncio.sleep(0)
            await asyncio.sleep(0)

        self._runner.stop(close_connections, wait=timeout + 5)
