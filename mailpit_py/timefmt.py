"""Time formatting shared by the API and the CLI: RFC 3339 with milliseconds, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(ts: float | datetime) -> str:
    """`2026-11-21T22:54:59.123Z` (the API's times carry fractions, as Mailpit's do)."""
    dt = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    text = dt.isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text
