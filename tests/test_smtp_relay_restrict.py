"""Relay access as an MTA has it (--smtp-local-domains, --smtp-trusted-networks): local domains
from anyone, any domain once authenticated or from a trusted network, else Postfix's reply.
Driven with raw sockets, smtplib and swaks against real servers."""

from __future__ import annotations

import smtplib

import pytest

from front_door import lines, message, newest_session, next_error, swaks
from helpers import RawClient
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError

LOCAL = "example.com, *.corp.test"
USERS = {"smtp_auth": "alice:s3cret", "smtp_auth_allow_insecure": True}


def denied(rcpt: str) -> str:
    return f"554 5.7.1 <{rcpt}>: Relay access denied"


def test_local_domains_are_taken_from_anyone_and_others_get_postfixs_554(
    server_factory,
) -> None:
    mp = server_factory(smtp_local_domains=LOCAL)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    assert c.cmd("MAIL FROM:<app@elsewhere.org>").startswith("250")
    for local in ("ok@Example.COM", "team@eu.corp.test", "postmaster"):
        assert c.cmd(f"RCPT TO:<{local}>").startswith("250 2.1.5"), local
    # *.corp.test is every subdomain of corp.test, not corp.test itself (as Postfix's .corp.test)
    with mp.bus.subscribe() as sub:
        assert c.cmd("RCPT TO:<x@corp.test>") == denied("x@corp.test")
        event = next_error(sub)
    assert event["Rule"] == "local-domains" and event["Message"] == denied("x@corp.test")
    assert c.cmd("RCPT TO:<x@example.com.evil.test>") == denied("x@example.com.evil.test")
    assert c.cmd("DATA").startswith("354")
    c.send(message("local only") + b".\r\n")
    assert c.reply().startswith("250 2.0.0")
    c.cmd("QUIT")
    c.close()
    envelope = mp.mailbox.get("latest").detail["Envelope"]
    assert envelope["To"] == ["ok@Example.COM", "team@eu.corp.test", "postmaster"]
    log = lines(newest_session(mp))
    at = log.index(denied("x@corp.test"))
    assert log[at + 1] == (
        "rule local-domains: corp.test is not in --smtp-local-domains and the session is not "
        "authenticated (nor is 127.0.0.1 in --smtp-trusted-networks)"
    )
    assert mp.mailbox.telemetry.counter("smtp_replies")[("5xx", "local-domains")] == 2


def test_smtplib_sees_the_refusal_and_an_authenticated_session_relays(server_factory) -> None:
    mp = server_factory(smtp_local_domains=LOCAL, **USERS)
    # A user list makes AUTH required, except under --smtp-local-domains: there AUTH is what
    # lets a client relay, and anyone may still send to the local domains.
    with smtplib.SMTP(*mp.smtp_address) as client:
        refused = client.sendmail("app@example.com", ["in@example.com", "out@gmail.test"], b"x")
    assert refused == {"out@gmail.test": (554, b"5.7.1 <out@gmail.test>: Relay access denied")}
    with (
        smtplib.SMTP(*mp.smtp_address) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused) as err,
    ):
        client.sendmail("app@example.com", ["out@gmail.test"], b"x")
    assert err.value.recipients["out@gmail.test"][0] == 554
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.login("alice", "s3cret")
        assert client.sendmail("app@example.com", ["out@gmail.test"], message("relayed")) == {}
    latest = mp.mailbox.get("latest")
    assert latest.summary["Username"] == "alice"
    assert latest.detail["Envelope"]["To"] == ["out@gmail.test"]


def test_accept_any_auth_relays_too_and_a_wrong_password_does_not(server_factory) -> None:
    mp = server_factory(
        smtp_local_domains="example.com", smtp_auth_accept_any=True, smtp_auth_allow_insecure=True
    )
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.login("anyone", "anything")
        assert client.sendmail("a@example.com", ["b@other.test"], message("any")) == {}
    strict = server_factory(smtp_local_domains="example.com", **USERS)
    c = RawClient(strict.smtp_address)
    c.cmd("EHLO me")
    assert c.cmd("AUTH PLAIN AGFsaWNlAHdyb25n").startswith("535")  # alice / wrong
    assert c.cmd("MAIL FROM:<a@example.com>").startswith("250")
    assert c.cmd("RCPT TO:<b@other.test>") == denied("b@other.test")
    c.close()


def test_a_trusted_network_relays_without_auth(server_factory) -> None:
    mp = server_factory(smtp_local_domains="example.com", smtp_trusted_networks="127.0.0.0/8")
    with smtplib.SMTP(*mp.smtp_address) as client:
        assert client.sendmail("a@example.com", ["b@other.test"], message("trusted")) == {}
    elsewhere = server_factory(
        smtp_local_domains="example.com", smtp_trusted_networks="10.0.0.0/8, fd00::/8"
    )
    c = RawClient(elsewhere.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    assert c.cmd("RCPT TO:<b@other.test>") == denied("b@other.test")
    c.close()


def test_swaks_is_refused_without_auth_and_relays_with_it(server_factory) -> None:
    mp = server_factory(smtp_local_domains="example.com", **USERS)
    host, port = mp.smtp_address
    server = f"{host}:{port}"
    done = swaks("--server", server, "--to", "b@other.test", "--from", "a@example.com")
    assert done.returncode != 0
    assert "<** 554 5.7.1 <b@other.test>: Relay access denied" in done.stdout
    done = swaks("--server", server, "--to", "b@example.com", "--from", "a@example.com")
    assert done.returncode == 0, done.stdout + done.stderr
    done = swaks("--server", server, "-a", "PLAIN", "-au", "alice", "-ap", "s3cret",
                 "--to", "b@other.test", "--from", "a@example.com",
                 "--header", "Subject: swaks relayed")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert mp.mailbox.get("latest").summary["Subject"] == "swaks relayed"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--smtp-local-domains", "exa mple..com"], "'mple..com' is not a domain name"),
        (["--smtp-local-domains", "a@b.com"], "'a@b.com' is not a domain name"),
        (
            ["--smtp-local-domains", "example.com", "--smtp-trusted-networks", "lan"],
            "--smtp-trusted-networks: 'lan' is not an IP",
        ),
        (["--smtp-trusted-networks", "10.0.0.0/8"], "add --smtp-local-domains"),
    ],
)
def test_relay_settings_that_cannot_work_are_config_errors(argv: list[str], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        config_from(argv, {})


def test_relay_variables_map_onto_the_config() -> None:
    config = config_from(
        [],
        {"MP_SMTP_LOCAL_DOMAINS": "example.com .corp.test", "MP_SMTP_TRUSTED_NETWORKS": "::1"},
    )
    assert config.smtp_local_domains == "example.com .corp.test"
    assert config.smtp_trusted_networks == "::1"
