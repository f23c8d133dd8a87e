"""Several SMTP listeners in one instance (--smtp-listener): each with its own TLS mode, AUTH
requirement and receiver profile, all delivering into the one store, and each message saying
which listener took it."""

from __future__ import annotations

import json
import smtplib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from front_door import client_tls
from helpers import RawClient, make_server
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError
from mailpit_py.server import Server

ZONE = """
bank.test TXT "v=spf1 ip4:198.51.100.1 -all"
_dmarc.bank.test TXT "v=DMARC1; p=reject"
7.113.0.203.in-addr.arpa PTR mail.shop.test
mail.shop.test A 203.0.113.7
"""
RAW = b"From: a@bank.test\r\nTo: dev@example.org\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def mp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    zone: Path = tmp_path_factory.mktemp("zone") / "zone.txt"
    zone.write_text(ZONE)
    with make_server(
        smtp_tls_cert="sans:localhost",
        smtp_auth="dev:secret",
        smtp_listeners=(
            "mx=127.0.0.1:0,tls=optional,auth=off,receiver=strict",
            "smtps=127.0.0.1:0,tls=implicit,auth=optional",
            "submission=127.0.0.1:0,tls=starttls,auth=required",
        ),
        dns_override=str(zone),
        dns_offline=True,
        checks_client_ip="203.0.113.7",
    ) as server:
        yield server


def api(mp: Server, path: str) -> Any:
    with urllib.request.urlopen(mp.http_url + path.lstrip("/"), timeout=30) as resp:
        return json.loads(resp.read())


def stored(mp: Server, uid: str) -> dict[str, Any]:
    return dict(api(mp, f"api/v1/message/{uid}"))


def queued_id(reply: bytes) -> str:
    return reply.decode().rsplit(" ", 1)[1]


def test_submission_needs_starttls_then_auth(mp: Server) -> None:
    with smtplib.SMTP(*mp.listener_address("submission")) as client:
        client.ehlo()
        assert client.mail("a@bank.test") == (530, b"5.7.0 Must issue a STARTTLS command first")
        client.starttls(context=client_tls())
        client.ehlo()
        assert client.mail("a@bank.test") == (530, b"5.7.0 Authentication required")
        client.login("dev", "secret")
        assert client.mail("a@bank.test")[0] == 250
        client.rcpt("dev@example.org")
        code, reply = client.data(RAW)
    assert code == 250
    msg = stored(mp, queued_id(reply))
    assert msg["Listener"] == "submission" and msg["Envelope"]["TLS"] is True
    assert msg["Username"] == "dev" and msg["Refused"] is None
    smtp = api(mp, f"api/v1/message/{msg['ID']}/smtp")
    assert "(listener submission)" in smtp["Transcript"][0]["Line"]


def test_implicit_tls_listener_speaks_tls_from_the_first_byte(mp: Server) -> None:
    with smtplib.SMTP_SSL(*mp.listener_address("smtps"), context=client_tls()) as client:
        client.ehlo()
        client.mail("a@bank.test")  # AUTH offered, not required
        client.rcpt("dev@example.org")
        code, reply = client.data(RAW)
    assert code == 250
    msg = stored(mp, queued_id(reply))
    assert msg["Listener"] == "smtps" and msg["Envelope"]["TLS"] is True
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtplib.SMTP(*mp.listener_address("smtps"), timeout=2)  # plain SMTP hears nothing


def test_mx_listener_offers_no_auth_and_applies_its_own_receiver(mp: Server) -> None:
    with smtplib.SMTP(*mp.listener_address("mx")) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        code, _ = client.docmd("AUTH", "PLAIN AGRldgBzZWNyZXQ=")
        assert code == 502
        # strict: SPF of bank.test does not list the (simulated) client: refused at RCPT, as
        # Postfix's SPF policy service answers
        assert client.mail("a@bank.test")[0] == 250
        code, text = client.rcpt("dev@example.org")
        assert code == 550
        assert text.startswith(
            b"5.7.23 <dev@example.org>: Recipient address rejected: Message rejected due to: "
            b"SPF fail - not authorized."
        )


def test_the_default_listener_keeps_its_own_settings(mp: Server) -> None:
    # --smtp follows the global flags: credentials make AUTH required, --receiver permissive
    client = RawClient(mp.smtp_address)
    client.cmd("EHLO x")
    assert client.cmd("MAIL FROM:<a@bank.test>").startswith("530 5.7.0 Authentication required")
    client.close()
    assert set(mp.smtp_listeners) == {"default", "mx", "smtps", "submission"}
    assert len({mp.listener_address(n)[1] for n in mp.smtp_listeners}) == 4


def test_listeners_from_repeated_flags_and_the_variable() -> None:
    cfg = config_from(
        ["--smtp-listener", "a=127.0.0.1:0", "--smtp-listener", "b=127.0.0.1:0,auth=off"],
        {},
    )
    assert cfg.smtp_listeners == ("a=127.0.0.1:0", "b=127.0.0.1:0,auth=off")
    cfg = config_from([], {"MP_SMTP_LISTENERS": "a=127.0.0.1:0; b=127.0.0.1:0,receiver=gmail"})
    assert cfg.smtp_listeners == ("a=127.0.0.1:0", "b=127.0.0.1:0,receiver=gmail")


@pytest.mark.parametrize(
    ("spec", "extra", "error"),
    [
        (
            "sub=127.0.0.1:0,tls=implicit",
            {},
            "--smtp-listener sub: tls=implicit needs a certificate",
        ),
        ("sub=127.0.0.1:0,auth=required", {}, "--smtp-listener sub: auth=required needs logins"),
        ("sub=127.0.0.1:0,tls=maybe", {}, "--smtp-listener sub: tls='maybe': use one of off,"),
        ("sub=127.0.0.1:0,colour=red", {}, "--smtp-listener sub: 'colour=red' is not an option"),
        ("127.0.0.1:25", {}, "must start with NAME=ADDR"),
        ("sub=127.0.0.1:0,receiver=hotmail", {}, "'hotmail' is not a receiver profile"),
    ],
)
def test_a_listener_that_cannot_work_stops_start_up(
    spec: str, extra: dict[str, Any], error: str
) -> None:
    with pytest.raises(ConfigError) as info:
        make_server(smtp_listeners=(spec,), **extra)
    assert error in str(info.value)


def test_two_listeners_with_one_name_are_refused() -> None:
    with pytest.raises(ConfigError, match="two listeners have this name"):
        make_server(smtp_listeners=("a=127.0.0.1:0", "a=127.0.0.1:0"))
