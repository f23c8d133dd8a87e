"""mailpit_py.Client against a live server on free ports."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest
from test_api import PNG, plain, with_attachment

from helpers import make_server
from mailpit_py import Client, ClientError
from mailpit_py.client import Attachment, Message
from mailpit_py.server import Server


@pytest.fixture(scope="module")
def mp() -> Iterator[Server]:
    with make_server(max_messages=0) as server:
        yield server


@pytest.fixture
def client(mp: Server) -> Client:
    mp.mailbox.delete_all()
    return Client(mp.http_url)


def smtp_send(mp: Server, raw: bytes, rcpts: list[str] | None = None) -> None:
    with smtplib.SMTP(*mp.smtp_address) as smtp:
        smtp.sendmail("a@example.com", rcpts or ["b@example.com"], raw)


def test_client_is_exported_lazily_from_the_package() -> None:
    import mailpit_py

    assert mailpit_py.Client is Client
    with pytest.raises(AttributeError):
        _ = mailpit_py.Nope  # type: ignore[attr-defined]


def test_get_returns_a_typed_message_with_parts_envelope_and_transcript(
    mp: Server, client: Client
) -> None:
    smtp_send(mp, with_attachment("Report"), ["b@example.com", "hidden@example.com"])
    [summary] = client.messages()
    assert summary.subject == "Report" and summary.attachment_count == 1 and not summary.read

    msg = client.get(summary.id)
    assert isinstance(msg, Message)
    assert msg.subject == "Report" and msg.read
    assert msg.from_.address == "a@example.com"
    assert [a.address for a in msg.to] == ["b@example.com"]
    assert [a.address for a in msg.bcc] == ["hidden@example.com"]
    assert msg.header("subject") == "Report" and msg.headers["Subject"] == ["Report"]
    assert "cid:logo@example" in msg.html
    assert msg.envelope is not None
    assert msg.envelope.mail_from == "a@example.com"
    assert msg.recipients == ("b@example.com", "hidden@example.com")
    assert msg.transcript and msg.transcript[-1].line.startswith("250 ")
    assert any("hidden@example.com" in w for w in msg.warnings)

    [pdf] = msg.attachments
    assert isinstance(pdf, Attachment)
    assert (pdf.filename, pdf.content_type) == ("report.pdf", "application/pdf")
    assert pdf.data == b"%PDF-1.4 fake pdf" == client.part(msg.id, pdf.part_id)
    [logo] = msg.inline
    assert logo.content_id == "logo@example" and logo.data == PNG
    assert client.raw(msg.id) == mp.mailbox.raw(msg.id)
    assert client.get("latest").id == msg.id


def test_list_search_read_state_tags_and_delete(mp: Server, client: Client) -> None:
    for subject in ("alpha", "beta", "gamma"):
        smtp_send(mp, plain(subject))
    assert [m.subject for m in client.messages()] == ["gamma", "beta", "alpha"]
    assert [m.subject for m in client.messages(start=1, limit=1)] == ["beta"]
    assert client.count() == 3
    [beta] = client.search("subject:beta")
    alpha = client.search("alpha")[0]

    client.mark_read([beta.id])
    assert {m.subject: m.read for m in client.messages()} == {
        "alpha": False,
        "beta": True,
        "gamma": False,
    }
    client.mark_read([beta.id], read=False)
    assert not client.search("subject:beta")[0].read

    client.set_tags([alpha.id, beta.id], ["Invoice", "urgent"])
    assert client.tags() == ["Invoice", "urgent"]
    assert {m.subject for m in client.search("tag:urgent")} == {"alpha", "beta"}
    client.set_tags([alpha.id, beta.id], [])
    assert client.tags() == []

    client.delete([alpha.id])
    assert [m.subject for m in client.messages()] == ["gamma", "beta"]
    client.delete_search("subject:gamma")
    assert [m.subject for m in client.messages()] == ["beta"]
    client.delete()
    assert client.messages() == [] and client.count() == 0


def test_send_delivers_through_the_send_api(client: Client) -> None:
    msg_id = client.send(
        from_=("Ann", "ann@example.com"),
        to=["bob@example.com"],
        cc=[("Cat", "cat@example.com")],
        bcc=["dan@example.com"],
        subject="Via API",
        text="plain body",
        html="<b>html body</b>",
        tags=["api"],
        headers={"X-Thing": "1"},
        attachments=[("a.bin", b"\x00hello", "application/octet-stream")],
    )
    msg = client.get(msg_id)
    assert msg.subject == "Via API" and str(msg.from_) == "Ann <ann@example.com>"
    assert "plain body" in msg.text and "<b>html body</b>" in msg.html
    assert msg.tags == ("api",) and msg.header("X-Thing") == "1"
    assert set(msg.recipients) == {"bob@example.com", "cat@example.com", "dan@example.com"}
    assert [(a.filename, a.data) for a in msg.attachments] == [("a.bin", b"\x00hello")]
    assert client.info()["Messages"] == 1


def test_errors_carry_the_status_and_the_servers_message(mp: Server, client: Client) -> None:
    with pytest.raises(ClientError) as err:
        client.get("no-such-id")
    assert err.value.status == 404 and "no-such-id" in err.value.message
    with pytest.raises(ClientError) as err:
        client.send(from_="a@example.com", subject="nobody to send to")
    assert err.value.status == 400 and err.value.message
    assert not err.value.message.startswith("{")  # the JSON {"Error": ...} is unwrapped


def test_an_unreachable_server_is_a_client_error_naming_the_url(mp: Server) -> None:
    # a port that was free a moment ago: bind, read it, close
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Client(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(ClientError) as err:
        client.messages()
    assert err.value.status == 0 and f"127.0.0.1:{port}" in err.value.message


def test_importing_the_package_client_and_plugin_loads_no_server_code() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mailpit_py, mailpit_py.pytest_plugin; mailpit_py.Client; "
        "heavy = [m for m in ('flask', 'aiosmtpd', 'mailpit_py.server') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_release_posts_mailpits_body_with_basic_auth_when_given() -> None:
    import http.server
    import json
    import threading

    seen: list[tuple[str, str, dict, str | None]] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.command, self.path, body, self.headers.get("Authorization")))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        Client(url, auth=("ann", "pw:1")).release("abc/1", ["x@example.com"])
        Client(url).release("id2", ["y@example.com", "z@example.com"])
    finally:
        httpd.shutdown()
        thread.join()
    assert seen == [
        (
            "POST",
            "/api/v1/message/abc%2F1/release",
            {"To": ["x@example.com"]},
            "Basic YW5uOnB3OjE=",
        ),
        ("POST", "/api/v1/message/id2/release", {"To": ["y@example.com", "z@example.com"]}, None),
    ]
