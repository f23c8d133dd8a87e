"""Command line: flags and MP_* environment variables -> Config -> a running Server."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mailpit_py import __version__, commands, logsetup
from mailpit_py.config import (
    Config,
    ConfigError,
    normalize_webroot,
    parse_duration,
    parse_size,
)
from mailpit_py.smtp import AddressInUse
from mailpit_py.store import StoreError

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
