"""Helpers for the SMTP front-door tests (TLS, AUTH, policy, chaos): clients, swaks, events."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from typing import Any

import pytest

from helpers import RawClient, wait_until
from mailpit_py import events
from mailpit_py.server import Server

SWAKS = "/usr/bin/swaks"


def client_tls() -> ssl.SSLContext:
    """A client context for the self-signed certificates the tests use."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed; test_tls_credentials checks the names
    return context


def starttls(c: RawClient, ehlo: bool = True) -> None:
    """Upgrade a raw client to TLS with STARTTLS, then (by default) say EHLO again."""
    assert c.cmd("STARTTLS").startswith("220 2.0.0")
    c.sock = client_tls().wrap_socket(c.sock)
    c.file = c.sock.makefile("rb")
    if ehlo:
        assert c.cmd("EHLO me").startswith("250")


def swaks(*args: str) -> subprocess.CompletedProcess[str]:
    """Run swaks; absent, the test skips, except in CI where it must run (Makefile installs it)."""
    path = shutil.which("swaks") or (SWAKS if os.path.exists(SWAKS) else None)
    if path is None:
        how = "install it with `apt-get install swaks` (make test does this as root)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"swaks is missing: the SMTP client tests must run in CI; {how}")
        pytest.skip(f"swaks is missing: {how}")
    return subprocess.run(
        [path, "--timeout", "20", *args], capture_output=True, text=True, timeout=60
    )


def next_error(sub: events.Subscription, timeout: float = 10) -> dict[str, Any]:
    """The data of the next `error` event on a bus subscription."""
    while True:
        event = sub.get(timeout=timeout)
        assert event is not None, "no error event was published"
        if isinstance(event, events.SmtpError):
            return event.data  # type: ignore[no-any-return]


def newest_session(mp: Server, count: int = 1) -> dict[str, Any]:
    """The newest recorded SMTP session, once `count` sessions are recorded."""
    assert mp.mailbox is not None
    sessions = wait_until(
        lambda: len(mp.mailbox.sessions()) >= count and mp.mailbox.sessions(),
        what=f"{count} SMTP session records",
    )
    return sessions[0]  # type: ignore[no-any-return]


def logged_anywhere(mp: Server, prefix: str) -> str:
    """Wait until some recorded session has a log line starting with `prefix`; return it."""
    assert mp.mailbox is not None

    def find() -> str | None:
        for session in mp.mailbox.sessions():
            for line in lines(session):
                if line.startswith(prefix):
                    return line
        return None

    return wait_until(find, what=f"a session log line {prefix!r}")  # type: ignore[no-any-return]


def lines(session: dict[str, Any]) -> list[str]:
    return [t["Line"] for t in session["Transcript"]]


def transaction(c: RawClient, subject: str, rcpt: str = "b@example.com") -> str:
    """MAIL, RCPT, DATA with a small message; returns the reply to the data."""
    assert c.cmd("MAIL FROM:<a@example.com>").startswith("250"), "MAIL refused"
    assert c.cmd(f"RCPT TO:<{rcpt}>").startswith("250"), "RCPT refused"
    assert c.cmd("DATA").startswith("354")
    c.send(f"Subject: {subject}\r\n\r\nHello.\r\n.\r\n".encode())
    return c.reply()


def message(subject: str) -> bytes:
    return (
        f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.com>\r\n\r\nHello.\r\n"
    ).encode()
