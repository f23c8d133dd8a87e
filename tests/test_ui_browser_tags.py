"""Tags edited as chips in the browser: Enter or a comma adds one, × or Backspace removes one, and
the field suggests the tags in use; what is saved is what the server reports, in its order
(sorted). Playwright and Debian's Chromium, as tests/test_ui_browser.py."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from test_ui_browser import (  # noqa: F401 (fixtures)
    browser,
    open_message,
    open_page,
    send,
    server,
    shared_server,
)
from ui_visible import save_screenshot

from mailpit_py.server import Server


def _get(mp: Server, path: str) -> Any:
    with urllib.request.urlopen(mp.http_url + path, timeout=10) as resp:
        return json.load(resp)


def test_tags_as_chips_with_suggestions(
    open_page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    send(server, "Already tagged")
    first = _get(server, "api/v1/messages")["messages"][0]["ID"]
    req = urllib.request.Request(
        server.http_url + "api/v1/tags",
        data=json.dumps({"IDs": [first], "Tags": ["Zeta", "invoices"]}).encode(),
        headers={"Content-Type": "application/json"},
        method="PUT",
    )
    urllib.request.urlopen(req, timeout=10).close()
    send(server, "Chip me")
    page = open_page(server.http_url)
    open_message(page, "Chip me")
    page.locator("#tag-btn").click()
    dialog = page.locator("#tag-dialog")
    expect(dialog).to_be_visible()
    # Suggestions: the tags in use, from GET /api/v1/tags.
    options = page.locator("#tag-options option")
    expect(options).to_have_count(2)
    assert sorted(options.evaluate_all("os => os.map(o => o.value)")) == ["Zeta", "invoices"]
    expect(page.locator("#tag-input")).to_be_focused()

    chips = page.locator("#tag-chips .chip > span")
    page.keyboard.type("urgent")
    page.keyboard.press("Enter")
    expect(chips).to_have_text(["urgent"])
    page.keyboard.type("billing,later,")
    expect(chips).to_have_text(["urgent", "billing", "later"])
    page.keyboard.type("URGENT,")  # the same tag ignoring case is not added twice
    expect(chips).to_have_text(["urgent", "billing", "later"])
    page.keyboard.press("Backspace")  # the empty field: the last chip goes
    expect(chips).to_have_text(["urgent", "billing"])
    page.get_by_role("button", name="Remove tag urgent").click()
    expect(chips).to_have_text(["billing"])
    page.keyboard.type("invoices")
    save_screenshot(page, "tag-chips-1280")
    page.locator("#tag-save").click()  # the text still in the field counts
    expect(dialog).to_be_hidden()
    tags = page.locator("#msg-head .msg-tags .tag")
    expect(tags).to_have_text(["billing", "invoices"])
    msg = _get(server, "api/v1/search?query=subject:chip")["messages"][0]
    assert msg["Tags"] == ["billing", "invoices"]

    # Editing again starts from the message's tags; removing all of them saves none.
    page.locator("#tag-btn").click()
    expect(chips).to_have_text(["billing", "invoices"])
    page.locator("#tag-input").press("Backspace")
    page.locator("#tag-input").press("Backspace")
    expect(chips).to_have_count(0)
    page.locator("#tag-input").press("Enter")  # Enter in the empty field saves
    expect(dialog).to_be_hidden()
    expect(tags).to_have_count(0)
    assert _get(server, "api/v1/search?query=subject:chip")["messages"][0]["Tags"] == []
