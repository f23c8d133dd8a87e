"""The live event websocket `/api/events`: every mailbox event as a Mailpit-style JSON frame."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from flask import Flask, current_app
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from wsproto.events import TextMessage

from mailpit_py import events
from mailpit_py.mailbox import stats_data

log = logging.getLogger("mailpit_py.web")

WAIT = 1.0  # seconds between checks that the client is still there
COALESCE = 0.1  # seconds to gather a burst of events into one write
MAX_BURST = 500


def send_all(ws: Any, frames: list[str]) -> None:
    """Send text frames with one socket write (simple-websocket sends one write per frame)."""
    if len(frames) == 1:
        ws.send(frames[0])
        return
    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    ws.sock.sendall(b"".join(ws.ws.send(TextMessage(data=f)) for f in frames))


def register(app: Flask, sock: Sock) -> None:
    @sock.route("/api/events")
    def event_stream(ws) -> None:  # type: ignore[no-untyped-def]
        bus: events.Bus = current_app.config["BUS"]
        clients: ClientCount = current_app.config["WS_CLIENTS"]
        # flask-sock runs each socket in a request thread; it waits on its own bounded queue
        # with a timeout, so a gone client frees its thread and a stuck one is dropped by the bus
        # (DESIGN.md: the bus never blocks the publisher).
        with bus.subscribe() as sub, clients:
            # A first stats frame, sent once subscribed: the client learns the counts at once and
            # knows that every later change will reach it.
            total, unread = current_app.config["MAILBOX"].counts()
            ws.send(json.dumps(events.Stats(stats_data(total, unread)).to_api()))
            while ws.connected and not (sub.dropped.is_set() or sub.ended.is_set()):
                event = sub.get(timeout=WAIT)
                if event is None:
                    continue
                # Under load, gather what arrives in a short window and write it in one go:
                # one wake-up and one socket write per burst instead of per event, so clients
                # cost SMTP ingest little (issue 3 bench: 5 clients vs none).
                time.sleep(COALESCE)
                frames = [event.frame]
                while len(frames) < MAX_BURST and (more := sub.get(timeout=0)) is not None:
                    frames.append(more.frame)
                send_all(ws, frames)
        if sub.ended.is_set():
            ws.close(reason=1001, message="server shutting down")
        elif sub.dropped.is_set():
            # Fell behind: close so the client reconnects and reloads its view.
            ws.close(reason=1013, message="too slow: reconnect")


class ClientCount:
    """How many websocket clients are connected (for metrics and tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def __enter__(self) -> ClientCount:
        with self._lock:
            self.value += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.value -= 1
