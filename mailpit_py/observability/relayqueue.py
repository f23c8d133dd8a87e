"""The relay outbox as a `mailq` listing, for GET /api/v1/relay/queue and `mailpit-py queue`."""

from __future__ import annotations

import json
from typing import Any

from mailpit_py.store.interface import StoreBackend
from mailpit_py.timefmt import rfc3339

LIMIT = 1000  # items listed at most; Total still counts every pending one


def relay_queue(store: StoreBackend, now: float, limit: int = LIMIT) -> dict[str, Any]:
    """Every pending copy, oldest first: who it goes to, how old it is, how often it was tried,
    when it is tried next and what the upstream said last time."""
    total, oldest = store.outbox_backlog()
    items = store.outbox_pending(limit)
    return {
        "Total": total,
        "OldestSeconds": round(max(0.0, now - oldest), 3) if oldest is not None else 0.0,
        "Queue": [
            {
                "ID": r["id"],
                "MessageID": r["message_uid"],
                "Kind": r["kind"],
                "From": r["mail_from"],
                "To": json.loads(r["recipients"]),
                "Created": rfc3339(r["created"]),
                "AgeSeconds": round(max(0.0, now - r["created"]), 3),
                "Attempts": r["attempts"],
                "NextAttempt": rfc3339(r["next_attempt"]),
                "LastError": r["last_error"],
            }
            for r in items
        ],
    }
