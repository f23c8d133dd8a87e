"""Logs: one info line per SMTP session and per message, details at debug, --log-file and
--log-format json (one JSON object per line), checked on a real process."""

from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO, wait_until


def json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]  # a line being written is not read yet
    return [json.loads(line) for line in complete.splitlines()]  # every line parses


def smtp_address(log: Path, proc: subprocess.Popen[str]) -> tuple[str, str]:
    """The SMTP address from the server's JSON start line, once it is written."""

    def started() -> dict[str, Any] | None:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        return next((r for r in json_lines(log) if r.get("event") == "start"), None)

    # A new interpreter importing Flask and aiosmtpd can take a while on a busy machine.
    start = wait_until(started, timeout=60, what="the start line")
    host, port = start["smtp"].rsplit(":", 1)
    return host, port


def run_server(log: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailpit_py",
            "--smtp",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
            "--log-file",
            str(log),
            "--log-format",
            "json",
            *extra,
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def test_json_log_file_has_a_line_per_session_and_per_message(tmp_path: Path) -> None:
    log = tmp_path / "mailpit.log"
    proc = run_server(log)
    try:
        host, port = smtp_address(log, proc)
        with smtplib.SMTP(host, int(port)) as client:
            client.sendmail(
                "app@example.com",
                ["user@example.org"],
                b"From: app@example.com\r\nSubject: Welcome aboard\r\n\r\nHi\r\n",
            )
        with smtplib.SMTP(host, int(port)) as client:
            client.noop()  # a session that sends nothing but gets a refusal
            assert client.docmd("RCPT TO:<x@example.com>")[0] == 503

        def both() -> list[dict[str, Any]] | None:
            lines = json_lines(log)
            sessions = [r for r in lines if r.get("event") == "session"]
            return lines if len(sessions) == 2 else None

        lines = wait_until(both, timeout=30, what="two session lines")
        [msg] = [r for r in lines if r.get("event") == "message"]
        assert msg["level"] == "info"
        assert msg["mail_from"] == "app@example.com"
        assert msg["rcpt_to"] == ["user@example.org"]
        assert msg["subject"] == "Welcome aboard"
        assert "Welcome aboard" in msg["message"]
        sessions = [r for r in lines if r.get("event") == "session"]
        assert [s["outcome"] for s in sessions] == ["delivered", "rejected"]
        assert sessions[0]["refusals"] == []
        assert sessions[1]["refusals"][0].startswith("503 5.5.1")
        assert "last refusal: 503 5.5.1" in sessions[1]["message"]
        assert sessions[0]["messages"] == [msg["id"]]
        assert all(s["level"] == "info" for s in sessions)
        # Without --verbose no conversation details are logged.
        assert not [r for r in lines if r["level"] == "debug"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None and proc.stderr.read() == ""  # all went to the file
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_verbose_logs_the_conversation_at_debug(tmp_path: Path) -> None:
    log = tmp_path / "mailpit.log"
    proc = run_server(log, "--verbose")
    try:
        host, port = smtp_address(log, proc)
        with smtplib.SMTP(host, int(port)) as client:
            client.helo("client.example")
        wait_until(
            lambda: any(
                r["level"] == "debug"
                and r["logger"] == "mailpit_py.session"
                and "helo client.example" in r["message"].lower()
                for r in json_lines(log)
            ),
            what="the HELO line at debug",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--log-file", "{tmp}/no/dir.log"], "--log-file: cannot write to"),
        (["--log-format", "xml"], "--log-format: 'xml' is not text or json"),
    ],
)
def test_bad_log_settings_are_clear_errors(tmp_path: Path, args: list[str], error: str) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = subprocess.run(
        [sys.executable, "-m", "mailpit_py", *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2
    assert error in result.stderr


def test_a_receiver_refusal_over_several_lines_is_one_log_line(tmp_path: Path) -> None:
    # Gmail's DMARC and authentication replies span three lines; a log line per line would
    # split one session's record and read as lines of their own to a log collector.
    log = tmp_path / "mailpit.log"
    proc = run_server(log, "--receiver", "gmail")
    try:
        host, port = smtp_address(log, proc)
        with smtplib.SMTP(host, int(port)) as client:
            client.ehlo()
            code, _ = client.docmd("MAIL FROM:<dev@example.com>")
            assert code == 250
            client.docmd("RCPT TO:<someone@gmail.com>")
            client.docmd("DATA")
            client.send(b"From: dev@example.com\r\nSubject: hi\r\n\r\nHi\r\n.\r\n")
            code, reply = client.getreply()
            assert code == 550 and b"5.7.26" in reply, reply

        def session() -> dict[str, Any] | None:
            found = [r for r in json_lines(log) if r.get("event") == "session"]
            return found[0] if found else None

        rec = wait_until(session, timeout=30, what="the session line")
        assert "\n" not in rec["message"]
        assert "last refusal: 550-5.7.26 " in rec["message"]
        assert " | 550 5.7.26 information" in rec["message"]
        [msg] = [r for r in json_lines(log) if r.get("event") == "message"]
        assert msg["message"].endswith("(kept, refused by the receiver profile)")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
