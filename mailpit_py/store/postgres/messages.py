"""The PostgreSQL store's message writes (writer thread only, inside a job): insert, delete,
flags, tags, retention, check results, and the search index rows of a message."""

from __future__ import annotations

from collections.abc import Sequence

from mailpit_py.store.postgres.base import ALL_PLANS, PgParts, in_box, one_at_a_time, text
from mailpit_py.store.postgres.search_sql import build_where
from mailpit_py.store.postgres.words import substring_text, tsvector_literal
from mailpit_py.store.records import TagError
from mailpit_py.store.retention import retention_slack
from mailpit_py.store.search import Term

# Every table a message's rows live in goes with it (ON DELETE CASCADE); emptying the mailbox
# truncates them all at once instead (the counters are set to 0 by hand then).
MESSAGE_TABLES = (
    "messages, message_data, parts, tags, headers, messages_fts, message_checks, imap_flags"
)


class PgMessageWrites(PgParts):
    """Changes to messages; each runs in the writer thread, inside a batch's transaction."""

    def stored_message_id(self, message_id: str, box: str | None = None) -> str | None:
        # Through messages_message_id (schema version 3), as on SQLite.
        where, params = in_box(box, "mailbox")
        row = self._wconn.execute(
            f"SELECT uid FROM messages WHERE message_id = %s AND {where} LIMIT 1",
            (text(message_id), *params),
        ).fetchone()
        return str(row[0]) if row else None

    def queue_index(
        self, rowid: int, headers: Sequence[tuple[str, str]], fts: Sequence[str]
    ) -> None:
        """Write a message's index rows now, in this transaction: a message is searchable
        from its commit on, so index_barrier has nothing to wait for."""
        conn = self._wconn
        conn.execute("DELETE FROM headers WHERE message = %s", (rowid,))
        if headers:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO headers (message, name, value) VALUES (%s, %s, %s)",
                    [(rowid, text(n), text(v)) for n, v in headers],
                )
        columns = [text(c) for c in fts[:4]]
        conn.execute(
            "INSERT INTO messages_fts (id, words, text) VALUES (%s, %s::tsvector, %s) "
            "ON CONFLICT (id) DO UPDATE SET words = excluded.words, text = excluded.text",
            (rowid, tsvector_literal(columns), substring_text(columns)),
        )

    def message_matches(self, rowid: int, queries: Sequence[Sequence[Term]]) -> list[bool]:
        out: list[bool] = []
        for terms in queries:
            where, params = build_where(terms)
            row = self._wconn.execute(
                f"SELECT 1 FROM messages m WHERE m.id = %s AND {where}", (rowid, *params)
            ).fetchone()
            out.append(row is not None)
        return out

    def _add_tags(self, rowid: int, tags: Sequence[str]) -> None:
        with self._wconn.cursor() as cur:
            cur.executemany(
                "INSERT INTO tags (message, tag) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [(rowid, text(t)) for t in tags],
            )

    def delete_messages(self, uids: Sequence[str], box: str | None = None) -> list[str]:
        where, params = in_box(box, "mailbox")
        rows = self._wconn.execute(
            f"DELETE FROM messages WHERE uid = ANY(%s) AND {where} RETURNING uid",
            ([text(u) for u in uids], *params),
        ).fetchall()
        gone = [r[0] for r in rows]
        self._forget_relays(gone)
        return gone

    def delete_all(self, box: str | None = None) -> int:
        conn = self._wconn
        if box is not None:
            # One mailbox's rows go one by one (with what cascades from them); the others stay.
            gone = [
                r[0]
                for r in conn.execute(
                    "DELETE FROM messages WHERE mailbox = %s RETURNING uid", (text(box),)
                )
            ]
            self._forget_relays(gone)
            return len(gone)
        row = conn.execute("SELECT value FROM counters WHERE name = 'total'").fetchone()
        n = int(row[0]) if row else 0
        # TRUNCATE frees the tables at once (row by row, 100k messages cascade for seconds);
        # it fires no trigger, so the kept counts are set to 0 here.
        conn.execute(f"TRUNCATE {MESSAGE_TABLES}")
        conn.execute("UPDATE counters SET value = 0 WHERE name IN ('total', 'unread')")
        conn.execute("UPDATE mailboxes SET messages = 0, unread = 0")
        self._forget_relays(None)
        return n

    def clear_search_index(self) -> None:
        self._wconn.execute("TRUNCATE headers, messages_fts")

    def set_read(self, uids: Sequence[str] | None, read: bool, box: str | None = None) -> list[str]:
        flag = 1 if read else 0
        where, params = in_box(box, "mailbox")
        if uids is None:
            rows = self._wconn.execute(
                f"UPDATE messages SET read = %s WHERE read <> %s AND {where} RETURNING uid",
                (flag, flag, *params),
            ).fetchall()
        else:
            rows = self._wconn.execute(
                "UPDATE messages SET read = %s WHERE read <> %s AND uid = ANY(%s) "
                f"AND {where} RETURNING uid",
                (flag, flag, [text(u) for u in uids], *params),
            ).fetchall()
        return [r[0] for r in rows]

    def prune(
        self, max_messages: int, older_than: float | None, box: str | None = None
    ) -> list[str]:
        """As SQLite's, and safe with several instances on one database: rows another
        instance's retention is deleting are skipped (SKIP LOCKED), and only what this
        transaction deleted is returned, so each message is pruned, and announced, once.
        With a mailbox, its own newest `max_messages` are kept (retention per mailbox)."""
        gone: list[tuple[str, float]] = []
        where, params = in_box(box, "mailbox")
        # (the count kept with the messages queued: no statement, and no writing of the queued
        # messages, until there is something to delete)
        over = max_messages > 0 and self._count_kept(box) > max_messages + retention_slack(
            max_messages
        )
        if not over and older_than is None:
            return []
        conn = self._wconn
        if over:
            gone += conn.execute(
                "DELETE FROM messages WHERE id IN (SELECT id FROM messages "
                f"WHERE {where} ORDER BY id DESC "
                "OFFSET %s FOR UPDATE SKIP LOCKED) RETURNING uid, created",
                (*params, max_messages),
            ).fetchall()
        if older_than is not None:
            gone += conn.execute(
                "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE created < %s "
                f"AND {where} FOR UPDATE SKIP LOCKED) RETURNING uid, created",
                (older_than, *params),
            ).fetchall()
        if not gone:
            return []
        retired = max(r[1] for r in gone)
        if box is None:
            self._retired_until = max(self._retired_until, retired)
        else:
            # Sessions older than every kept message of this mailbox go now, and this
            # mailbox's alone: the log-wide mark would take other mailboxes' sessions. (The
            # newest session stays, as insert_session keeps it.)
            conn.execute(
                "DELETE FROM sessions WHERE mailbox = %s AND ended < %s "
                "AND id < (SELECT max(id) FROM sessions)",
                (text(box), retired),
            )
        uids = list(dict.fromkeys(r[0] for r in gone))
        self._forget_relays(uids)
        return uids

    def set_tags(
        self, uids: Sequence[str], tags: Sequence[str], box: str | None = None
    ) -> list[tuple[str, list[str]]]:
        conn = self._wconn
        out: list[tuple[str, list[str]]] = []
        wanted = sorted(set(tags))
        where, params = in_box(box, "mailbox")
        for uid in uids:
            row = conn.execute(
                f"SELECT id FROM messages WHERE uid = %s AND {where}", (text(uid), *params)
            ).fetchone()
            if row is None:
                continue
            conn.execute("DELETE FROM tags WHERE message = %s", (row[0],))
            self._add_tags(row[0], wanted)
            out.append((uid, wanted))
        return out

    def rename_tag(self, old: str, new: str, box: str | None = None) -> list[tuple[str, list[str]]]:
        """As SQLite's: tag names are one whatever their case; renaming a tag nobody has, or
        onto another existing tag, raises TagError; '' as `new` removes the tag. With a
        mailbox, only its messages' tags are looked at and changed."""
        conn = self._wconn
        old, new = text(old), text(new)
        scope, params = in_box(box)
        if box is not None:
            scope = f"message IN (SELECT m.id FROM messages m WHERE {scope})"
        if new:
            if not conn.execute(
                f"SELECT 1 FROM tags WHERE lower(tag) = lower(%s) AND {scope} LIMIT 1",
                (old, *params),
            ).fetchone():
                raise TagError(f"tag not found: {old}")
            if (
                new.lower() != old.lower()
                and conn.execute(
                    f"SELECT 1 FROM tags WHERE lower(tag) = lower(%s) AND {scope} LIMIT 1",
                    (new, *params),
                ).fetchone()
            ):
                raise TagError(f"tag already exists: {new}")
            ids = [
                r[0]
                for r in conn.execute(
                    f"DELETE FROM tags WHERE lower(tag) = lower(%s) AND {scope} RETURNING message",
                    (old, *params),
                ).fetchall()
            ]
            ids = sorted(set(ids))
            for mid in ids:
                self._add_tags(mid, [new])
            return self._tags_of_ids(ids)
        ids = sorted(
            r[0]
            for r in conn.execute(
                f"DELETE FROM tags WHERE tag = %s AND {scope} RETURNING message", (old, *params)
            ).fetchall()
        )
        return self._tags_of_ids(ids)

    def _tags_of_ids(self, ids: Sequence[int]) -> list[tuple[str, list[str]]]:
        if not ids:
            return []
        rows = self._wconn.execute(
            'SELECT m.uid, coalesce(array_agg(t.tag ORDER BY t.tag COLLATE "C") '
            "FILTER (WHERE t.tag IS NOT NULL), '{}') FROM messages m "
            "LEFT JOIN tags t ON t.message = m.id WHERE m.id = ANY(%s) GROUP BY m.id, m.uid "
            "ORDER BY m.id",
            (list(ids),),
        ).fetchall()
        return [(r[0], list(r[1])) for r in rows]

    def uids_matching(self, terms: Sequence[Term], box: str | None = None) -> list[str]:
        scope, scope_params = in_box(box)
        _, each = one_at_a_time(self._wconn, box)
        where, params = build_where(terms, each)
        rows = self._wconn.execute(
            f"SELECT m.uid FROM messages m WHERE {scope} AND {where} ORDER BY m.id DESC",
            (*scope_params, *params),
        ).fetchall()
        if each:
            self._wconn.execute(ALL_PLANS)
        return [r[0] for r in rows]

    def set_imap_flags(self, changes: dict[int, set[str]]) -> None:
        conn = self._wconn
        for message, flags in changes.items():
            conn.execute("DELETE FROM imap_flags WHERE message = %s", (message,))
            if flags:
                conn.execute(
                    "INSERT INTO imap_flags (message, flag) SELECT m.id, f FROM messages m, "
                    "unnest(%s::text[]) f WHERE m.id = %s",
                    ([text(f) for f in sorted(flags)], message),
                )

    def save_checks(self, uid: str, checked: float, result: str) -> bool:
        cur = self._wconn.execute(
            "INSERT INTO message_checks (message, checked, result) "
            "SELECT id, %s, %s FROM messages WHERE uid = %s "
            "ON CONFLICT (message) DO UPDATE SET checked = excluded.checked, "
            "result = excluded.result",
            (checked, text(result), text(uid)),
        )
        return cur.rowcount > 0
