"""Message checks on content: HTML compatibility from the caniemail data, link check
against a local HTTP server (and refusal of internal addresses), blocklists answered from the
DNS override file, List-Unsubscribe requirements, and attachment thumbnails."""

from __future__ import annotations

import base64
import io
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from helpers import make_server
from mailpit_py.checks import html_check, link_check
from mailpit_py.checks.links import extract_links
from mailpit_py.server import Server


def call(mp: Server, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(mp.http_url + path.lstrip("/"), data=data)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as resp:
        raw = resp.read()
        return json.loads(raw) if resp.headers.get_content_type() == "application/json" else raw


def send(mp: Server, **fields: Any) -> str:
    body = {"From": {"Email": "app@example.com"}, "To": [{"Email": "dev@example.org"}]}
    body.update(fields)
    return str(call(mp, "/api/v1/send", body)["ID"])


@pytest.fixture
def mp() -> Iterator[Server]:
    with make_server(disable_checks=True) as server:
        yield server


# -- HTML check -------------------------------------------------------------------------------

FLEX_HTML = """<!DOCTYPE html>
<html><head><title>t</title></head>
<body>
<style>.card { display: flex; }</style>
<div class="card" style="display:flex; gap: 8px">
  <p>Hello</p>
</div>
</body></html>
"""


def test_html_check_reports_flex_and_style_in_body_with_places(mp: Server) -> None:
    uid = send(mp, Subject="flex", HTML=FLEX_HTML)
    report = call(mp, f"/api/v1/message/{uid}/html-check")
    by_slug = {w["Slug"]: w for w in report["Warnings"]}
    flex = by_slug["css-display-flex"]
    assert flex["Score"]["Found"] == 2  # in the <style> block and in the style attribute
    assert flex["Score"]["Unsupported"] > 0
    assert {p["Line"] for p in flex["Places"]} == {4, 5}
    assert any(r["Support"] == "no" and r["Family"] == "outlook" for r in flex["Results"])
    body_style = by_slug["html-style-in-body"]
    assert body_style["Places"][0]["Line"] == 4
    assert "css-gap" in by_slug
    total = report["Total"]
    assert total["Nodes"] >= 3
    assert 0 < total["Supported"] < 100
    assert abs(total["Supported"] + total["Partial"] + total["Unsupported"] - 100) < 0.01
    assert "Outlook" in report["Platforms"]["windows"]


def test_html_check_of_plain_supported_markup_has_no_flex_warning() -> None:
    report = html_check.check("<table><tr><td style='color:#333'>Hi</td></tr></table>")
    slugs = {w["Slug"] for w in report["Warnings"]}
    assert "css-display-flex" not in slugs and "html-style-in-body" not in slugs
    assert report["Total"]["Tests"] > 300  # the whole data set is consulted


def test_html_check_flags_script_and_unsupported_image_formats() -> None:
    report = html_check.check(
        '<html><body><img src="https://x.example/a.webp"><script>alert(1)</script>'
        '<p style="background-image: linear-gradient(red, blue)">x</p></body></html>'
    )
    slugs = {w["Slug"] for w in report["Warnings"]}
    assert {"html-script", "image-webp", "css-linear-gradient"} <= slugs
    assert report["Warnings"][0]["Slug"] == "html-script"  # the worst first


def test_html_check_of_a_text_only_message_is_400_as_mailpit(mp: Server) -> None:
    uid = send(mp, Subject="text", Text="just text")
    with pytest.raises(urllib.error.HTTPError) as err:
        call(mp, f"/api/v1/message/{uid}/html-check")
    assert err.value.code == 400
    assert err.value.read().decode().strip() == "message does not contain HTML"


def test_caniemail_data_is_vendored_with_its_licence() -> None:
    from importlib import resources

    files = resources.files("mailpit_py.checks")
    assert "caniemail" in files.joinpath("caniemail.json").read_text("utf-8")[:400]
    assert "MIT License" in files.joinpath("caniemail.LICENSE").read_text("utf-8")
    assert len(html_check.data()["data"]) > 250


# -- link check -------------------------------------------------------------------------------


class Site(BaseHTTPRequestHandler):
    active = 0
    most = 0
    hits: list[str] = []
    lock = threading.Lock()
    release = threading.Event()

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.hits.append(f"{self.command} {self.path}")
            cls.active += 1
            cls.most = max(cls.most, cls.active)
        try:
            if self.path.startswith("/slow"):
                cls.release.wait(0.2)  # hold the request so concurrent ones overlap
        finally:
            # Counted while held, before the answer goes out: once the client has its answer it
            # may send the next request before this thread gets to run again (a loaded machine
            # then saw three "active" where the client never had more than two in flight).
            with cls.lock:
                cls.active -= 1
        if self.path == "/old":
            self.send_response(301)
            self.send_header("Location", "/ok")
        elif self.path == "/nohead" and self.command == "HEAD":
            self.send_response(405)
        elif self.path in ("/ok", "/nohead") or self.path.startswith("/slow"):
            self.send_response(200)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = _answer
    do_GET = _answer


@pytest.fixture
def site() -> Iterator[str]:
    Site.hits, Site.most, Site.active = [], 0, 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_link_check_reports_each_status_when_internal_requests_are_allowed(site: str) -> None:
    html = (
        f'<a href="{site}/ok">ok</a> <a href="{site}/missing">gone</a> '
        f'<a href="{site}/old">moved</a> <img src="{site}/nohead"> <a href="mailto:x@y.z">m</a>'
    )
    with make_server(disable_checks=True, allow_internal_http_requests=True) as mp:
        uid = send(mp, Subject="links", HTML=html)
        plain = call(mp, f"/api/v1/message/{uid}/link-check")
        followed = call(mp, f"/api/v1/message/{uid}/link-check?follow=true")
    status = {link["URL"]: link["StatusCode"] for link in plain["Links"]}
    assert status == {
        f"{site}/ok": 200,
        f"{site}/missing": 404,
        f"{site}/old": 301,
        f"{site}/nohead": 200,  # HEAD refused with 405, then GET
    }
    assert plain["Errors"] == 1
    assert {link["URL"]: link["StatusCode"] for link in followed["Links"]}[f"{site}/old"] == 200
    assert "GET /nohead" in Site.hits


def test_link_check_refuses_loopback_urls_by_default(site: str) -> None:
    with make_server(disable_checks=True) as mp:
        uid = send(mp, Subject="links", HTML=f'<a href="{site}/ok">ok</a>')
        report = call(mp, f"/api/v1/message/{uid}/link-check")
    (link,) = report["Links"]
    assert link["StatusCode"] == 0
    assert "internal address 127.0.0.1" in link["Status"]
    assert "--allow-internal-http-requests" in link["Status"]
    assert report["Errors"] == 1
    assert Site.hits == []  # nothing reached the server


def test_link_check_refuses_private_and_link_local_literals() -> None:
    for url in ("http://10.1.2.3/", "http://169.254.169.254/latest/meta-data", "http://[::1]/"):
        result = link_check.check_url(url, follow=False, allow_internal=False)
        assert result["StatusCode"] == 0 and "internal address" in result["Status"], url


def test_link_check_vets_names_by_what_they_resolve_to() -> None:
    # Every hop (redirects included) is resolved and vetted, so a name cannot smuggle in a
    # loopback address; the request then goes to the vetted address itself.
    with pytest.raises(link_check.Refused, match="internal address"):
        link_check.vetted_address("localhost", 80, allow_internal=False)
    assert link_check.vetted_address("localhost", 80, allow_internal=True) in ("127.0.0.1", "::1")


def test_link_check_keeps_at_most_two_requests_per_host(site: str) -> None:
    urls = [f"{site}/slow{i}" for i in range(8)]
    report = link_check.check(urls, follow=False, allow_internal=True)
    assert [link["StatusCode"] for link in report["Links"]] == [200] * 8
    assert 1 <= Site.most <= link_check.PER_HOST


def test_link_check_follow_other_than_true_or_1_is_off_as_in_mailpit(mp: Server) -> None:
    uid = send(mp, Subject="x", Text="no links here")
    assert call(mp, f"/api/v1/message/{uid}/link-check?follow=maybe")["Links"] == []


def test_links_come_from_html_and_text_once_each() -> None:
    urls = extract_links(
        '<a href="https://a.example/x">a</a><img src="http://b.example/i.png">'
        '<a href="https://a.example/x">again</a><a href="#top">t</a>',
        "See https://c.example/page. And https://a.example/x",
    )
    assert urls == ["https://a.example/x", "http://b.example/i.png", "https://c.example/page"]


# -- blocklists ---------------------------------------------------------------------------------


def test_blocklists_are_answered_from_the_override_file(tmp_path: Path) -> None:
    zone = tmp_path / "dnsbl.txt"
    zone.write_text(
        "5.2.0.192.bl.test A 127.0.0.2\n"
        '5.2.0.192.bl.test TXT "Listed for testing"\n'
        "spammy.test.bl.test A 127.0.1.2\n"
        "clean.test.bl.test TXT nothing\n"
    )
    html = '<a href="https://www.spammy.test/offer">x</a> <a href="https://clean.test/">y</a>'
    with make_server(
        dns_override=str(zone),
        dns_offline=True,
        checks_client_ip="192.0.2.5",
        checks_dnsbl=("bl.test",),
    ) as mp:
        uid = send(mp, Subject="bl", HTML=html)
        report = call(mp, f"/api/v1/message/{uid}/blocklist-check")
    rows = {(r["Kind"], r["Subject"]): r for r in report["Results"]}
    assert set(rows) == {("ip", "192.0.2.5"), ("domain", "spammy.test"), ("domain", "clean.test")}
    ip = rows[("ip", "192.0.2.5")]
    assert ip["Listed"] and ip["Query"] == "5.2.0.192.bl.test"
    assert ip["Codes"][0]["Code"] == "127.0.0.2" and "listed" in ip["Codes"][0]["Meaning"]
    assert ip["Text"] == "Listed for testing"
    assert rows[("domain", "spammy.test")]["Codes"][0]["Meaning"].startswith("listed domain")
    assert not rows[("domain", "clean.test")]["Listed"]
    assert report["Listed"] == 2


def test_blocklists_skip_a_loopback_peer_and_say_so(tmp_path: Path) -> None:
    zone = tmp_path / "z.txt"
    zone.write_text("x.test A 192.0.2.1\n")
    with make_server(dns_override=str(zone), dns_offline=True, checks_dnsbl=("bl.test",)) as mp:
        uid = send(mp, Subject="bl", Text="no links")
        report = call(mp, f"/api/v1/message/{uid}/blocklist-check")
    assert report["Results"] == [] and "--checks-client-ip" in report["Note"]


# -- List-Unsubscribe ---------------------------------------------------------------------------


def test_header_check_reports_list_unsubscribe_errors_and_missing_one_click(mp: Server) -> None:
    uid = send(
        mp,
        Subject="news",
        Text="hi",
        Headers={"List-Unsubscribe": "https://example.com/unsub"},
    )
    report = call(mp, f"/api/v1/message/{uid}/header-check")
    assert report["ListUnsubscribe"]["Header"] == "https://example.com/unsub"
    assert report["ListUnsubscribe"]["Links"] == []
    assert "no valid unsubscribe links found" in report["ListUnsubscribe"]["Errors"]
    flags = {r["Name"]: r for r in report["Requirements"]}
    assert flags["OneClickUnsubscribe"]["OK"] is False
    assert flags["From"]["OK"] and flags["Date"]["OK"] and flags["Message-ID"]["OK"]


def test_header_check_one_click_needs_the_post_header(mp: Server) -> None:
    uid = send(
        mp,
        Subject="news",
        Text="hi",
        Headers={"List-Unsubscribe": "<https://example.com/u?id=1>, <mailto:u@example.com>"},
    )
    report = call(mp, f"/api/v1/message/{uid}/header-check")
    assert report["ListUnsubscribe"]["Links"] == [
        "https://example.com/u?id=1",
        "mailto:u@example.com",
    ]
    one_click = next(r for r in report["Requirements"] if r["Name"] == "OneClickUnsubscribe")
    assert one_click["OK"] is False and "List-Unsubscribe-Post" in one_click["Detail"]


# -- thumbnails ---------------------------------------------------------------------------------


def png(width: int, height: int, color: str = "red") -> str:
    buf = io.BytesIO()
    Image.new("RGBA", (width, height), color).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("size", [(800, 300), (40, 30), (120, 600)])
def test_thumbnails_are_180x120_jpeg(mp: Server, size: tuple[int, int]) -> None:
    uid = send(
        mp,
        Subject="pic",
        Text="see attached",
        Attachments=[
            {"Content": png(*size), "Filename": "pic.png", "ContentType": "image/png"},
        ],
    )
    message = call(mp, f"/api/v1/message/{uid}")
    part = message["Attachments"][0]["PartID"]
    req = urllib.request.urlopen(
        mp.http_url + f"api/v1/message/{uid}/part/{part}/thumb", timeout=30
    )
    assert req.headers.get_content_type() == "image/jpeg"
    with Image.open(io.BytesIO(req.read())) as thumb:
        assert (thumb.format, thumb.size) == ("JPEG", (180, 120))
        if size == (40, 30):  # small images are centred on white, not stretched
            assert thumb.getpixel((2, 2)) == pytest.approx((255, 255, 255), abs=8)
            r, g, b = thumb.getpixel((90, 60))
            assert r > 200 and g < 60 and b < 60


def test_thumbnail_of_a_non_image_is_blank_white_as_mailpit(mp: Server) -> None:
    uid = send(
        mp,
        Subject="csv",
        Text="data",
        Attachments=[
            {
                "Content": base64.b64encode(b"a,b\n1,2\n").decode(),
                "Filename": "d.csv",
                "ContentType": "text/csv",
            }
        ],
    )
    part = call(mp, f"/api/v1/message/{uid}")["Attachments"][0]["PartID"]
    with Image.open(io.BytesIO(call(mp, f"/api/v1/message/{uid}/part/{part}/thumb"))) as thumb:
        assert (thumb.format, thumb.size) == ("JPEG", (180, 120))
        assert thumb.convert("L").getextrema()[0] >= 245  # white all over
    with pytest.raises(urllib.error.HTTPError) as missing:
        call(mp, f"/api/v1/message/{uid}/part/9/thumb")
    assert missing.value.code == 400  # Mailpit's answer to a part it cannot find
