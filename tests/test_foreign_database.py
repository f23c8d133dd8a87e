"""A database file that belongs to another program, Mailpit's own above all, is refused at
start-up untouched, instead of getting mailpit_py's tables written beside its own."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mailpit_py.store.records import StoreError
from mailpit_py.store.sqlite import Store

REPO = Path(__file__).resolve().parents[1]


def mailpit_database(path: Path) -> None:
    # Mailpit's schema (its storage/schemas/1.0.0.sql), the tables a migrating user's
    # MP_DATABASE file holds.
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE mailbox (Sort INTEGER PRIMARY KEY AUTOINCREMENT, ID TEXT NOT NULL, "
        "Data BLOB, Search TEXT, Read INTEGER);"
        "CREATE TABLE mailbox_data (ID TEXT KEY NOT NULL, Email BLOB);"
        "CREATE TABLE settings (Key TEXT, Value TEXT);"
        "INSERT INTO mailbox (ID, Data, Search, Read) VALUES ('x', '{}', 'hello', 0);"
    )
    conn.commit()
    conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mailpit_own_database_is_refused_at_start_up_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "mailpit.db"
    mailpit_database(db)
    before = digest(db)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailpit_py",
            "-d",
            str(db),
            "-s",
            "127.0.0.1:0",
            "-l",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MP_DATABASE": ""},
        cwd=REPO,
    )
    assert proc.returncode != 0
    assert "is Mailpit's own database" in proc.stderr, proc.stderr
    assert "mailpit-py dump" in proc.stderr and "give --database a new file" in proc.stderr
    assert digest(db) == before
    names = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert "messages" not in names


def test_another_program_tables_are_refused_by_name(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE users (id INTEGER); CREATE TABLE orders (id INTEGER);")
    conn.close()
    with pytest.raises(StoreError, match=r"another program's tables \(orders, users\)"):
        Store(str(db))


def test_an_empty_file_and_our_own_database_still_open(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    Store(str(empty)).close()
    Store(str(empty)).close()  # reopened: our own tables now, at the newest version
