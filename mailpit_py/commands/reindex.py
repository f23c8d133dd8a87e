"""`mailpit-py reindex DATABASE`: rebuild the search index from the stored raw messages, as
Mailpit's `reindex` does."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailpit_py.commands._common import (
    EX_DATAERR,
    EX_NOINPUT,
    EX_OK,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    CommandError,
    Progress,
    error,
)

if TYPE_CHECKING:
    from mailpit_py.store.interface import StoreBackend
    from mailpit_py.store.records import MessageRecord

PROG = "mailpit-py reindex"

EXAMPLES = """\
Every message's search index (its words, substrings and header values) is made again from its
stored raw bytes, as the running server makes it at delivery: after the index was damaged,
or to have older messages searched as this version searches. Messages, their IDs, tags, read
state and mailboxes are not changed; their summaries (subject, snippet...) stay as parsed at
arrival.

Stop the server using the database first (as Mailpit advises): while this runs, its searches
would miss the messages not indexed yet, and its writes would wait on the database.

exit status: 0 done; 2 bad usage; 65 not a mailpit-py database; 66 no such database;
75 the database is locked by another process (try again once it is stopped); 70 failed.

examples:
  mailpit-py reindex mail.db
  mailpit-py reindex /data/mailpit.db --wait 30
  mailpit-py reindex postgresql://mailpit:secret@db:5432/mailpit
"""

# Messages parsed and queued per write: their index text is held in memory until written.
BATCH_MESSAGES = 200
BATCH_BYTES = 32 * 1024 * 1024
PROGRESS_EVERY = 5.0  # seconds between progress lines when stderr is not a terminal


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Rebuild the search index of a database from its stored messages "
        "(Mailpit's reindex).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "database",
        metavar="DATABASE",
        help="the database file the server ran with (--database), or a PostgreSQL URL",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for a database another process holds locked (default: 5)",
    )
    return parser


def _sqlite_journal(path: str) -> bool:
    """Whether the SQLite file at `path` is a mailpit_py database in WAL mode (kept so: a file
    made with --disable-wal must not be switched to WAL on the way); CommandError when it is
    missing or not one of ours. Read-only: nothing is created or changed here."""
    if not os.path.isfile(path):
        raise CommandError(
            f"no database at {path}: give the file the server ran with (--database)", EX_NOINPUT
        )
    from mailpit_py.store.open import sqlite_file
    from mailpit_py.store.records import StoreError

    try:
        version, wal = sqlite_file(path)
    except StoreError as exc:
        if "locked" in str(exc):
            raise _locked(path) from None
        raise CommandError(
            f"{path} is not a database mailpit-py can read: {exc}", EX_DATAERR
        ) from None
    if version == 0:
        raise CommandError(
            f"{path} is not a mailpit-py database (no schema version): a Mailpit database "
            "cannot be read here; give the file mailpit-py ran with",
            EX_DATAERR,
        )
    return wal


def _locked(database: str) -> CommandError:
    return CommandError(
        f"{database} is locked by another process: stop mailpit-py (or what else holds it), "
        "then run reindex again, or give --wait SECONDS to wait longer",
        EX_TEMPFAIL,
    )


def _open(database: str, wait: float) -> StoreBackend:
    from mailpit_py.store.open import display_name, is_postgres, open_store
    from mailpit_py.store.records import StoreError

    wal = True if is_postgres(database) else _sqlite_journal(database)
    try:
        return open_store(database, busy_timeout=wait, wal=wal)
    except StoreError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise _locked(display_name(database)) from None
        raise CommandError(str(exc), EX_NOINPUT) from None


def reindex(database: str, wait: float, progress: Progress) -> int:
    """Rebuild the index; the number of messages indexed."""
    from mailpit_py.mailbox.record import index_record
    from mailpit_py.store.open import display_name
    from mailpit_py.store.records import StoreError

    shown = display_name(database)
    store = _open(database, wait)
    try:
        rowids = [row[0] for row in store.index()]
        progress.total = len(rowids)
        store.write(lambda s: s.clear_search_index(), timeout=None)
        done = 0
        said = time.monotonic()
        batch: list[tuple[int, MessageRecord]] = []
        size = 0
        for rowid in rowids:
            found = store.raw_for_index(rowid)
            if found is None:  # deleted since the list was read
                continue
            batch.append((rowid, index_record(*found)))
            size += len(found[1])
            if len(batch) >= BATCH_MESSAGES or size >= BATCH_BYTES:
                done += _write(store, batch)
                batch, size = [], 0
                progress.update(f"{done} messages", count=done)
                if not progress.enabled and time.monotonic() - said >= PROGRESS_EVERY:
                    said = time.monotonic()
                    print(f"{PROG}: {done}/{len(rowids)} messages", file=sys.stderr)
        done += _write(store, batch)
        missing = store.unindexed()
        if missing:
            raise CommandError(
                f"{len(missing)} messages of {shown} could not be indexed (the database was "
                "busy): run reindex again",
                EX_TEMPFAIL,
            )
        return done
    except StoreError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise _locked(shown) from None
        raise CommandError(f"{shown}: {exc}", EX_SOFTWARE) from None
    finally:
        progress.done()
        store.close()


def _write(store: StoreBackend, batch: list[tuple[int, MessageRecord]]) -> int:
    """Queue a batch's index rows in one write, then have them written before the next."""
    if not batch:
        return 0

    def job(s: StoreBackend) -> None:
        for rowid, rec in batch:
            s.queue_index(rowid, rec.headers, rec.fts)

    store.write(job, timeout=None)
    store.index_barrier(timeout=None)
    return len(batch)


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.wait < 0:
        error(PROG, "--wait must be 0 or more seconds")
        return 2
    started = time.monotonic()
    try:
        count = reindex(args.database, args.wait, Progress("reindex"))
    except CommandError as exc:
        error(PROG, str(exc))
        return exc.code
    from mailpit_py.store.open import display_name

    print(
        f"{PROG}: reindexed {count} messages of {display_name(args.database)} in "
        f"{time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return EX_OK
