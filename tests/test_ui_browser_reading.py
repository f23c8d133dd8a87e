"""Reading mail one message after another: the newer and older buttons follow the list as it
changes under the open message, j and k go on across pages, and deleting the open message opens
the next one (Playwright and Debian's Chromium, as tests/test_ui_browser.py)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any

from test_ui_browser import (  # noqa: F401
    browser,
    open_message,
    open_page,
    row,
    send,
    server,
    shared_server,
)

from mailpit_py.server import Server


def test_the_newer_and_older_buttons_follow_mail_arriving_and_leaving(
    open_page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    send(server, "Older one")
    send(server, "Newest one")
    page = open_page(server.http_url)
    open_message(page, "Newest one")
    newer, older = page.locator("#msg-newer"), page.locator("#msg-older")
    expect(newer).to_be_disabled()
    expect(older).to_be_enabled()
    # Mail arriving while the newest is open puts a newer one above it: the button must say so.
    send(server, "Arrived while reading")
    expect(row(page, "Arrived while reading")).to_be_visible()
    expect(newer).to_be_enabled()
    newer.click()
    expect(page.locator("#message .msg-subject")).to_have_text("Arrived while reading")
    expect(newer).to_be_disabled()
    # The message below it deleted elsewhere: still an older one; the last one gone: none.
    open_message(page, "Newest one")
    expect(older).to_be_enabled()
    _delete_through_api(server, "Older one")
    expect(row(page, "Older one")).to_have_count(0)
    expect(older).to_be_disabled()
    expect(newer).to_be_enabled()


def test_j_and_k_go_on_across_pages(open_page: Any, server: Server) -> None:  # noqa: F811
    from playwright.sync_api import expect

    # 51 messages: page one holds the newest 50, page two the oldest alone.
    with smtplib.SMTP(*server.smtp_address, timeout=10) as smtp:
        for i in range(51):
            msg = EmailMessage()
            msg["From"] = "alice@example.com"
            msg["To"] = "bob@example.com"
            msg["Subject"] = f"Paged {i:02d}"
            msg.set_content("x\n")
            smtp.send_message(msg)
    page = open_page(server.http_url)
    expect(page.locator("#page-info")).to_have_text("1–50 of 51")
    open_message(page, "Paged 01")  # the last row of page one
    expect(page.locator("#msg-older")).to_be_enabled()
    page.keyboard.press("j")
    expect(page.locator("#message .msg-subject")).to_have_text("Paged 00")
    expect(page.locator("#page-info")).to_have_text("51–51 of 51")
    expect(page.locator("#list .row.selected")).to_have_text(_containing("Paged 00"))
    expect(page.locator("#msg-older")).to_be_disabled()  # the oldest of all
    expect(page.locator("#msg-newer")).to_be_enabled()
    page.keyboard.press("k")
    expect(page.locator("#message .msg-subject")).to_have_text("Paged 01")
    expect(page.locator("#page-info")).to_have_text("1–50 of 51")
    expect(page).to_have_url(_containing("m="))
    expect(page).not_to_have_url(_containing("start="))
    # Each move is one step back in the history: to Paged 00 on page two, then Paged 01.
    page.go_back()
    expect(page.locator("#message .msg-subject")).to_have_text("Paged 00")
    expect(page).to_have_url(_containing("start=50"))
    page.go_back()
    expect(page.locator("#message .msg-subject")).to_have_text("Paged 01")
    expect(page).not_to_have_url(_containing("start="))


def test_deleting_the_open_message_opens_the_next_one(
    open_page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    for n in (1, 2, 3):
        send(server, f"Triage {n}")
    deleted = _id_of(server, "Triage 2")
    page = open_page(server.http_url)
    open_message(page, "Triage 2")
    expect(page).to_have_url(_containing(deleted))
    page.keyboard.press("Delete")
    expect(row(page, "Triage 2")).to_have_count(0)
    expect(page.locator("#message .msg-subject")).to_have_text("Triage 1")  # the older one
    expect(page).not_to_have_url(_containing(deleted))
    page.locator("#delete-btn").click()  # the oldest: the newer one is next
    expect(page.locator("#message .msg-subject")).to_have_text("Triage 3")
    # Back leads to the list as it was before the first message opened, not to an address of
    # a deleted message ("This message no longer exists").
    page.go_back()
    expect(page.locator("#message")).to_be_hidden()
    expect(page).not_to_have_url(_containing("m="))
    expect(page.locator("#list .row")).to_have_count(1)


def test_on_a_phone_deleting_the_open_message_goes_back_to_the_list(
    open_page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    for n in (1, 2):
        send(server, f"Phone {n}")
    page = open_page(server.http_url, viewport={"width": 390, "height": 800})
    open_message(page, "Phone 2")
    expect(page.locator("#list-pane")).to_be_hidden()  # the message covers the list
    page.locator("#delete-btn").click()
    expect(page.locator("#list-pane")).to_be_visible()
    expect(page.locator("#message")).to_be_hidden()
    expect(page.locator("#list .row")).to_have_count(1)


# -- helpers -----------------------------------------------------------------------------------


def _containing(text: str) -> Any:
    import re

    return re.compile(re.escape(text))


def _id_of(mp: Server, subject: str) -> str:
    import json
    import urllib.parse
    import urllib.request

    q = urllib.parse.urlencode({"query": f'subject:"{subject}"'})
    with urllib.request.urlopen(f"{mp.http_url}api/v1/search?{q}", timeout=10) as resp:
        [msg] = json.load(resp)["messages"]
    return str(msg["ID"])


def _delete_through_api(mp: Server, subject: str) -> None:
    import json
    import urllib.request

    body = json.dumps({"IDs": [_id_of(mp, subject)]}).encode()
    req = urllib.request.Request(
        mp.http_url + "api/v1/messages",
        data=body,
        method="DELETE",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
