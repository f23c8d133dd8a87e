"""Retention at --max prunes in batches: the count runs past the limit by a tenth, then the
oldest go at once, with one prune event, as the API and the bus show."""

from __future__ import annotations

import json
import smtplib
import urllib.request

from helpers import make_server
from mailpit_py import events
from mailpit_py.store.retention import retention_slack


def _total(url: str) -> int:
    with urllib.request.urlopen(url + "api/v1/messages?limit=1", timeout=10) as resp:
        return int(json.load(resp)["total"])


def _subjects(url: str) -> list[str]:
    with urllib.request.urlopen(url + "api/v1/messages?limit=100", timeout=10) as resp:
        return [m["Subject"] for m in json.load(resp)["messages"]]


def test_the_count_runs_a_tenth_past_max_and_then_the_excess_goes_in_one_prune() -> None:
    with make_server(max_messages=20) as mp:
        totals: list[int] = []
        with mp.mailbox.bus.subscribe() as sub, smtplib.SMTP(*mp.smtp_address) as client:
            for i in range(26):
                msg = f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode()
                client.sendmail("a@example.com", ["b@example.com"], msg)
                totals.append(_total(mp.http_url))  # the 250 came after the commit
            pruned: list[list[str]] = []
            while (e := sub.get(timeout=0.5)) is not None:
                if isinstance(e, events.Prune):
                    pruned.append(e.data["IDs"])
        # Never more than max + slack (20 + 2) visible; past that, back to 20 in one step.
        assert totals == [*range(1, 23), 20, 21, 22, 20]
        assert [len(ids) for ids in pruned] == [3, 3]
        assert _subjects(mp.http_url) == [f"m{i}" for i in range(25, 5, -1)]


def test_the_slack_is_a_tenth_of_max_none_under_ten_and_at_most_a_thousand() -> None:
    assert [retention_slack(n) for n in (1, 3, 9, 10, 20, 500, 10_000, 10**6)] == [
        0,
        0,
        0,
        1,
        2,
        50,
        1000,
        1000,
    ]
