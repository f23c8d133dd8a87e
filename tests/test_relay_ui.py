"""The release dialog and the Relay tab in a real browser (Playwright, Debian's Chromium) against
a server relaying to a real upstream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_relay import relay_yaml
from test_ui_browser import browser, open_message, open_page, send  # noqa: F401 (fixtures)
from upstream import UpstreamServer

from helpers import make_server, wait_until
from mailpit_py.server import Server


@pytest.fixture
def relay_ui(tmp_path: Path) -> Iterator[tuple[Server, UpstreamServer]]:
    with UpstreamServer() as up:
        cfg = relay_yaml(tmp_path, up.port, **{"allowed-recipients": r"@ok\.test$"})
        with make_server(smtp_relay_config=cfg) as mp:
            yield mp, up


def test_release_dialog_shows_a_refusal_then_releases_and_the_relay_tab_lists_it(
    open_page: Any,  # noqa: F811
    relay_ui: tuple[Server, UpstreamServer],
) -> None:
    from playwright.sync_api import expect

    mp, up = relay_ui
    page = open_page(mp.http_url)
    send(mp, "Release me", to="bob@example.com")
    open_message(page, "Release me")

    page.locator("#release-btn").click()
    dialog = page.locator("#release-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#release-server")).to_contain_text(f"127.0.0.1:{up.port}")
    page.locator("#release-to").fill("customer@real.test")
    dialog.locator("button[value=ok]").click()
    error = page.locator("#release-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("customer@real.test")
    expect(dialog).to_be_visible()  # still open, to correct the address
    assert up.received == []

    page.locator("#release-to").fill("tester@ok.test")
    page.locator("#release-to").press("Enter")  # Enter releases (Cancel is the form's default)
    expect(dialog).to_be_hidden()
    expect(page.locator("#toast")).to_contain_text("Released to tester@ok.test")
    wait_until(lambda: up.received, what="the released copy")
    assert up.received[0].rcpts == ["tester@ok.test"]

    page.locator("#tab-relay").click()
    attempts = page.locator(".relay-attempts tbody tr")
    expect(attempts).to_have_count(1)
    expect(attempts.first).to_contain_text("tester@ok.test")
    expect(attempts.first).to_contain_text("250 2.0.0 Ok: upstream got it")
    expect(attempts.first.locator(".outcome")).to_have_text("sent")
    expect(page.locator(".relay-queue")).to_contain_text("release: sent")
