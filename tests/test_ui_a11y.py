"""Accessibility of the web UI in a real browser: axe-core finds no serious or critical violation
on the inbox, a message in each of its tabs, the sessions page and the statistics, at three
widths; every control is reached with Tab and shows a visible focus ring.

axe-core is fetched by `make test` (tests/axe_fetch.py) into the git-ignored .test-deps/; without
it these tests skip, and fail under CI=true, as the other browser tests do without Chromium.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from axe_fetch import SCRIPT, VERSION
from test_relay_ui import relay_ui  # noqa: F401 (fixture)
from test_ui_browser import browser, open_message, open_page, send, tiny_png  # noqa: F401
from ui_visible import save_screenshot
from upstream import UpstreamServer

from helpers import make_server
from mailpit_py.server import Server

SERIOUS = ("serious", "critical")


def _axe_source() -> str:
    if not SCRIPT.is_file():
        why = f"axe-core {VERSION} is not in {SCRIPT.parent}: run `make test-deps` (or `make test`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{why}; the accessibility tests must run in CI")
        pytest.skip(why)
    return SCRIPT.read_text()


def audit(page: Any, what: str, problems: list[str]) -> None:
    """Runs axe on the page (the mail's own HTML, in its sandboxed frame, is not the UI's) and
    adds what is serious or critical to `problems`."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        # Through the debugging protocol: the UI's script-src 'self' would refuse a script tag.
        page.evaluate(_axe_source() + "\n;0")
    found = page.evaluate(
        """async () => {
          const r = await axe.run(document, {iframes: false, resultTypes: ['violations']});
          return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ': ' + n.failureSummary)}));
        }"""
    )
    problems += [
        f"{what}: {v['impact']} {v['id']} ({v['help']}): {v['nodes']}"
        for v in found
        if v["impact"] in SERIOUS
    ]


@pytest.mark.parametrize("width", [390, 1024, 1280])
def test_no_serious_axe_violation_in_any_view(
    open_page: Any,  # noqa: F811
    relay_ui: tuple[Server, UpstreamServer],  # noqa: F811
    width: int,
) -> None:
    from playwright.sync_api import expect

    mp, _ = relay_ui
    _axe_source()
    problems: list[str] = []
    send(
        mp,
        "Accessible mail",
        html='<p>Hi</p><img src="cid:logo@test" alt="logo">',
        inline_png=tiny_png(),
        attachment=("notes.txt", b"some notes"),
    )
    send(mp, "Second mail")
    page = open_page(mp.http_url, viewport={"width": width, "height": 800})
    expect(page.locator("#list .row")).to_have_count(2)
    audit(page, f"the inbox at {width}px", problems)
    page.locator("#list .row .row-check").first.click()
    expect(page.locator("#bulk-bar")).to_be_visible()
    audit(page, f"the inbox with a selection at {width}px", problems)
    page.keyboard.press("Escape")
    open_message(page, "Accessible mail")
    tabs = page.locator("#message .tab")
    for i in range(tabs.count()):
        tabs.nth(i).click()
        name = tabs.nth(i).inner_text()
        expect(tabs.nth(i)).to_have_attribute("aria-selected", "true")
        expect(page.locator("#tab-panel .loading")).to_have_count(0)
        audit(page, f"the message's {name} tab at {width}px", problems)
    save_screenshot(page, f"a11y-message-{width}")
    page.emulate_media(color_scheme="dark")
    page.locator("#tab-smtp").click()
    expect(page.locator("#tab-panel .loading")).to_have_count(0)
    audit(page, f"the SMTP tab in the dark theme at {width}px", problems)
    save_screenshot(page, f"a11y-message-dark-{width}")
    page.emulate_media(color_scheme="light")
    page.locator("#tag-btn").click()
    audit(page, f"the tag dialog at {width}px", problems)
    page.keyboard.press("Escape")
    page.locator("#about-btn").click()
    expect(page.locator(".about-facts")).to_be_visible()
    audit(page, f"the about panel at {width}px", problems)
    page.keyboard.press("Escape")
    page.goto(mp.http_url + "?view=sessions")
    expect(page.locator("#session-list .row").first).to_be_visible()
    page.locator("#session-list .row").first.click()
    audit(page, f"the sessions page at {width}px", problems)
    save_screenshot(page, f"a11y-sessions-{width}")
    page.goto(mp.http_url + "?view=stats")
    expect(page.locator("#stats-view")).to_be_visible()
    audit(page, f"the statistics at {width}px", problems)
    save_screenshot(page, f"a11y-stats-{width}")
    assert not problems, "\n".join(problems)


