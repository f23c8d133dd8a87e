"""--smtp-strict-rfc-headers, as Mailpit's: headers with <CR><CR><LF> are refused at DATA."""

from __future__ import annotations

import json
import urllib.request

from helpers import RawClient, make_server, wait_until
from mailpit_py.server import Server

CRCRLF = b"From: a@example.com\r\r\nSubject: doubled CR\r\r\n\r\r\nbody\r\n"
BODY_ONLY = b"From: a@example.com\r\nSubject: fine\r\n\r\nbody line\r\r\nmore\r\n"


def deliver(mp: Server, raw: bytes) -> str:
    client = RawClient(mp.smtp_address)
    try:
        for line in ("EHLO test", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>"):
            assert client.cmd(line).startswith("250"), line
        assert client.cmd("DATA").startswith("354")
        client.send(raw + b".\r\n")
        return client.reply()
    finally:
        client.close()


def stored(mp: Server) -> list[str]:
    with urllib.request.urlopen(mp.http_url + "api/v1/messages", timeout=10) as resp:
        return [m["Subject"] for m in json.load(resp)["messages"]]


def test_strict_headers_refuse_a_doubled_cr_in_the_header_section() -> None:
    with make_server(smtp_strict_rfc_headers=True) as mp:
        reply = deliver(mp, CRCRLF)
        assert reply.startswith("550 5.6.0 "), reply
        assert "<CR><CR><LF>" in reply
        assert deliver(mp, BODY_ONLY).startswith("250 "), "a body may have them"
        assert stored(mp) == ["fine"]
        box = mp.mailbox
        assert box is not None
        wait_until(
            lambda: any("strict-rfc-headers" in json.dumps(s) for s in box.sessions(0, 10)),
            what="the refusal's rule in the session log",
        )
    # Without the flag the message is kept as it came (Mailpit rewrites the doubled CR).
    with make_server() as mp:
        assert deliver(mp, CRCRLF).startswith("250 ")
        assert mp.mailbox is not None
        uid = mp.mailbox.list_messages()[0]["ID"]
        assert mp.mailbox.raw(uid) == CRCRLF
