"""The DATA command: the message read and checked, routed, handed to the mailbox, and 250
only once it is committed (451 when it cannot be, or not within STORE_DEADLINE)."""

from __future__ import annotations

import asyncio
import logging
import time

from aiosmtpd.smtp import syntax

from mailpit_py.ids import new_id
from mailpit_py.models import Envelope
from mailpit_py.smtp.data import crcrlf_in_headers, read_data
from mailpit_py.smtp.policy import Refusal
from mailpit_py.smtp.replies import STRICT_HEADERS
from mailpit_py.smtp.session_base import SessionBase
from mailpit_py.smtp.trace import fmt_addr, protocol_name, received_header, username
from mailpit_py.store.records import Ticket

log = logging.getLogger("mailpit_py.smtp")

# Seconds a client waits for its commit before 451 (it can retry). A message whose write has
# not started by then is dropped from the writer's queue, so a 451 always means not stored.
STORE_DEADLINE = 30.0


class DataCommand(SessionBase):
    """DATA: read, check, route and store the message, then answer."""

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
        raw, too_big, size, lines = await read_data(
            self._stream, self.data_size_limit or 0, self._note_activity
        )
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
            self._new_envelope()
            await self.push(
                f"552 5.3.4 Error: message exceeds the maximum size of "
                f"{self.data_size_limit} octets"
            )
            return
        if not self.envelope.rcpt_tos:
            # Every recipient was dropped by --smtp-ignore-rejected-recipients: accepted, not kept.
            self._new_envelope()
            self.transcript.add("I", "message discarded: every recipient was ignored")
            await self.push("250 2.0.0 Ok: discarded, no allowed recipients")
            return
        if await self._chaos_refused("Data"):
            self._new_envelope()
            return
        if self._server.config.smtp_strict_rfc_headers and crcrlf_in_headers(raw):
            self._new_envelope()
            await self.refuse(STRICT_HEADERS)
            return
        mail_from = self.envelope.mail_from or ""
        env = Envelope(
            # aiosmtpd keeps the null sender as "<>"; the envelope says "" (RFC 5321 4.5.5).
            mail_from="" if mail_from == "<>" else mail_from,
            rcpt_to=tuple(self.envelope.rcpt_tos),
            smtputf8=bool(self.envelope.smtp_utf8),
        )
        self._new_envelope()
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
