"""Who may read the mailbox over POP3 and IMAP, which mailboxes each login sees, and with
which TLS: settings checks."""

from __future__ import annotations

import base64
import binascii
import ssl
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailpit_py.config.credentials import Credentials
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.values import split_hostport
from mailpit_py.mailbox.boxes import DEFAULT_BOX, clean_box_name

if TYPE_CHECKING:
    from mailpit_py.config.settings import Config

SANS_PREFIX = "sans:"  # as in tls.py, which loads cryptography: only when a server needs TLS

PROTOCOLS = ("pop3", "imap")

# Mailpit's POP3 address: its server starts there whenever it has logins, unless --pop3 is "".
POP3_DEFAULT_ADDR = "[::]:1110"


@dataclass(frozen=True)
class Access:
    """What a POP3 or IMAP listener needs: where, who may log in, and its TLS."""

    proto: str
    addr: str
    credentials: Credentials
    tls: ssl.SSLContext | None  # None: plain text only
    implicit: bool  # TLS from the first byte; else STLS/STARTTLS is offered when tls is set


def credentials_for(config: Config, proto: str) -> Credentials | None:
    """The user list of POP3 or IMAP; IMAP without its own list uses POP3's (one mail login)."""
    path = getattr(config, f"{proto}_auth_file")
    text = getattr(config, f"{proto}_auth")
    if proto == "imap" and not path and not text:
        return credentials_for(config, "pop3")
    if not path and not text:
        return None
    entries: dict[str, str] = {}
    if path:
        entries |= Credentials.load(path, f"--{proto}-auth-file").entries
    if text:
        entries |= Credentials.parse(text, f"MP_{proto.upper()}_AUTH").entries
    return Credentials(entries)


def validate_mail_access(config: Config) -> None:
    """ConfigError for a POP3/IMAP setting that cannot work; servers that are off are not
    checked further (as Mailpit, a TLS file for a server that is off is ignored)."""
    for proto in PROTOCOLS:
        addr = getattr(config, f"{proto}_addr")
        if not addr or _off_by_default(config, proto):
            continue
        flag = f"--{proto}"
        split_hostport(addr, flag)
        if credentials_for(config, proto) is None:
            others = " (or the POP3 ones, which IMAP uses too)" if proto == "imap" else ""
            raise ConfigError(
                f"{flag} {addr} needs logins: give {flag}-auth-file FILE (user:password lines) "
                f"or MP_{proto.upper()}_AUTH='user:password ...'{others}"
            )
        cert = getattr(config, f"{proto}_tls_cert")
        key = getattr(config, f"{proto}_tls_key")
        if proto == "pop3" and config.pop3_starttls:
            if not cert:
                raise ConfigError(
                    "--pop3-starttls needs --pop3-tls-cert (a PEM file, or sans:localhost for a "
                    "self-signed certificate)"
                )
            if config.pop3_tls_implicit:
                raise ConfigError(
                    "--pop3-starttls and --pop3-tls-implicit ask for both kinds of TLS: give one"
                )
        if getattr(config, f"{proto}_tls_implicit") and not cert:
            raise ConfigError(
                f"{flag}-tls-implicit needs {flag}-tls-cert (a PEM file, or sans:localhost for "
                "a self-signed certificate)"
            )
        if key and not cert:
            raise ConfigError(f"{flag}-tls-key was given without {flag}-tls-cert")
        if cert and not key and not cert.startswith(SANS_PREFIX):
            raise ConfigError(
                f"{flag}-tls-key is needed with {flag}-tls-cert (or use {flag}-tls-cert sans:HOST)"
            )


def access_for(config: Config, proto: str) -> Access | None:
    """The listener settings of POP3 or IMAP, TLS context built; None when that server is off."""
    addr = getattr(config, f"{proto}_addr")
    if not addr or _off_by_default(config, proto):
        return None
    creds = credentials_for(config, proto)
    if creds is None:  # validate() refuses this; keep the promise here too
        raise ConfigError(f"--{proto} needs --{proto}-auth-file or MP_{proto.upper()}_AUTH")
    from mailpit_py.net.tls import server_context

    cert = getattr(config, f"{proto}_tls_cert")
    context = (
        server_context(cert, getattr(config, f"{proto}_tls_key") or None, f"--{proto}-tls")
        if cert
        else None
    )
    if proto == "pop3":  # Mailpit's POP3 speaks TLS from the first byte when it has a cert
        implicit = context is not None and not config.pop3_starttls
    else:
        implicit = context is not None and bool(getattr(config, f"{proto}_tls_implicit"))
    return Access(proto, addr, creds, context, implicit)


def enabled(config: Config, proto: str) -> bool:
    """Whether the POP3 or IMAP server is to run (no TLS context built, no file read unless
    POP3 is on its default address)."""
    return bool(getattr(config, f"{proto}_addr")) and not _off_by_default(config, proto)


def _off_by_default(config: Config, proto: str) -> bool:
    """POP3 on its default address without logins: off, as Mailpit's, and no error (an address
    given by hand without logins is one)."""
    return (
        proto == "pop3"
        and config.pop3_addr == POP3_DEFAULT_ADDR
        and credentials_for(config, proto) is None
    )


def decode_plain(answer: str) -> tuple[str, str] | None:
    """(user, password) from a SASL PLAIN response (RFC 4616), base64 `authzid NUL user NUL
    password`; None when it is not one or asks to act as another user."""
    try:
        decoded = base64.b64decode("" if answer == "=" else answer, validate=True)
        authzid, user, password = decoded.decode("utf-8").split("\0")
    except (binascii.Error, ValueError):
        return None
    if authzid and authzid != user:
        return None
    return user, password


def primary_box(
    user: str, existing: Collection[str], allowed: Collection[str] | None, auto: bool
) -> str | None:
    """The mailbox a login reads as POP3's maildrop and IMAP's INBOX; None when its access
    gives it none at all. Never a mailbox `allowed` leaves out (None: every mailbox).

    With --mailbox-auto, the mailbox named after the user (as SMTP AUTH as that user routes
    there) when it exists or the user is allowed it; else the only mailbox the user is allowed;
    else the default mailbox, or, for a user allowed several that does not include it, the
    first of them by name (IMAP shows the others as folders)."""
    if auto:
        try:
            own: str | None = clean_box_name(user)
        except ValueError:
            own = None
        if own is not None and own in (existing if allowed is None else allowed):
            return own
    if allowed is None or DEFAULT_BOX in allowed:
        return DEFAULT_BOX
    return min(allowed) if allowed else None
