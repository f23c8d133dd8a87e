"""The SQLite store's message writes (writer thread only, inside a job): insert, delete,
flags, tags, retention, check results."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from mailpit_py.store.base import BLOB_CHUNK, chunks, write_blob
from mailpit_py.store.drain import Drain, set_aside
from mailpit_py.store.rawcodec import pack
from mailpit_py.store.records import MessageRecord, TagError
from mailpit_py.store.retention import retention_slack
from mailpit_py.store.schema import (
    COUNTER_TRIGGER_NAMES,
    COUNTER_TRIGGERS,
    FTS_SCHEMA,
    MAILBOX_TRIGGER_NAMES,
    MAILBOX_TRIGGERS,
    TRIGRAM_SCHEMA,
)
from mailpit_py.store.search import Term
from mailpit_py.store.search_sql import build_where

# --ignore-duplicate-ids' lookup of a Message-ID (a test reads its query plan).
STORED_MESSAGE_ID_SQL = "SELECT uid FROM messages WHERE message_id = ? LIMIT 1"
STORED_MESSAGE_ID_IN_BOX_SQL = (
    "SELECT uid FROM messages WHERE message_id = ? AND mailbox = ? LIMIT 1"
)


log = logging.getLogger(__name__)

# The tables delete all renames aside for the writer to free later (drain.py): all but the
# small ones (WITHOUT ROWID tables, which a step could not walk by rowid, are among those).
# The word index before the trigram index, which reads its text from it.
SET_ASIDE = (
    "messages",
    "message_data",
    "parts",
    "headers",
    "message_checks",
    "messages_fts",
    "messages_tri",
)


def in_box(box: str | None, column: str = "mailbox") -> tuple[str, tuple[str, ...]]:
    """(" AND column = ?", (box,)) limiting a query to one mailbox; nothing for every one."""
    return ("", ()) if box is None else (f" AND {column} = ?", (box,))


class MessageWrites(Drain):
    """Changes to messages; each runs in the writer thread, inside a batch's transaction."""

    def stored_message_id(self, message_id: str, box: str | None = None) -> str | None:
        # Through the messages_message_id index (migration 14), as Mailpit's lookup is.
        if box is None:
            row = self._wconn.execute(STORED_MESSAGE_ID_SQL, (message_id,)).fetchone()
        else:
            row = self._wconn.execute(STORED_MESSAGE_ID_IN_BOX_SQL, (message_id, box)).fetchone()
        return str(row[0]) if row else None

    def insert_message(self, rec: MessageRecord) -> int:
        conn = self._wconn
        cur = conn.execute(
            "INSERT INTO messages (uid, mailbox, created, size, message_id, subject, from_json, "
            "to_json, cc_json, bcc_json, reply_to_json, username, snippet, attachments, "
            "inline_count, session_uid, refused, listener) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                rec.uid,
                rec.mailbox,
                rec.created,
                rec.size,
                rec.message_id,
                rec.subject,
                rec.from_json,
                rec.to_json,
                rec.cc_json,
                rec.bcc_json,
                rec.reply_to_json,
                rec.username,
                rec.snippet,
                rec.attachments,
                rec.inline_count,
                rec.session_uid,
                rec.refused,
                rec.listener,
            ),
        )
        rowid = int(cur.lastrowid or 0)
        raw = pack(rec.raw, self.compression)
        if len(raw) <= BLOB_CHUNK:
            conn.execute(
                "INSERT INTO message_data (id, raw, detail, transcript) VALUES (?,?,?,?)",
                (rowid, raw, rec.detail, rec.transcript),
            )
        else:
            conn.execute(
                "INSERT INTO message_data (id, detail, transcript, raw) VALUES (?,?,?,zeroblob(?))",
                (rowid, rec.detail, rec.transcript, len(raw)),
            )
            write_blob(conn, "message_data", "raw", rowid, raw)
        small = [
            (rowid, pid, ctype, data) for pid, ctype, data in rec.parts if len(data) <= BLOB_CHUNK
        ]
        if small:
            conn.executemany(
                "INSERT INTO parts (message, part_id, content_type, data) VALUES (?,?,?,?)", small
            )
        for pid, ctype, data in rec.parts:
            if len(data) > BLOB_CHUNK:
                part_row = conn.execute(
                    "INSERT INTO parts (message, part_id, content_type, data) "
                    "VALUES (?,?,?,zeroblob(?))",
                    (rowid, pid, ctype, len(data)),
                ).lastrowid
                write_blob(conn, "parts", "data", int(part_row or 0), data)
        if rec.tags:
            conn.executemany(
                "INSERT OR IGNORE INTO tags (message, tag) VALUES (?,?)",
                [(rowid, t) for t in rec.tags],
            )
        self.queue_index(rowid, rec.headers, rec.fts)
        return int(rowid or 0)

    def _delete_rowids(self, rowids: Sequence[int]) -> None:
        conn = self._wconn
        self.unqueue_index(rowids)
        for chunk in chunks(rowids, 500):
            marks = ",".join("?" * len(chunk))
            # The trigram index keeps no text of its own: it forgets a row by being told the
            # values it indexed, read from the word index while that still has them.
            conn.execute(
                "INSERT INTO messages_tri (messages_tri, rowid, subject, addresses, body, "
                "attachments) SELECT 'delete', rowid, subject, addresses, body, attachments "
                f"FROM messages_fts WHERE rowid IN ({marks})",
                chunk,
            )
            for table, col in (
                ("messages", "id"),
                ("message_data", "id"),
                ("parts", "message"),
                ("tags", "message"),
                ("headers", "message"),
                ("messages_fts", "rowid"),
                ("message_checks", "message"),
                ("imap_flags", "message"),
            ):
                conn.execute(f"DELETE FROM {table} WHERE {col} IN ({marks})", chunk)

    def delete_messages(self, uids: Sequence[str], box: str | None = None) -> list[str]:
        """Delete these messages (of `box` alone when given); returns the uids that existed."""
        found: list[tuple[int, str]] = []
        limit, limit_params = in_box(box)
        for chunk in chunks(list(uids), 500):
            marks = ",".join("?" * len(chunk))
            found += self._wconn.execute(
                f"SELECT id, uid FROM messages WHERE uid IN ({marks}){limit}",
                (*chunk, *limit_params),
            ).fetchall()
        if found and len({r[0] for r in found}) == self._count_kept():
            # Every message (an IMAP expunge or POP3 deletions of them all): as delete all.
            self.delete_all()
            return [r[1] for r in found]
        self._delete_rowids([r[0] for r in found])
        self._forget_relays([r[1] for r in found])
        return [r[1] for r in found]

    def delete_all(self, box: str | None = None) -> int:
        conn = self._wconn
        if box is not None and self._count_kept(box) < self._count_kept():
            # One mailbox among others: its rows go one by one (the truncate below would take
            # the other mailboxes' messages too); its index entries find them.
            rows = conn.execute("SELECT id, uid FROM messages WHERE mailbox = ?", (box,)).fetchall()
            self._delete_rowids([r[0] for r in rows])
            self._forget_relays([r[1] for r in rows])
            return len(rows)
        # (A mailbox that holds every message, as the default one does for the web's routes
        # when there is no other, is emptied as the whole store.)
        n = self._count_kept()
        # Unqualified DELETEs take SQLite's fast truncate path (no per-row work) only on tables
        # without triggers, so the counter triggers step aside inside this transaction.
        for name in (*COUNTER_TRIGGER_NAMES, *MAILBOX_TRIGGER_NAMES):
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        # The big tables are renamed aside, not freed: the writer frees them in small steps
        # while idle (drain.py).
        conn.execute("SAVEPOINT aside")
        try:
            set_aside(conn, SET_ASIDE)
        except sqlite3.OperationalError as exc:
            # A table that cannot be set aside (a trigger of someone else's on it, or a SQLite
            # whose defensive mode forbids the index renames) is emptied in place as before:
            # slower at scale, but delete all must not fail.
            conn.execute("ROLLBACK TO aside")
            log.warning("delete all frees the tables now, in its transaction: %s", exc)
            for table in SET_ASIDE:
                if table not in ("messages_fts", "messages_tri"):
                    conn.execute(f"DELETE FROM {table}")
            self._empty_search_index()
        conn.execute("RELEASE aside")
        self.forget_aside()
        for table in ("tags", "imap_flags"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("UPDATE counters SET value = 0 WHERE name IN ('total', 'unread')")
        # The mailboxes stay, emptied: they were made on purpose or by routing.
        conn.execute("UPDATE mailboxes SET messages = 0, unread = 0")
        for trigger in (*COUNTER_TRIGGERS, *MAILBOX_TRIGGERS):
            conn.execute(trigger)
        self._forget_relays(None)
        return n

    def clear_search_index(self) -> None:
        self._wconn.execute("DELETE FROM headers")
        self._empty_search_index()

    def _empty_search_index(self) -> None:
        conn = self._wconn
        # An FTS5 table deletes row by row (1.2 s at 100k messages); recreating it is instant.
        conn.execute("DROP TABLE messages_tri")
        conn.execute("DROP TABLE messages_fts")
        conn.execute(FTS_SCHEMA)
        conn.execute(TRIGRAM_SCHEMA)

    def set_read(self, uids: Sequence[str] | None, read: bool, box: str | None = None) -> list[str]:
        """Mark these (or all, when None) read/unread, of `box` alone when given; returns the
        uids that changed."""
        conn = self._wconn
        flag = 1 if read else 0
        limit, limit_params = in_box(box)
        if uids is None:
            rows = conn.execute(
                f"SELECT uid FROM messages WHERE read != ?{limit}", (flag, *limit_params)
            ).fetchall()
            conn.execute(
                f"UPDATE messages SET read = ? WHERE read != ?{limit}", (flag, flag, *limit_params)
            )
            return [r[0] for r in rows]
        changed: list[str] = []
        for chunk in chunks(list(uids), 500):
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT uid FROM messages WHERE read != ? AND uid IN ({marks}){limit}",
                (flag, *chunk, *limit_params),
            ).fetchall()
            conn.execute(
                f"UPDATE messages SET read = ? WHERE read != ? AND uid IN ({marks}){limit}",
                (flag, flag, *chunk, *limit_params),
            )
            changed += [r[0] for r in rows]
        return changed

    def prune(
        self, max_messages: int, older_than: float | None, box: str | None = None
    ) -> list[str]:
        """Delete beyond the newest `max_messages` (0: no limit), in a batch once the count has
        passed it by its slack (retention.py), and those older than a time; of `box` alone
        when given."""
        conn = self._wconn
        rows: list[tuple[int, str, float]] = []
        self.hold_index(box, max_messages + retention_slack(max_messages) if max_messages else 0)
        if max_messages > 0 and self._count_kept(box) > max_messages + retention_slack(
            max_messages
        ):
            if box is None:
                rows += conn.execute(
                    "SELECT id, uid, created FROM messages ORDER BY id DESC LIMIT -1 OFFSET ?",
                    (max_messages,),
                ).fetchall()
            else:
                rows += conn.execute(
                    "SELECT id, uid, created FROM messages WHERE mailbox = ? "
                    "ORDER BY id DESC LIMIT -1 OFFSET ?",
                    (box, max_messages),
                ).fetchall()
        if older_than is not None:
            limit, limit_params = in_box(box)
            rows += conn.execute(
                f"SELECT id, uid, created FROM messages WHERE created < ?{limit}",
                (older_than, *limit_params),
            ).fetchall()
        if not rows:
            return []
        retired = max(r[2] for r in rows)
        if box is None:
            self._retired_until = max(self._retired_until, retired)
        else:
            # Sessions older than every kept message of this mailbox go now, and this
            # mailbox's alone: the log-wide mark would take other mailboxes' sessions. (The
            # newest session stays, as insert_session keeps it.)
            conn.execute(
                "DELETE FROM sessions WHERE mailbox = ? AND ended < ? "
                "AND id < (SELECT max(id) FROM sessions)",
                (box, retired),
            )
        unique = {r[0]: r[1] for r in rows}
        self._delete_rowids(list(unique))
        self._forget_relays(list(unique.values()))
        return list(unique.values())

    def _count_kept(self, box: str | None = None) -> int:
        # The counter the triggers keep in this same transaction: exact, and one row to read
        # where count(*) walks the table.
        if box is None:
            row = self._wconn.execute("SELECT value FROM counters WHERE name = 'total'").fetchone()
        else:
            row = self._wconn.execute(
                "SELECT messages FROM mailboxes WHERE name = ?", (box,)
            ).fetchone()
        return int(row[0]) if row else 0

    def set_tags(
        self, uids: Sequence[str], tags: Sequence[str], box: str | None = None
    ) -> list[tuple[str, list[str]]]:
        """Give these messages exactly these tags; returns (uid, tags) of those that exist
        (in `box` when given)."""
        conn = self._wconn
        out: list[tuple[str, list[str]]] = []
        wanted = sorted(set(tags))
        limit, limit_params = in_box(box)
        for uid in uids:
            row = conn.execute(
                f"SELECT id FROM messages WHERE uid = ?{limit}", (uid, *limit_params)
            ).fetchone()
            if row is None:
                continue
            conn.execute("DELETE FROM tags WHERE message = ?", (row[0],))
            conn.executemany(
                "INSERT OR IGNORE INTO tags (message, tag) VALUES (?,?)",
                [(row[0], t) for t in wanted],
            )
            out.append((uid, wanted))
        return out

    def rename_tag(self, old: str, new: str, box: str | None = None) -> list[tuple[str, list[str]]]:
        """Rename a tag everywhere, or on the messages of `box` alone, or remove it ('' as
        `new`). As in Mailpit, tag names are one whatever their case: renaming a tag nobody
        has, or onto another existing tag, raises TagError (nothing is merged); a change of
        case alone is a rename."""
        conn = self._wconn
        # The tag rows in scope: every one, or those of the mailbox's messages.
        scope = "message IN (SELECT id FROM messages WHERE mailbox = ?)" if box is not None else "1"
        scoped: tuple[str, ...] = (box,) if box is not None else ()
        if new:
            if not conn.execute(
                f"SELECT 1 FROM tags WHERE tag = ? COLLATE NOCASE AND {scope} LIMIT 1",
                (old, *scoped),
            ).fetchone():
                raise TagError(f"tag not found: {old}")
            if (
                new.lower() != old.lower()
                and conn.execute(
                    f"SELECT 1 FROM tags WHERE tag = ? COLLATE NOCASE AND {scope} LIMIT 1",
                    (new, *scoped),
                ).fetchone()
            ):
                raise TagError(f"tag already exists: {new}")
            ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT DISTINCT message FROM tags WHERE tag = ? COLLATE NOCASE AND {scope}",
                    (old, *scoped),
                )
            ]
        else:
            ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT message FROM tags WHERE tag = ? AND {scope}", (old, *scoped)
                )
            ]
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            if new:
                conn.execute(
                    f"DELETE FROM tags WHERE tag = ? COLLATE NOCASE AND message IN ({marks})",
                    (old, *chunk),
                )
            else:
                conn.execute(
                    f"DELETE FROM tags WHERE tag = ? AND message IN ({marks})", (old, *chunk)
                )
        if new:
            conn.executemany(
                "INSERT OR IGNORE INTO tags (message, tag) VALUES (?,?)", [(m, new) for m in ids]
            )
        return self._tags_of_ids(ids)

    def _tags_of_ids(self, ids: Sequence[int]) -> list[tuple[str, list[str]]]:
        out = []
        for mid in ids:
            uid = self._wconn.execute("SELECT uid FROM messages WHERE id = ?", (mid,)).fetchone()
            tags = self._wconn.execute(
                "SELECT tag FROM tags WHERE message = ? ORDER BY tag", (mid,)
            ).fetchall()
            out.append((uid[0], [t[0] for t in tags]))
        return out

    def uids_matching(self, terms: Sequence[Term], box: str | None = None) -> list[str]:
        """Every uid matching (for delete or mark by search), of `box` alone when given; writer
        thread only. The caller runs `index_barrier()` first, so messages committed before the
        request are found."""
        where, params = build_where(terms)
        limit, limit_params = in_box(box, "m.mailbox")
        rows = self._wconn.execute(
            f"SELECT m.uid FROM messages m WHERE {where}{limit} ORDER BY m.id DESC",
            (*params, *limit_params),
        ).fetchall()
        return [r[0] for r in rows]

    def set_imap_flags(self, changes: dict[int, set[str]]) -> None:
        """Replace the flags of these messages (writer thread); gone messages are skipped."""
        conn = self._wconn
        for message, flags in changes.items():
            conn.execute("DELETE FROM imap_flags WHERE message = ?", (message,))
            conn.executemany(
                "INSERT INTO imap_flags (message, flag) SELECT id, ? FROM messages WHERE id = ?",
                [(flag, message) for flag in sorted(flags)],
            )

    def save_checks(self, uid: str, checked: float, result: str) -> bool:
        """Keep a message's check results; False when the message is gone."""
        cur = self._wconn.execute(
            "INSERT OR REPLACE INTO message_checks (message, checked, result) "
            "SELECT id, ?, ? FROM messages WHERE uid = ?",
            (checked, result, uid),
        )
        return cur.rowcount > 0
