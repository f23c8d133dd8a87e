"""Relay hardening against a real upstream SMTP server: recipient rules match addresses
case-insensitively (domains are, and a rule must not be dodged by capitals), and no CR or LF
from a message reaches a header that mailpit_py writes on a released or forwarded copy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_relay import headers_of, http, only_id, relay_yaml, send
from upstream import UpstreamServer

from helpers import make_server, wait_until
from mailpit_py.config.errors import ConfigError
from mailpit_py.relay import config as relay_config
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


# -- headers mailpit_py writes -------------------------------------------------------------------

ENCODED_CRLF_FROM = b"=?utf-8?q?Eve=0D=0ABcc=3A_victim=40evil=2Etest?= <eve@example.com>"
RAW_CR_FROM = b'"Eve\rBcc: victim@evil.test" <eve@example.com>'


def message_from(from_value: bytes) -> bytes:
    return (
        b"From: " + from_value + b"\r\n"
        b"To: Bob <bob@example.test>\r\n"
        b"Subject: hello\r\n"
        b"\r\n"
        b"Body.\r\n"
    )


def header_section(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


def assert_clean_headers(data: bytes, expected_names: set[str]) -> None:
    """Lines end in CRLF only; each line is a field or a fold; the fields are the expected, plus
    the relay's own Received hop on top (RFC 5321 section 4.4)."""
    head = header_section(data)
    assert b"\r" not in head.replace(b"\r\n", b""), head
    assert b"\n" not in head.replace(b"\r\n", b""), head
    names = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue
        name, colon, _ = line.partition(b":")
        assert colon and name and b" " not in name, line
        names.append(name.decode().lower())
    assert names[0] == "received", names
    assert sorted(names[1:]) == sorted(expected_names), names


@pytest.mark.parametrize("from_value", [ENCODED_CRLF_FROM, RAW_CR_FROM], ids=["encoded", "raw-cr"])
def test_override_from_never_lets_a_display_name_add_a_header(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path, from_value: bytes
) -> None:
    keys = {"override-from": "relay@mine.test", "return-path": "bounces@mine.test"}
    mp = relay_server(smtp_relay_config=relay_yaml(tmp_path, upstream.port, **keys))
    send(mp, ["bob@example.test"], message_from(from_value))
    uid = only_id(mp)
    status, text = http(mp, "POST", f"api/v1/message/{uid}/release", {"To": ["tester@ok.test"]})
    assert (status, text) == (200, "ok")
    (got,) = upstream.received
    assert got.rcpts == ["tester@ok.test"]
    assert got.mail_from == "bounces@mine.test"
    assert_clean_headers(
        got.data,
        {"return-path", "date", "message-id", "x-original-from", "from", "to", "subject"},
    )
    msg = headers_of(got.data)
    (from_header,) = msg.get_all("From")
    assert from_header.endswith("<relay@mine.test>")
    assert "Eve" in from_header  # the name is kept, made harmless
    assert msg["Bcc"] is None
    assert msg["Return-Path"] == "<bounces@mine.test>"


def test_forward_with_override_from_never_lets_a_display_name_add_a_header(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    keys = {"override-from": "fwd@mine.test", "to": "copies@mine.test"}
    cfg = relay_yaml(tmp_path, upstream.port, "forward.yaml", **keys)
    mp = relay_server(smtp_forward_config=cfg)
    send(mp, ["bob@example.test"], message_from(ENCODED_CRLF_FROM))
    got = wait_until(lambda: upstream.received and upstream.received[0], what="the forward")
    assert got.rcpts == ["copies@mine.test"]
    assert_clean_headers(got.data, {"x-original-from", "from", "to", "subject"})
    msg = headers_of(got.data)
    assert len(msg.get_all("From")) == 1 and msg["Bcc"] is None
    assert len(upstream.received) == 1


@pytest.mark.parametrize("key", ["RETURN_PATH", "OVERRIDE_FROM"])
def test_an_address_setting_with_a_line_break_is_refused_at_start_up(key: str) -> None:
    environ = {
        "MP_SMTP_RELAY_HOST": "127.0.0.1",
        f"MP_SMTP_RELAY_{key}": "bounces@mine.test\r\nBcc: victim@evil.test",
    }
    with pytest.raises(ConfigError) as err:
        relay_config.load_relay("", environ, mx=False)
    text = str(err.value)
    assert key.lower().replace("_", "-") in text
    assert "one address" in text and "bounces@example.com" in text


def test_return_path_is_written_as_the_bare_address(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text('host: 127.0.0.1\nreturn-path: "Bounces <bounces@mine.test>"\n')
    up = relay_config.load_relay(str(path), {}, mx=False)
    assert up is not None and up.return_path == "bounces@mine.test"


def test_a_bare_cr_never_reaches_the_upstream(
    relay_server: Callable[..., Server], upstream: UpstreamServer, tmp_path: Path
) -> None:
    # SMTP forbids a lone CR (RFC 5321 section 2.3.8); an upstream that ends lines there would
    # otherwise read a field of its own in the header, or the end of the data in the body.
    cfg = relay_yaml(tmp_path, upstream.port)
    mp = relay_server(smtp_relay_config=cfg, smtp_relay_all=True)
    data = (
        b"From: app@example.test\r\nSubject: hi\rBcc: victim@evil.test\r\n\r\n"
        b"one\r.\rMAIL FROM:<x@evil.test>\r\n"
    )
    send(mp, ["bob@example.test"], data)
    got = wait_until(lambda: upstream.received and upstream.received[0], what="the relayed copy")
    assert b"\r" not in got.data.replace(b"\r\n", b"")
    assert_clean_headers(got.data, {"from", "subject"})
    assert headers_of(got.data)["Bcc"] is None
    assert got.rcpts == ["bob@example.test"] and len(upstream.received) == 1
