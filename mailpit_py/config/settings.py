"""Config, the one frozen settings object, declared as the table of settings.

Each field is declared with setting(): its name, type and default, its flags, its MP_* variable
and its help, in one place, so `--help`, `mailpit-py config` and the docs test all read the same
table (OPTIONS). The checks that a combination of settings can work live in config/validate.py.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, fields

from mailpit_py.config.listeners import parse_listener_list
from mailpit_py.config.mailboxes import mailbox_config, parse_route_list, parse_unrouted
from mailpit_py.config.option import Option, options_of, setting
from mailpit_py.config.values import (
    normalize_webroot,
    optional_text,
    parse_auth_mechanisms,
    parse_duration,
    parse_int,
    parse_message_size,
    parse_prometheus,
    parse_semicolon_list,
    parse_zones,
)

DEFAULT_MAX_MESSAGE_SIZE = 50 * 1024 * 1024


@dataclass(frozen=True)
class Config:
    """Every setting of a mailpit_py instance; the CLI maps flags and MP_* variables onto it."""

    smtp_addr: str = setting(
        "[::]:1025",
        flags=("-s", "--smtp"),
        env="MP_SMTP_BIND_ADDR",
        help=(
            "SMTP listen address, HOST:PORT; [::] is every interface, IPv4 too, as in Mailpit "
            "(127.0.0.1:1025 keeps it local; port 0 for any free port); or a Unix socket, "
            "unix:PATH:MODE"
        ),
        metavar="ADDR",
    )
    http_addr: str = setting(
        "[::]:8025",
        flags=("-l", "--listen"),
        env="MP_UI_BIND_ADDR",
        help=(
            "HTTP listen address for the web UI and API, HOST:PORT; [::] is every interface "
            "(127.0.0.1:8025 keeps it local; port 0 for any free port); or a Unix socket, "
            "unix:PATH:MODE, e.g. unix:/run/mailpit.sock:0660"
        ),
        metavar="ADDR",
    )
    webroot: str = setting(
        "/",
        flags=("--webroot",),
        env="MP_WEBROOT",
        help="serve the web UI and API under this URL path prefix, e.g. /mail/",
        convert=normalize_webroot,
        metavar="PATH",
    )
    database: str | None = setting(
        None,
        flags=("-d", "--database"),
        env="MP_DATABASE",
        help=(
            "SQLite database file to keep messages across restarts; ':memory:' keeps them in "
            "memory; or a PostgreSQL server, postgresql://user:password@host:5432/database "
            "(shared by several instances; pip install 'mailpit-py[postgres]'); default: a "
            "temporary file removed at exit"
        ),
        convert=optional_text,
        metavar="PATH|URL",
    )
    max_messages: int = setting(
        500,
        flags=("-m", "--max"),
        env="MP_MAX_MESSAGES",
        help="keep this many messages, pruning the oldest together once a tenth more (at most"
        " 1000) have come (0 = unlimited)",
        convert=parse_int,
        metavar="N",
    )
    # seconds; None: no age limit
    max_age: float | None = setting(
        None,
        flags=("--max-age",),
        env="MP_MAX_AGE",
        help="prune messages older than this, e.g. 12h or 3d (default: no age limit)",
        convert=parse_duration,
        metavar="AGE",
    )
    max_message_size: int = setting(
        DEFAULT_MAX_MESSAGE_SIZE,
        flags=("--max-message-size",),
        env="MP_MAX_MESSAGE_SIZE",
        help=(
            "largest message accepted, in megabytes as Mailpit (0 = unlimited), or with a unit "
            "(512KB, 10MB); larger ones get 552"
        ),
        convert=parse_message_size,
        metavar="SIZE",
    )
    smtp_max_recipients: int = setting(
        100,
        flags=("--smtp-max-recipients",),
        env="MP_SMTP_MAX_RECIPIENTS",
        help="most recipients per message; more get 452",
        convert=parse_int,
        metavar="N",
    )
    # idle seconds before 421 (RFC 5321 section 4.5.3.2.7)
    smtp_timeout: float = setting(
        300.0,
        flags=("--smtp-timeout",),
        env="MP_SMTP_TIMEOUT",
        help="close an idle SMTP connection with 421 after this long, e.g. 300s or 5m",
        convert=parse_duration,
        metavar="DURATION",
    )
    # The greeting names this host; gethostname() asks no DNS (peers stall on lookups here).
    smtp_hostname: str = setting(
        factory=socket.gethostname,
        flags=("--smtp-hostname",),
        env="MP_SMTP_HOSTNAME",
        help="the host name the SMTP server greets with",
        metavar="NAME",
    )
    session_history: int = setting(
        1000,
        flags=("--smtp-session-history",),
        env="MP_SMTP_SESSION_HISTORY",
        help="how many SMTP session logs to keep, delivered or not (0 = none)",
        convert=parse_int,
        metavar="N",
    )
    label: str = setting(
        "",
        flags=("--label",),
        env="MP_LABEL",
        help="a label for this instance",
        metavar="TEXT",
    )
    quiet: bool = setting(
        False,
        flags=("-q", "--quiet"),
        env="MP_QUIET",
        help="log only warnings and errors",
    )
    verbose: bool = setting(
        False,
        flags=("-v", "--verbose"),
        env="MP_VERBOSE",
        help="log details (each SMTP session)",
    )
    # --- relay and release ---
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
    # --- SMTP TLS, AUTH, access policy and chaos ---
    dkim_sign: tuple[str, ...] = setting(
        (),
        flags=("--dkim-sign",),
        env="MP_DKIM_SIGN",
        help=(
            "DKIM-sign relayed and forwarded copies and sent mail whose From domain matches "
            "DOMAIN (or * or *.example.com) with the PEM key (RSA or Ed25519); repeat the flag, "
            "or separate them with ; in the variable; `mailpit-py dkim-record KEYFILE` prints "
            "the DNS record"
        ),
        convert=parse_semicolon_list,
        metavar="DOMAIN:SELECTOR:KEYFILE",
        repeat=True,
    )
    smtp_tls_cert: str = setting(
        "",
        flags=("--smtp-tls-cert",),
        env="MP_SMTP_TLS_CERT",
        help="PEM certificate for STARTTLS, or sans:HOST1,HOST2 for a self-signed one",
        metavar="FILE",
    )
    smtp_tls_key: str = setting(
        "",
        flags=("--smtp-tls-key",),
        env="MP_SMTP_TLS_KEY",
        help="PEM key",
        metavar="FILE",
    )
    smtp_require_starttls: bool = setting(
        False,
        flags=("--smtp-require-starttls",),
        env="MP_SMTP_REQUIRE_STARTTLS",
        help=(
            "refuse commands other than EHLO, HELO, NOOP, RSET, STARTTLS, QUIT before STARTTLS "
            "(530)"
        ),
    )
    smtp_require_tls: bool = setting(
        False,
        flags=("--smtp-require-tls",),
        env="MP_SMTP_REQUIRE_TLS",
        help="implicit TLS: the SMTP listener speaks TLS from the start (SMTPS, as on port 465)",
    )
    smtp_auth_file: str = setting(
        "",
        flags=("--smtp-auth-file",),
        env="MP_SMTP_AUTH_FILE",
        help="file of user:password lines (bcrypt hashes accepted); AUTH is then required",
        metavar="FILE",
    )
    smtp_auth: str = setting(
        "",
        flags=("--smtp-auth",),
        env="MP_SMTP_AUTH",
        help="user:password pairs separated by spaces; AUTH is then required",
        metavar="PAIRS",
    )
    smtp_auth_accept_any: bool = setting(
        False,
        flags=("--smtp-auth-accept-any",),
        env="MP_SMTP_AUTH_ACCEPT_ANY",
        help="accept any AUTH user and password (AUTH stays optional)",
    )
    smtp_auth_allow_insecure: bool = setting(
        False,
        flags=("--smtp-auth-allow-insecure",),
        env="MP_SMTP_AUTH_ALLOW_INSECURE",
        help="allow PLAIN and LOGIN over connections without TLS",
    )
    smtp_auth_mechanisms: str = setting(
        "",
        flags=("--smtp-auth-mechanisms",),
        env="MP_SMTP_AUTH_MECHANISMS",
        help=(
            "AUTH mechanisms to offer and accept, e.g. 'PLAIN LOGIN' (of CRAM-MD5, LOGIN, "
            "PLAIN); others get 504 5.5.4; default: every one the credentials can check"
        ),
        convert=parse_auth_mechanisms,
        metavar="LIST",
    )
    smtp_allowed_recipients: str = setting(
        "",
        flags=("--smtp-allowed-recipients",),
        env="MP_SMTP_ALLOWED_RECIPIENTS",
        help="regular expression; other recipients get 550 5.7.1 (postmaster is always accepted)",
        metavar="REGEX",
    )
    smtp_ignore_rejected_recipients: bool = setting(
        False,
        flags=("--smtp-ignore-rejected-recipients",),
        env="MP_SMTP_IGNORE_REJECTED_RECIPIENTS",
        help="accept recipients --smtp-allowed-recipients refuses with 250, and drop them",
    )
    smtp_allow_ips: str = setting(
        "",
        flags=("--smtp-allow-ips",),
        env="MP_SMTP_ALLOW_IPS",
        help="only these client addresses or CIDR networks may connect (others get 554 5.7.1)",
        metavar="CIDRS",
    )
    smtp_deny_ips: str = setting(
        "",
        flags=("--smtp-deny-ips",),
        env="MP_SMTP_DENY_IPS",
        help="client addresses or CIDR networks refused with 554 5.7.1",
        metavar="CIDRS",
    )
    smtp_local_domains: str = setting(
        "",
        flags=("--smtp-local-domains",),
        env="MP_SMTP_LOCAL_DOMAINS",
        help=(
            "domains taken from anyone (e.g. example.com, *.example.com); mail for others needs "
            "AUTH or --smtp-trusted-networks, else 554 5.7.1 Relay access denied (as Postfix)"
        ),
        metavar="DOMAINS",
    )
    smtp_trusted_networks: str = setting(
        "",
        flags=("--smtp-trusted-networks",),
        env="MP_SMTP_TRUSTED_NETWORKS",
        help=(
            "client addresses or CIDR networks that may send to any domain without AUTH under "
            "--smtp-local-domains (Postfix's mynetworks)"
        ),
        metavar="CIDRS",
    )
    smtp_max_connections: int = setting(
        0,
        flags=("--smtp-max-connections",),
        env="MP_SMTP_MAX_CONNECTIONS",
        help="most simultaneous SMTP connections; more get 421 4.7.0 (0 = unlimited)",
        convert=parse_int,
        metavar="N",
    )
    smtp_max_connections_per_ip: int = setting(
        0,
        flags=("--smtp-max-connections-per-ip",),
        env="MP_SMTP_MAX_CONNECTIONS_PER_IP",
        help="most simultaneous connections from one address; more get 421 4.7.0 (0 = unlimited)",
        convert=parse_int,
        metavar="N",
    )
    smtp_rate_limit: int = setting(
        0,
        flags=("--smtp-rate-limit",),
        env="MP_SMTP_RATE_LIMIT",
        help="messages per minute from one address; more get 451 4.7.1 (0 = unlimited)",
        convert=parse_int,
        metavar="N",
    )
    # seconds a new (client, sender, recipient) waits; 0 = off
    smtp_greylist: float = setting(
        0.0,
        flags=("--smtp-greylist",),
        env="MP_SMTP_GREYLIST",
        help="defer the first try of each (client, sender, recipient) with 451 4.7.1 for this long",
        convert=parse_duration,
        metavar="DURATION",
    )
    smtp_reverse_dns: bool = setting(
        False,
        flags=("--smtp-reverse-dns",),
        env="MP_SMTP_REVERSE_DNS",
        help="look up the client's name (short timeout) for the log and a Received: header",
    )
    # --- receiver simulation and more SMTP listeners (docs/receivers.md) ---
    receiver: str = setting(
        "permissive",
        flags=("--receiver",),
        env="MP_RECEIVER",
        help=(
            "answer SMTP as this receiver would: permissive (250 to everything), strict, gmail, "
            "outlook, yahoo, or a YAML profile file; refused messages are kept, marked refused"
        ),
        metavar="PROFILE",
    )
    smtp_listeners: tuple[str, ...] = setting(
        (),
        flags=("--smtp-listener",),
        env="MP_SMTP_LISTENERS",
        help=(
            "another SMTP listener into the same store, NAME=ADDR[,tls=implicit|starttls|"
            "optional|off][,auth=required|optional|off][,receiver=PROFILE][,mailbox=NAME]; "
            "repeat the flag, or separate listeners with ; in the variable"
        ),
        convert=parse_listener_list,
        metavar="SPEC",
        repeat=True,
    )
    # --- mailboxes per project (docs/mailboxes.md) ---
    mailbox_config: str = setting(
        "",
        flags=("--mailbox-config",),
        env="MP_MAILBOX_CONFIG",
        help="YAML file of mailboxes (one per project): their routes, max and who may see them",
        metavar="FILE",
    )
    mailbox_auto: bool = setting(
        False,
        flags=("--mailbox-auto",),
        env="MP_MAILBOX_AUTO",
        help="a mailbox per SMTP AUTH username, made on its first message (after the routes)",
    )
    mailbox_routes: tuple[str, ...] = setting(
        (),
        flags=("--mailbox-route",),
        env="MP_MAILBOX_ROUTES",
        help=(
            "route mail to a mailbox, NAME=auth:GLOB, rcpt:GLOB, listener:NAME or header:VALUE "
            "(e.g. shop=rcpt:*@shop.test; {mailbox}=rcpt:*@{mailbox}.test makes one per "
            "domain); repeat the flag, or separate routes with ; in the variable"
        ),
        convert=parse_route_list,
        metavar="NAME=RULE",
        repeat=True,
    )
    mailbox_header: str = setting(
        "",
        flags=("--mailbox-header",),
        env="MP_MAILBOX_HEADER",
        help=(
            "a message header naming its mailbox, e.g. X-Mailbox (only mailboxes that exist; "
            "header: routes match it); default: header routing off"
        ),
        metavar="NAME",
    )
    mailbox_unrouted: str = setting(
        "",
        flags=("--mailbox-unrouted",),
        env="MP_MAILBOX_UNROUTED",
        help=(
            "mail no route matches: default (keep it in the default mailbox) or refuse "
            "(550 5.1.1); default: the config file's unrouted:, else default"
        ),
        convert=parse_unrouted,
        metavar="default|refuse",
    )
    enable_chaos: bool = setting(
        False,
        flags=("--enable-chaos",),
        env="MP_ENABLE_CHAOS",
        help="enable chaos (fault injection) and its API, /api/v1/chaos",
    )
    chaos_triggers: str = setting(
        "",
        flags=("--chaos-triggers",),
        env="MP_CHAOS_TRIGGERS",
        help=(
            "e.g. Sender:451:10,Recipient:451:5,Authentication:535:5 (STAGE:CODE:PERCENT; also "
            "Connect, Helo, Data, Drop:PERCENT, Delay:250ms[:PERCENT]); enables chaos"
        ),
        metavar="TRIGGERS",
    )
    chaos_seed: int | None = setting(
        None,
        flags=("--chaos-seed",),
        env="MP_CHAOS_SEED",
        help="seed the chaos dice so a run repeats exactly",
        convert=parse_int,
        metavar="N",
    )
    # --- message checks ---
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
    # --- POP3 and IMAP ---
    pop3_addr: str = setting(
        "[::]:1110",
        flags=("--pop3",),
        env="MP_POP3_BIND_ADDR",
        help=(
            "POP3 listen address, HOST:PORT; POP3 runs there once it has logins (--pop3-auth, "
            "--pop3-auth-file), as in Mailpit; '' turns it off"
        ),
        metavar="ADDR",
    )
    pop3_auth_file: str = setting(
        "",
        flags=("--pop3-auth-file",),
        env="MP_POP3_AUTH_FILE",
        help=(
            "file of user:password lines (bcrypt hashes from htpasswd -B too) allowed to log in "
            "over POP3 (and IMAP, unless it has its own)"
        ),
        metavar="FILE",
    )
    pop3_auth: str = setting(
        "",
        flags=("--pop3-auth",),
        env="MP_POP3_AUTH",
        help="POP3 logins as space-separated user:password pairs",
        metavar="PAIRS",
    )
    pop3_tls_cert: str = setting(
        "",
        flags=("--pop3-tls-cert",),
        env="MP_POP3_TLS_CERT",
        help=(
            "PEM certificate: POP3 speaks TLS from the first byte (POP3S), as Mailpit's; "
            "sans:HOST,... makes a self-signed one"
        ),
        metavar="FILE",
    )
    pop3_tls_key: str = setting(
        "",
        flags=("--pop3-tls-key",),
        env="MP_POP3_TLS_KEY",
        help="PEM key",
        metavar="FILE",
    )
    pop3_tls_implicit: bool = setting(
        False,
        flags=("--pop3-tls-implicit",),
        env="MP_POP3_TLS_IMPLICIT",
        help="accepted: POP3 with a certificate speaks TLS from the first byte anyway",
    )
    pop3_starttls: bool = setting(
        False,
        flags=("--pop3-starttls",),
        env="MP_POP3_STARTTLS",
        help="with --pop3-tls-cert, POP3 starts in plain text and offers STLS instead",
    )
    imap_addr: str = setting(
        "",
        flags=("--imap",),
        env="MP_IMAP_BIND_ADDR",
        help="IMAP listen address, HOST:PORT, e.g. 127.0.0.1:1143 (default: off; needs logins)",
        metavar="ADDR",
    )
    imap_auth_file: str = setting(
        "",
        flags=("--imap-auth-file",),
        env="MP_IMAP_AUTH_FILE",
        help="file of user:password lines allowed to log in over IMAP (default: the POP3 logins)",
        metavar="FILE",
    )
    imap_auth: str = setting(
        "",
        flags=("--imap-auth",),
        env="MP_IMAP_AUTH",
        help="IMAP logins as space-separated user:password pairs (default: the POP3 logins)",
        metavar="PAIRS",
    )
    imap_tls_cert: str = setting(
        "",
        flags=("--imap-tls-cert",),
        env="MP_IMAP_TLS_CERT",
        help="PEM certificate for IMAP STARTTLS (or implicit TLS); sans:HOST,... self-signs one",
        metavar="FILE",
    )
    imap_tls_key: str = setting(
        "",
        flags=("--imap-tls-key",),
        env="MP_IMAP_TLS_KEY",
        help="PEM key",
        metavar="FILE",
    )
    imap_tls_implicit: bool = setting(
        False,
        flags=("--imap-tls-implicit",),
        env="MP_IMAP_TLS_IMPLICIT",
        help="IMAP speaks TLS from the first byte (IMAPS) instead of offering STARTTLS",
    )
    # --- observability and integrations ---
    # "": off; "true": /metrics on the UI listener; or ADDR:PORT
    enable_prometheus: str = setting(
        "",
        flags=("--enable-prometheus",),
        env="MP_ENABLE_PROMETHEUS",
        help=(
            "serve Prometheus metrics: true (or the flag alone) at /metrics of the web UI, or "
            "ADDR:PORT for a listener of their own"
        ),
        convert=parse_prometheus,
        metavar="true|ADDR:PORT",
        const="true",
    )
    webhook_url: str = setting(
        "",
        flags=("--webhook-url",),
        env="MP_WEBHOOK_URL",
        help="POST the summary of each new message to this URL (JSON, as Mailpit)",
        metavar="URL",
    )
    webhook_limit: int = setting(
        1,
        flags=("--webhook-limit",),
        env="MP_WEBHOOK_LIMIT",
        help=(
            "at most one webhook request every N seconds, as in Mailpit: messages in between "
            "are not sent (0: every message)"
        ),
        convert=parse_int,
        metavar="N",
    )
    webhook_rate: int = setting(
        0,
        flags=("--webhook-rate",),
        env="MP_WEBHOOK_RATE",
        help=(
            "at most N webhook requests a second, the others waiting their turn (0: no pacing); "
            "with --webhook-limit 0 every message is sent"
        ),
        convert=parse_int,
        metavar="N",
    )
    log_file: str = setting(
        "",
        flags=("--log-file",),
        env="MP_LOG_FILE",
        help="append the log to this file instead of standard error",
        metavar="PATH",
    )
    log_format: str = setting(
        "text",
        flags=("--log-format",),
        env="MP_LOG_FORMAT",
        help="text, or json for one JSON object per line (log collectors)",
        metavar="text|json",
    )
    # --- web UI and API access control ---
    ui_auth_file: str = setting(
        "",
        flags=("--ui-auth-file",),
        env="MP_UI_AUTH_FILE",
        help=(
            "require HTTP basic auth for the web UI, API and websocket: a file of user:password "
            "lines (bcrypt hashes from htpasswd -B accepted)"
        ),
        metavar="FILE",
    )
    ui_auth: str = setting(
        "",
        flags=("--ui-auth",),
        env="MP_UI_AUTH",
        help=(
            "the same as space-separated user:password pairs (prefer the variable: a flag shows in "
            "ps)"
        ),
        metavar="PAIRS",
    )
    send_api_auth_file: str = setting(
        "",
        flags=("--send-api-auth-file",),
        env="MP_SEND_API_AUTH_FILE",
        help="credentials for POST /api/v1/send alone (otherwise it takes the UI's)",
        metavar="FILE",
    )
    send_api_auth: str = setting(
        "",
        flags=("--send-api-auth",),
        env="MP_SEND_API_AUTH",
        help="the same as space-separated user:password pairs",
        metavar="PAIRS",
    )
    send_api_auth_accept_any: bool = setting(
        False,
        flags=("--send-api-auth-accept-any",),
        env="MP_SEND_API_AUTH_ACCEPT_ANY",
        help="POST /api/v1/send needs no credentials, even when the UI does",
    )
    ui_tls_cert: str = setting(
        "",
        flags=("--ui-tls-cert",),
        env="MP_UI_TLS_CERT",
        help=(
            "serve the web UI and API over HTTPS with this PEM certificate (sans:host1,host2 makes "
            "a self-signed one)"
        ),
        metavar="FILE",
    )
    ui_tls_key: str = setting(
        "",
        flags=("--ui-tls-key",),
        env="MP_UI_TLS_KEY",
        help="the PEM private key of --ui-tls-cert",
        metavar="FILE",
    )
    # --- browser protections ---
    api_cors: str = setting(
        "",
        flags=("--api-cors",),
        env="MP_API_CORS",
        help=(
            "let web pages of these other origins use the API and websocket, comma-separated (e.g. "
            "example.com,http://localhost:3000), or * for any; others get 403"
        ),
        metavar="ORIGINS",
    )
    allowed_hosts: str = setting(
        "",
        flags=("--allowed-hosts",),
        env="MP_ALLOWED_HOSTS",
        help=(
            "more Host names the web UI and API answer to, comma-separated (*.example.com for "
            "subdomains, * for any); IP addresses, localhost, names without a dot and this "
            "machine's names are always allowed (a guard against DNS rebinding)"
        ),
        metavar="HOSTS",
    )

    # --- Mailpit's remaining flags: its meaning, or accepted with a warning (config/notices.py) ---
    disable_wal: bool = setting(
        False,
        flags=("--disable-wal",),
        env="MP_DISABLE_WAL",
        help="do not use SQLite's write-ahead log for --database (allows NFS-mounted databases)",
    )
    disable_version_check: bool = setting(
        False,
        flags=("--disable-version-check",),
        env="MP_DISABLE_VERSION_CHECK",
        help="accepted as in Mailpit; mailpit_py never checks for new versions",
    )
    disable_auto_vacuum: bool = setting(
        False,
        flags=("--disable-auto-vacuum",),
        env="MP_DISABLE_AUTO_VACUUM",
        help="accepted as in Mailpit; mailpit_py runs no scheduled VACUUM",
    )
    # None: not given, which is 0 here (Mailpit's own default is 1)
    compression: int | None = setting(
        None,
        flags=("--compression",),
        env="MP_COMPRESSION",
        help="store raw messages compressed: 1 fastest, 2 standard, 3 smallest, 0 off (the "
        "default here; Mailpit's is 1)",
        convert=parse_int,
        metavar="0-3",
    )
    tenant_id: str = setting(
        "",
        flags=("--tenant-id",),
        env="MP_TENANT_ID",
        help="keep this tenant's data apart in a shared --database: a PostgreSQL schema of its "
        "own, or a SQLite file beside the one named (mail.db -> mail.ID.db)",
        metavar="ID",
    )
    use_message_dates: bool = setting(
        False,
        flags=("--use-message-dates",),
        env="MP_USE_MESSAGE_DATES",
        help="use each message's Date header as its received date",
    )
    ignore_duplicate_ids: bool = setting(
        False,
        flags=("--ignore-duplicate-ids",),
        env="MP_IGNORE_DUPLICATE_IDS",
        help="accept (250) but do not store a message whose Message-ID is already stored",
    )
    block_remote_css_and_fonts: bool = setting(
        False,
        flags=("--block-remote-css-and-fonts",),
        env="MP_BLOCK_REMOTE_CSS_AND_FONTS",
        help="the HTML view and the UI's preview load no remote CSS or fonts, as in Mailpit",
    )
    disable_link_check_rate_limit: bool = setting(
        False,
        flags=("--disable-link-check-rate-limit",),
        env="MP_DISABLE_LINK_CHECK_RATE_LIMIT",
        help="no per-domain rate limit or result cache in the link check (Mailpit's switch)",
    )
    allow_untrusted_tls: bool = setting(
        False,
        flags=("--allow-untrusted-tls",),
        env="MP_ALLOW_UNTRUSTED_TLS",
        help="the link check accepts HTTPS certificates it cannot verify, as in Mailpit",
    )
    disable_http_compression: bool = setting(
        False,
        flags=("--disable-http-compression",),
        env="MP_DISABLE_HTTP_COMPRESSION",
        help="do not gzip HTTP answers (by default they are, for clients that accept gzip)",
    )
    hide_delete_all_button: bool = setting(
        False,
        flags=("--hide-delete-all-button",),
        env="MP_HIDE_DELETE_ALL_BUTTON",
        help='hide the "Delete all" button in the web UI',
    )
    smtp_strict_rfc_headers: bool = setting(
        False,
        flags=("--smtp-strict-rfc-headers",),
        env="MP_SMTP_STRICT_RFC_HEADERS",
        help="refuse a message whose headers have a line ending <CR><CR><LF> (550 5.6.0), "
        "as Mailpit does",
    )
    smtp_disable_rdns: bool = setting(
        False,
        flags=("--smtp-disable-rdns",),
        env="MP_SMTP_DISABLE_RDNS",
        help="no reverse DNS lookup of SMTP clients (mailpit_py's default; wins over "
        "--smtp-reverse-dns)",
    )
    tag: str = setting(
        "",
        flags=("-t", "--tag"),
        env="MP_TAG",
        help="tag new messages matching search filters, e.g. 'tag1=from:a@example.com'",
        metavar="RULES",
    )
    tags_config: str = setting(
        "",
        flags=("--tags-config",),
        env="MP_TAGS_CONFIG",
        help="YAML file of tag filters, as Mailpit's",
        metavar="FILE",
    )
    tags_title_case: bool = setting(
        False,
        flags=("--tags-title-case",),
        env="MP_TAGS_TITLE_CASE",
        help="Title Case the tags made from plus-addresses and X-Tags",
    )
    tags_disable: str = setting(
        "",
        flags=("--tags-disable",),
        env="MP_TAGS_DISABLE",
        help="turn off auto-tagging, comma-separated: plus-addresses, x-tags",
        metavar="LIST",
    )
    tags_username: bool = setting(
        False,
        flags=("--tags-username",),
        env="MP_TAGS_USERNAME",
        help="tag each message with the SMTP AUTH user name that sent it",
    )
    # seconds
    webhook_delay: float = setting(
        0.0,
        flags=("--webhook-delay",),
        env="MP_WEBHOOK_DELAY",
        help="wait this long after a message arrives before its webhook request, e.g. 2 or 2s",
        convert=parse_duration,
        metavar="SECONDS",
    )

    def allowed_boxes(self, username: str | None) -> set[str] | None:
        """The mailboxes a UI/API/POP3/IMAP user may see (--mailbox-config's access:); None
        means every mailbox: no login, a user not listed, or one given "*"."""
        return mailbox_config(self).allowed_boxes(username)

    def box_max(self, name: str) -> int | None:
        """The mailbox's own max: from --mailbox-config; None when it has none (--max)."""
        return mailbox_config(self).box_max(name)


# The settings table in declaration order: the CLI's parser and `mailpit-py config` read it.
OPTIONS: tuple[Option, ...] = options_of(Config)


def field_names() -> list[str]:
    """Every Config field, those without a flag included, in declaration order."""
    return [f.name for f in fields(Config)]
