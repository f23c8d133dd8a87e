"""An SMTP connection's life: connect (access policy, receiver, reverse DNS), every line the
client sends recorded, a half-close, and the session's record at the end."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mailpit_py import jsontext
from mailpit_py.smtp.policy import REVERSE_DNS_TIMEOUT
from mailpit_py.smtp.session_base import SessionBase
from mailpit_py.smtp.trace import fmt_addr, username
from mailpit_py.store.records import SessionRecord


class RecordingReader:
    """Wraps the protocol's StreamReader so every line the client sends is recorded."""

    def __init__(self, reader: asyncio.StreamReader, owner: ConnectionEvents) -> None:
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


class ConnectionEvents(SessionBase):
    """The connection's events: made, each line read, half-closed; and its session record."""

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


def _json(value: Any) -> str:
    return jsontext.dumps(value)
