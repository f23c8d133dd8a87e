"""SPF (RFC 7208): check_host() for a client address and a sender domain, over the checks'
resolver. pyspf was considered, but it has had no release since 2020 and brings its own DNS
layer; the part that matters here is small enough to keep in one readable module."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from mailpit_py.net.dns import DnsError, Resolver, reverse_name

MAX_LOOKUPS = 10  # RFC 7208 4.6.4: terms that cause DNS queries
MAX_VOID = 2  # RFC 7208 4.6.4: lookups answering NXDOMAIN or no records
MAX_MX_PTR = 10  # RFC 7208 4.6.4: names an mx or ptr term may look at

QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


class _Stop(Exception):
    """Evaluation ends with this result (temperror or permerror)."""

    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


@dataclass
class SpfResult:
    """The outcome of check_host(), with the path that led to it."""

    result: str  # none, neutral, pass, fail, softfail, temperror, permerror
    domain: str
    client_ip: str
    reason: str
    record: str = ""
    mechanism: str = ""
    lookups: int = 0
    trace: list[str] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        return {
            "Result": self.result,
            "Domain": self.domain,
            "ClientIP": self.client_ip,
            "Record": self.record,
            "Mechanism": self.mechanism,
            "Reason": self.reason,
            "Lookups": self.lookups,
            "Trace": self.trace,
        }


class _Evaluator:
    def __init__(self, resolver: Resolver, ip: str, sender: str, helo: str) -> None:
        self.resolver = resolver
        self.ip = ipaddress.ip_address(ip)
        if isinstance(self.ip, ipaddress.IPv6Address) and self.ip.ipv4_mapped:
            self.ip = self.ip.ipv4_mapped
        self.sender = sender
        self.helo = helo
        self.lookups = 0
        self.void = 0
        self.trace: list[str] = []

    # -- DNS with the RFC's limits ---------------------------------------------------------

    def count(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _Stop("permerror", f"more than {MAX_LOOKUPS} DNS-querying terms (RFC 7208 4.6.4)")

    def query(self, name: str, rtype: str) -> list[str]:
        try:
            values = self.resolver.query(name, rtype)
        except DnsError as exc:
            if exc.kind != "nxdomain":
                raise _Stop("temperror", str(exc)) from None
            values = []
        if not values:
            self.void += 1
            if self.void > MAX_VOID:
                raise _Stop("permerror", f"more than {MAX_VOID} void lookups (RFC 7208 4.6.4)")
        return values

    def addresses(self, name: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        rtype = "A" if self.ip.version == 4 else "AAAA"
        out = []
        for value in self.query(name, rtype):
            try:
                out.append(ipaddress.ip_address(value))
            except ValueError:
                continue
        return out

    # -- record and terms ------------------------------------------------------------------

    def record(self, domain: str) -> str | None:
        try:
            txts = self.resolver.txt(domain)
        except DnsError as exc:
            if exc.kind == "nxdomain":
                return None
            raise _Stop("temperror", str(exc)) from None
        spf = [t for t in txts if re.match(r"v=spf1(\s|$)", t, re.I)]
        if len(spf) > 1:
            raise _Stop("permerror", f"{domain} has {len(spf)} SPF records (RFC 7208 4.5)")
        return spf[0] if spf else None

    def check_host(self, domain: str, depth: int = 0) -> tuple[str, str, str, str]:
        """(result, mechanism, record, reason) for this domain."""
        if depth > 20:
            raise _Stop("permerror", "include/redirect loop")
        record = self.record(domain)
        if record is None:
            return "none", "", "", f"{domain} publishes no SPF record"
        self.trace.append(f"{domain}: {record}")
        # RFC 7208 4.6: a syntax error anywhere makes the record a permerror, before any term
        # is evaluated (a matching term ahead of it does not save it).
        mechanisms, redirect = _parse_record(record, domain)
        for term, mech in mechanisms:
            qualifier = QUALIFIERS[term[0] if term[0] in QUALIFIERS else "+"]
            if self.matches(term, mech, domain, depth):
                return qualifier, term, record, f"{term} in {domain} matched {self.ip}"
        if redirect is not None:
            self.count()
            target = self.expand(redirect, domain)
            self.trace.append(f"redirect={target}")
            result, mech, rec, reason = self.check_host(target, depth + 1)
            if result == "none":
                raise _Stop("permerror", f"redirect to {target}, which has no SPF record")
            return result, mech, rec, reason
        return "neutral", "", record, f"no term of {domain}'s record matched {self.ip}"

    def matches(self, term: str, mech: str, domain: str, depth: int) -> bool:
        arg = re.sub(r"^[+\-~?]?[a-z0-9]+", "", term, flags=re.I)
        # Dual CIDR lengths belong to a and mx only; ip6 networks carry their own prefix.
        if mech in ("a", "mx"):
            value, cidr4, cidr6 = _split_cidr(arg, term)
        else:
            value, cidr4, cidr6 = arg.lstrip(":"), 32, 128
        if mech == "all":
            return True
        if mech in ("ip4", "ip6"):
            net = ipaddress.ip_network(arg.lstrip(":"), strict=False)  # checked in parsing
            return self.ip.version == net.version and self.ip in net
        if mech == "include":
            self.count()
            target = self.expand(value, domain)
            result, _, _, reason = self.check_host(target, depth + 1)
            if result in ("temperror", "permerror"):
                raise _Stop(result, reason)
            if result == "none":
                raise _Stop("permerror", f"include:{target} has no SPF record")
            return result == "pass"
        if mech == "a":
            self.count()
            target = self.expand(value, domain) if value else domain
            return any(self.in_cidr(a, cidr4, cidr6) for a in self.addresses(target))
        if mech == "mx":
            self.count()
            target = self.expand(value, domain) if value else domain
            hosts = [mx.split()[-1] for mx in self.query(target, "MX")]
            if len(hosts) > MAX_MX_PTR:
                raise _Stop("permerror", f"{target} has more than {MAX_MX_PTR} MX records")
            return any(
                self.in_cidr(a, cidr4, cidr6) for host in hosts for a in self.addresses(host)
            )
        if mech == "exists":
            self.count()
            return bool(self.query(self.expand(value, domain), "A"))
        if mech == "ptr":
            # RFC 7208 5.5: SHOULD NOT be used; evaluated for completeness.
            self.count()
            target = self.expand(value, domain) if value else domain
            # RFC 7208 5.5: a DNS error on the PTR lookup is no match, one on an A lookup
            # skips that name: never a temperror.
            try:
                names = self.query(reverse_name(str(self.ip)), "PTR")[:MAX_MX_PTR]
            except _Stop as stop:
                if stop.result != "temperror":
                    raise
                return False
            target = target.lower()
            for name in names:
                name = name.rstrip(".").lower()
                if name != target and not name.endswith("." + target):
                    continue
                try:
                    if self.ip in self.addresses(name):
                        return True
                except _Stop as stop:
                    if stop.result != "temperror":
                        raise
            return False
        raise _Stop("permerror", f"unknown mechanism {term!r} in {domain}")

    def in_cidr(self, addr: Any, cidr4: int, cidr6: int) -> bool:
        if addr.version != self.ip.version:
            return False
        bits = cidr4 if addr.version == 4 else cidr6
        return self.ip in ipaddress.ip_network(f"{addr}/{bits}", strict=False)

    def expand(self, spec: str, domain: str) -> str:
        """Macro expansion (RFC 7208 section 7) for domain-spec arguments."""
        local, _, sender_domain = self.sender.rpartition("@")
        letters = {
            "s": self.sender,
            "l": local or "postmaster",
            "o": sender_domain,
            "d": domain,
            "i": ".".join(self.ip.exploded.replace(":", ""))
            if self.ip.version == 6
            else str(self.ip),
            "v": "in-addr" if self.ip.version == 4 else "ip6",
            "h": self.helo or domain,
            "p": "unknown",
        }

        def one(m: re.Match[str]) -> str:
            if m.group(0) == "%%":
                return "%"
            if m.group(0) == "%_":
                return " "
            if m.group(0) == "%-":
                return "%20"
            letter, digits, reverse, delims = m.group(1), m.group(2), m.group(3), m.group(4)
            if letter.lower() not in letters:
                raise _Stop("permerror", f"unknown macro %{{{letter}}}")
            parts = re.split("[" + re.escape(delims or ".") + "]", letters[letter.lower()])
            if reverse:
                parts.reverse()
            if digits:
                parts = parts[-int(digits) :]
            value = ".".join(parts)
            # RFC 7208 7.3: an uppercase macro letter is URL-escaped after expansion.
            return urllib.parse.quote(value, safe="-._~") if letter.isupper() else value

        _check_macros(spec)
        out = _MACRO.sub(one, spec).rstrip(".")
        # RFC 7208 7.3: past 253 characters, whole labels go from the left until it fits.
        while len(out) > 253 and "." in out:
            out = out.split(".", 1)[1]
        return out


# A macro (RFC 7208 7.1): %{letter digits r delimiters}, or %% %_ %-.
_MACRO = re.compile(r"%\{([a-zA-Z])(\d*)([rR]?)([.\-+,/_=]*)\}|%%|%_|%-")


def _check_macros(spec: str) -> None:
    """A permerror for a `%` that starts no macro, or a zero digit transformer (RFC 7208 7.1:
    it MUST be nonzero)."""
    for m in re.finditer(r"%(?:\{[^}]*\}|.?)", spec):
        macro = _MACRO.fullmatch(m.group(0))
        if macro is None:
            raise _Stop("permerror", f"bad macro {m.group(0)!r} in {spec!r} (RFC 7208 7.1)")
        if macro.group(2) and int(macro.group(2)) == 0:
            raise _Stop("permerror", f"zero digit transformer in {m.group(0)!r} (RFC 7208 7.1)")


_MECHANISM = re.compile(
    r"(?P<q>[+\-~?]?)(?:"
    r"(?P<all>all)"
    r"|(?P<include>include|exists):(?P<spec>\S+)"
    r"|(?P<am>a|mx)(?::(?P<amspec>(?:%\{[^}]*\}|[^/\s])+))?(?P<cidr>/\d+)?(?P<cidr6>//\d+)?"
    r"|(?P<ptr>ptr)(?::(?P<ptrspec>\S+))?"
    r"|(?P<ip>ip4|ip6):(?P<net>[^\s]+)"
    r")",
    re.IGNORECASE,
)


def _parse_record(record: str, domain: str) -> tuple[list[tuple[str, str]], str | None]:
    """The record's mechanisms as (term, lower-case name) and its redirect target; a permerror
    for any term that is not RFC 7208 12's syntax or a modifier given twice (6)."""
    mechanisms: list[tuple[str, str]] = []
    modifiers: dict[str, str] = {}
    for term in record.split()[1:]:
        name, eq, value = term.partition("=")
        if eq and re.fullmatch(r"[a-z][a-z0-9_.\-]*", name, re.I):
            name = name.lower()
            if name in modifiers and name in ("redirect", "exp"):
                raise _Stop("permerror", f"{name}= given twice in {domain} (RFC 7208 6)")
            _check_macros(value)
            modifiers[name] = value
            continue
        m = _MECHANISM.fullmatch(term)
        if m is None:
            raise _Stop("permerror", f"malformed term {term!r} in {domain} (RFC 7208 4.6)")
        for spec in (m.group("spec"), m.group("amspec"), m.group("ptrspec")):
            if spec is not None:
                _check_macros(spec)
        if m.group("ip"):
            try:
                net = ipaddress.ip_network(m.group("net"), strict=False)
            except ValueError:
                raise _Stop("permerror", f"bad network in {term!r} in {domain}") from None
            if f"ip{net.version}" != m.group("ip").lower():
                raise _Stop("permerror", f"{term!r} in {domain}: not an {m.group('ip')} network")
        if m.group("am"):
            _split_cidr(term[len(m.group("q")) + len(m.group("am")) :], term)
        mech = next(g for g in ("all", "include", "am", "ptr", "ip") if m.group(g))
        mechanisms.append((term, m.group(mech).lower()))
    return mechanisms, modifiers.get("redirect")


