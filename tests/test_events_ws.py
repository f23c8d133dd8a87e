"""The live event websocket `/api/events` with a real websocket client."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import poplib
import smtplib
import socket
import threading
import urllib.request
from typing import Any

import pytest
from simple_websocket import ConnectionClosed

from helpers import WsClient, make_server, wait_until
from mailpit_py.server import Server


@pytest.fixture
def mp() -> Server:
    with make_server() as server:
        yield server


def connect(mp: Server) -> WsClient:
    ws = WsClient.connect(mp.http_url.replace("http://", "ws://") + "api/events")
    # (The hello once seemed to take over 10 s under load: it was simple_websocket holding back
    # a frame that came in with the handshake's response; WsClient reads it.)
    hello = ws.receive(timeout=10)
    assert hello is not None, "no hello frame within 10 s"
    first = json.loads(hello)
    # The server says hello with the counts once it is subscribed: nothing after this is missed.
    assert first["Type"] == "stats"
    assert set(first["Data"]) == {"Total", "Unread", "Version"}
    return ws


def next_of(ws: WsClient, kind: str, timeout: float = 10) -> dict[str, Any]:
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
        assert event["Data"]["ID"] == mp.mailbox.list_messages()[0]["ID"]
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
        first, second = (m["ID"] for m in mp.mailbox.list_messages())
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
        assert second not in [m["ID"] for m in mp.mailbox.list_messages()]
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


def test_the_test_client_keeps_a_frame_that_came_with_the_handshake() -> None:
    # A server that writes its 101 and a first frame in one go, as ours can under load: the
    # frame must not wait for a second one (simple_websocket's own client held it back).
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(
                hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
            )
            frame = b"\x81\x05hello"  # one unmasked text frame (RFC 6455 section 5.2)
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n" + frame
            )
            conn.recv(4096)  # until the client closes

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    ws = WsClient.connect(f"ws://127.0.0.1:{port}/")
    try:
        assert ws.receive(timeout=5) == "hello"
    finally:
        ws.close()
        server.join(10)
        listener.close()


# -- Mailpit's prune and error levels ------------------------------------------------------------


def frames_until(ws: WsClient, kind: str, timeout: float = 10) -> list[dict[str, Any]]:
    """Every frame up to and including the first of `kind`."""
    seen: list[dict[str, Any]] = []
    while True:
        frame = ws.receive(timeout=timeout)
        assert frame is not None, f"no {kind} event within {timeout}s (saw {seen[-3:]})"
        seen.append(json.loads(frame))
        if seen[-1]["Type"] == kind:
            return seen


def deliver_many(mp: Server, n: int, subject: str) -> list[str]:
    with smtplib.SMTP(*mp.smtp_address) as client:
        for i in range(n):
            raw = f"Subject: {subject} {i}\r\n\r\nx\r\n".encode()
            client.sendmail("a@example.com", ["b@example.com"], raw)
    wait_until(lambda: mp.mailbox.counts()[0] >= n, what=f"{n} messages stored")
    return [m["ID"] for m in mp.mailbox.list_messages(0, n)]


def test_a_large_delete_is_one_prune_with_null_data(mp: Server) -> None:
    ids = deliver_many(mp, 205, "bulk")
    ws = connect(mp)
    try:
        req = urllib.request.Request(
            mp.http_url + "api/v1/search?query=bulk", method="DELETE"
        )  # 205 matches: past Mailpit's threshold of 200
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.read() == b"ok"
        seen = frames_until(ws, "prune")
        assert seen[-1] == {"Type": "prune", "Data": None}
        assert not [f for f in seen if f["Type"] == "delete"]
        assert mp.mailbox.counts()[0] == 0 and len(ids) == 205
        few = deliver_many(mp, 3, "few")  # at or under the threshold: a delete each
        mp.mailbox.delete(few)
        assert {next_of(ws, "delete")["Data"]["ID"] for _ in few} == set(few)
    finally:
        ws.close()


def test_renaming_or_deleting_a_tag_sends_prune(mp: Server) -> None:
    ids = deliver_many(mp, 1, "tagged")
    mp.mailbox.set_tags(ids, ["red"])
    ws = connect(mp)
    try:
        mp.mailbox.rename_tag("red", "blue")
        assert next_of(ws, "prune")["Data"] is None
        mp.mailbox.delete_tag("blue")
        assert next_of(ws, "prune")["Data"] is None
    finally:
        ws.close()


def test_retention_prune_frame_has_null_data() -> None:
    with make_server(max_messages=1) as mp:
        ws = connect(mp)
        try:
            with smtplib.SMTP(*mp.smtp_address) as client:
                for _i in range(2):
                    client.sendmail("a@example.com", ["b@example.com"], b"Subject: p\r\n\r\nx\r\n")
            assert next_of(ws, "prune") == {"Type": "prune", "Data": None}
        finally:
            ws.close()


def test_pop3_deletions_are_one_prune() -> None:
    with make_server(pop3_addr="127.0.0.1:0", pop3_auth="ann:secret") as mp:
        deliver_many(mp, 2, "popped")
        ws = connect(mp)
        try:
            client = poplib.POP3(*mp.pop3_address, timeout=10)
            client.user("ann")
            client.pass_("secret")
            client.dele(1)
            client.dele(2)
            client.quit()
            seen = frames_until(ws, "prune")
            assert not [f for f in seen if f["Type"] == "delete"]
            assert mp.mailbox.counts()[0] == 0
        finally:
            ws.close()


def test_an_imap_client_emptying_its_inbox_sends_bounded_frames() -> None:
    """`STORE 1:* +FLAGS (\\Deleted)` and `EXPUNGE` over 205 messages is one prune (Data null,
    as Mailpit's: the page reloads), not a frame naming every message, whose size would grow
    with the mailbox; a few messages are a delete each, as the API's."""
    import imaplib

    with make_server(imap_addr="127.0.0.1:0", imap_auth="ann:secret") as mp:
        deliver_many(mp, 205, "imap bulk")
        ws = connect(mp)
        client = imaplib.IMAP4(*mp.imap_address, timeout=30)
        try:
            client.login("ann", "secret")
            client.select("INBOX")
            assert client.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
            typ, gone = client.expunge()
            assert typ == "OK" and len(gone) == 205
            seen = frames_until(ws, "prune")
            assert seen[-1] == {"Type": "prune", "Data": None}
            assert not [f for f in seen if f["Type"] == "delete"]
            assert max(len(json.dumps(f)) for f in seen) < 1000
            assert mp.mailbox.counts()[0] == 0
            few = deliver_many(mp, 3, "imap few")
            client.noop()
            assert client.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
            typ, gone = client.expunge()
            assert typ == "OK" and gone == [b"1", b"1", b"1"]  # each renumbers those after it
            assert {next_of(ws, "delete")["Data"]["ID"] for _ in few} == set(few)
        finally:
            client.logout()
            ws.close()


def test_error_event_level_is_warning_for_4xx_and_error_for_5xx() -> None:
    with make_server(smtp_greylist=300) as mp:
        ws = connect(mp)
        try:
            with smtplib.SMTP(*mp.smtp_address) as client:
                client.ehlo()
                client.mail("a@example.com")
                code, _ = client.rcpt("b@example.com")
                assert code == 451
                client.rset()
                assert client.docmd("BOGUS")[0] == 500
            first = next_of(ws, "error")["Data"]
            second = next_of(ws, "error")["Data"]
            assert (first["Level"], first["Message"][:3]) == ("warning", "451")
            assert (second["Level"], second["Message"][:3]) == ("error", "500")
        finally:
            ws.close()
