"""SMTP access policy: client allow/deny lists, connection and rate limits, recipient rules,
relay access, greylisting and reverse DNS. Pure bookkeeping with an injectable clock."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import re
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import Config
from mailpit_py.config.values import parse_networks
from mailpit_py.net.dns import load_overrides, reverse_name

RATE_WINDOW = 60.0  # seconds: --smtp-rate-limit counts messages per minute
GREYLIST_MAX_ENTRIES = 100_000  # oldest triples are forgotten beyond this
REVERSE_DNS_TIMEOUT = 0.5  # seconds; peers stall seconds per connection on slow lookups


@dataclass(frozen=True)
class Refusal:
    """A reply that refuses something, the rule behind it and what the session log says."""

    reply: str
    rule: str
    detail: str = ""


class Policy:
    """Per-server state of the access rules; every method runs on the SMTP event loop."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        # --dns-override's PTR records name clients before DNS is asked (a test can give
        # 127.0.0.1 a name of its own, as the checks and the relay see it).
        self.overrides = load_overrides(config.dns_override)
        self.clock = clock  # tests replace it to step over a greylist delay without sleeping
        self.allow = parse_networks(config.smtp_allow_ips, "--smtp-allow-ips")
        self.deny = parse_networks(config.smtp_deny_ips, "--smtp-deny-ips")
        self.recipients = (
            re.compile(config.smtp_allowed_recipients, re.IGNORECASE)
            if config.smtp_allowed_recipients
            else None
        )
        self.local_domains = parse_domains(config.smtp_local_domains, "--smtp-local-domains")
        self.trusted = parse_networks(config.smtp_trusted_networks, "--smtp-trusted-networks")
        self.connections = 0
        self.per_ip: dict[str, int] = {}
        self._sent: dict[str, deque[float]] = {}
        self._grey: dict[tuple[str, str, str], float] = {}

    # -- at connect --------------------------------------------------------------------------

    def client(self, ip: str) -> Refusal | None:
        """CIDR lists: a denied address, or one outside a non-empty allow list, gets 554."""
        if not self.allow and not self.deny:
            return None
        addr = _peer_address(ip)
        if addr is None:
            return None  # not an IP peer (a Unix socket): the lists do not apply
        if any(addr in net for net in self.deny):
            return Refusal(
                f"554 5.7.1 Error: connections from {ip} are not accepted",
                "deny-ips",
                f"{ip} is in --smtp-deny-ips",
            )
        if self.allow and not any(addr in net for net in self.allow):
            return Refusal(
                f"554 5.7.1 Error: connections from {ip} are not accepted",
                "allow-ips",
                f"{ip} is not in --smtp-allow-ips",
            )
        return None

    def opened(self, ip: str) -> Refusal | None:
        """Count a new connection (always paired with closed()); over a limit, 421."""
        self.connections += 1
        count = self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        most = self.config.smtp_max_connections
        if most and self.connections > most:
            return Refusal(
                "421 4.7.0 Error: too many connections, try again later",
                "max-connections",
                f"{self.connections} open, --smtp-max-connections is {most}",
            )
        per_ip = self.config.smtp_max_connections_per_ip
        if per_ip and count > per_ip:
            return Refusal(
                f"421 4.7.0 Error: too many connections from {ip}, try again later",
                "max-connections-per-ip",
                f"{count} open from {ip}, --smtp-max-connections-per-ip is {per_ip}",
            )
        return None

    def closed(self, ip: str) -> None:
        self.connections -= 1
        left = self.per_ip.get(ip, 1) - 1
        if left > 0:
            self.per_ip[ip] = left
        else:
            self.per_ip.pop(ip, None)

    # -- per message ---------------------------------------------------------------------------

    def rate(self, ip: str) -> Refusal | None:
        """At MAIL: over --smtp-rate-limit messages in the last minute from this address, 451."""
        limit = self.config.smtp_rate_limit
        if not limit:
            return None
        sent = self._recent(ip)
        if not sent:
            del self._sent[ip]  # no memory kept for quiet clients
            return None
        if len(sent) < limit:
            return None
        wait = max(1, math.ceil(sent[0] + RATE_WINDOW - self.clock()))
        return Refusal(
            f"451 4.7.1 Error: rate limit of {limit} messages per minute exceeded, "
            f"try again in {wait} seconds",
            "rate-limit",
            f"{len(sent)} messages from {ip} in the last minute",
        )

    async def reverse_dns(self, ip: str) -> str:
        """The client's PTR name, --dns-override first (see reverse_dns)."""
        return await reverse_dns(ip, overrides=self.overrides)

    def delivered(self, ip: str) -> None:
        if self.config.smtp_rate_limit:
            self._recent(ip).append(self.clock())

    def _recent(self, ip: str) -> deque[float]:
        sent = self._sent.setdefault(ip, deque())
        horizon = self.clock() - RATE_WINDOW
        while sent and sent[0] <= horizon:
            sent.popleft()
        return sent

    def recipient(self, address: str) -> Refusal | None:
        """--smtp-allowed-recipients: others get 550 5.7.1 (or are ignored by the caller).

        A refused recipient is a relay denial (RFC 5321 section 3.6.2, RFC 3463 X.7.1 "delivery
        not authorized"), answered as Postfix answers it, not X.1.0 (a bad address).
        `postmaster` is always taken (RFC 5321 section 4.5.1: without a domain, and at this
        server's own name), so a rule cannot shut out the address for reporting problems.
        """
        if self.recipients is None or self.recipients.search(address):
            return None
        local, at, domain = address.rpartition("@")
        if (local if at else address).lower() == "postmaster" and (
            not at or domain.lower() == (self.config.smtp_hostname or socket.getfqdn()).lower()
        ):
            return None
        return Refusal(
            f"550 5.7.1 Error: recipient <{address}> is not allowed: relay access denied",
            "allowed-recipients",
            f"<{address}> does not match --smtp-allowed-recipients",
        )

    def relay_access(self, address: str, ip: str, authenticated: bool) -> Refusal | None:
        """--smtp-local-domains: mail for a local domain is taken from anyone, mail for any
        other domain only from an authenticated session or a --smtp-trusted-networks client.

        What Postfix does with `smtpd_relay_restrictions = permit_mynetworks,
        permit_sasl_authenticated, reject_unauth_destination`, answered with its reply (its
        relay_domains_reject_code 554 and X.7.1), so an app is refused as production would
        refuse it. An address without a domain is local (Postfix appends its own domain).
        """
        if not self.local_domains:
            return None
        _, at, domain = address.rpartition("@")
        if not at or is_local_domain(domain, self.local_domains):
            return None
        if authenticated or _in_networks(ip, self.trusted):
            return None
        return Refusal(
            f"554 5.7.1 <{address}>: Relay access denied",
            "local-domains",
            f"{domain} is not in --smtp-local-domains and the session is not authenticated "
            f"(nor is {ip} in --smtp-trusted-networks)",
        )

    def greylist(self, ip: str, sender: str, recipient: str) -> Refusal | None:
        """The first try of a (client, sender, recipient) triple waits --smtp-greylist seconds."""
        delay = self.config.smtp_greylist
        if not delay:
            return None
        key = (ip, sender.lower(), recipient.lower())
        now = self.clock()
        first = self._grey.get(key)
        if first is None:
            if len(self._grey) >= GREYLIST_MAX_ENTRIES:
                del self._grey[next(iter(self._grey))]
            self._grey[key] = first = now
        waited = now - first
        if waited >= delay:
            return None
        wait = max(1, math.ceil(delay - waited))
        return Refusal(
            f"451 4.7.1 Greylisted, try again in {wait} seconds",
            "greylist",
            f"first try from {ip} for <{sender}> -> <{recipient}> {waited:.0f}s ago, "
            f"--smtp-greylist is {delay:g}s",
        )


