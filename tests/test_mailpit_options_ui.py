"""Mailpit's web UI options seen in a real Chromium: --hide-delete-all-button."""

from __future__ import annotations

import smtplib

import pytest
from test_ui_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT, _need_browser

from helpers import make_server


@pytest.mark.parametrize("hide", [True, False])
def test_hide_delete_all_button(hide: bool) -> None:
    _need_browser()
    from playwright.sync_api import expect, sync_playwright

    with make_server(hide_delete_all_button=hide).start() as mp:
        with smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp:
            smtp.sendmail("a@example.com", ["b@example.com"], "Subject: Kept\r\n\r\nhi\r\n")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page()
                page.set_default_timeout(TIMEOUT)
                page.goto(mp.http_url)
                expect(page.locator("#list .row")).to_have_count(1)
                if hide:
                    expect(page.locator("#delete-all")).to_be_hidden()
                else:
                    expect(page.locator("#delete-all")).to_be_visible()
            finally:
                browser.close()
