"""A mailbox per test (the pytest plugin's --mailpit-mailbox-per-test and `mailpit_mailbox`):
tests on xdist workers share one server and each sees exactly its own mail."""

from __future__ import annotations

import re
import smtplib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import REPO, make_server, stop_process, wait_until
from mailpit_py.client import Client
from mailpit_py.pytest_mailboxes import ROUTING_SETTINGS, SERVER_FLAGS

pytest_plugins = ["pytester"]

# How the tests below send: logged in as the test's SMTP user, or to an address at its domain.
SEND = """
import smtplib


def send(mailpit, subject, login=False, to=None):
    to = to or ("someone@example.com" if login else mailpit.address("ann"))
    raw = f"From: app@example.com\\r\\nTo: {to}\\r\\nSubject: {subject}\\r\\n\\r\\nhi\\r\\n"
    with smtplib.SMTP(mailpit.smtp_host, mailpit.smtp_port) as smtp:
        if login:
            smtp.login(mailpit.smtp_username, mailpit.smtp_password)
        smtp.sendmail("app@example.com", [to], raw)
"""

# Twelve tests, each sending its own number of messages, half by logging in with the test's
# SMTP username, half to addresses at the test's domain (mail of other tests is on the server
# while each asserts: each waits until three tests have sent before it looks).
PARALLEL = """
import os
import threading
import time
from pathlib import Path

import pytest

SHARED = Path(os.environ["MAILBOX_TEST_DIR"])


def others_have_sent(n):
    (SHARED / f"sent-{n}").touch()
    deadline = time.monotonic() + 120  # the other workers may still be starting
    while len(list(SHARED.glob("sent-*"))) < 3:
        assert time.monotonic() < deadline, "the other workers never sent"
        threading.Event().wait(0.02)


@pytest.mark.parametrize("n", range(12))
def test_own_mail(mailpit, n):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    (SHARED / f"test-{n}").write_text(f"{worker} {mailpit.smtp_port} {mailpit.mailbox}")
    assert mailpit.messages() == []
    login = n % 2 == 0
    subjects = [f"test {n} mail {i}" for i in range(n % 3 + 1)]
    for subject in subjects:
        send(mailpit, subject, login)
    others_have_sent(n)
    got = mailpit.assert_sent(subjects=subjects, count=len(subjects))
    assert {m.envelope.username for m in got} == {mailpit.smtp_username if login else ""}
    assert mailpit.client.count() == len(subjects)
    assert [m.subject for m in mailpit.messages()] == subjects
"""


def run_parallel(pytester: pytest.Pytester, shared: Path, *args: str) -> list[list[str]]:
    """Run PARALLEL on three workers; each test's (worker, SMTP port, mailbox)."""
    pytest.importorskip("xdist")
    pytester.makepyfile(SEND + PARALLEL)
    result = pytester.runpytest("-n", "3", "-p", "no:randomly", *args)
    result.assert_outcomes(passed=12)
    return [(shared / f"test-{n}").read_text().split() for n in range(12)]


