"""DNS lookups (the checks, MX routing of the relay, reverse DNS of SMTP clients): an override
file answers first, then dnspython with short timeouts, and every answer (negative ones too) is
cached for a while."""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import dns.exception
import dns.resolver
import dns.reversename

TYPES = ("A", "AAAA", "TXT", "MX", "CNAME", "PTR", "NS")
CACHE_MAX_TTL = 300.0  # seconds: long enough for a burst of messages, short for a developer
NEGATIVE_TTL = 60.0
FAILURE_TTL = 10.0  # timeouts and server failures


class DnsError(Exception):
    """A lookup that did not give an answer: `kind` is nxdomain, temperror or permerror."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Failure(NamedTuple):
    """A cached failed lookup: what to raise, not the exception that was raised. Raising one
    exception instance again appends the raiser's frames to its __traceback__, so a cached
    instance grew with every message and kept every checked message's frames alive."""

    kind: str
    message: str


class OverrideError(ValueError):
    """A line of a --dns-override file that cannot be read; the message says which."""


def _txt_value(text: str) -> str:
    """`"v=spf1 " "-all"` -> `v=spf1 -all` (a TXT record's strings are joined, RFC 7208 3.3);
    an unquoted value is taken as it is."""
    text = text.strip()
    if not text.startswith('"'):
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == '"':
            j, buf = i + 1, []
            while j < len(text) and text[j] != '"':
                if text[j] == "\\" and j + 1 < len(text):
                    j += 1
                buf.append(text[j])
                j += 1
            out.append("".join(buf))
            i = j + 1
        else:
            i += 1
    return "".join(out)


def parse_overrides(text: str, source: str = "override") -> dict[tuple[str, str], list[str]]:
    """`name TYPE value` per line (`name<TAB>value` means TXT, as in the corpus key file);
    `#` starts a comment. Returns {(name, TYPE): [values]} with names lower-case, no final dot."""
    records: dict[tuple[str, str], list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split(None, 2)
        if len(parts) < 2:
            raise OverrideError(
                f"{source} line {number}: {stripped!r} needs a name, a type and a value, "
                'e.g. `example.com TXT "v=spf1 -all"`'
            )
        name = parts[0].rstrip(".").lower()
        if parts[1].upper() in TYPES and len(parts) == 3:
            rtype, value = parts[1].upper(), parts[2]
        else:
            rtype, value = "TXT", stripped[len(parts[0]) :]
        value = _txt_value(value) if rtype == "TXT" else value.strip().rstrip(".")
        if rtype in ("A", "AAAA"):
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise OverrideError(
                    f"{source} line {number}: {value!r} is not an IP address for {rtype}"
                ) from None
        records.setdefault((name, rtype), []).append(value)
    return records


def load_overrides(path: str | None) -> dict[tuple[str, str], list[str]]:
    if not path:
        return {}
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise OverrideError(f"--dns-override: cannot read {path!r}: {exc.strerror}") from None
    return parse_overrides(text, f"--dns-override {path}")


@dataclass
class Resolver:
    """Lookups for the checks; thread-safe. `offline` answers from the overrides alone."""

    overrides: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    timeout: float = 2.0
    offline: bool = False
    # (host, port) of the DNS server to ask instead of the system's (tests point it at a stub).
    nameserver: tuple[str, int] | None = None
    lookups: int = 0  # network lookups made (tests and metrics look at it)
    _cache: dict[tuple[str, str], tuple[float, list[str] | _Failure]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._names = {name for name, _ in self.overrides}
        self._dns: dns.resolver.Resolver | None = None
        if self.nameserver is not None:
            self._dns = dns.resolver.Resolver(configure=False)
            self._dns.nameservers = [self.nameserver[0]]
            self._dns.port = self.nameserver[1]

    def replace_overrides(self, overrides: dict[tuple[str, str], list[str]]) -> None:
        """New override records (the file changed); cached network answers are dropped too."""
        self.overrides = overrides
        self._names = {name for name, _ in overrides}
        with self._lock:
            self._cache.clear()

    def query(self, name: str, rtype: str) -> list[str]:
        """Record values as text (MX: `pref host`); [] when the name has no such records.
        Raises DnsError("nxdomain") for a name that does not exist, "temperror" for a timeout."""
        name = name.rstrip(".").lower()
        rtype = rtype.upper()
        if (name, rtype) in self.overrides:
            return list(self.overrides[(name, rtype)])
        if name in self._names:
            return []  # the override file speaks for this name: no other types
        if self.offline:
            raise DnsError("nxdomain", f"{name} {rtype}: not in the DNS override file (offline)")
        key = (name, rtype)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit and hit[0] > now:
            if isinstance(hit[1], _Failure):
                raise DnsError(hit[1].kind, hit[1].message)
            return list(hit[1])
        try:
            values, ttl = self._lookup(name, rtype)
        except DnsError as exc:
            # A failing resolver is remembered briefly too, so that a burst of messages during
            # an outage does not wait out the timeout once per message.
            ttl = NEGATIVE_TTL if exc.kind == "nxdomain" else FAILURE_TTL
            with self._lock:
                self._cache[key] = (now + ttl, _Failure(exc.kind, str(exc)))
            raise
        with self._lock:
            self._cache[key] = (now + min(ttl, CACHE_MAX_TTL), values)
        return list(values)

    def _lookup(self, name: str, rtype: str) -> tuple[list[str], float]:
        self.lookups += 1
        try:
            resolve = self._dns.resolve if self._dns is not None else dns.resolver.resolve
            answer = resolve(
                name + ".", rtype, lifetime=self.timeout, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN:
            raise DnsError("nxdomain", f"{name} does not exist") from None
        except dns.resolver.NoResolverConfiguration:
            raise DnsError("temperror", "this machine has no DNS resolver configured") from None
        except dns.exception.Timeout:
            raise DnsError("temperror", f"{name} {rtype}: DNS timed out") from None
        except dns.resolver.NoNameservers as exc:
            raise DnsError(
                "temperror", f"{name} {rtype}: no name server answered ({exc})"
            ) from None
        except dns.exception.DNSException as exc:
            raise DnsError("permerror", f"{name} {rtype}: {exc}") from None
        if answer.rrset is None:
            return [], NEGATIVE_TTL
        values = []
        for rdata in answer.rrset:
            if rtype == "TXT":
                values.append(b"".join(rdata.strings).decode("utf-8", "replace"))
            elif rtype == "MX":
                values.append(f"{rdata.preference} {str(rdata.exchange).rstrip('.')}")
            else:
                values.append(str(rdata).rstrip("."))
        return values, float(answer.rrset.ttl)

    def txt(self, name: str) -> list[str]:
        return self.query(name, "TXT")

    def addresses(self, name: str) -> list[str]:
        """A and AAAA records of a name ([] when it has none or does not exist)."""
        out: list[str] = []
        for rtype in ("A", "AAAA"):
            try:
                out += self.query(name, rtype)
            except DnsError as exc:
                if exc.kind != "nxdomain":
                    raise
        return out


def reverse_name(ip: str) -> str:
    """1.2.3.4 -> 4.3.2.1.in-addr.arpa (without the final dot)."""
    return dns.reversename.from_address(ip).to_text().rstrip(".")
