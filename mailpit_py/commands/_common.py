"""What the sub-commands share: sysexits codes, addresses, errors and a progress line."""

from __future__ import annotations

import argparse
import base64
import email.utils
import sys
import time
import urllib.parse
from collections.abc import Iterable
from email.message import Message
from typing import IO

from mailpit_py.config.errors import ConfigError
from mailpit_py.config.values import parse_message_size, split_hostport

# sysexits.h, as sendmail uses them.
EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_NOPERM = 77

DEFAULT_SMTP_ADDR = "127.0.0.1:1025"


class CommandError(Exception):
    """A failure to report on stderr as `mailpit-py NAME: error: ...` with an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """Where a command reads mail from: a running instance's API (--url, or Mailpit's --http)
    or a database file (-d/--database), one or the other."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--url",
        "--http",  # Mailpit's name
        dest="url",
        help="base URL of the instance, webroot included, with user:password@ before the host "
        "to log in (default: from MP_UI_BIND_ADDR and MP_WEBROOT, else http://127.0.0.1:8025/)",
    )
    where.add_argument("-d", "--database", metavar="FILE", help="read this database file")


def split_credentials(url: str) -> tuple[str, str | None]:
    """The URL without its `user:password@`, and the Basic Authorization value they make (None
    when it has none): Mailpit's dump (Go's HTTP client) logs in with a URL's user info, so a
    `--http http://user:pass@host/` against an instance behind --ui-auth-file works there;
    urllib took the user info for part of the host name."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), f"Basic {token}"


def _megabytes(value: str) -> int:
    try:
        return parse_message_size(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_max_message_size(parser: argparse.ArgumentParser, what: str, command: str) -> None:
    """Mailpit's --max-message-size of dump and ingest: megabytes (0 = no limit) or a size with
    a unit, 50 MB by default; args.max_message_size is in bytes."""
    parser.add_argument(
        "--max-message-size",
        type=_megabytes,
        default=50 * 1024**2,
        metavar="MB",
        help=f"{what}, in megabytes as Mailpit's {command} (default: 50; 0 = no limit)",
    )


def smtp_target(value: str, flag: str = "--smtp-addr") -> tuple[str, int]:
    """HOST:PORT to connect to; 0.0.0.0 and :: (listen-all) mean this host."""
    try:
        host, port = split_hostport(value, flag)
    except ConfigError as exc:
        raise CommandError(str(exc), EX_USAGE) from None
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if port == 0:
        raise CommandError(
            f"{flag}: {value!r} has port 0: give the port the server listens on", EX_USAGE
        )
    return host, port


def refused_hint(what: str, address: str, exc: BaseException, flag: str) -> str:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return (
        f"cannot connect to {what} at {address} ({reason}): is mailpit-py running there? "
        f"Start it with `mailpit-py`, or point {flag} at the address it listens on"
    )


def header_addresses(msg: Message, names: Iterable[str]) -> list[str]:
    """Bare addresses from the given headers, in order, without duplicates."""
    values: list[str] = []
    for name in names:
        key = name.lower()
        # The raw values: a compat32 header with 8-bit bytes reads back with U+FFFD for each,
        # so a UTF-8 address (RFC 6532) became one nobody has. The parser keeps such bytes as
        # surrogates: as UTF-8 they are the address as written.
        values.extend(_as_text(v) for k, v in msg.raw_items() if k.lower() == key)
    found: list[str] = []
    for _, addr in email.utils.getaddresses(values):
        addr = addr.strip()
        if addr and "@" in addr and addr not in found:
            found.append(addr)
    return found


def _as_text(value: object) -> str:
    """A raw header value as text, its 8-bit bytes (kept as surrogates) read as UTF-8."""
    if not isinstance(value, str):
        return str(value)
    try:
        return value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # parsed from text, not bytes: already what was written
        return value


def error(prog: str, message: str) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)


class Progress:
    """A progress line on stderr, redrawn at most ten times a second, only on a TTY.

    With a known total it is a bar (`[#####.....] 50% 5/10`); without one, a counter.
    """

    WIDTH = 24

    def __init__(self, label: str, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.label = label
        self.total: int | None = None
        self._last = 0.0
        self._drawn = False

    def update(self, text: str, force: bool = False, count: int | None = None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if force or now - self._last >= 0.1:
            self._last = now
            self.stream.write(f"\r{self.label}: {self.bar(count)}{text}\x1b[K")
            self.stream.flush()
            self._drawn = True

    def bar(self, count: int | None) -> str:
        if count is None or not self.total:
            return ""
        share = min(count / self.total, 1.0)
        filled = round(share * self.WIDTH)
        return f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {share:4.0%} {count}/{self.total} "

    def done(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
