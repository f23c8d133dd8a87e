"""The settings table's message check rows: which checks run and the DNS they use."""

from __future__ import annotations

from dataclasses import dataclass

from mailpit_py.config.option import setting
from mailpit_py.config.values import optional_text, parse_duration, parse_zones


@dataclass(frozen=True)
class CheckSettings:
    """The message checks (DKIM, SPF, DMARC, blocklists, links, SpamAssassin)."""

    disable_checks: bool = setting(
        False,
        flags=("--disable-checks",),
        env="MP_DISABLE_CHECKS",
        help=(
            "do not run the DKIM/SPF/DMARC, blocklist and header checks at ingest (they still run "
            "when a message's checks are asked for)"
        ),
    )
    dns_override: str | None = setting(
        None,
        flags=("--dns-override",),
        env="MP_DNS_OVERRIDE",
        help=(
            "file of DNS records (`name TYPE value` per line) the checks use before real DNS, e.g. "
            "a DKIM key not yet published"
        ),
        convert=optional_text,
        metavar="FILE",
    )
    dns_offline: bool = setting(
        False,
        flags=("--dns-offline",),
        env="MP_DNS_OFFLINE",
        help="answer the checks' DNS lookups from --dns-override alone (no network)",
    )
    # seconds per check lookup
    dns_timeout: float = setting(
        2.0,
        flags=("--dns-timeout",),
        env="MP_DNS_TIMEOUT",
        help="how long one DNS lookup of the checks may take, e.g. 2s",
        convert=parse_duration,
        metavar="DURATION",
    )
    # "" = the real peer
    checks_client_ip: str = setting(
        "",
        flags=("--checks-client-ip",),
        env="MP_CHECKS_CLIENT_IP",
        help=(
            "the sending server address SPF and blocklists evaluate (mail to a catcher comes from "
            "localhost, so by default the result is marked as a simulation)"
        ),
        metavar="IP",
    )
    checks_dnsbl: tuple[str, ...] = setting(
        (),
        flags=("--checks-dnsbl",),
        env="MP_CHECKS_DNSBL",
        help=(
            "comma-separated DNS blocklist zones to look the client address and link domains up in"
        ),
        convert=parse_zones,
        metavar="ZONES",
    )
    allow_internal_http_requests: bool = setting(
        False,
        flags=("--allow-internal-http-requests",),
        env="MP_ALLOW_INTERNAL_HTTP_REQUESTS",
        help="let the link check reach private, loopback and link-local addresses",
    )
    enable_spamassassin: str = setting(
        "",
        flags=("--enable-spamassassin",),
        env="MP_ENABLE_SPAMASSASSIN",
        help="score messages with SpamAssassin's spamd at HOST:PORT",
        metavar="HOST:PORT",
    )
