"""The SQLite store's message reads (any thread, on the read pool): lists, searches, one
message's parts, raw bytes streamed, tags, counts."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from mailpit_py.store.base import BLOB_CHUNK, SUMMARY_COLUMNS, SQLiteParts, dict_cursor
from mailpit_py.store.boxscan import box_matches, dense, found_by_word
from mailpit_py.store.listpages import BOX_INDEX, page_from_newest, page_from_oldest, snapshot
from mailpit_py.store.messages import in_box
from mailpit_py.store.rawcodec import MARK, packed, unpack, unpack_stream
from mailpit_py.store.search import Term
from mailpit_py.store.search_sql import (
    build_where,
    evaluate_once,
    header_values_query,
    ids_and_read_only,
    lone_substring,
)

# Both indexes' matches of one term, as one compound SELECT: with ORDER BY on the compound,
# SQLite merges the two rowid streams (each already in rowid order) instead of building a
# temporary table of every match, so a LIMIT stops it at the page.
_BOTH = (
    "SELECT rowid AS r FROM messages_fts WHERE messages_fts MATCH ? "
    "UNION SELECT rowid FROM messages_tri WHERE messages_tri MATCH ?"
)
# The same, for the read messages among given ids only (the unread count: matches less these).
_BOTH_AMONG = (
    "SELECT count(*) FROM (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? "
    "AND rowid IN (SELECT value FROM json_each(?)) UNION SELECT rowid FROM messages_tri "
    "WHERE messages_tri MATCH ? AND rowid IN (SELECT value FROM json_each(?)))"
)
# A search with more matches than this, in a mailbox with at most this many read messages, has
# its unread count from looking the read ones up among its matches; otherwise it reads the
# matches' rows, as other searches do (cheap for a few matches).
READ_PROBE_MAX = 5_000
_BOX_INDEX = BOX_INDEX
# Matches looked up at a time in the mailbox when a lone term's page is cut in one mailbox.
BOX_PAGE_SLICE = 500
# A mailbox holding at most 1/PROBE_SHARE of the messages has a search's candidates looked up
# one by one (its entries against the header index), instead of every match in the store read
# into a set: at 2,000 of 100,000, header: 14-24 -> 2 ms (MessageQueries._in_box).
PROBE_SHARE = 4
# A header with more distinct values than this (a Date, a Message-ID: one per message) is
# searched by testing every message's value of it, which costs no more than a seek per value.
HEADER_VALUES_MAX = 1_000


class MessageQueries(SQLiteParts):
    """Reads of messages, each on a connection of the read pool."""

    def counts(self, box: str | None = None) -> tuple[int, int]:
        """(total, unread), kept by triggers, so constant time at any size."""
        with self.reading() as conn:
            return _counts(conn, box)

    @contextmanager
    def _in_box(self, box: str | None) -> Iterator[tuple[sqlite3.Connection, str | None, bool]]:
        """A read connection for reads in `box`: (connection, box, probe). Inside one read
        transaction, so that what is decided here and the reads agree on the same commits:
        a mailbox that holds every message is read as the whole store (box None: no filter,
        and the whole store's faster plans and counters); `probe` says the mailbox holds at
        most 1/PROBE_SHARE of the messages, so a search looks its candidates up one by one
        rather than reading every match of a term in the store."""
        with self.reading() as conn:
            if box is None:
                yield conn, None, False
                return
            conn.execute("BEGIN")
            try:
                held, total = conn.execute(
                    "SELECT (SELECT messages FROM mailboxes WHERE name = ?), "
                    "(SELECT value FROM counters WHERE name = 'total')",
                    (box,),
                ).fetchone()
                held, total = int(held or 0), int(total or 0)
                if held == total:
                    yield conn, None, False
                else:
                    yield conn, box, held * PROBE_SHARE <= total
            finally:
                conn.execute("COMMIT")

    def list_summaries(
        self, start: int = 0, limit: int = 50, box: str | None = None
    ) -> list[sqlite3.Row]:
        start = max(start, 0)
        with self._in_box(box) as (conn, box, _):
            cursor = dict_cursor(conn)
            if start > 0 and limit > 0:
                with snapshot(conn):
                    total = _counts(conn, box)[0]
                    if start >= total:
                        return []
                    if start * 2 > total:
                        return page_from_oldest(cursor, total - 1 - start, limit, box)
                    return page_from_newest(cursor, start, limit, box)
            return page_from_newest(cursor, start, limit, box)

    def search(
        self, terms: Sequence[Term], start: int = 0, limit: int = 50, box: str | None = None
    ) -> list[sqlite3.Row]:
        """Summaries matching the search terms, newest first, paged in SQL."""
        self.index_barrier()
        with self._in_box(box) as (conn, box, probe), snapshot(conn):
            return _search_rows(conn, terms, start, limit, box, probe)

    def count_matches(self, terms: Sequence[Term], box: str | None = None) -> tuple[int, int]:
        """(matches, unread matches), in `box` when given."""
        self.index_barrier()
        with self._in_box(box) as (conn, box, probe), snapshot(conn):
            return _count_matches(conn, terms, box, probe)

    def search_page(
        self, terms: Sequence[Term], start: int = 0, limit: int = 50, box: str | None = None
    ) -> tuple[list[sqlite3.Row], int, int]:
        """(page of summaries, matches, unread matches) for a search.

        Terms that scan (header values, addresses, subjects) or look for substrings are
        evaluated once (search_sql.evaluate_once): every match's (id, read) is read in one pass
        and the page is cut from it, instead of one pass for the page and another for the counts.
        """
        self.index_barrier()
        with self._in_box(box) as (conn, box, probe), snapshot(conn):
            both = lone_substring(terms)
            if both is not None and box is not None:
                return _lone_substring_box_page(conn, *both, start, limit, box, probe)
            if both is not None:
                return _lone_substring_page(conn, *both, start, limit)
            header = _lone_header(conn, terms) if box is None else None
            if header is not None:
                return _lone_header_page(conn, *header, start, limit)
            if not evaluate_once(terms):
                return (
                    _search_rows(conn, terms, start, limit, box, probe),
                    *_count_matches(conn, terms, box, probe),
                )
            where, params = _where(conn, terms, probe)
            limit_box, box_params = in_box(box, "m.mailbox")
            found = conn.execute(
                f"SELECT m.id, m.read FROM messages m{_by_id(terms, box)} "
                f"WHERE {where}{limit_box} ORDER BY m.id DESC",
                (*params, *box_params),
            ).fetchall()
            page = [row[0] for row in found[max(start, 0) : max(start, 0) + limit]]
            rows = _summaries_of(conn, page)
        return rows, len(found), sum(1 for row in found if not row[1])

    def summary(self, uid: str) -> sqlite3.Row | None:
        with self.reading() as conn:
            return (
                dict_cursor(conn)
                .execute(f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.uid = ?", (uid,))
                .fetchone()
            )

    def tag_counts(self, box: str | None = None) -> dict[str, int]:
        # A mailbox holding every message counts as the whole store: joined with the messages,
        # SQLite walked the mailbox's million index entries to find no tag (70 ms a list page).
        with self._in_box(box) as (conn, box, _):
            if box is None:
                rows = conn.execute(
                    "SELECT tag, count(*) FROM tags GROUP BY tag ORDER BY tag COLLATE NOCASE"
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT t.tag, count(*) FROM tags t JOIN messages m ON m.id = t.message "
                    "WHERE m.mailbox = ? GROUP BY t.tag ORDER BY t.tag COLLATE NOCASE",
                    (box,),
                ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def index(
        self, tag: str | None = None, box: str | None = None
    ) -> list[tuple[int, str, int, int, float]]:
        """(id, uid, size, read, created) of every message, or those with a tag, of `box` when
        given, oldest first."""
        limit_box, box_params = in_box(box, "m.mailbox")
        with self.reading() as conn:
            if tag is None:
                rows = conn.execute(
                    "SELECT m.id, m.uid, m.size, m.read, m.created FROM messages m "
                    f"WHERE 1{limit_box} ORDER BY m.id",
                    box_params,
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT m.id, m.uid, m.size, m.read, m.created FROM tags t "
                    f"JOIN messages m ON m.id = t.message WHERE t.tag = ?{limit_box} "
                    "ORDER BY m.id",
                    (tag, *box_params),
                ).fetchall()
        return [(int(r[0]), r[1], int(r[2]), int(r[3]), float(r[4])) for r in rows]

    def next_id(self) -> int:
        """The id the next message will get (AUTOINCREMENT never hands out one twice)."""
        with self.reading() as conn:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
        return (int(row[0]) if row else 0) + 1

    def imap_flags(self) -> dict[int, set[str]]:
        """IMAP flags other than \\Seen, by message id (the IMAP UID)."""
        flags: dict[int, set[str]] = {}
        with self.reading() as conn:
            for message, flag in conn.execute("SELECT message, flag FROM imap_flags"):
                flags.setdefault(int(message), set()).add(str(flag))
        return flags

    def meta(self, name: str) -> str | None:
        with self.reading() as conn:
            row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def latest_uid(self, box: str | None = None) -> str | None:
        limit_box, box_params = in_box(box)
        with self.reading() as conn:
            row = conn.execute(
                f"SELECT uid FROM messages WHERE 1{limit_box} ORDER BY id DESC LIMIT 1", box_params
            ).fetchone()
        return row[0] if row else None

    def message_data(self, uid: str) -> tuple[sqlite3.Row, bytes | str, str] | None:
        """(summary row, stored detail (detailcodec.py), transcript JSON) for one message."""
        with self.reading() as conn:
            row = (
                dict_cursor(conn)
                .execute(
                    f"SELECT {SUMMARY_COLUMNS}, d.detail, d.transcript FROM messages m "
                    "JOIN message_data d ON d.id = m.id WHERE m.uid = ?",
                    (uid,),
                )
                .fetchone()
            )
        if row is None:
            return None
        return row, row["detail"], row["transcript"]

    def checks(self, uid: str) -> str | None:
        """A message's stored check results (JSON), or None when not checked yet."""
        with self.reading() as conn:
            row = conn.execute(
                "SELECT c.result FROM messages m JOIN message_checks c ON c.message = m.id "
                "WHERE m.uid = ?",
                (uid,),
            ).fetchone()
        return row[0] if row else None

    def unindexed(self) -> list[int]:
        """Rowids of messages missing from the search index: those whose index rows were
        still waiting when the process stopped without closing the store."""
        with self.reading() as conn:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM messages WHERE id > "
                    "(SELECT coalesce(max(rowid), 0) FROM messages_fts) ORDER BY id"
                )
            ]

    def raw_for_index(self, rowid: int) -> tuple[str, bytes, bytes | str] | None:
        """(uid, raw, stored detail) of a message by rowid, to rebuild its search index rows."""
        with self.reading() as conn:
            row = conn.execute(
                "SELECT m.uid, d.raw, d.detail FROM messages m JOIN message_data d ON d.id = m.id "
                "WHERE m.id = ?",
                (rowid,),
            ).fetchone()
        return (row[0], unpack(bytes(row[1])), row[2]) if row else None

    def raw(self, uid: str) -> bytes | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT d.raw FROM messages m JOIN message_data d ON d.id = m.id WHERE m.uid = ?",
                (uid,),
            ).fetchone()
        return unpack(bytes(row[0])) if row else None

    def raw_stream(self, uid: str) -> tuple[int, Iterator[bytes]] | None:
        """(size, chunks) of a raw message, read from the database as the chunks are taken
        (and uncompressed as they go: the size is then the message's, not the stored bytes')."""
        with self.reading() as conn:
            row = conn.execute(
                "SELECT d.id, length(d.raw), substr(d.raw, 1, ?), m.size FROM messages m "
                "JOIN message_data d ON d.id = m.id WHERE m.uid = ?",
                (len(MARK), uid),
            ).fetchone()
        if row is None:
            return None
        chunks = self._blob_chunks("message_data", "raw", int(row[0]), int(row[1]))
        # substr() of an empty blob (an empty message) is NULL, not an empty blob.
        if packed(bytes(row[2] or b"")):
            return int(row[3]), unpack_stream(chunks)
        return int(row[1]), chunks

    def part_stream(self, uid: str, part_id: str) -> tuple[str, int, Iterator[bytes]] | None:
        """(content type, size, chunks) of a decoded part, streamed like raw_stream."""
        with self.reading() as conn:
            row = conn.execute(
                "SELECT p.rowid, p.content_type, length(p.data) FROM messages m "
                "JOIN parts p ON p.message = m.id WHERE m.uid = ? AND p.part_id = ?",
                (uid, part_id),
            ).fetchone()
        if row is None:
            return None
        return row[1], int(row[2]), self._blob_chunks("parts", "data", int(row[0]), int(row[2]))

    def _blob_chunks(self, table: str, column: str, rowid: int, size: int) -> Iterator[bytes]:
        # Up to BLOB_CHUNK bytes per step, so a 40 MB attachment never sits whole in memory.
        # In memory, reads hold the one connection's lock, which a slow client must not keep.
        if self.memory or size <= BLOB_CHUNK:
            with self.reading() as conn:
                row = conn.execute(
                    f"SELECT {column} FROM {table} WHERE rowid = ?", (rowid,)
                ).fetchone()
            if row is not None:
                yield bytes(row[0])
            return
        with self.reading() as conn, conn.blobopen(table, column, rowid, readonly=True) as blob:
            while chunk := blob.read(BLOB_CHUNK):
                yield chunk

    def part(self, uid: str, part_id: str) -> tuple[str, bytes] | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT p.content_type, p.data FROM messages m JOIN parts p ON p.message = m.id "
                "WHERE m.uid = ? AND p.part_id = ?",
                (uid, part_id),
            ).fetchone()
        return (row[0], bytes(row[1])) if row else None

    def checks_many(self, uids: Sequence[str]) -> dict[str, str]:
        """The stored check results (JSON) of those of these messages that have them."""
        if not uids:
            return {}
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT m.uid, c.result FROM messages m JOIN message_checks c "
                "ON c.message = m.id WHERE m.uid IN (SELECT value FROM json_each(?))",
                (json.dumps(list(uids)),),
            ).fetchall()
        return {str(uid): str(result) for uid, result in rows}


