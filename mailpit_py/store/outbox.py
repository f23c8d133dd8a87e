"""The SQLite store's relay outbox: copies waiting to be sent, and every attempt's outcome."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from mailpit_py.store.base import SQLiteParts, chunks, dict_cursor


class Outbox(SQLiteParts):
    """The relay outbox, kept across restarts; writes run in the writer thread."""

    def outbox_add(
        self, uid: str, kind: str, mail_from: str, rcpts: Sequence[str], raw: bytes, now: float
    ) -> int:
        """Queue a delivery (writer thread only); returns its outbox id."""
        cur = self._wconn.execute(
            "INSERT INTO outbox (message_uid, kind, mail_from, recipients, raw, created, "
            "next_attempt) VALUES (?,?,?,?,?,?,?)",
            (uid, kind, mail_from, json.dumps(list(rcpts)), raw, now, now),
        )
        return int(cur.lastrowid or 0)

    def outbox_record(
        self,
        item_id: int,
        attempt: dict[str, Any],
        *,
        state: str,
        recipients: Sequence[str],
        next_attempt: float,
    ) -> None:
        """Log one attempt and move the item on (writer thread only); a done item drops its copy."""
        conn = self._wconn
        conn.execute(
            "INSERT INTO relay_attempts (message_uid, outbox_id, at, kind, recipients, server, "
            "reply, outcome) VALUES (?,?,?,?,?,?,?,?)",
            (
                attempt["message_uid"],
                item_id,
                attempt["at"],
                attempt["kind"],
                json.dumps(list(attempt["recipients"])),
                attempt["server"],
                attempt["reply"],
                attempt["outcome"],
            ),
        )
        conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, state = ?, recipients = ?, "
            "next_attempt = ?, raw = CASE WHEN ? = 'pending' THEN raw ELSE x'' END WHERE id = ?",
            (state, json.dumps(list(recipients)), next_attempt, state, item_id),
        )

    def _forget_relays(self, uids: Sequence[str] | None) -> None:
        """A deleted message's relay history goes with it (these, or every message when None);
        an outbox item still pending stays, with its attempts: it carries its own copy of the
        message and is delivered all the same."""
        conn = self._wconn
        not_pending = "outbox_id NOT IN (SELECT id FROM outbox WHERE state = 'pending')"
        if uids is None:
            conn.execute(f"DELETE FROM relay_attempts WHERE {not_pending}")
            conn.execute("DELETE FROM outbox WHERE state != 'pending'")
            return
        for chunk in chunks(list(uids), 500):
            marks = ",".join("?" * len(chunk))
            conn.execute(
                f"DELETE FROM relay_attempts WHERE message_uid IN ({marks}) AND {not_pending}",
                chunk,
            )
            conn.execute(
                f"DELETE FROM outbox WHERE message_uid IN ({marks}) AND state != 'pending'", chunk
            )

    def outbox_due(self, now: float, limit: int = 20) -> list[sqlite3.Row]:
        with self.reading() as conn:
            return (
                dict_cursor(conn)
                .execute(
                    "SELECT * FROM outbox WHERE state = 'pending' AND next_attempt <= ? "
                    "ORDER BY next_attempt, id LIMIT ?",
                    (now, limit),
                )
                .fetchall()
            )

    def outbox_next_time(self) -> float | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT min(next_attempt) FROM outbox WHERE state = 'pending'"
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def outbox_item(self, item_id: int) -> sqlite3.Row | None:
        with self.reading() as conn:
            return (
                dict_cursor(conn)
                .execute("SELECT * FROM outbox WHERE id = ?", (item_id,))
                .fetchone()
            )

    def relay_history(self, uid: str) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
        """(outbox items, attempts) of one message, oldest first."""
        with self.reading() as conn:
            cur = dict_cursor(conn)
            items = cur.execute(
                "SELECT id, kind, mail_from, recipients, created, attempts, next_attempt, state "
                "FROM outbox WHERE message_uid = ? ORDER BY id",
                (uid,),
            ).fetchall()
            attempts = cur.execute(
                "SELECT * FROM relay_attempts WHERE message_uid = ? ORDER BY id", (uid,)
            ).fetchall()
        return items, attempts

    def outbox_backlog(self) -> tuple[int, float | None]:
        """(pending items, creation time of the oldest), for the queue gauges at scrape time."""
        with self.reading() as conn:
            row = conn.execute(
                "SELECT count(*), min(created) FROM outbox WHERE state = 'pending'"
            ).fetchone()
        return int(row[0]), None if row[1] is None else float(row[1])

    def outbox_pending(self, limit: int = 1000) -> list[sqlite3.Row]:
        """Pending items, oldest first, each with the reply of its latest attempt (last_error,
        '' before the first); the raw copy is left out, a queue listing never needs it."""
        with self.reading() as conn:
            return (
                dict_cursor(conn)
                .execute(
                    "SELECT o.id, o.message_uid, o.kind, o.mail_from, o.recipients, o.created, "
                    "o.attempts, o.next_attempt, o.state, coalesce(("
                    # By message_uid first: relay_attempts is indexed on it, not on outbox_id.
                    "  SELECT a.reply FROM relay_attempts a WHERE a.message_uid = o.message_uid "
                    "  AND a.outbox_id = o.id ORDER BY a.id DESC LIMIT 1), '') AS last_error "
                    "FROM outbox o WHERE o.state = 'pending' ORDER BY o.created, o.id LIMIT ?",
                    (limit,),
                )
                .fetchall()
            )
