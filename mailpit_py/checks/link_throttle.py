"""The link check's limits per registered domain, as Mailpit's (off with
--disable-link-check-rate-limit): a token bucket, two requests at a time, a minute's cache."""

from __future__ import annotations

import collections
import ipaddress
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("mailpit_py.checks")

# Mailpit's numbers: the bucket starts full, so one check of a 100-link newsletter never
# waits; sustained traffic to one registered domain is held to a request a second, across all
# checks at once; results are reused for a minute, so checking the same mail again (or looping
# the API) sends nothing.
BURST = 100
REFILL = 1.0  # tokens a second
PER_DOMAIN = 2  # requests in flight to one registered domain, across every check
CACHE_TTL = 60.0
REGISTRY_CAP = 10_000  # domains remembered: memory stays bounded whatever the mail links to


class Bucket:
    """A token bucket; take() reserves a token and says how long to wait for it (as Go's
    rate.Limiter.Wait does: a reservation may run the bucket below zero)."""

    def __init__(self, now: float, burst: float = BURST, refill: float = REFILL) -> None:
        self.burst, self.refill = burst, refill
        self.tokens = burst
        self.stamp = now

    def _fill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.refill)
        self.stamp = now

    def full(self, now: float) -> bool:
        self._fill(now)
        return self.tokens >= self.burst

    def take(self, now: float) -> float:
        """Seconds until the token reserved now may be used (0: at once)."""
        self._fill(now)
        self.tokens -= 1
        return max(0.0, -self.tokens / self.refill)


def registered_domain(url: str) -> str:
    """The eTLD+1 of a URL's host (sub.shop.example.co.uk -> example.co.uk), so subdomains,
    wildcard DNS included, share one budget; an IP or a name with no public suffix is itself."""
    try:
        host = (urllib.parse.urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""
    if not host:
        return ""
    try:
        ipaddress.ip_address(host)
        return host  # an address is its own budget
    except ValueError:
        pass
    from mailpit_py.checks.dmarc import organizational_domain

    return organizational_domain(host)


class Throttle:
    """Per registered domain: a bucket and a semaphore; and the results of the last minute.
    One per server, shared by its link checks."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        # domain -> (bucket, slots), least recently used first
        self._domains: collections.OrderedDict[str, tuple[Bucket, threading.Semaphore]] = (
            collections.OrderedDict()
        )
        self._cache: dict[Hashable, tuple[float, Any]] = {}
        self._warned: set[str] = set()

    def _state(self, domain: str) -> tuple[Bucket, threading.Semaphore]:
        now = self.clock()
        with self._lock:
            state = self._domains.get(domain)
            if state is not None:
                self._domains.move_to_end(domain)
                return state
            if len(self._domains) >= REGISTRY_CAP:
                # A full bucket is dropped first: made again, it would be the same.
                victim = next(
                    (d for d, (b, _) in self._domains.items() if b.full(now)),
                    next(iter(self._domains)),
                )
                del self._domains[victim]
            state = (Bucket(now), threading.Semaphore(PER_DOMAIN))
            self._domains[domain] = state
            return state

    @contextmanager
    def slot(self, url: str) -> Iterator[None]:
        """Wait for a token and a free slot of the URL's registered domain, then hold the slot."""
        domain = registered_domain(url)
        bucket, slots = self._state(domain)
        with self._lock:
            wait = bucket.take(self.clock())
            first = wait > 0 and domain not in self._warned
            if first:
                self._warned.add(domain)
        if first:
            log.warning(
                "link check: rate limiting active for %s - use --disable-link-check-rate-limit "
                "to disable",
                domain,
            )
        if wait > 0:
            threading.Event().wait(wait)  # this check's thread only; others go on
        with slots:
            yield

    def cached(self, key: Hashable) -> Any | None:
        with self._lock:
            found = self._cache.get(key)
            if found is None:
                return None
            if found[0] <= self.clock():
                del self._cache[key]
                return None
            return found[1]

    def keep(self, key: Hashable, result: Any) -> None:
        now = self.clock()
        with self._lock:
            self._cache[key] = (now + CACHE_TTL, result)
            if len(self._cache) > 2 * REGISTRY_CAP:
                for k in [k for k, (expires, _) in self._cache.items() if expires <= now]:
                    del self._cache[k]
