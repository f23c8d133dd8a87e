"""The REST API v1 against a live server on free ports, with a real HTTP client."""

from __future__ import annotations

import base64
import json
import os
import re
import smtplib
import urllib.error
import urllib.request
from typing import Any

import pytest

from helpers import REPO, make_server, wait_until
from mailpit_py.server import Server

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class Http:
    """A tiny real HTTP client (urllib) that returns status, headers and body for any code."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, Any, bytes]:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path.lstrip("/"), data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def json(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        code, _, data = self.call(method, path, body)
        assert code == status, (code, data)
        return json.loads(data)

    def ok(self, method: str, path: str, body: Any = None) -> None:
        code, _, data = self.call(method, path, body)
        assert (code, data) == (200, b"ok"), (code, data)


@pytest.fixture
def mp() -> Server:
    with make_server(max_messages=0) as server:
        yield server


@pytest.fixture
def http(mp: Server) -> Http:
    return Http(mp.http_url)


def send(mp: Server, raw: bytes, rcpts: list[str] | None = None, sender: str = "a@example.com"):
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.sendmail(sender, rcpts or ["b@example.com"], raw)


def plain(subject: str, body: str = "Hello there.", extra: str = "") -> bytes:
    return (
        f"From: Ann Example <a@example.com>\r\nTo: Bob <b@example.com>\r\nSubject: {subject}\r\n"
        f"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@example.com>\r\n"
        f"{extra}\r\n{body}\r\n"
    ).encode()


def with_attachment(subject: str) -> bytes:
    pdf = base64.b64encode(b"%PDF-1.4 fake pdf").decode()
    png = base64.b64encode(PNG).decode()
    return (
        f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {subject}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="XX"\r\n\r\n'
        '--XX\r\nContent-Type: multipart/related; boundary="YY"\r\n\r\n'
        "--YY\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        '<p>Logo: <img src="cid:logo@example"></p>\r\n'
        "--YY\r\nContent-Type: image/png\r\nContent-ID: <logo@example>\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{png}\r\n--YY--\r\n"
        '--XX\r\nContent-Type: application/pdf; name="report.pdf"\r\n'
        'Content-Disposition: attachment; filename="report.pdf"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{pdf}\r\n--XX--\r\n"
    ).encode()


def reference_fields(name: str) -> list[str]:
    """Field names listed for `name` in docs/mailpit-compatibility.md (a renamed field fails)."""
    text = (REPO / "docs" / "mailpit-compatibility.md").read_text()
    block = text.split(f"**{name}**:", 1)[1].split("\n\n", 1)[0]
    block = re.sub(r"\{[^}]*\}", "", block)  # nested objects' own fields
    names = [n.strip() for run in re.findall(r"`([^`]+)`", block) for n in run.split(",")]
    fields = [n for n in names if re.fullmatch(r"[A-Za-z]+", n)]
    assert len(fields) >= 6, f"too few fields read for {name}: {fields}"
    return fields


# -- listing -----------------------------------------------------------------------------------


def test_empty_mailbox_lists_empty_arrays_not_null(http: Http) -> None:
    body = http.json("GET", "api/v1/messages")
    assert body == {
        "total": 0,
        "unread": 0,
        "count": 0,
        "messages_count": 0,
        "messages_unread": 0,
        "start": 0,
        "tags": [],
        "messages": [],
    }
    assert http.json("GET", "api/v1/tags") == []


def test_list_pages_newest_first_with_start_and_limit(mp: Server, http: Http) -> None:
    for i in range(7):
        send(mp, plain(f"m{i}"))
    page = http.json("GET", "api/v1/messages?start=2&limit=3")
    assert [m["Subject"] for m in page["messages"]] == ["m4", "m3", "m2"]
    assert (page["total"], page["count"], page["start"], page["messages_count"]) == (7, 3, 2, 7)
    assert page["unread"] == 7


def test_list_and_message_have_every_reference_field(mp: Server, http: Http) -> None:
    send(mp, with_attachment("fields"))
    summary = http.json("GET", "api/v1/messages")["messages"][0]
    for field in reference_fields("MessageSummary"):
        assert field in summary, f"MessageSummary lacks {field}"
    message = http.json("GET", f"api/v1/message/{summary['ID']}")
    for field in reference_fields("Message"):
        assert field in message, f"Message lacks {field}"
    for field in reference_fields("Attachment"):
        assert field in message["Attachments"][0], f"Attachment lacks {field}"
    assert set(message["Attachments"][0]["Checksums"]) == {"MD5", "SHA1", "SHA256"}
    assert set(message["ListUnsubscribe"]) == {"Header", "Links", "Errors", "HeaderPost"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d)", summary["Created"])


def test_bad_paging_parameters_fall_back_to_mailpits_defaults(http: Http) -> None:
    assert http.json("GET", "api/v1/messages?limit=lots")["start"] == 0
    assert http.json("GET", "api/v1/search?query=x&start=-1")["start"] == 0


# -- one message -------------------------------------------------------------------------------


def test_get_message_marks_it_read(mp: Server, http: Http) -> None:
    send(mp, plain("readme"))
    msg_id = http.json("GET", "api/v1/messages")["messages"][0]["ID"]
    assert http.json("GET", "api/v1/messages")["unread"] == 1
    message = http.json("GET", f"api/v1/message/{msg_id}")
    assert message["Subject"] == "readme"
    assert message["Text"].strip() == "Hello there."
    assert http.json("GET", "api/v1/messages")["unread"] == 0


def test_unknown_id_is_404_naming_it(http: Http) -> None:
    for path in ("message/nope", "message/nope/headers", "message/nope/raw", "message/nope/smtp"):
        code, _, body = http.call("GET", f"api/v1/{path}")
        assert code == 404 and b"nope" in body, path
    code, _, body = http.call("GET", "api/v1/message/latest")
    assert code == 404


def test_latest_alias_optionally_narrowed_by_query(mp: Server, http: Http) -> None:
    send(mp, plain("first", "apples"))
    send(mp, plain("second", "pears"))
    assert http.json("GET", "api/v1/message/latest")["Subject"] == "second"
    assert http.json("GET", "api/v1/message/latest?query=apples")["Subject"] == "first"
    code, _, _ = http.call("GET", "api/v1/message/latest?query=bananas")
    assert code == 404


def test_headers_are_name_to_list_of_values(mp: Server, http: Http) -> None:
    send(mp, plain("hdrs", extra="X-Thing: one\r\nX-Thing: two\r\n"))
    headers = http.json("GET", "api/v1/message/latest/headers")
    assert headers["X-Thing"] == ["one", "two"]
    assert headers["Subject"] == ["hdrs"]


def test_raw_is_the_exact_source_and_dl_downloads_it(mp: Server, http: Http) -> None:
    raw = plain("rawsrc")
    send(mp, raw)
    msg_id = http.json("GET", "api/v1/messages")["messages"][0]["ID"]
    code, headers, body = http.call("GET", f"api/v1/message/{msg_id}/raw")
    assert code == 200 and body == raw
    assert headers["Content-Type"].startswith("text/plain")
    code, headers, body = http.call("GET", f"api/v1/message/{msg_id}/raw?dl=1")
    assert headers["Content-Disposition"] == f'attachment; filename="{msg_id}.eml"'


def test_part_returns_decoded_bytes_with_content_type(mp: Server, http: Http) -> None:
    send(mp, with_attachment("parts"))
    message = http.json("GET", "api/v1/message/latest")
    (pdf,) = message["Attachments"]
    (logo,) = message["Inline"]
    assert pdf["FileName"] == "report.pdf" and logo["ContentID"] == "logo@example"
    code, headers, body = http.call("GET", f"api/v1/message/latest/part/{pdf['PartID']}")
    assert code == 200 and body == b"%PDF-1.4 fake pdf"
    assert headers["Content-Type"] == "application/pdf"
    code, headers, body = http.call("GET", f"api/v1/message/latest/part/{logo['PartID']}")
    assert body == PNG and headers["Content-Type"] == "image/png"
    code, _, body = http.call("GET", "api/v1/message/latest/part/9.9")
    assert code == 404 and b"9.9" in body


@pytest.mark.parametrize("database", ["file", ":memory:"])
def test_big_raw_and_parts_are_stored_and_streamed_back_byte_exact(database: str, tmp_path) -> None:
    # Over the store's 1 MB piece size, so raw and part go in and out in pieces.
    blob = os.urandom(2_500_000)
    body = base64.encodebytes(blob).replace(b"\n", b"\r\n").decode()
    raw = (
        "From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        '--B\r\nContent-Type: application/octet-stream; name="blob.bin"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{body}--B--\r\n"
    ).encode()
    path = str(tmp_path / "big.db") if database == "file" else database
    with make_server(max_messages=0, database=path) as server:
        send(server, raw)
        http = Http(server.http_url)
        (part,) = http.json("GET", "api/v1/message/latest")["Attachments"]
        code, headers, data = http.call("GET", f"api/v1/message/latest/part/{part['PartID']}")
        assert code == 200 and data == blob
        assert headers["Content-Length"] == str(len(blob))
        code, headers, data = http.call("GET", "api/v1/message/latest/raw")
        assert code == 200 and data == raw and headers["Content-Length"] == str(len(raw))
        assert server.mailbox is not None and server.mailbox.raw("latest") == raw


def test_view_html_points_cid_images_at_their_parts_and_view_txt(mp: Server, http: Http) -> None:
    send(mp, with_attachment("view"))
    message = http.json("GET", "api/v1/message/latest")
    logo = message["Inline"][0]["PartID"]
    code, headers, body = http.call("GET", f"view/{message['ID']}.html")
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert f'src="/api/v1/message/{message["ID"]}/part/{logo}"'.encode() in body
    send(mp, plain("texty", "Just text."))
    code, headers, body = http.call("GET", "view/latest.txt")
    assert body.strip() == b"Just text." and headers["Content-Type"].startswith("text/plain")


def test_smtp_transcript_and_sessions_endpoints(mp: Server, http: Http) -> None:
    send(mp, plain("talk"))
    talk = http.json("GET", "api/v1/message/latest/smtp")
    lines = [(t["Dir"], t["Line"]) for t in talk["Transcript"]]
    assert ("C", "data") in lines or ("C", "DATA") in lines
    assert lines[-1][1].startswith("250 2.0.0 Ok: queued as " + talk["ID"])
    assert talk["Envelope"]["To"] == ["b@example.com"]
    # The session is logged once the client has gone (after QUIT), a moment after the 250.
    wait_until(
        lambda: http.call("GET", f"api/v1/session/{talk['SessionID']}")[0] == 200,
        what="the session logged",
    )
    session = http.json("GET", f"api/v1/session/{talk['SessionID']}")
    assert session["Messages"] == [talk["ID"]]
    page = http.json("GET", "api/v1/sessions")
    assert talk["SessionID"] in [s["ID"] for s in page["sessions"]]
    assert page["total"] == len(page["sessions"]) >= 1
    code, _, body = http.call("GET", "api/v1/session/unknown-session")
    assert code == 404 and b"unknown-session" in body


# -- bulk changes ------------------------------------------------------------------------------


def test_put_messages_marks_by_ids_by_search_and_all(mp: Server, http: Http) -> None:
    for s in ("alpha", "beta", "gamma"):
        send(mp, plain(s))
    ids = {m["Subject"]: m["ID"] for m in http.json("GET", "api/v1/messages")["messages"]}
    http.ok("PUT", "api/v1/messages", {"IDs": [ids["alpha"]], "Read": True})
    assert http.json("GET", "api/v1/messages")["unread"] == 2
    http.ok("PUT", "api/v1/messages", {"Search": "subject:beta", "Read": True})
    read = {m["Subject"]: m["Read"] for m in http.json("GET", "api/v1/messages")["messages"]}
    assert read == {"alpha": True, "beta": True, "gamma": False}
    http.ok("PUT", "api/v1/messages", {"Read": False})
    assert http.json("GET", "api/v1/messages")["unread"] == 3
    code, _, body = http.call("PUT", "api/v1/messages", raw=b"{not json")
    assert code == 400 and b"not valid JSON" in body
    code, _, body = http.call("PUT", "api/v1/messages", {"IDs": "x", "Read": True})
    assert code == 400 and b"IDs must be a list" in body


def test_delete_messages_by_ids_and_all(mp: Server, http: Http) -> None:
    for s in ("one", "two", "three"):
        send(mp, plain(s))
    ids = {m["Subject"]: m["ID"] for m in http.json("GET", "api/v1/messages")["messages"]}
    http.ok("DELETE", "api/v1/messages", {"IDs": [ids["two"]]})
    assert [m["Subject"] for m in http.json("GET", "api/v1/messages")["messages"]] == [
        "three",
        "one",
    ]
    http.ok("DELETE", "api/v1/messages")
    assert http.json("GET", "api/v1/messages")["total"] == 0


def test_search_lists_matches_and_delete_search_deletes_exactly_them(
    mp: Server, http: Http
) -> None:
    send(mp, plain("invoice 1", "Pay soon"))
    send(mp, plain("invoice 2", "Pay now"))
    send(mp, plain("newsletter", "Read this"))
    http.json("GET", "api/v1/message/latest")  # read one
    found = http.json("GET", "api/v1/search?query=invoice")
    assert sorted(m["Subject"] for m in found["messages"]) == ["invoice 1", "invoice 2"]
    assert (found["messages_count"], found["total"]) == (2, 3)
    assert (found["messages_unread"], found["unread"]) == (2, 2)
    # A size Mailpit cannot read makes larger: a plain word, as in Mailpit: no error.
    assert http.json("GET", "api/v1/search?query=larger:lots")["messages_count"] == 0
    http.ok("DELETE", "api/v1/search?query=invoice")
    assert [m["Subject"] for m in http.json("GET", "api/v1/messages")["messages"]] == ["newsletter"]
    code, _, _ = http.call("DELETE", "api/v1/search")
    assert code == 400


# -- tags --------------------------------------------------------------------------------------


def test_tags_from_x_tags_and_plus_addresses_and_searchable(mp: Server, http: Http) -> None:
    send(mp, plain("labelled", extra="X-Tags: Billing, urgent\r\n"), ["shop+orders@example.com"])
    send(mp, plain("plain"))
    message = http.json("GET", "api/v1/message/latest?query=subject:labelled")
    assert sorted(message["Tags"]) == ["Billing", "orders", "urgent"]
    assert http.json("GET", "api/v1/tags") == ["Billing", "orders", "urgent"]
    found = http.json("GET", "api/v1/search?query=tag:urgent")["messages"]
    assert [m["Subject"] for m in found] == ["labelled"]


def test_set_rename_and_delete_tags(mp: Server, http: Http) -> None:
    send(mp, plain("a"))
    send(mp, plain("b"))
    ids = [m["ID"] for m in http.json("GET", "api/v1/messages")["messages"]]
    http.ok("PUT", "api/v1/tags", {"IDs": ids, "Tags": ["red", "blue"]})
    assert http.json("GET", "api/v1/tags") == ["blue", "red"]
    http.ok("PUT", "api/v1/tags", {"IDs": [ids[0]], "Tags": ["red"]})
    assert http.json("GET", "api/v1/info")["Tags"] == {"blue": 1, "red": 2}
    http.ok("PUT", "api/v1/tags/red", {"Name": "crimson"})
    assert http.json("GET", "api/v1/tags") == ["blue", "crimson"]
    http.ok("DELETE", "api/v1/tags/crimson")
    assert http.json("GET", "api/v1/tags") == ["blue"]
    assert http.json("GET", f"api/v1/message/{ids[1]}")["Tags"] == ["blue"]
    code, _, body = http.call("PUT", "api/v1/tags/blue", {"Name": ""})
    assert code == 400 and b"Name" in body


# -- send API ----------------------------------------------------------------------------------


def test_send_api_round_trip_builds_correct_mime(mp: Server, http: Http) -> None:
    body = {
        "From": {"Email": "app@example.com", "Name": "The App"},
        "To": [{"Email": "user@example.org", "Name": "Ünïcode User"}],
        "Cc": [{"Email": "cc@example.org"}],
        "Bcc": ["hidden@example.org"],
        "ReplyTo": [{"Email": "replies@example.com"}],
        "Subject": "Your receipt ✓",
        "Text": "Plain receipt",
        "HTML": '<p>Receipt <img src="cid:logo"></p>',
        "Tags": ["receipts"],
        "Headers": {"X-Campaign": "spring"},
        "Attachments": [
            {
                "Content": base64.b64encode(PNG).decode(),
                "Filename": "logo.png",
                "ContentID": "logo",
            },
            {"Content": base64.b64encode(b"a,b\n1,2\n").decode(), "Filename": "data.csv"},
        ],
    }
    sent = http.json("POST", "api/v1/send", body)
    message = http.json("GET", f"api/v1/message/{sent['ID']}")
    assert message["From"] == {"Name": "The App", "Address": "app@example.com"}
    assert message["To"] == [{"Name": "Ünïcode User", "Address": "user@example.org"}]
    assert message["Cc"][0]["Address"] == "cc@example.org"
    assert [b["Address"] for b in message["Bcc"]] == ["hidden@example.org"]
    assert message["ReplyTo"][0]["Address"] == "replies@example.com"
    assert message["Subject"] == "Your receipt ✓"
    assert message["Text"].strip() == "Plain receipt"
    assert "Receipt" in message["HTML"]
    assert message["Tags"] == ["receipts"]
    assert [(p["FileName"], p["ContentID"]) for p in message["Inline"]] == [("logo.png", "logo")]
    assert [p["FileName"] for p in message["Attachments"]] == ["data.csv"]
    part = message["Inline"][0]["PartID"]
    assert http.call("GET", f"api/v1/message/{sent['ID']}/part/{part}")[2] == PNG
    headers = http.json("GET", f"api/v1/message/{sent['ID']}/headers")
    assert headers["X-Campaign"] == ["spring"]
    assert "Bcc" not in headers  # Bcc lives in the envelope only
    talk = http.json("GET", f"api/v1/message/{sent['ID']}/smtp")
    assert "HTTP" in talk["Transcript"][0]["Line"]
    assert talk["Envelope"]["Protocol"] == "HTTP"
    assert sorted(talk["Envelope"]["To"]) == sorted(
        ["user@example.org", "cc@example.org", "hidden@example.org"]
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "From is required"),
        ({"From": {"Email": "x"}, "To": [{"Email": "b@example.com"}]}, "From.Email"),
        ({"From": {"Email": "a@example.com"}}, "at least one recipient"),
        (
            {"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}],
             "Attachments": [{"Content": "***", "Filename": "x"}]},
            "not valid base64",
        ),
        (
            {"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}],
             "Headers": {"Bad Name": "x"}},
            "not a valid header name",
        ),
    ],
)  # fmt: skip
def test_send_api_errors_are_400_with_error_json(http: Http, body: dict, error: str) -> None:
    answer = http.json("POST", "api/v1/send", body, status=400)
    assert error in answer["Error"]


def test_send_api_rejects_a_non_json_body(http: Http) -> None:
    code, _, body = http.call("POST", "api/v1/send", raw=b"nope")
    assert code == 400 and "not valid JSON" in json.loads(body)["Error"]


# -- instance ----------------------------------------------------------------------------------


def test_info_webui_livez_readyz(mp: Server, http: Http) -> None:
    send(mp, plain("counted"))
    info = http.json("GET", "api/v1/info")
    assert info["Messages"] == 1 and info["Unread"] == 1
    assert info["RuntimeStats"]["SMTPAccepted"] == 1
    assert info["RuntimeStats"]["Memory"] > 0
    for field in ("Version", "LatestVersion", "Database", "DatabaseSize", "Tags"):
        assert field in info
    webui = http.json("GET", "api/v1/webui")
    assert webui["MessageRelay"]["Enabled"] is False
    for field in ("Label", "SpamAssassin", "ChaosEnabled", "DuplicatesIgnored"):
        assert field in webui
    assert http.call("GET", "livez")[:1] == (200,)
    assert http.call("GET", "readyz")[2] == b"ok"


def test_unknown_path_is_404_and_wrong_method_405(http: Http) -> None:
    assert http.call("GET", "api/v1/nothing")[0] == 404
    assert http.call("POST", "api/v1/messages")[0] == 405


def test_webroot_serves_everything_under_the_prefix() -> None:
    with make_server(webroot="/mail/") as mp:
        assert mp.http_url.endswith("/mail/")
        http = Http(mp.http_url)
        assert http.json("GET", "api/v1/messages")["total"] == 0
        root = Http(mp.http_url.replace("/mail/", "/"))
        assert root.call("GET", "api/v1/messages")[0] == 404


def test_http_address_in_use_is_a_clear_error() -> None:
    with make_server() as first:
        host, port = first.http_address
        with pytest.raises(OSError, match="Choose another with --listen"):
            make_server(http_addr=f"{host}:{port}").start()


def test_swagger_spec_is_served_and_lists_every_route(http: Http, mp: Server) -> None:
    spec = http.json("GET", "api/v1/swagger.json")
    assert spec["openapi"].startswith("3.")
    paths = set(spec["paths"])
    for path in (
        "/api/v1/messages",
        "/api/v1/search",
        "/api/v1/message/{ID}",
        "/api/v1/message/{ID}/smtp",
        "/api/v1/sessions",
        "/api/v1/send",
        "/api/v1/tags",
        "/api/v1/info",
        "/livez",
    ):
        assert path in paths, path


def test_delete_search_refuses_a_query_with_nothing_to_search_for(mp: Server, http: Http) -> None:
    send(mp, plain("keep me"))
    code, _, body = http.call("DELETE", "api/v1/search?query=%3F")
    assert code == 400 and b"would delete every message" in body
    assert http.json("GET", "api/v1/messages")["total"] == 1


def test_send_api_text_attachment_comes_back_byte_exact(mp: Server, http: Http) -> None:
    body = {
        "From": {"Email": "a@example.com"},
        "To": [{"Email": "b@example.com"}],
        "Text": "see file",
        "Attachments": [{"Content": base64.b64encode(b"hello").decode(), "Filename": "h.txt"}],
    }
    sent = http.json("POST", "api/v1/send", body)
    (att,) = http.json("GET", f"api/v1/message/{sent['ID']}")["Attachments"]
    assert att["ContentType"] == "text/plain"
    assert http.call("GET", f"api/v1/message/{sent['ID']}/part/{att['PartID']}")[2] == b"hello"
