"""The settings table's general rows: listen addresses, the store and its limits, SMTP, logging."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from mailpit_py.config.option import setting
from mailpit_py.config.values import (
    age_limit,
    database_path,
    max_recipients,
    normalize_webroot,
    one_line,
    parse_duration,
    parse_int,
    parse_message_size,
)

DEFAULT_MAX_MESSAGE_SIZE = 50 * 1024 * 1024


@dataclass(frozen=True)
class GeneralSettings:
    """Where mailpit_py listens and stores, how much it keeps, how SMTP greets, how much it logs."""

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
            "SQLite database file to keep messages across restarts (a folder: mailpit.db in "
            "it); ':memory:' keeps them in memory; or a PostgreSQL server, "
            "postgresql://user:password@host:5432/database "
            "(shared by several instances; pip install 'mailpit-py[postgres]'); default: a "
            "temporary file removed at exit"
        ),
        convert=database_path,
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
        help="prune messages older than this, e.g. 12h or 3d (default, or 0: no age limit)",
        convert=age_limit,
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
        help="most recipients per message; more get 452 (0: the default, as in Mailpit)",
        convert=max_recipients,
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
        help="a label for this instance (white space and line breaks collapsed to one space, as "
        "in Mailpit)",
        convert=one_line,
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
