"""`mailpit-py ingest`: import .eml files, mbox files and Maildir folders, over SMTP into a
running instance or straight into a database file. A bad file never stops the rest."""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import email.utils
import mailbox as stdlib_mailbox
import os
import smtplib
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mailpit_py.commands._common import (
    DEFAULT_SMTP_ADDR,
    EX_DATAERR,
    EX_NOINPUT,
    EX_OK,
    EX_TEMPFAIL,
    EX_USAGE,
    CommandError,
    Progress,
    add_max_message_size,
    error,
    header_addresses,
    refused_hint,
    smtp_target,
)

PROG = "mailpit-py ingest"
ENV_ADDR = "MP_SENDMAIL_SMTP_ADDR"
FALLBACK_RCPT = "undisclosed-recipients@localhost"

EXAMPLES = f"""\
Each PATH is an .eml file, an mbox file (it starts with "From "), a Maildir folder (with
cur/, new/ and tmp/), or a directory searched recursively for .eml files and Maildirs.
The envelope comes from the headers: the sender from Return-Path, Sender or From; the
recipients from To, Cc and Bcc (else Delivered-To or X-Original-To, else {FALLBACK_RCPT}).

exit status: 0 all imported; 65 some messages failed; 66 a PATH is missing or unreadable;
75 the server cannot be reached (nothing more is tried); 64 bad usage.

examples:
  mailpit-py ingest ~/mail/archive.mbox ~/Maildir
  mailpit-py ingest --smtp-addr 127.0.0.1:2525 samples/
  mailpit-py ingest --database mail.db samples/*.eml   # no server needed
  mailpit-py ingest --database mail.db --mailbox shop out/shop/   # into the mailbox shop
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Import .eml files, mbox files and Maildir folders into mailpit-py: over "
        "SMTP into a running instance, or straight into a database file with --database.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files and folders to import")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "-S",  # Mailpit's short form
        "--smtp-addr",
        metavar="ADDR",
        help=f"SMTP address of the running instance (default: ${ENV_ADDR}, else "
        f"{DEFAULT_SMTP_ADDR})",
    )
    where.add_argument(
        "-d",
        "--database",
        metavar="FILE",
        help="write straight into this SQLite database file (created if missing); a running "
        "server on the same file sees the messages but its web UI does not refresh by itself",
    )
    parser.add_argument(
        "--mailbox",
        metavar="NAME",
        help="with --database: store the messages in this mailbox (made when missing; default: "
        "the default mailbox). Over SMTP the server's routes pick each message's mailbox "
        "(--mailbox-route on the server, e.g. NAME=listener:LISTENER)",
    )
    parser.add_argument(
        "-r",
        "--recent",
        type=int,
        default=0,
        metavar="DAYS",
        help="only files modified in the last DAYS days, as Mailpit's ingest (default: all)",
    )
    add_max_message_size(parser, "skip a message larger than this", "ingest")
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="do not list each message that fails (the summary still counts them)",
    )
    return parser


# -- sources ----------------------------------------------------------------------------------


def is_maildir(path: Path) -> bool:
    return all((path / d).is_dir() for d in ("cur", "new", "tmp"))


Item = tuple[str, "bytes | Exception"]  # (where, raw bytes or why it cannot be read)


def _old(path: Path, cutoff: float) -> bool:
    """True when --recent excludes the file: modified before `cutoff` (0: none is excluded)."""
    try:
        return bool(cutoff) and path.stat().st_mtime < cutoff
    except OSError:
        return False  # read (and reported) as it would be without --recent


def messages(path: Path, skipped: Counter[str], cutoff: float = 0.0) -> Iterator[Item]:
    """Every message under one PATH; unreadable ones come as exceptions, never raised.
    Files modified before `cutoff` (--recent) are skipped."""
    if path.is_dir():
        if is_maildir(path):
            yield from maildir(path)
            return
        for root, dirs, files in os.walk(path):
            dirs.sort()
            here = Path(root)
            for d in list(dirs):
                if is_maildir(here / d):
                    dirs.remove(d)
                    yield from maildir(here / d)
            for name in sorted(files):
                if name.lower().endswith(".eml") and _old(here / name, cutoff):
                    skipped["older than --recent"] += 1
                elif name.lower().endswith(".eml"):
                    yield from single(here / name)
                else:
                    skipped["not an .eml file"] += 1
        return
    if _old(path, cutoff):
        skipped["older than --recent"] += 1
        return
    try:
        with path.open("rb") as f:
            head = f.read(5)
    except OSError as exc:
        yield str(path), exc
        return
    if head == b"From ":
        yield from mbox(path)
    else:
        yield from single(path)


def count_messages(path: Path) -> int:
    """How many messages `messages(path)` will yield, cheaply (for the progress bar)."""
    try:
        if path.is_dir():
            if is_maildir(path):
                return sum(len(os.listdir(path / d)) for d in ("cur", "new"))
            total = 0
            for root, dirs, files in os.walk(path):
                here = Path(root)
                for d in list(dirs):
                    if is_maildir(here / d):
                        dirs.remove(d)
                        total += count_messages(here / d)
                total += sum(1 for name in files if name.lower().endswith(".eml"))
            return total
        with path.open("rb") as f:
            if f.read(5) != b"From ":
                return 1
            f.seek(0)
            # mbox: each message starts with a "From " line at the start of a line.
            return sum(1 for line in f if line.startswith(b"From "))
    except OSError:
        return 1


def single(path: Path) -> Iterator[Item]:
    try:
        yield str(path), path.read_bytes()
    except OSError as exc:
        yield str(path), exc


def mbox(path: Path) -> Iterator[Item]:
    try:
        box = stdlib_mailbox.mbox(str(path), create=False)
        keys = box.keys()
    except Exception as exc:
        yield str(path), exc
        return
    for n, key in enumerate(keys, 1):
        where = f"{path} message {n}"
        try:
            yield where, box.get_bytes(key)
        except Exception as exc:
            yield where, exc
    box.close()


def maildir(path: Path) -> Iterator[Item]:
    try:
        box = stdlib_mailbox.Maildir(str(path), factory=None, create=False)
        keys = sorted(box.keys())
    except Exception as exc:
        yield str(path), exc
        return
    for key in keys:
        try:
            yield f"{path}/{key}", box.get_bytes(key)
        except Exception as exc:
            yield f"{path}/{key}", exc


def envelope_of(raw: bytes) -> tuple[str, list[str], float | None]:
    """(sender, recipients, Date as a timestamp) from the headers."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    senders = header_addresses(headers, ("Return-Path",)) or header_addresses(
        headers, ("Sender", "From")
    )
    rcpts = header_addresses(headers, ("To", "Cc", "Bcc")) or header_addresses(
        headers, ("Delivered-To", "X-Original-To")
    )
    date = None
    try:
        parsed = email.utils.parsedate_to_datetime(str(headers.get("Date", "")))
        date = parsed.timestamp() if parsed.tzinfo else None
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    return (senders[0] if senders else ""), rcpts, date


