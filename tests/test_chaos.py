"""Fault injection: Mailpit's chaos triggers and ours at each SMTP stage, seeded dice, the API."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from importlib import resources
from typing import Any

import pytest

from front_door import lines, message, newest_session, next_error
from helpers import RawClient
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError
from mailpit_py.server import Server
from mailpit_py.smtp.chaos import Chaos, parse_triggers


def api(mp: Server, method: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(mp.http_url + "api/v1/chaos", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_mailpit_syntax_and_ours_parse() -> None:
    t = parse_triggers("Sender:451:10, recipient:550:5,Authentication:535:5")
    assert t.to_api()["Sender"] == {"ErrorCode": 451, "Probability": 10}
    assert t.to_api()["Recipient"] == {"ErrorCode": 550, "Probability": 5}
    assert t.to_api()["Authentication"] == {"ErrorCode": 535, "Probability": 5}
    t = parse_triggers("Connect:554:1,EHLO:421:2,data:452:3,Drop:4,Delay:1.5s:6")
    assert t.to_api() == {
        "Sender": {"ErrorCode": 451, "Probability": 0},
        "Recipient": {"ErrorCode": 451, "Probability": 0},
        "Authentication": {"ErrorCode": 535, "Probability": 0},
        "Connect": {"ErrorCode": 554, "Probability": 1},
        "Helo": {"ErrorCode": 421, "Probability": 2},
        "Data": {"ErrorCode": 452, "Probability": 3},
        "Drop": {"Probability": 4},
        "Delay": {"Milliseconds": 1500, "Probability": 6},
    }
    assert parse_triggers("Delay:250").to_api()["Delay"] == {
        "Milliseconds": 250,
        "Probability": 100,
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("Sender:451", "use Sender:CODE:PERCENT"),
        ("Sender:200:10", "error code must be a number from 400 to 599"),
        ("Recipient:451:101", "probability must be a whole number from 0 to 100"),
        ("Bogus:451:1", "unknown trigger 'Bogus'"),
        ("Delay:soon", "not a duration"),
        ("Drop:x", "'x' is not a whole number"),
    ],
)
def test_bad_triggers_are_config_errors_that_show_the_syntax(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as info:
        config_from(["--chaos-triggers", text], {})
    assert str(info.value).startswith("--chaos-triggers: ")
    assert "STAGE:CODE:PERCENT" in str(info.value)


def test_chaos_variables_map_onto_the_config() -> None:
    config = config_from(
        [], {"MP_ENABLE_CHAOS": "true", "MP_CHAOS_TRIGGERS": "Sender:451:5", "MP_CHAOS_SEED": "7"}
    )
    assert (config.enable_chaos, config.chaos_triggers, config.chaos_seed) == (
        True,
        "Sender:451:5",
        7,
    )


@pytest.mark.parametrize(
    ("triggers", "reply"),
    [
        ("Sender:451:100", "451 4.3.0 Error: chaos Sender trigger"),
        ("Recipient:550:100", "550 5.1.0 Error: chaos Recipient trigger"),
        ("Helo:554:100", "554 5.7.0 Error: chaos Helo trigger"),
    ],
)
def test_a_stage_trigger_at_100_percent_refuses_with_its_code(
    server_factory, triggers: str, reply: str
) -> None:
    mp = server_factory(chaos_triggers=triggers)
    stage = triggers.split(":")[0]
    with mp.bus.subscribe() as sub:
        c = RawClient(mp.smtp_address)
        answers = [
            c.cmd("EHLO me"),
            c.cmd("MAIL FROM:<a@example.com>"),
            c.cmd("RCPT TO:<b@example.com>"),
        ]
        event = next_error(sub)
        c.cmd("QUIT")
        c.close()
    assert reply in answers
    assert event["Rule"] == f"chaos-{stage.lower()}" and event["Message"] == reply
    log = lines(newest_session(mp))
    assert (
        log[log.index(reply) + 1] == f"rule chaos-{stage.lower()}: the chaos {stage} trigger fired"
    )


def test_the_data_trigger_refuses_after_the_data_and_stores_nothing(server_factory) -> None:
    mp = server_factory(chaos_triggers="Data:451:100")
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    assert c.cmd("DATA").startswith("354")
    c.send(message("lost") + b".\r\n")
    assert c.reply() == "451 4.3.0 Error: chaos Data trigger"
    assert c.cmd("MAIL FROM:<a@example.com>").startswith("250")  # the session goes on
    c.close()
    assert mp.mailbox.counts() == (0, 0)


def test_the_authentication_trigger(server_factory) -> None:
    mp = server_factory(
        chaos_triggers="Authentication:454:100",
        smtp_auth_accept_any=True,
        smtp_auth_allow_insecure=True,
    )
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    assert c.cmd("AUTH PLAIN AHUAcA==") == "454 4.7.0 Error: chaos Authentication trigger"
    c.close()


def test_a_connect_trigger_with_421_replaces_the_greeting_and_closes(server_factory) -> None:
    mp = server_factory(chaos_triggers="Connect:421:100")
    c = RawClient(mp.smtp_address)
    assert c.greeting == "421 4.3.0 Error: chaos Connect trigger"
    assert c.file.readline() == b""
    c.close()
    assert newest_session(mp)["Outcome"] == "refused"


def test_drop_closes_the_connection_without_a_reply(server_factory) -> None:
    mp = server_factory(chaos_triggers="Drop:100")
    with mp.bus.subscribe() as sub:
        c = RawClient(mp.smtp_address)
        assert c.greeting.startswith("220")
        c.send(b"EHLO me\r\n")
        assert c.file.readline() == b""
        event = next_error(sub)
        c.close()
    assert event["Rule"] == "chaos-drop"
    session = newest_session(mp)
    assert session["Outcome"] == "dropped by chaos"
    assert "chaos Drop trigger at EHLO: closed without a reply" in lines(session)


def recipient_outcomes(mp: Server, count: int) -> list[str]:
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    codes = [c.cmd(f"RCPT TO:<r{n}@example.com>")[:3] for n in range(count)]
    c.close()
    return codes


def test_a_seed_makes_the_dice_repeat(server_factory) -> None:
    settings = {"chaos_triggers": "Recipient:451:50", "chaos_seed": 1234, "smtp_max_recipients": 50}
    first = recipient_outcomes(server_factory(**settings), 40)
    second = recipient_outcomes(server_factory(**settings), 40)
    assert first == second
    assert {"250", "451"} == set(first)  # both outcomes occur: it is a coin, not a constant


def test_delay_is_seeded_too_and_replies_still_arrive(server_factory) -> None:
    a, b = (Chaos(parse_triggers("Delay:250ms:50"), seed=9) for _ in range(2))
    draws = [a.delay() for _ in range(30)]
    assert draws == [b.delay() for _ in range(30)]
    assert set(draws) == {0.0, 0.25}
    mp = server_factory(chaos_triggers="Delay:2s")
    c = RawClient(mp.smtp_address, timeout=30)  # the greeting was delayed too
    c.sock.settimeout(0.2)
    c.send(b"NOOP\r\n")
    # Nothing yet: the reply is held back (a slow server can only make this pass, never fail).
    with pytest.raises(TimeoutError):
        c.sock.recv(100, socket.MSG_PEEK)
    c.sock.settimeout(30)
    assert c.reply() == "250 2.0.0 OK"
    c.close()


def test_chaos_api_answers_400_when_chaos_is_off(server: Server) -> None:
    status, text = api(server, "GET")
    assert status == 400
    assert "chaos is not enabled: start with --enable-chaos" in text
    assert api(server, "PUT", {"Sender": {"ErrorCode": 451, "Probability": 5}})[0] == 400


def test_chaos_api_reads_and_replaces_the_triggers_at_run_time(server_factory) -> None:
    mp = server_factory(enable_chaos=True)
    status, body = api(mp, "GET")
    assert status == 200
    assert body["Sender"] == {"ErrorCode": 451, "Probability": 0}
    assert body["Authentication"] == {"ErrorCode": 535, "Probability": 0}
    spec = json.loads(resources.files("mailpit_py.webapp").joinpath("swagger.json").read_text())
    assert set(body) == set(spec["components"]["schemas"]["ChaosTriggers"]["properties"])
    status, body = api(mp, "PUT", {"Sender": {"ErrorCode": 452, "Probability": 100}})
    assert status == 200
    assert body["Sender"] == {"ErrorCode": 452, "Probability": 100}
    assert body["Recipient"] == {"ErrorCode": 451, "Probability": 0}  # reset, as Mailpit does
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    assert c.cmd("MAIL FROM:<a@example.com>") == "452 4.5.3 Error: chaos Sender trigger"
    c.close()
    status, text = api(mp, "PUT", {"Recipient": {"ErrorCode": 200, "Probability": 5}})
    assert status == 400 and "error code must be a number from 400 to 599" in text
    status, text = api(mp, "PUT", {"Drop": {"Probability": 101}})
    assert status == 400 and "probability" in text
    assert api(mp, "GET")[1]["Sender"]["Probability"] == 100  # a bad PUT changes nothing
    status, body = api(mp, "PUT", {})
    assert status == 200 and body["Sender"]["Probability"] == 0
    with urllib.request.urlopen(mp.http_url + "api/v1/webui", timeout=10) as resp:
        assert json.loads(resp.read())["ChaosEnabled"] is True
