"""The live event websocket `/api/events` with a real websocket client."""

from __future__ import annotations

import contextlib
import json
import smtplib
from typing import Any

import pytest
from simple_websocket import Client, ConnectionClosed

from helpers import make_server, wait_until
from mailpit_py.server import Server


@pytest.fixture
def mp() -> Server:
    with make_server() as server:
        yield server


def connect(mp: Server) -> Client:
    ws = Client.connect(mp.http_url.replace("http://", "ws://") + "api/events")
    # Generous: on a machine running several suites at once the hello has taken over 10 s.
    hello = ws.receive(timeout=30)
    assert hello is not None, "no hello frame within 30 s"
    first = json.loads(hello)
    # The server says hello with the counts once it is subscribed: nothing after this is missed.
    assert first["Type"] == "stats"
    assert set(first["Data"]) == {"Total", "Unread", "Version"}
    return ws


def next_of(ws: Client, kind: str, timeout: float = 10) -> dict[str, Any]:
    while True:
        frame = ws.receive(timeout=timeout)
        assert frame is not None, f"no {kind} event within {timeout}s"
        event = json.loads(frame)
        if event["Type"] == kind:
            return event


def test_new_message_event_reaches_a_connected_client(mp: Server) -> None:
    ws = connect(mp)
    try:
        with smtplib.SMTP(*mp.smtp_address) as client:
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: live\r\n\r\nhi\r\n")
        event = next_of(ws, "new")
        assert event["Data"]["Subject"] == "live"
        assert event["Data"]["ID"] == mp.mailbox.list()[0]["ID"]
        assert event["Data"]["To"] == []  # no To header; the envelope recipient is shown as Bcc
        stats = next_of(ws, "stats")
        assert stats["Data"]["Total"] == 1
    finally:
        ws.close()


def test_update_delete_truncate_and_error_events(mp: Server) -> None:
    ws = connect(mp)
    try:
        with smtplib.SMTP(*mp.smtp_address) as client:
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: one\r\n\r\n1\r\n")
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: two\r\n\r\n2\r\n")
            client.docmd("BOGUS")
        first, second = (m["ID"] for m in mp.mailbox.list())
        error = next_of(ws, "error")
        assert error["Data"]["Type"] == "smtpd"
        assert error["Data"]["Message"].startswith("500 5.5.2")
        mp.mailbox.get(first, mark_read=True)
        assert next_of(ws, "update")["Data"] == {"ID": first, "Read": True}
        mp.mailbox.set_tags([first], ["x"])
        assert next_of(ws, "update")["Data"] == {"ID": first, "Tags": ["x"]}
        mp.mailbox.delete([first])
        assert next_of(ws, "delete")["Data"] == {"ID": first}
        mp.mailbox.delete_all()
        assert next_of(ws, "truncate")["Type"] == "truncate"
        assert second not in [m["ID"] for m in mp.mailbox.list()]
    finally:
        ws.close()


def test_prune_event_when_retention_removes_messages() -> None:
    with make_server(max_messages=1) as mp:
        ws = connect(mp)
        try:
            with smtplib.SMTP(*mp.smtp_address) as client:
                for _i in range(2):
                    client.sendmail("a@example.com", ["b@example.com"], b"Subject: p\r\n\r\nx\r\n")
            event = next_of(ws, "prune")
            assert len(event["Data"]["IDs"]) == 1
        finally:
            ws.close()


def test_a_gone_client_frees_its_slot(mp: Server) -> None:
    clients = mp.http.app.config["WS_CLIENTS"]
    ws = connect(mp)
    assert clients.value == 1
    ws.close()
    wait_until(lambda: clients.value == 0, what="the server to notice the closed socket")


def test_a_client_that_falls_behind_is_disconnected_and_others_are_not(mp: Server) -> None:
    slow = connect(mp)
    slow_sub = mp.bus._subs[-1]
    fast = connect(mp)
    try:
        # What the bus does to a subscriber whose queue overflowed (tested in test_mailbox):
        mp.bus.unsubscribe(slow_sub)
        slow_sub.dropped.set()
        # The server closes that socket so the client reconnects and reloads...
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                slow.receive(timeout=10)
        assert closed.value.reason == 1013
        # ...while the other client goes on receiving.
        mp.mailbox.delete_all()
        assert next_of(fast, "truncate")["Type"] == "truncate"
    finally:
        for ws in (slow, fast):
            with contextlib.suppress(Exception):
                ws.close()


def test_events_are_served_under_the_webroot_too() -> None:
    with make_server(webroot="/mail/") as mp:
        assert mp.http_url.endswith("/mail/")
        ws = connect(mp)
        try:
            with smtplib.SMTP(*mp.smtp_address) as client:
                client.sendmail("a@example.com", ["b@example.com"], b"Subject: rooted\r\n\r\n.\r\n")
            assert next_of(ws, "new")["Data"]["Subject"] == "rooted"
        finally:
            ws.close()
