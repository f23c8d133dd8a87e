"""A real Mailpit client (pytest-mailpit's MailpitClient) drives every call it has against
mailpit_py: each answer parses into its models, as it does against Mailpit."""

from __future__ import annotations

import smtplib
import socket

from pytest_mailpit import MailpitClient

from helpers import make_server

RAW = (
    "From: Ann <ann@example.com>\r\nTo: Bob <bob@example.com>\r\nSubject: walk\r\n"
    "Message-ID: <walk@example.com>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n"
    "<p>hello <a href='http://127.0.0.1:{port}/x'>x</a></p>\r\n--b\r\n"
    "Content-Type: text/plain; name=a.txt\r\nContent-Disposition: attachment; filename=a.txt\r\n"
    "\r\nattach\r\n--b--\r\n"
)


def test_every_client_call_parses_mailpit_py_answers() -> None:
    with socket.socket() as closed:  # a port where nothing listens, for the link check
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with make_server(enable_chaos=True, allow_internal_http_requests=True).start() as mp:
        with smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp:
            smtp.sendmail("ann@example.com", ["bob@example.com"], RAW.format(port=port))
        with MailpitClient(mp.http_url) as client:
            assert client.is_ready() and client.info().messages == 1
            assert client.server_time().tzinfo is not None
            listed = client.messages()
            assert [m.subject for m in listed.messages] == ["walk"]
            assert [m.id for m in client.search_all("walk")] == [listed.messages[0].id]
            msg = client.wait_for_message(subject="walk", timeout=5)
            assert msg.sender.address == "ann@example.com" and msg.message_id == "walk@example.com"
            assert client.get_headers(msg.id)["Message-Id"] == ["<walk@example.com>"]
            assert client.get_raw(msg.id).startswith(b"From: Ann")
            assert client.get_attachment(msg.attachments[0]) == b"attach"
            links = client.check_links(msg.id)
            assert links.errors == 1 and links.links[0].status_code == 0
            assert client.check_html(msg.id).tests > 0
            client.mark_read([msg.id], read=False)
            assert client.info().unread == 1
            client.set_tags([msg.id], ["walked"])
            assert client.get_message(msg.id).tags == ("walked",)
            triggers = client.set_chaos(client.chaos())
            assert triggers.sender.error_code == 451
            client.assert_no_message(subject="nothing like it")
            client.delete_search("subject:nothing-like-it")
            assert client.info().messages == 1
            client.delete_messages([msg.id])
            assert client.messages().total == 0
            client.delete_all()
