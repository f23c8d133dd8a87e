"""The one settings object: a frozen Config, its value parsers and validation."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path

DEFAULT_MAX_MESSAGE_SIZE = 50 * 1024 * 1024


class ConfigError(ValueError):
    """A setting that cannot work; the message says which and how to fix it."""


@dataclass(frozen=True)
class Config:
    """Every setting of a mailpit_py instance; the CLI maps flags and MP_* variables onto it."""

    smtp_addr: str = "127.0.0.1:1025"
    http_addr: str = "127.0.0.1:8025"
    webroot: str = "/"  # URL path prefix of the UI and API, e.g. "/mail/"
    database: str | None = None  # None: a temporary file removed at exit; ":memory:" in memory
    max_messages: int = 500  # 0 = unlimited
    max_age: float | None = None  # seconds; None = keep regardless of age
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    smtp_max_recipients: int = 100
    smtp_timeout: float = 300.0  # idle seconds before 421 (RFC 5321 section 4.5.3.2.7)
    # The greeting names this host; gethostname() asks no DNS (peers stall on lookups here).
    smtp_hostname: str = field(default_factory=socket.gethostname)
    session_history: int = 1000  # SMTP sessions kept, newest first
    label: str = ""
    quiet: bool = False
    verbose: bool = False
    # --- relay and release (issue 6) ---
    smtp_relay_config: str = ""  # YAML file with Mailpit's relay keys
    # The MP_SMTP_RELAY_*/MP_SMTP_FORWARD_* variables seen (passwords among them: no repr).
    smtp_relay_env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    smtp_relay_all: bool = False  # relay every message to its recipients
    smtp_relay_matching: str = ""  # regex: relay only to matching recipients
    smtp_relay_mx: bool = False  # no relay host: deliver to the recipients' MX hosts
    smtp_relay_mx_nameserver: str = ""  # HOST:PORT of the DNS server for MX lookups
    smtp_relay_retry_delay: float = 30.0  # seconds before the first retry; doubles each time
    smtp_relay_max_attempts: int = 8  # attempts before a temporary failure becomes final
    smtp_forward_config: str = ""  # YAML file: copy every message to fixed addresses
    # --- SMTP TLS, AUTH, access policy and chaos (issue 5) ---
    smtp_tls_cert: str = ""  # PEM file, or `sans:host1,host2` for a self-signed one
    smtp_tls_key: str = ""
    smtp_require_starttls: bool = False
    smtp_require_tls: bool = False  # implicit TLS (SMTPS, as on port 465)
    smtp_auth_file: str = ""
    smtp_auth: str = ""  # `user:password` pairs separated by spaces (MP_SMTP_AUTH)
    smtp_auth_accept_any: bool = False
    smtp_auth_allow_insecure: bool = False
    smtp_allowed_recipients: str = ""  # regular expression
    smtp_ignore_rejected_recipients: bool = False
    smtp_allow_ips: str = ""  # CIDR list, comma or space separated; empty = everyone
    smtp_deny_ips: str = ""
    smtp_max_connections: int = 0  # 0 = unlimited
    smtp_max_connections_per_ip: int = 0
    smtp_rate_limit: int = 0  # messages per minute per client address; 0 = unlimited
    smtp_greylist: float = 0.0  # seconds a new (client, sender, recipient) waits; 0 = off
    smtp_reverse_dns: bool = False
    enable_chaos: bool = False
    chaos_triggers: str = ""
    chaos_seed: int | None = None
    # --- message checks (issue 9) ---
    disable_checks: bool = False  # skip the authentication/blocklist/header checks at ingest
    dns_override: str | None = None  # `name TYPE value` lines answered before real DNS
    dns_offline: bool = False  # answer check lookups from dns_override alone
    dns_timeout: float = 2.0  # seconds per check lookup
    checks_client_ip: str = ""  # the address SPF and blocklists evaluate; "" = the real peer
    checks_dnsbl: tuple[str, ...] = ()  # DNSBL/URIBL zones, e.g. ("zen.spamhaus.org",)
    allow_internal_http_requests: bool = False  # link check may reach private addresses
    enable_spamassassin: str = ""  # HOST:PORT of spamd; "" = off
    # --- POP3 and IMAP (issue 10) ---
    pop3_addr: str = ""  # "" = no POP3 server (Mailpit's usual port is 1110)
    pop3_auth_file: str = ""  # htpasswd-style user:password lines
    pop3_auth: str = ""  # "user:pass user2:pass2" (MP_POP3_AUTH)
    pop3_tls_cert: str = ""  # PEM file or sans:host,...; enables STLS (or implicit TLS)
    pop3_tls_key: str = ""
    pop3_tls_implicit: bool = False  # TLS from the first byte (POP3S) instead of STLS
    imap_addr: str = ""  # "" = no IMAP server
    imap_auth_file: str = ""  # default: the POP3 credentials
    imap_auth: str = ""
    imap_tls_cert: str = ""  # PEM file or sans:host,...; enables STARTTLS (or implicit TLS)
    imap_tls_key: str = ""
    imap_tls_implicit: bool = False  # TLS from the first byte (IMAPS) instead of STARTTLS
    # --- observability and integrations (issue 8) ---
    enable_prometheus: str = ""  # "": off; "true": /metrics on the UI listener; or ADDR:PORT
    webhook_url: str = ""  # POST each new message's summary here
    webhook_limit: int = 1  # webhook requests per second (0 = no limit), as Mailpit
    log_file: str = ""  # append logs to this file instead of stderr
    log_format: str = "text"  # text or json (one JSON object per line)
    # --- web UI and API access control (issue 5) ---
    ui_auth_file: str = ""  # htpasswd-style user:password lines (bcrypt allowed) for UI and API
    ui_auth: str = ""  # the same as space-separated user:password pairs (MP_UI_AUTH)
    send_api_auth_file: str = ""  # the send API's own credentials (else the UI's)
    send_api_auth: str = ""  # the same, inline (MP_SEND_API_AUTH)
    send_api_auth_accept_any: bool = False  # the send API needs no credentials
    ui_tls_cert: str = ""  # PEM file or sans:host1,host2 (self-signed): serve HTTPS
    ui_tls_key: str = ""
    # --- browser protections ---
    api_cors: str = ""  # Mailpit's --api-cors: other sites' origins allowed to use the API; "*" any
    allowed_hosts: str = ""  # Host names answered beyond the safe defaults (DNS rebinding); "*" any

    def validate(self) -> Config:
        """Raise ConfigError for settings that cannot work; return self for chaining."""
        split_hostport(self.smtp_addr, "--smtp")
        split_hostport(self.http_addr, "--listen")
        if not re.fullmatch(r"/([A-Za-z0-9._~!$&'()*+,;=:@%-]+/)*", self.webroot):
            raise ConfigError(
                f"--webroot: {self.webroot!r} is not a URL path: use e.g. / or /mail/"
            )
        if self.max_messages < 0:
            raise ConfigError("--max must be 0 (unlimited) or a positive number of messages")
        if self.max_age is not None and self.max_age <= 0:
            raise ConfigError("--max-age must be a positive duration such as 12h or 3d")
        if self.max_message_size <= 0:
            raise ConfigError("--max-message-size must be a positive size such as 50MB")
        if self.smtp_max_recipients <= 0:
            raise ConfigError("--smtp-max-recipients must be a positive number")
        if self.smtp_timeout <= 0:
            raise ConfigError("--smtp-timeout must be a positive duration such as 300s or 5m")
        if self.session_history < 0:
            raise ConfigError("--smtp-session-history must be 0 or a positive number")
        # --- relay and release (issue 6) ---
        from mailpit_py.relay import config as relay_config  # it imports ConfigError from here

        relay_config.validate(self)
        self._validate_smtp_front_door()
        self._validate_checks()
        # --- POP3 and IMAP (issue 10) ---
        from mailpit_py.mailaccess.access import validate_mail_access  # it imports this module

        validate_mail_access(self)
        # --- observability and integrations (issue 8) ---
        if self.enable_prometheus not in ("", "true"):
            split_hostport(self.enable_prometheus, "--enable-prometheus (true, false or ADDR:PORT)")
        if self.webhook_url and not re.match(r"https?://[^/\s]+", self.webhook_url):
            raise ConfigError(
                f"--webhook-url: {self.webhook_url!r} is not an http:// or https:// URL"
            )
        if self.webhook_limit < 0:
            raise ConfigError("--webhook-limit must be 0 (no limit) or requests per second")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"--log-format: {self.log_format!r} is not text or json")
        # --- web UI and API access control (issue 5) ---
        from mailpit_py.config.credentials import Credentials  # it imports this module

        for path, flag in (
            (self.ui_auth_file, "--ui-auth-file"),
            (self.send_api_auth_file, "--send-api-auth-file"),
        ):
            if path:
                Credentials.load(path, flag)
        for inline, env in ((self.ui_auth, "MP_UI_AUTH"), (self.send_api_auth, "MP_SEND_API_AUTH")):
            if inline.strip():
                Credentials.parse(inline, env)
        if self.ui_tls_key and not self.ui_tls_cert:
            raise ConfigError("--ui-tls-key needs --ui-tls-cert (the certificate it belongs to)")
        if self.ui_tls_cert and not self.ui_tls_cert.startswith("sans:"):
            if not self.ui_tls_key:
                raise ConfigError(
                    "--ui-tls-key is needed with --ui-tls-cert (or use --ui-tls-cert sans:HOST "
                    "for a self-signed certificate)"
                )
            for path, flag in (
                (self.ui_tls_cert, "--ui-tls-cert"),
                (self.ui_tls_key, "--ui-tls-key"),
            ):
                if not Path(path).is_file():
                    raise ConfigError(f"{flag}: {path} does not exist or is not a file")
        # --- browser protections ---
        from mailpit_py.webapp.guard import (  # it imports this module
            parse_allowed_hosts,
            parse_cors,
        )

        parse_cors(self.api_cors)
        parse_allowed_hosts(self.allowed_hosts)
        return self

    def _validate_smtp_front_door(self) -> None:
        """Issue 5: refuse settings that could never work, saying how to fix them."""
        fix_cert = (
            "add --smtp-tls-cert FILE --smtp-tls-key FILE (PEM), or --smtp-tls-cert "
            "sans:localhost for a self-signed certificate"
        )
        if self.smtp_tls_key and not self.smtp_tls_cert:
            raise ConfigError(f"--smtp-tls-key is set without a certificate: {fix_cert}")
        sans = self.smtp_tls_cert.startswith("sans:")
        if self.smtp_tls_cert and not sans and not self.smtp_tls_key:
            raise ConfigError(
                "--smtp-tls-cert needs --smtp-tls-key (or use --smtp-tls-cert sans:HOST "
                "for a self-signed certificate)"
            )
        for flag, on in (
            ("--smtp-require-starttls", self.smtp_require_starttls),
            ("--smtp-require-tls", self.smtp_require_tls),
        ):
            if on and not self.smtp_tls_cert:
                raise ConfigError(f"{flag} needs a certificate: {fix_cert}")
        if self.smtp_require_starttls and self.smtp_require_tls:
            raise ConfigError(
                "--smtp-require-starttls and --smtp-require-tls exclude each other: "
                "--smtp-require-tls makes the whole connection TLS (port 465 style)"
            )
        if self.smtp_auth_accept_any and (self.smtp_auth_file or self.smtp_auth):
            raise ConfigError(
                "--smtp-auth-accept-any accepts everyone: drop it, or drop --smtp-auth-file "
                "and MP_SMTP_AUTH"
            )
        auth_on = bool(self.smtp_auth_accept_any or self.smtp_auth_file or self.smtp_auth)
        if auth_on and not self.smtp_tls_cert and not self.smtp_auth_allow_insecure:
            raise ConfigError(
                "SMTP AUTH sends passwords, which needs TLS: add --smtp-tls-cert FILE "
                "--smtp-tls-key FILE (or --smtp-tls-cert sans:localhost), or allow logins "
                "over plain connections with --smtp-auth-allow-insecure"
            )
        if self.smtp_allowed_recipients:
            try:
                re.compile(self.smtp_allowed_recipients)
            except re.error as exc:
                raise ConfigError(
                    f"--smtp-allowed-recipients: {self.smtp_allowed_recipients!r} is not a "
                    f"regular expression: {exc}"
                ) from None
        parse_networks(self.smtp_allow_ips, "--smtp-allow-ips")
        parse_networks(self.smtp_deny_ips, "--smtp-deny-ips")
        for flag, value in (
            ("--smtp-max-connections", self.smtp_max_connections),
            ("--smtp-max-connections-per-ip", self.smtp_max_connections_per_ip),
            ("--smtp-rate-limit", self.smtp_rate_limit),
        ):
            if value < 0:
                raise ConfigError(f"{flag} must be 0 (unlimited) or a positive number")
        if self.smtp_greylist < 0:
            raise ConfigError("--smtp-greylist must be 0 (off) or a duration such as 60s")
        from mailpit_py.smtp.chaos import parse_triggers  # chaos imports this module

        parse_triggers(self.chaos_triggers, "--chaos-triggers")

    def _validate_checks(self) -> None:
        """Message checks (issue 9)."""
        import ipaddress

        if self.checks_client_ip:
            try:
                ipaddress.ip_address(self.checks_client_ip)
            except ValueError:
                raise ConfigError(
                    f"--checks-client-ip: {self.checks_client_ip!r} is not an IP address: "
                    "use the address your mail server sends from, e.g. 203.0.113.7"
                ) from None
        if self.dns_timeout <= 0:
            raise ConfigError("--dns-timeout must be a positive duration such as 2s")
        if self.dns_offline and not self.dns_override:
            raise ConfigError("--dns-offline needs --dns-override FILE to answer from")
        if self.dns_override:
            from mailpit_py.checks.dns import OverrideError, load_overrides

            try:
                load_overrides(self.dns_override)
            except OverrideError as exc:
                raise ConfigError(str(exc)) from None
        for zone in self.checks_dnsbl:
            if not re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+\.?", zone):
                raise ConfigError(
                    f"--checks-dnsbl: {zone!r} is not a DNS zone: use e.g. zen.spamhaus.org"
                )
        if self.enable_spamassassin:
            split_hostport(self.enable_spamassassin, "--enable-spamassassin")


def parse_networks(
    value: str, flag: str
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`10.0.0.0/8, ::1 192.168.1.7` -> networks (a bare address is a /32 or /128)."""
    nets = []
    for item in re.split(r"[,\s]+", value.strip()):
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"{flag}: {item!r} is not an IP address or CIDR network: use e.g. "
                "127.0.0.1, 10.0.0.0/8 or fd00::/8"
            ) from None
    return tuple(nets)


