"""Open the store a --database value names: a PostgreSQL URL, else a SQLite file (or memory)."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

from mailpit_py.store.interface import StoreBackend
from mailpit_py.store.records import StoreError

POSTGRES_SCHEMES = ("postgresql", "postgres")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def is_postgres(database: str | None) -> bool:
    """Whether --database names a PostgreSQL server (postgresql:// or postgres://)."""
    match = _SCHEME.match(database or "")
    return bool(match) and match.group(1).lower() in POSTGRES_SCHEMES  # type: ignore[union-attr]


def display_name(database: str) -> str:
    """The database as shown and logged: a URL without its password."""
    if is_postgres(database):
        return redact(database)
    return database


def tenant_name(tenant_id: str) -> str:
    """Mailpit's --tenant-id made a name as Mailpit makes it a table prefix (white space
    collapsed, anything but letters, digits and _ replaced by _), without the trailing _ and in
    lower case: SQLite's table names, which Mailpit prefixes, ignore case."""
    text = " ".join(tenant_id.split())
    return re.sub(r"[^a-zA-Z0-9_]", "_", text).rstrip("_").lower()


def tenant_file(path: str, tenant: str) -> str:
    """The SQLite file of a tenant: beside --database's, the tenant's name before its suffix
    (mail.db -> mail.acme.db), so tenants given one file stay apart as Mailpit's tables do."""
    head, name = os.path.split(path)
    stem, dot, suffix = name.rpartition(".")
    if not stem:
        stem, dot, suffix = name, "", ""
    return os.path.join(head, f"{stem}.{tenant}{dot}{suffix}")


def open_store(
    database: str,
    *,
    busy_timeout: float = 5.0,
    wal: bool = True,
    compression: int = 0,
    tenant: str = "",
) -> StoreBackend:
    """The backend for `database`; StoreError saying what to fix when it cannot be opened.
    `tenant` (tenant_name's) keeps a tenant's data apart: a schema of its own on PostgreSQL, a
    file of its own beside the SQLite one; nothing for a database in memory."""
    match = _SCHEME.match(database)
    if match and match.group(1).lower() not in POSTGRES_SCHEMES:
        raise StoreError(
            f"--database {match.group(1)}:// is not a database mailpit_py can use: give a SQLite "
            "file path, or postgresql://user:password@host:5432/database"
        )
    if match:
        try:
            from mailpit_py.store.postgres.backend import PgStore
        except ImportError as exc:
            raise StoreError(
                f"--database {display_name(database)} needs psycopg, which is not installed "
                f"({exc}): pip install 'mailpit-py[postgres]'"
            ) from None
        return PgStore(database, compression=compression, schema=tenant)
    from mailpit_py.store.sqlite import MEMORY, Store

    if tenant and database != MEMORY:
        database = tenant_file(database, tenant)
    return Store(database, busy_timeout=busy_timeout, wal=wal, compression=compression)


def redact(url: str) -> str:
    """The URL without its password, to show or log."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "postgresql://(unreadable URL)"
    if password is None:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}"))


def sqlite_file(path: str) -> tuple[int, bool]:
    """(schema version, WAL mode) of an existing SQLite file, read without changing or creating
    anything (a command checks what it was given before opening it as a store); StoreError
    when it cannot be read ("locked" in the text when another process holds it)."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            journal = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc
    return version, journal == "wal"