def _where(
    conn: sqlite3.Connection, terms: Sequence[Term], probe: bool
) -> tuple[str, list[object]]:
    """build_where, with each header:Name:value term's matching distinct values looked up
    first (search_sql.header_values_query), unless the header has more than HEADER_VALUES_MAX
    of them or the search probes a small mailbox's messages one by one."""
    found: dict[tuple[str, str], list[str]] = {}
    for term in terms if not probe else ():
        values = _header_values(conn, term)
        if values is not None:
            found[term.name, str(term.value)] = values
    return build_where(terms, probe=probe, header_values=found)


def _header_values(conn: sqlite3.Connection, term: Term) -> list[str] | None:
    """The distinct values of a header:Name:value term's header that contain its value; None
    for another term, or a header with more than HEADER_VALUES_MAX values."""
    if term.kind != "header" or term.value == "":
        return None
    sql, params = header_values_query(term.name, str(term.value), HEADER_VALUES_MAX + 1)
    rows = conn.execute(sql, params).fetchall()
    if len(rows) > HEADER_VALUES_MAX:
        return None
    return [row[0] for row in rows if row[1]]


# The messages holding one of a header's values (a JSON array), in the header value index.
_OF_VALUES = (
    "SELECT h.message FROM headers h WHERE h.name = ? "
    "AND h.value IN (SELECT value FROM json_each(?))"
)


