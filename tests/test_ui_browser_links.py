"""Deep links: the URL holds the open message, its tab, the search and the page, so a link opened
cold, a reload, back and forward all land on the same place; under --webroot the bare prefix and
the server root lead to the UI (Playwright and Debian's Chromium, as tests/test_ui_browser.py)."""

from __future__ import annotations

import http.client
import json
import re
import urllib.request
from typing import Any

from test_ui_browser import browser, open_page, row, send, server, shared_server  # noqa: F401
from ui_visible import save_screenshot

from helpers import make_server
from mailpit_py.server import Server


def _ids(mp: Server, query: str = "") -> dict[str, str]:
    path = f"api/v1/search?query={query}&limit=200" if query else "api/v1/messages?limit=200"
    with urllib.request.urlopen(mp.http_url + path, timeout=10) as resp:
        return {m["Subject"]: m["ID"] for m in json.load(resp)["messages"]}


def test_a_link_opens_message_tab_search_and_page_cold_and_survives_reload_and_history(
    open_page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    for i in range(53):
        send(server, f"Deep {i:02d} linked", html=f"<p>number {i}</p>")
    send(server, "Other mail")
    ids = _ids(server, "linked")
    target = ids["Deep 00 linked"]  # the oldest: on the second page of the search
    link = f"{server.http_url}?q=linked&start=50&m={target}&tab=headers"

    page = open_page(link)
    expect(page.locator("#search")).to_have_value("linked")
    expect(page.locator("#page-info")).to_have_text(re.compile(r"^51–53 of 53"))
    expect(page.locator("#message .msg-subject")).to_have_text("Deep 00 linked")
    expect(page.locator("#tab-headers")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#tab-panel table.headers")).to_contain_text("Deep 00 linked")
    save_screenshot(page, "deep-link-1280")

    # Another tab: the URL follows (replaced, so back does not step through tabs).
    page.locator("#tab-raw").click()
    expect(page).to_have_url(re.compile(r"[?&]tab=raw\b"))
    page.reload()
    expect(page.locator("#message .msg-subject")).to_have_text("Deep 00 linked")
    expect(page.locator("#tab-raw")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#page-info")).to_have_text(re.compile(r"^51–53 of 53"))

    # Another message, then the first page, then back twice and forward twice.
    row(page, "Deep 01 linked").click()
    expect(page.locator("#message .msg-subject")).to_have_text("Deep 01 linked")
    expect(page).to_have_url(re.compile(rf"[?&]m={ids['Deep 01 linked']}\b"))
    page.locator("#prev-page").click()
    expect(page.locator("#page-info")).to_have_text(re.compile(r"^1–50 of 53"))
    expect(page).not_to_have_url(re.compile(r"start="))
    page.go_back()
    expect(page.locator("#page-info")).to_have_text(re.compile(r"^51–53 of 53"))
    page.go_back()
    expect(page.locator("#message .msg-subject")).to_have_text("Deep 00 linked")
    expect(page.locator("#tab-raw")).to_have_attribute("aria-selected", "true")
    page.go_forward()
    expect(page.locator("#message .msg-subject")).to_have_text("Deep 01 linked")
    page.go_forward()
    expect(page.locator("#page-info")).to_have_text(re.compile(r"^1–50 of 53"))
    expect(page.locator("#search")).to_have_value("linked")

    # A link to a tab this message lacks falls back to its first view.
    plain = _ids(server)["Other mail"]
    page2 = open_page(f"{server.http_url}?m={plain}&tab=html")
    expect(page2.locator("#message .msg-subject")).to_have_text("Other mail")
    expect(page2.locator("#tab-text")).to_have_attribute("aria-selected", "true")


def _location(mp: Server, path: str) -> tuple[int, str]:
    host, port = mp.http_address
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("Location") or ""
    finally:
        conn.close()


def test_under_a_webroot_the_root_and_the_bare_prefix_redirect_to_the_ui(
    open_page: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    with make_server(webroot="/mail/") as mp:
        # As Mailpit: /mail answers 302 to /mail/; the server root goes there too.
        assert _location(mp, "/mail") == (302, "/mail/")
        assert _location(mp, "/") == (302, "/mail/")
        assert _location(mp, "/mail?q=hello") == (302, "/mail/?q=hello")
        assert _location(mp, "/elsewhere")[0] == 404
        send(mp, "Prefixed link")
        mid = _ids(mp)["Prefixed link"]
        host, port = mp.http_address
        page = open_page(f"http://{host}:{port}/mail?m={mid}&tab=headers")
        expect(page).to_have_url(re.compile(r"/mail/\?m="))
        expect(page.locator("#message .msg-subject")).to_have_text("Prefixed link")
        expect(page.locator("#tab-headers")).to_have_attribute("aria-selected", "true")
        page2 = open_page(f"http://{host}:{port}/")
        expect(page2).to_have_url(re.compile(r"/mail/$"))
        expect(page2.locator("#list .row")).to_have_count(1)
