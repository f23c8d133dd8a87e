"""The PostgreSQL store's relay outbox: copies waiting to be sent, and every attempt's outcome."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mailpit_py.store.postgres.base import PgParts, PgRow, rows, text

# How long an item handed to one instance's relay worker stays its own: longer than one attempt
# can last (commands of 30 s each and up to 10 minutes for the reply to the end of the data),
# so another instance never sends a copy that is still being sent; if the instance died
# meanwhile, another retries the item after this.
CLAIM_LEASE = 900.0


class PgOutbox(PgParts):
    """The relay outbox, kept across restarts; writes run in the writer thread."""

    def outbox_add(
        self, uid: str, kind: str, mail_from: str, rcpts: Sequence[str], raw: bytes, now: float
    ) -> int:
        row = self._wconn.execute(
            "INSERT INTO outbox (message_uid, kind, mail_from, recipients, raw, created, "
            "next_attempt) VALUES (%s,%s,%s,%s,%b,%s,%s) RETURNING id",
            (text(uid), kind, text(mail_from), text(json.dumps(list(rcpts))), raw, now, now),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def outbox_record(
        self,
        item_id: int,
        attempt: dict[str, Any],
        *,
        state: str,
        recipients: Sequence[str],
        next_attempt: float,
    ) -> None:
        conn = self._wconn
        conn.execute(
            "INSERT INTO relay_attempts (message_uid, outbox_id, at, kind, recipients, server, "
            "reply, outcome) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
            (
                text(attempt["message_uid"]),
                item_id,
                attempt["at"],
                attempt["kind"],
                text(json.dumps(list(attempt["recipients"]))),
                text(attempt["server"]),
                text(attempt["reply"]),
                attempt["outcome"],
            ),
        )
        conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, state = %s, recipients = %s, "
            "next_attempt = %s, raw = CASE WHEN %s = 'pending' THEN raw ELSE ''::bytea END "
            "WHERE id = %s",
            (state, text(json.dumps(list(recipients))), next_attempt, state, item_id),
        )

    def _forget_relays(self, uids: Sequence[str] | None) -> None:
        """A deleted message's relay history goes with it (these, or every message when None);
        a pending item stays with its attempts: it carries its own copy of the message."""
        conn = self._wconn
        not_pending = "outbox_id NOT IN (SELECT id FROM outbox WHERE state = 'pending')"
        if uids is None:
            conn.execute(f"DELETE FROM relay_attempts WHERE {not_pending}")
            conn.execute("DELETE FROM outbox WHERE state <> 'pending'")
            return
        if not uids:
            return
        ids = [text(u) for u in uids]
        conn.execute(
            f"DELETE FROM relay_attempts WHERE message_uid = ANY(%s) AND {not_pending}", (ids,)
        )
        conn.execute(
            "DELETE FROM outbox WHERE message_uid = ANY(%s) AND state <> 'pending'", (ids,)
        )

    def outbox_due(self, now: float, limit: int = 20) -> list[PgRow]:
        """As SQLite's, and with several instances on one database each due item goes to one
        of them: the items returned are claimed (due again CLAIM_LEASE seconds on, unless the
        attempt records its outcome first), and items another instance is claiming are skipped
        (FOR UPDATE SKIP LOCKED). The rows carry their due time as it was."""
        with self.reading() as conn:
            return rows(
                conn,
                "WITH c AS (SELECT * FROM outbox WHERE state = 'pending' AND next_attempt <= %s "
                "ORDER BY next_attempt, id LIMIT %s FOR UPDATE SKIP LOCKED), "
                "u AS (UPDATE outbox o SET next_attempt = %s FROM c WHERE o.id = c.id) "
                "SELECT * FROM c ORDER BY next_attempt, id",
                (now, limit, now + CLAIM_LEASE),
            )

    def outbox_next_time(self) -> float | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT min(next_attempt) FROM outbox WHERE state = 'pending'"
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def outbox_item(self, item_id: int) -> PgRow | None:
        with self.reading() as conn:
            found = rows(conn, "SELECT * FROM outbox WHERE id = %s", (item_id,))
        return found[0] if found else None

    def relay_history(self, uid: str) -> tuple[list[PgRow], list[PgRow]]:
        with self.reading() as conn:
            items = rows(
                conn,
                "SELECT id, kind, mail_from, recipients, created, attempts, next_attempt, state "
                "FROM outbox WHERE message_uid = %s ORDER BY id",
                (text(uid),),
            )
            attempts = rows(
                conn,
                "SELECT * FROM relay_attempts WHERE message_uid = %s ORDER BY id",
                (text(uid),),
            )
        return items, attempts

    def outbox_backlog(self) -> tuple[int, float | None]:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT count(*), min(created) FROM outbox WHERE state = 'pending'"
            ).fetchone()
        assert row is not None
        return int(row[0]), None if row[1] is None else float(row[1])

    def outbox_pending(self, limit: int = 1000) -> list[PgRow]:
        with self.reading() as conn:
            return rows(
                conn,
                "SELECT o.id, o.message_uid, o.kind, o.mail_from, o.recipients, o.created, "
                "o.attempts, o.next_attempt, o.state, coalesce(("
                "  SELECT a.reply FROM relay_attempts a WHERE a.message_uid = o.message_uid "
                "  AND a.outbox_id = o.id ORDER BY a.id DESC LIMIT 1), '') AS last_error "
                "FROM outbox o WHERE o.state = 'pending' ORDER BY o.created, o.id LIMIT %s",
                (limit,),
            )
