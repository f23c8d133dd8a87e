"""SMTP access policy over raw sockets: each rule's exact reply, its session-log line, its error
event and its counter; connection limits, client lists, rate limit, greylist, reverse DNS."""

from __future__ import annotations

import asyncio
import json
import smtplib

import pytest

from front_door import (
    lines,
    logged_anywhere,
    message,
    newest_session,
    next_error,
    transaction,
)
from helpers import RawClient, WsClient, wait_until
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError
from mailpit_py.server import Server


class FakeClock:
    """Stands in for time.monotonic so a test steps over a delay without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused_with(mp: Server, c: RawClient, command: str, reply: str, rule: str) -> str:
    """Send `command`, expect exactly `reply`, and return the error event's rule."""
    with mp.bus.subscribe() as sub:
        assert c.cmd(command) == reply
        event = next_error(sub)
    assert event["Message"] == reply and event["Type"] == "smtpd" and event["IP"] == "127.0.0.1"
    assert mp.mailbox.telemetry.counter("smtp_replies")[(f"{reply[0]}xx", rule)] >= 1
    return str(event["Rule"])


def logged(mp: Server, reply: str, rule_line: str) -> None:
    """The newest session's log has the reply followed by its rule line."""
    log = lines(newest_session(mp))
    at = log.index(reply)
    assert log[at + 1] == rule_line, log[at : at + 2]


def test_recipient_outside_the_allowed_pattern_gets_550(server_factory) -> None:
    mp = server_factory(smtp_allowed_recipients=r"@example\.com$")
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    assert c.cmd("RCPT TO:<ok@Example.COM>").startswith("250 2.1.5")
    reply = "550 5.7.1 Error: recipient <x@elsewhere.org> is not allowed: relay access denied"
    rule = refused_with(mp, c, "RCPT TO:<x@elsewhere.org>", reply, "allowed-recipients")
    assert rule == "allowed-recipients"
    assert c.cmd("DATA").startswith("354")
    c.send(message("allowed only") + b".\r\n")
    assert c.reply().startswith("250 2.0.0")
    c.cmd("QUIT")
    c.close()
    assert mp.mailbox.get("latest").detail["Envelope"]["To"] == ["ok@Example.COM"]
    logged(
        mp,
        reply,
        r"rule allowed-recipients: <x@elsewhere.org> does not match --smtp-allowed-recipients",
    )


def test_ignored_recipients_count_towards_the_recipient_limit(server_factory) -> None:
    # Each one got 250, so the client sent that many recipients (RFC 5321 4.5.3.1.8); they
    # were left out of the count, and the list of them grew without a bound.
    mp = server_factory(
        smtp_allowed_recipients=r"@example\.com$",
        smtp_ignore_rejected_recipients=True,
        smtp_max_recipients=3,
    )
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    assert c.cmd("RCPT TO:<ok@example.com>") == "250 2.1.5 OK"
    assert c.cmd("RCPT TO:<x@elsewhere.org>") == "250 2.1.5 OK"
    assert c.cmd("RCPT TO:<y@elsewhere.org>") == "250 2.1.5 OK"
    assert c.cmd("RCPT TO:<z@elsewhere.org>").startswith("452 4.5.3")
    assert c.cmd("RCPT TO:<ok2@example.com>").startswith("452 4.5.3")
    c.close()


def test_ignore_rejected_recipients_answers_250_and_drops_them(server_factory) -> None:
    mp = server_factory(
        smtp_allowed_recipients=r"@example\.com$", smtp_ignore_rejected_recipients=True
    )
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    assert c.cmd("RCPT TO:<ok@example.com>") == "250 2.1.5 OK"
    assert c.cmd("RCPT TO:<x@elsewhere.org>") == "250 2.1.5 OK"
    c.cmd("DATA")
    c.send(message("kept") + b".\r\n")
    kept = c.reply()
    assert kept.startswith("250 2.0.0 Ok: queued as ")
    # Only ignored recipients: accepted, then discarded.
    c.cmd("MAIL FROM:<a@example.com>")
    assert c.cmd("RCPT TO:<y@elsewhere.org>") == "250 2.1.5 OK"
    assert c.cmd("DATA").startswith("354")
    c.send(message("dropped") + b".\r\n")
    assert c.reply() == "250 2.0.0 Ok: discarded, no allowed recipients"
    c.close()
    assert [m["Subject"] for m in mp.mailbox.list_messages()] == ["kept"]
    assert mp.mailbox.get("latest").detail["Envelope"]["To"] == ["ok@example.com"]
    log = lines(newest_session(mp))
    assert "recipient ignored: <x@elsewhere.org> does not match --smtp-allowed-recipients" in log
    assert "message discarded: every recipient was ignored" in log


