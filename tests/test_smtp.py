"""The SMTP listener against real clients: replies, limits, pipelining, sizes, concurrency."""

from __future__ import annotations

import smtplib
import socket
import sqlite3
import threading
import time
from email.message import EmailMessage

import pytest

from helpers import RawClient, make_server, wait_until
from mailpit_py import events
from mailpit_py.server import Server


def simple_message(subject: str = "Hello", body: str = "Hi there.\n") -> bytes:
    return (
        f"From: Sender <sender@example.com>\r\nTo: rcpt@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.com>\r\n"
        f"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n{body}"
    ).encode()


def test_port_zero_binds_a_free_port_and_reports_it(server: Server) -> None:
    host, port = server.smtp_address
    assert host == "127.0.0.1"
    assert port > 0
    with smtplib.SMTP(host, port) as client:
        assert client.noop()[0] == 250


def test_ipv6_listener_accepts_mail(server_factory) -> None:
    mp = server_factory(smtp_addr="[::1]:0")
    host, port = mp.smtp_address
    assert host == "::1"
    with smtplib.SMTP(host, port) as client:
        client.sendmail("a@example.com", ["b@example.com"], simple_message())
    assert mp.mailbox.counts() == (1, 1)


def test_ehlo_advertises_size_8bitmime_smtputf8_pipelining_enhancedstatuscodes(
    server_factory,
) -> None:
    mp = server_factory(max_message_size=1234567)
    with smtplib.SMTP(*mp.smtp_address) as client:
        code, _ = client.ehlo("client.example")
        assert code == 250
        assert client.esmtp_features["size"] == "1234567"
        for ext in ("8bitmime", "smtputf8", "pipelining", "enhancedstatuscodes"):
            assert ext in client.esmtp_features, ext


