"""A renamed mailbox's old address leads to its new name from the store's record of the latest
renames, on both backends: after a restart, on every instance of a shared PostgreSQL database,
for the UI page (302) and in the API's 404 (which names the new one), and a browser tab that
polls, its websocket down, follows the rename instead of taking it for a deletion."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from boxweb import call
from test_store_contract import mailbox  # noqa: F401 (a fixture: a Mailbox on each backend)
from test_ui_browser import browser  # noqa: F401

from helpers import make_server
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.server import Server
from mailpit_py.store.interface import RENAMES_KEPT

HEADER = "X-Mailbox-Renamed-To"


def test_each_old_name_leads_to_the_name_now_until_the_mailbox_goes(
    mailbox: Mailbox,  # noqa: F811
) -> None:
    mailbox.create_box("blog")
    assert mailbox.renamed_to("blog") is None
    mailbox.rename_box("blog", "news")
    mailbox.rename_box("news", "press")
    # Every old name leads to the name now, not along a chain of old ones.
    assert (mailbox.renamed_to("blog"), mailbox.renamed_to("news")) == ("press", "press")
    assert mailbox.renamed_to("press") is None
    # Renamed back to a name it had: that name is the mailbox's again, the others follow it.
    mailbox.rename_box("press", "blog")
    assert mailbox.renamed_to("blog") is None
    assert (mailbox.renamed_to("news"), mailbox.renamed_to("press")) == ("blog", "blog")
    # A new mailbox under an old name is itself; deleted, the renamed one's names lead nowhere.
    mailbox.create_box("news")
    mailbox.delete_box("blog")
    assert (mailbox.renamed_to("press"), mailbox.renamed_to("blog")) == (None, None)


def test_the_renames_survive_reopening_and_the_latest_are_kept(database: str) -> None:
    mb = Mailbox(Config(database=database, max_messages=0))
    try:
        mb.create_box("r0")
        for n in range(RENAMES_KEPT + 3):
            mb.rename_box(f"r{n}", f"r{n + 1}")
    finally:
        mb.close()
    mb = Mailbox(Config(database=database, max_messages=0))
    try:
        last = f"r{RENAMES_KEPT + 3}"
        kept = [n for n in range(RENAMES_KEPT + 3) if mb.renamed_to(f"r{n}") == last]
        # The oldest three went; the latest RENAMES_KEPT, each to the name now, stayed.
        assert kept == list(range(3, RENAMES_KEPT + 3))
    finally:
        mb.close()


def _rename(url: str, old: str, new: str) -> None:
    status, _, body = call(f"{url}api/v1/mailboxes/{old}", method="PUT", body={"Name": new})
    assert status == 200, body


def _create(url: str, name: str) -> None:
    status, _, body = call(url + "api/v1/mailboxes", method="POST", body={"Name": name})
    assert status == 201, body


def _assert_leads(url: str, old: str, new: str) -> None:
    status, headers, _ = call(f"{url}mailbox/{old}/?m=x&tab=html")
    assert (status, headers.get("Location")) == (302, f"/mailbox/{new}/?m=x&tab=html")
    # The API stays exact (404: the mailbox is not there), and says where it went.
    status, headers, body = call(f"{url}mailbox/{old}/api/v1/messages")
    assert (status, headers.get(HEADER)) == (404, new)
    assert f"renamed to {new}".encode() in body


def test_the_old_address_leads_on_after_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "mail.db")
    with make_server(database=db) as mp:
        _create(mp.http_url, "project")
        _rename(mp.http_url, "project", "renamed")
    with make_server(database=db) as mp:
        _assert_leads(mp.http_url, "project", "renamed")
        # A name never renamed is not found, and its 404 names no other.
        status, headers, _ = call(f"{mp.http_url}mailbox/nothing/api/v1/messages")
        assert status == 404 and HEADER not in headers


def test_every_instance_on_a_database_leads_the_old_address_on(pg_url: str) -> None:
    with make_server(database=pg_url) as a, make_server(database=pg_url) as b:
        _create(a.http_url, "project")
        _rename(a.http_url, "project", "renamed")
        _assert_leads(b.http_url, "project", "renamed")
        _assert_leads(a.http_url, "project", "renamed")


def test_a_polling_tab_follows_the_rename(browser: Any, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    with make_server(database=str(tmp_path / "mail.db")) as mp:
        _create(mp.http_url, "project")
        uid = _deliver(mp, "project")
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        try:
            # The websocket refused, as a proxy that does not pass it would: the tab polls.
            context.route_web_socket("**/api/events", lambda ws: ws.close())
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{mp.http_url}mailbox/project/?m={uid}")
            expect(page.locator("#conn")).to_have_attribute("data-state", "polling")
            expect(page.locator("#message .msg-subject")).to_have_text("For the project")
            _rename(mp.http_url, "project", "renamed")
            # Its next poll hears the old address's 404, which names the new one: the tab goes
            # there with its place (the message open) and says why, instead of "deleted".
            expect(page).to_have_url(
                re.compile(re.escape(f"{mp.http_url}mailbox/renamed/?m={uid}"))
            )
            expect(page.locator("#message .msg-subject")).to_have_text("For the project")
            expect(page.locator("#toast")).to_contain_text("renamed to “renamed”")
            expect(page.locator("#box-name")).to_have_text("renamed")
            expect(page.locator("#conn")).to_have_attribute("data-state", "polling")
        finally:
            context.close()
        assert not errors, f"JavaScript errors in the page: {errors}"


def _deliver(mp: Server, box: str) -> str:
    assert mp.mailbox is not None
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: For the project\r\n\r\nHi.\r\n"
    envelope = Envelope("a@example.com", ("b@example.com",))
    return mp.mailbox.view(box).deliver(envelope, raw).result(10)