@pytest.mark.parametrize(
    ("settings", "rule", "why"),
    [
        ({"smtp_deny_ips": "10.0.0.0/8, 127.0.0.0/8"}, "deny-ips", "is in --smtp-deny-ips"),
        ({"smtp_allow_ips": "192.168.0.0/16 fd00::/8"}, "allow-ips", "is not in --smtp-allow-ips"),
    ],
)
def test_a_refused_client_gets_554_then_503_until_quit(
    server_factory, settings: dict[str, str], rule: str, why: str
) -> None:
    mp = server_factory(**settings)
    with mp.bus.subscribe() as sub:
        c = RawClient(mp.smtp_address)
        event = next_error(sub)
    assert c.greeting == "554 5.7.1 Error: connections from 127.0.0.1 are not accepted"
    assert event["Rule"] == rule
    assert c.cmd("EHLO me") == "503 5.5.1 Error: this connection was refused, send QUIT"
    assert c.cmd("QUIT") == "221 2.0.0 Bye"
    assert c.file.readline() == b""
    c.close()
    session = newest_session(mp)
    assert session["Outcome"] == "refused"
    assert f"rule {rule}: 127.0.0.1 {why}" in lines(session)
    assert mp.mailbox.telemetry.counter("smtp_sessions")[("refused",)] == 1


def test_an_allowed_client_is_served_and_ipv6_lists_work(server_factory) -> None:
    mp = server_factory(smtp_addr="[::1]:0", smtp_allow_ips="::1/128", smtp_deny_ips="10.0.0.0/8")
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.sendmail("a@example.com", ["b@example.com"], message("allowed v6"))
    assert mp.mailbox.get("latest").summary["Subject"] == "allowed v6"
    denied = server_factory(smtp_addr="[::1]:0", smtp_deny_ips="::1")
    c = RawClient(denied.smtp_address)
    assert c.greeting.startswith("554 5.7.1")
    c.close()


def test_max_connections_gets_421_at_connect_and_frees_up(server_factory) -> None:
    mp = server_factory(smtp_max_connections=2)
    first, second = RawClient(mp.smtp_address), RawClient(mp.smtp_address)
    assert first.greeting.startswith("220") and second.greeting.startswith("220")
    with mp.bus.subscribe() as sub:
        third = RawClient(mp.smtp_address)
        event = next_error(sub)
    assert third.greeting == "421 4.7.0 Error: too many connections, try again later"
    assert third.file.readline() == b""  # closed after the 421
    assert event["Rule"] == "max-connections"
    third.close()
    first.cmd("QUIT")
    first.close()
    # Once a slot is free (the server has seen the close), a new client is greeted.
    wait_until(lambda: mp.smtp.policy.connections == 1, what="the closed connection to count")
    fourth = RawClient(mp.smtp_address)
    assert fourth.greeting.startswith("220")
    for c in (second, fourth):
        c.close()
    assert logged_anywhere(mp, "rule max-connections:") == (
        "rule max-connections: 3 open, --smtp-max-connections is 2"
    )


def test_max_connections_per_ip_gets_421(server_factory) -> None:
    mp = server_factory(smtp_max_connections_per_ip=1)
    first = RawClient(mp.smtp_address)
    with mp.bus.subscribe() as sub:
        second = RawClient(mp.smtp_address)
        assert next_error(sub)["Rule"] == "max-connections-per-ip"
    assert first.greeting.startswith("220")
    assert second.greeting == (
        "421 4.7.0 Error: too many connections from 127.0.0.1, try again later"
    )
    first.close()
    second.close()
    assert logged_anywhere(mp, "rule max-connections-per-ip:") == (
        "rule max-connections-per-ip: 2 open from 127.0.0.1, --smtp-max-connections-per-ip is 1"
    )


def test_rate_limit_gets_451_at_mail_and_lets_the_client_retry_later(server_factory) -> None:
    mp = server_factory(smtp_rate_limit=2)
    clock = FakeClock()
    mp.smtp.policy.clock = clock
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    for n in range(2):
        assert transaction(c, f"m{n}").startswith("250 2.0.0")
    reply = "451 4.7.1 Error: rate limit of 2 messages per minute exceeded, try again in 60 seconds"
    assert refused_with(mp, c, "MAIL FROM:<a@example.com>", reply, "rate-limit") == "rate-limit"
    clock.now += 61
    assert transaction(c, "after a minute").startswith("250 2.0.0")
    c.close()
    logged(mp, reply, "rule rate-limit: 2 messages from 127.0.0.1 in the last minute")
    assert mp.mailbox.counts()[0] == 3


def test_greylisting_defers_the_first_try_and_accepts_a_retry_after_the_delay(
    server_factory,
) -> None:
    mp = server_factory(smtp_greylist=300)
    clock = FakeClock()
    mp.smtp.policy.clock = clock
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<app@example.com>")
    first = "451 4.7.1 Greylisted, try again in 300 seconds"
    assert refused_with(mp, c, "RCPT TO:<user@example.org>", first, "greylist") == "greylist"
    clock.now += 100
    assert c.cmd("RCPT TO:<user@example.org>") == "451 4.7.1 Greylisted, try again in 200 seconds"
    # Another triple is its own first try.
    assert c.cmd("RCPT TO:<other@example.org>").startswith("451 4.7.1")
    clock.now += 200
    assert c.cmd("RCPT TO:<user@example.org>") == "250 2.1.5 OK"
    assert c.cmd("DATA").startswith("354")
    c.send(message("after greylisting") + b".\r\n")
    assert c.reply().startswith("250 2.0.0")
    c.close()
    assert mp.mailbox.get("latest").detail["Envelope"]["To"] == ["user@example.org"]
    log = lines(newest_session(mp))
    assert any(line.startswith("rule greylist: first try from 127.0.0.1 for") for line in log)
    # A later connection from the same client (as a queue's retry is) passes straight away.
    again = RawClient(mp.smtp_address)
    again.cmd("EHLO me")
    again.cmd("MAIL FROM:<app@example.com>")
    assert again.cmd("RCPT TO:<user@example.org>") == "250 2.1.5 OK"
    again.close()


