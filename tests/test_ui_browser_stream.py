"""A steady stream of mail (a message every 100 ms, as a test suite sends it) while a search is
shown: its results reload as the mail comes, not only once the stream stops, which they did
when each event restarted the wait before the reload (Playwright and Debian's Chromium, as
tests/test_ui_browser.py)."""

from __future__ import annotations

import re
import smtplib
import threading
from email.message import EmailMessage
from typing import Any

from test_ui_browser import browser, open_page, server, shared_server  # noqa: F401

from helpers import wait_until
from mailpit_py.server import Server

STREAM = 60


def _found(page: Any) -> int:
    text = page.locator("#page-info").inner_text()
    match = re.search(r"of (\d+) found", text)
    return int(match.group(1)) if match else 0


def test_search_results_follow_a_steady_stream(
    open_page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    page = open_page(server.http_url + "?q=subject%3Astream")
    stop = threading.Event()
    sent: list[int] = []

    def stream() -> None:
        with smtplib.SMTP(*server.smtp_address, timeout=10) as smtp:
            for n in range(STREAM):
                if stop.is_set():
                    return
                msg = EmailMessage()
                msg["From"] = "ci@example.com"
                msg["To"] = "dev@example.com"
                msg["Subject"] = f"Stream {n:02d}"
                msg.set_content("x\n")
                smtp.send_message(msg)
                sent.append(n)
                stop.wait(0.1)  # the pace of the stream, not a wait for a result

    sender = threading.Thread(target=stream)
    sender.start()
    try:
        # Well before the stream ends, the results have caught up with most of it, twice over:
        # they reload as it goes.
        wait_until(lambda: _found(page) >= 10, timeout=20, what="10 results during the stream")
        first = _found(page)
        wait_until(lambda: _found(page) >= first + 10, timeout=20, what="10 more results")
        assert sender.is_alive() and len(sent) < STREAM, "the stream ended before the results"
    finally:
        stop.set()
        sender.join()
    wait_until(lambda: _found(page) == len(sent), timeout=20, what="every message sent")
