"""The SQLite store's mailboxes: one project's inbox each, with counts kept by triggers."""

from __future__ import annotations

import time

from mailpit_py.store.base import SQLiteParts
from mailpit_py.store.interface import RENAMES_KEPT
from mailpit_py.store.schema import DEFAULT_BOX


class Mailboxes(SQLiteParts):
    """The mailboxes: their rows read (any thread), made, renamed and deleted (writer)."""

    def mailboxes(self) -> list[tuple[str, int, int, float]]:
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT name, messages, unread, created FROM mailboxes ORDER BY name"
            ).fetchall()
        return [(str(r[0]), int(r[1]), int(r[2]), float(r[3])) for r in rows]

    def box_of(self, uid: str) -> str | None:
        with self.reading() as conn:
            row = conn.execute("SELECT mailbox FROM messages WHERE uid = ?", (uid,)).fetchone()
        return None if row is None else str(row[0])

    def mailbox_renamed(self, name: str) -> str | None:
        with self.reading() as conn:
            row = conn.execute("SELECT new FROM mailbox_renames WHERE old = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def create_mailbox(self, name: str, now: float) -> bool:
        cur = self._wconn.execute(
            "INSERT OR IGNORE INTO mailboxes (name, created) VALUES (?, ?)", (name, now)
        )
        return cur.rowcount > 0

    def backdate_mailbox(self, name: str, created: float) -> None:
        self._wconn.execute(
            "UPDATE mailboxes SET created = ? WHERE name = ? AND created > ?",
            (created, name, created),
        )

    def rename_mailbox(self, old: str, new: str) -> None:
        conn = self._wconn
        if DEFAULT_BOX in (old, new):
            raise ValueError(f"the {DEFAULT_BOX} mailbox cannot be renamed or replaced")
        if not conn.execute("SELECT 1 FROM mailboxes WHERE name = ?", (old,)).fetchone():
            raise KeyError(old)
        if conn.execute("SELECT 1 FROM mailboxes WHERE name = ?", (new,)).fetchone():
            raise ValueError(f"mailbox already exists: {new}")
        # No trigger watches messages.mailbox: the row moves with its counts as they are.
        conn.execute("UPDATE mailboxes SET name = ? WHERE name = ?", (new, old))
        conn.execute("UPDATE messages SET mailbox = ? WHERE mailbox = ?", (new, old))
        conn.execute("UPDATE sessions SET mailbox = ? WHERE mailbox = ?", (new, old))
        self.hold_index(old, 0)  # (the next delivery's prune tells the new name's)
        # Each old name leads to the name now, never to another old one (a name taken again,
        # B back to A, starts no chain), and a name in use is that mailbox's, not a way on.
        conn.execute("UPDATE mailbox_renames SET new = ? WHERE new = ?", (new, old))
        conn.execute("DELETE FROM mailbox_renames WHERE old IN (?, ?)", (old, new))
        conn.execute(
            "INSERT INTO mailbox_renames (old, new, at) VALUES (?, ?, ?)", (old, new, time.time())
        )
        conn.execute(
            "DELETE FROM mailbox_renames WHERE old NOT IN "
            "(SELECT old FROM mailbox_renames ORDER BY at DESC LIMIT ?)",
            (RENAMES_KEPT,),
        )

    def delete_mailbox(self, name: str) -> list[str]:
        conn = self._wconn
        if name == DEFAULT_BOX:
            raise ValueError(f"the {DEFAULT_BOX} mailbox cannot be deleted")
        if not conn.execute("SELECT 1 FROM mailboxes WHERE name = ?", (name,)).fetchone():
            raise KeyError(name)
        rows = conn.execute("SELECT id, uid FROM messages WHERE mailbox = ?", (name,)).fetchall()
        self._delete_rowids([r[0] for r in rows])
        self._forget_relays([r[1] for r in rows])
        conn.execute("DELETE FROM sessions WHERE mailbox = ?", (name,))
        conn.execute("DELETE FROM mailboxes WHERE name = ?", (name,))
        # Its names are gone, not moved: an old name of it leads nowhere now.
        conn.execute("DELETE FROM mailbox_renames WHERE old = ? OR new = ?", (name, name))
        # What retention held back for it goes with it: a long-lived server that makes a
        # mailbox per test and deletes it would otherwise keep a hold per name it ever had.
        self.hold_index(name, 0)
        return [r[1] for r in rows]
