"""The PostgreSQL store's mailboxes (one project's inbox each): listing them with their counts,
and creating, renaming and deleting one; every instance on the database reads the same rows."""

from __future__ import annotations

import time

from mailpit_py.store.interface import RENAMES_KEPT
from mailpit_py.store.postgres.base import PgParts, text

DEFAULT_BOX = "default"  # (mailbox/boxes.py's name: the store sits below that layer)


class PgMailboxes(PgParts):
    """The mailboxes table: a row per mailbox, its counts kept by the messages' trigger."""

    def mailboxes(self) -> list[tuple[str, int, int, float]]:
        with self.reading() as conn:
            found = conn.execute(
                'SELECT name, messages, unread, created FROM mailboxes ORDER BY name COLLATE "C"'
            ).fetchall()
        return [(r[0], int(r[1]), int(r[2]), float(r[3])) for r in found]

    def box_of(self, uid: str) -> str | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT mailbox FROM messages WHERE uid = %s", (text(uid),)
            ).fetchone()
        return None if row is None else str(row[0])

    def mailbox_renamed(self, name: str) -> str | None:
        with self.reading() as conn:
            row = conn.execute(
                "SELECT new FROM mailbox_renames WHERE old = %s", (text(name),)
            ).fetchone()
        return None if row is None else str(row[0])

    def create_mailbox(self, name: str, now: float) -> bool:
        row = self._wconn.execute(
            "INSERT INTO mailboxes (name, created) VALUES (%s, %s) "
            "ON CONFLICT (name) DO NOTHING RETURNING name",
            (text(name), now),
        ).fetchone()
        return row is not None

    def backdate_mailbox(self, name: str, created: float) -> None:
        self._wconn.execute(
            "UPDATE mailboxes SET created = %s WHERE name = %s AND created > %s",
            (created, text(name), created),
        )

    def rename_mailbox(self, old: str, new: str) -> None:
        conn = self._wconn
        old, new = text(old), text(new)
        if DEFAULT_BOX in (old, new):
            raise ValueError(f"the mailbox {DEFAULT_BOX!r} cannot be renamed, nor replaced")
        # The totals' row first, as every message write takes it (the trigger, insert_message):
        # then two instances never wait on each other's mailbox rows in opposite orders.
        conn.execute("SELECT value FROM counters WHERE name = 'total' FOR UPDATE")
        names = {
            r[0]
            for r in conn.execute(
                "SELECT name FROM mailboxes WHERE name IN (%s, %s) ORDER BY name FOR UPDATE",
                (old, new),
            )
        }
        if old not in names:
            raise KeyError(old)
        if new in names:
            raise ValueError(f"a mailbox named {new!r} exists already")
        # The new row with the old one's creation time and no counts: moving the messages
        # moves their counts (the trigger), then the old row, at zero, goes.
        conn.execute(
            "INSERT INTO mailboxes (name, created) SELECT %s, created FROM mailboxes "
            "WHERE name = %s",
            (new, old),
        )
        conn.execute("UPDATE messages SET mailbox = %s WHERE mailbox = %s", (new, old))
        conn.execute("UPDATE sessions SET mailbox = %s WHERE mailbox = %s", (new, old))
        conn.execute("DELETE FROM mailboxes WHERE name = %s", (old,))
        # As SQLite's: each old name to the name now; a name in use leads nowhere else. (The
        # mailboxes' rows locked above keep two renames from writing these rows at once.)
        conn.execute("UPDATE mailbox_renames SET new = %s WHERE new = %s", (new, old))
        conn.execute("DELETE FROM mailbox_renames WHERE old IN (%s, %s)", (old, new))
        conn.execute(
            "INSERT INTO mailbox_renames (old, new, at) VALUES (%s, %s, %s)",
            (old, new, time.time()),
        )
        conn.execute(
            "DELETE FROM mailbox_renames WHERE old NOT IN "
            "(SELECT old FROM mailbox_renames ORDER BY at DESC LIMIT %s)",
            (RENAMES_KEPT,),
        )

    def delete_mailbox(self, name: str) -> list[str]:
        conn = self._wconn
        name = text(name)
        if name == DEFAULT_BOX:
            raise ValueError(f"the mailbox {DEFAULT_BOX!r} cannot be deleted")
        conn.execute("SELECT value FROM counters WHERE name = 'total' FOR UPDATE")
        if not conn.execute(
            "SELECT 1 FROM mailboxes WHERE name = %s FOR UPDATE", (name,)
        ).fetchone():
            raise KeyError(name)
        gone = [
            r[0]
            for r in conn.execute("DELETE FROM messages WHERE mailbox = %s RETURNING uid", (name,))
        ]
        conn.execute("DELETE FROM sessions WHERE mailbox = %s", (name,))
        conn.execute("DELETE FROM mailboxes WHERE name = %s", (name,))
        conn.execute("DELETE FROM mailbox_renames WHERE old = %s OR new = %s", (name, name))
        self._forget_relays(gone)
        return gone