def test_reverse_dns_goes_into_the_log_and_a_received_header(server_factory) -> None:
    mp = server_factory(smtp_reverse_dns=True)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO client.example")
    assert transaction(c, "with rdns").startswith("250 2.0.0")
    c.close()
    stored = mp.mailbox.get("latest")
    raw = mp.mailbox.raw("latest")
    assert raw.startswith(b"Received: from client.example (localhost [127.0.0.1])\r\n")
    assert f"with ESMTP id {stored.id};".encode() in raw
    assert "reverse DNS of 127.0.0.1: localhost" in [line for _, _, line in stored.transcript]


def test_a_slow_reverse_dns_never_holds_the_session_up(server_factory) -> None:
    mp = server_factory(smtp_reverse_dns=True)
    lookups: list[str] = []

    async def stuck(ip: str) -> str:
        lookups.append(ip)
        await asyncio.sleep(3600)  # a DNS server that never answers
        return "never.example"

    mp.smtp.reverse_lookup = stuck
    with smtplib.SMTP(*mp.smtp_address, timeout=30) as client:
        client.sendmail("a@example.com", ["b@example.com"], message("no rdns"))
    assert lookups == ["127.0.0.1"]
    raw = mp.mailbox.raw("latest")
    assert raw.startswith(b"Received: from ")
    assert b"(unknown [127.0.0.1])" in raw.split(b"\r\n\r\n", 1)[0]
    transcript = [line for _, _, line in mp.mailbox.get("latest").transcript]
    assert "reverse DNS of 127.0.0.1: no answer in time" in transcript


def test_without_reverse_dns_no_header_is_added(server: Server) -> None:
    with smtplib.SMTP(*server.smtp_address) as client:
        client.sendmail("a@example.com", ["b@example.com"], message("plain"))
    assert server.mailbox.raw("latest") == message("plain")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--smtp-allowed-recipients", "([a-z"], "is not a regular expression"),
        (["--smtp-deny-ips", "10.0.0.0/33"], "--smtp-deny-ips: '10.0.0.0/33' is not an IP"),
        (["--smtp-allow-ips", "localhost"], "--smtp-allow-ips: 'localhost' is not an IP"),
        (["--smtp-max-connections", "-1"], "--smtp-max-connections must be 0"),
        (["--smtp-rate-limit", "-5"], "--smtp-rate-limit must be 0"),
        (["--smtp-greylist", "soon"], "not a duration"),
    ],
)
def test_policy_settings_that_cannot_work_are_config_errors(argv: list[str], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        config_from(argv, {})


def test_policy_variables_map_onto_the_config() -> None:
    config = config_from(
        [],
        {
            "MP_SMTP_ALLOWED_RECIPIENTS": "@example",
            "MP_SMTP_IGNORE_REJECTED_RECIPIENTS": "true",
            "MP_SMTP_DENY_IPS": "10.0.0.0/8",
            "MP_SMTP_MAX_CONNECTIONS_PER_IP": "4",
            "MP_SMTP_RATE_LIMIT": "30",
            "MP_SMTP_GREYLIST": "5m",
            "MP_SMTP_REVERSE_DNS": "1",
        },
    )
    assert config.smtp_ignore_rejected_recipients is True
    assert (config.smtp_max_connections_per_ip, config.smtp_rate_limit) == (4, 30)
    assert config.smtp_greylist == 300 and config.smtp_reverse_dns is True


def test_a_refusal_reaches_the_websocket_as_an_error_event_with_its_rule(server_factory) -> None:
    mp = server_factory(smtp_allowed_recipients=r"@example\.com$")
    ws = WsClient.connect(mp.http_url.replace("http://", "ws://") + "api/events")
    try:
        assert json.loads(ws.receive(timeout=10))["Type"] == "stats"  # subscribed from here on
        c = RawClient(mp.smtp_address)
        c.cmd("EHLO me")
        c.cmd("MAIL FROM:<a@example.com>")
        assert c.cmd("RCPT TO:<x@elsewhere.org>").startswith("550 5.7.1")
        c.close()
        while True:
            frame = ws.receive(timeout=10)
            assert frame is not None, "no error event on the websocket"
            event = json.loads(frame)
            if event["Type"] == "error":
                break
    finally:
        ws.close()
    assert event["Data"] == {
        "Level": "error",
        "Type": "smtpd",
        "IP": "127.0.0.1",
        "Message": (
            "550 5.7.1 Error: recipient <x@elsewhere.org> is not allowed: relay access denied"
        ),
        "Rule": "allowed-recipients",
    }
