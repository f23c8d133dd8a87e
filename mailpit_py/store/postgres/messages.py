"""The PostgreSQL store's message writes (writer thread only, inside a job): insert, delete,
flags, tags, retention, check results, and the search index rows of a message."""

from __future__ import annotations

from collections.abc import Sequence

from mailpit_py.store.postgres.base import ALL_PLANS, PgParts, in_box, one_at_a_time, text
from mailpit_py.store.postgres.search_sql import build_where
from mailpit_py.store.postgres.words import substring_text, tsvector_literal
from mailpit_py.store.rawcodec import pack
from mailpit_py.store.records import MessageRecord, TagError
from mailpit_py.store.retention import retention_slack
from mailpit_py.store.search import Term

# Every table a message's rows live in goes with it (ON DELETE CASCADE); emptying the mailbox
# truncates them all at once instead (the counters are set to 0 by hand then).
MESSAGE_TABLES = (
    "messages, message_data, parts, tags, headers, messages_fts, message_checks, imap_flags"
)


class PgMessageWrites(PgParts):
    """Changes to messages; each runs in the writer thread, inside a batch's transaction."""

    # The message counts insert_message last saw, of every mailbox and of the message's own
    # (mailbox, count), for the prune that follows in the same job (writer thread).
    _kept_hint: int | None = None
    _box_hint: tuple[str, int] | None = None

    def stored_message_id(self, message_id: str, box: str | None = None) -> str | None:
        # Through messages_message_id (schema version 3), as on SQLite.
        where, params = in_box(box, "mailbox")
        row = self._wconn.execute(
            f"SELECT uid FROM messages WHERE message_id = %s AND {where} LIMIT 1",
            (text(message_id), *params),
        ).fetchone()
        return str(row[0]) if row else None

    def insert_message(self, rec: MessageRecord) -> int:
        # One statement, so one round trip: the message, its data, parts, tags and index rows
        # (each separate statement cost a round trip and more than doubled the writer's time).
        detail = rec.detail
        is_text = isinstance(detail, str)
        if isinstance(detail, str):
            detail = detail.encode("utf-8", "surrogatepass")
        columns = [text(c) for c in rec.fts[:4]]
        row = self._wconn.execute(
            # The count's row is locked before the id is drawn: an instance sharing the database
            # that inserts meanwhile waits here, without an id, until this transaction commits,
            # so ids (IMAP UIDs) become visible in the order they grow.
            "WITH l AS (SELECT value FROM counters WHERE name = 'total' FOR UPDATE), "
            "m AS (INSERT INTO messages (uid, mailbox, created, size, message_id, subject, "
            "from_json, to_json, cc_json, bcc_json, reply_to_json, username, snippet, "
            "attachments, inline_count, session_uid, refused, listener) "
            "SELECT %s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s FROM l RETURNING id), "
            "d AS (INSERT INTO message_data (id, detail, detail_is_text, transcript, raw) "
            "SELECT id, %b, %s, %s, %b FROM m), "
            "p AS (INSERT INTO parts (message, part_id, content_type, data) "
            "SELECT m.id, p.part_id, p.content_type, p.data FROM m, "
            "unnest(%s::text[], %s::text[], %s::bytea[]) AS p(part_id, content_type, data) "
            "ON CONFLICT DO NOTHING), "
            "t AS (INSERT INTO tags (message, tag) SELECT DISTINCT m.id, t.tag FROM m, "
            "unnest(%s::text[]) AS t(tag)), "
            "h AS (INSERT INTO headers (message, name, value) SELECT m.id, h.name, h.value "
            "FROM m, unnest(%s::text[], %s::text[]) AS h(name, value)), "
            "f AS (INSERT INTO messages_fts (id, words, text) "
            "SELECT id, %s::tsvector, %s FROM m) "
            # (the counts before this row, which its statement's trigger adds after: of every
            # mailbox, and of the message's own, whose row the trigger makes when missing)
            "SELECT m.id, l.value, (SELECT b.messages FROM mailboxes b WHERE b.name = %s) "
            "FROM m, l",
            (
                text(rec.uid),
                text(rec.mailbox),
                rec.created,
                rec.size,
                text(rec.message_id),
                text(rec.subject),
                text(rec.from_json),
                text(rec.to_json),
                text(rec.cc_json),
                text(rec.bcc_json),
                text(rec.reply_to_json),
                text(rec.username),
                text(rec.snippet),
                rec.attachments,
                rec.inline_count,
                text(rec.session_uid),
                text(rec.refused),
                text(rec.listener),
                detail,
                is_text,
                text(rec.transcript),
                pack(rec.raw, self.compression),
                [text(pid) for pid, _, _ in rec.parts],
                [text(ctype) for _, ctype, _ in rec.parts],
                [data for _, _, data in rec.parts],
                [text(t) for t in rec.tags],
                [text(n) for n, _ in rec.headers],
                [text(v) for _, v in rec.headers],
                tsvector_literal(columns),
                substring_text(columns),
                text(rec.mailbox),
            ),
        ).fetchone()
        assert row is not None
        self._kept_hint = int(row[1]) + 1  # for the prune that follows in this job
        self._box_hint = (text(rec.mailbox), int(row[2] or 0) + 1)
        return int(row[0])

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
        conn = self._wconn
        gone: list[tuple[str, float]] = []
        where, params = in_box(box, "mailbox")
        kept = self._count_kept(box) if max_messages > 0 else 0
        if max_messages > 0 and kept > max_messages + retention_slack(max_messages):
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

    def _count_kept(self, box: str | None) -> int:
        # The counter the triggers keep in this same transaction: one row, where count(*)
        # walks the table; read with the message just inserted, when there is one (a round
        # trip fewer per delivery).
        hint, self._kept_hint = self._kept_hint, None
        box_hint, self._box_hint = self._box_hint, None
        if box is None:
            if hint is not None:
                return hint
            row = self._wconn.execute("SELECT value FROM counters WHERE name = 'total'").fetchone()
        else:
            if box_hint is not None and box_hint[0] == box:
                return box_hint[1]
            row = self._wconn.execute(
                "SELECT messages FROM mailboxes WHERE name = %s", (text(box),)
            ).fetchone()
        return int(row[0]) if row else 0

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
