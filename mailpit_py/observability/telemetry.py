"""Per-instance counters that every layer bumps and the metrics and stats views read."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from dataclasses import dataclass, field

# Upper bounds (seconds) of the DATA-end-to-commit histogram; the last bucket is +Inf.
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# Upper bounds (seconds) of the histograms kept per label set, by name: an SMTP session lasts
# from a few milliseconds (one message, pipelined) to minutes (a client holding it open); a
# relayed copy reaches its final answer in under a second, or after retries spread over hours.
LABELLED_BUCKETS: dict[str, tuple[float, ...]] = {
    "smtp_session_duration": (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
    "relay_delivery": (0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0),
}


@dataclass
class Histogram:
    """Cumulative-bucket histogram in Prometheus' shape (counts per upper bound, sum, count)."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        # The first bound >= value (len(bounds) past the last: the +Inf bucket); C, not a loop
        # in Python, since every message's commit is observed.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1


class Telemetry:
    """Thread-safe counters of one server: plain dicts under one lock, cheap on the hot path.

    Labels are free-form strings chosen by the caller (an outcome, a rule name, a code class);
    the metrics endpoint turns each counter into a labelled Prometheus family.
    """

    def __init__(self) -> None:
        self.started = time.time()
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[str, ...], float]] = {}
        self._gauges: dict[str, float] = {}
        self.commit_latency = Histogram(LATENCY_BUCKETS)
        self.batch_size = Histogram((1, 2, 4, 8, 16, 32, 64, 128, 256))
        self._labelled: dict[str, dict[tuple[str, ...], Histogram]] = {
            name: {} for name in LABELLED_BUCKETS
        }

    def inc(self, name: str, *labels: str, amount: float = 1) -> None:
        """Add to counter `name` under the given label values."""
        with self._lock:
            counter = self._counters.get(name)
            if counter is None:
                counter = self._counters[name] = {}
            counter[labels] = counter.get(labels, 0) + amount

    def set_gauge(self, name: str, value: float) -> None:
        with self._lock:
            self._gauges[name] = value

    def add_gauge(self, name: str, delta: float) -> None:
        with self._lock:
            self._gauges[name] = self._gauges.get(name, 0) + delta

    def observe_commit(self, seconds: float) -> None:
        """Time from the end of DATA to the commit of that message."""
        with self._lock:
            self.commit_latency.observe(seconds)

    def observe_batch(self, size: int) -> None:
        """Jobs the store's writer committed in one transaction."""
        with self._lock:
            self.batch_size.observe(size)

    def observe(self, name: str, value: float, *labels: str) -> None:
        """Add `value` to histogram `name` (one of LABELLED_BUCKETS) under these label values."""
        with self._lock:
            series = self._labelled[name]
            h = series.get(labels)
            if h is None:
                h = series[labels] = Histogram(LABELLED_BUCKETS[name])
            h.observe(value)

    def labelled(self, name: str) -> dict[tuple[str, ...], Histogram]:
        """Snapshots of histogram `name` per label tuple (copies, safe to read)."""
        with self._lock:
            return {
                labels: Histogram(h.bounds, list(h.counts), h.total, h.count)
                for labels, h in self._labelled[name].items()
            }

    def counter(self, name: str) -> dict[tuple[str, ...], float]:
        """A copy of one counter: label tuple -> value."""
        with self._lock:
            return dict(self._counters.get(name, {}))

    def total(self, name: str) -> float:
        with self._lock:
            return float(sum(self._counters.get(name, {}).values()))

    def gauge(self, name: str) -> float:
        with self._lock:
            return self._gauges.get(name, 0.0)

    def histograms(self) -> dict[str, Histogram]:
        """Snapshots of the histograms (copies, safe to read without the lock)."""
        with self._lock:
            return {
                name: Histogram(h.bounds, list(h.counts), h.total, h.count)
                for name, h in (("commit_latency", self.commit_latency), ("batch", self.batch_size))
            }
