"""The live event websocket `/api/events`: every mailbox event as a Mailpit-style JSON frame."""

from __future__ import annotations

import json
import logging
import threading
import time
from functools import lru_cache
from typing import Any

from flask import Flask, current_app, g, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed, Server
from wsproto.frame_protocol import CloseReason

from mailpit_py import events
from mailpit_py.mailbox.shapes import stats_data
from mailpit_py.observability.telemetry import Telemetry
from mailpit_py.webapp.prefix import allowed, box_name, mailbox, view

log = logging.getLogger("mailpit_py.web")

WAIT = 1.0  # seconds between checks that the client is still there
COALESCE = 0.1  # seconds to gather a burst of events into one write
MAX_BURST = 500
EVENTS_PATH = "/api/events"


@lru_cache(maxsize=4096)
def wire_frame(event: events.Event) -> bytes:
    """The event as one unmasked, unfragmented text frame (RFC 6455 section 5.2).

    Server frames are the same bytes for every client, so they are built once per event and
    not by wsproto per client (that per-frame Python work was most of what clients cost).
    Uncompressed frames stay valid when permessage-deflate was negotiated (RFC 7692 6.1)."""
    data = event.frame.encode("utf-8")
    n = len(data)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 1 << 16:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return head + data


def send_all(ws: Any, batch: list[events.Event]) -> None:
    """Write a burst of events to the socket in one go."""
    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    ws.sock.sendall(b"".join(wire_frame(e) for e in batch))


def for_box(box: str, seen: set[str] | None, batch: list[events.Event]) -> list[events.Event]:
    """What a client of mailbox `box` hears of a burst: that mailbox's events and those of every
    mailbox, the mailbox counts narrowed to the mailboxes its user may see (`seen`; None: all).

    An SMTP refusal belongs to no mailbox (it comes before any routing): a user who sees every
    mailbox hears it under each, a limited user under none (its peer and reply may be
    another project's)."""
    kept: list[events.Event] = []
    for event in batch:
        if isinstance(event, events.SmtpError):
            if seen is None:
                kept.append(event)
            continue
        if not event.concerns(box):
            continue
        if (
            seen is not None
            and isinstance(event, events.MailboxRenamed)
            and (event.data or {}).get("To") not in seen
        ):
            continue  # renamed out of this user's mailboxes: to them it was deleted
        if seen is not None and isinstance(event, events.MailboxCounts):
            event = events.MailboxCounts([d for d in event.data if d["Name"] in seen])
        kept.append(event)
    return kept


def news_only(
    batch: list[events.Event], told: list[dict[str, Any]]
) -> tuple[list[events.Event], list[dict[str, Any]]]:
    """The burst without the mailbox counts a limited user's client was told already, and the
    counts it knows afterwards.

    The counts event goes out whenever any mailbox's counts change: narrowed to a limited
    user's mailboxes it is the same list each time another mailbox gets mail, and passing
    it on would still tell that user when another project's mail came and went."""
    kept: list[events.Event] = []
    for event in batch:
        if isinstance(event, events.MailboxCounts):
            if event.data == told:
                continue
            told = event.data
        kept.append(event)
    return kept, told


def register(app: Flask, sock: Sock) -> None:
    @app.before_request
    def events_box() -> None:
        # Decided before the upgrade, so that a user who must name a mailbox hears why (403):
        # once the socket is open, an HTTP answer can no longer be given.
        if request.path == EVENTS_PATH:
            g.events_box = box_name()

    @sock.route(EVENTS_PATH)
    def event_stream(ws: Server) -> None:
        bus: events.Bus = current_app.config["BUS"]
        clients: ClientCount = current_app.config["WS_CLIENTS"]
        box: str = g.events_box
        seen = allowed()
        # flask-sock runs each socket in a request thread; it waits on its own bounded queue
        # with a timeout, so a gone client frees its thread and a stuck one is dropped by the bus
        # (DESIGN.md: the bus never blocks the publisher).
        with bus.subscribe() as sub, clients:
            # A first stats frame, sent once subscribed: the client learns the counts at once and
            # knows that every later change will reach it.
            total, unread = view().counts()
            ws.send(json.dumps(events.Stats(stats_data(total, unread)).to_api()))
            told = [
                {"Name": b.name, "Total": b.total, "Unread": b.unread}
                for b in mailbox().boxes()
                if seen is not None and b.name in seen
            ]
            while ws.connected and not (sub.dropped.is_set() or sub.ended.is_set()):
                event = sub.get(timeout=WAIT)
                if event is None:
                    continue
                # Under load, gather what arrives in a short window and write it in one go:
                # one wake-up and one socket write per burst instead of per event, so clients
                # cost SMTP ingest little (measured with 5 clients against none).
                time.sleep(COALESCE)
                batch = [event]
                while len(batch) < MAX_BURST and (more := sub.get(timeout=0)) is not None:
                    batch.append(more)
                batch = for_box(box, seen, batch)
                if seen is not None:
                    batch, told = news_only(batch, told)
                if batch:
                    send_all(ws, batch)
        if sub.ended.is_set():
            ws.close(reason=CloseReason.GOING_AWAY, message="server shutting down")
        elif sub.dropped.is_set():
            # Fell behind: close so the client reconnects and reloads its view.
            ws.close(reason=CloseReason.TRY_AGAIN_LATER, message="too slow: reconnect")


class ClientCount:
    """How many websocket clients are connected (for metrics and tests)."""

    def __init__(self, telemetry: Telemetry | None = None) -> None:
        self._lock = threading.Lock()
        self.value = 0
        self._telemetry = telemetry

    def __enter__(self) -> ClientCount:
        with self._lock:
            self.value += 1
            if self._telemetry is not None:
                self._telemetry.set_gauge("ws_clients", self.value)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.value -= 1
            if self._telemetry is not None:
                self._telemetry.set_gauge("ws_clients", self.value)
