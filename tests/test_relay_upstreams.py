"""The relay against upstreams that misbehave or differ: one without SMTPUTF8 (an address only
SMTPUTF8 can carry is refused for good, never mangled), one with it, a self-signed certificate
(verified unless allow-insecure), one that drops the connection in the middle of the data, and
a slow one that is still answering when the server stops (the copy is not sent twice)."""

from __future__ import annotations

import email
import smtplib
import socket
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from test_relay import headers_of, history, http, only_id, relay_yaml, send
from upstream import USER, UpstreamServer

from helpers import make_server, wait_until
from mailpit_py.relay import send as relay_send
from mailpit_py.server import Server

UTF8_MESSAGE = (
    "From: Jörg <jörg@app.test>\r\n"
    "To: Zoë <zoë@example.test>, bob@example.test\r\n"
    "Subject: Grüße\r\n"
    "\r\n"
    "Hallo, schöne Grüße.\r\n"
).encode()


def relaying(**settings: Any) -> Server:
    """A server with quick retries, to use as a context manager inside the upstream's (so it
    stops first: its retries never wait on a session the stopped upstream left open)."""
    return make_server(smtp_relay_retry_delay=0.05, **settings)


def plain_yaml(tmp_path: Path, port: int, **extra: Any) -> str:
    """A relay file for an upstream without STARTTLS or AUTH."""
    return relay_yaml(tmp_path, port, starttls=False, auth="none", password=None, **extra)


def send_utf8(mp: Server, rcpts: list[str]) -> None:
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.sendmail("app@app.test", rcpts, UTF8_MESSAGE, mail_options=["SMTPUTF8"])


def final_attempt(mp: Server, uid: str) -> dict[str, Any]:
    item = wait_until(
        lambda: [q for q in history(mp, uid)["Queue"] if q["State"] != "pending"],
        what="the copy's final state",
    )[0]
    attempts = [a for a in history(mp, uid)["Attempts"] if a["Kind"] != "dsn"]
    return {"State": item["State"], **attempts[-1]}


# -- SMTPUTF8 and internationalized addresses --------------------------------------------------


def test_an_address_needing_smtputf8_is_refused_for_good_by_an_upstream_without_it(
    tmp_path: Path,
) -> None:
    with (
        UpstreamServer(starttls=False, auth=False) as up,
        relaying(smtp_relay_config=plain_yaml(tmp_path, up.port), smtp_relay_all=True) as mp,
    ):
        send_utf8(mp, ["zoë@example.test", "bob@example.test", "ann@bücher.test"])
        uid = only_id(mp)
        attempt = final_attempt(mp, uid)
        # The ASCII recipient and the internationalized domain (as its A-label) got it; the
        # non-ASCII local part could not go without SMTPUTF8, so it was never sent at all.
        (got,) = up.received
        assert got.rcpts == ["bob@example.test", "ann@xn--bcher-kva.test"]
        assert got.mail_options is not None and "SMTPUTF8" not in got.mail_options
        assert "Grüße".encode() in got.data  # 8-bit text as it is, not re-encoded
        assert (attempt["State"], attempt["Outcome"]) == ("failed", "partial")
        assert (
            f"<zoë@example.test> 553 5.6.7 not sent: <zoë@example.test> needs SMTPUTF8 "
            f"(RFC 6531), which 127.0.0.1:{up.port} does not offer"
        ) in attempt["Reply"]
        # A refusal for good: the sender gets a bounce naming the recipient, no retry.
        bounce = wait_until(
            lambda: [m for m in mp.mailbox.list_messages() if m["ID"] != uid], what="the bounce"
        )[0]
        report = email.message_from_bytes(mp.mailbox.raw(bounce["ID"]))
        status, returned = report.get_payload()[1:]
        # RFC 6533: a UTF-8 address is of type utf-8, in the global (8-bit) report types.
        assert status.get_content_type() == "message/global-delivery-status"
        text = status.as_bytes().decode()
        assert "Final-Recipient: utf-8; zoë@example.test" in text
        assert "Status: 5.6.7" in text
        assert returned.get_content_type() == "message/global-headers"


def test_a_non_ascii_sender_to_an_upstream_without_smtputf8_fails_clearly(
    tmp_path: Path,
) -> None:
    with (
        UpstreamServer(starttls=False, auth=False) as up,
        relaying(smtp_relay_config=plain_yaml(tmp_path, up.port)) as mp,
    ):
        with smtplib.SMTP(*mp.smtp_address) as client:
            client.sendmail("jörg@app.test", ["bob@example.test"], UTF8_MESSAGE, ["SMTPUTF8"])
        uid = only_id(mp)
        status, text = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": ["t@ok.test"]})
        assert status == 502
        assert "<jörg@app.test> needs SMTPUTF8" in text
        assert up.received == []


