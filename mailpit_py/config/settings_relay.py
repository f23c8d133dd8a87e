"""The settings table's relay rows: releasing and relaying messages to a real SMTP server."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailpit_py.config.option import setting
from mailpit_py.config.values import parse_duration, parse_int


@dataclass(frozen=True)
class RelaySettings:
    """The relay and release settings (docs/relay.md)."""

    smtp_relay_config: str = setting(
        "",
        flags=("--smtp-relay-config",),
        env="MP_SMTP_RELAY_CONFIG",
        help=(
            "YAML file naming the SMTP server that releases and auto-relays go through (Mailpit's "
            "keys; or set MP_SMTP_RELAY_HOST and friends)"
        ),
        metavar="FILE",
    )
    # The MP_SMTP_RELAY_*/MP_SMTP_FORWARD_* variables seen (passwords among them: no repr);
    # they have no flags, so no row of the table.
    smtp_relay_env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    smtp_relay_all: bool = setting(
        False,
        flags=("--smtp-relay-all",),
        env="MP_SMTP_RELAY_ALL",
        help="relay every message to its recipients as well as keeping it",
    )
    smtp_relay_matching: str = setting(
        "",
        flags=("--smtp-relay-matching",),
        env="MP_SMTP_RELAY_MATCHING",
        help="relay messages to the recipients matching this regular expression",
        metavar="REGEX",
    )
    smtp_relay_mx: bool = setting(
        False,
        flags=("--smtp-relay-mx",),
        env="MP_SMTP_RELAY_MX",
        help="without a relay host, deliver to each recipient domain's MX hosts",
    )
    smtp_relay_mx_nameserver: str = setting(
        "",
        flags=("--smtp-relay-mx-nameserver",),
        env="MP_SMTP_RELAY_MX_NAMESERVER",
        help="DNS server for MX lookups, HOST:PORT (default: the system's resolvers)",
        metavar="ADDR",
    )
    # seconds; doubles after each failure
    smtp_relay_retry_delay: float = setting(
        30.0,
        flags=("--smtp-relay-retry-delay",),
        env="MP_SMTP_RELAY_RETRY_DELAY",
        help="wait before retrying a temporary relay failure; doubles each time, e.g. 30s",
        convert=parse_duration,
        metavar="DURATION",
    )
    smtp_relay_max_attempts: int = setting(
        8,
        flags=("--smtp-relay-max-attempts",),
        env="MP_SMTP_RELAY_MAX_ATTEMPTS",
        help="relay attempts before a temporary failure is given up",
        convert=parse_int,
        metavar="N",
    )
    smtp_forward_config: str = setting(
        "",
        flags=("--smtp-forward-config",),
        env="MP_SMTP_FORWARD_CONFIG",
        help=(
            "YAML file: forward a copy of every message to fixed addresses (Mailpit's keys; or set "
            "MP_SMTP_FORWARD_HOST and MP_SMTP_FORWARD_TO)"
        ),
        metavar="FILE",
    )
