"""The statistics view's costly aggregates (message sizes, top senders, top recipient
domains), each reading every message, cached so that reloading the view does not rescan."""

from __future__ import annotations

import time

from mailpit_py.mailbox.shapes import SIZE_CLASSES
from mailpit_py.store.interface import StoreBackend

STATS_TOP = 10  # senders and recipient domains listed by the statistics view
STATS_COSTLY = 0.1  # seconds: aggregates slower than this may be shown a little stale

Figures = tuple[list[int], list[tuple[str, int]], list[tuple[str, int]]]


class Aggregates:
    """Sizes, top senders and top recipient domains of one store, or of one of its mailboxes."""

    def __init__(self, store: StoreBackend, box: str | None = None) -> None:
        self.store = store
        self.box = box
        # (version, when, seconds it took, figures) of the last computation.
        self._cache: tuple[tuple[int, int], float, float, Figures] | None = None

    def get(self, version: tuple[int, int]) -> Figures:
        """Each reads every message (2 s at 100,000), so a result is reused while `version`
        (messages accepted, deleted) is unchanged, and otherwise for ten times as long as it
        took when that was over STATS_COSTLY: a small mailbox is always current, a large one is
        not rescanned at every reload of the view (every 10 s)."""
        cached = self._cache
        now = time.monotonic()
        if cached is not None and (
            cached[0] == version or (cached[2] >= STATS_COSTLY and now - cached[1] < 10 * cached[2])
        ):
            return cached[3]
        result = (
            self.store.size_histogram(SIZE_CLASSES, box=self.box),
            self.store.top_senders(STATS_TOP, box=self.box),
            self.store.top_recipient_domains(STATS_TOP, box=self.box),
        )
        self._cache = (version, now, time.monotonic() - now, result)
        return result