FOCUS_JS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const s = getComputedStyle(el);
  const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 1;
  const ring = s.boxShadow && s.boxShadow !== 'none';
  const r = el.getBoundingClientRect();
  return {
    name: el.id || el.getAttribute('aria-label') || el.textContent.trim().slice(0, 30)
      || el.tagName,
    visible: outline || ring,
    onScreen: r.width > 0 && r.height > 0,
  };
}"""


def test_tab_reaches_every_control_with_a_visible_focus_ring(
    open_page: Any,  # noqa: F811
    relay_ui: tuple[Server, UpstreamServer],  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    mp, _ = relay_ui
    send(mp, "Focus one", html="<p>Hi</p>", attachment=("a.txt", b"a"))
    send(mp, "Focus two")
    page = open_page(mp.http_url)
    open_message(page, "Focus one")
    page.locator("#list .row .row-check").last.click()  # the bar of bulk actions shows
    expect(page.locator("#bulk-bar")).to_be_visible()
    page.locator(".skip-link").focus()  # the first stop of the page; Tab walks from there
    seen: list[str] = []
    no_ring: list[str] = []
    for _ in range(150):
        page.keyboard.press("Tab")
        focus = page.evaluate(FOCUS_JS)
        if focus is None:  # past the last control, to the browser's own
            break
        seen.append(focus["name"])
        if not focus["visible"] or not focus["onScreen"]:
            no_ring.append(focus["name"])
    assert not no_ring, f"focused without a visible focus style: {no_ring}"
    for control in (
        "search",
        "keys-btn",
        "check-page",
        "bulk-read",
        "bulk-tag",
        "bulk-release",
        "bulk-delete",
        "list",
        "read-toggle",
        "tag-btn",
        "release-btn",
        "delete-btn",
        "tab-html",
        "tab-panel",
    ):
        assert control in seen, f"Tab never reaches {control}: {seen}"


@pytest.mark.parametrize("width", [390, 1280])
def test_no_serious_axe_violation_in_the_mailbox_switcher(
    open_page: Any,  # noqa: F811
    width: int,
) -> None:
    from playwright.sync_api import expect

    _axe_source()
    problems: list[str] = []
    with make_server(mailbox_routes=("{mailbox}=rcpt:*@{mailbox}.test",)) as mp:
        send(mp, "Default mail")
        send(mp, "Shop mail", to="dev@shop.test")
        page = open_page(mp.http_url + "mailbox/shop/", viewport={"width": width, "height": 800})
        expect(page.locator("#boxes")).to_be_visible()
        audit(page, f"the top bar with the switcher at {width}px", problems)
        page.locator("#box-btn").click()
        expect(page.locator("#box-menu")).to_be_visible()
        audit(page, f"the open switcher at {width}px", problems)
        page.emulate_media(color_scheme="dark")
        audit(page, f"the open switcher in the dark theme at {width}px", problems)
        page.emulate_media(color_scheme="light")
        save_screenshot(page, f"a11y-mailboxes-{width}")
        page.locator("#box-new").click()
        page.locator("#box-input").fill("Not Clean")
        expect(page.locator("#box-preview")).not_to_be_empty()
        audit(page, f"the new mailbox dialog at {width}px", problems)
        page.keyboard.press("Escape")
        page.locator("#box-btn").click()
        page.locator("#box-delete").click()
        expect(page.locator("#confirm-dialog")).to_be_visible()
        audit(page, f"the delete mailbox confirmation at {width}px", problems)
        # Its buttons are filled with white text: the dark theme's fills differ.
        page.emulate_media(color_scheme="dark")
        audit(page, f"the delete mailbox confirmation in the dark theme at {width}px", problems)
        page.emulate_media(color_scheme="light")
    assert not problems, "\n".join(problems)
