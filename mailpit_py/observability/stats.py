"""Statistics of one instance: arrivals per minute, and the figures the info, stats and metrics
endpoints share (runtime statistics, refusals by reason)."""

from __future__ import annotations

import os
import resource
import threading
import time
from typing import Any

from mailpit_py.observability.telemetry import Telemetry

MINUTES = 60  # the statistics view shows the last hour, minute by minute


class MinuteCounter:
    """Counts per wall-clock minute over a sliding window (a ring of `minutes` buckets)."""

    def __init__(self, minutes: int = MINUTES) -> None:
        self.minutes = minutes
        self._lock = threading.Lock()
        self._counts: dict[int, int] = {}  # minute number (epoch // 60) -> count

    def add(self, when: float | None = None, amount: int = 1) -> None:
        minute = int((time.time() if when is None else when) // 60)
        with self._lock:
            self._counts[minute] = self._counts.get(minute, 0) + amount
            if len(self._counts) > self.minutes + 1:
                oldest = minute - self.minutes
                for key in [k for k in self._counts if k <= oldest]:
                    del self._counts[key]

    def series(self, now: float | None = None) -> list[tuple[int, int]]:
        """(minute start as epoch seconds, count) for each of the last `minutes`, oldest first."""
        last = int((time.time() if now is None else now) // 60)
        with self._lock:
            return [
                (minute * 60, self._counts.get(minute, 0))
                for minute in range(last - self.minutes + 1, last + 1)
            ]


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def refusals(telemetry: Telemetry) -> list[dict[str, Any]]:
    """SMTP refusals (4xx and 5xx replies) by the rule that caused them, most frequent first.

    The SMTP layer counts every reply in `smtp_replies` labelled (code class, rule)."""
    by_rule: dict[tuple[str, str], float] = {}
    for labels, value in telemetry.counter("smtp_replies").items():
        code = labels[0] if labels else ""
        rule = labels[1] if len(labels) > 1 else ""
        if code[:1] in ("4", "5") and value:
            key = (rule or "other", code)
            by_rule[key] = by_rule.get(key, 0) + value
    return [
        {"Reason": rule, "Code": code, "Count": int(count)}
        for (rule, code), count in sorted(by_rule.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
