"""The web UI's mailbox switcher end to end: Playwright in Debian's Chromium against a real server
whose SMTP routes mail to a mailbox per recipient domain (`{mailbox}=rcpt:*@{mailbox}.test`).

Switching goes to the mailbox's own address (/mailbox/NAME/), which a reload, back and forward
keep; the counts follow the `mailboxes` event live; mailboxes are created, renamed, emptied and
deleted from the UI (a rename takes every tab showing the mailbox to its new address); and a
page under one mailbox never shows another mailbox's message.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from test_ui_a11y import _axe_source, audit
from test_ui_browser import browser, open_message, open_page, row, send, wait_live  # noqa: F401
from ui_visible import assert_fully_visible, assert_no_sideways_scroll, save_screenshot

from helpers import make_server
from mailpit_py.server import Server

ROUTES = ("{mailbox}=rcpt:*@{mailbox}.test",)


# -- fixtures and helpers ----------------------------------------------------------------------


def _call(url: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    return json.loads(text) if text.strip().startswith(("{", "[")) else text


def boxes(mp: Server) -> dict[str, dict[str, Any]]:
    """The server's mailboxes by name, from the API."""
    return {b["Name"]: b for b in _call(mp.http_url + "api/v1/mailboxes")["Mailboxes"]}


def messages(mp: Server, box: str) -> list[dict[str, Any]]:
    url = mp.http_url + ("" if box == "default" else f"mailbox/{box}/") + "api/v1/messages"
    return list(_call(url)["messages"])


def send_to(mp: Server, box: str, subject: str) -> None:
    """A message the server's routes put in `box` (the recipient's domain names it)."""
    send(mp, subject, to="dev@example.com" if box == "default" else f"dev@{box}.test")


@pytest.fixture(scope="module")
def shared_boxes_server() -> Iterator[Server]:
    with make_server(label="Mailboxes", mailbox_routes=ROUTES) as mp:
        yield mp


@pytest.fixture
def mp(shared_boxes_server: Server) -> Server:
    """The module's server with the default mailbox alone and empty again."""
    mp = shared_boxes_server
    for name in boxes(mp):
        if name != "default":
            _call(mp.http_url + f"api/v1/mailboxes/{name}", "DELETE")
    _call(mp.http_url + "api/v1/messages", "DELETE")
    assert list(boxes(mp)) == ["default"]
    return mp


def open_switcher(page: Any) -> Any:
    from playwright.sync_api import expect

    page.locator("#box-btn").click()
    menu = page.locator("#box-menu")
    expect(menu).to_be_visible()
    return menu


# -- the tests ---------------------------------------------------------------------------------


def test_switcher_is_hidden_with_the_default_mailbox_alone_and_shows_a_second_live(
    open_page: Any,  # noqa: F811
    mp: Server,
) -> None:
    from playwright.sync_api import expect

    send_to(mp, "default", "Only mailbox")
    page = open_page(mp.http_url)
    expect(row(page, "Only mailbox")).to_be_visible()
    expect(page.locator("#boxes")).to_be_hidden()
    send_to(mp, "shop", "First of shop")  # creates the mailbox "shop" on first use
    expect(page.locator("#boxes")).to_be_visible()
    expect(page.locator("#box-name")).to_have_text("default")
    menu = open_switcher(page)
    expect(menu.locator(".box-item")).to_have_text([re.compile("^default"), re.compile("^shop")])
    expect(menu.locator(".box-item[aria-current=page]")).to_have_text(re.compile("^default"))
    expect(row(page, "First of shop")).to_have_count(0)  # not the default mailbox's mail


