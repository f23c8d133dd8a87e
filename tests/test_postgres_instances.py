"""Several instances on one PostgreSQL database: a message sent to one is listed by the other,
and the other's websocket clients hear of it (LISTEN/NOTIFY through the store)."""

from __future__ import annotations

import json
import smtplib
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import WsClient, make_server, wait_until
from mailpit_py.server import Server


@pytest.fixture
def pair(pg_url: str) -> Iterator[tuple[Server, Server]]:
    with make_server(database=pg_url) as a, make_server(database=pg_url) as b:
        yield a, b


def api(mp: Server, path: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(mp.http_url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
        return json.loads(raw) if "json" in resp.headers.get("Content-Type", "") else raw


def next_frame(ws: WsClient, kind: str) -> dict[str, Any]:
    def frame() -> dict[str, Any] | None:
        got = json.loads(ws.receive(timeout=10) or "{}")
        return got if got.get("Type") == kind else None

    return wait_until(frame, timeout=20, what=f"a {kind} frame")


def test_a_message_sent_to_one_instance_reaches_the_others_api_and_websocket(
    pair: tuple[Server, Server],
) -> None:
    a, b = pair
    ws = WsClient.connect(b.http_url.replace("http://", "ws://") + "api/events")
    try:
        with smtplib.SMTP(*a.smtp_address, timeout=30) as client:
            client.sendmail(
                "ann@example.com",
                ["bob@example.org"],
                b"From: ann@example.com\r\nTo: bob@example.org\r\nSubject: via A\r\n\r\nHi.\r\n",
            )
        new = next_frame(ws, "new")
        assert new["Data"]["Subject"] == "via A"
        assert next_frame(ws, "stats")["Data"]["Total"] == 1  # B's counts follow A's delivery
        uid = new["Data"]["ID"]
        assert [m["ID"] for m in api(b, "api/v1/messages")["messages"]] == [uid]
        # A change made through B is heard by A's clients in turn.
        ws_a = WsClient.connect(a.http_url.replace("http://", "ws://") + "api/events")
        try:
            api(b, "api/v1/messages", "PUT", {"IDs": [uid], "Read": True})
            update = next_frame(ws_a, "update")
            assert update["Data"] == {"ID": uid, "Read": True}
        finally:
            ws_a.close()
    finally:
        ws.close()
