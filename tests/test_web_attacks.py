"""Attacks on the web server from the network: bodies and queries built to crash or starve it.

Each test sends the attack over a real connection to a real server on a free port and checks
that the answer is a clear client error (never a 500) and that the server keeps answering
others meanwhile.
"""

from __future__ import annotations

import base64
import io
import json
import re
import smtplib
import socket
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import pytest
from PIL import Image
from test_web_security import OtherSite, browser, context, other_site  # noqa: F401 (fixtures)
from test_web_security import call as raw_call

from helpers import make_server, wait_until
from mailpit_py.checks.links import extract_links, link_domains
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


def send(mp: Server, subject: str, **fields: object) -> str:
    """Stores a message through POST /api/v1/send; returns its ID."""
    body = {
        "From": {"Email": "a@example.com"},
        "To": [{"Email": "b@example.com"}],
        "Subject": subject,
        **fields,
    }
    status, answer = call(mp, "POST", "/api/v1/send", json.dumps(body).encode())
    assert status == 200, answer
    return str(json.loads(answer)["ID"])


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


# -- thumbnails of images that decode to gigabytes ----------------------------------------------


def peak_rss_mb() -> int:
    """This process's peak resident memory (the server runs in it), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current size (Linux 4.0 and later)


def image_part(mp: Server, img: Image.Image, fmt: str, ctype: str) -> tuple[str, str]:
    """Sends `img` encoded as `fmt` as an attachment; returns (message ID, part ID)."""
    buf = io.BytesIO()
    img.save(buf, fmt)
    attachment = {"Content": base64.b64encode(buf.getvalue()).decode(), "ContentType": ctype}
    uid = send(mp, "picture", Attachments=[{**attachment, "Filename": "picture"}])
    return uid, mp.mailbox.get(uid).detail["Attachments"][0]["PartID"]


def thumb(mp: Server, uid: str, part: str) -> Image.Image:
    status, data = call(mp, "GET", f"/api/v1/message/{uid}/part/{part}/thumb")
    assert status == 200, data
    with Image.open(io.BytesIO(data)) as img:
        assert (img.format, img.size) == ("JPEG", (180, 120))
        return img.convert("L")


def test_a_small_png_of_a_hundred_million_pixels_gets_a_blank_thumbnail_cheaply(
    mp: Server,
) -> None:
    # 12,000 x 8,000 one-bit pixels compress to 12 KB, and decoded as RGBA they took 900 MB
    # and 8 s of CPU per thumbnail request: a mail of a few of them ran a server out of memory.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        uid, part = image_part(mp, Image.new("1", (12_000, 8_000), 0), "PNG", "image/png")
    reset_peak_rss()
    before = peak_rss_mb()
    img = thumb(mp, uid, part)
    assert peak_rss_mb() - before < 100
    assert img.getextrema()[0] >= 245  # white all over: not drawn, as Mailpit past 20 MP


def test_an_image_within_the_pixel_budget_still_gets_its_thumbnail(mp: Server) -> None:
    uid, part = image_part(mp, Image.new("RGB", (5_000, 4_000), "black"), "PNG", "image/png")
    assert thumb(mp, uid, part).getextrema()[1] <= 10  # black: drawn


def test_a_large_jpeg_photo_is_decoded_at_a_reduced_scale(mp: Server) -> None:
    uid, part = image_part(mp, Image.new("RGB", (4_000, 4_000), "black"), "JPEG", "image/jpeg")
    reset_peak_rss()
    before = peak_rss_mb()
    assert thumb(mp, uid, part).getextrema()[1] <= 10  # black: drawn
    # 16 MP at full scale is 64 MB as RGBA (twice that as RGB then RGBA); at 1/8 it is 1 MB
    assert peak_rss_mb() - before < 40


def test_formats_mailpit_does_not_decode_get_a_blank_thumbnail(mp: Server) -> None:
    # Pillow reads dozens of formats by their bytes, whatever the part declares; each of its
    # rarely used readers is more code for hostile bytes to reach. Mailpit decodes JPEG, PNG,
    # GIF, BMP, TIFF and WebP.
    uid, part = image_part(mp, Image.new("RGB", (300, 200), "black"), "TGA", "image/png")
    assert thumb(mp, uid, part).getextrema()[0] >= 245
    uid, part = image_part(mp, Image.new("RGB", (300, 200), "black"), "GIF", "image/png")
    assert thumb(mp, uid, part).getextrema()[1] <= 10


# -- mails of tens of thousands of links --------------------------------------------------------


def test_the_link_check_of_a_mail_of_20000_links_checks_its_first_hundred(mp: Server) -> None:
    # Addresses the link check refuses without a packet sent (private), so only the count of
    # links decides how long it takes: all 20,000 used to be checked, holding a request and 8
    # threads (for hours with names that need DNS), and the server could not exit meanwhile.
    links = [f"http://10.{i // 250}.{i % 250}.1/" for i in range(20_000)]
    html = "".join(f'<a href="{url}">x</a>' for url in links)
    uid = send(mp, "links", HTML=html)
    status, answer = call(mp, "GET", f"/api/v1/message/{uid}/link-check")
    assert status == 200, answer
    checked = json.loads(answer)["Links"]
    assert [link["URL"] for link in checked] == links[:100]  # Mailpit's cap, in mail order
    assert all(link["StatusCode"] == 0 for link in checked)  # private: refused


def test_links_and_their_domains_are_collected_once_each() -> None:
    # The ingest checks collect every link and its domain (for the domain blocklists): with a
    # list's `in` to skip repeats, 60,000 distinct links (2.8 MB of HTML) cost two minutes of
    # CPU; with a set, ~3 s (bench/, not a test, is where time is measured). Each link twice:
    # the repeats are skipped and the order is the mail's.
    html = "".join(f'<a href="http://l{i}.example{i}.com/">x</a>' for i in range(60_000)) * 2
    urls = extract_links(html)
    domains = link_domains(urls)
    assert (len(urls), len(domains)) == (60_000, 60_000)
    assert urls[:2] == ["http://l0.example0.com/", "http://l1.example1.com/"]
    assert extract_links(html, limit=100) == urls[:100]


def test_a_link_no_url_parser_accepts_is_reported_broken_not_an_internal_error(
    mp: Server,
) -> None:
    html = '<a href="http://[x">bad</a> <a href="http://10.1.2.3/">private</a>'
    uid = send(mp, "a broken link", HTML=html)
    status, answer = call(mp, "GET", f"/api/v1/message/{uid}/link-check")
    assert status == 200, answer  # was 500: urlsplit raises on a host of "[x"
    checked = json.loads(answer)
    assert [link["URL"] for link in checked["Links"]] == ["http://[x", "http://10.1.2.3/"]
    assert checked["Errors"] == 2
    # the checks run on every new message read the same links
    status, answer = call(mp, "GET", f"/api/v1/message/{uid}/blocklist-check")
    assert status == 200, answer


# -- links in a mail that try to run script when clicked ---------------------------------------

CLICK_ME = (
    '<a id="js" href="javascript:document.title=\'js ran\';'
    "fetch('/api/v1/messages', {method: 'DELETE'})\">js</a> "
    '<a id="data" href="data:text/html,<script>document.title=\'data ran\'</script>">data</a> '
    "<svg><a id=\"svg\" href=\"javascript:document.title='svg ran'\"><text y='20'>svg</text></a>"
    "</svg>"
)


@pytest.mark.parametrize("where", ["view", "preview"])
def test_clicking_javascript_and_data_links_of_a_mail_runs_nothing(
    mp: Server,
    context: Any,  # noqa: F811 (the fixture imported above)
    where: str,
) -> None:
    uid = send(mp, "click me", HTML=CLICK_ME)
    page = context.new_page()
    if where == "view":  # the page a "view in browser" link opens, in a tab of its own
        page.goto(mp.http_url + f"view/{uid}.html")
        links = page
    else:
        page.goto(mp.http_url + f"?m={uid}")
        links = page.frame_locator("#html-frame")
    opened: list[Any] = []
    context.on("page", lambda popup: opened.append(popup))
    for name in ("js", "data", "svg"):
        links.locator(f"#{name}").click()
    # A popup, if any, has opened by the time a page opened after the clicks has loaded.
    probe = context.new_page()
    assert probe.goto(mp.http_url + "livez").status == 200
    titles = [page.title(), *(p.title() for p in opened if p is not probe)]
    assert not any("ran" in t for t in titles), titles
    assert mp.mailbox.counts()[0] == 1  # the DELETE never ran


def test_with_credentials_a_strangers_unfinished_bodies_hold_no_threads() -> None:
    with make_server(max_messages=0, ui_auth="ann:secret") as server:
        held = []
        try:
            for _ in range(80):  # more than the pool's 64 threads
                sock = socket.create_connection(server.http_address, timeout=10)
                sock.sendall(
                    b"POST /api/v1/send HTTP/1.1\r\nHost: localhost\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
                )
                held.append(sock)
            for sock in held[:3]:  # each was answered without its body
                assert sock.recv(64).startswith(b"HTTP/1.1 401")
            login = {"Authorization": "Basic " + base64.b64encode(b"ann:secret").decode()}
            status, _ = call(server, "GET", "/api/v1/messages", None, login)
            assert status == 200
        finally:
            for sock in held:
                sock.close()


# -- download names a sender chose ---------------------------------------------------------------

HOSTILE_NAMES = b"""From: a@example.com\r
To: b@example.com\r
Subject: names\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary=XX\r
\r
--XX\r
Content-Type: text/plain\r
\r
hi\r
--XX\r
Content-Type: application/octet-stream\r
Content-Disposition: attachment; filename="a\\";b=c.html"\r
\r
1\r
--XX\r
Content-Type: application/octet-stream\r
Content-Disposition: attachment; filename*=UTF-8''x%0D%0ASet-Cookie%3A%20y%3D1.bin\r
\r
2\r
--XX\r
Content-Type: application/octet-stream\r
Content-Disposition: attachment; filename*=UTF-8''invoice%E2%80%AEfdp.exe\r
\r
3\r
--XX\r
Content-Type: application/octet-stream\r
Content-Disposition: attachment; filename*=UTF-8''na%C3%AFve%20%E2%80%8F%E2%81%A6caf%C3%A9.txt\r
\r
4\r
--XX--\r
"""


def test_download_names_cannot_add_headers_break_quoting_or_reverse_their_extension(
    mp: Server,
) -> None:
    with smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp:
        smtp.sendmail("a@example.com", ["b@example.com"], HOSTILE_NAMES)
    wait_until(lambda: mp.mailbox.counts()[0] == 1, what="the message stored")
    uid = str(mp.mailbox.list_messages()[0]["ID"])
    parts = mp.mailbox.get(uid).detail["Attachments"]
    names = []
    for part in parts:
        status, headers, _ = raw_call(
            mp, "GET", f"/api/v1/message/{uid}/part/{part['PartID']}", None, {"Host": "localhost"}
        )
        assert status == 200
        assert headers.get_all("Set-Cookie") is None
        (disposition,) = headers.get_all("Content-Disposition")
        assert "\r" not in disposition and "\n" not in disposition
        # what a browser saves it as: filename* (RFC 6266) when given, else filename
        extended = re.search(r"filename\*=UTF-8''([^;\s]+)", disposition)
        plain = re.search(r'filename="((?:[^"\\]|\\.)*)"', disposition)
        assert plain is not None, disposition
        names.append(unquote(extended.group(1)) if extended else plain.group(1))
    # A quote ends nothing (filename* percent-encodes it); a line break adds no header; a
    # right-to-left override cannot make "invoice<RLO>fdp.exe" show as "invoiceexe.pdf" in the
    # download bar, nor the other direction marks and isolates reorder a name.
    assert names == ['a";b=c.html', "xSet-Cookie: y=1.bin", "invoicefdp.exe", "naïve café.txt"]


def test_the_ui_shows_attachment_names_without_bidirectional_controls(
    mp: Server,
    context: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    from playwright.sync_api import expect

    uid = send(
        mp,
        "invoice",
        Text="see attached",
        Attachments=[
            {
                "Content": base64.b64encode(b"MZ").decode(),
                "Filename": "invoice\u202efdp.exe",
                "ContentType": "application/octet-stream",
            }
        ],
    )
    page = context.new_page()
    page.goto(mp.http_url + f"?m={uid}")
    chip = page.locator("#att-strip a")
    # shown and saved as what it is, an .exe, not as "invoiceexe.pdf"
    expect(chip.locator(".att-chip-name")).to_have_text("invoicefdp.exe")
    expect(chip).to_have_attribute("download", "invoicefdp.exe")


# -- another site's page loading the API as an image -------------------------------------------

LOADS = """<img id="read" src="%(target)sapi/v1/message/latest">
<img id="all" src="%(target)sapi/v1/messages?limit=0">
<img id="part" src="%(target)sapi/v1/message/%(uid)s/part/%(part)s">"""


def test_another_sites_images_cannot_make_the_api_mark_read_or_work(
    context: Any,  # noqa: F811 (the fixture imported above)
    other_site: OtherSite,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    with make_server(max_messages=0) as server:
        uid, part = image_part(server, Image.new("RGB", (30, 20), "red"), "PNG", "image/png")
        assert server.mailbox.counts()[1] == 1  # unread
        other_site.page = LOADS % {"target": server.http_url, "uid": uid, "part": part}
        page = context.new_page()
        page.goto(other_site.origin + "/")
        # An image of the mail still shows (parts and thumbnails may be embedded anywhere) ...
        expect(page.locator("#part")).to_have_js_property("naturalWidth", 30)
        expect(page.locator("#read")).to_have_js_property("complete", True)
        # ... but loading the message's JSON as an image no longer marks it read.
        assert server.mailbox.counts()[1] == 1


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_subresource_of_another_site_is_refused_on_api_routes_naming_why(
    mp: Server, site: str
) -> None:
    uid = deliver(mp, "unread")
    fetch = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
    status, body = call(mp, "GET", f"/api/v1/message/{uid}", None, fetch)
    assert status == 403 and b"another site" in body, body
    assert mp.mailbox.counts()[1] == 1
    # a link followed from another site (a navigation) and the browser's own requests pass
    for headers in (
        {**fetch, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
        {**fetch, "Sec-Fetch-Site": "same-origin"},
        {**fetch, "Sec-Fetch-Site": "none"},
        {},  # curl, scripts: no Sec-Fetch headers at all
    ):
        assert call(mp, "GET", f"/api/v1/message/{uid}/headers", None, headers)[0] == 200
