"""Test doubles for relaying: a recording upstream SMTP server (aiosmtpd, STARTTLS and AUTH on,
scripted refusals) and a DNS stub that answers MX and A queries from a dict, both on port 0."""

from __future__ import annotations

import asyncio
import hmac
import secrets
import socket
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from mailpit_py.net.loopthread import LoopThread
from mailpit_py.net.tls import server_context

USER, PASSWORD = "relayuser", "relay-secret"


@dataclass
class Received:
    mail_from: str
    rcpts: list[str]
    data: bytes
    username: str
    tls: bool
    helo: str = ""  # the name the client greeted with (EHLO or HELO)
    mail_options: list[str] | None = None  # MAIL FROM's parameters (SMTPUTF8, BODY=8BITMIME)


class _Handler:
    def __init__(self, owner: UpstreamServer) -> None:
        self.owner = owner

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        scripted = self.owner.rcpt_replies.get(address)
        if scripted:
            return scripted.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        """CRAM-MD5 (RFC 2195), which aiosmtpd lacks: the secret is PASSWORD."""
        challenge = f"<{secrets.token_hex(8)}@upstream.test>".encode()
        response = await server.challenge_auth(challenge)
        if not isinstance(response, bytes):
            return AuthResult(success=False, handled=True)
        user, _, digest = response.partition(b" ")
        expected = hmac.new(PASSWORD.encode(), challenge, "md5").hexdigest().encode()
        ok = user == USER.encode() and hmac.compare_digest(digest, expected)
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(user, b""))

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.owner.data_started.set()
        if self.owner.data_delay:
            await asyncio.sleep(self.owner.data_delay)  # a slow upstream: the reply comes late
        if self.owner.data_replies:
            return self.owner.data_replies.pop(0)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else b""
        self.owner.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content or envelope.content,
                login.decode() if isinstance(login, bytes) else str(login or ""),
                # STARTTLS sets session.ssl; implicit TLS shows on the transport only.
                session.ssl is not None or _on_tls(server),
                session.host_name or "",
                list(envelope.mail_options),
            )
        )
        return "250 2.0.0 Ok: upstream got it"


def _on_tls(server: Any) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class UpstreamServer:
    """A real SMTP server on 127.0.0.1 that records what it receives.

    `rcpt_replies` / `data_replies` script refusals (consumed in order) such as a first 451;
    `data_delay` holds the reply to the data that long (`data_started` is set when it came);
    `smtputf8` offers SMTPUTF8 (RFC 6531).
    """

    def __init__(
        self,
        tmp: Path | None = None,
        *,
        starttls: bool = True,
        auth: bool = True,
        port: int = 0,
        address: str = "127.0.0.1",
        implicit_tls: bool = False,
        smtputf8: bool = False,
    ) -> None:
        self.received: list[Received] = []
        self.smtputf8 = smtputf8
        self.data_delay = 0.0
        self.data_started = threading.Event()
        self.rcpt_replies: dict[str, list[str]] = {}
        self.data_replies: list[str] = []
        self.starttls = starttls
        self.auth = auth
        self.host = address
        self.port = port
        self.loop = asyncio.new_event_loop()
        self._runner = LoopThread("upstream", "upstream SMTP", self.loop)
        self.implicit_tls = implicit_tls
        self._tls = (
            server_context("sans:localhost,127.0.0.1", None, "--test")
            if starttls or implicit_tls
            else None
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        return AuthResult(success=ok, handled=False, auth_data=data)

    def _factory(self) -> SMTP:
        with warnings.catch_warnings():
            # Implicit TLS: aiosmtpd only knows STARTTLS, so it warns that AUTH is not tied to
            # TLS; here the whole connection is TLS from the first byte.
            warnings.simplefilter("ignore", UserWarning)
            return self._protocol()

    def _protocol(self) -> SMTP:
        return SMTP(
            _Handler(self),
            hostname="upstream.test",
            tls_context=None if self.implicit_tls else self._tls,
            authenticator=self._authenticate if self.auth else None,
            auth_required=self.auth,
            auth_require_tls=self.starttls and not self.implicit_tls,
            enable_SMTPUTF8=self.smtputf8,
            loop=self.loop,
        )

    def start(self) -> UpstreamServer:
        self._runner.start(
            lambda: self.loop.create_server(
                self._factory,
                host=self.host,
                port=self.port,
                reuse_address=True,
                ssl=self._tls if self.implicit_tls else None,
            ),
            f"{self.host}:{self.port}",
            "UpstreamServer(port=...)",
        )
        # Port 0: the port the OS chose (aiosmtpd's Controller cannot tell it).
        self.port = self._runner.address[1]
        return self

    def stop(self) -> None:
        async def closed() -> None:
            if self._runner.server is not None:
                await self._runner.server.wait_closed()

        self._runner.stop(closed, wait=10)

    def __enter__(self) -> UpstreamServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A port nothing listens on right now (for an upstream that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DnsStub:
    """A UDP DNS server answering from `records`: {(name, type): [rdata text, ...]}; names it
    does not know get NXDOMAIN, known names without that type an empty answer."""

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = {
            (name.rstrip(".").lower() + ".", rdtype.upper()): values
            for (name, rdtype), values in records.items()
        }
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.queries: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-stub", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(wire)
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.AA
            question = query.question[0]
            name = question.name.to_text().lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rdtype))
            values = self.records.get((name, rdtype))
            if values:
                reply.answer.append(
                    dns.rrset.from_text_list(question.name, 60, "IN", rdtype, values)
                )
            elif not any(n == name for n, _ in self.records):
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), peer)

    def start(self) -> DnsStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    @property
    def nameserver(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"
