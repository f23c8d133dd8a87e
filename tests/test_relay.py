"""Relay and release against a real upstream SMTP server (STARTTLS and AUTH on): manual release,
auto-relay, forward, recipient rules, header changes, retries, restarts, forward-smtp-errors."""

from __future__ import annotations

import email
import email.utils
import json
import smtplib
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from upstream import PASSWORD, USER, UpstreamServer, free_port

from helpers import make_server, wait_until
from mailpit_py.server import Server

MESSAGE = (
    b"From: Alice Sender <alice@app.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Bcc: secret@hidden.test\r\n"
    b"Subject: relay me\r\n"
    b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <original-id@app.test>\r\n"
    b"\r\n"
    b"Hello through the relay.\r\n"
    b".leading dot line\r\n"
)


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer() as up:
        yield up


def relay_yaml(tmp_path: Path, port: int, name: str = "relay.yaml", **extra: Any) -> str:
    lines = {
        "host": "127.0.0.1",
        "port": port,
        "starttls": True,
        "allow-insecure": True,  # the upstream's certificate is self-signed
        "auth": "plain",
        "username": USER,
        "password": PASSWORD,
        **extra,
    }
    path = tmp_path / name
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in lines.items()))
    return str(path)


@pytest.fixture
def relay_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(**overrides: Any) -> Server:
        mp = make_server(smtp_relay_retry_delay=0.05, **overrides).start()
        started.append(mp)
        return mp

    yield start
    for mp in started:
        mp.stop()


def send(mp: Server, rcpts: list[str], data: bytes = MESSAGE, sender: str = "bounce@app.test"):
    with smtplib.SMTP(*mp.smtp_address) as client:
        return client.sendmail(sender, rcpts, data)


def only_id(mp: Server) -> str:
    return wait_until(
        lambda: mp.mailbox.list_messages() and mp.mailbox.list_messages()[0]["ID"], what="a message"
    )


