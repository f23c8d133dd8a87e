"""What a session says about itself: addresses as text, the protocol name, the user, and the
Received header built from them."""

from __future__ import annotations

from email.utils import formatdate
from typing import Any

from aiosmtpd.smtp import Session


def protocol_name(session: Session) -> str:
    """What the message came in with, as a Received header's WITH names it (RFC 3848): SMTP
    after HELO; after EHLO, ESMTP plus S for TLS and A for AUTH (ESMTPS, ESMTPA, ESMTPSA)."""
    if not session.extended_smtp:
        return "SMTP"
    tls = "S" if session.ssl is not None else ""
    return f"ESMTP{tls}{'A' if session.authenticated else ''}"


def username(session: Session) -> str:
    """The authenticated user name, if the client authenticated (shown as Username)."""
    data = session.auth_data if session.authenticated else None
    login = getattr(data, "login", data)
    if isinstance(login, bytes):
        return login.decode("utf-8", "replace")
    return str(login) if login else ""


def fmt_addr(addr: Any) -> str:
    """A socket address as text: host:port, [v6]:port."""
    if not addr:
        return ""
    if isinstance(addr, tuple):
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(addr)


def received_header(
    session: Session, ip: str, hostname: str, rdns: str, uid: str, raw: bytes
) -> bytes:
    """The trace header an MTA adds (RFC 5321 section 4.4), with the reverse DNS name; its line
    ends are the message's own (a message with bare LF gets bare LF)."""
    proto = protocol_name(session)
    eol = "\n" if b"\n" in raw and not raw.split(b"\n", 1)[0].endswith(b"\r") else "\r\n"
    return (
        f"Received: from {session.host_name or 'unknown'} ({rdns or 'unknown'} [{ip}]){eol}"
        f"\tby {hostname} (mailpit-py) with {proto} id {uid};{eol}"
        f"\t{formatdate(localtime=True)}{eol}"
    ).encode("utf-8", "replace")