def test_an_upstream_with_smtputf8_gets_the_addresses_and_headers_as_they_are(
    tmp_path: Path,
) -> None:
    with (
        UpstreamServer(starttls=False, auth=False, smtputf8=True) as up,
        relaying(smtp_relay_config=plain_yaml(tmp_path, up.port), smtp_relay_all=True) as mp,
    ):
        send_utf8(mp, ["zoë@example.test", "ann@bücher.test"])
        got = wait_until(lambda: up.received, what="the relayed copy")[0]
        assert got.rcpts == ["zoë@example.test", "ann@bücher.test"]
        assert got.mail_options is not None and "SMTPUTF8" in got.mail_options
        # ASCII addresses, UTF-8 header fields (RFC 6532): SMTPUTF8 is asked for too.
        send(mp, ["bob@example.test"], UTF8_MESSAGE, sender="app@app.test")
        second = wait_until(lambda: up.received[1:], what="the second copy")[0]
        assert second.mail_options is not None and "SMTPUTF8" in second.mail_options
        assert "Subject: Grüße\r\n".encode() in second.data


def test_lines_of_dots_and_8bit_text_reach_the_upstream_as_they_were(tmp_path: Path) -> None:
    body = b"first\r\n.\r\n..two dots\r\n.\r\nafter a lone dot: caf\xc3\xa9\r\n"
    data = b"From: a@app.test\r\nTo: bob@example.test\r\nSubject: dots\r\n\r\n" + body
    with (
        UpstreamServer(starttls=False, auth=False) as up,
        relaying(smtp_relay_config=plain_yaml(tmp_path, up.port), smtp_relay_all=True) as mp,
    ):
        send(mp, ["bob@example.test"], data)
        got = wait_until(lambda: up.received, what="the relayed copy")[0]
        # A lone "." in the body would end the data early were it not dot-stuffed.
        assert got.data.endswith(body)
        assert got.mail_options == ["BODY=8BITMIME"]


# -- override-from and return-path on automatic copies -----------------------------------------


def test_auto_relay_applies_override_from_and_return_path_as_the_envelope_does(
    tmp_path: Path,
) -> None:
    keys = {"override-from": "relay@mine.test", "return-path": "bounces@mine.test"}
    with (
        UpstreamServer(starttls=False, auth=False) as up,
        relaying(
            smtp_relay_config=plain_yaml(tmp_path, up.port, **keys), smtp_relay_all=True
        ) as mp,
    ):
        send(mp, ["bob@example.test"])
        got = wait_until(lambda: up.received, what="the relayed copy")[0]
        msg = headers_of(got.data)
        assert got.mail_from == "bounces@mine.test"
        assert msg["From"] == "Alice Sender <relay@mine.test>"  # the name kept, as Mailpit
        assert msg["X-Original-From"] == "alice@app.test"
        assert msg["Return-Path"] == "<bounces@mine.test>"
        # Not a release: its identity stays; its Bcc goes, as from any auto-relayed copy.
        assert msg["Message-ID"] == "<original-id@app.test>"
        assert msg["Bcc"] is None
        assert msg.get_all("From") == ["Alice Sender <relay@mine.test>"]


def test_a_partly_deferred_forward_is_rewritten_once_when_retried(
    tmp_path: Path,
) -> None:
    keys = {"override-from": "fwd@mine.test", "forward-smtp-errors": True}
    to = "first@keep.test,second@keep.test"
    with (
        UpstreamServer(starttls=False, auth=False) as up,
        relaying(smtp_forward_config=plain_yaml(tmp_path, up.port, to=to, **keys)) as mp,
    ):
        up.rcpt_replies["second@keep.test"] = ["451 4.3.0 later"]
        send(mp, ["bob@example.test"])  # 250: the first copy went out in the session
        got = wait_until(lambda: up.received[1:] and up.received, what="the retried copy")
        assert [r.rcpts for r in got] == [["first@keep.test"], ["second@keep.test"]]
        for copy in got:
            msg = headers_of(copy.data)
            assert msg.get_all("X-Original-From") == ["alice@app.test"]
            assert msg["From"] == "Alice Sender <fwd@mine.test>"


# -- TLS ---------------------------------------------------------------------------------------


def test_the_upstreams_certificate_is_verified_unless_allow_insecure(
    tmp_path: Path,
) -> None:
    with UpstreamServer() as up:  # STARTTLS with a self-signed certificate
        cfg = relay_yaml(tmp_path, up.port, **{"allow-insecure": False})
        # Stopped before the upstream: its retries must not wait on a session left open.
        with relaying(smtp_relay_config=cfg, smtp_relay_all=True) as mp:
            send(mp, ["bob@example.test"])
            uid = only_id(mp)
            attempt = wait_until(lambda: history(mp, uid)["Attempts"], what="an attempt")[0]
            assert attempt["Outcome"] == "retry"
            assert "CERTIFICATE_VERIFY_FAILED" in attempt["Reply"]
        assert up.received == []

        with relaying(smtp_relay_config=relay_yaml(tmp_path, up.port, "trust.yaml")) as mp:
            send(mp, ["bob@example.test"])
            uid = only_id(mp)
            status, _ = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": ["t@ok.test"]})
            assert status == 200 and up.received[0].tls


