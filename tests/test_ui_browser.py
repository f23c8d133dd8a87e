"""The web UI end to end: Playwright driving Debian's headless Chromium against a real server.

One browser and one server for the module (emptied before each test), a fresh browser context
per test. Every wait is on a condition (Playwright's expect / wait_for_*), never a fixed sleep.
A failing test leaves screenshots of its pages under test-artifacts/.
"""

from __future__ import annotations

import os
import re
import smtplib
import struct
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO, RawClient, make_server
from mailpit_py.server import Server

CHROMIUM = os.environ.get("MAILPIT_PY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = REPO / "test-artifacts"
TIMEOUT = 10_000  # ms: the longest any single condition may take


# -- fixtures ----------------------------------------------------------------------------------


def _need_browser() -> None:
    why = ""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        why = f"Chromium is not installed at {CHROMIUM}"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            why = "the playwright package is missing"
    if not why:
        return
    how = (
        "install it with `make test` (as root it runs `apt-get install -y chromium`), or "
        "`sudo apt-get install chromium` and `pip install -e '.[test]'`; "
        "MAILPIT_PY_CHROMIUM points at another binary"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why}: the browser tests must run in CI; {how}")
    pytest.skip(f"{why}: {how}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shared_server() -> Iterator[Server]:
    with make_server(label="UI test") as mp:
        yield mp


@pytest.fixture
def server(shared_server: Server) -> Server:
    """The module's server, emptied: stopping a server takes about a second, emptying it none."""
    req = urllib.request.Request(shared_server.http_url + "api/v1/messages", method="DELETE")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    return shared_server


@pytest.fixture
def open_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Opens pages in one fresh browser context; screenshots them all if the test fails."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT)
    pages: list[Any] = []
    errors: list[str] = []

    def opener(url: str, *, live: bool = True, viewport: dict[str, int] | None = None) -> Any:
        page = context.new_page()
        if viewport:
            page.set_viewport_size(viewport)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        pages.append(page)
        page.goto(url)
        if live:
            wait_live(page)
        return page

    failed_before = request.session.testsfailed
    yield opener
    if request.session.testsfailed > failed_before:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        for i, page in enumerate(pages):
            try:
                page.screenshot(path=str(ARTIFACTS / f"{name}-{i}.png"), full_page=True)
            except Exception:  # a page that crashed has nothing to show
                pass
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


# -- helpers -----------------------------------------------------------------------------------


def wait_live(page: Any) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#conn")).to_have_attribute("data-state", "live")


def tiny_png(width: int = 24, height: int = 12) -> bytes:
    rows = b"".join(b"\x00" + b"\x25\x63\xeb" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def send(
    mp: Server,
    subject: str,
    *,
    sender: str = "alice@example.com",
    to: str = "bob@example.com",
    text: str = "Hello there.\n",
    html: str | None = None,
    inline_png: bytes | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> None:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
        if inline_png is not None:
            msg.get_payload()[1].add_related(
                inline_png, maintype="image", subtype="png", cid="<logo@test>"
            )
    if attachment is not None:
        name, data = attachment
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    with smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp:
        smtp.send_message(msg)


def row(page: Any, subject: str) -> Any:
    return page.locator("#list .row", has_text=subject)


def open_message(page: Any, subject: str) -> None:
    from playwright.sync_api import expect

    row(page, subject).click()
    expect(page.locator("#message .msg-subject")).to_have_text(subject)
    # No stray text between the subject and the header list (an absent tag row once showed
    # as the word "null").
    head_text = page.locator("#msg-head").evaluate(
        "el => [...el.childNodes].filter(n => n.nodeType === Node.TEXT_NODE)"
        ".map(n => n.textContent).join('')"
    )
    assert head_text.strip() == ""


# -- the tests ---------------------------------------------------------------------------------


def test_new_message_appears_live_without_reload(open_page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    page = open_page(server.http_url)
    expect(page.locator("#list-empty")).to_be_visible()
    page.evaluate("window.__sameDocument = true")
    send(server, "Live delivery check")
    expect(row(page, "Live delivery check")).to_be_visible()
    expect(row(page, "Live delivery check")).to_have_class(re.compile(r"\bunread\b"))
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    # The unread count and the label show in the title and on the canvas-drawn favicon.
    expect(page).to_have_title("(1) UI test · mailpit_py")
    expect(page.locator("#label")).to_have_text("UI test")
    assert page.locator("#favicon").get_attribute("href").startswith("data:image/png")


def test_html_body_renders_in_sandboxed_iframe_with_inline_image(
    open_page: Any, server: Server
) -> None:
    from playwright.sync_api import expect

    page = open_page(server.http_url)
    html = (
        '<html><body><h1 id="greeting">Hi Bob</h1><img id="logo" src="cid:logo@test"></body></html>'
    )
    send(server, "Inline image", html=html, inline_png=tiny_png())
    open_message(page, "Inline image")
    iframe = page.locator("#html-frame")
    expect(iframe).to_be_visible()
    sandbox = iframe.get_attribute("sandbox")
    assert sandbox is not None and "allow-scripts" not in sandbox
    inside = page.frame_locator("#html-frame")
    expect(inside.locator("#greeting")).to_have_text("Hi Bob")
    expect(inside.locator("#logo")).to_have_js_property("naturalWidth", 24)  # cid: resolved
    # Opening it marked it read, in the list and in the title.
    expect(row(page, "Inline image")).not_to_have_class(re.compile(r"\bunread\b"))
    expect(page).to_have_title("UI test · mailpit_py")


def test_mail_that_arrives_while_the_first_page_loads_stays_in_the_list(
    open_page: Any, server: Server
) -> None:
    from playwright.sync_api import expect

    # The pages of the list asked for while the page starts (the first load, and the catch-up
    # when the websocket opens) are answered before the mail exists, and those answers reach the
    # page only after the mail's live event has: they must not wipe the new row for good.
    held: list[tuple[Any, Any]] = []
    holding = [True]

    def hold_lists(route: Any) -> None:
        if holding[0]:
            held.append((route, route.fetch()))
        else:
            route.continue_()

    page = open_page(server.http_url)
    expect(page.locator("body")).to_have_class(re.compile(r"\bready\b"))  # nothing in flight
    page.route(re.compile(r".*/api/v1/messages\?.*"), hold_lists)
    page.reload()
    wait_live(page)
    send(server, "Arrived during the first load", text="hello")
    expect(row(page, "Arrived during the first load")).to_be_visible()
    assert held, "no page of the list was asked for"
    holding[0] = False
    for route, stale in held:
        route.fulfill(response=stale)
    expect(page.locator("body")).to_have_class(re.compile(r"\bready\b"))
    expect(row(page, "Arrived during the first load")).to_be_visible()


def test_script_in_html_body_does_not_run(open_page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    page = open_page(server.http_url)
    page.evaluate(
        "window.__messages = []; addEventListener('message', e => window.__messages.push(e.data))"
    )
    html = (
        '<p id="body">evil</p>'
        "<script>document.body.setAttribute('data-ran', 'yes');"
        "parent.postMessage('script ran', '*'); top.document.title = 'pwned';</script>"
        "<img src=\"data:,\" onerror=\"document.body.setAttribute('data-onerror', 'yes')\">"
    )
    send(server, "Has a script", html=html)
    open_message(page, "Has a script")
    frame = page.locator("#html-frame").element_handle().content_frame()
    frame.wait_for_selector("#body")
    assert frame.evaluate("document.querySelectorAll('script').length") == 1  # present, inert
    assert frame.evaluate("document.body.getAttribute('data-ran')") is None
    assert frame.evaluate("document.body.getAttribute('data-onerror')") is None
    assert page.evaluate("window.__messages") == []
    expect(page).not_to_have_title("pwned")


def test_remote_images_are_blocked_until_allowed_for_the_message(
    open_page: Any, server: Server
) -> None:
    from playwright.sync_api import expect

    page = open_page(server.http_url)
    send(server, "Tracking pixel", html='<p>hi</p><img src="http://127.0.0.1:9/pixel.gif">')
    open_message(page, "Tracking pixel")
    expect(page.locator("#remote-banner")).to_be_visible()
    # Wait for the frame's document rather than read it at once (it is set asynchronously).
    frame = page.locator("#html-frame")
    expect(frame).to_have_attribute("srcdoc", re.compile(r"img-src data: http"))
    assert "img-src *" not in (frame.get_attribute("srcdoc") or "")
    page.locator("#allow-remote").click()
    expect(page.locator("#remote-banner")).to_have_count(0)
    expect(page.locator("#html-frame")).to_have_attribute("srcdoc", re.compile(r"img-src \*"))
    # The width switch sets the preview width.
    page.get_by_role("button", name="Phone").click()
    expect(page.locator("#html-frame")).to_have_css("width", "375px")
    page.get_by_role("button", name="Tablet").click()
    expect(page.locator("#html-frame")).to_have_css("width", "768px")


def test_smtp_tab_shows_the_conversation_and_envelope(open_page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    page = open_page(server.http_url)
    send(server, "Show the SMTP", sender="carol@example.com")
    open_message(page, "Show the SMTP")
    page.locator("#tab-smtp").click()
    transcript = page.locator(".transcript")
    expect(transcript).to_contain_text(re.compile(r"MAIL FROM:<carol@example.com>", re.I))
    client_line = transcript.locator("tr.dir-client", has_text=re.compile("mail from", re.I))
    expect(client_line).to_have_count(1)
    queued = transcript.locator(
        "tr.dir-server.code-2xx",
        has=page.locator("td.line", has_text=re.compile(r"^250 2\.0\.0 .*queued as")),
    )
    expect(queued).to_have_count(1)
    expect(page.locator(".envelope")).to_contain_text("<carol@example.com>")
    expect(page.locator(".envelope")).to_contain_text("<bob@example.com>")
    # The other tabs: text, headers, raw and warnings.
    page.locator("#tab-headers").click()
    expect(page.locator("table.headers")).to_contain_text("Show the SMTP")
    page.locator("#tab-raw").click()
    expect(page.locator("pre.raw")).to_contain_text("Subject: Show the SMTP")
    page.locator("#tab-warnings").click()
    expect(page.locator(".warnings")).to_contain_text("Date")


def test_search_narrows_the_list_and_the_url_keeps_it(open_page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    page = open_page(server.http_url)
    send(server, "Apples are red")
    send(server, "Bananas are yellow")
    expect(page.locator("#list .row")).to_have_count(2)
    page.locator("#search").fill("subject:bananas")
    expect(page.locator("#list .row")).to_have_count(1)
    expect(row(page, "Bananas are yellow")).to_be_visible()
    expect(page).to_have_url(re.compile(r"\?q=subject%3Abananas"))
    page.reload()
    wait_live(page)
    expect(page.locator("#search")).to_have_value("subject:bananas")
    expect(page.locator("#list .row")).to_have_count(1)
    page.locator("#search").fill("nothing-matches-this")
    expect(page.locator("#list-empty")).to_be_visible()
    page.locator("#search").fill("")
    expect(page.locator("#list .row")).to_have_count(2)


def test_delete_removes_the_message_live_in_a_second_page(open_page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    send(server, "Delete me")
    send(server, "Keep me")
    first = open_page(server.http_url)
    second = open_page(server.http_url)
    expect(row(second, "Delete me")).to_be_visible()
    open_message(first, "Delete me")
    first.locator("#delete-btn").click()
    expect(row(first, "Delete me")).to_have_count(0)
    expect(row(second, "Delete me")).to_have_count(0)
    expect(row(second, "Keep me")).to_be_visible()


def test_attachment_downloads_with_the_right_bytes(
    open_page: Any, server: Server, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    payload = bytes(range(256)) * 40
    page = open_page(server.http_url)
    send(server, "With attachment", attachment=("report.bin", payload))
    expect(row(page, "With attachment").locator(".clip")).to_be_visible()
    open_message(page, "With attachment")
    page.locator("#tab-attachments").click()
    expect(page.locator(".attachment")).to_contain_text("report.bin")
    with page.expect_download() as info:
        page.locator(".attachment a", has_text="Download").click()
    download = info.value
    assert download.suggested_filename == "report.bin"
    target = tmp_path / "report.bin"
    download.save_as(target)
    assert target.read_bytes() == payload


def test_page_recovers_when_the_server_restarts(open_page: Any) -> None:
    from playwright.sync_api import expect

    first = make_server(label="UI test")
    first.start()
    port = int(first.http_url.rstrip("/").rsplit(":", 1)[1])
    second = None
    try:
        page = open_page(first.http_url)
        send(first, "Before the restart")
        expect(row(page, "Before the restart")).to_be_visible()
        first.stop()
        expect(page.locator("#conn")).not_to_have_attribute("data-state", "live")
        second = make_server(label="UI test", http_addr=f"127.0.0.1:{port}")
        second.start()
        wait_live(page)
        send(second, "After the restart")
        expect(row(page, "After the restart")).to_be_visible()
        expect(row(page, "Before the restart")).to_have_count(0)  # a new, empty database
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_keyboard_navigation(open_page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    for n in (1, 2, 3):
        send(server, f"Keyboard {n}")
    page = open_page(server.http_url)
    expect(page.locator("#list .row")).to_have_count(3)
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("j")
    expect(page.locator("#list .row.selected")).to_have_text(re.compile("Keyboard 3"))
    page.keyboard.press("j")
    expect(page.locator("#list .row.selected")).to_have_text(re.compile("Keyboard 2"))
    page.keyboard.press("k")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.locator("#message .msg-subject")).to_have_text("Keyboard 2")
    page.keyboard.press("j")  # with a message open, j opens the next (older) one
    expect(page.locator("#message .msg-subject")).to_have_text("Keyboard 1")
    page.keyboard.press("Escape")
    expect(page.locator("#message")).to_be_hidden()
    expect(page.locator("#list .row.selected")).to_have_text(re.compile("Keyboard 1"))
    page.keyboard.press("Delete")
    expect(page.locator("#list .row")).to_have_count(2)
    expect(row(page, "Keyboard 1")).to_have_count(0)
    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type("Keyboard 3")
    expect(page.locator("#list .row")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(page.locator("#search")).not_to_be_focused()
    page.keyboard.press("?")
    expect(page.locator("#keys-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#keys-dialog")).to_be_hidden()


def test_sessions_page_lists_sessions_with_transcripts(open_page: Any) -> None:
    with make_server() as server:
        check_sessions_page(open_page, server)


def check_sessions_page(open_page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    send(server, "Delivered one")
    idle = RawClient(server.smtp_address)
    assert idle.cmd("EHLO idle.example").startswith("250")
    assert idle.cmd("QUIT").startswith("221")
    idle.close()
    page = open_page(server.http_url)
    page.get_by_role("link", name="SMTP sessions").click()
    expect(page).to_have_url(re.compile(r"view=sessions"))
    sessions = page.locator("#session-list .row")
    expect(sessions).to_have_count(2)
    sessions.filter(has_text="idle.example").click()
    detail = page.locator("#session-detail")
    expect(detail.locator(".transcript")).to_contain_text("EHLO idle.example")
    expect(detail.locator(".transcript")).to_contain_text("221")
    sessions.filter(has_text="0 messages").first.wait_for()
    # From a delivering session to its message.
    sessions.filter(has_text="1 message").click()
    detail.locator(".msg-link").click()
    expect(page.locator("#message .msg-subject")).to_have_text("Delivered one")


def test_phone_width_shows_list_then_message(open_page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    send(server, "Small screen")
    page = open_page(server.http_url, viewport={"width": 375, "height": 740})
    open_message(page, "Small screen")
    expect(page.locator("#list-pane")).to_be_hidden()
    page.get_by_role("button", name="Back to the list").click()
    expect(page.locator("#list-pane")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")


def test_theme_switch_and_hidden_release_dialog(open_page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    send(server, "Theme")
    page = open_page(server.http_url)
    html = page.locator("html")
    expect(html).not_to_have_attribute("data-theme", re.compile("."))
    page.locator("#theme-btn").click()
    expect(html).to_have_attribute("data-theme", "light")
    page.locator("#theme-btn").click()
    expect(html).to_have_attribute("data-theme", "dark")
    page.reload()
    expect(html).to_have_attribute("data-theme", "dark")
    open_message(page, "Theme")
    expect(page.locator("#release-btn")).to_have_count(0)  # no relay configured


def test_ui_works_under_a_webroot(open_page: Any) -> None:
    from playwright.sync_api import expect

    with make_server(webroot="/mail/") as mp:
        page = open_page(mp.http_url)
        assert page.url.rstrip("/").endswith("/mail")
        send(
            mp, "Under a prefix", html='<img id="logo" src="cid:logo@test">', inline_png=tiny_png()
        )
        open_message(page, "Under a prefix")
        # Through a frame locator, found again at each try: a handle on the frame taken before
        # its srcdoc document loaded once waited in vain (on a loaded CI machine).
        logo = page.frame_locator("#html-frame").locator("#logo")
        expect(logo).to_have_js_property("naturalWidth", 24)  # loaded from the part URL
        page.locator("#search").fill("prefix")
        expect(page).to_have_url(re.compile(r"/mail/\?q=prefix"))


# -- serving, without a browser ----------------------------------------------------------------


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_index_and_assets_are_served_with_cache_headers(server: Server) -> None:
    status, headers, body = _get(server.http_url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-cache"
    page = body.decode()
    assert '<base href="/">' in page
    script = re.search(r'<script type="module" src="(ui/[^"]+\.js)"', page)
    style = re.search(r'<link rel="stylesheet" href="(ui/[^"]+\.css)"', page)
    assert script and style
    for path, ctype in ((script.group(1), "text/javascript"), (style.group(1), "text/css")):
        status, headers, _ = _get(server.http_url + path)
        assert status == 200 and headers["Content-Type"].startswith(ctype)
        assert "immutable" in headers["Cache-Control"]
    version = script.group(1).split("/")[1]
    status, headers, _ = _get(server.http_url + "ui/oldversion/app.js")
    assert status == 200 and headers["Cache-Control"] == "no-cache"
    assert _get(server.http_url + f"ui/{version}/nope.js")[0] == 404
    assert _get(server.http_url + f"ui/{version}/index.html")[0] == 404


def test_no_asset_comes_from_outside() -> None:
    web = REPO / "web"
    for path in web.rglob("*"):
        if path.suffix in {".html", ".js", ".css"}:
            text = path.read_text()
            assert not re.search(r"""(src|href|import|from)\s*=?\s*["']https?://""", text), path
            assert "@import url(http" not in text, path


def test_mark_unread_tag_and_delete_all(open_page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    send(server, "Action one")
    send(server, "Action two")
    page = open_page(server.http_url)
    open_message(page, "Action one")
    expect(row(page, "Action one")).not_to_have_class(re.compile(r"\bunread\b"))
    page.get_by_role("button", name="Mark unread").click()
    expect(row(page, "Action one")).to_have_class(re.compile(r"\bunread\b"))
    page.locator("#tag-btn").click()
    page.locator("#tag-input").fill("urgent, billing")
    page.locator("#tag-dialog").get_by_role("button", name="Save").click()
    # In the server's order (sorted), from the moment the dialog closes.
    expect(row(page, "Action one").locator(".tag")).to_have_text(["billing", "urgent"])
    expect(page.locator("#nav-tags")).to_contain_text("urgent")
    page.locator("#nav-tags").get_by_text("urgent").click()
    expect(page.locator("#list .row")).to_have_count(1)
    page.locator("#search").fill("")
    expect(page.locator("#list .row")).to_have_count(2)
    page.locator("#delete-all").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator("#list .row")).to_have_count(2)
    page.locator("#delete-all").click()
    dialog.get_by_role("button", name="Delete all").click()
    expect(page.locator("#list-empty")).to_be_visible()
    expect(page).to_have_title("UI test · mailpit_py")
