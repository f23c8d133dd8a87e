"""A page whose websocket is refused (a proxy that does not pass it) polls the API: mail
deleted meanwhile leaves the list, and the open message, if it was one of them, closes as a
live delete would close it (Playwright and Debian's Chromium, as tests/test_ui_browser.py)."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from test_ui_browser import TIMEOUT, browser, row, send, server, shared_server  # noqa: F401

from mailpit_py.server import Server


@pytest.fixture
def polling_page(browser: Any) -> Iterator[Any]:  # noqa: F811
    """A page in a context whose websocket to the server is closed as it opens."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT)
    context.route_web_socket("**/api/events", lambda ws: ws.close())
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def _delete(mp: Server, subject: str) -> None:
    q = urllib.parse.urlencode({"query": f'subject:"{subject}"'})
    with urllib.request.urlopen(f"{mp.http_url}api/v1/search?{q}", timeout=10) as resp:
        [msg] = json.load(resp)["messages"]
    req = urllib.request.Request(
        mp.http_url + "api/v1/messages",
        data=json.dumps({"IDs": [msg["ID"]]}).encode(),
        method="DELETE",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def test_the_open_message_deleted_while_polling_closes(
    polling_page: Any,
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    send(server, "Stays")
    send(server, "Deleted elsewhere")
    page = polling_page
    page.goto(server.http_url)
    expect(page.locator("#conn")).to_have_attribute("data-state", "polling")
    row(page, "Deleted elsewhere").click()
    expect(page.locator("#message .msg-subject")).to_have_text("Deleted elsewhere")
    _delete(server, "Deleted elsewhere")
    expect(row(page, "Deleted elsewhere")).to_have_count(0)  # the next poll's list
    expect(page.locator("#message")).to_be_hidden()
    expect(page.locator("#toast")).to_have_text("This message was deleted")
    expect(page).not_to_have_url(re.compile(r"[?&]m="))
    # A message that only left the list (another open, the other one deleted) stays open.
    send(server, "Third")
    expect(row(page, "Third")).to_be_visible()
    row(page, "Stays").click()
    _delete(server, "Third")
    expect(row(page, "Third")).to_have_count(0)
    expect(page.locator("#message .msg-subject")).to_have_text("Stays")
