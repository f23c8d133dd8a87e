"""The PostgreSQL schema: its versioned migrations, and running them at open."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from mailpit_py.store.records import StoreError

# Instances opening one database at once take turns to migrate it (pg_advisory_lock).
MIGRATION_LOCK = 0x6D61_696C_7069_74  # "mailpit"

# Each entry is one version; they mirror the SQLite schema's meaning (store/schema.py), not
# its numbers: version 1 is SQLite's version 13 in PostgreSQL's terms, version 2 its 15 and
# version 3 its 14 (which landed after 15).
MIGRATIONS: list[str] = [
    # 1: messages with their data, parts, tags, headers, the search index, checks, IMAP
    # flags, the session log, the relay outbox, facts about the database, kept counts.
    """
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE TABLE messages (
        id BIGSERIAL PRIMARY KEY,          -- a sequence: never reused, so IMAP UIDs
        uid TEXT NOT NULL UNIQUE,          -- the API's ID
        mailbox TEXT NOT NULL DEFAULT 'default',
        created DOUBLE PRECISION NOT NULL,
        read SMALLINT NOT NULL DEFAULT 0,  -- 0 or 1, as SQLite's rows carry it
        size BIGINT NOT NULL,
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
        inline_count INTEGER NOT NULL DEFAULT 0,
        session_uid TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX messages_created ON messages (created);
    -- is:read/unread counts and paging read (id, read) from the index alone.
    CREATE INDEX messages_id_read ON messages (id, read);
    -- Substrings (subject:, from:, to:) through trigrams, not a scan of every row.
    CREATE INDEX messages_subject_trgm ON messages USING gin (subject gin_trgm_ops);
    CREATE INDEX messages_from_trgm ON messages USING gin (from_json gin_trgm_ops);
    CREATE INDEX messages_to_trgm ON messages USING gin (to_json gin_trgm_ops);
    -- Large columns live apart so that listing never reads raw bytes. raw and part data are
    -- stored uncompressed (EXTERNAL), so substring() reads a piece without the whole value.
    CREATE TABLE message_data (
        id BIGINT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
        detail BYTEA NOT NULL,             -- detailcodec's pickle, or its JSON text as UTF-8
        detail_is_text BOOLEAN NOT NULL DEFAULT false,
        transcript TEXT NOT NULL,
        raw BYTEA NOT NULL
    );
    ALTER TABLE message_data ALTER COLUMN raw SET STORAGE EXTERNAL;
    CREATE TABLE parts (
        id BIGSERIAL PRIMARY KEY,
        message BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        part_id TEXT NOT NULL,
        content_type TEXT NOT NULL,
        data BYTEA NOT NULL,
        UNIQUE (message, part_id)
    );
    ALTER TABLE parts ALTER COLUMN data SET STORAGE EXTERNAL;
    CREATE TABLE tags (
        message BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (message, tag)
    );
    CREATE INDEX tags_tag ON tags (lower(tag), message);
    CREATE TABLE headers (
        message BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        value TEXT NOT NULL
    );
    CREATE INDEX headers_name ON headers (lower(name), message);
    CREATE INDEX headers_message ON headers (message);
    CREATE INDEX headers_value_trgm ON headers USING gin (value gin_trgm_ops);
    -- The search index: words (folded, with positions for phrases; weights A-D are the
    -- subject, addresses, body and attachment names) and the same text lowered for substrings.
    CREATE TABLE messages_fts (
        id BIGINT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
        words TSVECTOR NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX messages_fts_words ON messages_fts USING gin (words);
    CREATE INDEX messages_fts_text ON messages_fts USING gin (text gin_trgm_ops);
    CREATE TABLE message_checks (
        message BIGINT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
        checked DOUBLE PRECISION NOT NULL,
        result TEXT NOT NULL
    );
    CREATE TABLE imap_flags (
        message BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        flag TEXT NOT NULL,
        PRIMARY KEY (message, flag)
    );
    CREATE TABLE sessions (
        id BIGSERIAL PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        started DOUBLE PRECISION NOT NULL,
        ended DOUBLE PRECISION NOT NULL,
        peer TEXT NOT NULL,
        local TEXT NOT NULL,
        helo TEXT NOT NULL,
        tls SMALLINT NOT NULL,
        username TEXT NOT NULL,
        outcome TEXT NOT NULL,
        messages TEXT NOT NULL,
        transcript TEXT NOT NULL,
        bytes BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE outbox (
        id BIGSERIAL PRIMARY KEY,
        message_uid TEXT NOT NULL,
        kind TEXT NOT NULL,
        mail_from TEXT NOT NULL,
        recipients TEXT NOT NULL,
        raw BYTEA NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending'
    );
    CREATE INDEX outbox_due ON outbox (state, next_attempt);
    CREATE INDEX outbox_message ON outbox (message_uid);
    CREATE TABLE relay_attempts (
        id BIGSERIAL PRIMARY KEY,
        message_uid TEXT NOT NULL,
        outbox_id BIGINT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        kind TEXT NOT NULL,
        recipients TEXT NOT NULL,
        server TEXT NOT NULL,
        reply TEXT NOT NULL,
        outcome TEXT NOT NULL
    );
    CREATE INDEX relay_attempts_message ON relay_attempts (message_uid);
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta (name, value)
        VALUES ('imap_uidvalidity', (floor(random() * 2147483646) + 1)::bigint::text);
    -- Kept counts (counting 100k rows at every list costs milliseconds), by statement-level
    -- triggers: one update per statement, whatever the rows.
    CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
    INSERT INTO counters (name, value)
        VALUES ('total', 0), ('unread', 0), ('sessions', 0), ('session_bytes', 0);
    CREATE FUNCTION mailpit_count_messages() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE total BIGINT := 0; unread BIGINT := 0;
    BEGIN
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            SELECT total + count(*), unread + count(*) FILTER (WHERE read = 0)
                INTO total, unread FROM new_rows;
        END IF;
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            SELECT total - count(*), unread - count(*) FILTER (WHERE read = 0)
                INTO total, unread FROM old_rows;
        END IF;
        IF total <> 0 OR unread <> 0 THEN
            UPDATE counters SET value = value + CASE name WHEN 'total' THEN total ELSE unread END
                WHERE name IN ('total', 'unread');
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER messages_count_insert AFTER INSERT ON messages
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION mailpit_count_messages();
    CREATE TRIGGER messages_count_delete AFTER DELETE ON messages
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
        EXECUTE FUNCTION mailpit_count_messages();
    CREATE TRIGGER messages_count_update AFTER UPDATE ON messages
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION mailpit_count_messages();
    CREATE FUNCTION mailpit_count_sessions() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE n BIGINT := 0; size BIGINT := 0;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            SELECT count(*), coalesce(sum(bytes), 0) INTO n, size FROM new_rows;
        ELSE
            SELECT -count(*), -coalesce(sum(bytes), 0) INTO n, size FROM old_rows;
        END IF;
        UPDATE counters SET value = value + CASE name WHEN 'sessions' THEN n ELSE size END
            WHERE name IN ('sessions', 'session_bytes');
        RETURN NULL;
    END $$;
    CREATE TRIGGER sessions_count_insert AFTER INSERT ON sessions
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION mailpit_count_sessions();
    CREATE TRIGGER sessions_count_delete AFTER DELETE ON sessions
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
        EXECUTE FUNCTION mailpit_count_sessions();
    """,
    # 2: receiver simulation (SQLite's 15): a refused message is kept with its refusal as JSON
    # ('' for an accepted one), found by is:refused through a small partial index; and the
    # SMTP listener that took each message.
    """
    ALTER TABLE messages ADD COLUMN refused TEXT NOT NULL DEFAULT '';
    ALTER TABLE messages ADD COLUMN listener TEXT NOT NULL DEFAULT '';
    CREATE INDEX messages_refused ON messages (id) WHERE refused <> '';
    """,
    # 3: --ignore-duplicate-ids looks each Message-ID up through an index (SQLite's 14).
    """
    CREATE INDEX messages_message_id ON messages (message_id);
    """,
    # 4: header: lists a name's distinct values (their first 256 characters, lowered: a btree
    # key has a size limit) from an index, to read only the rows of the values that match
    # (store/postgres/search_sql.py's _header).
    """
    CREATE INDEX headers_name_key ON headers (lower(name), lower(left(value, 256)), message);
    """,
    # 5: mailboxes (one project's inbox each): a row per mailbox with its counts, kept by the
    # same statement-level trigger as the totals (so every instance reads the database's, in
    # constant time); each session's mailbox; the indexes that let a read in one mailbox walk
    # that mailbox's rows alone, newest first. The counters stay for every mailbox at once.
    """
    CREATE TABLE mailboxes (
        name TEXT PRIMARY KEY,
        created DOUBLE PRECISION NOT NULL,
        messages BIGINT NOT NULL DEFAULT 0,
        unread BIGINT NOT NULL DEFAULT 0
    );
    INSERT INTO mailboxes (name, created, messages, unread)
        SELECT mailbox, min(created), count(*), count(*) FILTER (WHERE read = 0)
        FROM messages GROUP BY mailbox;
    INSERT INTO mailboxes (name, created) VALUES ('default', extract(epoch FROM now()))
        ON CONFLICT (name) DO NOTHING;
    CREATE INDEX messages_mailbox_id ON messages (mailbox, id, read);
    ALTER TABLE sessions ADD COLUMN mailbox TEXT NOT NULL DEFAULT 'default';
    CREATE INDEX sessions_mailbox_id ON sessions (mailbox, id);
    CREATE OR REPLACE FUNCTION mailpit_count_messages() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE total BIGINT := 0; unread BIGINT := 0;
    BEGIN
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            SELECT total + count(*), unread + count(*) FILTER (WHERE read = 0)
                INTO total, unread FROM new_rows;
        END IF;
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            SELECT total - count(*), unread - count(*) FILTER (WHERE read = 0)
                INTO total, unread FROM old_rows;
        END IF;
        -- The totals first, then the mailboxes in name order: every writer takes these rows
        -- in one order, so instances sharing the database never deadlock on them.
        IF total <> 0 OR unread <> 0 THEN
            UPDATE counters SET value = value + CASE name WHEN 'total' THEN total ELSE unread END
                WHERE name IN ('total', 'unread');
        END IF;
        IF TG_OP = 'INSERT' THEN
            INSERT INTO mailboxes AS b (name, created, messages, unread)
                SELECT mailbox, min(created), count(*), count(*) FILTER (WHERE read = 0)
                FROM new_rows GROUP BY mailbox ORDER BY mailbox
                ON CONFLICT (name) DO UPDATE SET messages = b.messages + excluded.messages,
                    unread = b.unread + excluded.unread;
        ELSIF TG_OP = 'DELETE' THEN
            UPDATE mailboxes b SET messages = b.messages - d.n, unread = b.unread - d.u
                FROM (SELECT mailbox, count(*) AS n, count(*) FILTER (WHERE read = 0) AS u
                      FROM old_rows GROUP BY mailbox ORDER BY mailbox) d
                WHERE b.name = d.mailbox;
        ELSE
            -- (a mailbox renamed moves its rows: rename_mailbox makes the new row first)
            UPDATE mailboxes b SET messages = b.messages + d.n, unread = b.unread + d.u
                FROM (SELECT mailbox, sum(n) AS n, sum(u) AS u FROM (
                        SELECT mailbox, 1 AS n, (read = 0)::int AS u FROM new_rows
                        UNION ALL SELECT mailbox, -1, -(read = 0)::int FROM old_rows) c
                      GROUP BY mailbox HAVING sum(n) <> 0 OR sum(u) <> 0 ORDER BY mailbox) d
                WHERE b.name = d.mailbox;
        END IF;
        RETURN NULL;
    END $$;
    """,
    # 6: the statements that insert messages add their counts themselves, in the same statement
    # (store/postgres/pending.py): this trigger's run (a plpgsql call, its transition table and
    # two statements of its own) cost ~130 us of the server's CPU per insert statement, a
    # sequential sender's whole message. Deletes and updates keep theirs.
    #
    # And the rows written with a message in its own statement (its data, parts, tags, headers,
    # index row) lose their foreign keys: each row's check cost a query of its own (~95 us of
    # the server's CPU a message); what the keys' cascades did, one statement-level trigger does
    # for all the messages a statement deletes, a statement per table.
    """
    DROP TRIGGER messages_count_insert ON messages;
    ALTER TABLE message_data DROP CONSTRAINT message_data_id_fkey;
    ALTER TABLE parts DROP CONSTRAINT parts_message_fkey;
    ALTER TABLE tags DROP CONSTRAINT tags_message_fkey;
    ALTER TABLE headers DROP CONSTRAINT headers_message_fkey;
    ALTER TABLE messages_fts DROP CONSTRAINT messages_fts_id_fkey;
    CREATE FUNCTION mailpit_delete_message_rows() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE ids BIGINT[];
    BEGIN
        -- (an array, not a join with the transition table: the planner cannot size that, and
        -- each table's index on the message is what one deleted message needs)
        ids := ARRAY(SELECT id FROM old_rows);
        DELETE FROM message_data WHERE id = ANY(ids);
        DELETE FROM parts WHERE message = ANY(ids);
        DELETE FROM tags WHERE message = ANY(ids);
        DELETE FROM headers WHERE message = ANY(ids);
        DELETE FROM messages_fts WHERE id = ANY(ids);
        RETURN NULL;
    END $$;
    CREATE TRIGGER messages_delete_rows AFTER DELETE ON messages
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
        EXECUTE FUNCTION mailpit_delete_message_rows();
    """,
    # 7: the latest mailbox renames (SQLite's 18), read by every instance on the database.
    """
    CREATE TABLE IF NOT EXISTS mailbox_renames (
        old TEXT PRIMARY KEY,
        new TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL
    );
    """,
]


def prepare_schema(conn: psycopg.Connection[Any], schema: str, display: str) -> None:
    """A tenant's schema, made if missing; pg_trgm is made first where the database keeps
    extensions (public), so every tenant's search path finds its operators."""
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    except psycopg.Error as exc:
        raise StoreError(
            f"cannot prepare the tenant's schema {schema!r} in {display}: {str(exc).strip()} "
            "(the user needs the right to create schemas in the database)"
        ) from exc


def migrate(conn: psycopg.Connection[Any], display: str) -> None:
    """Bring the database up to the newest schema, each migration in a transaction of its own,
    one instance at a time; raise StoreError for a database whose schema is newer than this
    code knows (its data would be misread, or broken by the next write)."""
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            _migrate(conn, display)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise StoreError(
            f"cannot prepare database {display}: {str(exc).strip()}; the user needs the right "
            "to create tables (and the pg_trgm extension: CREATE EXTENSION pg_trgm, run once by "
            "an administrator)"
        ) from exc
    except psycopg.Error as exc:
        raise StoreError(f"cannot prepare database {display}: {str(exc).strip()}") from exc


def _migrate(conn: psycopg.Connection[Any], display: str) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS mailpit_schema (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM mailpit_schema").fetchone()
    if row is None:
        conn.execute("INSERT INTO mailpit_schema (version) VALUES (0)")
        version = 0
    else:
        version = int(row[0])
    if version > len(MIGRATIONS):
        raise StoreError(
            f"database {display} has schema version {version}, newer than this mailpit_py "
            f"knows ({len(MIGRATIONS)}): upgrade mailpit_py or use another database"
        )
    for number in range(version, len(MIGRATIONS)):
        with conn.transaction():
            conn.execute(MIGRATIONS[number].encode())  # (no parameters: the script runs whole)
            conn.execute("UPDATE mailpit_schema SET version = %s", (number + 1,))


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The version of the database's schema (0: none yet)."""
    row = conn.execute("SELECT version FROM mailpit_schema").fetchone()
    return 0 if row is None else int(row[0])
