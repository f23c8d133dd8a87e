"""The web UI and receiver simulation: a message the receiver profile refused is marked in the
list, found by is:refused, and its SMTP tab says which rule refused it with the reply given."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from test_ui_browser import browser, open_message, open_page, row  # noqa: F401 (fixtures)

from helpers import make_server
from mailpit_py.server import Server

ZONE = """
bank.test TXT "v=spf1 ip4:198.51.100.1 -all"
_dmarc.bank.test TXT "v=DMARC1; p=reject"
7.113.0.203.in-addr.arpa PTR mail.bank.test
mail.bank.test A 203.0.113.7
"""


@contextmanager
def receiving_as(profile: str, folder: Path) -> Iterator[Server]:
    """A server answering as `profile`, for a client at 203.0.113.7 (simulated) and ZONE."""
    zone = folder / "zone.txt"
    zone.write_text(ZONE)
    with make_server(
        receiver=profile,
        dns_override=str(zone),
        dns_offline=True,
        checks_client_ip="203.0.113.7",
    ) as mp:
        yield mp


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with receiving_as("outlook", tmp_path) as mp:
        yield mp


def send(mp: Server, sender: str, subject: str) -> tuple[int, bytes]:
    raw = f"From: {sender}\r\nTo: dev@example.org\r\nSubject: {subject}\r\n\r\nHello.\r\n"
    with smtplib.SMTP(*mp.smtp_address, timeout=10) as client:
        client.ehlo()
        client.mail(sender)
        client.rcpt("dev@example.org")
        return client.data(raw.encode())


def test_a_refused_message_is_marked_and_its_smtp_tab_says_why(
    open_page: Any,  # noqa: F811
    server: Server,
) -> None:
    from playwright.sync_api import expect

    assert send(server, "news@bank.test", "Refused one")[0] == 550
    assert send(server, "dev@example.org", "Accepted one")[0] == 250
    page = open_page(server.http_url)
    expect(row(page, "Refused one").locator(".refused-mark")).to_have_text("refused")
    expect(row(page, "Accepted one").locator(".refused-mark")).to_have_count(0)
    page.locator("#search-help-btn").click()  # the search word is in the syntax help
    expect(page.locator("#search-help")).to_contain_text("is:refused")
    page.locator("#search-help-btn").click()
    page.locator("#search").fill("is:refused")
    expect(row(page, "Accepted one")).to_have_count(0)
    expect(row(page, "Refused one")).to_have_count(1)
    open_message(page, "Refused one")
    page.locator("#tab-smtp").click()
    box = page.locator(".refused-box")
    expect(box.locator(".refused-reply")).to_have_text(
        "550 5.7.509 Access denied, sending domain bank.test does not pass DMARC verification "
        "and has a DMARC policy of reject."
    )
    expect(box).to_contain_text("dmarc-reject (outlook profile, at the end of DATA)")
    expect(box).to_contain_text("simulated")
    expect(page.locator(".envelope").first).to_be_visible()
    expect(page.locator(".transcript")).to_contain_text("rule receiver:dmarc-reject")


def test_a_refusal_before_data_shows_in_the_sessions_page_with_its_rule(
    open_page: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    with receiving_as("strict", tmp_path) as mp:
        with smtplib.SMTP(*mp.smtp_address, timeout=10) as client:
            client.ehlo("mail.bank.test")
            assert client.mail("news@bank.test")[0] == 250
            assert client.rcpt("dev@example.org")[0] == 550
        page = open_page(mp.http_url)
        page.get_by_role("link", name="SMTP sessions").click()
        page.locator("#session-list .row", has_text="mail.bank.test").click()
        transcript = page.locator("#session-detail .transcript")
        expect(transcript).to_contain_text(
            "550 5.7.23 <dev@example.org>: Recipient address rejected: Message rejected due to: "
            "SPF fail - not authorized."
        )
        expect(transcript).to_contain_text("rule receiver:spf-fail: strict at rcpt")