def _lone_header(conn: sqlite3.Connection, terms: Sequence[Term]) -> tuple[str, str] | None:
    """(header name, JSON array of its matching values) when the search is one positive
    header:Name:value term whose header has few distinct values (_header_values), else None."""
    if len(terms) != 1 or terms[0].negated:
        return None
    values = _header_values(conn, terms[0])
    if values is None:
        return None
    return terms[0].name, json.dumps(values, ensure_ascii=False)


def _lone_header_page(
    conn: sqlite3.Connection, name: str, values: str, start: int, limit: int
) -> tuple[list[sqlite3.Row], int, int]:
    """search_page for one header:Name:value term: the page walks the header value index's
    matches newest first and stops at it, and the counts come from the matches' slim index
    entries, instead of every match's (id, read) read into Python to cut the page from (at
    1,000,000 messages, 100,000 matches: 153 ms). The index holds rows of existing messages
    only (the writer indexes the live ones, a delete takes their rows), so a page of it is
    a page of messages."""
    page = [
        row[0]
        for row in conn.execute(
            f"SELECT DISTINCT message FROM ({_OF_VALUES}) ORDER BY 1 DESC LIMIT ? OFFSET ?",
            (name, values, limit, max(start, 0)),
        )
    ]
    total, unread_total = _counts(conn, None)
    if unread_total == total:
        # Nothing is read, so every match is unread: the matches counted in the header value
        # index alone (19 ms for 100,000 of them, against 46 ms looking each up).
        matched = unread = conn.execute(
            f"SELECT count(DISTINCT message) FROM ({_OF_VALUES})", (name, values)
        ).fetchone()[0]
    else:
        matched, unread = conn.execute(
            "SELECT count(*), coalesce(sum(m.read = 0), 0) FROM messages m "
            f"INDEXED BY messages_id_read WHERE m.id IN ({_OF_VALUES})",
            (name, values),
        ).fetchone()
    return _summaries_of(conn, page), int(matched), int(unread)


