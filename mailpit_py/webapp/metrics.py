"""Prometheus metrics: a collector per server reading its mailbox and telemetry at scrape time.

Each server has its own CollectorRegistry (never prometheus_client's global one), so several
servers in one process (tests, the pytest plugin) each report their own figures. Names follow
Mailpit's where it has them; the rest are ours and documented in the README.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.observability.stats import rss_bytes
from mailpit_py.observability.telemetry import Histogram

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Telemetry counters exposed as labelled families, even before anything bumped them:
# (telemetry name, metric name, help, label names).
LABELLED: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("smtp_sessions", "mailpit_smtp_sessions", "SMTP sessions by outcome", ("outcome",)),
    (
        "smtp_replies",
        "mailpit_smtp_replies",
        "SMTP replies by code class and the rule that caused them",
        ("code_class", "rule"),
    ),
    ("relay_attempts", "mailpit_relay_attempts", "Relay attempts by outcome", ("outcome",)),
    (
        "webhook_deliveries",
        "mailpit_webhook_deliveries",
        "Webhook deliveries by outcome (delivered, retried, failed, dropped, limited)",
        ("outcome",),
    ),
)


class Runtime(Protocol):
    """What the collector needs from the running server beyond the mailbox."""

    started: float

    def smtp_rejected(self) -> int: ...


class MailpitCollector(Collector):
    """Builds every family afresh at each scrape from the live figures of one server."""

    def __init__(self, mailbox: Mailbox, runtime: Runtime) -> None:
        self.mailbox = mailbox
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        mb = self.mailbox
        tel = mb.telemetry
        total, unread = mb.counts()
        yield GaugeMetricFamily("mailpit_messages", "Messages in the database", total)
        yield GaugeMetricFamily("mailpit_messages_unread", "Unread messages", unread)
        yield CounterMetricFamily(
            "mailpit_messages_deleted", "Messages deleted (by API or retention)", mb.deleted
        )
        yield CounterMetricFamily(
            "mailpit_smtp_accepted", "Messages accepted and stored", mb.accepted
        )
        yield CounterMetricFamily(
            "mailpit_smtp_rejected", "SMTP commands refused (5xx)", self.runtime.smtp_rejected()
        )
        yield CounterMetricFamily(
            "mailpit_smtp_ignored", "Messages ignored (duplicates)", tel.total("smtp_ignored")
        )
        yield CounterMetricFamily(
            "mailpit_smtp_accepted_size_bytes",
            "Total size of accepted messages in bytes",
            mb.accepted_size,
        )
        yield GaugeMetricFamily(
            "mailpit_database_size_bytes", "Database size in bytes", mb.size_bytes()
        )
        yield GaugeMetricFamily(
            "mailpit_uptime_seconds", "Seconds since start", time.time() - self.runtime.started
        )
        yield GaugeMetricFamily(
            "mailpit_memory_usage_bytes", "Resident memory of the process", rss_bytes()
        )
        # Per mailbox (one project's inbox each): read from the mailboxes' kept counts, so a
        # scrape costs one small read however many messages there are.
        per_box = GaugeMetricFamily(
            "mailpit_mailbox_messages", "Messages per mailbox", labels=("mailbox",)
        )
        per_box_unread = GaugeMetricFamily(
            "mailpit_mailbox_messages_unread", "Unread messages per mailbox", labels=("mailbox",)
        )
        for info in mb.boxes():
            per_box.add_metric((info.name,), info.total)
            per_box_unread.add_metric((info.name,), info.unread)
        yield per_box
        yield per_box_unread
        tags = GaugeMetricFamily("mailpit_tag_messages", "Messages per tag", labels=("tag",))
        for tag, count in mb.tag_counts().items():
            tags.add_metric((tag,), count)
        yield tags
        for name, metric, help_text, labels in LABELLED:
            family = CounterMetricFamily(metric, help_text, labels=labels)
            for values, amount in sorted(tel.counter(name).items()):
                # Pad or cut so a caller's label tuple always fits the family's label names.
                padded = (*values, *("",) * len(labels))[: len(labels)]
                family.add_metric(padded, amount)
            yield family
        yield GaugeMetricFamily(
            "mailpit_websocket_clients", "Websocket clients connected", tel.gauge("ws_clients")
        )
        yield GaugeMetricFamily(
            "mailpit_webhook_queue", "Webhook events waiting", tel.gauge("webhook_queue")
        )
        hist = tel.histograms()
        yield _histogram(
            "mailpit_commit_latency_seconds",
            "Seconds from the end of DATA to the commit of the message",
            hist["commit_latency"],
        )
        yield _histogram(
            "mailpit_writer_batch_size",
            "Jobs the database writer committed per transaction",
            hist["batch"],
        )
        yield _labelled_histogram(
            "mailpit_smtp_session_duration_seconds",
            "Seconds from the connection of an SMTP session to its end, by outcome",
            "outcome",
            tel.labelled("smtp_session_duration"),
        )
        yield _labelled_histogram(
            "mailpit_relay_delivery_seconds",
            "Seconds from queueing a relayed copy to the upstream's final answer, by outcome "
            "(sent, partial, failed)",
            "outcome",
            tel.labelled("relay_delivery"),
        )
        # Read from the store at each scrape, so a restart or another process's writes show.
        pending, oldest = mb.outbox_backlog()
        yield GaugeMetricFamily(
            "mailpit_relay_outbox_messages", "Relay copies waiting in the outbox", pending
        )
        yield GaugeMetricFamily(
            "mailpit_relay_outbox_oldest_seconds",
            "Age of the oldest relay copy waiting in the outbox (0 when it is empty)",
            max(0.0, time.time() - oldest) if oldest is not None else 0.0,
        )


def _histogram(name: str, help_text: str, h: Histogram) -> HistogramMetricFamily:
    """Telemetry keeps a count per bucket; Prometheus wants cumulative counts per bound."""
    return HistogramMetricFamily(name, help_text, buckets=_cumulative(h), sum_value=h.total)


def _labelled_histogram(
    name: str, help_text: str, label: str, series: dict[tuple[str, ...], Histogram]
) -> HistogramMetricFamily:
    """One family with a series per label value (none before the first observation)."""
    family = HistogramMetricFamily(name, help_text, labels=(label,))
    for labels, h in sorted(series.items()):
        family.add_metric([labels[0] if labels else ""], _cumulative(h), h.total)
    return family


def _cumulative(h: Histogram) -> list[tuple[str, float]]:
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(h.bounds, h.counts, strict=False):
        running += count
        buckets.append((_le(bound), running))
    buckets.append(("+Inf", h.count))
    return buckets


def _le(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


def registry(mailbox: Mailbox, runtime: Runtime) -> CollectorRegistry:
    """A private registry holding this server's collector (not the process-global one)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(MailpitCollector(mailbox, runtime))
    return reg


def exposition(reg: CollectorRegistry) -> bytes:
    """The text exposition format Prometheus scrapes."""
    return generate_latest(reg)