def test_multiline_ehlo_reply_goes_out_in_one_write(server_factory) -> None:
    # The lines of a multi-line reply are sent together (one system call and one packet for
    # EHLO's seven lines, not seven): the server side's stream writer is watched, the bytes
    # still go through it to a real socket.
    mp = server_factory()
    with socket.create_connection(mp.smtp_address, timeout=10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220 ")
        (proto,) = mp.smtp._protocols
        writes: list[bytes] = []
        real_write = proto._writer.write

        def watched(data: bytes) -> None:
            writes.append(bytes(data))
            real_write(data)

        proto._writer.write = watched
        sock.sendall(b"EHLO client.example\r\n")
        lines = [reader.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(reader.readline())
        reader.close()
    assert len(lines) > 4 and lines[-1].startswith(b"250 ")
    assert writes == [b"".join(lines)]


def test_greeting_is_220_with_hostname(raw_client) -> None:
    c = raw_client()
    assert c.greeting.startswith("220 test.local ")


def test_any_helo_sender_and_recipient_are_accepted_including_null_sender(
    server: Server, raw_client
) -> None:
    c = raw_client()
    assert c.cmd("HELO whatever-name_that's.odd").startswith("250 ")
    assert c.cmd("MAIL FROM:<>").startswith("250 2.1.0")
    assert c.cmd("RCPT TO:<anyone@anywhere.invalid>").startswith("250 2.1.5")
    assert c.cmd("RCPT TO:<postmaster>").startswith("250 2.1.5")
    assert c.cmd("DATA").startswith("354")
    c.send(simple_message("bounce") + b"\r\n.\r\n")
    reply = c.reply()
    assert reply.startswith("250 2.0.0 Ok: queued as ")
    msg = server.mailbox.get(reply.rsplit(" ", 1)[1])
    assert msg.detail["ReturnPath"] == ""
    envelope = msg.detail["Envelope"]
    assert envelope["From"] == ""
    assert envelope["To"] == ["anyone@anywhere.invalid", "postmaster"]
    assert envelope["Helo"] == "whatever-name_that's.odd"
    assert envelope["Peer"].startswith("127.0.0.1:")
    assert envelope["TLS"] is False
    assert envelope["Protocol"] == "SMTP"


def test_data_reply_names_the_id_of_the_committed_message(server: Server, raw_client) -> None:
    c = raw_client()
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    c.cmd("DATA")
    c.send(simple_message("committed") + b"\r\n.\r\n")
    reply = c.reply()
    assert reply.startswith("250 2.0.0 Ok: queued as ")
    msg_id = reply.rsplit(" ", 1)[1]
    # No waiting: the 250 comes only after the commit, so the message is readable at once.
    assert server.mailbox.get(msg_id).summary["Subject"] == "committed"


def test_mail_with_size_over_the_limit_gets_552(server_factory) -> None:
    mp = server_factory(max_message_size=1000)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    reply = c.cmd("MAIL FROM:<a@example.com> SIZE=5000")
    assert reply.startswith("552 5.3.4"), reply
    assert c.cmd("MAIL FROM:<a@example.com> SIZE=500").startswith("250 2.1.0")
    c.close()


def test_data_over_the_limit_gets_552_and_the_session_goes_on(server_factory) -> None:
    mp = server_factory(max_message_size=2000)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")  # no SIZE: the limit is enforced while reading DATA
    c.cmd("RCPT TO:<b@example.com>")
    assert c.cmd("DATA").startswith("354")
    c.send(simple_message(body=("y" * 70 + "\r\n") * 100) + b".\r\n")
    assert c.reply().startswith("552 5.3.4")
    assert c.cmd("RSET").startswith("250")
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    c.cmd("DATA")
    c.send(simple_message("small") + b"\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0")
    c.close()
    assert [m["Subject"] for m in mp.mailbox.list_messages()] == ["small"]


def test_too_many_recipients_get_452(server_factory) -> None:
    mp = server_factory(smtp_max_recipients=3)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    for i in range(3):
        assert c.cmd(f"RCPT TO:<r{i}@example.com>").startswith("250 2.1.5")
    assert c.cmd("RCPT TO:<r3@example.com>").startswith("452 4.5.3")
    assert c.cmd("DATA").startswith("354")
    c.send(simple_message() + b"\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0")
    c.close()
    assert mp.mailbox.get("latest").detail["Envelope"]["To"] == [
        "r0@example.com",
        "r1@example.com",
        "r2@example.com",
    ]


def test_commands_out_of_order_get_503(raw_client) -> None:
    c = raw_client()
    c.cmd("EHLO me")
    assert c.cmd("RCPT TO:<b@example.com>").startswith("503 5.5.1")
    assert c.cmd("DATA").startswith("503 5.5.1")
    assert c.cmd("MAIL FROM:<a@example.com>").startswith("250")
    assert c.cmd("MAIL FROM:<a@example.com>").startswith("503 5.5.1")
    assert c.cmd("DATA").startswith("503 5.5.1")


def test_mail_before_helo_gets_503(raw_client) -> None:
    c = raw_client()
    assert c.cmd("MAIL FROM:<a@example.com>").startswith("503 5.5.1")


def test_bad_syntax_gets_501(raw_client) -> None:
    c = raw_client()
    c.cmd("EHLO me")
    assert c.cmd("MAIL a@example.com").startswith("501 5.5.4")
    assert c.cmd("MAIL FROM:<a@example.com>").startswith("250")
    assert c.cmd("RCPT <b@example.com>").startswith("501 5.5.4")
    assert c.cmd("EHLO").startswith("501 5.5.4")


def test_unknown_command_gets_500(raw_client) -> None:
    c = raw_client()
    assert c.cmd("FROBNICATE now").startswith("500 5.5.2")
    assert c.cmd("NOOP").startswith("250 2.0.0")


def test_an_unknown_command_is_not_echoed_with_control_characters(raw_client) -> None:
    # A reply line is printable text (RFC 5321 section 4.2): a client's NUL, bare CR or
    # terminal escape must not come back in the 500.
    c = raw_client()
    c.send(b"NO\x00OP\rQUIT\x1b[2J now\r\n")
    reply = c.reply()
    assert reply.startswith("500 5.5.2") and reply.isprintable()
    assert c.cmd("NOOP").startswith("250 2.0.0")


def test_too_many_unknown_commands_end_the_session_with_421(raw_client) -> None:
    # The server closing the channel says so with 421 (RFC 5321 section 3.8), as Postfix does
    # after too many errors; a 502 told the client only that the command was not implemented.
    c = raw_client()
    for _ in range(4):
        assert c.cmd("BOGUS").startswith("500 5.5.2")
    assert c.cmd("BOGUS").startswith("421 4.7.0")
    assert c.file.readline() == b""


def test_quit_with_an_argument_still_ends_the_session(raw_client) -> None:
    # A client that says QUIT wants to leave: a 501 kept it waiting on a session it was done
    # with. Mailpit and Postfix answer 221 whatever follows QUIT.
    c = raw_client()
    c.cmd("EHLO me")
    assert c.cmd("QUIT now please").startswith("221 2.0.0")
    assert c.file.readline() == b""


def test_idle_client_gets_421_after_the_timeout(server_factory) -> None:
    mp = server_factory(smtp_timeout=0.3)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    # The server speaks first after the idle timeout: no sleep needed, just read.
    assert c.reply().startswith("421 4.4.2")
    assert c.file.readline() == b""  # and then closes
    c.close()
    sessions = wait_until(mp.mailbox.sessions, what="the session record")
    assert sessions[0]["Outcome"] == "timeout"


def test_a_client_that_keeps_talking_is_not_timed_out(server_factory) -> None:
    # The idle timer is re-armed lazily (smtp/protocol.py _reset_timeout): activity spread over more
    # than one timeout period must keep the session open, and silence must still end it.
    mp = server_factory(smtp_timeout=1.0)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    started = time.monotonic()
    while time.monotonic() - started < 1.6:
        assert c.cmd("NOOP").startswith("250 2.0.0")
        time.sleep(0.1)  # ok-sleep: pacing the client, not waiting for the server
    assert c.reply().startswith("421 4.4.2")  # then silence: timed out
    c.close()


def test_a_message_sent_slowly_is_not_timed_out_and_silence_mid_data_is(server_factory) -> None:
    # The timeout is for idleness (RFC 5321 section 4.5.3.2 times each read): a message whose
    # data keeps coming for longer than the timeout (a big one on a slow link) must not be cut
    # off, and a client that goes silent mid-DATA still gets 421 with nothing stored.
    mp = server_factory(smtp_timeout=1.0)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    assert c.cmd("DATA").startswith("354")
    c.send(b"Subject: slow\r\n\r\n")
    started = time.monotonic()
    while time.monotonic() - started < 1.8:
        c.send(b"a line of a slow message\r\n")
        time.sleep(0.2)  # ok-sleep: pacing the client, not waiting for the server
    c.send(b".\r\n")
    assert c.reply().startswith("250 2.0.0")
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    c.cmd("DATA")
    c.send(b"Subject: cut off\r\n\r\nand then nothing")
    assert c.reply().startswith("421 4.4.2")
    assert c.file.readline() == b""
    c.close()
    assert mp.mailbox is not None
    assert [m["Subject"] for m in mp.mailbox.list_messages()] == ["slow"]


def test_a_session_of_endless_commands_keeps_a_bounded_transcript(server: Server) -> None:
    # NOOP re-arms the idle timer, so a client may send commands for as long as it likes: each
    # one and its reply were kept (300,000 NOOPs held 600,000 lines, 115 MB, then written as
    # the session's record). Past the bound they are counted in a note; the session goes on.
    c = RawClient(server.smtp_address)
    c.cmd("EHLO me")
    c.send(b"NOOP\r\n" * 5000)
    for _ in range(5000):
        assert c.reply().startswith("250 2.0.0")
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    c.cmd("DATA")
    c.send(b"Subject: after the flood\r\n\r\nbody\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0")
    c.cmd("QUIT")
    c.close()
    assert server.mailbox is not None
    [session] = wait_until(server.mailbox.sessions, what="the session record")
    lines = [t["Line"] for t in session["Transcript"]]
    assert len(lines) < 2100
    assert any("lines of this part of the session are not kept" in line for line in lines)
    assert "QUIT" in lines[-2:] or "221 2.0.0 Bye" in lines[-2:]
    assert [m["Subject"] for m in server.mailbox.list_messages()] == ["after the flood"]


def test_an_over_long_command_line_gets_500_and_the_session_goes_on(raw_client) -> None:
    c = raw_client()
    c.cmd("EHLO me")
    assert c.cmd("MAIL FROM:<" + "a" * 3000 + "@example.com>").startswith("500 5.5.2")
    assert c.cmd("NOOP").startswith("250 2.0.0")
    assert c.cmd("MAIL FROM:<a@example.com>").startswith("250 2.1.0")


def test_pipelined_commands_in_one_write_all_get_answers(server: Server, raw_client) -> None:
    c = raw_client()
    c.cmd("EHLO me")
    c.send(
        b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
        b"RCPT TO:<c@example.com>\r\nDATA\r\n"
    )
    assert c.reply().startswith("250 2.1.0")
    assert c.reply().startswith("250 2.1.5")
    assert c.reply().startswith("250 2.1.5")
    assert c.reply().startswith("354")
    # Data, end and the next commands pipelined too (RFC 2920 allows commands after DATA's end).
    c.send(simple_message("piped") + b"\r\n.\r\nRSET\r\nNOOP\r\n")
    assert c.reply().startswith("250 2.0.0 Ok: queued as")
    assert c.reply().startswith("250")
    assert c.reply().startswith("250")
    assert server.mailbox.get("latest").summary["Subject"] == "piped"


def test_smtputf8_address_and_utf8_subject(server: Server) -> None:
    msg = EmailMessage()
    msg["From"] = "Jöran <jöran@exämple.com>"
    msg["To"] = "用户@例子.广告"
    msg["Subject"] = "Grüße, 你好"
    msg.set_content("Ünïcödé body\n")
    with smtplib.SMTP(*server.smtp_address) as client:
        client.send_message(msg, mail_options=["SMTPUTF8"])
    stored = server.mailbox.get("latest")
    assert stored.summary["Subject"] == "Grüße, 你好"
    assert stored.detail["Envelope"]["From"] == "jöran@exämple.com"
    assert stored.detail["Envelope"]["To"] == ["用户@例子.广告"]
    assert "Ünïcödé" in stored.detail["Text"]


def test_8bitmime_body_is_stored_byte_exact(server: Server) -> None:
    raw = (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: latin\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nCaf\xe9 cr\xe8me\r\n"
    )
    with smtplib.SMTP(*server.smtp_address) as client:
        client.ehlo()
        client.sendmail("a@example.com", ["b@example.com"], raw, mail_options=["BODY=8BITMIME"])
    assert server.mailbox.raw("latest") == raw
    assert "Café crème" in server.mailbox.get("latest").detail["Text"]


def test_dot_stuffed_lines_are_unstuffed(server: Server, raw_client) -> None:
    c = raw_client()
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    c.cmd("DATA")
    c.send(b"Subject: dots\r\n\r\n..leading dot\r\n...\r\nend\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0")
    assert server.mailbox.raw("latest") == b"Subject: dots\r\n\r\n.leading dot\r\n..\r\nend\r\n"


def test_lines_over_998_octets_are_accepted_and_warned(server: Server, raw_client) -> None:
    c = raw_client()
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    c.cmd("DATA")
    long_line = b"L" * 5000
    c.send(simple_message("long") + long_line + b"\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0")
    stored = server.mailbox.get("latest")
    assert long_line in server.mailbox.raw("latest")
    assert any("998" in w for w in stored.detail["Warnings"]), stored.detail["Warnings"]


def test_bare_lf_line_endings_are_accepted_and_stored_as_they_came(
    server: Server, raw_client
) -> None:
    c = raw_client()
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    c.cmd("DATA")
    # "\n.\n" does not end the data: only CRLF "." CRLF does (see test_smtp_hardening.py).
    c.send(b"Subject: bare lf\nFrom: a@example.com\n\nline one\n..two\n.\n\r\n.\r\n")
    assert c.reply().startswith("250 2.0.0")
    stored = server.mailbox.get("latest")
    assert stored.summary["Subject"] == "bare lf"
    assert "line one" in stored.detail["Text"]
    assert (
        server.mailbox.raw("latest")
        == b"Subject: bare lf\nFrom: a@example.com\n\nline one\n.two\n\n\r\n"
    )


def test_many_messages_on_one_connection_with_rset(server: Server) -> None:
    with smtplib.SMTP(*server.smtp_address) as client:
        for i in range(20):
            client.sendmail("a@example.com", ["b@example.com"], simple_message(f"n{i}"))
            if i % 5 == 0:
                client.rset()
    assert server.mailbox.counts()[0] == 20
    subjects = [m["Subject"] for m in server.mailbox.list_messages(limit=100)]
    assert subjects == [f"n{i}" for i in reversed(range(20))]


def test_20_mb_message_is_stored_intact(server_factory) -> None:
    mp = server_factory(database=None)
    line = b"0123456789" * 7 + b"\r\n"
    raw = simple_message("big") + line * (20 * 1024 * 1024 // len(line))
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.sendmail("a@example.com", ["b@example.com"], raw)
    assert mp.mailbox.raw("latest") == raw
    assert mp.mailbox.get("latest").summary["Size"] == len(raw)


def test_16_concurrent_clients_200_messages_each_none_lost_none_duplicated(
    server_factory,
) -> None:
    mp = server_factory(database=None, max_messages=0)
    errors: list[BaseException] = []

    def send(client_no: int) -> None:
        try:
            with smtplib.SMTP(*mp.smtp_address) as client:
                for i in range(200):
                    client.sendmail(
                        "a@example.com", ["b@example.com"], simple_message(f"c{client_no}-m{i}")
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    subjects = [m["Subject"] for m in mp.mailbox.list_messages(limit=5000)]
    assert len(subjects) == 3200
    assert set(subjects) == {f"c{n}-m{i}" for n in range(16) for i in range(200)}


def test_a_locked_database_gets_451_and_a_retry_succeeds(tmp_path) -> None:
    db = tmp_path / "locked.db"
    mp = Server(make_server(database=str(db)).config, busy_timeout=0.2).start()
    try:
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # hold the write lock, as another process might
        with smtplib.SMTP(*mp.smtp_address) as client:
            with pytest.raises(smtplib.SMTPDataError) as info:
                client.sendmail("a@example.com", ["b@example.com"], simple_message("retry"))
            assert info.value.smtp_code == 451
            assert info.value.smtp_error.startswith(b"4.3.0")
            blocker.execute("ROLLBACK")
            client.sendmail("a@example.com", ["b@example.com"], simple_message("retry"))
        blocker.close()
        assert [m["Subject"] for m in mp.mailbox.list_messages()] == ["retry"]
    finally:
        mp.stop()


def test_every_4xx_5xx_reply_publishes_an_error_event(server: Server, raw_client) -> None:
    with server.bus.subscribe() as sub:
        c = raw_client()
        c.cmd("BOGUS")
        event = sub.get(timeout=5)
        while event is not None and not isinstance(event, events.SmtpError):
            event = sub.get(timeout=5)
    assert isinstance(event, events.SmtpError)
    assert event.to_api()["Type"] == "error"
    assert event.data["Type"] == "smtpd"
    assert event.data["IP"] == "127.0.0.1"
    assert event.data["Message"].startswith("500 5.5.2")


def test_client_that_disconnects_mid_data_stores_nothing(server: Server) -> None:
    sock = socket.create_connection(server.smtp_address)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"HELO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    for _ in range(4):
        f.readline()
    sock.sendall(b"Subject: cut\r\n\r\npartial")
    f.close()  # the file object holds the socket open
    sock.close()
    sessions = wait_until(server.mailbox.sessions, what="the session record")
    assert sessions[0]["Outcome"] == "dropped"
    assert server.mailbox.counts() == (0, 0)


def test_stop_lets_an_in_flight_message_commit_before_closing(tmp_path) -> None:
    db = tmp_path / "inflight.db"
    mp = Server(make_server(database=str(db)).config, busy_timeout=20).start()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the delivery in flight until released
    replies: list[str] = []
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    c.cmd("DATA")
    c.send(simple_message("in flight") + b"\r\n.\r\n")
    wait_until(lambda: mp.smtp.inflight, what="the delivery to be in flight")
    stopper = threading.Thread(target=mp.stop)
    stopper.start()  # shutdown begins while the message waits for the database
    blocker.execute("ROLLBACK")
    blocker.close()
    replies.append(c.reply())
    stopper.join(30)
    c.close()
    assert not stopper.is_alive()
    assert replies[0].startswith("250 2.0.0 Ok: queued as ")
    check = sqlite3.connect(db)
    assert check.execute("SELECT subject FROM messages").fetchall() == [("in flight",)]
    check.close()


def test_transcript_masks_auth_secrets_and_records_data_as_its_size(
    server: Server, raw_client
) -> None:
    c = raw_client()
    c.cmd("EHLO me")
    secret = "AHVzZXIAc2VjcmV0LXBhc3N3b3Jk"  # base64 of \0user\0secret-password
    c.cmd(f"AUTH PLAIN {secret}")  # refused without TLS, but the line must not leak
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    c.cmd("DATA")
    body = simple_message("sized", body="The body text itself.\r\n")
    c.send(body + b".\r\n")
    msg_id = c.reply().rsplit(" ", 1)[1]
    c.cmd("QUIT")
    lines = [line for _, _, line in server.mailbox.get(msg_id).transcript]
    assert "AUTH PLAIN ****" in lines
    assert not any(secret in line for line in lines)
    n_lines = body.count(b"\n")
    assert f"[message data: {len(body)} octets, {n_lines} lines]" in lines
    assert not any("The body text itself" in line for line in lines)
    session = wait_until(server.mailbox.sessions, what="the session record")[0]
    assert not any(secret in t["Line"] for t in session["Transcript"])


def test_transcript_json_is_the_preamble_and_the_current_transaction() -> None:
    import json

    from mailpit_py.smtp.transcript import Transcript

    bare = Transcript()  # nothing before the first MAIL: no preamble to join
    bare.begin_transaction()
    bare.add("C", "MAIL FROM:<a@example.com>")
    assert [e[1:] for e in json.loads(bare.for_message([1.0, "S", "250 ok"]))] == [
        ["C", "MAIL FROM:<a@example.com>"],
        ["S", "250 ok"],
    ]
    t = Transcript()
    t.add("S", "220 hello")
    t.add("C", "EHLO me")
    for n in (1, 2):
        t.begin_transaction()
        t.add("C", f"MAIL FROM:<m{n}@example.com>")
        lines = [e[2] for e in json.loads(t.for_message([9.5, "S", f"250 queued {n}"]))]
        assert lines == ["220 hello", "EHLO me", f"MAIL FROM:<m{n}@example.com>", f"250 queued {n}"]


def test_each_message_keeps_the_preamble_and_only_its_own_transaction(server: Server) -> None:
    with smtplib.SMTP(*server.smtp_address) as client:
        client.ehlo("first-helo")
        client.sendmail("one@example.com", ["x@example.com"], simple_message("one"))
        client.sendmail("two@example.com", ["y@example.com"], simple_message("two"))
    second = server.mailbox.get("latest")
    lines = [line for _, _, line in second.transcript]
    assert any(line.lower().startswith("ehlo first-helo") for line in lines)  # the preamble
    assert any("two@example.com" in line for line in lines)
    assert not any("one@example.com" in line for line in lines)  # not the first transaction
    assert lines[-1] == f"250 2.0.0 Ok: queued as {second.id}"
    session = wait_until(
        lambda: server.mailbox.session(second.session_id) if server.mailbox.sessions() else None,
        what="the session record",
    )
    assert session["Outcome"] == "delivered"
    assert len(session["Messages"]) == 2 and second.id in session["Messages"]


def test_a_long_session_keeps_a_bounded_record_yet_every_message_its_own_transcript(
    server: Server, monkeypatch
) -> None:
    from mailpit_py.smtp import session_base
    from mailpit_py.smtp.transcript import KEEP_TRANSACTIONS

    monkeypatch.setattr(session_base, "KEEP_DELIVERED", 7)
    keep = KEEP_TRANSACTIONS
    count = 3 * keep + 4  # trims more than once
    with smtplib.SMTP(*server.smtp_address) as client:
        client.ehlo("queue-worker")
        for i in range(count):
            client.sendmail(f"s{i}@example.com", ["x@example.com"], simple_message(f"m{i}"))
    newest = server.mailbox.get("latest")
    lines = [line for _, _, line in newest.transcript]
    assert any(line.lower().startswith("ehlo queue-worker") for line in lines)  # the preamble
    assert any(f"s{count - 1}@example.com" in line for line in lines)
    assert not any("earlier transactions" in line for line in lines)
    session = wait_until(
        lambda: server.mailbox.session(newest.session_id) if server.mailbox.sessions() else None,
        what="the session record",
    )
    text = [entry["Line"] for entry in session["Transcript"]]
    assert any(line.lower().startswith("ehlo queue-worker") for line in text)  # preamble kept
    senders = [line for line in text if line.upper().startswith("MAIL FROM:")]
    assert len(senders) <= 2 * keep + 1
    kept = [int(line.split("<s")[1].split("@")[0]) for line in senders]
    first_kept = kept[0]
    assert kept == list(range(first_kept, count))  # the latest, in order, none missing
    (note,) = [line for line in text if "earlier transactions" in line]
    assert note.startswith(f"{first_kept} earlier transactions")
    assert session["Outcome"] == "delivered"
    assert len(session["Messages"]) == 7 and session["Messages"][-1] == newest.id


def test_a_client_that_half_closes_after_its_data_still_gets_250(server: Server) -> None:
    sock = socket.create_connection(server.smtp_address, timeout=10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"HELO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    for _ in range(4):
        f.readline()
    sock.sendall(simple_message("half closed") + b"\r\n.\r\n")
    sock.shutdown(socket.SHUT_WR)  # done writing; still reading
    reply = f.readline().decode()
    f.close()
    sock.close()
    assert reply.startswith("250 2.0.0 Ok: queued as ")
    assert server.mailbox.get(reply.split()[-1]).summary["Subject"] == "half closed"


def test_the_fast_address_parser_agrees_with_aiosmtpds_on_every_form() -> None:
    from aiosmtpd.smtp import SMTP as AiosmtpdSMTP

    from mailpit_py.smtp.protocol import CatcherSMTP

    samples = [
        "<a@b.c>",
        "<a@b.c> SIZE=100 BODY=8BITMIME",
        " <a@b.c>",
        "<a@b.c>SIZE=1",
        "<a@b.c>  X",
        "<a.b+c@x-y.example>",
        "<o'neil&co{1}@ex.org> SMTPUTF8",
        "<a@b.c> (comment) SIZE=1",
        "<>",
        "<> SIZE=1",
        "a@b.c",
        '<"q u"@x>',
        "<@route:a@b>",
        "<a@[1.2.3.4]>",
        "<a..b@x>",
        "<.a@x>",
        "<a.@x>",
        "<a@x",
        "<ü@x.de>",
        "<a(comment)@b>",
        "<a@b.c >",
        "<a@b.>",
        "<a@-b.c>",
        "<a@b..c>",
        "<" + "l" * 70 + "@x.org>",
        "<a@b.c>\tSIZE=9",
        "",
    ]
    ours = object.__new__(CatcherSMTP)
    theirs = object.__new__(AiosmtpdSMTP)
    for obj in (ours, theirs):
        obj.local_part_limit = 64
    for arg in samples:
        assert ours._getaddr(arg) == theirs._getaddr(arg), arg


def test_the_listener_runs_on_uvloop_unless_tls_is_configured() -> None:
    uvloop = pytest.importorskip("uvloop")
    with make_server() as plain:
        assert plain.smtp is not None and isinstance(plain.smtp.loop, uvloop.Loop)
    with make_server(smtp_tls_cert="sans:localhost") as tls:
        assert tls.smtp is not None and not isinstance(tls.smtp.loop, uvloop.Loop)


def test_the_protocol_is_set_up_as_aiosmtpds_own_constructor_would(server: Server) -> None:
    # CatcherSMTP skips aiosmtpd's per-connection method discovery (smtp/protocol.py
    # _smtp_init); this catches a drift when aiosmtpd changes what its constructor sets.
    from aiosmtpd.smtp import SMTP

    from mailpit_py.smtp.protocol import CatcherSMTP

    smtp = server.smtp
    ours = CatcherSMTP(smtp)
    theirs = SMTP(
        smtp,
        data_size_limit=smtp.config.max_message_size,
        enable_SMTPUTF8=True,
        hostname=smtp.config.smtp_hostname,
        ident="x",
        tls_context=smtp.tls_context,
        timeout=smtp.config.smtp_timeout,
        loop=smtp.loop,
    )
    assert set(vars(theirs)) <= set(vars(ours))
    # Same methods found, by name, bound to the same objects' functions.
    theirs_for_ours = SMTP.__new__(CatcherSMTP)
    SMTP.__init__(theirs_for_ours, smtp, hostname="x", loop=smtp.loop)
    assert ours._smtp_methods.keys() == theirs_for_ours._smtp_methods.keys()
    assert {k: (v.method.__name__, v.is_builtin) for k, v in ours._auth_methods.items()} == {
        k: (v.method.__name__, v.is_builtin) for k, v in theirs_for_ours._auth_methods.items()
    }
    assert ours._handle_hooks.keys() == theirs_for_ours._handle_hooks.keys()
    assert ours._ehlo_hook_ver == theirs_for_ours._ehlo_hook_ver == "new"
    assert ours.hostname == theirs.hostname and ours.data_size_limit == theirs.data_size_limit
