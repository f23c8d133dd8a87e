"""Time formatting shared by the API and the CLI: RFC 3339 to the millisecond, as Go writes it."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(ts: float | datetime) -> str:
    """`2026-11-21T22:54:59.123Z`, `2026-11-21T22:54:59.12Z`, `2024-01-01T10:00:00+02:00`:
    Mailpit's times are Go's time.Time in JSON, which drops a fraction's trailing zeros (and a
    fraction of none), so a client comparing a Date header's time as text finds Mailpit's."""
    dt = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    text = dt.isoformat(timespec="milliseconds")
    stamp, zone = text[:23].rstrip("0").rstrip("."), text[23:]
    return stamp + ("Z" if zone == "+00:00" else zone)
