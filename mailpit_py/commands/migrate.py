"""`mailpit-py migrate`: copy every message, mailbox and the SMTP session log between stores."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from mailpit_py.commands._common import (
    EX_CANTCREAT,
    EX_DATAERR,
    EX_NOINPUT,
    EX_OK,
    EX_SOFTWARE,
    EX_USAGE,
    CommandError,
    Progress,
    error,
)
from mailpit_py.store.schema import DEFAULT_BOX, is_mailpit_file

if TYPE_CHECKING:
    from mailpit_py.mailbox.facade import Mailbox
    from mailpit_py.store.interface import StoreBackend
    from mailpit_py.store.records import MessageRecord, Row, SessionRecord

PROG = "mailpit-py migrate"

EXAMPLES = """\
A store is a SQLite database file or a PostgreSQL URL (postgresql://USER:PASS@HOST:5432/DB).
Each message keeps its ID, received time, raw bytes (byte for byte), envelope, tags, read
state, IMAP flags, check results and mailbox; the SMTP session log is copied too, each session
in its mailbox, and every mailbox, empty ones too, with its creation time. Not copied: the relay
outbox (copies waiting to be sent). Stop the servers on both stores first, or messages that
arrive meanwhile may be missed; the destination must be empty unless --append is given.

exit status: 0 done; 64 bad usage; 65 the destination is not empty (without --append), or a
file is a database of Mailpit itself; 66 the source is missing or cannot be opened; 73 the
destination cannot be opened; 70 the copy stopped midway, or the destination refused some
messages (each is named; the rest are copied).

examples:
  mailpit-py migrate --from mail.db --to postgresql://mailpit:secret@db:5432/mailpit
  mailpit-py migrate --from postgresql://mailpit:secret@db/mailpit --to backup.db
  mailpit-py migrate --from old.db --to new.db --append
"""

# A write job holds at most this many messages, or this many bytes of raw mail: few commits
# for many small messages, and a batch of big ones never sits in memory together.
BATCH_MESSAGES = 200
BATCH_BYTES = 32 * 1024 * 1024
SESSIONS_PAGE = 1000
PROGRESS_EVERY = 5.0  # seconds between progress lines when stderr is not a terminal


def is_url(spec: str) -> bool:
    from mailpit_py.store.open import is_postgres

    return is_postgres(spec)


def shown(spec: str) -> str:
    """A store as it may be printed: a URL without its password, as the server logs it."""
    from mailpit_py.store.open import display_name

    return display_name(spec)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Copy every message, with its ID, time, raw bytes, tags, read state and "
        "mailbox, every mailbox, and the SMTP session log from one store to another: SQLite to "
        "PostgreSQL, back, or SQLite to SQLite.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--from",
        dest="source",
        metavar="SRC",
        required=True,
        help="the store to read: a SQLite database file or a postgresql:// URL",
    )
    parser.add_argument(
        "--to",
        dest="dest",
        metavar="DST",
        required=True,
        help="the store to write: a SQLite database file (created if missing) or a "
        "postgresql:// URL (its database must exist)",
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="add to a destination that already holds messages (those with an ID it already "
        "has, and sessions it already has, are skipped)",
    )
    return parser


def open_store(spec: str, role: str, code: int) -> Mailbox:
    """The store `spec` names, opened as the server opens it (so its schema is brought up to
    date); a Mailbox without retention, whose store the copy reads or writes."""
    from mailpit_py.config.settings import Config
    from mailpit_py.mailbox.facade import Mailbox
    from mailpit_py.store.records import StoreError

    try:
        return Mailbox(Config(database=spec, max_messages=0))
    except (StoreError, OSError, ImportError) as exc:
        raise CommandError(f"cannot open the {role} {shown(spec)}: {exc}", code) from None


def check_paths(source: str, dest: str) -> None:
    if ":memory:" in (source, dest):
        raise CommandError(
            "':memory:' is no store to copy from or to: give a database file or a URL", EX_USAGE
        )
    if not is_url(source) and not os.path.isfile(source):
        raise CommandError(
            f"--from {source}: no such database file (give the file the server was run with "
            "-d/--database, or a postgresql:// URL)",
            EX_NOINPUT,
        )
    if not is_url(dest):
        parent = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(parent):
            raise CommandError(
                f"--to {dest}: the directory {parent} does not exist: create it first",
                EX_CANTCREAT,
            )
    for flag, spec in (("--from", source), ("--to", dest)):
        if not is_url(spec) and os.path.isfile(spec) and is_mailpit_file(spec):
            raise CommandError(
                f"{flag} {spec} is a database of Mailpit itself, which migrate does not read or "
                "write (it copies between mailpit_py's stores). To bring Mailpit's messages "
                "over, run Mailpit on it and `mailpit-py dump --url http://MAILPIT:8025/ DIR`, "
                "then `mailpit-py ingest DIR` (the messages get new IDs)",
                EX_DATAERR,
            )
    same = source == dest
    if not is_url(source) and not is_url(dest) and os.path.exists(dest):
        same = os.path.samefile(source, dest)
    if same:
        raise CommandError("--from and --to name the same store: nothing to copy", EX_USAGE)


@dataclass
class Outcome:
    messages: int = 0
    skipped: int = 0
    sessions: int = 0
    sessions_skipped: int = 0
    mailboxes: int = 0  # made in the destination (it lacked them)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (message ID, why)


# Where each field of the copy's MessageRecord comes from: as the source stored it, or made
# again from the raw bytes (tests/test_migrate.py fails on a field added to the record and
# named in neither, so a new stored fact cannot be lost by a migration unnoticed).
FROM_SOURCE = [
    "uid",
    "created",
    "username",
    "session_uid",
    "raw",
    "detail",
    "transcript",
    "tags",
    "message_id",
    "subject",
    "from_json",
    "to_json",
    "cc_json",
    "bcc_json",
    "reply_to_json",
    "snippet",
    "attachments",
    "inline_count",
    "refused",
    "listener",
    "mailbox",
]
REBUILT = ["size", "parts", "headers", "fts"]


def message_record(src: StoreBackend, uid: str) -> tuple[MessageRecord, int] | None:
    """A stored message as insert_message takes it, from the source's reads: its raw bytes
    parsed again for the parts and the search index, and every field the source stored (ID,
    time, summary, envelope and detail, transcript, tags) as it stored it; and its read flag."""
    from mailpit_py.mailbox.record import build_record
    from mailpit_py.models import Envelope
    from mailpit_py.parse.message import parse_message
    from mailpit_py.store import detailcodec

    found = src.message_data(uid)
    raw = src.raw(uid)
    if found is None or raw is None:
        return None  # deleted meanwhile
    row, detail, transcript = found
    env = detailcodec.decode(detail).get("Envelope") or {}
    columns = row.keys()
    envelope = Envelope(str(env.get("From", "")), tuple(env.get("To") or ()))
    rec = build_record(
        uid,
        parse_message(raw, envelope),
        raw,
        created=float(row["created"]),
        username=row["username"],
        session_uid=row["session_uid"],
        transcript=transcript,
        envelope=envelope,
    )
    rec = rec._replace(
        detail=detail,  # as stored: it holds what parsing alone cannot know (origin, ...)
        tags=json.loads(row["tags_json"] or "[]"),
        message_id=row["message_id"],
        subject=row["subject"],
        from_json=row["from_json"],
        to_json=row["to_json"],
        cc_json=row["cc_json"],
        bcc_json=row["bcc_json"],
        reply_to_json=row["reply_to_json"],
        snippet=row["snippet"],
        attachments=int(row["attachments"]),
        inline_count=int(row["inline_count"]),
        # Receiver simulation: a refused message stays refused, and keeps its listener's name.
        refused=str(row["refused"] or "") if "refused" in columns else "",
        listener=str(env.get("Listener") or ""),
        mailbox=str(row["mailbox"]),
    )
    return rec, int(row["read"])


@dataclass
class Item:
    rec: MessageRecord
    read: bool
    flags: set[str]
    checks: str | None


def batches(
    src: StoreBackend, uids: Sequence[str], flags: dict[int, set[str]], ids: dict[str, int]
) -> Iterator[list[Item]]:
    batch: list[Item] = []
    size = 0
    for uid in uids:
        made = message_record(src, uid)
        if made is None:
            continue
        rec, read = made
        batch.append(Item(rec, bool(read), flags.get(ids[uid], set()), src.checks(uid)))
        size += rec.size
        if len(batch) >= BATCH_MESSAGES or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def write_batch(dst: StoreBackend, batch: list[Item]) -> None:
    """One write job: the messages, then their read flags, IMAP flags and check results."""
    now = time.time()

    def job(store: StoreBackend) -> None:
        flags: dict[int, set[str]] = {}
        for item in batch:
            rowid = store.insert_message(item.rec)
            if item.read:
                store.set_read([item.rec.uid], True)
            if item.flags:
                flags[rowid] = item.flags
            if item.checks is not None:
                store.save_checks(item.rec.uid, now, item.checks)
        if flags:
            store.set_imap_flags(flags)

    dst.write(job, timeout=None)


def write_batches(dst: StoreBackend, batch: list[Item], out: Outcome) -> None:
    """Write a batch. When it fails while the destination works (its health check passes),
    the store refused one of its messages: each is then written alone, and those refused are
    counted with the reason. A destination that does not work stops the copy."""
    try:
        write_batch(dst, batch)
        out.messages += len(batch)
        return
    except Exception:
        if dst.health():
            raise  # the database, not a message: stop, saying why
    for item in batch:
        try:
            write_batch(dst, [item])
            out.messages += 1
        except Exception as exc:
            if dst.health():
                raise
            out.failed.append((item.rec.uid, str(exc) or type(exc).__name__))


def copy_mailboxes(src: StoreBackend, dst: StoreBackend, out: Outcome) -> None:
    """Every mailbox of the source the destination lacks, empty ones too, with its creation
    time. Made before the messages: a message's first arrival would otherwise make its
    mailbox, created at that message's time. The default mailbox, which every store makes
    when it is made, takes the source's time when that is earlier (--append: the older)."""
    boxes = src.mailboxes()

    def job(store: StoreBackend) -> None:
        for name, _, _, created in boxes:
            if store.create_mailbox(name, created):
                out.mailboxes += 1
            elif name == DEFAULT_BOX:
                store.backdate_mailbox(name, created)

    dst.write(job, timeout=None)


def copy_messages(src: StoreBackend, dst: StoreBackend, progress: Progress, out: Outcome) -> None:
    index = src.index()  # oldest first: the destination numbers them (IMAP UIDs) in that order
    ids = {uid: rowid for rowid, uid, *_ in index}
    todo = [uid for _, uid, *_ in index]
    if dst.counts()[0]:  # --append: what the destination has already is skipped
        todo = [uid for uid in todo if dst.summary(uid) is None]
    out.skipped = len(index) - len(todo)
    progress.total = len(todo)
    flags = src.imap_flags()
    said = time.monotonic()
    for batch in batches(src, todo, flags, ids):
        write_batches(dst, batch, out)
        progress.update(f"{out.messages} messages", count=out.messages)
        if not progress.enabled and time.monotonic() - said >= PROGRESS_EVERY:
            # Not a terminal (a log, a CI job): a plain line now and then instead of the bar.
            said = time.monotonic()
            print(f"{PROG}: {out.messages}/{len(todo)} messages copied", file=sys.stderr)
    dst.index_barrier(timeout=None)


def session_record(row: Row) -> SessionRecord:
    """A logged session as insert_session takes it: every field of the record from the column
    of its name (a field the source's rows lack fails loudly rather than being dropped)."""
    from mailpit_py.store.records import SessionRecord

    values = {f.name: row[f.name] for f in fields(SessionRecord)}
    messages = values["messages"]
    values["messages"] = json.loads(messages) if isinstance(messages, str) else list(messages)
    values["tls"] = bool(values["tls"])
    values["started"], values["ended"] = float(values["started"]), float(values["ended"])
    return SessionRecord(**values)


def copy_sessions(src: StoreBackend, dst: StoreBackend, out: Outcome) -> None:
    rows = []
    start = 0
    while True:
        page = list(src.sessions(start, SESSIONS_PAGE))
        rows.extend(page)
        if len(page) < SESSIONS_PAGE:
            break
        start += SESSIONS_PAGE
    records = []
    held = dst.session_count()
    for row in reversed(rows):  # oldest first, as they were logged
        if held and dst.session(row["uid"]) is not None:
            out.sessions_skipped += 1
            continue
        records.append(session_record(row))
    if not records:
        return
    keep = held + len(records)  # the server's --smtp-session-history trims later

    def job(store: StoreBackend) -> None:
        for rec in records:
            store.insert_session(rec, keep)

    dst.write(job, timeout=None)
    out.sessions = len(records)


def migrate(source: str, dest: str, append: bool) -> Outcome:
    from mailpit_py.store.records import StoreError

    check_paths(source, dest)
    src_box = open_store(source, "source", EX_NOINPUT)
    try:
        dst_box = open_store(dest, "destination", EX_CANTCREAT)
        try:
            src, dst = src_box.store, dst_box.store
            held, sessions = dst.counts()[0], dst.session_count()
            if (held or sessions) and not append:
                raise CommandError(
                    f"the destination {shown(dest)} already holds {held} messages and "
                    f"{sessions} sessions: migrate into an empty database, or add --append to "
                    "add to them (messages and sessions it already has are skipped)",
                    EX_DATAERR,
                )
            out = Outcome()
            progress = Progress("migrate")
            try:
                copy_mailboxes(src, dst, out)
                copy_messages(src, dst, progress, out)
                copy_sessions(src, dst, out)
            except Exception as exc:  # a lost database, or a bug: said in one line, no trace
                why = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
                raise CommandError(
                    f"copying stopped after {out.messages} messages: {why} (what was copied "
                    "stays; run again with --append to copy the rest)",
                    EX_SOFTWARE,
                ) from None
            finally:
                progress.done()
            return out
        finally:
            dst_box.close()
    finally:
        src_box.close()


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    # The stores log what fails with a traceback (the server's log); here each failure is
    # reported once, in words, below.
    logging.getLogger("mailpit_py").addHandler(logging.NullHandler())
    try:
        out = migrate(args.source, args.dest, args.append)
    except CommandError as exc:
        error(PROG, str(exc))
        return exc.code
    skipped = ""
    if out.skipped or out.sessions_skipped:
        skipped = (
            f" (already there, skipped: {out.skipped} messages, {out.sessions_skipped} sessions)"
        )
    print(
        f"{PROG}: copied {out.messages} messages and {out.sessions} sessions from "
        f"{shown(args.source)} to {shown(args.dest)}{skipped}",
        file=sys.stderr,
    )
    if out.failed:
        for uid, why in out.failed:
            error(PROG, f"message {uid} was not copied: the destination refused it ({why})")
        error(
            PROG,
            f"{len(out.failed)} messages were not copied (listed above); the rest were. Fix "
            "the cause and run again with --append to copy just those.",
        )
        return EX_SOFTWARE
    return EX_OK
