"""What POP3 and IMAP clients do shows in the web UI live: deletes and the read state."""

from __future__ import annotations

import imaplib
import poplib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from test_ui_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT, _need_browser, row, wait_live

from helpers import make_server, send_raw
from mailpit_py.server import Server


@pytest.fixture
def page_and_server() -> Iterator[tuple[Any, Server]]:
    _need_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT)
    settings = {"pop3_addr": "127.0.0.1:0", "imap_addr": "127.0.0.1:0", "pop3_auth": "ann:pw"}
    with make_server(**settings) as mp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(mp.http_url)
        wait_live(page)
        yield page, mp
        browser.close()
        assert not errors, errors


def mail(subject: str) -> bytes:
    return f"From: a@example.com\r\nTo: b@example.org\r\nSubject: {subject}\r\n\r\nHi\r\n".encode()


def test_pop3_and_imap_deletes_and_reads_show_live_in_the_ui(
    page_and_server: tuple[Any, Server],
) -> None:
    from playwright.sync_api import expect

    page, mp = page_and_server
    for subject in ("Gone by POP3", "Gone by IMAP", "Read by IMAP"):
        send_raw(mp, mail(subject))
    for subject in ("Gone by POP3", "Gone by IMAP", "Read by IMAP"):
        expect(row(page, subject)).to_be_visible()

    pop = poplib.POP3(*mp.pop3_address, timeout=10)
    pop.user("ann")
    pop.pass_("pw")
    pop.dele(1)
    expect(row(page, "Gone by POP3")).to_be_visible()  # not before QUIT
    pop.quit()
    expect(row(page, "Gone by POP3")).to_have_count(0)

    imap = imaplib.IMAP4(*mp.imap_address, timeout=10)
    imap.login("ann", "pw")
    imap.select("INBOX")
    assert imap.search(None, "SUBJECT", '"Read by IMAP"')[1] == [b"2"]
    expect(row(page, "Read by IMAP")).to_have_class(re.compile(r"\bunread\b"))
    imap.store("2", "+FLAGS", "(\\Seen)")
    expect(row(page, "Read by IMAP")).not_to_have_class(re.compile(r"\bunread\b"))
    imap.store("1", "+FLAGS", "(\\Deleted)")
    imap.expunge()
    expect(row(page, "Gone by IMAP")).to_have_count(0)
    expect(row(page, "Read by IMAP")).to_be_visible()
    imap.logout()
