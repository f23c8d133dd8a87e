"""Relay hardening against a real upstream SMTP server: recipient rules match addresses
case-insensitively (domains are, and a rule must not be dodged by capitals), and no CR or LF
from a message reaches a header that mailpit_py writes on a released or forwarded copy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_relay import http, only_id, relay_yaml, send
from upstream import UpstreamServer

from helpers import make_server, wait_until
from mailpit_py.server import Server


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer() as up:
        yield up


@pytest.fixture
def relay_server() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(**overrides: Any) -> Server:
        mp = make_server(smtp_relay_retry_delay=0.05, **overrides).start()
        started.append(mp)
        return mp

    yield start
    for mp in started:
        mp.stop()


# -- recipient rules -----------------------------------------------------------------------------


def test_release_blocked_recipients_match_whatever_the_case(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    keys = {"blocked-recipients": r"@customers\.test$|^ceo@"}
    mp = relay_server(smtp_relay_config=relay_yaml(tmp_path, upstream.port, **keys))
    send(mp, ["dev@example.test"])
    uid = only_id(mp)
    for rcpt in ("bob@Customers.Test", "CEO@example.com", "Ceo@Example.Com"):
        status, text = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": [rcpt]})
        assert status == 400, (rcpt, text)
        assert rcpt in text and "blocked-recipients" in text
    assert upstream.received == []
    assert mp.mailbox.relay_history(uid)["Attempts"] == []


def test_release_allowed_recipients_match_whatever_the_case(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    keys = {"allowed-recipients": r"^qa@ok\.test$"}
    mp = relay_server(smtp_relay_config=relay_yaml(tmp_path, upstream.port, **keys))
    send(mp, ["dev@example.test"])
    uid = only_id(mp)
    status, text = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": ["QA@OK.Test"]})
    assert (status, text) == (200, "ok")
    (got,) = upstream.received
    assert got.rcpts == ["QA@OK.Test"]
    status, text = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": ["qa@other.test"]})
    assert status == 400 and "allowed-recipients" in text


def test_auto_relay_skips_blocked_recipients_whatever_the_case(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    keys = {"blocked-recipients": r"@customers\.test$"}
    cfg = relay_yaml(tmp_path, upstream.port, **keys)
    mp = relay_server(smtp_relay_config=cfg, smtp_relay_all=True)
    send(mp, ["bob@Customers.Test", "ann@example.test", "EVE@CUSTOMERS.TEST"])
    got = wait_until(lambda: upstream.received and upstream.received[0], what="the relayed copy")
    assert got.rcpts == ["ann@example.test"]
    assert len(upstream.received) == 1


def test_relay_matching_matches_whatever_the_case(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    cfg = relay_yaml(tmp_path, upstream.port)
    mp = relay_server(smtp_relay_config=cfg, smtp_relay_matching=r"@qa\.test$")
    send(mp, ["Ann@QA.Test", "bob@example.test"])
    got = wait_until(lambda: upstream.received and upstream.received[0], what="the relayed copy")
    assert got.rcpts == ["Ann@QA.Test"]
