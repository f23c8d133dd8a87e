"""SMTP input that cannot be smuggled or poisoned: DATA ends only at CRLF.CRLF, envelope bytes
are checked before they are accepted, the size limit counts what is stored, and the recorded
protocol names TLS and AUTH (RFC 3848)."""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from upstream import PASSWORD, USER, UpstreamServer

from front_door import starttls
from helpers import RawClient, wait_until
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
    assert [m["ID"] for m in server.mailbox.list_messages()] == [msg_id]
    assert server.mailbox.raw(msg_id) == first + stored + SMUGGLED
    envelope = server.mailbox.get(msg_id).detail["Envelope"]
    assert (envelope["From"], envelope["To"]) == ("a@example.com", ["b@example.com"])
    # The transcript shows one transaction; the smuggled commands are inside the data.
    lines = transaction_lines(server, msg_id)
    assert [line for line in lines if line.startswith("MAIL")] == ["MAIL FROM:<a@example.com>"]
    assert not any("attacker" in line for line in lines)
    size = len(first + stored + SMUGGLED)
    assert any(line.startswith(f"[message data: {size} octets,") for line in lines), lines


def test_a_smuggled_message_is_not_relayed_upstream(server_factory, tmp_path: Path) -> None:
    with UpstreamServer() as up:
        relay = tmp_path / "relay.yaml"
        relay.write_text(
            f"host: 127.0.0.1\nport: {up.port}\nstarttls: true\nallow-insecure: true\n"
            f"auth: plain\nusername: {USER}\npassword: {PASSWORD}\nforward-smtp-errors: true\n"
        )
        # Relayed inside the session: the upstream has what it will ever get at our 250.
        mp = server_factory(smtp_relay_config=str(relay), smtp_relay_all=True)
        c = RawClient(mp.smtp_address)
        c.cmd("EHLO me")
        c.cmd("MAIL FROM:<a@example.com>")
        c.cmd("RCPT TO:<b@example.com>")
        assert c.cmd("DATA").startswith("354")
        c.send(b"Subject: first\r\n\r\nfirst message\n.\n" + SMUGGLED + b".\r\nQUIT\r\n")
        replies = replies_until_closed(c)
        assert [r[:3] for r in replies] == ["250", "221"], replies
        assert [(r.mail_from, r.rcpts) for r in up.received] == [
            ("a@example.com", ["b@example.com"])
        ]
        assert b"attacker@evil.example" in up.received[0].data


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


# -- envelope bytes: ASCII, or UTF-8 with SMTPUTF8, never anything else ----------------------


@pytest.fixture
def offline(server_factory, tmp_path: Path) -> Server:
    """A server whose checks answer DNS from a small zone file (no lookups on the internet)."""
    zone = tmp_path / "zone.txt"
    zone.write_text('example.test TXT "v=spf1 -all"\n')
    return server_factory(dns_override=str(zone), dns_offline=True)  # type: ignore[no-any-return]


def api(mp: Server, path: str) -> tuple[int, Any]:
    """GET an API path: (status, the JSON answer or the body text)."""
    url = mp.http_url + path.lstrip("/")
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = resp.read()
            if resp.headers.get_content_type() == "application/json":
                return resp.status, json.loads(body)
            return resp.status, body.decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def raw_cmd(c: RawClient, line: bytes) -> str:
    c.send(line + b"\r\n")
    return c.reply()


def deliver(c: RawClient, subject: str) -> str:
    """DATA for the transaction under way; returns the new message's ID."""
    assert c.cmd("DATA").startswith("354")
    c.send(f"Subject: {subject}\r\nFrom: a@example.test\r\n\r\nHello.\r\n.\r\n".encode())
    reply = c.reply()
    assert reply.startswith("250 2.0.0 Ok: queued as "), reply
    return reply.rsplit(" ", 1)[1]


def assert_readable(mp: Server, msg_id: str) -> dict[str, Any]:
    """Every view of the message answers 200; returns the message."""
    for view in ("smtp", "auth-check", "headers", "raw"):
        status, body = api(mp, f"api/v1/message/{msg_id}/{view}")
        assert status == 200, (view, body)
    status, message = api(mp, f"api/v1/message/{msg_id}")
    assert status == 200, message
    return message  # type: ignore[no-any-return]