def normalize_webroot(value: str, flag: str = "--webroot") -> str:
    """`mail`, `/mail`, `/mail/` -> `/mail/` (Mailpit accepts each form)."""
    parts = [p for p in value.strip().split("/") if p]
    return "/" + "".join(p + "/" for p in parts)


def field_names() -> list[str]:
    return [f.name for f in fields(Config)]


def split_hostport(value: str, flag: str = "address") -> tuple[str, int]:
    """Split `host:port`, `[v6]:port` or `:port` (all interfaces) into a bindable pair."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.%a-zA-Z]+)\]:(\d+)|([^:\[\]]*):(\d+)", value.strip())
    if not m:
        raise ConfigError(
            f"{flag}: {value!r} is not an address: use HOST:PORT, e.g. 127.0.0.1:1025, "
            "[::1]:1025 or 0.0.0.0:1025"
        )
    host = m.group(1) if m.group(1) is not None else m.group(3)
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise ConfigError(f"{flag}: port {port} is out of range (0-65535)")
    return host or "0.0.0.0", port


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2}
_SIZE_UNITS |= {"g": 1024**3, "gb": 1024**3}


def parse_size(value: str, flag: str = "size") -> int:
    """`52428800`, `50MB`, `512k` -> bytes (binary multiples, as Mailpit uses)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ConfigError(f"{flag}: {value!r} is not a size: use bytes or a unit, e.g. 50MB, 512k")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str, flag: str = "duration") -> float:
    """`90`, `30s`, `5m`, `12h`, `3d`, `1h30m` -> seconds."""
    text = str(value).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw]?)", text)
    if not text or not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"{flag}: {value!r} is not a duration: use e.g. 30s, 12h, 3d or 1h30m")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
