"""The SQLite schema: the migrations that build it, one version at a time, and running them."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from mailpit_py.store.records import StoreError

# The counters table follows messages through these; delete_all drops and recreates them so
# that emptying the mailbox keeps SQLite's truncate fast path (triggers would force per-row).
COUNTER_TRIGGERS: tuple[str, ...] = (
    """CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN
        UPDATE counters SET value = value + 1 WHERE name = 'total';
        UPDATE counters SET value = value + 1 WHERE name = 'unread' AND new.read = 0;
    END""",
    """CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN
        UPDATE counters SET value = value - 1 WHERE name = 'total';
        UPDATE counters SET value = value - 1 WHERE name = 'unread' AND old.read = 0;
    END""",
    """CREATE TRIGGER messages_count_read AFTER UPDATE OF read ON messages
        WHEN (old.read = 0) != (new.read = 0) BEGIN
        UPDATE counters SET value = value + (CASE WHEN new.read = 0 THEN 1 ELSE -1 END)
            WHERE name = 'unread';
    END""",
)
COUNTER_TRIGGER_NAMES = ("messages_count_insert", "messages_count_delete", "messages_count_read")
# Each mailbox's counts follow its messages the same way (migration 16); a message's first
# arrival in a mailbox makes its row. A rename moves counts itself (MessageWrites), so no
# trigger watches the mailbox column.
MAILBOX_TRIGGERS: tuple[str, ...] = (
    """CREATE TRIGGER mailboxes_count_insert AFTER INSERT ON messages BEGIN
        INSERT INTO mailboxes (name, created, messages, unread)
            VALUES (new.mailbox, new.created, 1, new.read = 0)
            ON CONFLICT (name) DO UPDATE SET messages = messages + 1,
                unread = unread + excluded.unread;
    END""",
    """CREATE TRIGGER mailboxes_count_delete AFTER DELETE ON messages BEGIN
        UPDATE mailboxes SET messages = messages - 1, unread = unread - (old.read = 0)
            WHERE name = old.mailbox;
    END""",
    """CREATE TRIGGER mailboxes_count_read AFTER UPDATE OF read ON messages
        WHEN (old.read = 0) != (new.read = 0) BEGIN
        UPDATE mailboxes SET unread = unread + (CASE WHEN new.read = 0 THEN 1 ELSE -1 END)
            WHERE name = new.mailbox;
    END""",
)
MAILBOX_TRIGGER_NAMES = ("mailboxes_count_insert", "mailboxes_count_delete", "mailboxes_count_read")
DEFAULT_BOX = "default"  # the mailbox that always exists (mailbox/boxes.py names it for the rest)
FTS_SCHEMA = """CREATE VIRTUAL TABLE messages_fts USING fts5 (
        subject, addresses, body, attachments, headers,
        tokenize = 'unicode61 remove_diacritics 2'
    )"""
# Substrings (Mailpit's free text is a LIKE '%term%'): a trigram index over the columns free
# text searches. Its text is read from messages_fts (external content), so the words are
# stored once; deleting a row from it therefore needs the row's values, read from messages_fts
# before that row goes (see Messages._delete_rowids).
TRIGRAM_SCHEMA = """CREATE VIRTUAL TABLE messages_tri USING fts5 (
        subject, addresses, body, attachments,
        tokenize = 'trigram', content = 'messages_fts'
    )"""
MESSAGE_ID_INDEX = "CREATE INDEX IF NOT EXISTS messages_message_id ON messages (message_id)"
# The trigram tokenizer came with SQLite 3.34.0.
TRIGRAM_SQLITE = (3, 34, 0)

MIGRATIONS: list[str] = [
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a stable order and future UIDs
        uid TEXT NOT NULL UNIQUE,              -- the API's ID
        mailbox TEXT NOT NULL DEFAULT 'default',
        created REAL NOT NULL,
        read INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        from_json TEXT NOT NULL,
        to_json TEXT NOT NULL,
        cc_json TEXT NOT NULL,
        bcc_json TEXT NOT NULL,
        reply_to_json TEXT NOT NULL,
        username TEXT NOT NULL DEFAULT '',
        snippet TEXT NOT NULL,
        attachments INTEGER NOT NULL,
        session_uid TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX messages_mailbox_id ON messages (mailbox, id);
    CREATE INDEX messages_created ON messages (created);
    CREATE INDEX messages_unread ON messages (mailbox, read);
    -- Large columns live apart so that listing never pages through raw bytes.
    CREATE TABLE message_data (
        id INTEGER PRIMARY KEY,
        raw BLOB NOT NULL,
        detail TEXT NOT NULL,      -- JSON: everything parsed at ingest that the views show
        transcript TEXT NOT NULL   -- JSON: the SMTP exchange that delivered this message
    );
    CREATE TABLE parts (
        message INTEGER NOT NULL,
        part_id TEXT NOT NULL,
        content_type TEXT NOT NULL,
        data BLOB NOT NULL
    );
    CREATE UNIQUE INDEX parts_message_part ON parts (message, part_id);
    CREATE TABLE tags (
        message INTEGER NOT NULL,
        tag TEXT NOT NULL,
        PRIMARY KEY (message, tag)
    ) WITHOUT ROWID;
    CREATE INDEX tags_tag ON tags (tag);
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        uid TEXT NOT NULL UNIQUE,
        started REAL NOT NULL,
        ended REAL NOT NULL,
        peer TEXT NOT NULL,
        local TEXT NOT NULL,
        helo TEXT NOT NULL,
        tls INTEGER NOT NULL,
        username TEXT NOT NULL,
        outcome TEXT NOT NULL,
        messages TEXT NOT NULL,    -- JSON list of message uids delivered in the session
        transcript TEXT NOT NULL
    );
    CREATE VIRTUAL TABLE messages_fts USING fts5 (
        subject, addresses, body, attachments, headers,
        tokenize = 'unicode61 remove_diacritics 2'
    );
    """,
    # 2: inline-part counts for has:inline, and header values for header:Name:value search.
    """
    ALTER TABLE messages ADD COLUMN inline_count INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE headers (
        message INTEGER NOT NULL,
        name TEXT NOT NULL COLLATE NOCASE,
        value TEXT NOT NULL
    );
    CREATE INDEX headers_name ON headers (name, message);
    CREATE INDEX headers_message ON headers (message);
    """,
    # 3: total and unread kept by triggers (counting 100k rows took 10 ms per list call), and
    # header values in the name index so header: searches read the index alone.
    """
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO counters SELECT 'total', count(*) FROM messages;
    INSERT INTO counters SELECT 'unread', count(*) FROM messages WHERE read = 0;
    """
    + "\n".join(f"{trigger};" for trigger in COUNTER_TRIGGERS)
    + """
    DROP INDEX headers_name;
    CREATE INDEX headers_name_value ON headers (name, message, value);
    -- The ids alone: OFFSET steps over this slim index, not over the table's fat rows.
    CREATE INDEX messages_ids ON messages (id);
    -- raw moves to the end of its row: SQLite writes a zeroblob lazily only in the last
    -- column, and a big message is written into one in pieces (a 50 MB message cost 106 MB
    -- of memory to insert in the middle of the row, 2 MB at its end).
    CREATE TABLE message_data_v3 (
        id INTEGER PRIMARY KEY,
        detail TEXT NOT NULL,      -- JSON: everything parsed at ingest that the views show
        transcript TEXT NOT NULL,  -- JSON: the SMTP exchange that delivered this message
        raw BLOB NOT NULL
    );
    INSERT INTO message_data_v3 (id, detail, transcript, raw)
        SELECT id, detail, transcript, raw FROM message_data;
    DROP TABLE message_data;
    ALTER TABLE message_data_v3 RENAME TO message_data;
    """,
    # 4: the relay outbox, kept across restarts, and every relay attempt's outcome.
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_uid TEXT NOT NULL,
        kind TEXT NOT NULL,          -- release, relay or forward
        mail_from TEXT NOT NULL,     -- the envelope sender to use
        recipients TEXT NOT NULL,    -- JSON list still to deliver to
        raw BLOB NOT NULL,           -- what to send: a copy, so pruning cannot lose it
        created REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending'  -- pending, sent or failed
    );
    CREATE INDEX outbox_due ON outbox (state, next_attempt);
    CREATE INDEX outbox_message ON outbox (message_uid);
    CREATE TABLE relay_attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_uid TEXT NOT NULL,
        outbox_id INTEGER NOT NULL,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        recipients TEXT NOT NULL,    -- JSON list
        server TEXT NOT NULL,
        reply TEXT NOT NULL,         -- the upstream's reply or the connection error
        outcome TEXT NOT NULL        -- sent, partial, retry or failed
    );
    CREATE INDEX relay_attempts_message ON relay_attempts (message_uid);
    """,
    # 5: message checks: DKIM/SPF/DMARC, blocklists, headers, spam score, as JSON.
    """
    CREATE TABLE message_checks (
        message INTEGER PRIMARY KEY,
        checked REAL NOT NULL,
        result TEXT NOT NULL
    );
    """,
    # 6: facts about the database itself. IMAP's UIDVALIDITY is drawn once, when the
    # database is made, so a file keeps it across restarts (the UIDs are messages.id, which
    # AUTOINCREMENT never reuses) and a new database gets a new one.
    """
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (name, value) VALUES ('imap_uidvalidity', abs(random() % 2147483646) + 1);
    """,
    # 7: each session's size, so the session log is bounded in bytes too, without reading
    # every transcript to add them up.
    """
    ALTER TABLE sessions ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
    """,
    # 8: the session log's row count and size kept by triggers, and a slim index to walk its
    # oldest rows, so bounding it costs a few rows per new session, not a scan of the log
    # (it was 15% of the server's time with a new connection per message); `ended` is in it
    # for the retention rule (insert_session).
    """
    CREATE INDEX sessions_size ON sessions (id, bytes, ended);
    INSERT INTO counters SELECT 'sessions', count(*) FROM sessions;
    INSERT INTO counters SELECT 'session_bytes', coalesce(sum(bytes), 0) FROM sessions;
    CREATE TRIGGER sessions_count_insert AFTER INSERT ON sessions BEGIN
        UPDATE counters SET value = value + 1 WHERE name = 'sessions';
        UPDATE counters SET value = value + new.bytes WHERE name = 'session_bytes';
    END;
    CREATE TRIGGER sessions_count_delete AFTER DELETE ON sessions BEGIN
        UPDATE counters SET value = value - 1 WHERE name = 'sessions';
        UPDATE counters SET value = value - old.bytes WHERE name = 'session_bytes';
    END;
    """,
    # 9: the slim ids index carries each message's read flag too, so a search that picks its
    # messages by id (header:, words, tags) counts its unread matches from the index alone, not
    # from 10,000 table rows (header: search at 100k: 59 -> 41 ms); deep paging uses it as before.
    """
    CREATE INDEX messages_id_read ON messages (id, read);
    DROP INDEX messages_ids;
    """,
    # 10: IMAP flags other than \Seen (which is messages.read), so a client's
    # \Flagged or \Answered survives a restart; they go with their message.
    """
    CREATE TABLE imap_flags (
        message INTEGER NOT NULL,
        flag TEXT NOT NULL,
        PRIMARY KEY (message, flag)
    ) WITHOUT ROWID;
    """,
    # 11: two indexes no query uses (nothing filters on the one mailbox there is; unread counts
    # are kept by triggers, and is:unread reads messages_id_read), yet every message was
    # inserted into both: the writer's work -13% per message, WAL frames 6.00 -> 5.41.
    """
    DROP INDEX IF EXISTS messages_mailbox_id;
    DROP INDEX IF EXISTS messages_unread;
    """,
    # 12: message_data.detail of new rows is a pickle of plain data (detailcodec.py), no longer
    # JSON text; older rows keep their JSON, which is read as before. No table changes: the
    # version tells an older mailpit_py that it cannot read this file, instead of failing on
    # the first new message.
    """
    -- detail: pickled plain data from here on
    """,
    # 13: the trigram index for substring search, filled from the word index's text.
    f"""
    {TRIGRAM_SCHEMA};
    -- Not FTS5's 'rebuild', which cannot read another FTS5 table as its content.
    INSERT INTO messages_tri (rowid, subject, addresses, body, attachments)
        SELECT rowid, subject, addresses, body, attachments FROM messages_fts;
    """,
    # 14: an index on the Message-ID, which --ignore-duplicate-ids looks up for every message
    # (a scan of the table before; Mailpit indexes it too). A database that passed 14 while it
    # was empty gets the index at open instead (see migrate).
    f"""
    {MESSAGE_ID_INDEX};
    """,
    # 15: receiver simulation (--receiver): a message a profile refused is kept, with the
    # refusal as JSON ({Reply, Rule, Stage, ...}; '' for an accepted message), so the list can
    # mark it and is:refused find it through a small partial index; and the SMTP listener that
    # took each message (--smtp-listener NAME=...; 'default' for --smtp).
    """
    ALTER TABLE messages ADD COLUMN refused TEXT NOT NULL DEFAULT '';
    ALTER TABLE messages ADD COLUMN listener TEXT NOT NULL DEFAULT '';
    CREATE INDEX messages_refused ON messages (id) WHERE refused != '';
    """,
    # 16: mailboxes, one project's inbox each: a row per mailbox with its counts kept by
    # triggers (constant time per mailbox, as the totals), the sessions' mailbox, and an index
    # leading with the mailbox, so a page, a search's candidates and its unread count in one
    # mailbox read that mailbox's index entries, not every message's (read in it for the
    # unread counts, as messages_id_read for the whole store).
    """
    CREATE TABLE mailboxes (
        name TEXT PRIMARY KEY,
        created REAL NOT NULL,
        messages INTEGER NOT NULL DEFAULT 0,
        unread INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    INSERT INTO mailboxes (name, created, messages, unread)
        SELECT mailbox, min(created), count(*), coalesce(sum(read = 0), 0) FROM messages
        GROUP BY mailbox;
    INSERT OR IGNORE INTO mailboxes (name, created)
        VALUES ('default', (julianday('now') - 2440587.5) * 86400.0);
    CREATE INDEX messages_mailbox_id_read ON messages (mailbox, id, read);
    ALTER TABLE sessions ADD COLUMN mailbox TEXT NOT NULL DEFAULT 'default';
    CREATE INDEX sessions_mailbox ON sessions (mailbox, id);
    """
    + "\n".join(f"{trigger};" for trigger in MAILBOX_TRIGGERS),
    # 17: header values in order within each header name, so that header:Name:value reads a
    # header's distinct values (a seek each) instead of every message's value of it: at
    # 1,000,000 messages header:X-Campaign:c3 tested a million values, of which there are ten
    # distinct (queries.header_values). A search within one message's headers (a small
    # mailbox's probe) has headers_message.
    """
    CREATE INDEX IF NOT EXISTS headers_name_value_message ON headers (name, value, message);
    DROP INDEX IF EXISTS headers_name_value;
    """,
    # 18: the latest mailbox renames, each old name to the name now (mailboxes.py), so the web
    # page of an old name leads to the new one after a restart, and on every instance.
    """
    CREATE TABLE IF NOT EXISTS mailbox_renames (
        old TEXT PRIMARY KEY,
        new TEXT NOT NULL,
        at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
]


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the database up to the newest schema, each migration in a transaction of its own;
    raise StoreError for a file whose schema is newer than this code knows (its data would be
    misread, or broken by the next write)."""
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"database {path!r} has schema version {version}, newer than this "
                f"mailpit_py knows ({len(MIGRATIONS)}): upgrade mailpit_py or use another file"
            )
        if version < len(MIGRATIONS) and sqlite3.sqlite_version_info < TRIGRAM_SQLITE:
            raise StoreError(
                f"SQLite {sqlite3.sqlite_version} has no trigram tokenizer, which substring "
                "search needs: run mailpit_py with a Python built against SQLite 3.34 or newer"
            )
        if version == 0:
            refuse_foreign_tables(conn, path)
        # An index built over a big table sorts its entries in temporary storage: in memory
        # (the store's temp_store) that is the whole index at once, 381 MB for migration 17
        # at 1,000,000 messages; in temporary files the sort keeps to its cache.
        temp_store = conn.execute("PRAGMA temp_store").fetchone()[0]
        if version < len(MIGRATIONS):
            conn.execute("PRAGMA temp_store = FILE")
        try:
            for number in range(version, len(MIGRATIONS)):
                conn.execute("BEGIN IMMEDIATE")
                for statement in statements(MIGRATIONS[number]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number + 1}")
                conn.execute("COMMIT")
        finally:
            conn.execute(f"PRAGMA temp_store = {int(temp_store)}")
        if (
            version >= 14
            and not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'messages_message_id'"
            ).fetchone()
        ):
            # Migration 14 was an empty placeholder for a while: a file that passed it then
            # has no Message-ID index yet.
            conn.execute(MESSAGE_ID_INDEX)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot prepare database {path!r}: {exc}") from exc


MAILPIT_TABLE = "mailbox_data"  # Mailpit's raw messages (a tenant's prefix before it)


def refuse_foreign_tables(conn: sqlite3.Connection, path: str) -> None:
    """A file at schema version 0 is new to mailpit_py: refuse it when another program's
    tables are in it, since the migrations would add ours beside them. A migrating Mailpit
    user pointing --database at Mailpit's own file is the likely case."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    if any(name.endswith(MAILPIT_TABLE) for name in names):
        raise StoreError(
            f"database {path!r} is Mailpit's own database, which mailpit_py does not read or "
            "write: give --database a new file, and to bring Mailpit's messages over run "
            "Mailpit on it and `mailpit-py dump --url http://MAILPIT:8025/ DIR`, then "
            "`mailpit-py ingest DIR`"
        )
    if names:
        shown = ", ".join(sorted(names)[:5])
        raise StoreError(
            f"database {path!r} holds another program's tables ({shown}), so mailpit_py will "
            "not add its own to it: give --database a new file"
        )


def refuse_foreign_file(path: str) -> None:
    """refuse_foreign_tables on a file before the store opens it for writing: opening it
    read-write would already change it (the write-ahead log's mark in its header)."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return
    try:
        conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                refuse_foreign_tables(conn, path)
        finally:
            conn.close()
    except sqlite3.Error:
        return  # not readable as SQLite: opening it says why


def is_mailpit_file(path: str) -> bool:
    """Whether a SQLite file is Mailpit's own database, read only so nothing changes; a file
    that is no SQLite database at all is left for the store to refuse."""
    try:
        conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
        try:
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return any(name.endswith(MAILPIT_TABLE) for name in names)


def statements(script: str) -> list[str]:
    """Split a migration into statements (sqlite3.complete_statement keeps triggers whole)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip() and not buf.strip().startswith("--"):
        out.append(buf.strip())
    return out
