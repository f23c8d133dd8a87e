"""--ignore-duplicate-ids looks a Message-ID up through an index (migration 14), not a scan."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store.messages import STORED_MESSAGE_ID_SQL
from mailpit_py.store.schema import MIGRATIONS, statements

ENV = Envelope("ann@example.com", ("bob@example.com",))


def plan(db: str) -> str:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {STORED_MESSAGE_ID_SQL}", ("<x@y>",)).fetchall()
    finally:
        conn.close()
    return " | ".join(str(row[-1]) for row in rows)


def test_the_duplicate_lookup_uses_the_message_id_index(tmp_path: Path) -> None:
    db = str(tmp_path / "mail.db")
    mb = Mailbox(Config(database=db, max_messages=0, ignore_duplicate_ids=True))
    try:
        raw = b"Message-ID: <same@example.com>\r\nSubject: one\r\n\r\nhi\r\n"
        mb.deliver(ENV, raw).result(10)
        mb.deliver(ENV, raw.replace(b"one", b"two")).result(10)
        assert mb.counts()[0] == 1  # the second was a duplicate
    finally:
        mb.close()
    used = plan(db)
    assert "USING COVERING INDEX messages_message_id" in used or (
        "USING INDEX messages_message_id" in used
    ), used
    assert "SCAN" not in used, used


@pytest.mark.parametrize("stopped_at", [14, len(MIGRATIONS)])
def test_a_database_that_passed_an_empty_14_gets_the_index_at_open(
    tmp_path: Path, stopped_at: int
) -> None:
    db = str(tmp_path / "mail.db")
    conn = sqlite3.connect(db, isolation_level=None)
    for number in range(stopped_at):  # the schema as it was with 14 an empty placeholder
        if number != 13:
            for statement in statements(MIGRATIONS[number]):
                conn.execute(statement)
    conn.execute("DROP INDEX IF EXISTS messages_message_id")
    conn.execute(f"PRAGMA user_version = {stopped_at}")
    conn.close()
    assert "SCAN" in plan(db)
    Mailbox(Config(database=db, max_messages=0)).close()
    assert "messages_message_id" in plan(db)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
