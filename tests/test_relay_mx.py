"""MX delivery (--smtp-relay-mx) against a local DNS stub: preference order, the next host when
one is unreachable, the A record when there is no MX, and no delivery to a null MX."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_relay import MESSAGE, history, http, only_id
from upstream import DnsStub, UpstreamServer

from helpers import make_server, wait_until
from mailpit_py.server import Server


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    # An MX host: STARTTLS offered, no AUTH (MTAs deliver to MX hosts unauthenticated).
    with UpstreamServer(auth=False) as up:
        yield up


@pytest.fixture
def dns_stub() -> Iterator[DnsStub]:
    stub = DnsStub(
        {
            # mx1 is preferred but nothing listens on 127.0.0.2: delivery falls to mx2.
            ("example.test", "MX"): ["20 mx2.example.test.", "10 mx1.example.test."],
            ("mx1.example.test", "A"): ["127.0.0.2"],
            ("mx2.example.test", "A"): ["127.0.0.1"],
            ("implicit.test", "A"): ["127.0.0.1"],  # no MX: the domain itself is the host
            ("nullmx.test", "MX"): ["0 ."],  # RFC 7505: accepts no mail
        }
    ).start()
    yield stub
    stub.stop()


@pytest.fixture
def mx_server(upstream: UpstreamServer, dns_stub: DnsStub, tmp_path: Path) -> Iterator[Server]:
    cfg = tmp_path / "relay.yaml"
    cfg.write_text(f"port: {upstream.port}\n")  # no host: MX delivery
    with make_server(
        smtp_relay_config=str(cfg),
        smtp_relay_mx=True,
        smtp_relay_mx_nameserver=dns_stub.nameserver,
        smtp_relay_retry_delay=0.05,
    ) as mp:
        with smtplib.SMTP(*mp.smtp_address) as client:
            client.sendmail("app@app.test", ["bob@example.test"], MESSAGE)
        yield mp


def test_release_goes_to_the_mx_hosts_in_preference_order_and_to_a_records(
    mx_server: Server, upstream: UpstreamServer, dns_stub: DnsStub
) -> None:
    uid = only_id(mx_server)
    to = ["bob@example.test", "ann@implicit.test"]
    status, text = http(mx_server, "POST", f"api/v1/message/{uid}/release", {"To": to})
    assert (status, text) == (200, "ok")
    got = sorted(r.rcpts[0] for r in upstream.received)
    assert got == ["ann@implicit.test", "bob@example.test"]
    assert all(r.tls for r in upstream.received)  # STARTTLS was offered, so it was used
    (attempt,) = history(mx_server, uid)["Attempts"]
    assert attempt["Outcome"] == "sent"
    assert f"mx2.example.test [127.0.0.1]:{upstream.port}" in attempt["Server"]
    assert f"implicit.test [127.0.0.1]:{upstream.port}" in attempt["Server"]
    assert ("example.test.", "MX") in dns_stub.queries
    assert ("mx1.example.test.", "A") in dns_stub.queries  # tried first, unreachable
    assert ("implicit.test.", "MX") in dns_stub.queries


def test_null_mx_and_unknown_domains_fail_for_good(
    mx_server: Server, upstream: UpstreamServer
) -> None:
    uid = only_id(mx_server)
    to = ["x@nullmx.test", "y@gone.test"]
    status, text = http(mx_server, "POST", f"api/v1/message/{uid}/release", {"To": to})
    assert status == 502
    assert "null MX" in text and "gone.test does not exist" in text
    assert upstream.received == []
    (item,) = history(mx_server, uid)["Queue"]
    assert item["State"] == "failed" and item["Attempts"] == 1


def test_webui_names_mx_delivery(mx_server: Server) -> None:
    relay = json.loads(http(mx_server, "GET", "api/v1/webui")[1])["MessageRelay"]
    assert relay["Enabled"] is True and relay["SMTPServer"] == "MX hosts"


def test_auto_relay_delivers_by_mx(
    upstream: UpstreamServer, dns_stub: DnsStub, tmp_path: Path
) -> None:
    cfg = tmp_path / "relay.yaml"
    cfg.write_text(f"port: {upstream.port}\n")
    with make_server(
        smtp_relay_config=str(cfg),
        smtp_relay_mx=True,
        smtp_relay_mx_nameserver=dns_stub.nameserver,
        smtp_relay_all=True,
    ) as mp:
        with smtplib.SMTP(*mp.smtp_address) as client:
            client.sendmail("app@app.test", ["bob@example.test"], MESSAGE)
        got = wait_until(lambda: upstream.received, what="delivery by MX")
        assert got[0].rcpts == ["bob@example.test"]
        assert got[0].mail_from == "app@app.test"