# -- targets ----------------------------------------------------------------------------------


class SmtpTarget:
    def __init__(self, addr_text: str, flag: str) -> None:
        self.addr_text = addr_text
        self.flag = flag
        self.address = smtp_target(addr_text, flag)
        self.client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        try:
            client = smtplib.SMTP(*self.address, timeout=60)
            client.ehlo()
        except (OSError, smtplib.SMTPException) as exc:
            raise CommandError(
                refused_hint("the SMTP server", self.addr_text, exc, self.flag), EX_TEMPFAIL
            ) from None
        return client

    def open(self) -> None:
        self.client = self._connect()

    def deliver(self, raw: bytes) -> None:
        sender, rcpts, _ = envelope_of(raw)
        rcpts = rcpts or [FALLBACK_RCPT]
        for attempt in (1, 2):
            if self.client is None:
                self.client = self._connect()
            options: list[str] = []
            if not all(a.isascii() for a in [sender, *rcpts]) and self.client.has_extn("smtputf8"):
                options.append("SMTPUTF8")
            try:
                self.client.sendmail(sender, rcpts, raw, mail_options=options)
                return
            except smtplib.SMTPServerDisconnected:
                self.client = None  # e.g. the idle timeout: reconnect once
                if attempt == 2:
                    raise
            except smtplib.SMTPException:
                try:
                    self.client.rset()
                except (OSError, smtplib.SMTPException):
                    self.client = None
                raise

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (OSError, smtplib.SMTPException):
                self.client.close()


class DatabaseTarget:
    def __init__(self, path: str, box: str | None = None) -> None:
        self.path = path
        self.box = box  # None: the default mailbox, as the server stores unrouted mail
        self.mb: Any = None

    def open(self) -> None:
        from mailpit_py.config.settings import Config
        from mailpit_py.mailbox.facade import Mailbox
        from mailpit_py.store.records import StoreError

        try:
            self.mb = Mailbox(Config(database=self.path, max_messages=0))
        except (StoreError, OSError) as exc:
            raise CommandError(f"cannot open database {self.path}: {exc}", EX_NOINPUT) from None

    def deliver(self, raw: bytes) -> None:
        from mailpit_py.models import Envelope

        sender, rcpts, date = envelope_of(raw)
        boxes = None if self.box is None else {self.box: rcpts}
        envelope = Envelope(sender, tuple(rcpts))
        self.mb.deliver(envelope, raw, received_at=date, boxes=boxes).result()

    def close(self) -> None:
        if self.mb is not None:
            self.mb.close()


def describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, msg = next(iter(exc.recipients.values()))
        return f"refused: {code} {msg.decode(errors='replace')}"
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error
        text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        return f"refused: {exc.smtp_code} {text}"
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"{type(exc).__name__}: {exc}"


def mailbox_error(args: argparse.Namespace) -> str | None:
    """What is wrong with --mailbox, said with the way to fix it; None when nothing is."""
    from mailpit_py.mailbox.boxes import clean_box_name, is_box_name

    if args.mailbox is None:
        return None
    if not args.database:
        return (
            f"--mailbox {args.mailbox}: over SMTP the server's routes choose each message's "
            "mailbox, so ingest cannot: write into its database with --database FILE --mailbox "
            "NAME (stop the server first, or restart it after), or route on the server, e.g. "
            "--smtp-listener import=127.0.0.1:2526,mailbox=NAME or --mailbox-route "
            "NAME=rcpt:GLOB, and ingest with -S to that address"
        )
    if not is_box_name(args.mailbox):
        try:
            return f"--mailbox {args.mailbox!r} is no mailbox name: write --mailbox " + (
                clean_box_name(args.mailbox)
            )
        except ValueError as exc:
            return f"--mailbox: {exc}"
    return None


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    wrong = mailbox_error(args)
    if wrong:
        error(PROG, wrong)
        return EX_USAGE
    if args.database:
        target: SmtpTarget | DatabaseTarget = DatabaseTarget(args.database, args.mailbox)
        into = f"database {args.database}"
        if args.mailbox:
            into = f"mailbox {args.mailbox} of {into}"
    else:
        addr = args.smtp_addr or os.environ.get(ENV_ADDR) or DEFAULT_SMTP_ADDR
        flag = "--smtp-addr" if args.smtp_addr or not os.environ.get(ENV_ADDR) else ENV_ADDR
        try:
            target = SmtpTarget(addr, flag)
        except CommandError as exc:
            error(PROG, str(exc))
            return EX_USAGE
        into = f"SMTP {addr}"
    cutoff = time.time() - args.recent * 86400 if args.recent > 0 else 0.0
    imported = 0
    skipped: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    missing = False
    progress = Progress("ingest")
    if progress.enabled:
        progress.total = sum(count_messages(Path(p)) for p in args.paths)
    done = 0
    try:
        target.open()
        for path_text in args.paths:
            path = Path(path_text)
            if not path.exists():
                missing = True
                failed["no such file or folder"] += 1
                error(PROG, f"{path_text}: no such file or folder (skipped; going on)")
                continue
            for where, item in messages(path, skipped, cutoff):
                if isinstance(item, Exception):
                    why = describe(item)
                    if isinstance(item, OSError) and not isinstance(item, smtplib.SMTPException):
                        missing = True
                    failed[why] += 1
                    error(PROG, f"{where}: {why}")
                elif not item.strip():
                    skipped["empty"] += 1
                elif args.max_message_size and len(item) > args.max_message_size:
                    skipped["larger than --max-message-size"] += 1
                else:
                    try:
                        target.deliver(item)
                        imported += 1
                    except CommandError:
                        raise
                    except Exception as exc:
                        why = describe(exc)
                        failed[why] += 1
                        if not args.quiet:
                            error(PROG, f"{where}: {why}")
                done += 1
                progress.update(
                    f"{imported} imported, {sum(skipped.values())} skipped, "
                    f"{sum(failed.values())} failed",
                    count=done,
                )
    except CommandError as exc:
        progress.done()
        error(PROG, f"{exc} ({imported} imported before that)")
        return exc.code
    finally:
        target.close()
    progress.done()
    print(summary(imported, skipped, failed, into))
    if sum(failed.values()) > failed_missing(failed):
        return EX_DATAERR
    return EX_NOINPUT if missing else EX_OK


def failed_missing(failed: Counter[str]) -> int:
    return failed["no such file or folder"] + failed["no such file"]


def summary(imported: int, skipped: Counter[str], failed: Counter[str], into: str) -> str:
    def reasons(c: Counter[str]) -> str:
        return " (" + "; ".join(f"{n} {why}" for why, n in c.most_common()) + ")" if c else ""

    return (
        f"{imported} imported into {into}, {sum(skipped.values())} skipped{reasons(skipped)}, "
        f"{sum(failed.values())} failed{reasons(failed)}"
    )
