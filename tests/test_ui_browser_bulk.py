"""Bulk actions in the list: a check per row, shift-click ranges, all matching a search across
pages, then read, unread, tag, untag, release and delete, by mouse and by keys. Each action is
checked on the server through the API, not only in the page (Playwright and Debian's Chromium,
as tests/test_ui_browser.py)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from test_relay_ui import relay_ui  # noqa: F401 (a fixture: a relay to a real upstream)
from test_ui_browser import browser, open_page, row, send, server, shared_server  # noqa: F401
from ui_visible import save_screenshot
from upstream import UpstreamServer

from helpers import wait_until
from mailpit_py.server import Server


def _search(mp: Server, query: str) -> dict[str, Any]:
    q = urllib.parse.urlencode({"query": query, "limit": 500})
    with urllib.request.urlopen(f"{mp.http_url}api/v1/search?{q}", timeout=10) as resp:
        return json.load(resp)


def _by_subject(mp: Server, query: str) -> dict[str, dict[str, Any]]:
    return {m["Subject"]: m for m in _search(mp, query)["messages"]}


def _check(page: Any, subject: str, **click: Any) -> None:
    row(page, subject).locator(".row-check").click(**click)


def test_check_rows_and_range_then_read_unread_tag_untag_delete(
    open_page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    for i in range(1, 6):
        send(server, f"Bulk {i}")
    page = open_page(server.http_url)
    expect(page.locator("#list .row")).to_have_count(5)
    bar = page.locator("#bulk-bar")
    expect(bar).to_be_hidden()
    # Newest first: Bulk 5, 4, 3, 2, 1. One click, then shift-click: 4, 3, 2.
    _check(page, "Bulk 4")
    _check(page, "Bulk 2", modifiers=["Shift"])
    expect(bar).to_be_visible()
    expect(page.locator("#bulk-count")).to_have_text("3 messages selected")
    expect(page.locator("#list .row[aria-selected=true]")).to_have_count(3)
    expect(page.locator("#message")).to_be_hidden()  # checking does not open a message
    save_screenshot(page, "bulk-selected-1280")
    chosen = {"Bulk 4", "Bulk 3", "Bulk 2"}

    page.locator("#bulk-read").click()
    expect(bar).to_be_hidden()  # done: the selection is cleared
    msgs = _by_subject(server, "bulk")
    assert {s for s, m in msgs.items() if m["Read"]} == chosen

    _check(page, "Bulk 4")
    _check(page, "Bulk 3")
    page.locator("#bulk-unread").click()
    expect(bar).to_be_hidden()
    msgs = _by_subject(server, "bulk")
    assert {s for s, m in msgs.items() if m["Read"]} == {"Bulk 2"}

    # Tag two messages, one of which has a tag already: both keep what they had.
    _check(page, "Bulk 5")
    page.locator("#bulk-tag").click()
    page.locator("#tag-input").fill("old")
    page.locator("#tag-input").press("Enter")
    page.locator("#tag-save").click()
    wait_until(lambda: _by_subject(server, "bulk")["Bulk 5"]["Tags"] == ["old"], what="old tag")
    _check(page, "Bulk 5")
    _check(page, "Bulk 1")
    page.locator("#bulk-tag").click()
    expect(page.locator("#tag-title")).to_have_text("Add tags to 2 messages")
    page.locator("#tag-input").fill("alpha, beta")
    page.locator("#tag-save").click()
    expect(bar).to_be_hidden()
    msgs = _by_subject(server, "bulk")
    assert msgs["Bulk 5"]["Tags"] == ["alpha", "beta", "old"]
    assert msgs["Bulk 1"]["Tags"] == ["alpha", "beta"]
    assert msgs["Bulk 3"]["Tags"] == []

    _check(page, "Bulk 5")
    _check(page, "Bulk 1")
    page.locator("#bulk-untag").click()
    page.locator("#tag-input").fill("ALPHA")  # tags match ignoring case, as on the server
    page.locator("#tag-save").click()
    expect(bar).to_be_hidden()
    msgs = _by_subject(server, "bulk")
    assert msgs["Bulk 5"]["Tags"] == ["beta", "old"]
    assert msgs["Bulk 1"]["Tags"] == ["beta"]

    _check(page, "Bulk 1")
    _check(page, "Bulk 3")
    page.locator("#bulk-delete").click()
    dialog = page.locator("#confirm-dialog")
    dialog.get_by_role("button", name="Delete 2").click()
    expect(page.locator("#list .row")).to_have_count(3)
    assert set(_by_subject(server, "bulk")) == {"Bulk 5", "Bulk 4", "Bulk 2"}


def test_all_matching_across_pages_then_read_tag_and_delete(
    open_page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    for i in range(55):
        send(server, f"Paged {i:02d}")
    send(server, "Untouched one")
    send(server, "Untouched two")
    page = open_page(server.http_url + "?q=paged")
    expect(page.locator("#page-info")).to_have_text("1–50 of 55 found")
    page.locator("#check-page").check()
    expect(page.locator("#bulk-count")).to_have_text("50 messages selected")
    page.locator("#bulk-all").click()
    expect(page.locator("#bulk-count")).to_have_text("All 55 messages matching")
    page.locator("#bulk-read").click()
    expect(page.locator("#bulk-bar")).to_be_hidden()
    assert _search(server, "paged is:unread")["messages_count"] == 0
    assert _search(server, "untouched is:unread")["messages_count"] == 2

    # By keys: Shift+A twice selects the page, then every match; t tags them.
    page.locator("#list").focus()
    page.keyboard.press("Shift+A")
    expect(page.locator("#bulk-count")).to_have_text("50 messages selected")
    page.keyboard.press("Shift+A")
    expect(page.locator("#bulk-count")).to_have_text("All 55 messages matching")
    page.keyboard.press("t")
    page.locator("#tag-input").fill("sweep")
    page.locator("#tag-input").press("Enter")
    page.locator("#tag-input").press("Enter")  # the empty field: Enter saves
    expect(page.locator("#bulk-bar")).to_be_hidden()
    wait_until(lambda: _search(server, "tag:sweep")["messages_count"] == 55, what="55 tagged")
    assert _search(server, "untouched tag:sweep")["messages_count"] == 0

    page.keyboard.press("Shift+A")
    page.keyboard.press("Shift+A")
    page.keyboard.press("Shift+U")
    expect(page.locator("#bulk-bar")).to_be_hidden()
    wait_until(lambda: _search(server, "paged is:unread")["messages_count"] == 55, what="unread")

    page.keyboard.press("Shift+A")
    page.keyboard.press("Shift+A")
    page.keyboard.press("Delete")
    page.locator("#confirm-dialog").get_by_role("button", name="Delete 55").click()
    expect(page.locator("#list-empty")).to_be_visible()
    assert _search(server, "paged")["messages_count"] == 0
    assert _search(server, "untouched")["messages_count"] == 2


def test_keys_select_one_by_one_and_escape_clears(
    open_page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    for i in range(1, 4):
        send(server, f"Key {i}")
    page = open_page(server.http_url)
    expect(page.locator("#list .row")).to_have_count(3)
    page.locator("#list").focus()
    page.keyboard.press("j")  # Key 3
    page.keyboard.press("x")
    page.keyboard.press("j")  # Key 2
    page.keyboard.press("j")  # Key 1
    page.keyboard.press("x")
    expect(page.locator("#bulk-count")).to_have_text("2 messages selected")
    # Deleted elsewhere (here by a script), a message leaves the selection.
    gone = _by_subject(server, "key")["Key 3"]["ID"]
    req = urllib.request.Request(
        server.http_url + "api/v1/messages",
        data=json.dumps({"IDs": [gone]}).encode(),
        headers={"Content-Type": "application/json"},
        method="DELETE",
    )
    urllib.request.urlopen(req, timeout=10).close()
    expect(page.locator("#bulk-count")).to_have_text("1 message selected")
    page.keyboard.press("Escape")
    expect(page.locator("#bulk-bar")).to_be_hidden()
    page.keyboard.press("x")
    page.keyboard.press("Shift+I")
    expect(page.locator("#bulk-bar")).to_be_hidden()
    wait_until(lambda: _by_subject(server, "key")["Key 1"]["Read"], what="Key 1 read")
    assert not _by_subject(server, "key")["Key 2"]["Read"]


def test_release_many(
    open_page: Any,  # noqa: F811
    relay_ui: tuple[Server, UpstreamServer],  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    mp, up = relay_ui
    for i in range(1, 4):
        send(mp, f"Release {i}")
    page = open_page(mp.http_url)
    expect(page.locator("#list .row")).to_have_count(3)
    _check(page, "Release 1")
    _check(page, "Release 3")
    page.locator("#bulk-release").click()
    expect(page.locator("#release-title")).to_have_text("Release 2 messages")
    page.locator("#release-to").fill("qa@ok.test")
    page.locator("#release-to").press("Enter")
    expect(page.locator("#toast")).to_contain_text("Released 2 messages to qa@ok.test")
    wait_until(lambda: len(up.received) == 2, what="two released copies")
    subjects = sorted(
        next(line for line in r.data.decode().splitlines() if line.startswith("Subject:"))
        for r in up.received
    )
    assert subjects == ["Subject: Release 1", "Subject: Release 3"]
    assert all(r.rcpts == ["qa@ok.test"] for r in up.received)
