"""One delivery to an upstream SMTP server (or to a domain's MX hosts) with smtplib, and the
header changes a released message gets on the way."""

from __future__ import annotations

import email.charset
import email.errors
import email.policy
import email.utils
import ipaddress
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage

from mailpit_py.ids import new_id
from mailpit_py.net.dns import DnsError, Resolver, load_overrides
from mailpit_py.relay.config import Upstream

SMTP_TIMEOUT = 30.0  # seconds per command; a dead upstream must not stall the worker long
# The reply to the end of the data may take long: the upstream filters the message then. Giving
# up sooner would retry a copy it may well have taken, sending it twice, so this waits as RFC
# 5321 section 4.5.3.2.6 says (10 minutes); a hung upstream is mostly caught earlier.
DATA_END_TIMEOUT = 600.0


@dataclass
class Result:
    """What one attempt got: per recipient (code, reply); code 0 is a connection error."""

    server: str = ""
    replies: dict[str, tuple[int, str]] = field(default_factory=dict)

    def sent(self) -> list[str]:
        return [r for r, (code, _) in self.replies.items() if 200 <= code < 300]

    def temporary(self) -> list[str]:
        return [r for r, (code, _) in self.replies.items() if code == 0 or 400 <= code < 500]

    def permanent(self) -> list[str]:
        return [r for r, (code, _) in self.replies.items() if code >= 500]

    def summary(self) -> str:
        texts = {_reply_text(code, text) for code, text in self.replies.values()}
        if len(texts) == 1:
            return texts.pop()
        return "; ".join(f"<{r}> {_reply_text(c, t)}" for r, (c, t) in self.replies.items())

    def first_refusal(self) -> tuple[int, str] | None:
        for code, text in self.replies.values():
            if not 200 <= code < 300:
                return code, text
        return None


def _reply_text(code: int, text: str) -> str:
    return f"{code} {text}" if code else text


