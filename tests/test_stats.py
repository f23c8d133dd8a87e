"""The statistics view: GET /api/v1/stats computed in the mailbox and store, and the UI's charts
(web/stats.js) in a real browser."""

from __future__ import annotations

import json
import smtplib
import urllib.request
from collections.abc import Callable
from typing import Any

from test_ui_browser import browser, open_page  # noqa: F401 (fixtures shared with the UI tests)

from helpers import wait_until
from mailpit_py.server import Server


def stats(mp: Server) -> dict[str, Any]:
    with urllib.request.urlopen(mp.http_url + "api/v1/stats", timeout=10) as resp:
        assert resp.headers.get_content_type() == "application/json"
        return json.loads(resp.read())  # type: ignore[no-any-return]


def deliver(mp: Server, sender: str, rcpts: list[str], size: int = 0) -> None:
    body = "x" * size
    raw = f"From: {sender}\r\nTo: {', '.join(rcpts)}\r\nSubject: s\r\n\r\n{body}\r\n"
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.sendmail(sender, rcpts, raw.encode())


def fill(mp: Server) -> None:
    deliver(mp, "ann@example.com", ["a@one.test", "b@one.test"])
    deliver(mp, "ann@example.com", ["c@two.test"], size=20_000)
    deliver(mp, "ann@example.com", ["d@one.test"])
    deliver(mp, "Bob@Example.com", ["e@three.test", "f@two.test"], size=200_000)


def test_stats_count_arrivals_sizes_senders_and_domains(server: Server) -> None:
    empty = stats(server)
    assert len(empty["PerMinute"]) == 60
    assert sum(p["Messages"] for p in empty["PerMinute"]) == 0
    assert empty["TopSenders"] == [] and empty["TopRecipientDomains"] == []

    fill(server)
    data = stats(server)
    assert sum(p["Messages"] for p in data["PerMinute"]) == 4
    assert data["PerMinute"][-1]["Messages"] >= 1  # the current minute is the last one
    minutes = [p["Minute"] for p in data["PerMinute"]]
    assert minutes == sorted(minutes)
    assert data["TopSenders"] == [
        {"Address": "ann@example.com", "Messages": 3},
        {"Address": "bob@example.com", "Messages": 1},
    ]
    # Messages per domain: one.test is named by two messages (one of them twice).
    assert data["TopRecipientDomains"] == [
        {"Domain": "one.test", "Messages": 2},
        {"Domain": "two.test", "Messages": 2},
        {"Domain": "three.test", "Messages": 1},
    ]
    sizes = {s["UpTo"]: s["Messages"] for s in data["Sizes"]}
    assert sizes[1024] == 2 and sizes[100 * 1024] == 1 and sizes[1024**2] == 1
    assert sum(sizes.values()) == 4
    assert data["Totals"]["Messages"] == 4 and data["Totals"]["Accepted"] == 4


def test_refusals_are_grouped_by_rule_from_the_smtp_counters(server: Server) -> None:
    assert server.mailbox is not None
    tel = server.mailbox.telemetry
    # What the SMTP layer counts for each reply: (code class, rule).
    tel.inc("smtp_replies", "2xx", "")
    tel.inc("smtp_replies", "5xx", "max_size")
    tel.inc("smtp_replies", "4xx", "max_recipients")
    tel.inc("smtp_replies", "4xx", "max_recipients")
    assert stats(server)["Refusals"] == [
        {"Reason": "max_recipients", "Code": "4xx", "Count": 2},
        {"Reason": "max_size", "Code": "5xx", "Count": 1},
    ]


def test_stats_view_draws_its_charts(server: Server, open_page: Callable[..., Any]) -> None:  # noqa: F811
    from playwright.sync_api import expect

    fill(server)
    assert server.mailbox is not None
    server.mailbox.telemetry.inc("smtp_replies", "5xx", "max_size")
    page = open_page(server.http_url)
    page.locator('[data-nav="stats"]').click()
    view = page.locator("#stats-view")
    expect(view).to_be_visible()
    expect(page.locator("#inbox-view")).to_be_hidden()
    assert "view=stats" in page.url
    per_minute = view.locator('[data-chart="per-minute"]')
    expect(per_minute.locator("svg rect.bar")).to_have_count(60)
    expect(per_minute.locator('svg rect.bar:not([height="0.0"])')).not_to_have_count(0)
    expect(per_minute).to_contain_text("4 messages")
    senders = view.locator('[data-chart="senders"] .bar-row')
    expect(senders).to_have_count(2)
    expect(senders.first).to_contain_text("ann@example.com")
    expect(senders.first).to_contain_text("3")
    expect(view.locator('[data-chart="domains"] .bar-row').first).to_contain_text("one.test")
    expect(view.locator('[data-chart="refusals"]')).to_contain_text("max_size (5xx)")
    expect(view.locator('[data-chart="sizes"] .bar-row')).to_have_count(6)
    # The widest bar of a list is the largest value.
    widths = view.locator('[data-chart="senders"] rect.bar').evaluate_all(
        "els => els.map(e => parseFloat(e.getAttribute('width')))"
    )
    assert widths[0] == 100.0 and 0 < widths[1] < 100.0

    # New mail shows while the view is open (it reloads on the websocket's events).
    deliver(server, "carol@example.com", ["g@four.test"])
    expect(per_minute).to_contain_text("5 messages")
    expect(view.locator('[data-chart="senders"] .bar-row')).to_have_count(3)

    # A reload keeps the view; Escape goes back to the inbox.
    page.reload()
    expect(page.locator('#stats-view [data-chart="per-minute"]')).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#inbox-view")).to_be_visible()
    wait_until(lambda: "view=stats" not in page.url, what="the URL to leave the stats view")
