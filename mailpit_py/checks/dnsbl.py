"""DNS blocklists (RFC 5782): the client address in IP lists and the link domains of the body
in domain lists, each answer code explained."""

from __future__ import annotations

import ipaddress
from typing import Any

from mailpit_py.checks.dmarc import organizational_domain
from mailpit_py.checks.links import link_domains
from mailpit_py.net.dns import DnsError, Resolver

# Link domains looked up in each domain list: a newsletter may carry hundreds of links to a few
# domains, and a hostile mail tens of thousands to as many.
LINK_DOMAINS = 50
# Answer codes with a widely documented meaning (RFC 5782 2.3, 5; Spamhaus' published codes).
CODES = {
    "127.0.0.1": "not a listing: RFC 5782 5 keeps 127.0.0.1 unlisted; the list may be broken",
    "127.0.0.2": "listed (RFC 5782 test point; on Spamhaus ZEN: SBL, a known spam source)",
    "127.0.0.3": "listed: SBL CSS, snowshoe spam source",
    "127.0.0.4": "listed: XBL, an exploited or infected host",
    "127.0.0.5": "listed: XBL, an exploited or infected host",
    "127.0.0.6": "listed: XBL, an exploited or infected host",
    "127.0.0.7": "listed: XBL, an exploited or infected host",
    "127.0.0.9": "listed: DROP, a hijacked network",
    "127.0.0.10": "listed: PBL, an end-user address that should not send mail directly (ISP)",
    "127.0.0.11": "listed: PBL, an end-user address that should not send mail directly",
    "127.0.1.2": "listed domain: spam domain",
    "127.0.1.4": "listed domain: phishing domain",
    "127.0.1.5": "listed domain: malware domain",
    "127.0.1.6": "listed domain: botnet command and control domain",
    "127.0.1.102": "listed domain: abused legitimate spam domain",
    "127.0.1.103": "listed domain: abused spammed redirector",
    "127.0.1.104": "listed domain: abused legitimate phishing domain",
    "127.0.1.105": "listed domain: abused legitimate malware domain",
    "127.0.1.106": "listed domain: abused legitimate botnet C&C domain",
    "127.255.255.252": "query refused: typing error in the zone name",
    "127.255.255.254": "query refused: the list does not answer open or public resolvers",
    "127.255.255.255": "query refused: too many queries",
}


def explain(code: str) -> str:
    if code in CODES:
        return CODES[code]
    try:
        if ipaddress.ip_address(code) in ipaddress.ip_network("127.0.0.0/8"):
            return "listed (RFC 5782: any 127.0.0.0/8 answer means listed; see the list's codes)"
    except ValueError:
        pass
    return "unexpected answer outside 127.0.0.0/8: the list may be misconfigured"


def ip_query_name(ip: str, zone: str) -> str:
    """RFC 5782 2.1 (IPv4: reversed octets) and 2.4 (IPv6: reversed nibbles)."""
    addr = ipaddress.ip_address(ip)
    if addr.version == 4:
        labels = reversed(str(addr).split("."))
    else:
        labels = reversed(addr.exploded.replace(":", ""))
    return ".".join(labels) + "." + zone.strip(".")


def _lookup(resolver: Resolver, name: str, zone: str, kind: str, subject: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "Zone": zone,
        "Kind": kind,
        "Subject": subject,
        "Query": name,
        "Listed": False,
        "Codes": [],
        "Text": "",
        "Error": "",
    }
    try:
        codes = resolver.query(name, "A")
    except DnsError as exc:
        if exc.kind != "nxdomain":
            entry["Error"] = str(exc)
        return entry
    if not codes:
        return entry
    entry["Codes"] = [{"Code": c, "Meaning": explain(c)} for c in codes]
    entry["Listed"] = any(not c.startswith("127.255.255.") and c != "127.0.0.1" for c in codes)
    try:
        entry["Text"] = " ".join(resolver.txt(name))
    except DnsError:
        pass
    return entry


def check(
    resolver: Resolver, zones: tuple[str, ...], client_ip: str, urls: list[str], internal: bool
) -> dict[str, Any]:
    """Look the client address up in every zone, and each link's domain too (RFC 5782 2.2)."""
    results: list[dict[str, Any]] = []
    domains: dict[str, None] = {}  # ordered, and a repeat found at once
    for url_host in link_domains(urls):
        domains[organizational_domain(url_host)] = None
        if len(domains) == LINK_DOMAINS:
            break
    for zone in zones:
        if client_ip and not internal:
            results.append(_lookup(resolver, ip_query_name(client_ip, zone), zone, "ip", client_ip))
        for domain in domains:
            results.append(_lookup(resolver, f"{domain}.{zone.strip('.')}", zone, "domain", domain))
    note = ""
    if zones and (not client_ip or internal):
        note = (
            f"the client address {client_ip or '(none)'} is not public, so it was not looked up; "
            "set --checks-client-ip"
        )
    return {
        "Zones": list(zones),
        "ClientIP": client_ip,
        "Listed": sum(1 for r in results if r["Listed"]),
        "Results": results,
        "Note": note,
    }
