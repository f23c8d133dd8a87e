"""A burst of mail while the page is open (a test suite sending hundreds of messages): the list
draws the mail that came meanwhile at once, not a page of rows per message, which left the page
seconds behind the mail and deaf to clicks (Playwright and Debian's Chromium, as
tests/test_ui_browser.py)."""

from __future__ import annotations

import re
import smtplib
from email.message import EmailMessage
from typing import Any

from test_ui_browser import browser, open_page, row, server, shared_server  # noqa: F401

from mailpit_py.server import Server

BURST = 40

# Counts the times the list's rows are drawn (each draw replaces them all: one record).
COUNT_DRAWS = """() => {
  window.__draws = 0;
  new MutationObserver((records) => {
    window.__draws += records.filter((r) => r.addedNodes.length > 0).length;
  }).observe(document.querySelector('#list'), { childList: true });
}"""

# Keeps the page's main thread busy for a while (from a task of its own, so this call returns):
# the burst's websocket frames wait meanwhile, as they do behind a slow draw.
BLOCK = """(ms) => setTimeout(() => {
  const end = performance.now() + ms;
  while (performance.now() < end) {}
}, 0)"""


def test_mail_that_came_meanwhile_is_drawn_together(
    open_page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    page = open_page(server.http_url)
    page.evaluate(COUNT_DRAWS)
    page.evaluate(BLOCK, 4000)
    with smtplib.SMTP(*server.smtp_address, timeout=10) as smtp:
        for n in range(BURST):
            msg = EmailMessage()
            msg["From"] = "ci@example.com"
            msg["To"] = "dev@example.com"
            msg["Subject"] = f"Burst {n:02d}"
            msg.set_content("x\n")
            smtp.send_message(msg)
    expect(page.locator("#page-info")).to_have_text(f"1–{BURST} of {BURST}")
    expect(page.locator("#list .row")).to_have_count(BURST)
    expect(page.locator("#list .row").first).to_contain_text(f"Burst {BURST - 1:02d}")
    expect(row(page, "Burst 00")).to_be_visible()
    expect(page).to_have_title(re.compile(rf"^\({BURST}\) "))
    draws = page.evaluate("window.__draws")
    # One draw a message before; now the frames that waited are drawn in a few at most.
    assert 1 <= draws <= BURST // 4, f"{draws} draws for {BURST} messages"