def _split_cidr(arg: str, term: str) -> tuple[str, int, int]:
    """`:example.com/24//64` -> ("example.com", 24, 64)."""
    m = re.fullmatch(r":?([^/]*)(?:/(\d+))?(?://(\d+))?", arg)
    if not m:
        return arg.lstrip(":"), 32, 128
    cidr4 = int(m.group(2)) if m.group(2) else 32
    cidr6 = int(m.group(3)) if m.group(3) else 128
    if cidr4 > 32 or cidr6 > 128:
        raise _Stop("permerror", f"bad prefix length in {term!r}")
    return m.group(1), cidr4, cidr6


_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{1,63}")


def check_host(resolver: Resolver, ip: str, sender: str, helo: str = "") -> SpfResult:
    """RFC 7208 check_host() for MAIL FROM `sender` (or the HELO name when it is empty)."""
    sender = sender or (f"postmaster@{helo}" if helo else "")
    domain = sender.rpartition("@")[2].rstrip(".").lower()
    if not domain:
        return SpfResult("none", "", ip, "no sender domain (null sender and no HELO name)")
    if not _DOMAIN.fullmatch(domain):
        # RFC 7208 4.3: a malformed or single-label name (an address literal HELO) is "none".
        return SpfResult("none", domain, ip, f"{domain!r} is not a multi-label domain name")
    try:
        ev = _Evaluator(resolver, ip, sender, helo)
    except ValueError:
        return SpfResult("permerror", domain, ip, f"{ip!r} is not an IP address")
    try:
        result, mech, record, reason = ev.check_host(domain)
    except _Stop as stop:
        return SpfResult(stop.result, domain, ip, stop.reason, lookups=ev.lookups, trace=ev.trace)
    return SpfResult(result, domain, ip, reason, record, mech, ev.lookups, ev.trace)
