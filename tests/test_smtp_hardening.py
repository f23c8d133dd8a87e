"""SMTP input that cannot be smuggled or poisoned: DATA ends only at CRLF.CRLF, envelope bytes
are checked before they are accepted, the size limit counts what is stored, and the recorded
protocol names TLS and AUTH (RFC 3848)."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import pytest

from helpers import RawClient
from mailpit_py.server import Server

SMUGGLED = (
    b"MAIL FROM:<attacker@evil.example>\r\n"
    b"RCPT TO:<victim@example.org>\r\n"
    b"DATA\r\n"
    b"Subject: smuggled\r\n\r\nsecond message\r\n"
)


def replies_until_closed(c: RawClient) -> list[str]:
    """Every reply the server sends until it closes the connection (after QUIT)."""
    out: list[str] = []
    while True:
        try:
            out.append(c.reply())
        except ConnectionError:
            return out


def transaction_lines(mp: Server, msg_id: str) -> list[str]:
    assert mp.mailbox is not None
    return [line for _, _, line in mp.mailbox.get(msg_id).transcript]


# -- DATA ends only at <CRLF>.<CRLF> ------------------------------------------------------


@pytest.mark.parametrize(
    ("fake", "stored"),
    [
        # Not the end, but still a line that starts with a dot: unstuffed like any other (RFC
        # 5321 section 4.5.2). A bare CR ends no line.
        (b"\n.\n", b"\n\n"),
        (b"\n.\r\n", b"\n\r\n"),
        (b"\r\n.\n", b"\r\n\n"),
        (b"\r.\r", b"\r.\r"),
    ],
    ids=["lf-dot-lf", "lf-dot-crlf", "crlf-dot-lf", "cr-dot-cr"],
)
def test_only_crlf_dot_crlf_ends_data_so_a_second_message_cannot_be_smuggled(
    server: Server, raw_client: Callable[[], RawClient], fake: bytes, stored: bytes
) -> None:
    c = raw_client()
    c.cmd("EHLO me")
    assert c.cmd("MAIL FROM:<a@example.com>").startswith("250 2.1.0")
    assert c.cmd("RCPT TO:<b@example.com>").startswith("250 2.1.5")
    assert c.cmd("DATA").startswith("354")
    first = b"Subject: first\r\n\r\nfirst message"
    c.send(first + fake + SMUGGLED + b".\r\nQUIT\r\n")
    replies = replies_until_closed(c)
    # Exactly one 250 for the data, then QUIT's 221: no replies to smuggled commands.
    assert len(replies) == 2, replies
    assert replies[0].startswith("250 2.0.0 Ok: queued as "), replies
    assert replies[1].startswith("221"), replies
    msg_id = replies[0].rsplit(" ", 1)[1]
    assert server.mailbox is not None
    assert [m["ID"] for m in server.mailbox.list()] == [msg_id]
    assert server.mailbox.raw(msg_id) == first + stored + SMUGGLED
    envelope = server.mailbox.get(msg_id).detail["Envelope"]
    assert (envelope["From"], envelope["To"]) == ("a@example.com", ["b@example.com"])
    # The transcript shows one transaction; the smuggled commands are inside the data.
    lines = transaction_lines(server, msg_id)
    assert [line for line in lines if line.startswith("MAIL")] == ["MAIL FROM:<a@example.com>"]
    assert not any("attacker" in line for line in lines)
    size = len(first + stored + SMUGGLED)
    assert any(line.startswith(f"[message data: {size} octets,") for line in lines), lines


def test_dot_unstuffing_at_the_start_of_every_line(
    server: Server, raw_client: Callable[[], RawClient]
) -> None:
    c = raw_client()
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    c.cmd("DATA")
    c.send(b"..first\r\nSubject: dots\r\n\r\n..x\r\nmid..dle\r\na\n..b\r\nc\r..d\r\n...\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0")
    assert server.mailbox is not None
    assert (
        server.mailbox.raw("latest")
        == b".first\r\nSubject: dots\r\n\r\n.x\r\nmid..dle\r\na\n.b\r\nc\r..d\r\n..\r\n"
    )


def test_smtplib_stuffs_dots_after_bare_lf_and_the_message_round_trips(server: Server) -> None:
    # smtplib doubles a dot at the start of any line, one after a bare LF too; taking the dot
    # line after a bare LF as data must not leave those dots doubled in the stored message.
    raw = b"Subject: lf dots\n\n.hidden\n..two\nend\n.\nafter\n"
    with smtplib.SMTP(*server.smtp_address) as client:
        client.sendmail("a@example.com", ["b@example.com"], raw)
    assert server.mailbox is not None
    assert server.mailbox.raw("latest") == raw + b"\r\n"  # smtplib ends the data with CRLF


def test_an_empty_message_and_a_terminator_split_across_writes(
    server: Server, raw_client: Callable[[], RawClient]
) -> None:
    c = raw_client()
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    c.cmd("DATA")
    c.send(b".\r\n")  # right after DATA's own CRLF: an empty message
    empty_id = c.reply().rsplit(" ", 1)[1]
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    c.cmd("DATA")
    for piece in (b"Subject: split\r\n\r\nbody\r", b"\n", b".", b"\r", b"\n"):
        c.send(piece)
    split_id = c.reply().rsplit(" ", 1)[1]
    assert server.mailbox is not None
    assert server.mailbox.raw(empty_id) == b""
    assert server.mailbox.raw(split_id) == b"Subject: split\r\n\r\nbody\r\n"


# -- the size limit counts the stored octets -----------------------------------------------


def dotted_message(size: int) -> bytes:
    """A message of exactly `size` octets (its last line ends in CRLF, as stored) in which
    most lines start with a dot."""
    head = b"Subject: dots\r\n\r\n"
    line = b".dot line\r\n"
    body = line * ((size - len(head) - 2) // len(line))
    return head + body + b"x" * (size - len(head) - len(body) - 2) + b"\r\n"


def stuffed(message: bytes) -> bytes:
    """As a client sends it: a dot doubled at the start of every line, then the lone dot."""
    lines = message.split(b"\r\n")
    return b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in lines) + b".\r\n"


def test_the_size_limit_counts_unstuffed_octets(server_factory) -> None:
    limit = 20_000
    mp = server_factory(max_message_size=limit)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    exact = dotted_message(limit)
    assert len(exact) == limit
    assert len(stuffed(exact)) > limit + 1500  # many doubled dots on the wire
    assert c.cmd(f"MAIL FROM:<a@example.com> SIZE={limit}").startswith("250")
    c.cmd("RCPT TO:<b@example.com>")
    assert c.cmd("DATA").startswith("354")
    c.send(stuffed(exact))
    reply = c.reply()
    assert reply.startswith("250 2.0.0"), reply
    assert mp.mailbox is not None
    assert mp.mailbox.raw(reply.rsplit(" ", 1)[1]) == exact
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    assert c.cmd("DATA").startswith("354")
    c.send(stuffed(dotted_message(limit + 1)))
    assert c.reply().startswith("552 5.3.4")
    assert c.cmd("NOOP").startswith("250")  # the session goes on
    c.close()
    assert mp.mailbox.counts()[0] == 1