def outward_address() -> str:
    """An address of this machine that is not loopback (the route to a TEST-NET-1 host), or
    a skip when it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP: nothing is sent
        except OSError:
            pytest.skip("no network interface but loopback")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("no network interface but loopback")
    return address


@pytest.mark.parametrize("auth", ["plain", "login"])
def test_a_password_is_never_sent_unencrypted_beyond_this_machine(
    tmp_path: Path, auth: str
) -> None:
    remote = outward_address()
    cfg = {"starttls": False, "auth": auth}
    with UpstreamServer(starttls=False, address=remote) as up:
        with relaying(smtp_relay_config=relay_yaml(tmp_path, up.port, host=remote, **cfg)) as mp:
            send(mp, ["bob@example.test"])
            uid = only_id(mp)
            status, text = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": ["t@ok.test"]})
        assert status == 502
        assert f"AUTH {auth.upper()} would send the password unencrypted to {remote}:" in text
        assert up.received == []
    with UpstreamServer(starttls=False) as local:  # on loopback the password stays here
        with relaying(smtp_relay_config=relay_yaml(tmp_path, local.port, **cfg)) as mp:
            send(mp, ["bob@example.test"])
            uid = only_id(mp)
            status, _ = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": ["t@ok.test"]})
        assert status == 200 and local.received[0].username == USER


# -- a dropped connection, a slow upstream and a restart ---------------------------------------


def drop_in_data(listener: socket.socket, seen: list[bytes]) -> None:
    """Serve one session that goes as far as the message's first lines, then hangs up."""
    conn, _ = listener.accept()
    with conn, conn.makefile("rb") as lines:
        conn.sendall(b"220 drop.test ESMTP\r\n")
        for line in lines:
            seen.append(line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-drop.test\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go on\r\n")
                seen.append(lines.readline())
                return  # gone before the end of the data: no reply to it ever comes
            else:
                conn.sendall(b"250 ok\r\n")


def test_a_connection_dropped_mid_data_is_retried_and_delivered_once(
    tmp_path: Path,
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    seen: list[bytes] = []
    serving = threading.Thread(target=drop_in_data, args=(listener, seen))
    serving.start()
    cfg = plain_yaml(tmp_path, port)
    with relaying(smtp_relay_config=cfg, smtp_relay_all=True, smtp_relay_max_attempts=1000) as mp:
        send(mp, ["bob@example.test"])
        uid = only_id(mp)
        serving.join(timeout=10)
        listener.close()
        assert seen and seen[-1].startswith(b"Received: ")  # the data had begun
        with UpstreamServer(port=port, starttls=False, auth=False) as up:
            got = wait_until(lambda: up.received, timeout=20, what="the retried copy")
            assert got[0].rcpts == ["bob@example.test"]
            attempt = final_attempt(mp, uid)
            assert attempt["State"] == "sent"
            outcomes = [a["Outcome"] for a in history(mp, uid)["Attempts"]]
            assert outcomes[0] == "retry" and outcomes[-1] == "sent"
            assert "SMTPServerDisconnected" in history(mp, uid)["Attempts"][0]["Reply"]
            assert len(up.received) == 1


def test_a_stop_while_a_slow_upstream_answers_does_not_send_the_copy_twice(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "mail.db")
    with UpstreamServer(starttls=False, auth=False) as up:
        up.data_delay = 1.0
        settings = {
            "smtp_relay_config": plain_yaml(tmp_path, up.port),
            "smtp_relay_all": True,
            "database": db,
        }
        first = make_server(**settings).start()
        try:
            send(first, ["bob@example.test"])
            uid = only_id(first)
            assert up.data_started.wait(10)
            # While the upstream thinks, the copy is queued with no attempt yet.
            (item,) = history(first, uid)["Queue"]
            assert (item["State"], item["Attempts"]) == ("pending", 0)
        finally:
            first.stop()  # waits for the attempt in flight to record its outcome
        assert len(up.received) == 1
        with sqlite3.connect(db) as conn:
            states = conn.execute("SELECT state FROM outbox WHERE message_uid = ?", (uid,))
            assert [s for (s,) in states] == ["sent"]

        up.data_delay = 0.0
        with make_server(**settings) as second:
            # Nothing pending: the restarted worker has nothing to send again.
            assert [q["State"] for q in history(second, uid)["Queue"]] == ["sent"]
            assert [a["Outcome"] for a in history(second, uid)["Attempts"]] == ["sent"]
            assert second.mailbox.outbox_due(1e18) == []
        assert len(up.received) == 1


def test_an_upstream_slow_to_answer_the_data_is_waited_for_not_sent_to_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Commands time out fast here; the reply to the end of the data is waited for longer (RFC
    # 5321 section 4.5.3.2.6), as the upstream may be filtering what it will accept.
    monkeypatch.setattr(relay_send, "SMTP_TIMEOUT", 0.3)
    with (
        UpstreamServer(starttls=False, auth=False) as up,
        relaying(smtp_relay_config=plain_yaml(tmp_path, up.port), smtp_relay_all=True) as mp,
    ):
        up.data_delay = 1.0
        send(mp, ["bob@example.test"])
        uid = only_id(mp)
        attempt = final_attempt(mp, uid)
        assert (attempt["State"], attempt["Outcome"]) == ("sent", "sent")
        assert len(history(mp, uid)["Attempts"]) == 1
        assert len(up.received) == 1
