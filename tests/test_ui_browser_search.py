"""A search the server refuses (a bad date or size) in the browser: the list says why where the
results would be, instead of keeping the last results under it (Playwright and Debian's
Chromium, as tests/test_ui_browser.py)."""

from __future__ import annotations

from typing import Any

from test_ui_browser import browser, open_page, row, send, server, shared_server  # noqa: F401

from mailpit_py.server import Server


def test_a_refused_search_says_why_in_place_of_the_results(
    open_page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    send(server, "Apples are red")
    send(server, "Bananas are yellow")
    page = open_page(server.http_url)
    page.locator("#search").fill("subject:apples")
    expect(page.locator("#list .row")).to_have_count(1)
    page.locator("#search").fill("after:yesterdayish")
    expect(page.locator("#list .row")).to_have_count(0)  # not the apples of the last search
    expect(page.locator("#list-empty-text")).to_have_text("This search cannot run")
    expect(page.locator("#list-empty-hint")).to_contain_text("after: needs a date")
    expect(page.locator("#page-info")).to_have_text("")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    # Mail arriving meanwhile refreshes the search, which is still refused: no error escapes.
    send(server, "Cherries are red")
    page.locator("#search").fill("red")
    expect(page.locator("#list .row")).to_have_count(2)
    expect(page.locator("#list-empty")).to_be_hidden()
    page.locator("#search").fill("nothing-matches-this")
    expect(page.locator("#list-empty-text")).to_have_text("No messages match this search")


def test_a_refused_search_in_the_address_opens_with_its_reason(
    open_page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    send(server, "Anything")
    page = open_page(server.http_url + "?q=before%3Asomeday")
    expect(page.locator("#search")).to_have_value("before:someday")
    expect(page.locator("#list-empty-text")).to_have_text("This search cannot run")
    expect(page.locator("#list-empty-hint")).to_contain_text("before: needs a date")
    page.locator("#brand").click()
    expect(row(page, "Anything")).to_be_visible()
