"""Mailpit's leniency and shapes in the REST API, against a live server with a real HTTP client."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime

import pytest
from test_api import Http, plain, send

from helpers import make_server
from mailpit_py.server import Server
from mailpit_py.timefmt import rfc3339


@pytest.fixture
def mp() -> Iterator[Server]:
    with make_server(max_messages=0) as server:
        yield server


@pytest.fixture
def http(mp: Server) -> Http:
    return Http(mp.http_url)


# -- query parsing as Mailpit's getStartLimit ----------------------------------------------------


def test_limit_zero_lists_every_message_and_search_counts_without_listing(
    mp: Server, http: Http
) -> None:
    for i in range(55):
        send(mp, plain(f"m{i}"))
    page = http.json("GET", "api/v1/messages?limit=0")
    assert (page["count"], page["messages_count"]) == (55, 55)
    # Mailpit's own API test searches with limit=<expected count>, 0 included
    found = http.json("GET", "api/v1/search?query=m54&limit=0")
    assert (found["count"], found["messages"]) == (0, [])
    assert found["messages_count"] == 1


def test_bad_start_limit_and_tz_fall_back_to_defaults(mp: Server, http: Http) -> None:
    for i in range(3):
        send(mp, plain(f"d{i}"))
    for query in ("limit=lots&start=x", "start=-1&limit=-5", "limit=1.5", "start=", "limit=abc"):
        page = http.json("GET", f"api/v1/messages?{query}")
        assert (page["start"], page["count"]) == (0, 3), query
        found = http.json("GET", f"api/v1/search?query=d1&{query}")
        assert found["messages_count"] == 1, query
    big = http.json("GET", "api/v1/messages?limit=99999999")
    assert big["count"] == 3
    found = http.json("GET", "api/v1/search?query=before:2099-01-01&tz=Not/AZone")
    assert found["messages_count"] == 3
    http.ok("PUT", "api/v1/messages?tz=Mars/Olympus", {"Search": "d1", "Read": True})
    assert http.json("GET", "api/v1/messages")["unread"] == 2


def test_check_flags_read_as_mailpit_reads_them(mp: Server, http: Http) -> None:
    send(mp, plain("links", "see https://example.invalid/"))
    msg_id = http.json("GET", "api/v1/messages")["messages"][0]["ID"]
    code, _, body = http.call("GET", f"api/v1/message/{msg_id}/html-check?refresh=yes")
    assert code in (200, 400), body  # no 400 for the flag itself (plain text has no HTML check)
    assert b"must be true or false" not in body
    code, _, body = http.call("GET", f"api/v1/message/{msg_id}/header-check?refresh=yes")
    assert code == 200, body


def test_delete_messages_with_a_body_that_is_not_json_deletes_everything(
    mp: Server, http: Http
) -> None:
    for s in ("one", "two"):
        send(mp, plain(s))
    code, _, body = http.call("DELETE", "api/v1/messages", raw=b"not json at all")
    assert (code, body) == (200, b"ok")
    assert http.json("GET", "api/v1/messages")["total"] == 0


def test_set_tags_with_no_ids_is_ok(mp: Server, http: Http) -> None:
    http.ok("PUT", "api/v1/tags", {"IDs": [], "Tags": ["x"]})
    http.ok("PUT", "api/v1/tags", {"Tags": ["x"]})
    assert http.json("GET", "api/v1/tags") == []


def test_thumbnail_of_an_unknown_message_is_400(http: Http) -> None:
    code, _, body = http.call("GET", "api/v1/message/nosuchid/part/2/thumb")
    assert code == 400 and b"nosuchid" in body


def test_405_names_the_allowed_methods(http: Http) -> None:
    code, headers, _ = http.call("POST", "api/v1/messages")
    assert code == 405
    allowed = {m.strip() for m in headers["Allow"].split(",")}
    assert {"GET", "PUT", "DELETE"} <= allowed
    code, headers, _ = http.call("PATCH", "api/v1/tags")
    assert code == 405 and "PUT" in headers["Allow"]


def test_sessions_paging_is_lenient_too(http: Http) -> None:
    body = http.json("GET", "api/v1/sessions?limit=zero&start=-3")
    assert body["start"] == 0 and isinstance(json.dumps(body), str)


def test_huge_paging_numbers_are_no_server_error(mp: Server, http: Http) -> None:
    send(mp, plain("one"))
    huge = str(2**63)
    for path in ("api/v1/messages", "api/v1/search?query=one&", "api/v1/sessions"):
        sep = "" if path.endswith("&") else "?"
        for query in (f"start={huge}", f"limit={huge}", f"start={2**62}&limit={2**62}"):
            code, _, body = http.call("GET", f"{path}{sep}{query}")
            assert code == 200, (path, query, body)


# -- shapes --------------------------------------------------------------------------------------


def test_header_names_are_in_gos_canonical_form(mp: Server, http: Http) -> None:
    extra = (
        "MIME-Version: 1.0\r\nDKIM-Signature: v=1; a=rsa-sha256; d=example.com\r\n"
        "x-mailer: tester 1\r\nX-MAILER: tester 2\r\nx-spam_score: 0\r\n"
    )
    send(mp, plain("canon", extra=extra))
    headers = http.json("GET", "api/v1/message/latest/headers")
    assert headers["Message-Id"] == ["<canon@example.com>"]
    assert headers["Mime-Version"] == ["1.0"]
    assert headers["Dkim-Signature"][0].startswith("v=1;")
    assert headers["X-Mailer"] == ["tester 1", "tester 2"]
    assert headers["X-Spam_score"] == ["0"]
    assert "Message-ID" not in headers and "MIME-Version" not in headers


def html_only(subject: str, html: str) -> bytes:
    return (
        f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@example.com>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
    ).encode()


def test_html_only_message_has_a_text_body_read_from_its_html(mp: Server, http: Http) -> None:
    html = "<html><head><style>p{}</style></head><body><p>Hello <b>there</b></p><p>Bye</p></body>"
    send(mp, html_only("htmlonly", html))
    message = http.json("GET", "api/v1/message/latest")
    assert message["Text"] == "Hello there Bye"
    assert message["HTML"].startswith("<html>")
    code, _, body = http.call("GET", f"view/{message['ID']}.txt")
    assert (code, body.decode()) == (200, "Hello there Bye")


def test_snippet_is_mailpits_length_with_its_ellipsis(mp: Server, http: Http) -> None:
    body = " ".join(f"word{i:03d}" for i in range(60))
    send(mp, plain("long", body))
    snippet = http.json("GET", "api/v1/messages")["messages"][0]["Snippet"]
    assert snippet == body[:200] + "..."


# -- latest, embed, before -----------------------------------------------------------------------


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def location(mp: Server, path: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(mp.http_url + path, timeout=30) as resp:
            return resp.status, resp.headers.get("Location", "")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Location", "")


def test_view_latest_redirects_to_the_newest_message_page(mp: Server, http: Http) -> None:
    assert location(mp, "view/latest") == (302, "/")
    send(mp, plain("older", "first"))
    send(mp, plain("newer", "second"))
    ids = {m["Subject"]: m["ID"] for m in http.json("GET", "api/v1/messages")["messages"]}
    assert location(mp, "view/latest") == (302, f"/view/{ids['newer']}")
    assert location(mp, "view/latest?query=subject:older") == (302, f"/view/{ids['older']}")
    assert location(mp, f"view/{ids['older']}") == (302, f"/?m={ids['older']}")
    code, _, body = http.call("GET", "view/latest.txt")
    assert (code, body.strip()) == (200, b"second")
    # following the redirects ends on the UI, opened on the message
    code, _, page = http.call("GET", "view/latest")
    assert code == 200 and b"<html" in page.lower()


def test_view_html_embed_opens_links_apart_and_keeps_the_sandbox(mp: Server, http: Http) -> None:
    html = (
        '<p><a href="https://example.com/a" target="_self">A</a> '
        "<a href='https://example.com/b' rel=opener>B</a> <abbr>x</abbr></p>"
    )
    send(mp, html_only("embed", html))
    code, headers, body = http.call("GET", "view/latest.html?embed=1")
    assert code == 200
    page = body.decode()
    assert page.count('target="_blank" rel="noreferrer noopener"') == 2
    assert "_self" not in page and "opener>" not in page and "<abbr>x</abbr>" in page
    assert "sandbox" in headers["Content-Security-Policy"]
    assert "script-src" not in headers["Content-Security-Policy"]
    plain_page = http.call("GET", "view/latest.html")[2].decode()
    assert 'target="_self"' in plain_page


def test_before_pages_back_from_a_point_in_time(mp: Server, http: Http) -> None:
    send(mp, plain("first"))
    first = http.json("GET", "api/v1/messages")["messages"][0]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # Created has millisecond resolution
        send(mp, plain("second"))
        listed = http.json("GET", "api/v1/messages")["messages"]
        if listed[0]["Created"] != first["Created"]:
            break
    second = listed[0]
    cut = urllib.parse.quote(second["Created"])
    page = http.json("GET", f"api/v1/messages?before={cut}")
    assert [m["ID"] for m in page["messages"]][:1] == [first["ID"]]
    assert second["ID"] not in [m["ID"] for m in page["messages"]]
    assert page["total"] == len(listed)  # Mailpit counts the whole mailbox
    found = http.json("GET", f"api/v1/search?query=subject:second&before={cut}")
    assert second["ID"] not in [m["ID"] for m in found["messages"]]
    ms = int(datetime.fromisoformat(second["Created"]).timestamp() * 1000)
    page = http.json("GET", f"api/v1/messages?before={ms}")
    assert second["ID"] not in [m["ID"] for m in page["messages"]]
    # an unreadable date is ignored, as in Mailpit
    assert len(http.json("GET", "api/v1/messages?before=someday")["messages"]) == len(listed)


def test_html_view_of_a_message_without_html_is_404_as_in_mailpit(mp: Server, http: Http) -> None:
    send(mp, plain("textonly"))
    code, _, body = http.call("GET", "view/latest.html")
    assert (code, body.strip()) == (404, b"This message does not contain a HTML part")
    assert http.call("GET", "view/latest.txt")[0] == 200


def test_marking_by_ids_and_search_at_once_is_refused_as_in_mailpit(mp: Server, http: Http) -> None:
    send(mp, plain("both"))
    msg_id = http.json("GET", "api/v1/messages")["messages"][0]["ID"]
    both = {"IDs": [msg_id], "Search": "x", "Read": True}
    code, _, body = http.call("PUT", "api/v1/messages", both)
    assert code == 400 and b"either IDs or a search query, not both" in body
    assert http.json("GET", "api/v1/messages")["unread"] == 1


def test_deleting_an_unknown_tag_is_mailpits_400(mp: Server, http: Http) -> None:
    send(mp, plain("tagged", extra="X-Tags: kept\r\n"))
    code, _, body = http.call("DELETE", "api/v1/tags/no-such-tag")
    assert (code, body) == (400, b"tag not found: no-such-tag\n")
    code, _, body = http.call("DELETE", "api/v1/tags/Kept")  # a tag's name is matched exactly
    assert (code, body) == (400, b"tag not found: Kept\n")
    http.ok("DELETE", "api/v1/tags/kept")
    assert http.json("GET", "api/v1/tags") == []


@pytest.mark.parametrize("query", ["", "query=", "query=%20%20", "query=%09"])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_an_empty_search_query_is_mailpits_400(
    mp: Server, http: Http, method: str, query: str
) -> None:
    send(mp, plain("kept"))
    code, _, body = http.call(method, f"api/v1/search?{query}")
    assert (code, body) == (400, b"Error: no search query\n")
    assert http.json("GET", "api/v1/messages")["total"] == 1


def test_times_are_written_as_gos_json_writes_mailpits(mp: Server, http: Http) -> None:
    # Go drops a fraction's trailing zeros, and a zero fraction altogether: a client comparing
    # the Date of a message it sent as text gets Mailpit's string.
    send(mp, b"Date: Mon, 01 Jan 2024 10:00:00 +0200\r\nSubject: dated\r\n\r\nhi\r\n")
    listed = http.json("GET", "api/v1/messages")["messages"][0]
    message = http.json("GET", f"api/v1/message/{listed['ID']}")
    assert message["Date"] == "2024-01-01T10:00:00+02:00"
    created = listed["Created"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,2}[1-9])?Z", created), created
    assert abs(datetime.fromisoformat(created).timestamp() - time.time()) < 600
    assert rfc3339(1700000000.5) == "2023-11-14T22:13:20.5Z"
    assert rfc3339(1700000000.0) == "2023-11-14T22:13:20Z"
