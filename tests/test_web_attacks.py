"""Attacks on the web server from the network: bodies and queries built to crash or starve it.

Each test sends the attack over a real connection to a real server on a free port and checks
that the answer is a clear client error (never a 500) and that the server keeps answering
others meanwhile.
"""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from test_web_security import call as raw_call

from helpers import make_server, wait_until
from mailpit_py.server import Server
from mailpit_py.store.search import MAX_TERMS

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def mp() -> Iterator[Server]:
    with make_server(max_messages=0) as server:
        yield server


def call(
    mp: Server, method: str, path: str, body: bytes | None = None, headers: dict[str, str] = JSON
) -> tuple[int, bytes]:
    """One request as a browser on this machine would address it (Host: localhost)."""
    status, _, answer = raw_call(mp, method, path, body, {"Host": "localhost", **headers})
    return status, answer


def deliver(mp: Server, subject: str) -> str:
    before = mp.mailbox.counts()[0]
    with smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp:
        smtp.sendmail("a@example.com", ["b@example.com"], f"Subject: {subject}\r\n\r\nhi\r\n")
    wait_until(lambda: mp.mailbox.counts()[0] > before, what="the message stored")
    return str(mp.mailbox.list_messages()[0]["ID"])


# -- JSON nested past the parser's recursion limit ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/send"),
        ("PUT", "/api/v1/tags"),
        ("PUT", "/api/v1/messages"),
        ("PUT", "/api/v1/tags/x"),
        ("POST", "/api/v1/mailboxes"),
    ],
)
def test_json_nested_thousands_deep_is_a_400_naming_the_nesting(
    mp: Server, method: str, path: str
) -> None:
    # 100,000 brackets are 200 KB, far under the body limit, and used to reach Python's
    # recursion limit inside json.loads: an internal error instead of an answer.
    deep = b'{"IDs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, body = call(mp, method, path, deep, JSON)
    assert status == 400, body
    assert b"nested" in body
    # and the server still answers an ordinary request
    assert call(mp, "GET", "/api/v1/messages")[0] == 200


def test_json_nested_a_little_still_reaches_the_handler(mp: Server) -> None:
    uid = deliver(mp, "tag me")
    body = json.dumps({"IDs": [uid], "Tags": ["one"], "Extra": [[[[{"a": [1]}]]]]}).encode()
    assert call(mp, "PUT", "/api/v1/tags", body, JSON)[0] == 200
    assert mp.mailbox.get(uid).summary["Tags"] == ["one"]


# -- searches with thousands of terms -----------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_search_of_thousands_of_terms_is_a_400_saying_the_limit(mp: Server, method: str) -> None:
    deliver(mp, "kept")
    # Each term is a condition of one SQL statement; about a thousand of them passed SQLite's
    # expression depth limit and answered an internal error.
    query = " ".join(f"word{i}" for i in range(6000))
    status, body = call(mp, method, "/api/v1/search?query=" + quote(query))
    assert status == 400, body
    assert f"at most {MAX_TERMS} terms".encode() in body
    assert mp.mailbox.counts()[0] == 1


def test_a_search_as_long_as_allowed_runs(mp: Server) -> None:
    deliver(mp, "needle")
    kinds = ("subject:needle", "-from:nobody{i}", "!w{i}x", "-header:X-Y{i}", "larger:1")
    query = " ".join(kinds[i % len(kinds)].format(i=i) for i in range(MAX_TERMS))
    status, body = call(mp, "GET", "/api/v1/search?before=2999-01-01&query=" + quote(query))
    assert status == 200, body
    assert json.loads(body)["messages_count"] == 1  # every term holds for the one message
    status, body = call(mp, "PUT", "/api/v1/messages", json.dumps({"Search": query}).encode(), JSON)
    assert status == 200, body


def test_a_body_over_twice_the_message_size_limit_is_a_413() -> None:
    with make_server(max_messages=0, max_message_size=10_000) as server:
        big = json.dumps({"Subject": "x", "Text": "a" * 25_000}).encode()
        status, body = call(server, "POST", "/api/v1/send", big, JSON)
        assert status == 413, body
        assert server.mailbox.counts()[0] == 0
        small = json.dumps(
            {"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}], "Subject": "x"}
        ).encode()
        small_status, small_body = call(server, "POST", "/api/v1/send", small, JSON)
        assert small_status == 200, small_body
