"""SMTP AUTH (RFC 4954): PLAIN, LOGIN and CRAM-MD5 from real clients, refusals and their codes."""

from __future__ import annotations

import base64
import json
import smtplib

import bcrypt
import pytest

from front_door import (
    client_tls,
    lines,
    message,
    newest_session,
    next_error,
    starttls,
    swaks,
)
from helpers import RawClient, wait_until
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError

TLS = {"smtp_tls_cert": "sans:localhost"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_smtplib_logs_in_with_each_mechanism_and_the_user_is_the_username(
    server_factory, mechanism: str
) -> None:
    mp = server_factory(smtp_auth="alice:s3cret bob:hunter2", **TLS)
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.starttls(context=client_tls())
        client.ehlo()
        assert set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN", "CRAM-MD5"}
        client.user, client.password = "bob", "hunter2"
        method = getattr(client, "auth_" + mechanism.lower().replace("-", "_"))
        code, reply = client.auth(mechanism, method, initial_response_ok=False)
        assert (code, reply) == (235, b"2.7.0 Authentication successful")
        client.sendmail("a@example.com", ["b@example.com"], message(f"auth {mechanism}"))
    stored = mp.mailbox.get("latest")
    assert stored.summary["Username"] == "bob"
    assert stored.detail["Envelope"]["Username"] == "bob"
    transcript = [line for _, _, line in stored.transcript]
    assert f"authenticated as 'bob' with {mechanism}" in transcript
    assert not any("hunter2" in line or b64("hunter2") in line for line in transcript)
    assert newest_session(mp)["Username"] == "bob"


def test_plain_with_an_initial_response_and_a_bcrypt_entry(server_factory, tmp_path) -> None:
    hashed = bcrypt.hashpw(b"letmein", bcrypt.gensalt(rounds=4)).decode()
    auth_file = tmp_path / "smtp-users"
    auth_file.write_text(f"# users\ncarol:{hashed}\n")
    mp = server_factory(smtp_auth_file=str(auth_file), **TLS)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    starttls(c)
    assert c.cmd(f"AUTH plain {b64(chr(0) + 'carol' + chr(0) + 'letmein')}") == (
        "235 2.7.0 Authentication successful"
    )
    assert c.cmd("AUTH PLAIN").startswith("503")  # already authenticated
    c.close()


def test_wrong_password_gets_535_and_three_failures_end_the_session_with_421(
    server_factory,
) -> None:
    mp = server_factory(smtp_auth="alice:s3cret", **TLS)
    with mp.bus.subscribe() as sub:
        c = RawClient(mp.smtp_address)
        c.cmd("EHLO me")
        starttls(c)
        for _ in range(2):
            assert c.cmd("AUTH LOGIN") == f"334 {b64('Username:')}"
            assert c.cmd(b64("alice")) == f"334 {b64('Password:')}"
            assert c.cmd(b64("wrong")) == "535 5.7.8 Authentication credentials invalid"
        event = next_error(sub)
        assert c.cmd(f"AUTH PLAIN {b64(chr(0) + 'nobody' + chr(0) + 'x')}") == (
            "535 5.7.8 Authentication credentials invalid"
        )
        assert c.reply() == "421 4.7.0 Error: too many failed authentication attempts, closing"
        assert c.file.readline() == b""  # closed
        c.close()
    assert event["Rule"] == "auth-failed"
    assert event["Message"] == "535 5.7.8 Authentication credentials invalid"
    session = newest_session(mp)
    log = lines(session)
    assert "rule auth-failed: LOGIN credentials for 'alice' rejected" in log
    assert "rule auth-failures: 3 failed AUTH attempts in this session" in log
    assert not any("wrong" in line or b64("wrong") in line for line in log)
    assert session["Username"] == ""
    assert mp.mailbox.telemetry.counter("smtp_replies")[("5xx", "auth-failed")] == 3


def test_mail_before_auth_gets_530_when_a_user_list_is_set(server_factory) -> None:
    mp = server_factory(smtp_auth="alice:s3cret", **TLS)
    with mp.bus.subscribe() as sub:
        c = RawClient(mp.smtp_address)
        c.cmd("EHLO me")
        starttls(c)
        assert c.cmd("MAIL FROM:<a@example.com>") == "530 5.7.0 Authentication required"
        event = next_error(sub)
        c.cmd("QUIT")
        c.close()
    assert event["Rule"] == "auth-required"
    assert "rule auth-required: MAIL before AUTH" in lines(newest_session(mp))


def test_plain_text_mechanisms_before_tls_get_538_and_are_not_offered(server_factory) -> None:
    mp = server_factory(smtp_auth="alice:s3cret", **TLS)
    with mp.bus.subscribe() as sub:
        c = RawClient(mp.smtp_address)
        ehlo = c.cmd("EHLO me")
        assert "250-AUTH CRAM-MD5" in ehlo.splitlines()  # no password crosses in clear
        assert c.cmd("AUTH LOGIN") == (
            "538 5.7.11 Encryption required for requested authentication mechanism"
        )
        event = next_error(sub)
        c.close()
    assert event["Rule"] == "auth-encryption"
    log = lines(newest_session(mp))
    refused = log.index("538 5.7.11 Encryption required for requested authentication mechanism")
    assert log[refused + 1] == (
        "rule auth-encryption: LOGIN over a plain connection: STARTTLS first "
        "(or start with --smtp-auth-allow-insecure)"
    )


def test_cram_md5_works_before_tls(server_factory) -> None:
    mp = server_factory(smtp_auth="alice:s3cret", **TLS)
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.login("alice", "s3cret")  # smtplib picks CRAM-MD5, the only one offered
        client.sendmail("a@example.com", ["b@example.com"], message("cram in clear"))
    assert mp.mailbox.get("latest").summary["Username"] == "alice"


def test_accept_any_takes_any_credentials_and_keeps_the_username(server_factory) -> None:
    mp = server_factory(smtp_auth_accept_any=True, smtp_auth_allow_insecure=True)
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.ehlo()
        assert "PLAIN" in client.esmtp_features["auth"]
        client.user, client.password = "whoever", "anything"
        client.auth("PLAIN", client.auth_plain)
        client.sendmail("a@example.com", ["b@example.com"], message("any"))
    assert mp.mailbox.get("latest").summary["Username"] == "whoever"
    with smtplib.SMTP(*mp.smtp_address) as client:  # AUTH stays optional
        client.sendmail("a@example.com", ["b@example.com"], message("anonymous"))
    assert mp.mailbox.get("latest").summary["Username"] == ""


def test_auth_when_not_configured_gets_502(raw_client) -> None:
    c = raw_client()
    ehlo = c.cmd("EHLO me")
    assert "AUTH" not in ehlo
    assert c.cmd("AUTH PLAIN").startswith("502 5.5.1")


def test_aborted_auth_and_bad_base64_get_501(server_factory) -> None:
    mp = server_factory(smtp_auth="alice:s3cret", smtp_auth_allow_insecure=True)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    assert c.cmd("AUTH LOGIN").startswith("334")
    assert c.cmd("*").startswith("501")
    assert c.cmd("AUTH PLAIN not-base64!").startswith("501 5.5.2")
    assert c.cmd("AUTH XOAUTH9").startswith("504 5.5.4")
    c.close()


def test_an_over_long_auth_response_gets_500_and_an_empty_initial_response_is_empty(
    server_factory,
) -> None:
    # A response line past the reader's limit raised out of the exchange: logged as a
    # server error and answered 451 (RFC 4954 section 4: 500 5.5.6). "=" is an initial
    # response of zero length (RFC 4954 section 4), not bad base64.
    mp = server_factory(smtp_auth="alice:s3cret", smtp_auth_allow_insecure=True)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    for mechanism in ("LOGIN", "PLAIN", "CRAM-MD5"):
        assert c.cmd(f"AUTH {mechanism}").startswith("334")
        assert c.cmd("A" * 5000).startswith("500 5.5.6"), mechanism
    assert c.cmd("NOOP").startswith("250")
    assert c.cmd("AUTH PLAIN =") == "501 5.5.2 Error: cannot split the PLAIN credentials"
    assert c.cmd("AUTH LOGIN =").startswith("334 UGFzc3dvcmQ6")  # the user is ""; the password
    assert c.cmd(b64("s3cret")).startswith("535 5.7.8")
    assert c.cmd(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + 's3cret')}").startswith("235")
    c.close()
    sessions = wait_until(mp.mailbox.sessions, what="the session record")
    assert "internal error" not in json.dumps(sessions)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_authenticates_with_each_mechanism(server_factory, mechanism: str) -> None:
    mp = server_factory(smtp_auth="alice:s3cret", **TLS)
    host, port = mp.smtp_address
    done = swaks("--server", f"{host}:{port}", "--tls", "-a", mechanism, "-au", "alice",
                 "-ap", "s3cret", "--to", "b@example.com", "--from", "a@example.com",
                 "--header", f"Subject: swaks {mechanism}")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "235 2.7.0 Authentication successful" in done.stdout
    stored = mp.mailbox.get("latest")
    assert stored.summary["Subject"] == f"swaks {mechanism}"
    assert stored.summary["Username"] == "alice"