def test_switching_goes_to_the_mailbox_address_that_reload_back_and_forward_keep(
    open_page: Any,  # noqa: F811
    mp: Server,
) -> None:
    from playwright.sync_api import expect

    send_to(mp, "default", "Default mail")
    send_to(mp, "shop", "Shop mail")
    page = open_page(mp.http_url)
    expect(row(page, "Default mail")).to_be_visible()
    open_switcher(page).get_by_role("link", name=re.compile("^shop")).click()
    expect(page).to_have_url(mp.http_url + "mailbox/shop/")
    wait_live(page)
    expect(page.locator("#list .row")).to_have_count(1)
    expect(row(page, "Shop mail")).to_be_visible()
    expect(page.locator("#box-name")).to_have_text("shop")
    expect(page).to_have_title(re.compile(r"shop"))
    # The existing deep-link query comes after the prefix.
    page.locator("#search").fill("Shop")
    expect(page).to_have_url(mp.http_url + "mailbox/shop/?q=Shop")
    page.reload()
    wait_live(page)
    expect(page.locator("#box-name")).to_have_text("shop")
    expect(page.locator("#search")).to_have_value("Shop")
    expect(row(page, "Shop mail")).to_be_visible()
    page.go_back()  # the search typed was a replace: back is the default mailbox
    expect(page).to_have_url(mp.http_url)
    expect(row(page, "Default mail")).to_be_visible()
    expect(row(page, "Shop mail")).to_have_count(0)
    expect(page.locator("#box-name")).to_have_text("default")
    page.go_forward()
    expect(page).to_have_url(mp.http_url + "mailbox/shop/?q=Shop")
    expect(row(page, "Shop mail")).to_be_visible()
    expect(row(page, "Default mail")).to_have_count(0)
    # The default mailbox's link is the un-prefixed UI.
    open_switcher(page).get_by_role("link", name=re.compile("^default")).click()
    expect(page).to_have_url(mp.http_url)


def test_unread_counts_follow_mail_arriving_in_another_mailbox_live(
    open_page: Any,  # noqa: F811
    mp: Server,
) -> None:
    from playwright.sync_api import expect

    send_to(mp, "shop", "Shop one")
    page = open_page(mp.http_url)
    expect(page.locator("#boxes")).to_be_visible()
    expect(page.locator("#box-others")).to_have_text(re.compile(r"^1\b"))
    send_to(mp, "shop", "Shop two")
    send_to(mp, "blog", "Blog one")
    # Without a reload: the button counts the other mailboxes' unread, the menu each one's.
    expect(page.locator("#box-others")).to_have_text(re.compile(r"^3\b"))
    menu = open_switcher(page)
    expect(menu.get_by_role("link", name=re.compile("^shop"))).to_contain_text("2 unread")
    expect(menu.get_by_role("link", name=re.compile("^blog"))).to_contain_text("1 unread")
    expect(page.locator("#list .row")).to_have_count(0)  # none of it is the default's mail
    # Reading a message of shop there lowers the count seen from the default mailbox.
    shop_page = open_page(mp.http_url + "mailbox/shop/")
    open_message(shop_page, "Shop one")
    expect(page.locator("#box-others")).to_have_text(re.compile(r"^2\b"))
    expect(shop_page.locator("#box-others")).to_have_text(re.compile(r"^1\b"))  # blog's


def test_create_empty_and_delete_a_mailbox_from_the_ui(
    open_page: Any,  # noqa: F811
    mp: Server,
) -> None:
    from playwright.sync_api import expect

    page = open_page(mp.http_url)
    # With the default mailbox alone, a new one is made from the about panel.
    page.locator("#about-btn").click()
    page.locator("#about-box-new").click()
    dialog = page.locator("#box-dialog")
    expect(dialog).to_be_visible()
    page.locator("#box-input").fill("  Proj X ")
    expect(page.locator("#box-preview")).to_have_text("It will be named “proj_x”.")
    dialog.get_by_role("button", name="Create").click()
    expect(page).to_have_url(mp.http_url + "mailbox/proj_x/")
    wait_live(page)
    assert "proj_x" in boxes(mp)
    expect(page.locator("#box-name")).to_have_text("proj_x")
    # A name the server refuses is answered in the dialog, which stays open.
    open_switcher(page).get_by_role("button", name="New mailbox…").click()
    page.locator("#box-input").fill("proj_x")
    dialog.get_by_role("button", name="Create").click()
    expect(page.locator("#box-error")).to_be_visible()
    expect(page.locator("#box-error")).not_to_be_empty()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()

    send_to(mp, "proj_x", "Project mail one")
    send_to(mp, "proj_x", "Project mail two")
    send_to(mp, "default", "Default keeps this")
    expect(page.locator("#list .row")).to_have_count(2)
    confirm = page.locator("#confirm-dialog")
    open_switcher(page).get_by_role("button", name="Empty “proj_x”…").click()
    expect(confirm).to_contain_text("2 messages")
    confirm.get_by_role("button", name="Cancel").click()
    assert len(messages(mp, "proj_x")) == 2
    open_switcher(page).get_by_role("button", name="Empty “proj_x”…").click()
    confirm.get_by_role("button", name="Empty").click()
    expect(page.locator("#list-empty")).to_be_visible()
    assert messages(mp, "proj_x") == []
    assert [m["Subject"] for m in messages(mp, "default")] == ["Default keeps this"]

    open_switcher(page).get_by_role("button", name="Delete “proj_x”…").click()
    confirm.get_by_role("button", name="Cancel").click()
    assert "proj_x" in boxes(mp)
    open_switcher(page).get_by_role("button", name="Delete “proj_x”…").click()
    confirm.get_by_role("button", name="Delete mailbox").click()
    expect(page).to_have_url(mp.http_url)
    wait_live(page)
    expect(page.locator("#toast")).to_have_text("Mailbox “proj_x” deleted")
    assert "proj_x" not in boxes(mp)
    expect(row(page, "Default keeps this")).to_be_visible()
    # The default mailbox cannot be deleted: no such control is offered for it.
    send_to(mp, "shop", "Keeps the switcher shown")
    menu = open_switcher(page)
    expect(menu.get_by_role("button", name="Empty “default”…")).to_be_visible()
    expect(menu.locator("#box-delete")).to_be_hidden()