def test_helo_and_other_arguments_that_are_not_utf8_get_501_and_the_session_goes_on(
    offline: Server,
) -> None:
    c = RawClient(offline.smtp_address)
    assert raw_cmd(c, b"EHLO bad\xff\xfe.example").startswith("501 5.5.4")
    assert raw_cmd(c, b"HELO \xc3").startswith("501 5.5.4")
    assert c.cmd("MAIL FROM:<a@example.test>").startswith("503")  # no greeting took
    assert raw_cmd(c, b"VRFY x\xff@example.test").startswith("501 5.5.4")
    assert c.cmd("EHLO good.example").startswith("250")
    assert c.cmd("MAIL FROM:<a@example.test>").startswith("250 2.1.0")
    assert c.cmd("RCPT TO:<b@example.test>").startswith("250 2.1.5")
    msg_id = deliver(c, "after bad helo")
    c.cmd("QUIT")
    c.close()
    message = assert_readable(offline, msg_id)
    assert message["Envelope"]["Helo"] == "good.example"
    status, smtp = api(offline, f"api/v1/message/{msg_id}/smtp")
    lines = json.dumps(smtp)
    assert "EHLO bad\\ufffd\\ufffd.example" in lines  # shown with replacement characters
    status, sessions = api(offline, "api/v1/sessions")
    assert status == 200, sessions
    assert wait_until(lambda: api(offline, "api/v1/sessions")[1]["total"] == 1)


def test_arguments_with_control_characters_get_501_and_reach_no_header(
    server_factory, tmp_path: Path
) -> None:
    zone = tmp_path / "zone.txt"
    zone.write_text('example.test TXT "v=spf1 -all"\n')
    mp = server_factory(dns_override=str(zone), dns_offline=True, smtp_reverse_dns=True)
    c = RawClient(mp.smtp_address)
    # A bare CR inside the EHLO name went into the Received header as it came.
    assert raw_cmd(c, b"EHLO a\rBcc: victim@evil.test").startswith("501 5.5.4")
    assert raw_cmd(c, b"EHLO ok.example\x00").startswith("501 5.5.4")
    assert c.cmd("EHLO ok.example").startswith("250")
    assert raw_cmd(c, b"MAIL FROM:<a@example.test>\rX: y").startswith("501 5.5.4")
    assert c.cmd("MAIL FROM:<a@example.test>").startswith("250 2.1.0")
    assert raw_cmd(c, b"RCPT TO:<b@example.test\x0b>").startswith("501 5.5.4")
    assert c.cmd("RCPT TO:<b@example.test>").startswith("250 2.1.5")
    msg_id = deliver(c, "after control characters")
    c.cmd("QUIT")
    c.close()
    assert_readable(mp, msg_id)
    assert mp.mailbox is not None
    head = mp.mailbox.raw(msg_id).split(b"\r\n\r\n", 1)[0]
    assert b"Bcc" not in head and b"\r" not in head.replace(b"\r\n", b""), head


@pytest.mark.parametrize(
    "address",
    ['"', "<", "-=@", "a@[", "<a@[>", "\tb\t.@[@:\\)(,\\)b>;", "<(x"],
)
def test_addresses_the_header_parser_chokes_on_get_553_not_451(
    offline: Server, address: str
) -> None:
    # The standard library's address parser raised on these (IndexError, AttributeError):
    # 451 "internal error", a temporary failure a client retries for ever, and a traceback
    # logged per command.
    c = RawClient(offline.smtp_address)
    c.cmd("EHLO me")
    assert c.cmd(f"MAIL FROM:{address}").startswith("553 5.1.3"), address
    assert c.cmd("MAIL FROM:<a@example.test>").startswith("250 2.1.0")
    assert c.cmd(f"RCPT TO:{address}").startswith("553 5.1.3"), address
    assert c.cmd(f"VRFY {address}")[:1] in ("2", "5"), address
    assert c.cmd("RCPT TO:<b@example.test>").startswith("250 2.1.5")
    c.close()


def test_addresses_that_are_not_utf8_get_553_and_the_session_goes_on(offline: Server) -> None:
    c = RawClient(offline.smtp_address)
    c.cmd("EHLO me.example")
    # RFC 3463: X.1.7 bad sender's mailbox syntax, X.1.3 bad destination mailbox syntax.
    assert raw_cmd(c, b"MAIL FROM:<a\xff@example.test>").startswith("553 5.1.7")
    assert raw_cmd(c, b"MAIL FROM:<a\xff@example.test> SMTPUTF8").startswith("553 5.1.7")
    assert c.cmd("MAIL FROM:<a@example.test>").startswith("250 2.1.0")
    assert raw_cmd(c, b"RCPT TO:<b\xfe@example.test>").startswith("553 5.1.3")
    assert c.cmd("RCPT TO:<b@example.test>").startswith("250 2.1.5")
    msg_id = deliver(c, "after bad addresses")
    c.cmd("QUIT")
    c.close()
    message = assert_readable(offline, msg_id)
    assert message["Envelope"]["From"] == "a@example.test"
    assert message["Envelope"]["To"] == ["b@example.test"]
    assert wait_until(lambda: api(offline, "api/v1/sessions")[1]["total"] == 1)