def test_swaks_with_a_wrong_password_is_refused(server_factory) -> None:
    mp = server_factory(smtp_auth="alice:s3cret", **TLS)
    host, port = mp.smtp_address
    done = swaks("--server", f"{host}:{port}", "--tls", "-a", "PLAIN", "-au", "alice",
                 "-ap", "nope", "--to", "b@example.com")  # fmt: skip
    assert done.returncode != 0
    assert "535 5.7.8 Authentication credentials invalid" in done.stdout
    assert mp.mailbox.counts() == (0, 0)


def test_mp_smtp_auth_variable_sets_the_users() -> None:
    config = config_from([], {"MP_SMTP_AUTH": "u1:p1 u2:p2", "MP_SMTP_TLS_CERT": "sans:x"})
    assert config.smtp_auth == "u1:p1 u2:p2"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--smtp-auth-accept-any"], "needs TLS: add --smtp-tls-cert"),
        (["--smtp-auth", "a:b"], "or allow logins over plain connections"),
        (
            ["--smtp-auth-accept-any", "--smtp-auth", "a:b", "--smtp-auth-allow-insecure"],
            "accepts everyone",
        ),
    ],
)
def test_auth_settings_that_cannot_work_are_config_errors(argv: list[str], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        config_from(argv, {})


def test_an_unreadable_auth_file_stops_the_start(tmp_path) -> None:
    from helpers import make_server

    mp = make_server(smtp_auth_file=str(tmp_path / "missing"), smtp_auth_allow_insecure=True)
    with pytest.raises(ConfigError, match="--smtp-auth-file: cannot read"):
        mp.start()
