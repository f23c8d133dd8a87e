"""`mailpit-py reindex DATABASE` (Mailpit's `reindex`): the search index rebuilt from raw mail."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store.open import open_store
from mailpit_py.store.search import parse_query

ENV = Envelope("ann@example.com", ("bob@example.com",))
WORDS = ["aardvark", "bumblebee", "chinchilla", "dromedary", "echidna"]


def fill(database: str) -> None:
    mb = Mailbox(Config(database=database, max_messages=0))
    try:
        for word in WORDS:
            raw = (
                f"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: about the {word}\r\n"
                f"X-Animal: {word}-header\r\n\r\nThe {word} body text.\r\n"
            ).encode()
            mb.deliver(ENV, raw).result(10)
    finally:
        mb.close()


def empty_index(database: str) -> None:
    """Take every message out of the search index, as a damaged or foreign-built file has it."""
    if database.startswith("postgresql"):
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("TRUNCATE headers, messages_fts")
        return
    conn = sqlite3.connect(database)
    conn.execute("DELETE FROM headers")
    conn.execute("DELETE FROM messages_tri")  # (its content is read from messages_fts)
    conn.execute("DELETE FROM messages_fts")
    conn.commit()
    conn.close()


def matches(database: str, query: str) -> int:
    """How many messages a search finds, asked of the store alone (opening a Mailbox would
    index what it finds missing, and prove nothing about the command)."""
    store = open_store(database)
    try:
        return store.search_page(parse_query(query), 0, 10)[1]
    finally:
        store.close()


def reindex(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MP_")}
    return subprocess.run(
        [sys.executable, "-m", "mailpit_py", "reindex", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
    )


def test_reindex_rebuilds_an_emptied_search_index(database: str) -> None:
    fill(database)
    empty_index(database)
    assert matches(database, "chinchilla") == 0
    assert matches(database, "header:X-Animal:echidna") == 0
    done = reindex(database)
    assert done.returncode == 0, done.stderr
    assert "reindexed 5 messages" in done.stderr
    for word in WORDS:
        assert matches(database, word) == 1, word  # words
        assert matches(database, word[1:6]) == 1, word  # substrings (the trigram index)
        assert matches(database, f"header:X-Animal:{word}-header") == 1, word
    # Run again: the index is rebuilt, not doubled.
    assert reindex(database).returncode == 0
    assert matches(database, "bumblebee") == 1
    assert matches(database, "body") == 5


def test_reindex_replaces_a_stale_index(tmp_path: Path) -> None:
    db = str(tmp_path / "mail.db")
    fill(db)
    conn = sqlite3.connect(db)  # index text that no longer says what the message does
    conn.execute("DELETE FROM messages_tri")
    conn.execute("UPDATE messages_fts SET body = 'zebra'")
    conn.execute(
        "INSERT INTO messages_tri (rowid, subject, addresses, body, attachments) "
        "SELECT rowid, subject, addresses, body, attachments FROM messages_fts"
    )
    conn.commit()
    conn.close()
    assert matches(db, "zebra") == 5
    done = reindex(db)
    assert done.returncode == 0, done.stderr
    assert matches(db, "zebra") == 0
    assert matches(db, "dromedary") == 1


def test_a_missing_database_is_an_error_that_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    done = reindex(str(missing))
    assert done.returncode == 66
    assert f"no database at {missing}" in done.stderr
    assert not missing.exists()  # not created empty on the way
    done = reindex()
    assert done.returncode == 2 and "DATABASE" in done.stderr


def test_a_locked_database_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    db = str(tmp_path / "mail.db")
    fill(db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        done = reindex(db, "--wait", "0.2")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == 75, done.stderr
    assert "is locked" in done.stderr and "stop mailpit-py" in done.stderr


@pytest.mark.parametrize("argv", [["--help"]])
def test_reindex_is_listed_and_has_help(argv: list[str]) -> None:
    done = reindex(*argv)
    assert done.returncode == 0 and "rebuild" in done.stdout.lower()
    listed = subprocess.run(
        [sys.executable, "-m", "mailpit_py", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert "reindex" in listed.stdout
