"""Webhook: POST the summary of each new message to a URL, in order, from its own thread.

As Mailpit's, `--webhook-limit N` sends at most one request every N seconds: the first message
of each window is sent and those that follow it within the window are not (counted as limited).
Beyond Mailpit, what is sent waits its turn in a bounded queue, paced by `--webhook-rate`, and
is retried with backoff when the receiver fails (Mailpit never retries); only when the queue is
full are new events dropped, and counted. The bus reader only appends to that queue, so a slow
or dead receiver never slows SMTP.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from mailpit_py import __version__, events
from mailpit_py.events import DEFAULT_BOX
from mailpit_py.observability.telemetry import Telemetry

log = logging.getLogger("mailpit_py.webhook")

QUEUE_SIZE = 1000  # events waiting for delivery; more are dropped and counted
ATTEMPTS = 8  # tries per event before it is given up (about a minute of backoff)
BACKOFF = 0.5  # seconds before the first retry; doubles on each failure
BACKOFF_MAX = 30.0
TIMEOUT = 5.0  # seconds a receiver may take to answer (Mailpit's too)


class Webhook:
    """Delivers `new` events from the bus to `url`; `start()` and `stop()` bracket its life."""

    def __init__(
        self,
        url: str,
        bus: events.Bus,
        telemetry: Telemetry,
        *,
        limit: float = 1.0,
        rate: float = 0.0,
        delay: float = 0.0,
        label: str = "",
        queue_size: int = QUEUE_SIZE,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
    ) -> None:
        self.url = url
        self.bus = bus
        self.telemetry = telemetry
        self.every = limit  # --webhook-limit: seconds from one request sent to the next (0: any)
        self.interval = 1.0 / rate if rate > 0 else 0.0  # --webhook-rate: requests per second
        self.delay = delay  # --webhook-delay: seconds from a message's arrival to its request
        self.label = label
        self.queue_size = queue_size
        self.attempts = attempts
        self.backoff = backoff
        # (monotonic arrival time, summary, mailbox): the arrival time counts --webhook-delay
        self._queue: collections.deque[tuple[float, dict[str, Any], str]] = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._sub: events.Subscription | None = None
        self._threads: list[threading.Thread] = []
        self.dropped = 0
        self.limited = 0  # messages not sent for --webhook-limit
        self.delivered = 0
        self._chosen: float | None = None  # when the last message to be sent arrived

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Webhook:
        self._sub = self.bus.subscribe()
        self.telemetry.set_gauge("webhook_queue", 0)
        for target, name in ((self._read_bus, "webhook-bus"), (self._send_loop, "webhook")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop at once; events still queued are not sent (they are logged as dropped)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._sub is not None:
            self._sub.close()
        for thread in self._threads:
            thread.join(timeout=TIMEOUT + 1)
        self._threads.clear()
        if self._queue:
            log.warning("webhook: %d event(s) not delivered at shutdown", len(self._queue))

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    # -- the bus side: never blocks, only queues -----------------------------------------------

    def _read_bus(self) -> None:
        while not self._stop.is_set():
            sub = self._sub
            if sub is None:
                return
            if sub.dropped.is_set():
                # Cannot happen while this loop only appends, but if the bus ever cut us off,
                # subscribe again rather than go silent.
                log.warning("webhook: fell behind the event bus; events may have been missed")
                self._sub = sub = self.bus.subscribe()
            if sub.ended.is_set():
                return
            event = sub.get(timeout=0.5)
            # (a message another instance stored is posted by that instance)
            if isinstance(event, events.NewMessage) and not event.remote:
                self.offer(event.data, event.box)

    def offer(self, summary: dict[str, Any], box: str = DEFAULT_BOX) -> bool:
        """Queue a new message's summary unless --webhook-limit skips it, as Mailpit does: one
        message in each window of `every` seconds (its first) is sent, the others are not."""
        now = time.monotonic()
        if self.every > 0 and self._chosen is not None and now - self._chosen < self.every:
            self.limited += 1
            self.telemetry.inc("webhook_deliveries", "limited")
            log.debug("webhook: message %s not sent (--webhook-limit)", summary.get("ID"))
            return False
        self._chosen = now
        return self.enqueue(summary, box)

    def enqueue(self, summary: dict[str, Any], box: str = DEFAULT_BOX) -> bool:
        """Queue one message summary; False (and counted as dropped) when the queue is full."""
        with self._cond:
            full = len(self._queue) >= self.queue_size
            if full:
                self.telemetry.inc("webhook_deliveries", "dropped")
                self.dropped += 1  # after the counter: whoever sees this sees the metric too
            else:
                self._queue.append((time.monotonic(), summary, box))
                self._cond.notify()
            self.telemetry.set_gauge("webhook_queue", len(self._queue))
        if full:
            log.warning(
                "webhook: queue full (%d), dropped message %s", self.queue_size, summary.get("ID")
            )
        return not full

    # -- the sending side ----------------------------------------------------------------------

    def _send_loop(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait(timeout=1.0)
                if self._stop.is_set():
                    return
                arrived, summary, box = self._queue[0]
            wait = max(last + self.interval, arrived + self.delay) - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            last = time.monotonic()
            if self._deliver(summary, box) or not self._stop.is_set():
                with self._cond:
                    if self._queue and self._queue[0][1] is summary:
                        self._queue.popleft()
                    self.telemetry.set_gauge("webhook_queue", len(self._queue))

    def _deliver(self, summary: dict[str, Any], box: str = DEFAULT_BOX) -> bool:
        """POST one summary, retrying with backoff; True when the receiver took it."""
        body = json.dumps(summary, ensure_ascii=False).encode("utf-8")
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            problem = self._post(body, box)
            if not problem:
                self.delivered += 1
                self.telemetry.inc("webhook_deliveries", "delivered")
                log.debug("webhook: message %s delivered", summary.get("ID"))
                return True
            if attempt == self.attempts:
                self.telemetry.inc("webhook_deliveries", "failed")
                log.error(
                    "webhook: giving up on message %s after %d attempts: %s",
                    summary.get("ID"),
                    attempt,
                    problem,
                )
                return False
            self.telemetry.inc("webhook_deliveries", "retried")
            log.warning(
                "webhook: %s (message %s, attempt %d), retrying in %.1fs",
                problem,
                summary.get("ID"),
                attempt,
                delay,
            )
            if self._stop.wait(delay):
                return False
            delay = min(delay * 2, BACKOFF_MAX)
        return False

    def _post(self, body: bytes, box: str = DEFAULT_BOX) -> str:
        """One attempt; empty on a 2xx answer, else what went wrong."""
        req = urllib.request.Request(self.url, data=body, method="POST")
        # Mailpit's headers, so receivers written for it work unchanged.
        req.add_header("Content-Type", "application/json")
        req.add_header("User-Agent", f"mailpit-py/{__version__}")
        if self.label:
            req.add_header("Mailpit-Label", self.label)
        # The body stays Mailpit's summary, which names no mailbox: a receiver serving several
        # mailboxes tells them apart by this header (Mailpit has none; a Mailpit receiver
        # ignores it).
        req.add_header("Mailpit-Mailbox", box)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                resp.read()
                return "" if 200 <= resp.status < 300 else f"{self.url} answered {resp.status}"
        except urllib.error.HTTPError as exc:
            return f"{self.url} answered {exc.code}"
        except (OSError, ValueError) as exc:
            return f"cannot reach {self.url}: {getattr(exc, 'reason', exc)}"