def parse_domains(value: str, flag: str) -> tuple[str, ...]:
    """`example.com, *.example.org .example.net` -> lower-case patterns without a final dot;
    `*.suffix` (or Postfix's `.suffix`) matches every subdomain of suffix, not suffix itself."""
    out = []
    for item in re.split(r"[,\s]+", value.strip()):
        if not item:
            continue
        name = item.lower().rstrip(".")
        if name.startswith("."):
            name = "*" + name
        bare = name[2:] if name.startswith("*.") else name
        literal = re.fullmatch(r"\[[0-9A-Fa-f:.]+\]", bare) is not None  # [192.0.2.1]
        if not literal and not re.fullmatch(
            r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_-]+)*", bare
        ):
            raise ConfigError(
                f"{flag}: {item!r} is not a domain name: use e.g. example.com or *.example.com "
                "(every subdomain)"
            )
        out.append(name)
    return tuple(out)


def is_local_domain(domain: str, patterns: tuple[str, ...]) -> bool:
    """Whether `domain` (any case, a final dot or not) matches one of parse_domains' patterns."""
    name = domain.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            if name.endswith(pattern[1:]):
                return True
        elif name == pattern:
            return True
    return False


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _peer_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address as the CIDR lists see it; None for a peer that is not an IP."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped  # ::ffff:10.1.2.3 is 10.1.2.3 for the lists
    return addr


def _in_networks(ip: str, networks: tuple[Network, ...]) -> bool:
    addr = _peer_address(ip)
    return addr is not None and any(addr in net for net in networks)


async def reverse_dns(
    ip: str,
    timeout: float = REVERSE_DNS_TIMEOUT,
    overrides: dict[tuple[str, str], list[str]] | None = None,
) -> str:
    """The PTR name of a client address; raises on failure or after `timeout` seconds.

    A PTR record of --dns-override (`overrides`) answers first. dnspython's resolver is
    asynchronous, so a slow DNS server costs no thread, and loopback peers (the usual case for
    a development catcher) are answered without asking anyone.
    """
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    named = (overrides or {}).get((reverse_name(str(addr)), "PTR"))
    if named:
        return named[0]
    if addr.is_loopback:
        return "localhost"
    import dns.asyncresolver  # loaded only when --smtp-reverse-dns is on

    answer = await asyncio.wait_for(
        dns.asyncresolver.resolve_address(ip, lifetime=timeout), timeout
    )
    return str(answer[0]).rstrip(".")