def test_xdist_workers_share_one_server_and_each_test_sees_only_its_own_mail(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILBOX_TEST_DIR", str(tmp_path))
    seen = run_parallel(pytester, tmp_path, "--mailpit-mailbox-per-test")
    assert len({worker for worker, _, _ in seen}) == 3
    assert len({port for _, port, _ in seen}) == 1  # one server for every worker
    assert len({box for _, _, box in seen}) == 12


def test_the_ini_option_turns_it_on(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmailpit_mailbox_per_test = true\n")
    pytester.makepyfile(
        """
import smtplib

import pytest

NAMES = []


@pytest.mark.parametrize("n", range(2))
def test_own_mailbox(mailpit, n):
    NAMES.append(mailpit.mailbox)
    assert mailpit.client.url.endswith(f"/mailbox/{mailpit.mailbox}/")
    with smtplib.SMTP(mailpit.smtp_host, mailpit.smtp_port) as smtp:
        smtp.sendmail("a@example.com", [mailpit.address()], f"Subject: {n}\\r\\n\\r\\nx\\r\\n")
    mailpit.assert_subjects(str(n))
    mailpit.clear()
    assert mailpit.messages() == []


def test_names_differ():
    assert len(set(NAMES)) == 2 and all(name.startswith("own-mailbox-") for name in NAMES)
"""
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=3)


BANNER = re.compile(r"SMTP on 127\.0\.0\.1:(\d+), web UI and API on (http://127\.0\.0\.1:\d+/)")


@pytest.fixture
def external(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """`python -m mailpit_py` as its own process with the flags the docs give for a mailbox
    per test: its API URL and SMTP port."""
    log = tmp_path / "server.log"
    flags = [f.strip("'") for f in SERVER_FLAGS.split()]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailpit_py", "--smtp", "127.0.0.1:0", "--listen"]
            + ["127.0.0.1:0", *flags],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    try:

        def banner() -> re.Match[str] | None:
            assert proc.poll() is None, log.read_text(errors="replace")
            return BANNER.search(log.read_text(errors="replace"))

        found = wait_until(banner, timeout=60, what="the server's banner")
        yield found.group(2), int(found.group(1))
    finally:
        stop_process(proc)


def test_the_same_against_an_external_server_run_with_mailbox_auto(
    pytester: pytest.Pytester,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    external: tuple[str, int],
) -> None:
    url, smtp_port = external
    monkeypatch.setenv("MAILBOX_TEST_DIR", str(tmp_path))
    args = ("--mailpit-mailbox-per-test", "--mailpit-url", url)
    seen = run_parallel(pytester, tmp_path, *args, "--mailpit-smtp", f"127.0.0.1:{smtp_port}")
    assert {port for _, port, _ in seen} == {str(smtp_port)}
    client = Client(url)
    # Every test passed, so its mailbox is gone; nothing went astray into the default one.
    assert [box.name for box in client.mailboxes()] == ["default"]
    assert client.count() == 0


FAILING = """
def test_logs_in(mailpit_mailbox):
    send(mailpit_mailbox, "lost", login=True)
    mailpit_mailbox.wait_for(timeout=0.5)


def test_sends_to_its_domain(mailpit_mailbox):
    send(mailpit_mailbox, "lost")
    mailpit_mailbox.assert_sent(subjects=["lost"], timeout=0.5)


def test_expects_nothing(mailpit_mailbox):
    send(mailpit_mailbox, "lost", login=True)
    mailpit_mailbox.assert_nothing_sent()
"""


def test_a_server_that_does_not_route_is_named_with_the_flags_it_lacks(
    pytester: pytest.Pytester,
) -> None:
    # AUTH accepted as the docs ask, but no routing: every message lands in default.
    with make_server(smtp_auth_accept_any=True, smtp_auth_allow_insecure=True) as mp:
        host, port = mp.smtp_address
        pytester.makepyfile(SEND + FAILING)
        result = pytester.runpytest(
            "-p", "no:randomly", "--mailpit-url", mp.http_url, "--mailpit-smtp", f"{host}:{port}"
        )
        result.assert_outcomes(failed=3)
        result.stdout.fnmatch_lines(
            [
                "*timed out after 0.5s waiting for 1 message(s); 0 matched. 0 arrived:",
                "*1 message(s) this test sent landed in the server's default mailbox, not in "
                "mailbox 'logs-in-*' ('lost'): the server at * does not route them; start it "
                "with --mailbox-auto (a mailbox per SMTP AUTH username, here 'logs-in-*')*",
                "*subjects differ (- expected, + actual):*",
                "*start it with --mailbox-route '{mailbox}=rcpt:*@{mailbox}.mailbox.test' "
                "(recipients @sends-to-its-domain-*.mailbox.test)*",
                "*expected no messages in this test's mailbox",
                "*landed in the server's default mailbox, not in mailbox 'expects-nothing-*",
            ]
        )
        assert "Traceback" not in result.stdout.str()


KEEP = """
def test_passes(mailpit_mailbox):
    send(mailpit_mailbox, "fine", login=True)
    mailpit_mailbox.assert_subjects("fine")


def test_fails(mailpit_mailbox):
    send(mailpit_mailbox, "unexpected", login=True)
    mailpit_mailbox.assert_subjects("expected")


def test_classic_fixture_still_sees_the_default_mailbox(mailpit):
    assert mailpit.mailbox is None
    with smtplib.SMTP(mailpit.smtp_host, mailpit.smtp_port) as smtp:
        smtp.sendmail("app@example.com", ["x@example.com"], b"Subject: plain\\r\\n\\r\\nhi\\r\\n")
    mailpit.assert_subjects("plain")
"""


def test_a_failed_tests_mailbox_is_kept_and_named_a_passed_ones_is_removed(
    pytester: pytest.Pytester,
) -> None:
    with make_server(**ROUTING_SETTINGS) as mp:
        host, port = mp.smtp_address
        pytester.makepyfile(SEND + KEEP)
        result = pytester.runpytest(
            "-p", "no:randomly", "--mailpit-url", mp.http_url, "--mailpit-smtp", f"{host}:{port}"
        )
        result.assert_outcomes(passed=2, failed=1)
        client = Client(mp.http_url)
        kept = [b for b in client.mailboxes() if b.name != "default"]
        assert [(b.name.startswith("fails-"), b.total) for b in kept] == [(True, 1)]
        result.stdout.fnmatch_lines(
            [f"*this test's mail is kept at {mp.http_url}mailbox/{kept[0].name}/"]
        )
        assert [m.subject for m in client.for_mailbox(kept[0].name).messages()] == ["unexpected"]
        assert [m.subject for m in client.messages()] == ["plain"]


def test_mail_that_missed_the_tests_mailbox_is_answered_with_how_to_reach_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        SEND
        + """
def test_sends_elsewhere(mailpit_mailbox):
    send(mailpit_mailbox, "hello", to="ann@example.com")
    mailpit_mailbox.wait_for(timeout=0.3)
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*0 arrived:",
            "*(nothing)",
            "*nothing reached this test's mailbox 'sends-elsewhere-*': its mail gets there by "
            "logging in to SMTP as mailpit.smtp_username ('sends-elsewhere-*', any password) or "
            "by going to an address at mailpit.domain ('sends-elsewhere-*.mailbox.test')",
        ]
    )


def test_a_server_without_mailboxes_there_fails_each_test_saying_what_to_run(
    pytester: pytest.Pytester,
) -> None:
    # Under its --webroot the server has mailboxes; the URL without it answers 404 as a
    # server without mailboxes would.
    with make_server(webroot="/mail/", **ROUTING_SETTINGS) as mp:
        host, port = mp.smtp_address
        root = mp.http_url.split("/mail/")[0] + "/"
        pytester.makepyfile(SEND + "def test_one(mailpit_mailbox):\n    pass\n")
        result = pytester.runpytest("--mailpit-url", root, "--mailpit-smtp", f"{host}:{port}")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(
            [
                f"*the server at {root} has no mailboxes (GET {root}api/v1/mailboxes answered "
                "404: Mailpit, an older mailpit_py, or a URL without the server's --webroot?): "
                f"a mailbox per test needs mailpit_py started with {SERVER_FLAGS}"
            ]
        )


def test_the_django_example_sends_each_tests_mail_to_its_own_mailbox(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("pytest_django")
    text = (REPO / "docs" / "pytest.md").read_text()
    tail = text.split("\nDjango, with a mailbox per test", 1)[1]
    match = re.search(r"```python\n(.*?)```", tail, re.S)
    assert match, "no python block after the per-test Django text in docs/pytest.md"
    pytester.makepyfile(
        example_settings='SECRET_KEY = "test"\nINSTALLED_APPS = []\nDATABASES = {}\n'
    )
    pytester.makeconftest("import pytest\n\n" + match.group(1))
    pytester.makepyfile(
        test_signup=textwrap.dedent(
            """
            import pytest
            from django.core.mail import send_mail


            @pytest.mark.parametrize("name", ["ann", "bob"])
            def test_welcome(mailpit, name):
                send_mail(f"Welcome {name}", "Hi", "app@example.com", [f"{name}@example.com"])
                [msg] = mailpit.assert_subjects(f"Welcome {name}")
                assert msg.envelope.username == mailpit.smtp_username
            """
        )
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "pytest_django",
        "--ds=example_settings",
        "-p",
        "no:xdist",
        "--mailpit-mailbox-per-test",
    )
    result.assert_outcomes(passed=2)


def test_the_client_bound_to_a_mailbox_sees_only_its_mail() -> None:
    with make_server(**ROUTING_SETTINGS) as mp:
        for user in ("shop", "blog", "shop"):
            with smtplib.SMTP(*mp.smtp_address) as smtp:
                smtp.login(user, "any")
                smtp.sendmail("a@example.com", ["b@example.com"], f"Subject: {user}\r\n\r\nx\r\n")
        shop = Client(mp.http_url, mailbox="shop")
        assert shop.url == f"{mp.http_url}mailbox/shop/"
        wait_until(lambda: shop.count() == 2, what="shop's two messages")
        assert {m.subject for m in shop.messages()} == {"shop"}
        summary = {(b.name, b.total) for b in shop.mailboxes()}
        assert summary == {("default", 0), ("blog", 1), ("shop", 2)}
        shop.create_mailbox("empty")
        shop.rename_mailbox("empty", "spare")
        shop.empty_mailbox("blog")
        shop.delete_mailbox("spare")
        assert {(b.name, b.total) for b in shop.mailboxes()} == summary - {("blog", 1)} | {
            ("blog", 0)
        }
