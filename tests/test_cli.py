"""The command line: flags and MP_* variables, clear errors with exit status 2, a real run."""

from __future__ import annotations

import gc
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from helpers import REPO
from mailpit_py.cli import config_from, main, settle_gc
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import OPTIONS, Config


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailpit_py", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


def test_settle_gc_takes_start_up_objects_out_of_collections() -> None:
    # The server's process calls this once it runs: what is alive then (modules, config, the
    # app) is frozen, so a full collection no longer walks it. Here pytest's own objects stand
    # in for the server's; they are unfrozen again afterwards.
    before = gc.get_freeze_count()
    try:
        settle_gc()
        assert gc.get_freeze_count() > before + 10_000
        assert gc.isenabled()  # young objects are still collected
    finally:
        if before == 0:
            gc.unfreeze()


def test_defaults_match_mailpit() -> None:
    cfg = config_from([], {})
    assert cfg.smtp_addr == "[::]:1025"  # every interface, as Mailpit (containers rely on it)
    assert cfg.http_addr == "[::]:8025"
    assert cfg.max_messages == 500
    assert cfg.max_message_size == 50 * 1024 * 1024
    assert cfg.smtp_max_recipients == 100
    assert cfg.database is None


def test_flags_and_environment_fill_the_config() -> None:
    cfg = config_from(
        ["-s", "[::1]:2525", "-m", "10", "--max-age", "3d", "--max-message-size", "1MB"],
        {"MP_DATABASE": "/tmp/x.db", "MP_LABEL": "ci", "MP_QUIET": "true"},
    )
    assert cfg.smtp_addr == "[::1]:2525"
    assert cfg.max_messages == 10
    assert cfg.max_age == 3 * 86400
    assert cfg.max_message_size == 1024 * 1024
    assert cfg.database == "/tmp/x.db"
    assert cfg.label == "ci"
    assert cfg.quiet is True


def test_flags_win_over_environment() -> None:
    cfg = config_from(["--smtp", "127.0.0.1:2000"], {"MP_SMTP_BIND_ADDR": "127.0.0.1:3000"})
    assert cfg.smtp_addr == "127.0.0.1:2000"
    assert config_from([], {"MP_SMTP_BIND_ADDR": "0.0.0.0:3000"}).smtp_addr == "0.0.0.0:3000"


def test_every_option_has_an_mp_variable_and_a_config_field() -> None:
    fields = set(Config.__dataclass_fields__)
    for opt in OPTIONS:
        assert opt.env.startswith("MP_")
        assert opt.field in fields


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--max-message-size", "lots"], {}, "is not a size"),
        (["--max-age", "3 fortnights"], {}, "is not a duration"),
        (["--smtp", "localhost"], {}, "is not an address"),
        (["-m", "many"], {}, "is not a whole number"),
        (["-m", "-1"], {}, "--max must be"),
        ([], {"MP_MAX_AGE": "soon"}, "MP_MAX_AGE"),
        ([], {"MP_QUIET": "perhaps"}, "is not true or false"),
    ],
)
def test_bad_values_are_clear_config_errors(
    args: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from(args, env)


def test_bad_size_exits_2_with_a_message(capsys) -> None:
    assert main(["--max-message-size", "huge"]) == 2
    err = capsys.readouterr().err
    assert "mailpit-py: error: --max-message-size: 'huge' is not a size" in err


def test_address_in_use_exits_2_and_says_how_to_fix_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("--smtp", f"127.0.0.1:{port}", "-l", "127.0.0.1:0", "-d", ":memory:")
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in result.stderr
    assert "Choose another with --smtp" in result.stderr


def test_unreadable_database_path_exits_2(tmp_path: Path) -> None:
    result = run_cli(
        "-s", "127.0.0.1:0", "-l", "127.0.0.1:0", "-d", str(tmp_path / "no" / "such" / "dir.db")
    )
    assert result.returncode == 2
    assert "cannot open database" in result.stderr


def test_help_lists_every_flag_and_variable() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for opt in OPTIONS:
        for flag in opt.flags:
            assert flag in result.stdout
        assert opt.env in result.stdout


def test_a_real_run_logs_each_message_and_stops_cleanly_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailpit_py", "--smtp", "127.0.0.1:0", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        m = re.search(
            r"SMTP on 127\.0\.0\.1:(\d+), web UI and API on (http://127\.0\.0\.1:\d+/), "
            r"database (\S+) \(temporary",
            banner,
        )
        assert m, banner
        port, db = int(m.group(1)), Path(m.group(3))
        with urllib.request.urlopen(m.group(2) + "livez", timeout=10) as resp:
            assert resp.status == 200
        assert db.exists()
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail(
                "app@example.com",
                ["user@example.org"],
                b"From: app@example.com\r\nSubject: Welcome aboard\r\n\r\nHi\r\n",
            )
        line = proc.stderr.readline()
        assert "message " in line
        assert "from <app@example.com> to <user@example.org>" in line
        assert "subject 'Welcome aboard'" in line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not db.exists()  # the temporary database is removed at exit
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
