"""Sub-commands as Mailpit spells them: readyz --wait --timeout -l --webroot, dump --http
--max-message-size --tenant-id, ingest -S -r/--recent --max-message-size, sendmail without
recipients or with --from and MP_SENDMAIL_FROM, version."""

from __future__ import annotations

import json
import os
import re
import smtplib
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import make_server
from mailpit_py import __version__
from mailpit_py.cli import main


def _total(url: str) -> int:
    with urllib.request.urlopen(url + "api/v1/messages") as resp:
        return int(json.load(resp)["total"])


def test_readyz_with_mailpits_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with make_server(webroot="/mail/").start() as mp:
        host, port = mp.http_address
        listen = f"{host}:{port}"
        argv = ["readyz", "--wait", "--timeout", "10s", "-l", listen, "--webroot", "mail"]
        assert main(argv) == 0
        assert f"ready: http://{listen}/mail/" in capsys.readouterr().out
        # Without the webroot the instance is not there: --wait alone gives up at --timeout.
        started = time.monotonic()
        assert main(["readyz", "--wait", "--timeout", "1s", "-l", listen]) == 1
        assert 0.9 <= time.monotonic() - started < 10
        assert main(["readyz", "--wait", "--timeout", "soon", "-l", listen]) == 2
        assert "--timeout: 'soon' is not a duration" in capsys.readouterr().err


def test_dump_http_and_ingest_short_flags_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name, age_days in (("new.eml", 0), ("old.eml", 10)):
        path = src / name
        path.write_bytes(f"Subject: {name}\r\n\r\nhi\r\n".encode())
        then = time.time() - age_days * 86400
        os.utime(path, (then, then))
    with make_server().start() as mp:
        host, port = mp.smtp_address
        # -r 2: only files modified in the last two days, as Mailpit's ingest --recent.
        assert main(["ingest", "-S", f"{host}:{port}", "-r", "2", "-q", str(src)]) == 0
        assert _total(mp.http_url) == 1
        out = tmp_path / "out"
        assert main(["dump", "--http", mp.http_url, "-q", str(out)]) == 0
        dumped = [p.read_bytes() for p in out.glob("*.eml")]
        assert len(dumped) == 1 and b"Subject: new.eml" in dumped[0]


def test_version_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version", "--no-release-check"]) == 0
    assert __version__ in capsys.readouterr().out


def test_config_names_mailpits_deprecated_sources_and_warns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in [v for v in os.environ if v.startswith("MP_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("MP_DATA_FILE", "kept.db")
    monkeypatch.setenv("MP_NO_SUCH_THING", "1")
    assert main(["config", "--changed", "--smtp-ssl-cert", "sans:a", "--tenant-id", "t"]) == 0
    captured = capsys.readouterr()
    assert re.search(r'^database += "kept.db"  # environment MP_DATA_FILE$', captured.out, re.M)
    assert re.search(r'^smtp_tls_cert += "sans:a"  # flag --smtp-ssl-cert$', captured.out, re.M)
    assert "MP_NO_SUCH_THING is not a variable mailpit_py knows" in captured.err
    assert "--tenant-id" not in captured.err  # it has Mailpit's meaning: no warning
    assert "MP_DATA_FILE is deprecated, as in Mailpit: use MP_DATABASE" in captured.err


def test_sendmail_as_mailpits_without_t_from_and_its_variable(tmp_path: Path) -> None:
    # PHP's sendmail_path = "mailpit sendmail" gives no recipient: Mailpit reads the headers.
    from test_commands import run, stored

    msg = b"To: Ann <ann@example.com>\nCc: cc@example.com\nSubject: php\n\nhi\n"
    with make_server().start() as mp:
        host, port = mp.smtp_address
        addr = {"MP_SENDMAIL_SMTP_ADDR": f"{host}:{port}"}
        done = run("sendmail", stdin=msg, env=addr | {"MP_SENDMAIL_FROM": "app@example.com"})
        assert done.returncode == 0, done.stderr
        done = run(
            "sendmail", "--from", "long@example.com", "only@example.com", stdin=msg, env=addr
        )
        assert done.returncode == 0, done.stderr
        envelopes = [api["Envelope"] for api, _ in stored(mp)]
    assert envelopes[0]["From"] == "app@example.com"
    assert sorted(envelopes[0]["To"]) == ["ann@example.com", "cc@example.com"]
    assert envelopes[1]["From"] == "long@example.com" and envelopes[1]["To"] == ["only@example.com"]


def test_dump_max_message_size_and_tenant_id_as_mailpits(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    with make_server(database=str(db), tenant_id="Team A").start() as mp:
        with smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp:
            smtp.sendmail("a@example.com", ["b@example.com"], "Subject: small\r\n\r\nhi\r\n")
            big = "Subject: big\r\n\r\n" + "x" * (1024**2 + 10) + "\r\n"
            smtp.sendmail("a@example.com", ["b@example.com"], big)
        out = tmp_path / "http"
        argv = ["dump", "--http", mp.http_url, "--max-message-size", "1", "-v", str(out)]
        assert main(argv) == 0
        assert [p.read_bytes()[:14] for p in out.glob("*.eml")] == [b"Subject: small"]
    assert not db.exists()  # the tenant's data is a file of its own
    out = tmp_path / "db"
    assert main(["dump", "--database", str(db), "--tenant-id", "Team A", "-q", str(out)]) == 0
    assert len(list(out.glob("*.eml"))) == 2  # a database has no size limit to apply
    assert main(["dump", "--database", str(db), "-q", str(tmp_path / "none")]) == 66


def test_ingest_skips_files_over_max_message_size(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "small.eml").write_bytes(b"Subject: small\r\n\r\nhi\r\n")
    (src / "big.eml").write_bytes(b"Subject: big\r\n\r\n" + b"x" * (2 * 1024**2) + b"\r\n")
    with make_server(max_message_size=0).start() as mp:
        host, port = mp.smtp_address
        argv = ["ingest", "-S", f"{host}:{port}", "--max-message-size", "1", str(src)]
        assert main(argv) == 0
        assert _total(mp.http_url) == 1
        assert main(["ingest", "-S", f"{host}:{port}", "--max-message-size", "0", str(src)]) == 0
        assert _total(mp.http_url) == 3
