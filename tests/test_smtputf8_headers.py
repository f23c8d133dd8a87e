"""Raw UTF-8 in headers is no fault when the session used SMTPUTF8 (RFC 6531, RFC 6532)."""

from __future__ import annotations

import smtplib

import pytest

from mailpit_py.models import Envelope
from mailpit_py.parse.message import parse_message
from mailpit_py.server import Server

RAW_UTF8 = (
    "From: J\u00f6ran <j\u00f6ran@ex\u00e4mple.com>\r\n"
    "To: you@example.com\r\n"
    "Subject: Gr\u00fc\u00dfe, \u4f60\u597d\r\n"
    "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
    "Message-ID: <utf8@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHall\u00f6\r\n"
    "--b\r\nContent-Type: text/plain\r\n"
    'Content-Disposition: attachment; filename="r\u00e9sum\u00e9.txt"\r\n\r\nx\r\n--b--\r\n'
).encode()


def send(server: Server, raw: bytes, options: list[str]) -> list[str]:
    with smtplib.SMTP(*server.smtp_address) as client:
        client.sendmail("sender@example.com", ["you@example.com"], raw, mail_options=options)
    stored = server.mailbox.get("latest")
    assert stored.summary["Subject"] == "Gr\u00fc\u00dfe, \u4f60\u597d"
    assert stored.detail["Attachments"][0]["FileName"] == "r\u00e9sum\u00e9.txt"
    return [w for w in stored.detail["Warnings"] if "8-bit" in w]


def test_raw_utf8_headers_warn_only_without_smtputf8(server: Server) -> None:
    assert send(server, RAW_UTF8, ["SMTPUTF8", "BODY=8BITMIME"]) == []
    # The same message in a session without SMTPUTF8: raw UTF-8 is not allowed there.
    warnings = send(server, RAW_UTF8, ["BODY=8BITMIME"])
    assert (
        "From header contains raw 8-bit bytes (not RFC 2047 encoded), decoded as UTF-8" in warnings
    )
    assert any(w.startswith("Subject header contains raw 8-bit") for w in warnings)
    assert any("Content-Disposition" in w for w in warnings)


def test_smtputf8_does_not_excuse_bytes_that_are_not_utf8(server: Server) -> None:
    raw = RAW_UTF8.replace(b"To: you@example.com", b"To: Andr\xe9 <you@example.com>")
    warnings = send(server, raw, ["SMTPUTF8", "BODY=8BITMIME"])
    assert warnings == [
        "To header contains raw 8-bit bytes that are not all UTF-8, decoded as UTF-8 and "
        "windows-1252"
    ]


@pytest.mark.parametrize(("smtputf8", "expected"), [(True, 0), (False, 1)])
def test_parse_takes_the_flag_from_the_envelope(smtputf8: bool, expected: int) -> None:
    envelope = Envelope("sender@example.com", ("you@example.com",), smtputf8=smtputf8)
    parsed = parse_message(RAW_UTF8, envelope)
    assert sum(w.startswith("From header contains raw 8-bit") for w in parsed.warnings) == expected
