"""Big text and HTML bodies: ingest holds a bounded number of copies; nothing is lost."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import smtplib
import tracemalloc
import urllib.parse
import urllib.request

import pytest

from helpers import make_server
from mailpit_py.mailbox.record import SEARCH_BODY_CHARS, build_record
from mailpit_py.models import Envelope
from mailpit_py.parse import bodies as parse
from mailpit_py.parse.message import parse_message
from mailpit_py.store import detailcodec

MB = 1000 * 1000
NEEDLE = "zanzibarquokka"  # near the start of every body
LATE = "lastwordquokka"  # at the very end: past what search indexes
KINDS = ("text/plain quoted-printable", "text/plain base64", "text/html quoted-printable")


def big_message(kind: str, size: int) -> bytes:
    """A message of one text part of about `size` bytes of UTF-8 text (a euro sign makes its
    str two bytes a character, the costlier case)."""
    line = "The quick brown fox jumps over the lazy dog; caf\u00e9 = 2 \u20ac.\n"
    body = f"{NEEDLE} opens the text.\n" + line * (size // len(line)) + LATE + "\n"
    data = body.encode()
    ctype = kind.split()[0]
    if ctype == "text/html":
        data = b"<html><body><p>" + data.replace(b"\n", b"</p>\n<p>") + b"</p></body></html>\n"
    if kind.endswith("base64"):
        cte, encoded = "base64", base64.encodebytes(data)
    else:
        cte, encoded = "quoted-printable", binascii.b2a_qp(data)
    head = (
        "From: big@example.com\nTo: you@example.com\nSubject: big body\n"
        "Date: Mon, 01 Jan 2024 00:00:00 +0000\nMessage-ID: <big-body@example.com>\n"
        f"MIME-Version: 1.0\nContent-Type: {ctype}; charset=utf-8\n"
        f"Content-Transfer-Encoding: {cte}\n\n"
    ).encode()
    return (head + encoded).replace(b"\n", b"\r\n")


@pytest.mark.parametrize("kind", KINDS)
def test_a_20_mb_body_costs_under_4x_its_size_to_parse_and_record(kind: str) -> None:
    raw = big_message(kind, 20 * MB)
    envelope = Envelope("big@example.com", ("you@example.com",))
    tracemalloc.start()
    try:
        parsed = parse_message(raw, envelope)
        rec = build_record(
            "x",
            parsed,
            raw,
            created=0.0,
            username="",
            session_uid="",
            transcript=(),
            envelope=envelope,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Memory, not time: tracemalloc counts every Python allocation made after the raw message
    # existed. The straightforward route cost 4.2x to 14x (str.lower() of the HTML alone 12x).
    assert peak < 4 * len(raw), f"peak {peak / len(raw):.2f}x the message's size"
    body = parsed.html if kind.startswith("text/html") else parsed.text
    assert body.startswith("<html>" if kind.startswith("text/html") else NEEDLE)
    assert body.rstrip().endswith("</html>" if kind.startswith("text/html") else LATE)
    assert "\r" not in body[:1000] and "\r" not in body[-1000:]
    # The stored detail holds the whole body; search gets a bounded prefix of it.
    detail = detailcodec.decode(rec.detail)
    assert detail["HTML" if kind.startswith("text/html") else "Text"] == body
    assert NEEDLE in rec.fts[2] and len(rec.fts[2]) <= SEARCH_BODY_CHARS
    assert parsed.snippet.startswith(NEEDLE)


@pytest.mark.parametrize(
    ("charset", "cte", "body"),
    [
        # An encoded CR just before a soft line break, so CRLF may fall across two chunks; a
        # byte order mark in every line (only the first is dropped).
        ("utf-8", "quoted-printable", b"=EF=BB=BFone=0D=\r\n=0Atwo =E2=82=AC\r\n" + b"x" * 900),
        ("utf-8", "8bit", "caf\u00e9 \u20ac\r\n".encode() * 50),
        ("iso-8859-1", "base64", base64.encodebytes(b"caf\xe9\r\nline\r\n" * 50)),
        # CR LF are two bytes each in UTF-16: replaced on the str, not the bytes.
        ("utf-16", "base64", base64.encodebytes("Zeile\r\nzwei\r\n".encode("utf-16") * 50)),
        ("utf-8", "quoted-printable", b"bad =ZZ escape\r\n" * 60),
    ],
)
def test_a_big_body_decodes_as_a_small_one_does(
    charset: str, cte: str, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = (
        f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    ).encode() + (body + b"\r\n") * (2 * 1024 * 1024 // len(body))
    envelope = Envelope("a@example.com", ("b@example.com",))
    monkeypatch.setattr(parse, "BODY_CHUNK", 1)  # every line a chunk: all boundaries met
    chunked = parse_message(raw, envelope)
    monkeypatch.setattr(parse, "BIG_BODY", 10**9)  # the whole-body route, as reference
    whole = parse_message(raw, envelope)
    assert chunked.text == whole.text
    assert chunked.warnings == whole.warnings
    assert "\r\n" not in chunked.text


def test_cid_references_in_big_non_ascii_html_still_make_parts_inline() -> None:
    html = "<p>caf\u00e9 au lait</p>\n" * 200000 + '<img src="CID:Logo@Example">'
    raw = (
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"{html}\r\n--b\r\nContent-Type: image/png\r\nContent-ID: <logo@example>\r\n\r\n"
        "png\r\n--b\r\nContent-Type: image/png\r\nContent-ID: <other@example>\r\n\r\npng\r\n"
        "--b--\r\n"
    ).encode()
    tracemalloc.start()
    try:
        parsed = parse_message(raw, Envelope("a@example.com", ("b@example.com",)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Lowercasing the whole HTML to look for "cid:" took 12 bytes a character while it ran.
    assert peak < 4 * len(raw), f"peak {peak / len(raw):.2f}x the message's size"
    assert [p.content_id for p in parsed.inline] == ["logo@example"]
    assert [p.content_id for p in parsed.attachments] == ["other@example"]


@pytest.mark.parametrize("kind", [KINDS[0], KINDS[2]])
def test_a_big_body_over_smtp_is_shown_searchable_and_downloads_byte_exact(kind: str) -> None:
    raw = big_message(kind, 5 * MB)
    with make_server(max_message_size=50 * 1024 * 1024) as mp:
        with smtplib.SMTP(*mp.smtp_address, timeout=60) as client:
            client.sendmail("big@example.com", ["you@example.com"], raw)
        api = mp.http_url + "api/v1/"
        with urllib.request.urlopen(api + "message/latest", timeout=60) as resp:
            message = json.loads(resp.read())
        body = message["HTML"] if kind.startswith("text/html") else message["Text"]
        assert NEEDLE in body[:100] and LATE in body[-100:]
        for word, hits in ((NEEDLE, [message["ID"]]), (LATE, [])):
            query = urllib.parse.quote(word)
            with urllib.request.urlopen(api + f"search?query={query}", timeout=60) as resp:
                assert [m["ID"] for m in json.loads(resp.read())["messages"]] == hits, word
        with urllib.request.urlopen(api + f"message/{message['ID']}/raw", timeout=60) as resp:
            assert hashlib.sha256(resp.read()).digest() == hashlib.sha256(raw).digest()