class _Refused(Exception):
    """The session ended with a reply that applies to every recipient."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


# -- header changes ------------------------------------------------------------------------------

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def split_message(raw: bytes) -> tuple[list[bytes], bytes]:
    """(header fields, each with its folded continuation lines; the rest from the blank line)."""
    m = _HEADER_END.search(raw)
    head, rest = (raw[: m.start()], raw[m.start() :]) if m else (raw, b"")
    fields: list[bytes] = []
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        elif line:
            fields.append(line)
    return fields, rest


def _name(header: bytes) -> str:
    return header.split(b":", 1)[0].strip().decode("ascii", "replace").lower()


def _value(header: bytes) -> str:
    text = header.split(b":", 1)[1] if b":" in header else b""
    return re.sub(r"\r\n[ \t]", " ", text.decode("utf-8", "replace")).strip()


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_BARE_CR = re.compile(rb"\r(?!\n)")


def one_line(text: str) -> str:
    """`text` fit for a header value: CR, LF and other control characters become a space, so
    nothing taken from a message (a decoded display name, an old value) can end the line and
    start a field of its own, such as a Bcc that adds recipients."""
    return " ".join(_CONTROL.sub(" ", text).split())


def _field(name: str, value: str) -> bytes:
    return f"{name}: {one_line(value)}".encode()


def _from_field(display_name: str, address: str) -> bytes:
    """From: with the kept name quoted or RFC 2047-encoded (and folded) by the email package;
    the name is made one line first, whatever its encoded-words decoded to."""
    name = one_line(display_name)
    policy = email.policy.SMTP if address.isascii() else email.policy.SMTPUTF8
    try:
        msg = EmailMessage(policy=policy)
        msg["From"] = Address(display_name=name, addr_spec=address)
        return policy.fold_binary("From", msg["From"]).rstrip(b"\r\n")
    except (ValueError, IndexError, email.errors.MessageError):
        # An address the header registry will not take (a non-ASCII local part; override-from
        # is checked loosely, as in Mailpit): the one-line name quoted or encoded by hand.
        if not name:
            return _field("From", address)
        if name.isascii():
            shown = '"' + email.utils.quote(name) + '"'
        else:
            shown = email.charset.Charset("utf-8").header_encode(name)
        return _field("From", f"{shown} <{address}>")


def rewrite(raw: bytes, up: Upstream, *, release: bool, strip_bcc: bool = False) -> bytes:
    """The message as sent: a release loses Bcc and gets a fresh Date, and a fresh Message-ID
    unless preserve-message-ids (as Mailpit); return-path and override-from apply to releases
    and automatic copies; `strip_bcc` drops Bcc alone. Every field written here is one line
    (or folded by the email package)."""
    fields, rest = split_message(raw)
    drop: set[str] = set()
    add: list[bytes] = []
    if release or strip_bcc:
        drop.add("bcc")  # a Bcc line would tell every recipient who else got a copy
    if release:
        drop.add("date")
        add.append(_field("Date", email.utils.formatdate(localtime=True)))
        if not up.preserve_message_ids:
            # Gmail and others hide a second message with a Message-ID they have seen.
            drop.add("message-id")
            add.append(_field("Message-ID", f"<{new_id()}@mailpit-py>"))
    if up.return_path:
        drop.add("return-path")
        add.insert(0, _field("Return-Path", f"<{up.return_path}>"))
    if up.override_from:
        original = next((f for f in fields if _name(f) == "from"), None)
        name = ""
        if original is not None:
            value = one_line(_value(original))
            shown, address = email.utils.parseaddr(value)
            # The original address, as Mailpit writes it; the whole value when it has none.
            add.append(_field("X-Original-From", address if "@" in address else value))
            name = str(make_header(decode_header(shown or "")))
        drop.add("from")
        add.append(_from_field(name, up.override_from))
    kept = [f for f in fields if _name(f) not in drop]
    return b"\r\n".join(add + kept) + (rest if rest else b"\r\n\r\n")


def automatic_copy(raw: bytes, up: Upstream, kind: str) -> bytes:
    """What an automatic copy sends: a forward (a full copy for the tester) gets return-path
    and override-from; so does an auto-relayed one when either is set (Mailpit overrides its
    From too, and an upstream that only sends from a verified address would refuse the
    envelope and From disagreeing). An auto-relayed copy also loses its Bcc field, as the
    mail server the app submits to in production drops it (Postfix's cleanup does): each of
    its recipients would otherwise read who else got it. Else it goes unchanged."""
    relay = kind == "relay"
    bcc = relay and any(_name(f) == "bcc" for f in split_message(raw)[0])
    if kind == "forward" or up.return_path or up.override_from or bcc:
        return rewrite(raw, up, release=False, strip_bcc=relay)
    return raw


def envelope_sender(up: Upstream, original: str) -> str:
    """return-path wins, then override-from (the From and the sender move together)."""
    return up.return_path or up.override_from or original


# -- delivery ------------------------------------------------------------------------------------


def crlf(data: bytes) -> bytes:
    """SMTP lines end in CRLF and CR and LF never stand alone (RFC 5321 section 2.3.8), but
    stored mail may have either bare. A bare LF becomes CRLF. A bare CR becomes a space in the
    header section (a receiver that ends a line there would read what follows as a field of
    its own, such as a Bcc) and CRLF in the body (so dot-stuffing sees a line that starts
    there: an upstream that took CR . CR as the end of the data could not be fed a second
    message)."""
    data = re.sub(rb"(?<!\r)\n", b"\r\n", data)
    if b"\r" not in data.replace(b"\r\n", b""):
        return data
    end = data.find(b"\r\n\r\n")
    head, body = (data[:end], data[end:]) if end >= 0 else (data, b"")
    return _BARE_CR.sub(b" ", head) + _BARE_CR.sub(b"\r\n", body)


def send(up: Upstream, mail_from: str, rcpts: Sequence[str], data: bytes, helo: str = "") -> Result:
    """Deliver through the configured upstream host, greeting it as `helo` (--smtp-hostname)."""
    result = Result(server=up.server)
    _session(up, up.host, up.port, mail_from, rcpts, crlf(data), result, verify=True, helo=helo)
    return result


def _tls_context(up: Upstream, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if up.allow_insecure or not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _session(
    up: Upstream,
    host: str,
    port: int,
    mail_from: str,
    rcpts: Sequence[str],
    data: bytes,
    result: Result,
    *,
    verify: bool,
    opportunistic: bool = False,
    helo: str = "",
) -> None:
    """One SMTP session; fills result.replies. Connection failures raise OSError. The EHLO
    name is `helo` (this host's name, as an MTA greets), smtplib's guess when empty."""
    client: smtplib.SMTP
    name = helo or None
    if up.tls:
        client = smtplib.SMTP_SSL(
            host, port, local_hostname=name, timeout=SMTP_TIMEOUT, context=_tls_context(up, verify)
        )
    else:
        client = smtplib.SMTP(host, port, local_hostname=name, timeout=SMTP_TIMEOUT)
    try:
        try:
            where = f"{host}:{port}"
            _converse(
                client, up, mail_from, rcpts, data, result, verify, opportunistic, where,
                _loopback(host),
            )  # fmt: skip
        except _Refused as exc:
            for r in rcpts:
                if r not in result.replies or 200 <= result.replies[r][0] < 300:
                    result.replies[r] = (exc.code, exc.text)
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            pass
    finally:
        client.close()


def _converse(
    client: smtplib.SMTP,
    up: Upstream,
    mail_from: str,
    rcpts: Sequence[str],
    data: bytes,
    result: Result,
    verify: bool,
    opportunistic: bool,
    where: str,
    loopback: bool,
) -> None:
    try:
        code, msg = client.ehlo()
        if not 200 <= code < 300:
            code, msg = client.helo()
            if not 200 <= code < 300:
                raise _Refused(code, msg.decode("utf-8", "replace"))
        encrypted = up.tls
        if up.starttls or (opportunistic and client.has_extn("starttls")):
            code, msg = client.starttls(context=_tls_context(up, verify))
            client.ehlo()
            encrypted = True
        if up.auth in ("plain", "login") and not (encrypted or loopback):
            # The password would cross the network as it is (Mailpit's PLAIN refuses this too).
            raise _Refused(
                538,
                f"5.7.11 not sent: AUTH {up.auth.upper()} would send the password unencrypted "
                f"to {where}; set starttls or tls",
            )
        if up.auth != "none":
            client.user = up.username
            client.password = up.secret if up.auth == "cram-md5" else up.password
            # One call per method: smtplib types CRAM-MD5's handler apart from the other two.
            if up.auth == "plain":
                client.auth("PLAIN", client.auth_plain)
            elif up.auth == "login":
                client.auth("LOGIN", client.auth_login)
            else:
                client.auth("CRAM-MD5", client.auth_cram_md5)
        utf8 = client.has_extn("smtputf8")
        sender = wire_address(mail_from, utf8)
        if sender is None:
            raise _Refused(553, _needs_smtputf8(mail_from, where))
        wired = {r: wire_address(r, utf8) for r in rcpts}
        options = []
        wide = not (sender + "".join(w or "" for w in wired.values())).isascii()
        # UTF-8 header fields (RFC 6532) ask for SMTPUTF8 too; an upstream without it still
        # gets them as they are (8-bit text, as Mailpit sends them), never re-encoded.
        if utf8 and (wide or not data.split(b"\r\n\r\n", 1)[0].isascii()):
            options.append("SMTPUTF8")
        if not data.isascii() and client.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        code, msg = client.mail(sender, options)
        if code != 250:
            raise _Refused(code, msg.decode("utf-8", "replace"))
        accepted = []
        for r in rcpts:
            address = wired[r]
            if address is None:
                result.replies[r] = (553, _needs_smtputf8(r, where))
                continue
            code, msg = client.rcpt(address)
            result.replies[r] = (code, msg.decode("utf-8", "replace"))
            if code in (250, 251):
                accepted.append(r)
        if not accepted:
            client.rset()
            return
        if client.sock is not None:
            client.sock.settimeout(DATA_END_TIMEOUT)
        code, msg = client.data(data)
        for r in accepted:
            result.replies[r] = (code, msg.decode("utf-8", "replace"))
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error
        raise _Refused(
            exc.smtp_code, text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise _Refused(0, f"the server does not support it: {exc}") from None


def _loopback(host: str) -> bool:
    """Whether `host` is this machine, where a password sent in the clear stays local."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def wire_address(address: str, smtputf8: bool) -> str | None:
    """`address` as it can go on the wire: as is when ASCII or when the server offers SMTPUTF8;
    an internationalized domain with an ASCII local part as its A-label (IDNA, the same domain);
    None when only SMTPUTF8 could carry it (a non-ASCII local part, RFC 6531), which is never
    sent mangled: the recipient is refused instead."""
    if address.isascii() or smtputf8:
        return address
    local, at, domain = address.rpartition("@")
    if at and local.isascii():
        try:
            return f"{local}@{domain.encode('idna').decode('ascii')}"
        except UnicodeError:
            return None
    return None


def _needs_smtputf8(address: str, where: str) -> str:
    return f"5.6.7 not sent: <{address}> needs SMTPUTF8 (RFC 6531), which {where} does not offer"


# -- MX delivery (RFC 5321 section 5) --------------------------------------------------------


class DnsFailure(Exception):
    """No host to deliver to; `temporary` says whether a retry might help."""

    def __init__(self, text: str, temporary: bool) -> None:
        super().__init__(text)
        self.temporary = temporary


def make_resolver(nameserver: tuple[str, int] | None, override_file: str | None) -> Resolver:
    """The resolver the checks use (net/dns.py), so --dns-override answers MX and A/AAAA
    lookups first (an MX on loopback for a test), then `nameserver` or the system's."""
    return Resolver(load_overrides(override_file), timeout=5.0, nameserver=nameserver)


def mx_hosts(domain: str, resolver: Resolver) -> list[str]:
    """Exchange names by preference; the domain itself when it has no MX (implicit MX)."""
    try:
        values = resolver.query(domain, "MX")
    except DnsError as exc:
        if exc.kind == "nxdomain":
            raise DnsFailure(f"domain {domain} does not exist", temporary=False) from None
        raise DnsFailure(f"MX lookup for {domain} failed: {exc}", temporary=True) from None
    if not values:
        return [domain]  # RFC 5321 section 5.1: no MX, so the A/AAAA record is the host
    records: list[tuple[int, str]] = []
    for value in values:
        pref, _, host = value.partition(" ")
        try:
            records.append((int(pref), host.strip().rstrip(".")))
        except ValueError:
            continue
    records.sort(key=lambda r: r[0])
    names = [host for _, host in records]
    if not names or (len(names) == 1 and names[0] == ""):
        raise DnsFailure(f"{domain} accepts no mail (null MX, RFC 7505)", temporary=False)
    return [n for n in names if n]


def host_addresses(host: str, resolver: Resolver) -> list[str]:
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    try:
        return resolver.addresses(host)
    except DnsError:
        return []


def send_mx(
    up: Upstream,
    mail_from: str,
    rcpts: Sequence[str],
    data: bytes,
    resolver: Resolver,
    helo: str = "",
) -> Result:
    """Deliver to each recipient domain's MX hosts in preference order, falling to the next host
    only when one cannot be reached (RFC 5321 section 5.1). Result.server names every host
    tried, a failed one with its error."""
    result = Result()
    by_domain: dict[str, list[str]] = {}
    for r in rcpts:
        by_domain.setdefault(r.rpartition("@")[2].lower(), []).append(r)
    servers = []
    data = crlf(data)
    for domain, group in by_domain.items():
        try:
            hosts = mx_hosts(domain, resolver)
        except DnsFailure as exc:
            for r in group:
                result.replies[r] = (0 if exc.temporary else 550, str(exc))
            servers.append(f"MX {domain}: none")
            continue
        last_error = f"no address for the MX hosts of {domain} ({', '.join(hosts)})"
        delivered = False
        for host in hosts:
            addresses = host_addresses(host, resolver)
            if not addresses:
                servers.append(f"{host}: no A/AAAA address (next host)")
            for addr in addresses:
                try:
                    # MX hosts use opportunistic STARTTLS without verification, as MTAs do.
                    _session(
                        up,
                        addr,
                        up.port,
                        mail_from,
                        group,
                        data,
                        result,
                        verify=False,
                        opportunistic=True,
                        helo=helo,
                    )
                except OSError as exc:
                    last_error = f"{host} [{addr}]:{up.port}: {_os_error(exc)}"
                    servers.append(f"{last_error} (next host)")
                    continue
                servers.append(f"{host} [{addr}]:{up.port}")
                delivered = True
                break
            if delivered:
                break
        if not delivered:
            servers.append(f"MX {domain}: unreachable")
            for r in group:
                result.replies[r] = (0, last_error)
    result.server = ", ".join(servers)
    return result


def _os_error(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def connection_error(exc: BaseException) -> str:
    return _os_error(exc)