def test_deep_link_to_a_message_in_a_mailbox(
    open_page: Any,  # noqa: F811
    mp: Server,
) -> None:
    from playwright.sync_api import expect

    send_to(mp, "shop", "Linked shop mail")
    send_to(mp, "default", "Not this one")
    [msg] = messages(mp, "shop")
    page = open_page(mp.http_url + f"mailbox/shop/?m={msg['ID']}&tab=headers")
    expect(page.locator("#message .msg-subject")).to_have_text("Linked shop mail")
    expect(page.locator("#tab-headers")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#box-name")).to_have_text("shop")
    page.locator("#tab-text").click()
    expect(page).to_have_url(mp.http_url + f"mailbox/shop/?m={msg['ID']}&tab=text")


def test_a_page_under_one_mailbox_never_shows_another_mailbox_message(
    open_page: Any,  # noqa: F811
    mp: Server,
) -> None:
    from playwright.sync_api import expect

    send_to(mp, "alpha", "Secret of alpha")
    send_to(mp, "beta", "Beta mail")
    [secret] = messages(mp, "alpha")
    page = open_page(mp.http_url + f"mailbox/beta/?m={secret['ID']}")
    expect(page.locator("#message")).to_contain_text("This message no longer exists.")
    expect(page.locator("#list .row")).to_have_text([re.compile("Beta mail")])
    # Mail arriving in alpha meanwhile: counted in the switcher, never listed under beta.
    send_to(mp, "alpha", "More of alpha")
    expect(page.locator("#box-others")).to_have_text(re.compile(r"^2\b"))
    send_to(mp, "beta", "Beta again")
    expect(row(page, "Beta again")).to_be_visible()
    expect(page.locator("#list .row")).to_have_count(2)
    assert "alpha" not in page.locator("#main").inner_text().lower()


def test_the_page_under_a_webroot_and_a_mailbox_calls_only_that_mailbox_api(
    open_page: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    with make_server(webroot="/mail/", mailbox_routes=ROUTES) as mp:
        send_to(mp, "shop", "Under both prefixes")
        send_to(mp, "default", "Default under the webroot")
        page = open_page("about:blank", live=False)  # listened to from its first request
        requests: list[str] = []
        sockets: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto(mp.http_url + "mailbox/shop/")
        wait_live(page)
        open_message(page, "Under both prefixes")
        expect(page.locator("#list .row")).to_have_count(1)
        prefix = mp.http_url + "mailbox/shop/"
        assert prefix.endswith("/mail/mailbox/shop/")
        api = [u for u in requests if "/api/" in u or "/view/" in u]
        assert api and all(u.startswith(prefix) for u in api), api
        ws_prefix = prefix.replace("http://", "ws://")
        assert sockets and all(u.startswith(ws_prefix + "api/events") for u in sockets), sockets
        page.locator("#brand").click()  # the brand is this mailbox's inbox, not the webroot
        expect(page).to_have_url(prefix)
        open_switcher(page).get_by_role("link", name=re.compile("^default")).click()
        expect(page).to_have_url(mp.http_url)
        expect(row(page, "Default under the webroot")).to_be_visible()


def test_switcher_works_from_the_keyboard_and_fits_a_phone(
    open_page: Any,  # noqa: F811
    mp: Server,
) -> None:
    from playwright.sync_api import expect

    send_to(mp, "shop", "Keyboard shop mail")
    page = open_page(mp.http_url, viewport={"width": 390, "height": 800})
    expect(page.locator("#boxes")).to_be_visible()
    assert_fully_visible(page, "#box-btn")
    assert_no_sideways_scroll(page)
    page.locator("#box-btn").focus()
    page.keyboard.press("Enter")
    menu = page.locator("#box-menu")
    expect(menu).to_be_visible()
    current = menu.get_by_role("link", name=re.compile("^default"))
    expect(current).to_be_focused()  # the menu opens on the mailbox shown
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(page.locator("#box-btn")).to_be_focused()
    expect(page.locator("#box-btn")).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("ArrowDown")  # opens it too
    expect(current).to_be_focused()
    assert_fully_visible(page, "#box-menu")
    save_screenshot(page, "mailboxes-switcher-phone")
    shop = menu.get_by_role("link", name=re.compile("^shop"))
    # (the menu's list comes from the server: a key pressed before its row is there moves
    # the focus nowhere, and the expectation below would wait in vain)
    expect(shop).to_be_visible()
    page.keyboard.press("ArrowDown")
    expect(shop).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(mp.http_url + "mailbox/shop/")
    expect(row(page, "Keyboard shop mail")).to_be_visible()


@contextmanager
def limited_page(browser: Any, tmp_path: Path) -> Iterator[tuple[Server, Any]]:  # noqa: F811
    """A page of shop's address for ann, a user limited to shop and blog, whom the server
    refuses creating, renaming and deleting mailboxes (403); no JavaScript error on it."""
    config = tmp_path / "mailboxes.yaml"
    config.write_text("mailboxes:\n  - name: shop\n  - name: blog\naccess:\n  ann: [shop, blog]\n")
    with make_server(
        mailbox_config=str(config), mailbox_routes=ROUTES, ui_auth="ann:secret boss:secret"
    ) as mp:
        context = browser.new_context(http_credentials={"username": "ann", "password": "secret"})
        errors: list[str] = []
        try:
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(mp.http_url + "mailbox/shop/")
            wait_live(page)
            yield mp, page
        finally:
            context.close()
        assert not errors, f"JavaScript errors in the page: {errors}"


def test_a_refused_create_hides_the_mailbox_controls(
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    with limited_page(browser, tmp_path) as (_, page):
        menu = open_switcher(page)
        expect(menu.locator(".box-item")).to_have_text(
            [re.compile("^blog"), re.compile("^shop")]
        )  # not the default mailbox: ann may not see it
        menu.get_by_role("button", name="New mailbox…").click()
        page.locator("#box-input").fill("mine")
        page.locator("#box-dialog").get_by_role("button", name="Create").click()
        expect(page.locator("#box-dialog")).to_be_hidden()
        expect(page.locator("#toast")).to_contain_text("Error")
        open_switcher(page)
        expect(page.locator("#box-new")).to_be_hidden()
        expect(page.locator("#box-delete")).to_be_hidden()
        page.reload()  # the tab remembers what the server refused
        wait_live(page)
        open_switcher(page)
        expect(page.locator("#box-new")).to_be_hidden()


def test_hide_delete_all_button_hides_emptying_a_mailbox_too(
    open_page: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    with make_server(hide_delete_all_button=True, mailbox_routes=ROUTES) as mp:
        send_to(mp, "shop", "Kept")
        page = open_page(mp.http_url + "mailbox/shop/")
        expect(row(page, "Kept")).to_be_visible()
        menu = open_switcher(page)
        expect(menu.locator("#box-delete")).to_be_visible()
        expect(menu.locator("#box-empty")).to_be_hidden()


def test_a_page_whose_mailbox_is_deleted_elsewhere_goes_to_the_default_one(
    open_page: Any,  # noqa: F811
    mp: Server,
) -> None:
    from playwright.sync_api import expect

    send_to(mp, "shop", "Soon gone")
    send_to(mp, "default", "Still here")
    page = open_page(mp.http_url + "mailbox/shop/")
    expect(row(page, "Soon gone")).to_be_visible()
    _call(mp.http_url + "api/v1/mailboxes/shop", "DELETE")
    expect(page).to_have_url(mp.http_url)
    expect(page.locator("#toast")).to_have_text("The mailbox “shop” was deleted")
    expect(row(page, "Still here")).to_be_visible()


# -- renaming ------------------------------------------------------------------------------------


def open_rename(page: Any, name: str) -> Any:
    """Opens the rename dialog of the shown mailbox `name` from the switcher's menu."""
    from playwright.sync_api import expect

    open_switcher(page).get_by_role("button", name=f"Rename “{name}”…").click()
    dialog = page.get_by_role("dialog", name=f"Rename the mailbox “{name}”")
    expect(dialog).to_be_visible()
    return dialog


def test_renaming_the_shown_mailbox_takes_the_page_and_other_tabs_to_its_new_address(
    open_page: Any,  # noqa: F811
    mp: Server,
) -> None:
    from playwright.sync_api import expect

    send_to(mp, "shop", "Shop one")
    send_to(mp, "shop", "Shop two")
    send_to(mp, "default", "Default mail")
    [two, one] = messages(mp, "shop")
    other_tab = open_page(mp.http_url + "mailbox/shop/")  # another tab showing the mailbox
    default_tab = open_page(mp.http_url)  # and one showing another mailbox
    expect(row(other_tab, "Shop one")).to_be_visible()
    page = open_page(mp.http_url + "mailbox/shop/")
    open_message(page, "Shop one")
    expect(page).to_have_url(re.compile(re.escape(f"{mp.http_url}mailbox/shop/?m={one['ID']}")))

    dialog = open_rename(page, "shop")
    name = dialog.get_by_role("textbox", name=re.compile("^Name"))
    expect(name).to_have_value("shop")  # the current name, to edit
    expect(name).to_be_focused()
    name.fill(" Store Front ")
    expect(page.locator("#box-preview")).to_have_text("It will be named “store_front”.")
    dialog.get_by_role("button", name="Rename").click()

    # The page goes to the new address with the same message open, and says what happened.
    opened = f"{mp.http_url}mailbox/store_front/?m={one['ID']}"
    expect(page).to_have_url(re.compile("^" + re.escape(opened)))
    wait_live(page)
    expect(page.locator("#toast")).to_have_text("Mailbox “shop” renamed to “store_front”")
    expect(page.locator("#message .msg-subject")).to_have_text("Shop one")
    expect(page.locator("#message")).not_to_contain_text("no longer exists")
    expect(page.locator("#list .row")).to_have_text(
        [re.compile("Shop two"), re.compile("Shop one")]
    )
    expect(page.locator("#box-name")).to_have_text("store_front")
    menu = open_switcher(page)
    expect(menu.locator(".box-item")).to_have_text(
        [re.compile("^default"), re.compile("^store_front")]
    )
    expect(menu.locator(".box-item[aria-current=page]")).to_have_attribute(
        "title", re.compile("^store_front: 2 messages")
    )
    page.keyboard.press("Escape")
    assert list(boxes(mp)) == ["default", "store_front"]
    assert {m["ID"] for m in messages(mp, "store_front")} == {one["ID"], two["ID"]}

    # Reload, back and forward keep the new address.
    page.reload()
    wait_live(page)
    expect(page).to_have_url(re.compile("^" + re.escape(opened)))
    expect(page.locator("#message .msg-subject")).to_have_text("Shop one")
    open_message(page, "Shop two")
    expect(page).to_have_url(re.compile(re.escape(f"mailbox/store_front/?m={two['ID']}")))
    page.go_back()
    expect(page).to_have_url(re.compile("^" + re.escape(opened)))
    expect(page.locator("#message .msg-subject")).to_have_text("Shop one")
    page.go_forward()
    expect(page.locator("#message .msg-subject")).to_have_text("Shop two")
    expect(page.locator("#box-name")).to_have_text("store_front")
    # Back past the rename, to the page at the old address before the message was opened: the
    # server sends it on to the new one (the old address is no mailbox's now).
    page.go_back()
    page.go_back()
    expect(page).to_have_url(f"{mp.http_url}mailbox/store_front/")
    wait_live(page)
    expect(page.locator("#box-name")).to_have_text("store_front")
    expect(page.locator("#list .row")).to_have_count(2)
    expect(page.locator("#message .msg-subject")).to_have_count(0)

    # The other tab of the mailbox followed it (not taken for deleted), with no reload by hand;
    # the tab of another mailbox lists the new name.
    expect(other_tab).to_have_url(f"{mp.http_url}mailbox/store_front/")
    wait_live(other_tab)
    expect(other_tab.locator("#toast")).to_have_text("Mailbox “shop” renamed to “store_front”")
    expect(other_tab.locator("#list .row")).to_have_count(2)
    expect(other_tab.locator("#box-name")).to_have_text("store_front")
    expect(default_tab).to_have_url(mp.http_url)
    expect(open_switcher(default_tab).locator(".box-item")).to_have_text(
        [re.compile("^default"), re.compile("^store_front")]
    )
    expect(row(default_tab, "Default mail")).to_be_visible()


def test_a_refused_rename_says_the_servers_reason_in_the_dialog(
    open_page: Any,  # noqa: F811
    mp: Server,
) -> None:
    from playwright.sync_api import expect

    send_to(mp, "shop", "Stays in shop")
    send_to(mp, "blog", "Blog mail")
    page = open_page(mp.http_url + "mailbox/shop/")
    expect(row(page, "Stays in shop")).to_be_visible()
    dialog = open_rename(page, "shop")
    name = dialog.get_by_role("textbox", name=re.compile("^Name"))
    error = dialog.get_by_role("alert")
    for taken in ("Blog", "default"):  # names that exist: 409 with the server's message
        name.fill(taken)
        dialog.get_by_role("button", name="Rename").click()
        expect(error).to_have_text(f"mailbox already exists: {taken.lower()}")
        expect(name).to_have_attribute("aria-invalid", "true")
        expect(name).to_be_focused()
    name.fill("   ")  # cleaned to nothing: said before asking the server
    dialog.get_by_role("button", name="Rename").click()
    expect(error).to_have_text(re.compile("^Type a name"))
    # Dots alone would be a path segment (/mailbox/../): the server makes them `_`, and so does
    # the preview, so the page would go where the server put the mailbox.
    name.fill("..")
    expect(page.locator("#box-preview")).to_have_text("It will be named “__”.")
    # Escape closes the dialog: nothing renamed, the page stays.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page).to_have_url(mp.http_url + "mailbox/shop/")
    assert list(boxes(mp)) == ["blog", "default", "shop"]
    # Opened again, it starts clean with the current name; Cancel closes it too.
    dialog = open_rename(page, "shop")
    expect(dialog.get_by_role("textbox", name=re.compile("^Name"))).to_have_value("shop")
    expect(dialog.get_by_role("alert")).to_be_hidden()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    # The default mailbox keeps its name (the server answers 400): no rename is offered for it.
    page.goto(mp.http_url)
    wait_live(page)
    menu = open_switcher(page)
    expect(menu.locator("#box-rename")).to_be_hidden()
    expect(menu.get_by_role("button", name="New mailbox…")).to_be_visible()


def test_no_serious_axe_violation_in_the_rename_dialog(
    open_page: Any,  # noqa: F811
    mp: Server,
) -> None:
    from playwright.sync_api import expect

    _axe_source()
    send_to(mp, "shop", "Shop mail")
    send_to(mp, "blog", "Blog mail")
    problems: list[str] = []
    page = open_page(mp.http_url + "mailbox/shop/")
    dialog = open_rename(page, "shop")
    audit(page, "the rename dialog", problems)
    dialog.get_by_role("textbox", name=re.compile("^Name")).fill("Blog")
    dialog.get_by_role("button", name="Rename").click()
    expect(dialog.get_by_role("alert")).to_have_text("mailbox already exists: blog")
    audit(page, "the rename dialog with the server's refusal", problems)
    save_screenshot(page, "mailboxes-rename-dialog")
    # Its primary button is white on the accent colour: in the dark theme too.
    page.emulate_media(color_scheme="dark")
    audit(page, "the rename dialog in the dark theme", problems)
    page.emulate_media(color_scheme="light")
    assert not problems, "\n".join(problems)


def test_a_refused_rename_hides_the_rename_control(
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    with limited_page(browser, tmp_path) as (mp, page):
        dialog = open_rename(page, "shop")
        dialog.get_by_role("textbox", name=re.compile("^Name")).fill("mine")
        dialog.get_by_role("button", name="Rename").click()
        expect(dialog).to_be_hidden()
        expect(page.locator("#toast")).to_contain_text("Error")
        expect(page).to_have_url(mp.http_url + "mailbox/shop/")
        open_switcher(page)
        for refused in ("#box-rename", "#box-new", "#box-delete"):
            expect(page.locator(refused)).to_be_hidden()
        page.goto(mp.http_url + "mailbox/blog/")  # the tab remembers what was refused
        wait_live(page)
        open_switcher(page)
        expect(page.locator("#box-rename")).to_be_hidden()
