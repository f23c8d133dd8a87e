"""The PostgreSQL store's message reads (any thread, on the read pool): lists, searches, one
message's parts, raw bytes streamed in pieces, tags, counts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from mailpit_py.store.postgres.base import (
    READ_CHUNK,
    SUMMARY_COLUMNS,
    PgParts,
    PgRow,
    in_box,
    one_at_a_time,
    rows,
    text,
)
from mailpit_py.store.postgres.search_sql import FREE_TEXT_MATCH, build_where, lone_free_text
from mailpit_py.store.rawcodec import MARK, packed, unpack, unpack_stream
from mailpit_py.store.search import Term

# Terms answered by the word, trigram and header indexes.
INDEXED_KINDS = frozenset({"word", "phrase", "subject", "addressed", "header"})
# A lone free-text term is tried on this many of the newest index rows first: how many match
# says whether its page is found by reading rows newest first and stopping there (a term in
# most messages) or through the indexes (a rarer one).
SAMPLE_ROWS = 200
# The newest-first read is taken when it should find the page within this many rows.
EARLY_STOP_ROWS = 20_000


def _detail(value: bytes, is_text: bool) -> bytes | str:
    """The stored detail as detailcodec encoded it: a pickle (bytes) or JSON text."""
    return value.decode("utf-8", "surrogatepass") if is_text else bytes(value)


class PgMessageQueries(PgParts):
    """Reads of messages, each on a connection of the read pool."""

    def counts(self, box: str | None = None) -> tuple[int, int]:
        with self.reading() as conn:
            if box is not None:
                # The mailbox's row, kept by the messages' trigger (none: nothing there yet).
                row = conn.execute(
                    "SELECT messages, unread FROM mailboxes WHERE name = %s", (text(box),)
                ).fetchone()
                return (int(row[0]), int(row[1])) if row else (0, 0)
            values = dict(
                conn.execute(
                    "SELECT name, value FROM counters WHERE name IN ('total', 'unread')"
                ).fetchall()
            )
        return int(values.get("total", 0)), int(values.get("unread", 0))

    def list_summaries(
        self, start: int = 0, limit: int = 50, box: str | None = None
    ) -> list[PgRow]:
        # In one mailbox, the rows come newest first from messages_mailbox_id (mailbox, id).
        scope, params = in_box(box)
        inner, _ = in_box(box, "mailbox")
        with self.reading() as conn:
            if start <= 0:
                return rows(
                    conn,
                    f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE {scope} "
                    "ORDER BY m.id DESC LIMIT %s",
                    (*params, limit),
                )
            # OFFSET computes every row it steps over, tags included; stepping over the ids
            # alone (an index-only scan) finds a deep page's first id, then the page is a range.
            return rows(
                conn,
                f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE {scope} AND m.id <= "
                f"(SELECT id FROM messages WHERE {inner} ORDER BY id DESC LIMIT 1 OFFSET %s) "
                "ORDER BY m.id DESC LIMIT %s",
                (*params, *params, start, limit),
            )

    def search_page(
        self, terms: Sequence[Term], start: int = 0, limit: int = 50, box: str | None = None
    ) -> tuple[list[PgRow], int, int]:
        """(page of summaries, matches, unread matches): the search is evaluated once, and the
        server counts its matches and cuts the page's ids from them (no match is sent here)."""
        if not terms:
            return self.list_summaries(start, limit, box=box), *self.counts(box=box)
        free_text = lone_free_text(terms)
        if free_text is not None:
            found_early = self._dense_free_text_page(free_text, start, limit, box)
            if found_early is not None:
                return found_early
        with self.reading() as conn, conn.transaction():
            # (one snapshot for the mailbox's count and the search: one_at_a_time's `whole`)
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            box, each = one_at_a_time(conn, box, whole=True)
            scope, scope_params = in_box(box)
            where, params = build_where(terms, each)
            where, params = f"{scope} AND {where}", [*scope_params, *params]
            if not each and any(term.kind in INDEXED_KINDS for term in terms):
                # The planner prices a scan of messages_fts by its slim heap rows and not by
                # the bodies each LIKE must read back from TOAST, so it scanned 20,000 rows
                # (42 ms) rather than take the trigram index (3.5 ms): it is told to take the
                # indexes. (Not for larger: and the like, which no index answers.)
                conn.execute("SET LOCAL enable_seqscan = off")
            row = conn.execute(
                f"WITH hits AS MATERIALIZED (SELECT m.id, m.read FROM messages m WHERE {where}) "
                "SELECT (SELECT count(*) FROM hits), (SELECT count(*) FROM hits WHERE read = 0), "
                "array(SELECT id FROM hits ORDER BY id DESC LIMIT %s OFFSET %s)",
                (*params, limit, max(start, 0)),
            ).fetchone()
            assert row is not None
            total, unread, page = int(row[0]), int(row[1]), list(row[2])
            found = (
                rows(
                    conn,
                    f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.id = ANY(%s) "
                    "ORDER BY m.id DESC",
                    (page,),
                )
                if page
                else []
            )
        return found, total, unread

    def _dense_free_text_page(
        self, params: list[Any], start: int, limit: int, box: str | None = None
    ) -> tuple[list[PgRow], int, int] | None:
        """search_page for a lone free-text term found in many of the newest messages (None for
        a rarer one): the page from the word index's rows newest first, stopping once it is
        full, and the count from one plain read of them. Through the indexes, every match's
        text was rechecked and joined to its message (a substring in all of 100,000: 184 ms).
        In one mailbox, its rows are walked newest first (messages_mailbox_id), each one's
        index row read by its id."""
        wanted = max(start, 0) + limit
        with self.reading() as conn, conn.transaction():
            # The sample, the page and the counts see one snapshot.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            box, _ = one_at_a_time(conn, box, whole=True)
            if box is None:
                rows_from, scope, scope_params = "messages_fts f", "TRUE", []
            else:
                rows_from = "messages m JOIN messages_fts f ON f.id = m.id"
                scope, scope_params = "m.mailbox = %s", [text(box)]
            newest = "f.id DESC" if box is None else "m.id DESC"
            row = conn.execute(
                f"SELECT count(*) FROM (SELECT f.text, f.words FROM {rows_from} WHERE {scope} "
                f"ORDER BY {newest} LIMIT %s) f WHERE {FREE_TEXT_MATCH}",
                (*scope_params, SAMPLE_ROWS, *params),
            ).fetchone()
            sampled = int(row[0]) if row else 0
            if sampled * 10 < SAMPLE_ROWS or wanted * SAMPLE_ROWS > sampled * EARLY_STOP_ROWS:
                return None
            # No bitmap (it reads every match before the first is returned): the primary key
            # newest first, each row tested in turn, stops at the page; the count reads the
            # table once (cheaper than the trigram index for a term in most rows).
            conn.execute("SET LOCAL enable_bitmapscan = off")
            conn.execute("SET LOCAL enable_seqscan = off")
            page = [
                r[0]
                for r in conn.execute(
                    f"SELECT f.id FROM {rows_from} WHERE {scope} AND {FREE_TEXT_MATCH} "
                    f"ORDER BY {newest} LIMIT %s OFFSET %s",
                    (*scope_params, *params, limit, max(start, 0)),
                )
            ]
            if box is None:
                conn.execute("SET LOCAL enable_seqscan = on")
            row = conn.execute(
                f"SELECT count(*) FROM {rows_from} WHERE {scope} AND {FREE_TEXT_MATCH}",
                (*scope_params, *params),
            ).fetchone()
            matched = int(row[0]) if row else 0
            if box is None:
                counters = dict(
                    conn.execute(
                        "SELECT name, value FROM counters WHERE name IN ('total', 'unread')"
                    ).fetchall()
                )
                total, unread = int(counters.get("total", 0)), int(counters.get("unread", 0))
            else:
                found_box = conn.execute(
                    "SELECT messages, unread FROM mailboxes WHERE name = %s", scope_params
                ).fetchone()
                total, unread = (int(found_box[0]), int(found_box[1])) if found_box else (0, 0)
            read_matched = 0
            if total - unread > 0:
                row = conn.execute(
                    "SELECT count(*) FROM messages m JOIN messages_fts f ON f.id = m.id "
                    f"WHERE m.read <> 0 AND {scope} AND {FREE_TEXT_MATCH}",
                    (*scope_params, *params),
                ).fetchone()
                read_matched = int(row[0]) if row else 0
            found = (
                rows(
                    conn,
                    f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.id = ANY(%s) "
                    "ORDER BY m.id DESC",
                    (page,),
                )
                if page
                else []
            )
        return found, matched, matched - read_matched

    def summary(self, uid: str) -> PgRow | None:
        with self.reading() as conn:
            found = rows(
                conn, f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.uid = %s", (text(uid),)
            )
        return found[0] if found else None

    def tag_counts(self, box: str | None = None) -> dict[str, int]:
        with self.reading() as conn:
            if box is None:
                rows = conn.execute(
                    "SELECT tag, count(*) FROM tags GROUP BY tag "
                    'ORDER BY lower(tag) COLLATE "C", tag COLLATE "C"'
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT t.tag, count(*) FROM tags t JOIN messages m ON m.id = t.message "
                    "WHERE m.mailbox = %s GROUP BY t.tag "
                    'ORDER BY lower(t.tag) COLLATE "C", t.tag COLLATE "C"',
                    (text(box),),
                ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def index(
        self, tag: str | None = None, box: str | None = None
    ) -> list[tuple[int, str, int, int, float]]:
        scope, params = in_box(box)
        with self.reading() as conn:
            if tag is None:
                rows = conn.execute(
                    f"SELECT m.id, m.uid, m.size, m.read, m.created FROM messages m "
                    f"WHERE {scope} ORDER BY m.id",
                    params,
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT m.id, m.uid, m.size, m.read, m.created FROM tags t "
                    f"JOIN messages m ON m.id = t.message WHERE t.tag = %s AND {scope} "
                    "ORDER BY m.id",
                    (text(tag), *params),
                ).fetchall()
        return [(int(r[0]), r[1], int(r[2]), int(r[3]), float(r[4])) for r in rows]

    def next_id(self) -> int:
        """The id the next message will get: the sequence never hands out one twice."""
        with self.reading() as conn:
            row = conn.execute("SELECT last_value, is_called FROM messages_id_seq").fetchone()
        assert row is not None
        return int(row[0]) + 1 if row[1] else int(row[0])

    def imap_flags(self) -> dict[int, set[str]]:
        flags: dict[int, set[str]] = {}
        with self.reading() as conn:
            for message, flag in conn.execute("SELECT message, flag FROM imap_flags"):
                flags.setdefault(int(message), set()).add(str(flag))
        return flags

    def meta(self, name: str) -> str | None:
        with self.reading() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = %s", (name,)).fetchone()
        return None if row is None else str(row[0])

    def latest_uid(self, box: str | None = None) -> str | None:
        scope, params = in_box(box, "mailbox")
        with self.reading() as conn:
            row = conn.execute(
                f"SELECT uid FROM messages WHERE {scope} ORDER BY id DESC LIMIT 1", params
            ).fetchone()
        return row[0] if row else None

    def message_data(self, uid: str) -> tuple[PgRow, bytes | str, str] | None:
        with self.reading() as conn:
            found = rows(
                conn,
                f"SELECT {SUMMARY_COLUMNS}, d.detail, d.detail_is_text, d.transcript "
                "FROM messages m JOIN message_data d ON d.id = m.id WHERE m.uid = %s",
                (text(uid),),
            )
        if not found:
            return None
        row = found[0]
        return row, _detail(row["detail"], row["detail_is_text"]), row["transcript"]

    def checks(self, uid: str) -> str | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT c.result FROM messages m JOIN message_checks c ON c.message = m.id "
                "WHERE m.uid = %s",
                (text(uid),),
            ).fetchone()
        return row[0] if row else None

    def checks_many(self, uids: Sequence[str]) -> dict[str, str]:
        if not uids:
            return {}
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT m.uid, c.result FROM messages m JOIN message_checks c "
                "ON c.message = m.id WHERE m.uid = ANY(%s)",
                ([text(u) for u in uids],),
            ).fetchall()
        return {str(uid): str(result) for uid, result in rows}

    def unindexed(self) -> list[int]:
        """Always none in practice (index rows commit with their message); a message without
        them (written by hand, say) is listed all the same."""
        with self.reading() as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT m.id FROM messages m WHERE NOT EXISTS "
                    "(SELECT 1 FROM messages_fts f WHERE f.id = m.id) ORDER BY m.id"
                )
            ]

    def raw_for_index(self, rowid: int) -> tuple[str, bytes, bytes | str] | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT m.uid, d.raw, d.detail, d.detail_is_text FROM messages m "
                "JOIN message_data d ON d.id = m.id WHERE m.id = %s",
                (rowid,),
            ).fetchone()
        return (row[0], unpack(bytes(row[1])), _detail(row[2], row[3])) if row else None

    def raw(self, uid: str) -> bytes | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT d.raw FROM messages m JOIN message_data d ON d.id = m.id WHERE m.uid = %s",
                (text(uid),),
            ).fetchone()
        return unpack(bytes(row[0])) if row else None

    def raw_stream(self, uid: str) -> tuple[int, Iterator[bytes]] | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT d.id, octet_length(d.raw), substring(d.raw FROM 1 FOR %s), m.size "
                "FROM messages m JOIN message_data d ON d.id = m.id WHERE m.uid = %s",
                (len(MARK), text(uid)),
                binary=True,
            ).fetchone()
        if row is None:
            return None
        size = int(row[1])
        pieces = self._pieces(
            "SELECT substring(raw FROM %s FOR %s) FROM message_data WHERE id = %s",
            int(row[0]),
            size,
        )
        if packed(bytes(row[2])):  # compressed (--compression): the message's own size
            return int(row[3]), unpack_stream(pieces)
        return size, pieces

    def part_stream(self, uid: str, part_id: str) -> tuple[str, int, Iterator[bytes]] | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT p.id, p.content_type, octet_length(p.data) FROM messages m "
                "JOIN parts p ON p.message = m.id WHERE m.uid = %s AND p.part_id = %s",
                (text(uid), text(part_id)),
            ).fetchone()
        if row is None:
            return None
        size = int(row[2])
        pieces = self._pieces(
            "SELECT substring(data FROM %s FOR %s) FROM parts WHERE id = %s", int(row[0]), size
        )
        return row[1], size, pieces

    def _pieces(self, sql: str, rowid: int, size: int) -> Iterator[bytes]:
        """READ_CHUNK bytes per query, each on a pooled connection taken for that query alone:
        a slow client holds no connection and no lock between pieces."""
        for offset in range(0, size, READ_CHUNK):
            with self.reading() as conn:
                row = conn.execute(sql, (offset + 1, READ_CHUNK, rowid), binary=True).fetchone()
            if row is None or not row[0]:
                return  # deleted meanwhile
            yield bytes(row[0])

    def part(self, uid: str, part_id: str) -> tuple[str, bytes] | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT p.content_type, p.data FROM messages m JOIN parts p ON p.message = m.id "
                "WHERE m.uid = %s AND p.part_id = %s",
                (text(uid), text(part_id)),
            ).fetchone()
        return (row[0], bytes(row[1])) if row else None