def _search_rows(
    conn: sqlite3.Connection,
    terms: Sequence[Term],
    start: int,
    limit: int,
    box: str | None,
    probe: bool,
) -> list[sqlite3.Row]:
    """A page of the summaries matching a search, newest first, paged in SQL."""
    where, params = _where(conn, terms, probe)
    limit_box, box_params = in_box(box, "m.mailbox")
    return (
        dict_cursor(conn)
        .execute(
            f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE {where}{limit_box} "
            "ORDER BY m.id DESC LIMIT ? OFFSET ?",
            (*params, *box_params, limit, start),
        )
        .fetchall()
    )


def _count_matches(
    conn: sqlite3.Connection, terms: Sequence[Term], box: str | None, probe: bool
) -> tuple[int, int]:
    """(matches, unread matches) of a search."""
    where, params = _where(conn, terms, probe)
    limit_box, box_params = in_box(box, "m.mailbox")
    row = conn.execute(
        "SELECT count(*), coalesce(sum(m.read = 0), 0) "
        f"FROM messages m{_by_id(terms, box)} WHERE {where}{limit_box}",
        (*params, *box_params),
    ).fetchone()
    return int(row[0]), int(row[1])


def _lone_substring_page(
    conn: sqlite3.Connection, word: str, substring: str, start: int, limit: int
) -> tuple[list[sqlite3.Row], int, int]:
    """search_page for one free-text term found by word or by substring (search_sql.
    lone_substring), without reading every match: a substring in every message of 100,000
    read all 100,000 (id, read) rows, ~107 ms, where the page alone takes a millisecond."""
    page = [
        row[0]
        for row in conn.execute(
            f"{_BOTH} ORDER BY 1 DESC LIMIT ? OFFSET ?",
            (word, substring, limit, max(start, 0)),
        )
    ]
    rows = _summaries_of(conn, page)
    if not found_by_word(conn, word):
        matched = conn.execute(
            "SELECT count(*) FROM messages_tri WHERE messages_tri MATCH ?", (substring,)
        ).fetchone()[0]
    else:
        matched = conn.execute(
            f"SELECT count(*) FROM ({_BOTH} ORDER BY 1)", (word, substring)
        ).fetchone()[0]
    total, unread = _counts(conn, None)
    read_total = total - unread
    if read_total <= 0 or not matched:
        read_matched = 0
    elif matched > READ_PROBE_MAX and read_total <= READ_PROBE_MAX:
        # Many matches, few read messages: look the read ones up among the matches
        # (finding them scans the ids index, but reads no match's row).
        read_ids = (
            "["
            + ",".join(str(r[0]) for r in conn.execute("SELECT id FROM messages WHERE read != 0"))
            + "]"
        )
        read_matched = conn.execute(_BOTH_AMONG, (word, read_ids, substring, read_ids)).fetchone()[
            0
        ]
    else:  # few matches (read their rows) or many of both (no cheaper way)
        read_matched = conn.execute(
            f"SELECT count(*) FROM messages m WHERE m.read != 0 AND m.id IN ({_BOTH})",
            (word, substring),
        ).fetchone()[0]
    return rows, int(matched), int(matched) - int(read_matched)


