"""SMTP rules of RFC 5321 and RFC 4954 driven over raw sockets and real clients: the AUTH=
parameter, which AUTH mechanisms are offered, the null and postmaster recipients, relay denial,
HELP, the transcript of oversized data and what a refused connection's 503s count for."""

from __future__ import annotations

import base64
import hmac
import logging
import smtplib
import subprocess
import sys

import bcrypt
import pytest

from front_door import client_tls, lines, message, newest_session, next_error, starttls, swaks
from helpers import REPO, RawClient, make_server, wait_until
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError

TLS = {"smtp_tls_cert": "sans:localhost"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def ehlo_auth_line(c: RawClient) -> list[str]:
    """The mechanisms of the EHLO reply's AUTH line (empty without one)."""
    for line in c.cmd("EHLO me").splitlines():
        if line[4:].startswith("AUTH "):
            return line[9:].split()
    return []


# -- MAIL FROM ... AUTH= (RFC 4954 section 5) -------------------------------------------------


@pytest.mark.parametrize(
    "param", ["AUTH=<>", "auth=<>", "AUTH=app@example.com", "AUTH=us+2Ber+3Dx@example.com"]
)
def test_mail_from_with_an_auth_parameter_is_accepted(server_factory, param: str) -> None:
    mp = server_factory()
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    assert c.cmd(f"MAIL FROM:<a@example.com> {param}") == "250 2.1.0 OK"
    assert c.cmd("RCPT TO:<b@example.com>").startswith("250")
    assert c.cmd("DATA").startswith("354")
    c.send(message("auth param") + b".\r\n")
    assert c.reply().startswith("250 2.0.0 Ok: queued as ")
    c.close()
    assert mp.mailbox.get("latest").detail["Envelope"]["From"] == "a@example.com"


@pytest.mark.parametrize(
    "param",
    [
        "AUTH=",
        "AUTH=a+2bx@example.com",
        "AUTH=a+Zx@example.com",
        "AUTH=a=b@example.com",
        "AUTH=<> AUTH=<>",
    ],
)
def test_a_malformed_auth_parameter_gets_501(server_factory, param: str) -> None:
    mp = server_factory()
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    reply = c.cmd(f"MAIL FROM:<a@example.com> {param}")
    assert reply.startswith("501 5.5.4 "), reply
    assert c.cmd("MAIL FROM:<a@example.com> AUTH=<> SIZE=100") == "250 2.1.0 OK"
    c.close()


# -- DSN parameters (RFC 3461) ---------------------------------------------------------------


def test_dsn_parameters_are_checked_and_ignored_and_unknown_ones_get_555(server_factory) -> None:
    # PHPMailer sends NOTIFY= whether or not the server offers DSN, and Mailpit takes any
    # parameter: a 555 failed the message. A catcher sends no notifications, so DSN is not
    # advertised; a malformed value is still a 501, and an unknown parameter a 555.
    mp = server_factory()
    c = RawClient(mp.smtp_address)
    assert "DSN" not in c.cmd("EHLO me").split()
    assert c.cmd("MAIL FROM:<a@example.com> RET=HDRS ENVID=QQ314159 SIZE=100") == "250 2.1.0 OK"
    assert c.cmd("RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.com") == (
        "250 2.1.5 OK"
    )
    assert c.cmd("RCPT TO:<c@example.com> notify=never orcpt=utf-8;c@example.com").startswith("250")
    for bad in ("NOTIFY=NEVER,SUCCESS", "NOTIFY=", "NOTIFY=SOMETIMES", "ORCPT=b@example.com"):
        assert c.cmd(f"RCPT TO:<d@example.com> {bad}").startswith("501 5.5.4"), bad
    assert c.cmd("RCPT TO:<d@example.com> NOTIFY=DELAY NOTIFY=DELAY").startswith("501 5.5.4")
    assert c.cmd("RCPT TO:<d@example.com> XFORWARD=1").startswith("555 5.5.4")
    assert c.cmd("DATA").startswith("354")
    c.send(message("dsn params") + b".\r\n")
    assert c.reply().startswith("250 2.0.0 Ok: queued as ")
    for bad in ("RET=ALL", "RET=FULL RET=FULL", "ENVID=" + "x" * 101, "ENVID=a=b"):
        assert c.cmd(f"MAIL FROM:<a@example.com> {bad}").startswith("501 5.5.4"), bad
    assert c.cmd("MAIL FROM:<a@example.com> FOO=bar").startswith("555 5.5.4")
    c.close()
    detail = mp.mailbox.get("latest").detail
    assert detail["Envelope"]["To"] == ["b@example.com", "c@example.com"]
    helo = RawClient(mp.smtp_address)
    helo.cmd("HELO me")  # no parameters without EHLO (RFC 5321 section 4.1.1.2)
    assert helo.cmd("MAIL FROM:<a@example.com> RET=HDRS").startswith("501 5.5.4")
    helo.close()


def test_mail_and_rcpt_lines_may_grow_by_what_their_parameters_add(server_factory) -> None:
    # RFC 5321 section 4.5.3.1.4's 512 octets grow with each extension's parameters (RFC 1870
    # SIZE 26, RFC 4954 AUTH 500, RFC 3461 RET and ENVID 109, ORCPT and NOTIFY ~530): a long
    # submitter or original recipient was refused as a command line too long.
    mp = server_factory()
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    sender = "s" * 60 + "@" + "d" * 180 + ".example"
    mail = f"MAIL FROM:<{sender}> SIZE=1000 BODY=8BITMIME AUTH={sender} RET=HDRS ENVID={'e' * 100}"
    assert 600 < len(mail) < 1000
    assert c.cmd(mail) == "250 2.1.0 OK"
    rcpt = f"RCPT TO:<{sender}> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;{sender}"
    assert 512 < len(rcpt) < 1000
    assert c.cmd(rcpt) == "250 2.1.5 OK"
    assert c.cmd("NOOP " + "x" * 600).startswith("500 5.5.2")  # other commands keep 512
    assert c.cmd(f"RCPT TO:<{sender}> ORCPT=rfc822;{'x' * 1200}").startswith("500 5.5.2")
    assert c.cmd("RCPT TO:<b@example.com>") == "250 2.1.5 OK"
    c.close()


# -- which mechanisms are offered ----------------------------------------------------------


def test_cram_md5_is_not_offered_when_every_password_is_a_hash(server_factory) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    mp = server_factory(smtp_auth=f"dave:{hashed}", **TLS)
    c = RawClient(mp.smtp_address)
    assert "CRAM-MD5" not in ehlo_auth_line(c)
    starttls(c, ehlo=False)
    assert ehlo_auth_line(c) == ["LOGIN", "PLAIN"]
    assert c.cmd("AUTH CRAM-MD5") == "504 5.5.4 Unrecognized authentication type"
    # Not a failed login: the right password still works after any number of such tries.
    for _ in range(3):
        assert c.cmd("AUTH CRAM-MD5").startswith("504 ")
    assert c.cmd(f"AUTH PLAIN {b64(chr(0) + 'dave' + chr(0) + 'pw')}").startswith("235 ")
    c.close()


def test_a_hashed_user_asking_for_cram_md5_gets_534_that_burns_no_attempt(server_factory) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    mp = server_factory(smtp_auth=f"dave:{hashed}\nerin:clear", **TLS)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    starttls(c)
    with mp.bus.subscribe() as sub:
        for _ in range(3):
            challenge = base64.b64decode(c.cmd("AUTH CRAM-MD5")[4:])
            digest = hmac.new(b"pw", challenge, "md5").hexdigest()
            reply = c.cmd(b64(f"dave {digest}"))
            assert reply.startswith("534 5.7.9 "), reply
        event = next_error(sub)
    assert event["Rule"] == "auth-mechanism"
    # Three tries and the session is still open: a 534 is not a wrong password.
    assert c.cmd(f"AUTH PLAIN {b64(chr(0) + 'dave' + chr(0) + 'pw')}").startswith("235 ")
    c.close()


def test_smtplib_falls_back_from_cram_md5_for_a_hashed_user(server_factory) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    mp = server_factory(smtp_auth=f"dave:{hashed}\nerin:clear", **TLS)
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.starttls(context=client_tls())
        assert client.login("dave", "pw")[0] == 235  # smtplib tries CRAM-MD5 first
        client.sendmail("a@example.com", ["b@example.com"], message("fallback"))
    assert mp.mailbox.get("latest").summary["Username"] == "dave"


@pytest.mark.parametrize("value", ["PLAIN LOGIN", "plain,login", " PLAIN , LOGIN "])
def test_smtp_auth_mechanisms_limits_what_is_offered_and_accepted(server_factory, value) -> None:
    mp = server_factory(smtp_auth="alice:s3cret", smtp_auth_mechanisms=value, **TLS)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    starttls(c)
    assert ehlo_auth_line(c) == ["LOGIN", "PLAIN"]
    assert c.cmd("AUTH CRAM-MD5") == "504 5.5.4 Unrecognized authentication type"
    assert c.cmd(f"AUTH PLAIN {b64(chr(0) + 'alice' + chr(0) + 's3cret')}").startswith("235 ")
    c.close()


def test_swaks_logs_in_with_the_one_mechanism_offered(server_factory) -> None:
    mp = server_factory(
        smtp_auth="alice:s3cret", smtp_auth_mechanisms="CRAM-MD5", smtp_auth_allow_insecure=True
    )
    host, port = mp.smtp_address
    done = swaks(
        "--server", f"{host}:{port}", "--to", "b@example.com", "--from", "a@example.com",
        "--auth", "--auth-user", "alice", "--auth-password", "s3cret",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "AUTH CRAM-MD5" in done.stdout
    assert mp.mailbox.get("latest").summary["Username"] == "alice"
    mp2 = server_factory(
        smtp_auth="alice:s3cret", smtp_auth_mechanisms="CRAM-MD5", smtp_auth_allow_insecure=True
    )
    c = RawClient(mp2.smtp_address)
    assert ehlo_auth_line(c) == ["CRAM-MD5"]
    assert c.cmd("AUTH PLAIN") == "504 5.5.4 Unrecognized authentication type"
    c.close()


def test_unknown_mechanism_names_are_a_start_up_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        config_from(["--smtp-auth-mechanisms", "PLAIN XOAUTH2"], {})
    assert "XOAUTH2" in str(err.value) and "CRAM-MD5, LOGIN, PLAIN" in str(err.value)
    config = config_from([], {"MP_SMTP_AUTH_MECHANISMS": "plain,Login"})
    assert config.smtp_auth_mechanisms == "LOGIN PLAIN"
    done = subprocess.run(
        [sys.executable, "-m", "mailpit_py", "--smtp-auth-mechanisms", "GSSAPI"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode != 0
    assert "--smtp-auth-mechanisms" in done.stderr and "GSSAPI" in done.stderr
    assert "Traceback" not in done.stderr


def test_cram_md5_asked_for_with_only_hashed_passwords_is_a_start_up_error() -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    with pytest.raises(ConfigError, match="CRAM-MD5.*clear-text"):
        make_server(smtp_auth=f"dave:{hashed}", smtp_auth_mechanisms="CRAM-MD5", **TLS).start()


# -- recipients (RFC 5321 sections 3.3, 4.1.1.3, 4.5.1) ---------------------------------------


def test_the_null_recipient_is_refused_with_501_5_1_3(server_factory) -> None:
    mp = server_factory()
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    assert c.cmd("MAIL FROM:<>") == "250 2.1.0 OK"  # the null path is a sender's only
    assert (
        c.cmd("RCPT TO:<>")
        == "501 5.1.3 Error: bad recipient address syntax: <> is not a recipient"
    )
    assert c.cmd("DATA").startswith("503 ")  # no recipient was taken
    c.close()


@pytest.mark.parametrize(
    "rcpt", ["postmaster", "POSTMASTER", "PostMaster@test.local", "postmaster@TEST.LOCAL"]
)
def test_postmaster_is_accepted_even_under_an_allow_list(server_factory, rcpt: str) -> None:
    mp = server_factory(smtp_allowed_recipients=r"@example\.com$")
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.org>")
    assert c.cmd(f"RCPT TO:<{rcpt}>") == "250 2.1.5 OK"
    assert c.cmd("DATA").startswith("354")
    c.send(message("to postmaster") + b".\r\n")
    assert c.reply().startswith("250 2.0.0")
    c.close()
    assert mp.mailbox.get("latest").detail["Envelope"]["To"] == [rcpt]


def test_postmaster_of_another_domain_is_still_subject_to_the_allow_list(server_factory) -> None:
    mp = server_factory(smtp_allowed_recipients=r"@example\.com$")
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.org>")
    assert c.cmd("RCPT TO:<postmaster@elsewhere.org>").startswith("550 5.7.1 ")
    c.close()


def test_a_recipient_outside_the_allow_list_is_a_relay_denial_550_5_7_1(server_factory) -> None:
    mp = server_factory(smtp_allowed_recipients=r"@example\.com$")
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    assert c.cmd("RCPT TO:<x@elsewhere.org>") == (
        "550 5.7.1 Error: recipient <x@elsewhere.org> is not allowed: relay access denied"
    )
    c.close()


def test_help_lists_every_command_the_server_answers(server_factory) -> None:
    mp = server_factory(smtp_auth_accept_any=True, **TLS)
    c = RawClient(mp.smtp_address)
    reply = c.cmd("HELP")
    assert reply.startswith("214 2.0.0 Supported commands: "), reply
    listed = set(reply.split(":", 1)[1].split())
    expected = {"AUTH", "DATA", "EHLO", "HELO", "HELP", "MAIL", "NOOP", "QUIT", "RCPT", "RSET"}
    assert expected | {"STARTTLS", "VRFY"} == listed
    assert c.cmd("HELP data") == "214 2.0.0 Syntax: DATA"
    assert c.cmd("HELP EHLO") == "214 2.0.0 Syntax: EHLO hostname"
    assert c.cmd("HELP BOGUS").startswith("501 5.5.4 Supported commands: ")
    c.close()


# -- transcript and counts ------------------------------------------------------------------


def test_oversized_data_records_the_octets_received(server_factory) -> None:
    mp = server_factory(max_message_size=1000)
    c = RawClient(mp.smtp_address)
    c.cmd("EHLO me")
    c.cmd("MAIL FROM:<a@example.com>")
    c.cmd("RCPT TO:<b@example.com>")
    assert c.cmd("DATA").startswith("354")
    body = b"".join(b"line %05d of a message that is too big\r\n" % i for i in range(3000))
    c.send(body + b".\r\n")
    assert c.reply().startswith("552 5.3.4")
    c.cmd("QUIT")
    c.close()
    log = lines(newest_session(mp))
    assert f"[message data: {len(body)} octets, 3000 lines, over the size limit]" in log


def test_503s_after_a_refused_greeting_are_not_counted_as_refusals(server_factory) -> None:
    mp = server_factory(smtp_deny_ips="127.0.0.0/8")
    with mp.bus.subscribe() as sub:
        c = RawClient(mp.smtp_address)
        assert c.greeting.startswith("554 5.7.1 ")
        for command in ("EHLO me", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>"):
            assert c.cmd(command) == "503 5.5.1 Error: this connection was refused, send QUIT"
        assert c.cmd("QUIT").startswith("221")
        c.close()
        assert next_error(sub)["Message"].startswith("554 5.7.1")
    session = newest_session(mp)
    replies = mp.mailbox.telemetry.counter("smtp_replies")
    assert replies[("5xx", "deny-ips")] == 1  # the 554, not the three 503s
    assert mp.smtp.rejected == 1
    log = lines(session)
    assert sum(line.startswith("rule deny-ips") for line in log) == 1
    assert session["Outcome"] == "refused"


def test_the_session_log_names_the_554_as_the_last_refusal(server_factory, caplog) -> None:
    mp = server_factory(smtp_deny_ips="127.0.0.0/8")
    with caplog.at_level("INFO", logger="mailpit_py.session"):
        c = RawClient(mp.smtp_address)
        c.cmd("NOOP")
        c.cmd("QUIT")
        c.close()

        def logged() -> list[logging.LogRecord]:
            return [r for r in caplog.records if getattr(r, "event", "") == "session"]

        [record] = wait_until(logged, what="the session's log line")
    assert "last refusal: 554 5.7.1" in record.getMessage()
    assert [line[:3] for line in record.refusals] == ["554"]


@pytest.mark.parametrize("args", [["config"], ["config", "--json"]])
def test_a_command_whose_reader_went_away_exits_quietly(args: list[str]) -> None:
    # As `mailpit-py config | head -1` once head has its line: the pipe is closed before the
    # command writes, so every write fails with EPIPE.
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailpit_py", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141  # 128 + SIGPIPE, as `yes | head` reports it
    assert err == ""
