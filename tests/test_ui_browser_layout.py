"""The message view hides nothing at ordinary widths: every tab and the attachment list show
without scrolling sideways at 360, 390, 1024 and 1280 px, with the Relay tab too, and the bulk
bar and the search syntax fit (Playwright and Debian's Chromium, as tests/test_ui_browser.py).
Screenshots at each width go to test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_ui_browser import browser, open_message, open_page, send  # noqa: F401 (fixtures)
from ui_visible import WIDTHS, assert_fully_visible, assert_no_sideways_scroll, save_screenshot
from upstream import free_port

from helpers import make_server
from mailpit_py.server import Server


@pytest.fixture(scope="module")
def relay_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # A relay that is never used here: it only makes the Relay tab appear, the widest tab row.
    cfg = Path(tmp_path_factory.mktemp("relay")) / "relay.yaml"
    cfg.write_text(f"host: 127.0.0.1\nport: {free_port()}\n")
    with make_server(smtp_relay_config=str(cfg), label="Layout") as mp:
        yield mp


# 360 px: the narrowest phone the UI is made for.
@pytest.mark.parametrize("width", [360, *sorted(WIDTHS.values())])
def test_every_tab_and_the_attachments_show_without_scrolling(
    open_page: Any,  # noqa: F811
    relay_server: Server,
    width: int,
) -> None:
    from playwright.sync_api import expect

    subject = f"Layout at {width}"
    send(
        relay_server,
        subject,
        html="<p>Hello <b>there</b></p>",
        attachment=("quarterly-report-final-version.pdf", b"%PDF-1.4 " + b"x" * 3063),
    )
    page = open_page(relay_server.http_url, viewport={"width": width, "height": 800})
    open_message(page, subject)
    tabs = page.locator("#message .tab")
    names = tabs.all_inner_texts()
    assert any(n.startswith("Relay") for n in names), names
    assert any(n.startswith("Attachments") for n in names), names
    assert_fully_visible(page, "#message .tab")
    strip = page.locator("#att-strip a")
    expect(strip).to_have_count(1)
    expect(strip).to_contain_text("quarterly-report-final-version.pdf")
    expect(strip).to_contain_text("3.0 kB")
    assert strip.get_attribute("download") == "quarterly-report-final-version.pdf"
    assert_fully_visible(page, "#att-strip a")
    assert_fully_visible(page, "#message .msg-toolbar button:visible")
    assert_no_sideways_scroll(page)
    save_screenshot(page, f"message-{width}")
    # Every tab opens from where it is, and the list of files stays under the header.
    for i in range(tabs.count()):
        tabs.nth(i).click()
        expect(tabs.nth(i)).to_have_attribute("aria-selected", "true")
        assert_fully_visible(page, "#att-strip a")
    assert_no_sideways_scroll(page)


def test_the_checks_tables_headers_stay_on_one_line(
    open_page: Any,  # noqa: F811
    relay_server: Server,
) -> None:
    from playwright.sync_api import expect

    html = (
        '<div style="display:flex;position:sticky;border-radius:4px"><svg></svg>'
        "<video src=x></video><form><input></form></div>" * 3
    )
    send(relay_server, "Compatibility table", html=html)
    page = open_page(relay_server.http_url, viewport={"width": 1024, "height": 800})
    open_message(page, "Compatibility table")
    page.locator("#tab-checks").click()
    found = page.locator(".check-table th", has_text=re.compile(r"^Found$"))
    expect(found).to_have_count(1)
    lines = found.evaluate(
        "th => { const r = document.createRange(); r.selectNodeContents(th);"
        " return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; }"
    )
    assert lines == 1, f"the Found header wraps onto {lines} lines"
    save_screenshot(page, "checks-1024")


@pytest.mark.parametrize("width", sorted(WIDTHS.values()))
def test_the_bulk_bar_fits_at_every_width(
    open_page: Any,  # noqa: F811
    relay_server: Server,
    width: int,
) -> None:
    from playwright.sync_api import expect

    send(relay_server, f"Bulk layout at {width}")
    page = open_page(relay_server.http_url, viewport={"width": width, "height": 800})
    page.locator("#check-page").check()
    page.locator("#bulk-all").wait_for(state="attached")
    expect(page.locator("#bulk-bar")).to_be_visible()
    expect(page.locator("#bulk-release")).to_be_visible()  # this server relays
    assert_fully_visible(page, "#bulk-bar button:visible")
    assert_fully_visible(page, "#check-page")
    assert_no_sideways_scroll(page)
    save_screenshot(page, f"bulk-{width}")


@pytest.mark.parametrize("width", [360, *sorted(WIDTHS.values())])
def test_the_search_syntax_shows_whole_at_every_width(
    open_page: Any,  # noqa: F811
    relay_server: Server,
    width: int,
) -> None:
    from playwright.sync_api import expect

    # On a phone the search box is narrow and the help, aligned to its right edge, ran off the
    # screen's left: half of each line of the syntax could not be read.
    page = open_page(relay_server.http_url, viewport={"width": width, "height": 800})
    page.locator("#search-help-btn").click()
    expect(page.locator("#search-help")).to_be_visible()
    assert_fully_visible(page, "#search-help")
    assert_fully_visible(page, "#search-help dt")
    assert_fully_visible(page, "#search-help dd")
    assert_no_sideways_scroll(page)
    save_screenshot(page, f"search-help-{width}")