def _lone_substring_box_page(
    conn: sqlite3.Connection,
    word: str,
    substring: str,
    start: int,
    limit: int,
    box: str,
    probe: bool,
) -> tuple[list[sqlite3.Row], int, int]:
    """_lone_substring_page in one mailbox: the page walks the matches newest first and stops
    once it has the mailbox's page; the counts (from the trigram index alone when the word
    index finds the term nowhere) hold the matches against a small mailbox's ids (`probe`), or
    walk a larger mailbox's slim index entries against the matches read into a set. A small
    mailbox whose term the store holds many times over has its own text searched instead
    (boxscan.py): a substring in every message of 100,000, in a mailbox of 2,000, streamed
    every match of the store for its counts (43-55 ms)."""
    if probe and dense(conn, substring, _counts(conn, box)[0]):
        found = box_matches(conn, word, substring, box)
        if found is not None:
            page = [rowid for rowid, _ in found[max(start, 0) : max(start, 0) + limit]]
            return _summaries_of(conn, page), len(found), sum(1 for _, read in found if not read)
    # The merged matches newest first, kept where they are the mailbox's, a slice at a time
    # until the page is full. (Joined in SQL, the matches' order is not kept: SQLite drops the
    # ORDER BY of a subquery it joins.)
    wanted = max(start, 0) + limit
    newest_first = conn.execute(f"{_BOTH} ORDER BY 1 DESC", (word, substring))
    kept: list[int] = []
    while len(kept) < wanted:
        chunk = [row[0] for row in newest_first.fetchmany(BOX_PAGE_SLICE)]
        if not chunk:
            break
        marks = ",".join("?" * len(chunk))
        mine = {
            row[0]
            for row in conn.execute(
                f"SELECT id FROM messages{_BOX_INDEX} WHERE mailbox = ? AND id IN ({marks})",
                (box, *chunk),
            )
        }
        kept += [rowid for rowid in chunk if rowid in mine]
    newest_first.close()
    rows = _summaries_of(conn, kept[max(start, 0) : wanted])
    params: tuple[str, ...]
    if found_by_word(conn, word):
        matches, params = _BOTH, (word, substring)
    else:
        matches = "SELECT rowid AS r FROM messages_tri WHERE messages_tri MATCH ?"
        params = (substring,)
    if probe:
        # A small mailbox: its ids (and its unread ones) are the sets, and the matches stream
        # past them in rowid order ('+' keeps SQLite from handing the ids to FTS5 as lookups,
        # one query each): a substring in every message of 100,000, in a mailbox of 2,000,
        # 63 -> 36 ms, where reading every match into a set first cost twice the count.
        ids = f"SELECT id FROM messages{_BOX_INDEX} WHERE mailbox = ?"
        matched, unread = conn.execute(
            f"SELECT count(*), coalesce(sum(+b.r IN ({ids} AND read = 0)), 0) "
            f"FROM ({matches} ORDER BY 1) b WHERE +b.r IN ({ids})",
            (box, *params, box),
        ).fetchone()
    else:
        matched, unread = conn.execute(
            "SELECT count(*), coalesce(sum(m.read = 0), 0) "
            f"FROM messages m{_BOX_INDEX} WHERE m.mailbox = ? AND m.id IN ({matches})",
            (box, *params),
        ).fetchone()
    return rows, int(matched), int(unread)


def _by_id(terms: Sequence[Term], box: str | None = None) -> str:
    """Read a search's (id, read) pairs from the slim index when its terms need nothing else
    of the message row: SQLite would otherwise look each match up in the table. In one
    mailbox, from that mailbox's entries (whatever the terms: its candidates are those)."""
    if box is not None:
        return _BOX_INDEX
    return " INDEXED BY messages_id_read" if ids_and_read_only(terms) else ""


def _counts(conn: sqlite3.Connection, box: str | None) -> tuple[int, int]:
    """(messages, unread) of every mailbox (the counters) or of one (its row)."""
    if box is None:
        values = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        return int(values.get("total", 0)), int(values.get("unread", 0))
    row = conn.execute("SELECT messages, unread FROM mailboxes WHERE name = ?", (box,)).fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def _summaries_of(conn: sqlite3.Connection, ids: list[int]) -> list[sqlite3.Row]:
    """The summaries of these message ids, newest first (a search's page)."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return (
        dict_cursor(conn)
        .execute(
            f"SELECT {SUMMARY_COLUMNS} FROM messages m WHERE m.id IN ({marks}) ORDER BY m.id DESC",
            ids,
        )
        .fetchall()
    )
