"""Migrations sort a new index's entries in temporary files, not in memory (a whole index at
once: 381 MB for the header value index at 1,000,000 messages), and the connection gets its
in-memory temporary storage back afterwards."""

from __future__ import annotations

import re
import sqlite3

from mailpit_py.store.schema import migrate


def test_migrations_build_indexes_with_temporary_files_then_restore_memory() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA temp_store=MEMORY")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    migrate(conn, ":memory:")
    conn.set_trace_callback(None)
    temp_store = "MEMORY"
    indexes = 0
    for statement in statements:
        setting = re.match(r"\s*PRAGMA temp_store\s*=\s*(\w+)", statement, re.I)
        if setting:
            temp_store = setting[1].upper()
        elif re.match(r"\s*CREATE (UNIQUE )?INDEX", statement, re.I):
            indexes += 1
            assert temp_store in ("FILE", "1"), statement
    assert indexes > 5
    assert conn.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY again