def http(mp: Server, method: str, path: str, body: Any = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(mp.http_url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def history(mp: Server, uid: str) -> dict[str, Any]:
    status, text = http(mp, "GET", f"api/v1/message/{uid}/relay")
    assert status == 200, text
    return json.loads(text)  # type: ignore[no-any-return]


def headers_of(data: bytes) -> email.message.Message:
    return email.message_from_bytes(data)


def caught(
    start: Callable[..., Server], up: UpstreamServer, tmp: Path, **keys: Any
) -> tuple[Server, str]:
    """A server relaying through `up` (relay file keys as arguments) holding one message."""
    mp = start(smtp_relay_config=relay_yaml(tmp, up.port, **keys))
    send(mp, ["bob@example.test"])
    return mp, only_id(mp)


# -- manual release ----------------------------------------------------------------------------


def test_release_goes_through_starttls_and_auth_with_mailpits_header_changes(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    cfg = relay_yaml(tmp_path, upstream.port, **{"return-path": "bounces@relay.test"})
    mp = relay_server(smtp_relay_config=cfg)
    send(mp, ["bob@example.test", "secret@hidden.test"])
    uid = only_id(mp)

    status, text = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": ["tester@ok.test"]})

    assert (status, text) == (200, "ok")
    (got,) = upstream.received
    assert got.rcpts == ["tester@ok.test"]
    assert got.mail_from == "bounces@relay.test"  # return-path is the envelope sender
    assert got.tls and got.username == USER
    msg = headers_of(got.data)
    assert msg["Bcc"] is None
    assert msg["Return-Path"] == "<bounces@relay.test>"
    assert msg["Message-ID"] != "<original-id@app.test>"
    assert msg["Date"] != "Mon, 01 Jan 2024 10:00:00 +0000"
    assert msg["Subject"] == "relay me"
    assert b"\r\n.leading dot line\r\n" in got.data  # dot-stuffing undone by the upstream
    (attempt,) = history(mp, uid)["Attempts"]
    assert attempt["Kind"] == "release"
    assert attempt["To"] == ["tester@ok.test"]
    assert attempt["Server"] == f"127.0.0.1:{upstream.port}"
    assert attempt["Reply"] == "250 2.0.0 Ok: upstream got it"
    assert attempt["Outcome"] == "sent"
    assert mp.mailbox.telemetry.counter("relay_attempts") == {("sent",): 1}
    # The stored message is untouched.
    assert b"Bcc: secret@hidden.test" in mp.mailbox.raw(uid)


@pytest.mark.parametrize(
    ("auth", "tls"),
    [("login", False), ("cram-md5", False), ("plain", True)],
    ids=["starttls-login", "starttls-cram-md5", "implicit-tls-plain"],
)
def test_release_authenticates_with_each_method_over_starttls_or_tls(
    relay_server: Callable[..., Server], tmp_path: Path, auth: str, tls: bool
) -> None:
    with UpstreamServer(starttls=not tls, implicit_tls=tls) as up:
        keys: dict[str, Any] = {"auth": auth, "starttls": not tls, "tls": tls}
        if auth == "cram-md5":
            keys |= {"secret": PASSWORD, "password": None}
        mp, uid = caught(relay_server, up, tmp_path, **keys)
        status, text = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": ["t@ok.test"]})
        assert (status, text) == (200, "ok")
        (got,) = up.received
        assert got.username == USER and got.tls


def test_a_wrong_password_is_a_final_failure_naming_the_upstreams_reply(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    mp, uid = caught(relay_server, upstream, tmp_path, password="wrong")
    status, text = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": ["t@ok.test"]})
    assert status == 502 and "535" in text
    assert upstream.received == []


def test_release_keeps_ids_with_preserve_message_ids_and_overrides_from(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    keys = {"preserve-message-ids": True, "override-from": "relay@mine.test"}
    mp, uid = caught(relay_server, upstream, tmp_path, **keys)
    assert http(mp, "POST", f"api/v1/message/{uid}/release", {"To": ["t@ok.test"]})[0] == 200
    (got,) = upstream.received
    msg = headers_of(got.data)
    assert msg["Message-ID"] == "<original-id@app.test>"
    # As Mailpit: the Date is the release's all the same, X-Original-From the bare address.
    assert msg["Date"] != "Mon, 01 Jan 2024 10:00:00 +0000"
    assert email.utils.parsedate_to_datetime(msg["Date"]).year >= 2025
    assert msg["From"] == "Alice Sender <relay@mine.test>"
    assert msg["X-Original-From"] == "alice@app.test"
    assert got.mail_from == "relay@mine.test"


def test_release_refuses_blocked_and_unlisted_recipients_naming_them(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    keys = {"allowed-recipients": r"@ok\.test$", "blocked-recipients": r"^boss@"}
    mp, uid = caught(relay_server, upstream, tmp_path, **keys)

    status, text = http(
        mp, "POST", f"api/v1/message/{uid}/release", {"To": ["a@ok.test", "customer@real.test"]}
    )
    assert status == 400
    assert "customer@real.test" in text and "allowed-recipients" in text

    status, text = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": ["boss@ok.test"]})
    assert status == 400
    assert "boss@ok.test" in text and "blocked" in text

    assert upstream.received == []
    assert history(mp, uid) == {"ID": uid, "Queue": [], "Attempts": []}


def test_release_errors_without_relay_bad_body_or_message(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    plain = relay_server()
    send(plain, ["bob@example.test"])
    uid = only_id(plain)
    status, text = http(plain, "POST", f"api/v1/message/{uid}/release", {"To": ["a@b.test"]})
    assert status == 400 and "--smtp-relay-config" in text

    mp = relay_server(smtp_relay_config=relay_yaml(tmp_path, upstream.port))
    assert http(mp, "POST", "api/v1/message/nope/release", {"To": ["a@b.test"]})[0] == 404
    send(mp, ["bob@example.test"])
    uid = only_id(mp)
    status, text = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": []})
    assert status == 400 and "To" in text
    status, text = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": ["not an address"]})
    assert status == 400 and "not an address" in text


def test_webui_reports_the_relay(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    cfg = relay_yaml(tmp_path, upstream.port, **{"blocked-recipients": "@real"})
    mp = relay_server(smtp_relay_config=cfg)
    relay = json.loads(http(mp, "GET", "api/v1/webui")[1])["MessageRelay"]
    assert relay["Enabled"] is True
    assert relay["SMTPServer"] == f"127.0.0.1:{upstream.port}"
    assert relay["BlockedRecipients"] == "@real"


# -- automatic relay and forward ---------------------------------------------------------------


def test_relay_all_sends_every_message_unchanged_except_to_blocked_recipients(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    cfg = relay_yaml(tmp_path, upstream.port, **{"blocked-recipients": r"@hidden\.test$"})
    mp = relay_server(smtp_relay_config=cfg, smtp_relay_all=True)
    send(mp, ["bob@example.test", "secret@hidden.test"])
    uid = only_id(mp)
    got = wait_until(lambda: upstream.received, what="the relayed copy")[0]
    assert got.rcpts == ["bob@example.test"]
    assert got.mail_from == "bounce@app.test"
    # Unchanged below the relay's own Received field (its hop, RFC 5321 section 4.4) but for
    # the Bcc field, which the mail server an app submits to drops: bob must not read it.
    trace, _, rest = got.data.partition(b"\r\n\t")
    assert trace.startswith(b"Received: from ")
    body = rest.split(b"\r\n", 2)[2]
    stored = mp.mailbox.raw(uid).replace(b"Bcc: secret@hidden.test\r\n", b"")
    assert body.replace(b"\r\n", b"\n") == stored.replace(b"\r\n", b"\n")
    assert b"secret@hidden.test" not in got.data
    attempt = wait_until(lambda: history(mp, uid)["Attempts"], what="the attempt")[0]
    assert attempt["Kind"] == "relay" and attempt["Outcome"] == "sent"


def test_relay_matching_sends_only_to_matching_recipients(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    mp = relay_server(
        smtp_relay_config=relay_yaml(tmp_path, upstream.port),
        smtp_relay_matching=r"@example\.test$",
    )
    send(mp, ["a@other.test"])
    send(mp, ["bob@example.test", "carol@other.test"])
    got = wait_until(lambda: upstream.received, what="the relayed copy")
    assert [r.rcpts for r in got] == [["bob@example.test"]]
    ids = [m["ID"] for m in mp.mailbox.list_messages()]
    assert history(mp, ids[1]) == {"ID": ids[1], "Queue": [], "Attempts": []}


def test_forward_copies_every_message_to_the_fixed_addresses(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    cfg = relay_yaml(
        tmp_path,
        upstream.port,
        "forward.yaml",
        to="archive@keep.test, Second <second@keep.test>",
        **{"override-from": "fwd@mine.test"},
    )
    mp = relay_server(smtp_forward_config=cfg)
    send(mp, ["bob@example.test"])
    uid = only_id(mp)
    got = wait_until(lambda: upstream.received, what="the forwarded copy")[0]
    assert got.rcpts == ["archive@keep.test", "second@keep.test"]
    assert headers_of(got.data)["From"] == "Alice Sender <fwd@mine.test>"
    assert headers_of(got.data)["Bcc"] == "secret@hidden.test"  # a forward is a full copy
    attempt = wait_until(lambda: history(mp, uid)["Attempts"], what="the attempt")[0]
    assert attempt["Kind"] == "forward" and attempt["Outcome"] == "sent"


def test_a_hung_upstream_never_holds_up_the_smtp_session(
    relay_server: Callable[..., Server], tmp_path: Path
) -> None:
    # An upstream that accepts connections and never says a word.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        mp = relay_server(
            smtp_relay_config=relay_yaml(tmp_path, silent.getsockname()[1]), smtp_relay_all=True
        )
        assert send(mp, ["bob@example.test"]) == {}  # the 250 came while the relay waits
        uid = only_id(mp)
        conn, _ = silent.accept()  # the worker is connected, waiting for a greeting
        (item,) = history(mp, uid)["Queue"]
        assert (item["State"], item["Attempts"]) == ("pending", 0)
        conn.close()  # let the attempt end (as a dropped connection)
        attempt = wait_until(lambda: history(mp, uid)["Attempts"], what="the attempt")[0]
        assert attempt["Outcome"] == "retry"


# -- retries -----------------------------------------------------------------------------------


def test_a_451_is_retried_after_a_backoff_and_then_delivered(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    upstream.rcpt_replies["bob@example.test"] = ["451 4.3.0 busy, try later"]
    mp = relay_server(smtp_relay_config=relay_yaml(tmp_path, upstream.port), smtp_relay_all=True)
    send(mp, ["bob@example.test"])
    uid = only_id(mp)
    wait_until(lambda: upstream.received, what="the retried delivery")
    attempts = wait_until(
        lambda: len(history(mp, uid)["Attempts"]) == 2 and history(mp, uid)["Attempts"],
        what="two attempts",
    )
    assert [a["Outcome"] for a in attempts] == ["retry", "sent"]
    assert attempts[0]["Reply"] == "451 4.3.0 busy, try later"
    (item,) = history(mp, uid)["Queue"]
    assert item["State"] == "sent" and item["Attempts"] == 2
    assert mp.mailbox.telemetry.counter("relay_attempts") == {("retry",): 1, ("sent",): 1}


def test_only_the_temporarily_refused_recipient_is_retried(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    upstream.rcpt_replies["carol@example.test"] = ["452 4.2.2 mailbox full"]
    mp = relay_server(smtp_relay_config=relay_yaml(tmp_path, upstream.port), smtp_relay_all=True)
    send(mp, ["bob@example.test", "carol@example.test"])
    uid = only_id(mp)
    got = wait_until(lambda: len(upstream.received) == 2 and upstream.received, what="2 copies")
    assert [r.rcpts for r in got] == [["bob@example.test"], ["carol@example.test"]]
    attempts = wait_until(
        lambda: len(history(mp, uid)["Attempts"]) == 2 and history(mp, uid)["Attempts"],
        what="two attempts",
    )
    assert [(a["To"], a["Outcome"]) for a in attempts] == [
        (["bob@example.test", "carol@example.test"], "partial"),
        (["carol@example.test"], "sent"),
    ]
    assert "<carol@example.test> 452 4.2.2 mailbox full" in attempts[0]["Reply"]


def test_a_550_is_final_and_not_retried(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    upstream.rcpt_replies["bob@example.test"] = ["550 5.1.1 no such user"] * 3
    mp = relay_server(smtp_relay_config=relay_yaml(tmp_path, upstream.port), smtp_relay_all=True)
    send(mp, ["bob@example.test"])
    uid = only_id(mp)
    item = wait_until(
        lambda: [q for q in history(mp, uid)["Queue"] if q["State"] != "pending"],
        what="a final state",
    )[0]
    assert item["State"] == "failed" and item["Attempts"] == 1
    # One relay attempt; the bounce it caused is delivered into the catcher (test_relay_mta.py).
    (attempt,) = [a for a in history(mp, uid)["Attempts"] if a["Kind"] == "relay"]
    assert attempt["Outcome"] == "failed"
    assert attempt["Reply"] == "550 5.1.1 no such user"
    assert upstream.received == []
    assert len(upstream.rcpt_replies["bob@example.test"]) == 2  # asked once only


def test_release_answers_502_with_the_upstreams_refusal(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    upstream.data_replies.append("554 5.7.1 message refused")
    mp, uid = caught(relay_server, upstream, tmp_path)
    status, text = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": ["t@ok.test"]})
    assert status == 502
    assert "554 5.7.1 message refused" in text


def test_a_connection_error_is_recorded_and_the_outbox_survives_a_restart(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    port = free_port()  # the upstream is down for now
    db = str(tmp_path / "mail.db")
    cfg = relay_yaml(tmp_path, port)
    settings = {
        "smtp_relay_config": cfg,
        "smtp_relay_all": True,
        "database": db,
        "smtp_relay_retry_delay": 0.05,
        "smtp_relay_max_attempts": 1000,
    }
    first = make_server(**settings).start()
    try:
        send(first, ["bob@example.test"])
        uid = only_id(first)
        attempt = wait_until(lambda: history(first, uid)["Attempts"], what="an attempt")[0]
        assert attempt["Outcome"] == "retry"
        assert "ConnectionRefusedError" in attempt["Reply"]
    finally:
        first.stop()
    assert [q["State"] for q in json.loads(json.dumps(_queue(db, uid)))] == ["pending"]

    with UpstreamServer(port=port) as revived, make_server(**settings) as second:
        got = wait_until(lambda: revived.received, what="delivery after the restart")
        assert got[0].rcpts == ["bob@example.test"]
        attempts = wait_until(
            lambda: (
                [a["Outcome"] for a in history(second, uid)["Attempts"]][-1:] == ["sent"]
                and history(second, uid)["Attempts"]
            ),
            what="the sent attempt",
        )
        assert attempts[0]["Outcome"] == "retry"
        assert history(second, uid)["Queue"][0]["State"] == "sent"


def _queue(db: str, uid: str) -> list[dict[str, Any]]:
    """The outbox as a fresh process sees it (read straight from the file)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT state FROM outbox WHERE message_uid = ?", (uid,)).fetchall()
    return [{"State": r["state"]} for r in rows]


# -- forward-smtp-errors -----------------------------------------------------------------------


def test_forward_smtp_errors_relays_inside_the_session_and_returns_the_refusal(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    cfg = relay_yaml(tmp_path, upstream.port, **{"forward-smtp-errors": True})
    mp = relay_server(smtp_relay_config=cfg, smtp_relay_all=True)

    send(mp, ["bob@example.test"])
    # In the session: the upstream had it before our 250.
    assert [r.rcpts for r in upstream.received] == [["bob@example.test"]]

    upstream.rcpt_replies["carol@example.test"] = ["550 5.1.1 carol is unknown upstream"]
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mp, ["carol@example.test"])
    assert refused.value.smtp_code == 550
    assert b"carol is unknown upstream" in refused.value.smtp_error
    assert len(upstream.received) == 1
    newest = mp.mailbox.list_messages()[0]["ID"]
    assert history(mp, newest)["Attempts"][0]["Outcome"] == "failed"
    assert history(mp, newest)["Queue"] == []  # the client was told: nothing to retry here


def test_forward_smtp_errors_answers_451_when_the_upstream_is_down(
    relay_server: Callable[..., Server], tmp_path: Path
) -> None:
    cfg = relay_yaml(tmp_path, free_port(), **{"forward-smtp-errors": True})
    mp = relay_server(smtp_relay_config=cfg, smtp_relay_all=True)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(mp, ["bob@example.test"])
    assert refused.value.smtp_code == 451
    assert b"relay to 127.0.0.1:" in refused.value.smtp_error
    assert len(mp.mailbox.list_messages()) == 1  # kept all the same


def _relay_rows(mp: Server, uid: str) -> tuple[int, int]:
    with mp.mailbox.store.reading() as conn:
        return (
            conn.execute("SELECT count(*) FROM outbox WHERE message_uid = ?", (uid,)).fetchone()[0],
            conn.execute(
                "SELECT count(*) FROM relay_attempts WHERE message_uid = ?", (uid,)
            ).fetchone()[0],
        )


def test_a_deleted_messages_relay_history_goes_with_it_unless_still_pending(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    cfg = relay_yaml(tmp_path, upstream.port)
    mp = relay_server(smtp_relay_config=cfg, smtp_relay_all=True)
    for _ in range(3):
        send(mp, ["bob@example.test"])
    uids = [
        m["ID"]
        for m in wait_until(lambda: mp.mailbox.list_messages()[2:] and mp.mailbox.list_messages())
    ]
    for uid in uids:
        wait_until(lambda uid=uid: _relay_rows(mp, uid) == (1, 1), what="the sent attempt")
    mp.mailbox.delete([uids[0]])
    assert _relay_rows(mp, uids[0]) == (0, 0)
    assert _relay_rows(mp, uids[1]) == (1, 1)
    # An item still waiting for its upstream stays with its attempts (it has its own copy).
    mp.mailbox.store.write(
        lambda s: s._wconn.execute(
            "UPDATE outbox SET state = 'pending', next_attempt = 1e12 WHERE message_uid = ?",
            (uids[2],),
        )
    )
    mp.mailbox.delete_all()
    assert _relay_rows(mp, uids[1]) == (0, 0)
    assert _relay_rows(mp, uids[2]) == (1, 1)