def test_non_ascii_addresses_need_smtputf8(offline: Server) -> None:
    c = RawClient(offline.smtp_address)
    c.cmd("EHLO me.example")
    # RFC 6531: 553 with X.6.7, non-ASCII addresses not permitted for that sender/recipient.
    assert c.cmd("MAIL FROM:<jörg@example.test>").startswith("553 5.6.7")
    assert c.cmd("MAIL FROM:<a@example.test>").startswith("250 2.1.0")
    assert c.cmd("RCPT TO:<zoë@example.test>").startswith("553 5.6.7")
    assert c.cmd("RCPT TO:<b@example.test>").startswith("250 2.1.5")
    ascii_id = deliver(c, "ascii")
    assert c.cmd("MAIL FROM:<jörg@example.test> SMTPUTF8").startswith("250 2.1.0")
    assert c.cmd("RCPT TO:<zoë@bücher.example>").startswith("250 2.1.5")
    utf8_id = deliver(c, "utf8")
    c.cmd("QUIT")
    c.close()
    assert assert_readable(offline, ascii_id)["Envelope"]["To"] == ["b@example.test"]
    envelope = assert_readable(offline, utf8_id)["Envelope"]
    assert (envelope["From"], envelope["To"]) == ("jörg@example.test", ["zoë@bücher.example"])


# -- the protocol a message came in with (RFC 3848) ------------------------------------------


def received_with(raw: bytes) -> str:
    """The WITH word of the Received header this server added."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    return head.split(" with ", 1)[1].split()[0]


@pytest.mark.parametrize(
    ("tls", "auth", "expected"),
    [
        (False, False, "ESMTP"),
        (True, False, "ESMTPS"),
        (False, True, "ESMTPA"),
        (True, True, "ESMTPSA"),
    ],
)
def test_the_envelope_protocol_names_tls_and_auth_as_the_received_header_does(
    server_factory, tls: bool, auth: bool, expected: str
) -> None:
    mp = server_factory(
        smtp_tls_cert="sans:localhost",
        smtp_auth_accept_any=True,  # AUTH offered, not required
        smtp_auth_allow_insecure=True,
        smtp_reverse_dns=True,
    )

    async def ptr(ip: str) -> str:
        return "client.example"  # no DNS lookup

    mp.smtp.reverse_lookup = ptr
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me.example")
    if tls:
        starttls(c)
    if auth:
        assert c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==").startswith("235 2.7.0")  # alice, s3cret
    c.cmd("MAIL FROM:<a@example.test>")
    c.cmd("RCPT TO:<b@example.test>")
    msg_id = deliver(c, "protocol")
    c.cmd("QUIT")
    c.close()
    assert mp.mailbox is not None
    assert mp.mailbox.get(msg_id).detail["Envelope"]["Protocol"] == expected
    assert received_with(mp.mailbox.raw(msg_id)) == expected


def test_a_helo_session_is_smtp_in_both(server_factory) -> None:
    mp = server_factory(smtp_reverse_dns=True)

    async def ptr(ip: str) -> str:
        return "client.example"

    mp.smtp.reverse_lookup = ptr
    c = RawClient(mp.smtp_address)
    c.cmd("HELO me.example")
    c.cmd("MAIL FROM:<a@example.test>")
    c.cmd("RCPT TO:<b@example.test>")
    msg_id = deliver(c, "helo")
    c.close()
    assert mp.mailbox is not None
    assert mp.mailbox.get(msg_id).detail["Envelope"]["Protocol"] == "SMTP"
    assert received_with(mp.mailbox.raw(msg_id)) == "SMTP"


def test_forward_smtp_errors_relays_a_tls_and_auth_session_inline_once(
    server_factory, tmp_path: Path
) -> None:
    # Any SMTP session (SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA) is relayed inline, its upstream's
    # answer being the session's; none may also be queued for the relay worker (twice upstream).
    with UpstreamServer() as up:
        relay = tmp_path / "relay.yaml"
        relay.write_text(
            f"host: 127.0.0.1\nport: {up.port}\nstarttls: true\nallow-insecure: true\n"
            f"auth: plain\nusername: {USER}\npassword: {PASSWORD}\nforward-smtp-errors: true\n"
        )
        mp = server_factory(
            smtp_relay_config=str(relay),
            smtp_relay_all=True,
            smtp_tls_cert="sans:localhost",
            smtp_auth_accept_any=True,
        )
        up.rcpt_replies["carol@example.test"] = ["550 5.1.1 carol is unknown upstream"]
        c = RawClient(mp.smtp_address)
        c.cmd("EHLO me.example")
        starttls(c)
        assert c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==").startswith("235")
        ids = []
        for rcpt in ("bob@example.test", "carol@example.test"):
            c.cmd("MAIL FROM:<a@example.test>")
            c.cmd(f"RCPT TO:<{rcpt}>")
            assert c.cmd("DATA").startswith("354")
            c.send(b"Subject: relayed\r\n\r\nHello.\r\n.\r\n")
            ids.append(c.reply())
        c.close()
        assert ids[0].startswith("250 2.0.0"), ids
        assert ids[1].startswith("550") and "carol is unknown upstream" in ids[1], ids
        assert [r.rcpts for r in up.received] == [["bob@example.test"]]
        assert mp.mailbox is not None
        for message in mp.mailbox.list_messages():
            assert mp.mailbox.relay_history(message["ID"])["Queue"] == []  # nothing left to send
