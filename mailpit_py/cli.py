"""Command line: flags and MP_* environment variables -> Config -> a running Server."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mailpit_py import __version__, commands
from mailpit_py.config.settings import (
    Config,
    ConfigError,
    normalize_webroot,
    parse_duration,
    parse_size,
)
from mailpit_py.net.loopthread import AddressInUse
from mailpit_py.observability import logs as logsetup
from mailpit_py.relay import config as relay_config
from mailpit_py.store.records import StoreError

log = logging.getLogger("mailpit_py")


@dataclass(frozen=True)
class Option:
    """One setting: its flags, its environment variable and the Config field it fills."""

    flags: tuple[str, ...]
    env: str
    field: str
    help: str
    convert: Callable[[str, str], Any] | None = None  # (value, flag) -> field value
    boolean: bool = False
    metavar: str | None = None
    const: str | None = None  # the value of the flag given bare (e.g. --enable-prometheus)


def _int(value: str, flag: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{flag}: {value!r} is not a whole number") from None


def _db(value: str, flag: str) -> str | None:
    return value or None


def _zones(value: str, flag: str) -> tuple[str, ...]:
    return tuple(z.strip() for z in value.split(",") if z.strip())


def _prometheus(value: str, flag: str) -> str:
    """`true`/`false` (Mailpit's boolean) or a listen address for a separate listener."""
    text = value.strip()
    if text.lower() in _TRUE:
        return "true"
    if text.lower() in _FALSE:
        return ""
    return text


OPTIONS: tuple[Option, ...] = (
    Option(
        ("-s", "--smtp"),
        "MP_SMTP_BIND_ADDR",
        "smtp_addr",
        "SMTP listen address, HOST:PORT ([::1]:1025 for IPv6, port 0 for any free port)",
        metavar="ADDR",
    ),
    Option(
        ("-l", "--listen"),
        "MP_UI_BIND_ADDR",
        "http_addr",
        "HTTP listen address for the web UI and API, HOST:PORT (port 0 for any free port)",
        metavar="ADDR",
    ),
    Option(
        ("--webroot",),
        "MP_WEBROOT",
        "webroot",
        "serve the web UI and API under this URL path prefix, e.g. /mail/",
        normalize_webroot,
        metavar="PATH",
    ),
    Option(
        ("-d", "--database"),
        "MP_DATABASE",
        "database",
        "SQLite database file to keep messages across restarts; ':memory:' keeps them in "
        "memory; default: a temporary file removed at exit",
        _db,
        metavar="PATH",
    ),
    Option(
        ("-m", "--max"),
        "MP_MAX_MESSAGES",
        "max_messages",
        "keep at most this many messages, pruning the oldest (0 = unlimited)",
        _int,
        metavar="N",
    ),
    Option(
        ("--max-age",),
        "MP_MAX_AGE",
        "max_age",
        "prune messages older than this, e.g. 12h or 3d (default: no age limit)",
        parse_duration,
        metavar="AGE",
    ),
    Option(
        ("--max-message-size",),
        "MP_MAX_MESSAGE_SIZE",
        "max_message_size",
        "largest message accepted, in bytes or with a unit (50MB, 512k); larger ones get 552",
        parse_size,
        metavar="SIZE",
    ),
    Option(
        ("--smtp-max-recipients",),
        "MP_SMTP_MAX_RECIPIENTS",
        "smtp_max_recipients",
        "most recipients per message; more get 452",
        _int,
        metavar="N",
    ),
    Option(
        ("--smtp-timeout",),
        "MP_SMTP_TIMEOUT",
        "smtp_timeout",
        "close an idle SMTP connection with 421 after this long, e.g. 300s or 5m",
        parse_duration,
        metavar="DURATION",
    ),
    Option(
        ("--smtp-hostname",),
        "MP_SMTP_HOSTNAME",
        "smtp_hostname",
        "the host name the SMTP server greets with",
        metavar="NAME",
    ),
    Option(
        ("--smtp-session-history",),
        "MP_SMTP_SESSION_HISTORY",
        "session_history",
        "how many SMTP session logs to keep, delivered or not (0 = none)",
        _int,
        metavar="N",
    ),
    Option(("--label",), "MP_LABEL", "label", "a label for this instance", metavar="TEXT"),
    Option(("-q", "--quiet"), "MP_QUIET", "quiet", "log only warnings and errors", boolean=True),
    Option(
        ("-v", "--verbose"),
        "MP_VERBOSE",
        "verbose",
        "log details (each SMTP session)",
        boolean=True,
    ),
    # --- relay and release (issue 6) ---
    Option(
        ("--smtp-relay-config",),
        "MP_SMTP_RELAY_CONFIG",
        "smtp_relay_config",
        "YAML file naming the SMTP server that releases and auto-relays go through "
        "(Mailpit's keys; or set MP_SMTP_RELAY_HOST and friends)",
        metavar="FILE",
    ),
    Option(
        ("--smtp-relay-all",),
        "MP_SMTP_RELAY_ALL",
        "smtp_relay_all",
        "relay every message to its recipients as well as keeping it",
        boolean=True,
    ),
    Option(
        ("--smtp-relay-matching",),
        "MP_SMTP_RELAY_MATCHING",
        "smtp_relay_matching",
        "relay messages to the recipients matching this regular expression",
        metavar="REGEX",
    ),
    Option(
        ("--smtp-relay-mx",),
        "MP_SMTP_RELAY_MX",
        "smtp_relay_mx",
        "without a relay host, deliver to each recipient domain's MX hosts",
        boolean=True,
    ),
    Option(
        ("--smtp-relay-mx-nameserver",),
        "MP_SMTP_RELAY_MX_NAMESERVER",
        "smtp_relay_mx_nameserver",
        "DNS server for MX lookups, HOST:PORT (default: the system's resolvers)",
        metavar="ADDR",
    ),
    Option(
        ("--smtp-relay-retry-delay",),
        "MP_SMTP_RELAY_RETRY_DELAY",
        "smtp_relay_retry_delay",
        "wait before retrying a temporary relay failure; doubles each time, e.g. 30s",
        parse_duration,
        metavar="DURATION",
    ),
    Option(
        ("--smtp-relay-max-attempts",),
        "MP_SMTP_RELAY_MAX_ATTEMPTS",
        "smtp_relay_max_attempts",
        "relay attempts before a temporary failure is given up",
        _int,
        metavar="N",
    ),
    Option(
        ("--smtp-forward-config",),
        "MP_SMTP_FORWARD_CONFIG",
        "smtp_forward_config",
        "YAML file: forward a copy of every message to fixed addresses (Mailpit's keys; or "
        "set MP_SMTP_FORWARD_HOST and MP_SMTP_FORWARD_TO)",
        metavar="FILE",
    ),
    # --- SMTP TLS, AUTH, access policy and chaos (issue 5) ---
    Option(
        ("--smtp-tls-cert",),
        "MP_SMTP_TLS_CERT",
        "smtp_tls_cert",
        "PEM certificate for STARTTLS, or sans:HOST1,HOST2 for a self-signed one",
        metavar="FILE",
    ),
    Option(("--smtp-tls-key",), "MP_SMTP_TLS_KEY", "smtp_tls_key", "PEM key", metavar="FILE"),
    Option(
        ("--smtp-require-starttls",),
        "MP_SMTP_REQUIRE_STARTTLS",
        "smtp_require_starttls",
        "refuse commands other than EHLO, HELO, NOOP, RSET, STARTTLS, QUIT before STARTTLS (530)",
        boolean=True,
    ),
    Option(
        ("--smtp-require-tls",),
        "MP_SMTP_REQUIRE_TLS",
        "smtp_require_tls",
        "implicit TLS: the SMTP listener speaks TLS from the start (SMTPS, as on port 465)",
        boolean=True,
    ),
    Option(
        ("--smtp-auth-file",),
        "MP_SMTP_AUTH_FILE",
        "smtp_auth_file",
        "file of user:password lines (bcrypt hashes accepted); AUTH is then required",
        metavar="FILE",
    ),
    Option(
        ("--smtp-auth",),
        "MP_SMTP_AUTH",
        "smtp_auth",
        "user:password pairs separated by spaces; AUTH is then required",
        metavar="PAIRS",
    ),
    Option(
        ("--smtp-auth-accept-any",),
        "MP_SMTP_AUTH_ACCEPT_ANY",
        "smtp_auth_accept_any",
        "accept any AUTH user and password (AUTH stays optional)",
        boolean=True,
    ),
    Option(
        ("--smtp-auth-allow-insecure",),
        "MP_SMTP_AUTH_ALLOW_INSECURE",
        "smtp_auth_allow_insecure",
        "allow PLAIN and LOGIN over connections without TLS",
        boolean=True,
    ),
    Option(
        ("--smtp-allowed-recipients",),
        "MP_SMTP_ALLOWED_RECIPIENTS",
        "smtp_allowed_recipients",
        "regular expression; other recipients get 550 5.1.0",
        metavar="REGEX",
    ),
    Option(
        ("--smtp-ignore-rejected-recipients",),
        "MP_SMTP_IGNORE_REJECTED_RECIPIENTS",
        "smtp_ignore_rejected_recipients",
        "accept recipients --smtp-allowed-recipients refuses with 250, and drop them",
        boolean=True,
    ),
    Option(
        ("--smtp-allow-ips",),
        "MP_SMTP_ALLOW_IPS",
        "smtp_allow_ips",
        "only these client addresses or CIDR networks may connect (others get 554 5.7.1)",
        metavar="CIDRS",
    ),
    Option(
        ("--smtp-deny-ips",),
        "MP_SMTP_DENY_IPS",
        "smtp_deny_ips",
        "client addresses or CIDR networks refused with 554 5.7.1",
        metavar="CIDRS",
    ),
    Option(
        ("--smtp-max-connections",),
        "MP_SMTP_MAX_CONNECTIONS",
        "smtp_max_connections",
        "most simultaneous SMTP connections; more get 421 4.7.0 (0 = unlimited)",
        _int,
        metavar="N",
    ),
    Option(
        ("--smtp-max-connections-per-ip",),
        "MP_SMTP_MAX_CONNECTIONS_PER_IP",
        "smtp_max_connections_per_ip",
        "most simultaneous connections from one address; more get 421 4.7.0 (0 = unlimited)",
        _int,
        metavar="N",
    ),
    Option(
        ("--smtp-rate-limit",),
        "MP_SMTP_RATE_LIMIT",
        "smtp_rate_limit",
        "messages per minute from one address; more get 451 4.7.1 (0 = unlimited)",
        _int,
        metavar="N",
    ),
    Option(
        ("--smtp-greylist",),
        "MP_SMTP_GREYLIST",
        "smtp_greylist",
        "defer the first try of each (client, sender, recipient) with 451 4.7.1 for this long",
        parse_duration,
        metavar="DURATION",
    ),
    Option(
        ("--smtp-reverse-dns",),
        "MP_SMTP_REVERSE_DNS",
        "smtp_reverse_dns",
        "look up the client's name (short timeout) for the log and a Received: header",
        boolean=True,
    ),
    Option(
        ("--enable-chaos",),
        "MP_ENABLE_CHAOS",
        "enable_chaos",
        "enable chaos (fault injection) and its API, /api/v1/chaos",
        boolean=True,
    ),
    Option(
        ("--chaos-triggers",),
        "MP_CHAOS_TRIGGERS",
        "chaos_triggers",
        "e.g. Sender:451:10,Recipient:451:5,Authentication:535:5 (STAGE:CODE:PERCENT; also "
        "Connect, Helo, Data, Drop:PERCENT, Delay:250ms[:PERCENT]); enables chaos",
        metavar="TRIGGERS",
    ),
    Option(
        ("--chaos-seed",),
        "MP_CHAOS_SEED",
        "chaos_seed",
        "seed the chaos dice so a run repeats exactly",
        _int,
        metavar="N",
    ),
    # --- message checks (issue 9) ---
    Option(
        ("--disable-checks",),
        "MP_DISABLE_CHECKS",
        "disable_checks",
        "do not run the DKIM/SPF/DMARC, blocklist and header checks at ingest (they still run "
        "when a message's checks are asked for)",
        boolean=True,
    ),
    Option(
        ("--dns-override",),
        "MP_DNS_OVERRIDE",
        "dns_override",
        "file of DNS records (`name TYPE value` per line) the checks use before real DNS, "
        "e.g. a DKIM key not yet published",
        _db,
        metavar="FILE",
    ),
    Option(
        ("--dns-offline",),
        "MP_DNS_OFFLINE",
        "dns_offline",
        "answer the checks' DNS lookups from --dns-override alone (no network)",
        boolean=True,
    ),
    Option(
        ("--dns-timeout",),
        "MP_DNS_TIMEOUT",
        "dns_timeout",
        "how long one DNS lookup of the checks may take, e.g. 2s",
        parse_duration,
        metavar="DURATION",
    ),
    Option(
        ("--checks-client-ip",),
        "MP_CHECKS_CLIENT_IP",
        "checks_client_ip",
        "the sending server address SPF and blocklists evaluate (mail to a catcher comes from "
        "localhost, so by default the result is marked as a simulation)",
        metavar="IP",
    ),
    Option(
        ("--checks-dnsbl",),
        "MP_CHECKS_DNSBL",
        "checks_dnsbl",
        "comma-separated DNS blocklist zones to look the client address and link domains up in",
        _zones,
        metavar="ZONES",
    ),
    Option(
        ("--allow-internal-http-requests",),
        "MP_ALLOW_INTERNAL_HTTP_REQUESTS",
        "allow_internal_http_requests",
        "let the link check reach private, loopback and link-local addresses",
        boolean=True,
    ),
    Option(
        ("--enable-spamassassin",),
        "MP_ENABLE_SPAMASSASSIN",
        "enable_spamassassin",
        "score messages with SpamAssassin's spamd at HOST:PORT",
        metavar="HOST:PORT",
    ),
    # --- POP3 and IMAP (issue 10) ---
    Option(
        ("--pop3",),
        "MP_POP3_BIND_ADDR",
        "pop3_addr",
        "POP3 listen address, HOST:PORT, e.g. 127.0.0.1:1110 (default: off; needs logins)",
        metavar="ADDR",
    ),
    Option(
        ("--pop3-auth-file",),
        "MP_POP3_AUTH_FILE",
        "pop3_auth_file",
        "file of user:password lines (bcrypt hashes from htpasswd -B too) allowed to log in "
        "over POP3 (and IMAP, unless it has its own)",
        metavar="FILE",
    ),
    Option(
        ("--pop3-auth",),
        "MP_POP3_AUTH",
        "pop3_auth",
        "POP3 logins as space-separated user:password pairs",
        metavar="PAIRS",
    ),
    Option(
        ("--pop3-tls-cert",),
        "MP_POP3_TLS_CERT",
        "pop3_tls_cert",
        "PEM certificate for POP3 STLS (or implicit TLS); sans:HOST,... makes a self-signed one",
        metavar="FILE",
    ),
    Option(("--pop3-tls-key",), "MP_POP3_TLS_KEY", "pop3_tls_key", "PEM key", metavar="FILE"),
    Option(
        ("--pop3-tls-implicit",),
        "MP_POP3_TLS_IMPLICIT",
        "pop3_tls_implicit",
        "POP3 speaks TLS from the first byte (POP3S, as Mailpit does) instead of offering STLS",
        boolean=True,
    ),
    Option(
        ("--imap",),
        "MP_IMAP_BIND_ADDR",
        "imap_addr",
        "IMAP listen address, HOST:PORT, e.g. 127.0.0.1:1143 (default: off; needs logins)",
        metavar="ADDR",
    ),
    Option(
        ("--imap-auth-file",),
        "MP_IMAP_AUTH_FILE",
        "imap_auth_file",
        "file of user:password lines allowed to log in over IMAP (default: the POP3 logins)",
        metavar="FILE",
    ),
    Option(
        ("--imap-auth",),
        "MP_IMAP_AUTH",
        "imap_auth",
        "IMAP logins as space-separated user:password pairs (default: the POP3 logins)",
        metavar="PAIRS",
    ),
    Option(
        ("--imap-tls-cert",),
        "MP_IMAP_TLS_CERT",
        "imap_tls_cert",
        "PEM certificate for IMAP STARTTLS (or implicit TLS); sans:HOST,... self-signs one",
        metavar="FILE",
    ),
    Option(("--imap-tls-key",), "MP_IMAP_TLS_KEY", "imap_tls_key", "PEM key", metavar="FILE"),
    Option(
        ("--imap-tls-implicit",),
        "MP_IMAP_TLS_IMPLICIT",
        "imap_tls_implicit",
        "IMAP speaks TLS from the first byte (IMAPS) instead of offering STARTTLS",
        boolean=True,
    ),
    # --- observability and integrations (issue 8) ---
    Option(
        ("--enable-prometheus",),
        "MP_ENABLE_PROMETHEUS",
        "enable_prometheus",
        "serve Prometheus metrics: true (or the flag alone) at /metrics of the web UI, or "
        "ADDR:PORT for a listener of their own",
        _prometheus,
        metavar="true|ADDR:PORT",
        const="true",
    ),
    Option(
        ("--webhook-url",),
        "MP_WEBHOOK_URL",
        "webhook_url",
        "POST the summary of each new message to this URL (JSON, as Mailpit)",
        metavar="URL",
    ),
    Option(
        ("--webhook-limit",),
        "MP_WEBHOOK_LIMIT",
        "webhook_limit",
        "webhook requests per second, 0 for no limit; events over it wait their turn",
        _int,
        metavar="N",
    ),
    Option(
        ("--log-file",),
        "MP_LOG_FILE",
        "log_file",
        "append the log to this file instead of standard error",
        metavar="PATH",
    ),
    Option(
        ("--log-format",),
        "MP_LOG_FORMAT",
        "log_format",
        "text, or json for one JSON object per line (log collectors)",
        metavar="text|json",
    ),
    # --- web UI and API access control (issue 5) ---
    Option(
        ("--ui-auth-file",),
        "MP_UI_AUTH_FILE",
        "ui_auth_file",
        "require HTTP basic auth for the web UI, API and websocket: a file of user:password "
        "lines (bcrypt hashes from htpasswd -B accepted)",
        metavar="FILE",
    ),
    Option(
        ("--ui-auth",),
        "MP_UI_AUTH",
        "ui_auth",
        "the same as space-separated user:password pairs (prefer the variable: a flag shows in ps)",
        metavar="PAIRS",
    ),
    Option(
        ("--send-api-auth-file",),
        "MP_SEND_API_AUTH_FILE",
        "send_api_auth_file",
        "credentials for POST /api/v1/send alone (otherwise it takes the UI's)",
        metavar="FILE",
    ),
    Option(
        ("--send-api-auth",),
        "MP_SEND_API_AUTH",
        "send_api_auth",
        "the same as space-separated user:password pairs",
        metavar="PAIRS",
    ),
    Option(
        ("--send-api-auth-accept-any",),
        "MP_SEND_API_AUTH_ACCEPT_ANY",
        "send_api_auth_accept_any",
        "POST /api/v1/send needs no credentials, even when the UI does",
        boolean=True,
    ),
    Option(
        ("--ui-tls-cert",),
        "MP_UI_TLS_CERT",
        "ui_tls_cert",
        "serve the web UI and API over HTTPS with this PEM certificate (sans:host1,host2 makes "
        "a self-signed one)",
        metavar="FILE",
    ),
    Option(
        ("--ui-tls-key",),
        "MP_UI_TLS_KEY",
        "ui_tls_key",
        "the PEM private key of --ui-tls-cert",
        metavar="FILE",
    ),
    # --- browser protections ---
    Option(
        ("--api-cors",),
        "MP_API_CORS",
        "api_cors",
        "let web pages of these other origins use the API and websocket, comma-separated "
        "(e.g. example.com,http://localhost:3000), or * for any; others get 403",
        metavar="ORIGINS",
    ),
    Option(
        ("--allowed-hosts",),
        "MP_ALLOWED_HOSTS",
        "allowed_hosts",
        "more Host names the web UI and API answer to, comma-separated (*.example.com for "
        "subdomains, * for any); IP addresses, localhost, names without a dot and this "
        "machine's names are always allowed (a guard against DNS rebinding)",
        metavar="HOSTS",
    ),
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def build_parser() -> argparse.ArgumentParser:
    defaults = Config()
    parser = argparse.ArgumentParser(
        prog="mailpit-py",
        description="A local-development mail catcher: every message sent to the SMTP port is "
        "stored, never delivered. Each option can also be set by the environment variable "
        "shown.",
        epilog=commands.summary(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for opt in OPTIONS:
        default = getattr(defaults, opt.field)
        shown = "" if default in (None, "", False) else f" (default: {default})"
        text = f"{opt.help}{shown} [env {opt.env}]"
        if opt.boolean:
            parser.add_argument(
                *opt.flags, dest=opt.field, action="store_true", default=None, help=text
            )
        elif opt.const is not None:
            parser.add_argument(
                *opt.flags,
                dest=opt.field,
                default=None,
                help=text,
                metavar=opt.metavar,
                nargs="?",
                const=opt.const,
            )
        else:
            parser.add_argument(
                *opt.flags, dest=opt.field, default=None, help=text, metavar=opt.metavar
            )
    parser.add_argument("--version", action="version", version=f"mailpit-py {__version__}")
    return parser


def config_from(argv: Sequence[str] | None, environ: dict[str, str]) -> Config:
    """Flags win over MP_* variables, which win over defaults."""
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        raw = getattr(args, opt.field)
        source = opt.flags[-1]
        if raw is None and opt.env in environ:
            raw, source = environ[opt.env], opt.env
            if opt.boolean:
                if raw.strip().lower() not in _TRUE | _FALSE:
                    raise ConfigError(f"{opt.env}: {raw!r} is not true or false")
                raw = raw.strip().lower() in _TRUE
        if raw is None:
            continue
        if opt.boolean:
            values[opt.field] = bool(raw)
        elif opt.convert is not None:
            values[opt.field] = opt.convert(raw, source)
        else:
            values[opt.field] = raw
    values["smtp_relay_env"] = relay_config.env_pairs(environ)  # issue 6: no flags for these
    return Config(**values).validate()


def main(argv: Sequence[str] | None = None) -> int:
    """Run a sub-command (`mailpit-py sendmail ...`), or else the server."""
    if argv is None:
        argv = sys.argv[1:]
        # Installed or linked as `sendmail`: behave as sendmail (issue 7).
        if os.path.basename(sys.argv[0]) == "sendmail":
            return commands.run("sendmail", argv)
    argv = list(argv)
    if argv and argv[0] in commands.COMMANDS:
        return commands.run(argv[0], argv[1:])
    return serve(argv)


def settle_gc() -> None:
    """Take what start-up built out of the garbage collector's view, once the server runs.

    The ~90,000 objects of the imported modules (Flask, aiosmtpd, dnspython...) live as long as
    the process, yet every full collection walked them all: a 47 ms stop of every thread. Over
    a 4,000-message burst collections took 65 ms, 20 ms with them frozen. Only the CLI's own
    process does this; the pytest fixture leaves its host's collector alone.
    """
    gc.collect()  # what start-up left as garbage is freed, not frozen for good
    gc.freeze()


def serve(argv: Sequence[str]) -> int:
    from mailpit_py.server import Server  # heavy imports after argument errors are reported

    try:
        config = config_from(argv, dict(os.environ))
    except ConfigError as exc:
        print(f"mailpit-py: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    server = Server(config)
    try:
        logsetup.configure(config)
        server.start()
    except (AddressInUse, StoreError, ConfigError) as exc:
        print(f"mailpit-py: error: {exc}", file=sys.stderr)
        return 2
    assert server.mailbox is not None
    settle_gc()
    db = server.mailbox.database_path
    where = "temporary, removed at exit" if config.database is None else "kept"
    log.info(
        "mailpit-py %s: SMTP on %s, web UI and API on %s, database %s (%s)",
        __version__,
        server.smtp.address_text if server.smtp else "?",
        server.http_url,
        db,
        where,
        extra={
            "event": "start",
            "smtp": server.smtp.address_text if server.smtp else "",
            "http": server.http_url,
            "database": db,
        },
    )
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    log.info("shutting down")
    server.stop()
    return 0
