"""A hand-written DKIM-signed test message in the web UI's Checks tab (headless Chromium), so a
fresh clone tests what the external corpus's signed messages test when it is present."""

from __future__ import annotations

import json
import smtplib
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from test_checks_ui import page_factory  # noqa: F401 (the browser fixture of the Checks tab tests)

from helpers import MESSAGES, make_server
from mailpit_py.server import Server


@pytest.fixture
def server() -> Iterator[Server]:
    keys = MESSAGES / "dkim-keys" / "dns-records.txt"
    with make_server(dns_override=str(keys), dns_offline=True) as mp:
        yield mp


def test_checks_tab_shows_both_signatures_of_a_hand_written_message_pass(
    server: Server,
    page_factory: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    raw = (MESSAGES / "dkim-ed25519-rsa.eml").read_bytes()
    with smtplib.SMTP(*server.smtp_address) as client:
        client.sendmail("both@signed.example.com", ["someone@example.org"], raw)
    with urllib.request.urlopen(server.http_url + "api/v1/messages", timeout=10) as resp:
        msg_id = json.loads(resp.read())["messages"][0]["ID"]
    page = page_factory(server.http_url + f"?m={msg_id}")
    page.locator("#tab-checks").click()
    verdicts = page.locator("#auth-verdicts .verdict")
    expect(verdicts).to_have_count(4)  # two signatures, SPF, DMARC
    expect(verdicts.nth(0)).to_have_text("DKIM (signed.example.com) pass")
    expect(verdicts.nth(1)).to_have_text("DKIM (signed.example.com) pass")
    results = page.locator("#auth-results")
    expect(results).to_contain_text("dkim=pass header.d=signed.example.com header.s=ed2026")
    expect(results).to_contain_text("dkim=pass header.d=signed.example.com header.s=rsa2026")
    expect(page.locator('#requirements li[data-name="DKIM"]')).to_have_class("req-ok")
