"""The pytest plugin (pytest11 entry point), exercised with pytester on small test files."""

from __future__ import annotations

from pathlib import Path

import pytest
from upstream import free_port

from helpers import make_server

pytest_plugins = ["pytester"]

SEND = """
import smtplib

import pytest


def send(mailpit, subject, to=("b@example.com",), body="hello"):
    head = f"From: a@example.com\\r\\nTo: {', '.join(to)}\\r\\nSubject: {subject}\\r\\n"
    raw = f"{head}\\r\\n{body}\\r\\n"
    with smtplib.SMTP(mailpit.smtp_host, mailpit.smtp_port) as smtp:
        return smtp.sendmail("a@example.com", list(to), raw)
"""


def test_each_test_gets_an_empty_mailbox_and_typed_messages(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
PORTS = set()


@pytest.mark.parametrize("n", range(3))
def test_own_mail_only(mailpit, n):
    PORTS.add(mailpit.smtp_port)
    assert mailpit.messages() == []
    send(mailpit, f"mail {n}", to=("x@example.com", "y@example.com"), body=f"body {n}")
    [msg] = mailpit.wait_for(subject=f"mail {n}")
    assert msg.text.strip() == f"body {n}"
    assert [a.address for a in msg.to] == ["x@example.com", "y@example.com"]
    assert msg.envelope.mail_from == "a@example.com"
    assert msg.transcript[-1].line.startswith("250 ")
    assert [m.subject for m in mailpit.messages()] == [f"mail {n}"]
    assert mailpit.client.get(msg.id).subject == f"mail {n}"


def test_one_server_per_session(mailpit):
    assert PORTS == {mailpit.smtp_port}
"""
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=4)


def test_wait_for_filters_and_counts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
def test_filters(mailpit):
    send(mailpit, "Welcome Ann", to=("ann@example.com",))
    send(mailpit, "Reset password", to=("bob@example.com",))
    send(mailpit, "Welcome Bob", to=("bob@example.com",))
    both = mailpit.wait_for(count=2, subject="welcome")
    assert [m.subject for m in both] == ["Welcome Ann", "Welcome Bob"]
    assert [m.subject for m in mailpit.wait_for(to="bob@", subject="reset")] == ["Reset password"]
    assert len(mailpit.wait_for(count=3)) == 3
    assert [m.subject for m in mailpit.wait_for(query="subject:password")] == ["Reset password"]
    mailpit.assert_sent(subjects=["Welcome Ann", "Reset password", "Welcome Bob"],
                        recipients=["ann@example.com", "bob@example.com", "bob@example.com"])
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_failures_list_what_arrived_with_a_readable_diff(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
def test_wait_times_out(mailpit):
    send(mailpit, "Hello there", to=("ann@example.com",))
    mailpit.wait_for(subject="Invoice", timeout=0.3)


def test_subjects_differ(mailpit):
    send(mailpit, "First")
    send(mailpit, "Third")
    mailpit.assert_sent(subjects=["First", "Second"])


def test_nothing_expected(mailpit):
    send(mailpit, "Oops")
    mailpit.wait_for()
    mailpit.assert_nothing_sent()
"""
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*timed out after 0.3s waiting for 1 message(s) matching subject='Invoice';"
            " 0 matched. 1 arrived:",
            "*'Hello there' from a@example.com to ann@example.com",
            "*subjects differ (- expected, + actual):*",
            "*-'Second'",
            "*+'Third'",
            "*expected no messages, got 1:*",
            "*'Oops' from a@example.com to b@example.com",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_marker_gives_a_test_its_own_server_with_those_settings(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        SEND
        + """
SESSION = []


def test_session_server(mailpit):
    SESSION.append(mailpit.smtp_port)


@pytest.mark.mailpit(smtp_max_recipients=2, max_message_size=2000)
def test_limits(mailpit):
    assert mailpit.smtp_port not in SESSION
    refused = send(mailpit, "three", to=("a@x.org", "b@x.org", "c@x.org"))
    assert list(refused) == ["c@x.org"]
    with pytest.raises(smtplib.SMTPException) as err:
        send(mailpit, "big", body="x" * 5000)
    assert "552" in str(err.value)
    assert mailpit.wait_for(count=1)[0].recipients == ("a@x.org", "b@x.org")
"""
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_marker_shorthands_give_a_server_that_demands_tls_auth_or_fails_on_purpose(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
import base64
import smtplib
import ssl

import pytest

MSG = b"Subject: secure\\r\\n\\r\\nbody\\r\\n"


def insecure():
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


@pytest.mark.mailpit(starttls=True, auth="app:s3cret")
def test_starttls_and_auth_required(mailpit):
    with smtplib.SMTP(mailpit.smtp_host, mailpit.smtp_port) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail("a@x.org", ["b@x.org"], MSG)
        assert refused.value.smtp_code == 530
    with smtplib.SMTP(mailpit.smtp_host, mailpit.smtp_port) as smtp:
        smtp.starttls(context=insecure())
        smtp.ehlo()
        smtp.user, smtp.password = "app", "wrong"
        code, _ = smtp.docmd("AUTH", "PLAIN " + base64.b64encode(b"\\0app\\0wrong").decode())
        assert code == 535
        smtp.login("app", "s3cret")
        smtp.sendmail("a@x.org", ["b@x.org"], MSG)
    [msg] = mailpit.wait_for(subject="secure")
    assert msg.envelope.username == "app" and msg.envelope.tls


@pytest.mark.mailpit(tls=True)
def test_implicit_tls(mailpit):
    verified = ssl.create_default_context(cafile=mailpit.tls_cert)  # it names its certificate
    with smtplib.SMTP_SSL(mailpit.smtp_host, mailpit.smtp_port, context=verified) as smtp:
        smtp.sendmail("a@x.org", ["b@x.org"], MSG)
    assert mailpit.wait_for(subject="secure")


@pytest.mark.mailpit(auth="app:pw")
def test_auth_over_plain_smtp(mailpit):
    with smtplib.SMTP(mailpit.smtp_host, mailpit.smtp_port) as smtp:
        smtp.login("app", "pw")
        smtp.sendmail("a@x.org", ["b@x.org"], MSG)
    assert mailpit.wait_for(subject="secure")


@pytest.mark.mailpit(chaos="Recipient:451:100", max_size=100)
def test_chaos_and_size(mailpit):
    with smtplib.SMTP(mailpit.smtp_host, mailpit.smtp_port) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.sendmail("a@x.org", ["b@x.org"], MSG)
    assert refused.value.recipients["b@x.org"][0] == 451
    mailpit.assert_nothing_sent()
"""
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=4)


def test_mailpit_url_attaches_to_a_running_instance(pytester: pytest.Pytester) -> None:
    with make_server(max_messages=0) as mp:
        host, port = mp.smtp_address
        pytester.makepyfile(
            SEND
            + """
def test_first(mailpit):
    assert mailpit.server is None
    assert mailpit.messages() == []
    send(mailpit, "remote one")
    assert [m.subject for m in mailpit.wait_for()] == ["remote one"]


def test_second_starts_empty(mailpit):
    assert mailpit.messages() == []
    send(mailpit, "remote two")
    mailpit.assert_subjects("remote two")


@pytest.mark.mailpit(max_message_size=10)
def test_marker_is_skipped(mailpit):
    pass
"""
        )
        import smtplib

        with smtplib.SMTP(host, port) as smtp:  # left over before the run: cleared
            smtp.sendmail("a@example.com", ["b@example.com"], b"Subject: old\r\n\r\nx\r\n")
        result = pytester.runpytest(
            "-p", "no:randomly", "--mailpit-url", mp.http_url, "--mailpit-smtp", f"{host}:{port}"
        )
        result.assert_outcomes(passed=2, skipped=1)
        assert [m["Subject"] for m in mp.mailbox.list_messages()] == ["remote two"]


def test_bad_external_server_options_say_what_is_wrong(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses_it(mailpit):\n    pass\n")
    result = pytester.runpytest("--mailpit-url", "http://127.0.0.1:8025/", "--mailpit-smtp", "x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mailpit-smtp wants HOST:PORT, e.g. 127.0.0.1:1025: 'x'"])
    result = pytester.runpytest("--mailpit-smtp", "127.0.0.1:1025")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mailpit-smtp names the SMTP address of *--mailpit-url*"])
    down = f"http://127.0.0.1:{free_port()}/"
    result = pytester.runpytest("--mailpit-url", down)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*--mailpit-url: cannot reach {down}: *refused*"])
    assert "Traceback" not in result.stdout.str()


def test_marked_servers_leave_no_files_and_a_misspelt_setting_is_named(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Run as a user runs it, in a process of its own, with its own temporary folder to check.
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    pytester.makepyfile(
        """
import smtplib
import ssl

import pytest


def send_welcome(to, host, port):  # the app: STARTTLS when offered, verified; then AUTH
    with smtplib.SMTP(host, port) as smtp:
        smtp.starttls(context=ssl.create_default_context())
        smtp.login("app", "s3cret")
        raw = f"To: {to}\\r\\nSubject: Welcome\\r\\n\\r\\nactivate\\r\\n"
        smtp.sendmail("app@example.com", [to], raw)


@pytest.mark.mailpit(starttls=True, auth="app:s3cret")
def test_mailer_uses_starttls_and_logs_in(mailpit, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", mailpit.tls_cert)  # trust the test certificate
    send_welcome("ann@example.com", host=mailpit.smtp_host, port=mailpit.smtp_port)
    [msg] = mailpit.wait_for(to="ann@example.com")
    assert msg.envelope.username == "app" and msg.envelope.tls


@pytest.mark.mailpit(tls=True)
def test_failing_keeps_nothing_either(mailpit):
    assert mailpit.tls_cert.endswith("cert.pem")
    assert False, "on purpose"


@pytest.mark.mailpit(max_sise=1000)
def test_misspelt(mailpit):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.mailpit: unknown setting 'max_sise' (did you mean max_size*"]
    )
    assert "Traceback" not in result.stdout.str()
    assert sorted(p.name for p in temp.glob("mailpit-py-*")) == []


def test_each_xdist_worker_has_its_own_server(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        SEND
        + """
import os


@pytest.mark.parametrize("n", range(8))
def test_isolated(mailpit, n, tmp_path_factory):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    out = tmp_path_factory.getbasetemp().parent.parent / f"port-{worker}"
    out.write_text(str(mailpit.smtp_port))
    send(mailpit, f"mail {n}")
    assert [m.subject for m in mailpit.wait_for()] == [f"mail {n}"]
    assert [m.subject for m in mailpit.messages()] == [f"mail {n}"]
"""
    )
    result = pytester.runpytest("-n", "2", "--basetemp", str(pytester.path / "bt"))
    result.assert_outcomes(passed=8)
    ports = {p.read_text() for p in pytester.path.glob("port-gw*")}
    assert len(ports) == 2, ports


def test_clear_on_a_stopped_server_says_so() -> None:
    from mailpit_py.client import Client
    from mailpit_py.pytest_plugin import Mailpit

    server = make_server().start()
    mailpit = Mailpit(Client(server.http_url), server.smtp_address, server)
    mailpit.clear()  # while it runs: no error
    server.stop()
    with pytest.raises(RuntimeError, match="server has stopped"):
        mailpit.clear()
