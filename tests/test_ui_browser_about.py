"""The about and settings panel in the browser: version, listeners, database and retention from
the API, and the chaos triggers shown and set when chaos is on, checked on the server and on a
real SMTP session (Playwright and Debian's Chromium, as tests/test_ui_browser.py)."""

from __future__ import annotations

import json
import smtplib
import urllib.request
from typing import Any

import pytest
from test_ui_browser import browser, open_page, server, shared_server  # noqa: F401 (fixtures)
from ui_visible import save_screenshot

from helpers import make_server
from mailpit_py.server import Server


def _get(mp: Server, path: str) -> Any:
    with urllib.request.urlopen(mp.http_url + path, timeout=10) as resp:
        return json.load(resp)


def test_about_shows_the_instance_and_sets_chaos_triggers(open_page: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect

    with make_server(enable_chaos=True, max_messages=250, max_age=2 * 86400) as mp:
        page = open_page(mp.http_url)
        page.locator("#about-btn").click()
        dialog = page.locator("#about-dialog")
        expect(dialog).to_be_visible()
        facts = page.locator(".about-facts")
        version = _get(mp, "api/v1/info")["Version"]
        expect(facts).to_contain_text(f"mailpit_py {version}")
        host, port = mp.smtp_address
        expect(facts).to_contain_text(f"{host}:{port}")
        expect(facts).to_contain_text(f"{mp.http_address[0]}:{mp.http_address[1]}")
        expect(facts).to_contain_text("the newest 250 kept; older than 2 days pruned")
        expect(page.locator(".about-links a")).to_have_attribute(
            "href", mp.http_url + "api/v1/swagger.json"
        )
        webui = _get(mp, "api/v1/webui")
        assert webui["Listeners"]["SMTP"] == f"{host}:{port}"
        assert webui["Retention"] == {"MaxMessages": 250, "MaxAge": 172800}

        expect(page.locator("#chaos-form")).to_be_visible()
        save_screenshot(page, "about-chaos-1280")
        page.locator("#chaos-Sender-code").fill("452")
        page.locator("#chaos-Sender-prob").fill("100")
        page.locator("#chaos-delay-ms").fill("5")
        page.locator("#chaos-save").click()
        expect(page.locator("#toast")).to_have_text("Chaos triggers applied")
        chaos = _get(mp, "api/v1/chaos")
        assert chaos["Sender"] == {"ErrorCode": 452, "Probability": 100}
        assert chaos["Delay"]["Milliseconds"] == 5
        with smtplib.SMTP(host, port, timeout=10) as smtp, pytest.raises(smtplib.SMTPSenderRefused):
            smtp.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nx\r\n")

        # Out of range: the form says so and nothing is sent.
        page.locator("#chaos-Sender-code").fill("700")
        page.locator("#chaos-save").click()
        assert page.locator("#chaos-Sender-code").evaluate("el => !el.validity.valid")
        assert _get(mp, "api/v1/chaos")["Sender"]["ErrorCode"] == 452
        # Opened again, it shows what the server has.
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        page.locator("#about-btn").click()
        expect(page.locator("#chaos-Sender-code")).to_have_value("452")


def test_without_chaos_the_panel_has_no_triggers(
    open_page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    page = open_page(server.http_url, viewport={"width": 390, "height": 800})
    page.locator("#about-btn").click()
    expect(page.locator(".about-facts")).to_contain_text("POP3")
    expect(page.locator("#chaos-form")).to_have_count(0)
    save_screenshot(page, "about-390")
