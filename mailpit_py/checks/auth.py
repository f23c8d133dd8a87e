"""Sender authentication of one message: DKIM, SPF and DMARC together, and the RFC 8601
Authentication-Results header field a receiver would add."""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import ipaddress
import re
from typing import Any

from mailpit_py.checks import dkim_check, dmarc, spf
from mailpit_py.net.dns import Resolver


def peer_ip(peer: str) -> str:
    """`127.0.0.1:5000`, `[::1]:5000` or a bare address -> the address ("" if none)."""
    peer = peer.strip()
    m = re.fullmatch(r"\[([^\]]+)\](?::\d+)?|([^:]+):\d+|(.+)", peer)
    if not m:
        return ""
    value = m.group(1) or m.group(2) or m.group(3) or ""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return ""
    # A dual-stack listener sees an IPv4 client as ::ffff:a.b.c.d, which Python 3.11 writes
    # ::ffff:7f00:1: the client's address is the IPv4 one, for SPF and for the reader alike.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def is_internal(ip: str) -> bool:
    """Loopback, private, link-local or otherwise not a public sender address."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return True
    return not addr.is_global


def from_domains(values: list[str]) -> list[str]:
    """The domains of every address of the From field(s) given, in order, once each: DMARC
    checks them all (RFC 7489 6.6.1)."""
    domains = []
    for _, addr in email.utils.getaddresses([str(v) for v in values]):
        domain = addr.rpartition("@")[2].strip().rstrip(">").rstrip(".").lower()
        if "@" in addr and domain:
            domains.append(domain)
    return list(dict.fromkeys(domains))


def header_from_domains(raw: bytes) -> list[str]:
    """The RFC5322.From domains of a raw message, as DMARC uses them."""
    # As text (UTF-8 where it is, RFC 6532), so a non-ASCII domain stays itself.
    text = raw.decode("utf-8", "surrogateescape")
    headers = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(text)
    return from_domains([str(v) for v in headers.get_all("From") or []])


def _ar_value(value: str) -> str:
    """An RFC 8601 property value: a plain token, else a quoted string (RFC 5322 3.2.4) with
    its quotes and backslashes escaped and nothing unprintable (the value is the sender's)."""
    if re.fullmatch(r"[A-Za-z0-9.@_+\-]+", value or "x"):
        return value
    value = re.sub(r"[^\x20-\x7e]", "?", value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ar_comment(text: str) -> str:
    """An RFC 5322 comment: printable, no parentheses or backslashes to unbalance it."""
    return "(" + re.sub(r"[^\x20-\x7e]|[()\\]", "", text).strip() + ")"


def authentication_results(
    authserv_id: str,
    sigs: list[dkim_check.DkimSignature],
    spf_result: spf.SpfResult,
    mail_from: str,
    helo: str,
    dmarc_result: dmarc.DmarcResult,
) -> str:
    """The header field (name included, folded one method per line) a receiver would add."""
    parts: list[str] = []
    if not sigs:
        parts.append("dkim=none (no signatures)")
    for s in sigs:
        comment = f" {_ar_comment(s.reason.split(':')[0])}" if s.reason else ""
        props = f" header.d={_ar_value(s.domain)} header.s={_ar_value(s.selector)}"
        props += f" header.a={_ar_value(s.algorithm)}" if s.algorithm else ""
        parts.append(f"dkim={s.result}{comment}{props}")
    if mail_from:
        spf_prop = f"smtp.mailfrom={_ar_value(mail_from)}"
    else:
        spf_prop = f"smtp.helo={_ar_value(helo or spf_result.domain)}"
    spf_comment = " " + _ar_comment(
        f"{spf_result.domain}: {spf_result.client_ip} is {spf_result.result}"
    )
    parts.append(f"spf={spf_result.result}{spf_comment} {spf_prop}")
    pol = f" (p={dmarc_result.policy})" if dmarc_result.policy else ""
    parts.append(
        f"dmarc={dmarc_result.result}{pol} header.from={_ar_value(dmarc_result.from_domain)}"
    )
    return "Authentication-Results: " + authserv_id + ";\r\n\t" + ";\r\n\t".join(parts)


def check(
    raw: bytes,
    resolver: Resolver,
    *,
    mail_from: str,
    helo: str,
    peer: str,
    client_ip: str,
    authserv_id: str,
) -> dict[str, Any]:
    """DKIM for every signature, SPF for the envelope sender, DMARC for every domain of the
    From fields (`raw` may be the header section alone when the message is unsigned)."""
    real_ip = peer_ip(peer)
    ip = client_ip or real_ip or "127.0.0.1"
    simulated = bool(client_ip) or is_internal(ip)
    if client_ip and real_ip and not is_internal(real_ip) and client_ip != real_ip:
        note = f"SPF evaluated for {client_ip} (--checks-client-ip) instead of the peer {real_ip}"
    elif client_ip:
        note = (
            f"simulation: the message came from {real_ip or 'a local client'}; SPF is "
            f"evaluated as if it came from {client_ip} (--checks-client-ip)"
        )
    elif simulated:
        note = (
            f"simulation: the message came from {ip}, which no receiver would see; set "
            "--checks-client-ip to the address your real mail server sends from"
        )
    else:
        note = ""
    sigs = dkim_check.verify_all(raw, resolver)
    spf_result = spf.check_host(resolver, ip, mail_from, helo)
    # From the raw fields: the parsed ones have encoded words decoded, which may read as
    # addresses ("=?utf-8?q?boss=40bank.test?=" in a display name).
    domains = header_from_domains(raw)
    dmarc_result = dmarc.evaluate_all(
        resolver,
        domains,
        [s.domain for s in sigs if s.result == "pass"],
        spf_result.result,
        spf_result.domain,
    )
    return {
        "ClientIP": ip,
        "PeerIP": real_ip,
        "Simulated": simulated,
        "Note": note,
        "DKIM": [s.to_api() for s in sigs],
        "SPF": spf_result.to_api(),
        "DMARC": dmarc_result.to_api(),
        "AuthenticationResults": authentication_results(
            authserv_id, sigs, spf_result, mail_from, helo, dmarc_result
        ),
    }
