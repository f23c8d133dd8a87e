"""Browser protections end to end: mail content never runs as script in the UI's origin, and
pages of other sites can neither read nor change the mailbox (Origin, Host, JSON-only POSTs,
--api-cors, --allowed-hosts).

Real servers on free ports, real HTTP clients, and Debian's headless Chromium for the attacks a
browser makes: the "other site" is a second HTTP server on another port of 127.0.0.1, which is
another origin to the browser.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import smtplib
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from test_ui_browser import tiny_png
from upstream import PASSWORD, USER, UpstreamServer

from helpers import make_server, wait_until
from mailpit_py.server import Server

CHROMIUM = os.environ.get("MAILPIT_PY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT = 10_000  # ms: the longest any single browser condition may take

SVG_WITH_SCRIPT = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10" '
    b"onload=\"document.title='svg onload ran'\">"
    b"<script>document.title = 'svg script ran'; fetch('/api/v1/messages');</script>"
    b'<rect width="20" height="10" fill="red"/></svg>'
)
HTML_WITH_SCRIPT = (
    "<html><head><title>Newsletter</title></head><body><p id='shown'>Hello</p>"
    "<script>document.title = 'script ran';"
    "fetch('/api/v1/messages').then(r => r.text()).then(t => { document.title = 'read ' + t; });"
    "</script></body></html>"
)


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Chromium is not installed at {CHROMIUM}: the browser tests must run")
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (MAILPIT_PY_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    ctx = browser.new_context(accept_downloads=True)
    ctx.set_default_timeout(TIMEOUT)
    yield ctx
    ctx.close()


@pytest.fixture
def mp() -> Iterator[Server]:
    with make_server(max_messages=0) as server:
        yield server


class OtherSite:
    """Another origin: a tiny HTTP server that serves one page and records what reaches it."""

    def __init__(self) -> None:
        self.page = ""
        self.hits: list[str] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                site.hits.append(self.path)
                body = site.page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def other_site() -> Iterator[OtherSite]:
    site = OtherSite()
    yield site
    site.close()


def call(
    mp: Server,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request on a real connection, with exactly the headers given (Host included)."""
    conn = http.client.HTTPConnection(*mp.http_address, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def send_mail(mp: Server, msg: EmailMessage) -> str:
    """Deliver over SMTP; returns the new message's ID."""
    for name, value in (("From", "news@example.com"), ("To", "dev@example.org")):
        if name not in msg:
            msg[name] = value
    before = mp.mailbox.counts()[0]
    with smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp:
        smtp.send_message(msg)
    wait_until(lambda: mp.mailbox.counts()[0] > before, what="the message stored")
    return str(mp.mailbox.list_messages()[0]["ID"])  # newest first


def hostile_mail(mp: Server) -> tuple[str, dict[str, str]]:
    """A message whose HTML body and parts carry script; returns its ID and part IDs by name."""
    msg = EmailMessage()
    msg["From"] = "news@example.com"
    msg["To"] = "dev@example.org"
    msg["Subject"] = "Hostile"
    msg.set_content("Plain text.\n")
    msg.add_alternative(HTML_WITH_SCRIPT, subtype="html")
    msg.get_payload()[1].add_related(
        SVG_WITH_SCRIPT, maintype="image", subtype="svg+xml", cid="<logo@test>"
    )
    msg.add_attachment(SVG_WITH_SCRIPT, maintype="image", subtype="svg+xml", filename="logo.svg")
    msg.add_attachment(HTML_WITH_SCRIPT.encode(), "text", "html", filename="page.html")
    msg.add_attachment(b"<x:script xmlns:x='http://www.w3.org/1999/xhtml'/>", "text", "xml")
    msg.add_attachment(tiny_png(), maintype="image", subtype="png", filename="pixel.png")
    msg.add_attachment(b"#!/bin/sh\n", "application", "x-sh", filename="../../evil.sh")
    msg.add_attachment(b"@echo off\n", "application", "x-bat", filename="..\\evil.bat")
    uid = send_mail(mp, msg)
    detail = mp.mailbox.get(uid).detail
    parts = {
        p["FileName"] or p["ContentType"]: p["PartID"]
        for p in (*detail["Inline"], *detail["Attachments"])
    }
    return uid, parts


def api_requests(page: Any) -> list[str]:
    """The URLs of API requests the page makes (a script reading the mailbox shows here)."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if "/api/" in r.url else None)
    return seen


def goto_download(page: Any, url: str) -> Any:
    """Navigate to a URL the server answers as a download; returns the download."""
    from playwright.sync_api import Error

    with page.expect_download() as download:
        try:
            page.goto(url)
        except Error as exc:  # Chromium reports a navigation that became a download
            assert "Download is starting" in str(exc) or "ERR_ABORTED" in str(exc), exc
    return download.value


# -- mail content in the browser ---------------------------------------------------------------


def test_view_html_opened_in_a_tab_runs_no_script(mp: Server, context: Any) -> None:
    uid, _ = hostile_mail(mp)
    page = context.new_page()
    api = api_requests(page)
    page.goto(mp.http_url + f"view/{uid}.html")
    assert page.locator("#shown").inner_text() == "Hello"  # the mail is shown...
    assert page.title() == "Newsletter"  # ...and its script did not run
    assert api == []


@pytest.mark.parametrize(("name", "title"), [("logo.svg", "svg"), ("page.html", "Newsletter")])
def test_parts_that_can_run_script_download_instead_of_opening(
    mp: Server, context: Any, name: str, title: str
) -> None:
    uid, parts = hostile_mail(mp)
    page = context.new_page()
    api = api_requests(page)
    download = goto_download(page, mp.http_url + f"api/v1/message/{uid}/part/{parts[name]}")
    assert download.suggested_filename == name
    assert "ran" not in page.title()
    assert api == [f"{mp.http_url}api/v1/message/{uid}/part/{parts[name]}"]


def test_the_ui_preview_still_shows_a_cid_svg_as_an_image(mp: Server, context: Any) -> None:
    from playwright.sync_api import expect

    uid, parts = hostile_mail(mp)
    status, headers, _ = call(mp, "GET", f"/api/v1/message/{uid}/part/{parts['image/svg+xml']}")
    assert status == 200 and headers["Content-Disposition"] == "attachment"
    # The preview's <img> still shows it (a download only stops navigation), and nothing ran.
    msg = EmailMessage()
    msg["Subject"] = "svg inline"
    msg.set_content("text")
    msg.add_alternative('<p>Logo: <img id="logo" src="cid:logo@test"></p>', subtype="html")
    msg.get_payload()[1].add_related(
        SVG_WITH_SCRIPT, maintype="image", subtype="svg+xml", cid="<logo@test>"
    )
    uid = send_mail(mp, msg)
    page = context.new_page()
    page.goto(mp.http_url + f"?m={uid}")
    frame = page.frame_locator("#html-frame")
    expect(frame.locator("#logo")).to_have_js_property("naturalWidth", 20)
    assert "ran" not in page.title()


def test_mail_content_routes_carry_a_sandbox_policy(mp: Server) -> None:
    uid, parts = hostile_mail(mp)
    for path in (
        f"/view/{uid}.html",
        f"/view/{uid}.txt",
        f"/api/v1/message/{uid}/raw",
        f"/api/v1/message/{uid}/raw?dl=1",
        f"/api/v1/message/{uid}/part/{parts['pixel.png']}",
        f"/api/v1/message/{uid}/part/{parts['pixel.png']}/thumb",
        f"/api/v1/message/{uid}/part/{parts['page.html']}",
    ):
        status, headers, _ = call(mp, "GET", path)
        assert status == 200, path
        csp = [d.strip() for d in headers["Content-Security-Policy"].split(";")]
        assert csp[0].split()[0] == "sandbox" and "default-src 'none'" in csp, (path, csp)
        assert not any(d.startswith("script-src") for d in csp), (path, csp)
        assert "frame-ancestors 'self'" in csp, path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["X-Frame-Options"] == "SAMEORIGIN", path
    # An inert type still opens in the browser.
    _, headers, _ = call(mp, "GET", f"/api/v1/message/{uid}/part/{parts['pixel.png']}")
    assert headers["Content-Disposition"] == 'inline; filename="pixel.png"'
    # The HTML view may show images and styles from anywhere, as the mail looks in a client.
    _, headers, _ = call(mp, "GET", f"/view/{uid}.html")
    assert "img-src * data: cid:" in headers["Content-Security-Policy"]
    assert "'unsafe-inline'" in headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("name", "disposition"),
    [
        ("logo.svg", 'attachment; filename="logo.svg"'),
        ("page.html", 'attachment; filename="page.html"'),
        ("text/xml", "attachment"),
        ("../../evil.sh", 'attachment; filename="evil.sh"'),
        ("..\\evil.bat", 'attachment; filename="evil.bat"'),
    ],
)
def test_part_disposition_is_inline_only_for_inert_types(
    mp: Server, name: str, disposition: str
) -> None:
    uid, parts = hostile_mail(mp)
    status, headers, _ = call(mp, "GET", f"/api/v1/message/{uid}/part/{parts[name]}")
    assert status == 200
    assert headers["Content-Disposition"] == disposition


def test_every_answer_refuses_framing_by_other_sites(mp: Server) -> None:
    for method, path in (
        ("GET", "/"),
        ("GET", "/api/v1/messages"),
        ("GET", "/api/v1/message/nope"),
        ("GET", "/livez"),
        ("PUT", "/api/v1/messages"),
    ):
        _, headers, _ = call(mp, method, path)
        assert headers["X-Frame-Options"] == "SAMEORIGIN", path
        assert "frame-ancestors 'self'" in headers["Content-Security-Policy"], path
    _, headers, _ = call(mp, "GET", "/")
    assert "script-src 'self'" in headers["Content-Security-Policy"]


def test_under_a_webroot_the_same_rules_hold() -> None:
    with make_server(webroot="/mail/") as mp:
        status, headers, _ = call(mp, "GET", "/elsewhere")  # outside the prefix: a bare 404
        assert status == 404 and headers["X-Frame-Options"] == "SAMEORIGIN"
        name = f"127.0.0.1:{mp.http_address[1]}"
        same = {"Host": name, "Origin": f"http://{name}", "Content-Type": "application/json"}
        assert call(mp, "PUT", "/mail/api/v1/messages", b"{}", same)[0] == 200
        other = {**same, "Origin": "http://localhost:1"}
        assert call(mp, "PUT", "/mail/api/v1/messages", b"{}", other)[0] == 403
        assert call(mp, "GET", "/mail/", None, {"Host": "evil.example.com"})[0] == 403


# -- pages of other sites ----------------------------------------------------------------------


ATTACK = """<!doctype html><title>innocent</title><script>
window.results = {};
const target = %(target)s;
const ws = new WebSocket(target.replace('http', 'ws') + 'api/events');
ws.onopen = () => { results.ws = 'open'; };
ws.onmessage = (e) => { results.wsData = e.data; };
ws.onclose = () => { results.wsClosed = true; };
const mail = JSON.stringify({From: {Email: 'evil@example.com'}, To: [{Email: 'dev@example.org'}],
                             Subject: 'injected'});
const blind = (path, body, headers) =>
  fetch(target + path, {method: 'POST', mode: 'no-cors', body, headers})
    .then(() => 'sent', () => 'failed');
Promise.all([
  blind('api/v1/send', mail, {'Content-Type': 'text/plain'}),
  blind('api/v1/send', new Blob([mail])),
  blind('api/v1/message/latest/release', JSON.stringify({To: ['outside@example.net']}),
        {'Content-Type': 'text/plain'}),
  fetch(target + 'api/v1/messages').then(r => r.text(), () => 'failed'),
]).then((r) => { results.fetches = r; });
</script>"""


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer() as up:
        yield up


def relay_config(tmp_path: Path, upstream: UpstreamServer) -> str:
    path = tmp_path / "relay.yaml"
    path.write_text(
        f"host: 127.0.0.1\nport: {upstream.port}\nstarttls: true\nallow-insecure: true\n"
        f"auth: plain\nusername: {USER}\npassword: {PASSWORD}\n"
    )
    return str(path)


def test_another_site_can_neither_read_nor_send_nor_release(
    tmp_path: Path, context: Any, other_site: OtherSite, upstream: UpstreamServer
) -> None:
    with make_server(smtp_relay_config=relay_config(tmp_path, upstream)) as mp:
        msg = EmailMessage()
        msg["Subject"] = "Your reset code is 424242"
        msg.set_content("code 424242")
        uid = send_mail(mp, msg)
        other_site.page = ATTACK % {"target": json.dumps(mp.http_url)}
        page = context.new_page()
        page.goto(other_site.origin + "/")
        page.wait_for_function(
            "window.results.fetches && (window.results.wsClosed || window.results.ws === 'open')"
        )
        results = page.evaluate("window.results")
        assert results.get("ws") != "open" and "wsData" not in results
        assert results["fetches"][3] == "failed"  # a read without CORS headers stays unreadable
        assert [m["ID"] for m in mp.mailbox.list_messages()] == [uid]  # nothing injected
        history = mp.mailbox.relay_history(uid)
        assert history["Queue"] == [] and history["Attempts"] == []  # nothing released
        assert upstream.received == []


def test_api_cors_lets_the_named_site_use_the_api_and_websocket(
    context: Any, other_site: OtherSite
) -> None:
    page_script = """<!doctype html><script>
    window.results = {};
    const target = %(target)s;
    const ws = new WebSocket(target.replace('http', 'ws') + 'api/events');
    ws.onmessage = (e) => { results.wsData = e.data; ws.close(); };
    fetch(target + 'api/v1/send', {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({From: {Email: 'app@example.com'}, To: [{Email: 'dev@example.org'}],
                            Subject: 'from the front end'})})
      .then(r => r.json()).then(j => { results.sent = j.ID; }, e => { results.sent = 'x' + e; });
    </script>"""
    with make_server(api_cors=other_site.origin.removeprefix("http://")) as mp:
        other_site.page = page_script % {"target": json.dumps(mp.http_url)}
        page = context.new_page()
        page.goto(other_site.origin + "/")
        page.wait_for_function("window.results.sent && window.results.wsData")
        results = page.evaluate("window.results")
        assert json.loads(results["wsData"])["Type"] == "stats"
        assert mp.mailbox.summary(results["sent"])["Subject"] == "from the front end"


def test_cross_origin_requests_are_refused_with_a_message_naming_api_cors(mp: Server) -> None:
    host = f"127.0.0.1:{mp.http_address[1]}"
    evil = {"Host": host, "Origin": "http://evil.example.com", "Content-Type": "application/json"}
    for method, path in (
        ("POST", "/api/v1/send"),
        ("DELETE", "/api/v1/messages"),
        ("PUT", "/api/v1/tags"),
        ("GET", "/api/v1/messages"),
        ("GET", "/api/events"),
        ("OPTIONS", "/api/v1/send"),
    ):
        status, headers, body = call(mp, method, path, b"{}", evil)
        assert status == 403, (method, path)
        assert b"--api-cors evil.example.com" in body, body
        assert "Access-Control-Allow-Origin" not in headers
    # The UI's own pages send their origin too: allowed, under any name that reaches it.
    for name in (host, f"localhost:{mp.http_address[1]}"):
        same = {"Host": name, "Origin": f"http://{name}"}
        assert call(mp, "PUT", "/api/v1/messages", None, same)[0] == 200
    # A cross-site write does nothing: the DELETE above left this message in place.
    assert call(mp, "DELETE", "/api/v1/messages", b"{}", evil)[0] == 403


def test_api_cors_answers_preflight_for_the_named_origin_only() -> None:
    with make_server(api_cors="http://app.example.com, https://other.example.com:8443") as mp:
        preflight = {
            "Origin": "http://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        status, headers, _ = call(mp, "OPTIONS", "/api/v1/send", None, preflight)
        assert status == 200
        assert headers["Access-Control-Allow-Origin"] == "http://app.example.com"
        assert "POST" in headers["Access-Control-Allow-Methods"]
        assert headers["Access-Control-Allow-Headers"] == "content-type"
        status, headers, _ = call(
            mp, "GET", "/api/v1/messages", None, {"Origin": preflight["Origin"]}
        )
        assert status == 200 and headers["Access-Control-Allow-Origin"] == preflight["Origin"]
        assert "Origin" in headers["Vary"]
        ok = {"Origin": "https://other.example.com:8443"}
        assert call(mp, "GET", "/api/v1/messages", None, ok)[0] == 200
        for origin in ("http://app.example.com:8080", "https://other.example.com", "null"):
            assert call(mp, "PUT", "/api/v1/messages", None, {"Origin": origin})[0] == 403
            status, headers, _ = call(mp, "GET", "/api/v1/messages", None, {"Origin": origin})
            assert "Access-Control-Allow-Origin" not in headers
            # A sandboxed frame's `null` may load what an <img> could: unreadable to scripts.
            assert status == (200 if origin == "null" else 403)
    with make_server(api_cors="*") as mp:
        assert call(mp, "GET", "/api/v1/messages", None, {"Origin": "http://x.test"})[0] == 200


def test_preflight_needs_no_credentials_when_the_ui_has_them() -> None:
    with make_server(api_cors="app.example.com", ui_auth="dev:secret") as mp:
        preflight = {"Origin": "http://app.example.com", "Access-Control-Request-Method": "PUT"}
        status, headers, _ = call(mp, "OPTIONS", "/api/v1/messages", None, preflight)
        assert status == 200 and headers["Access-Control-Allow-Origin"] == preflight["Origin"]
        # The request itself still needs them.
        assert call(mp, "GET", "/api/v1/messages", None, {"Origin": preflight["Origin"]})[0] == 401


# -- JSON-only POSTs ---------------------------------------------------------------------------


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_post_without_a_json_content_type_is_415(mp: Server, ctype: str | None) -> None:
    body = json.dumps(
        {"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}], "Subject": "x"}
    ).encode()
    headers = {"Content-Type": ctype} if ctype else {}
    for path in ("/api/v1/send", "/api/v1/message/latest/release"):
        status, _, answer = call(mp, "POST", path, body, headers)
        assert status == 415, (path, status, answer)
        assert b"Content-Type: application/json" in answer
    assert mp.mailbox.list_messages() == []
    status, _, _ = call(mp, "POST", "/api/v1/send", body, {"Content-Type": "application/json"})
    assert status == 200


def test_a_form_encoded_delete_from_a_script_still_works(mp: Server) -> None:
    msg = EmailMessage()
    msg["Subject"] = "keep the old clients working"
    msg.set_content("x")
    uid = send_mail(mp, msg)
    req = urllib.request.Request(  # urllib sends form encoding by default
        mp.http_url + "api/v1/messages", data=json.dumps({"IDs": [uid]}).encode(), method="DELETE"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    assert mp.mailbox.list_messages() == []
    # ...while a form-encoded POST is refused with the fix in the answer.
    req = urllib.request.Request(mp.http_url + "api/v1/send", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 415


# -- Host names (DNS rebinding) ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/v1/messages", "/api/events", "/view/latest.html"])
def test_a_rebound_host_name_is_refused_naming_the_flag(mp: Server, path: str) -> None:
    for safe in ("localhost", "127.0.0.1", "[::1]", "mailpit", "app.localhost", "LOCALHOST."):
        headers = {"Host": f"{safe}:8025"}
        assert call(mp, "GET", "/api/v1/messages", None, headers)[0] == 200, safe
    assert call(mp, "GET", "/api/v1/info", None, {"Host": "host.docker.internal"})[0] == 200
    status, _, body = call(mp, "GET", path, None, {"Host": "evil.example.com"})
    assert status == 403
    assert b"--allowed-hosts evil.example.com" in body and b"MP_ALLOWED_HOSTS" in body
    # Health probes answer any name an orchestrator uses.
    assert call(mp, "GET", "/livez", None, {"Host": "evil.example.com"})[0] == 200


@pytest.mark.parametrize(
    ("allowed", "host", "status"),
    [
        ("evil.example.com", "evil.example.com", 200),
        ("evil.example.com", "other.example.com", 403),
        ("*.example.com", "a.b.example.com", 200),
        ("*.example.com", "example.net", 403),
        ("*", "anything.example.net", 200),
    ],
)
def test_allowed_hosts_adds_names(
    server_factory: Callable[..., Server], allowed: str, host: str, status: int
) -> None:
    mp = server_factory(allowed_hosts=allowed)
    assert call(mp, "GET", "/api/v1/messages", None, {"Host": host})[0] == status


def test_the_listen_and_smtp_host_names_are_answered(server_factory: Callable[..., Server]) -> None:
    mp = server_factory(smtp_hostname="mail.dev.example")
    assert call(mp, "GET", "/", None, {"Host": "mail.dev.example:8025"})[0] == 200
    assert call(mp, "GET", "/", None, {"Host": "mail.dev.example.com"})[0] == 403


# -- the UI itself -----------------------------------------------------------------------------


def test_the_ui_works_from_its_own_origin_under_its_policy(mp: Server, context: Any) -> None:
    from playwright.sync_api import expect

    msg = EmailMessage()
    msg["Subject"] = "Styled"
    msg.set_content("text")
    msg.add_alternative(
        '<p id="styled" style="color: rgb(1, 2, 3)">Hi <img id="logo" src="cid:logo@test"></p>',
        subtype="html",
    )
    msg.get_payload()[1].add_related(tiny_png(), maintype="image", subtype="png", cid="<logo@test>")
    uid = send_mail(mp, msg)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = page.goto(mp.http_url + f"?m={uid}")
    assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")  # websocket allowed
    frame = page.frame_locator("#html-frame")
    expect(frame.locator("#logo")).to_have_js_property("naturalWidth", 24)
    expect(frame.locator("#styled")).to_have_css("color", "rgb(1, 2, 3)")
    page.locator("#delete-btn").click()
    wait_until(
        lambda: mp.mailbox.list_messages() == [], what="the UI's delete"
    )  # its DELETE went through
    assert errors == []


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--api-cors", "http://example.com/app"], "--api-cors: 'http://example.com/app' is not"),
        (["--api-cors", "*.example.com"], "e.g. example.com, http://localhost:3000"),
        (["--allowed-hosts", "http://mail.example.com"], "without scheme or port"),
        (["--allowed-hosts", "mail.example.com:8025"], "--allowed-hosts: 'mail.example.com:8025'"),
    ],
)
def test_bad_origin_and_host_lists_say_how_to_write_them(argv: list[str], message: str) -> None:
    from mailpit_py.cli import config_from
    from mailpit_py.config.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        config_from(argv, {})
    assert message in str(err.value)


def test_the_variables_set_both_lists() -> None:
    from mailpit_py.cli import config_from

    env = {"MP_API_CORS": "localhost:3000", "MP_ALLOWED_HOSTS": "mail.example.com"}
    config = config_from([], env)
    assert (config.api_cors, config.allowed_hosts) == ("localhost:3000", "mail.example.com")
