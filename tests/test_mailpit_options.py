"""Mailpit's flags and MP_* variables keep Mailpit's meaning: units, defaults, accepted names."""

from __future__ import annotations

import json
import os
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers import REPO, make_server, wait_until
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.validate import notices


def _serve(environ: dict[str, str], argv: list[str] | None = None, **extra: object):  # type: ignore[no-untyped-def]
    """A real server built from flags and variables as the CLI reads them, on loopback."""
    cfg = asdict(config_from(argv or [], environ))
    cfg.pop("smtp_relay_env", None)
    cfg.update(extra)
    return make_server(**{k: v for k, v in cfg.items() if k not in ("smtp_addr", "http_addr")})


def _count(mp) -> int:  # type: ignore[no-untyped-def]
    with urllib.request.urlopen(mp.http_url + "api/v1/messages") as resp:
        return int(json.load(resp)["total"])


@pytest.mark.parametrize(
    ("value", "size"),
    [("10", 10 * 1024**2), ("1", 1024**2), ("0", 0), ("512KB", 512 * 1024), ("10MB", 10 * 1024**2)],
)
def test_max_message_size_is_megabytes_as_in_mailpit(value: str, size: int) -> None:
    assert config_from([], {"MP_MAX_MESSAGE_SIZE": value}).max_message_size == size
    assert config_from(["--max-message-size", value], {}).max_message_size == size


def test_max_message_size_error_says_how_to_fix_it() -> None:
    with pytest.raises(ConfigError, match="megabytes as Mailpit does"):
        config_from(["--max-message-size", "lots"], {})


@pytest.mark.parametrize("value", ["10", "0"])
def test_max_message_size_in_megabytes_accepts_ordinary_mail(value: str) -> None:
    # A plain 10 was read as 10 bytes (every message refused with 552); 0 stopped start-up.
    with _serve({"MP_MAX_MESSAGE_SIZE": value}).start() as mp:
        body = "x" * 20_000
        with smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp:
            smtp.sendmail("a@example.com", ["b@example.com"], f"Subject: s\r\n\r\n{body}\r\n")
        assert _count(mp) == 1
        # The web app takes an upload larger than the old byte limit too (0: no limit at all).
        req = urllib.request.Request(
            mp.http_url + "api/v1/send",
            data=json.dumps(
                {
                    "From": {"Email": "a@example.com"},
                    "To": [{"Email": "b@example.com"}],
                    "Subject": "big",
                    "Text": "y" * 40_000,
                }
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 200
        assert _count(mp) == 2


def test_max_message_size_in_megabytes_still_refuses_larger_mail() -> None:
    with _serve({"MP_MAX_MESSAGE_SIZE": "1"}).start() as mp:
        body = "x" * (1024**2 + 100)
        with (
            smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp,
            pytest.raises(smtplib.SMTPResponseException) as exc,
        ):
            smtp.sendmail("a@example.com", ["b@example.com"], f"Subject: s\r\n\r\n{body}\r\n")
        assert exc.value.smtp_code == 552
        assert _count(mp) == 0


def _families() -> list[tuple[int, str]]:
    """The loopback addresses this machine can reach: IPv4, and IPv6 where it has it."""
    found = [(socket.AF_INET, "127.0.0.1")]
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        found.append((socket.AF_INET6, "::1"))
    except OSError:
        pass
    return found


def test_all_interfaces_listen_on_ipv4_and_ipv6_as_mailpit() -> None:
    # `[::]` was IPv6 only (Python sets IPV6_V6ONLY): a client of 127.0.0.1 was refused.
    with make_server(smtp_addr="[::]:0", http_addr="[::]:0").start() as mp:
        smtp_port, http_port = mp.smtp_address[1], mp.http_address[1]
        for _family, host in _families():
            with smtplib.SMTP(host, smtp_port, timeout=10) as smtp:
                smtp.sendmail("a@example.com", ["b@example.com"], "Subject: s\r\n\r\nhi\r\n")
            name = f"[{host}]" if ":" in host else host
            with urllib.request.urlopen(f"http://{name}:{http_port}/livez", timeout=10) as resp:
                assert resp.status == 200
        assert _count(mp) == len(_families())


def test_start_line_says_every_interface_listens_and_how_to_keep_it_local() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailpit_py", "--smtp", "[::]:0", "--listen", "[::]:0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith("MP_")},
    )
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(2)]
        text = "".join(lines)
        assert "SMTP and HTTP listening on every network interface" in text, text
        assert "--smtp 127.0.0.1:1025 --listen 127.0.0.1:8025" in text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# Every flag of Mailpit's that mailpit_py lacked (argparse stopped start-up with exit 2), with a
# value as a Mailpit user would give it.
MAILPIT_FLAGS = [
    ["--disable-wal"],
    ["--disable-version-check"],
    ["--disable-auto-vacuum"],
    ["--compression", "2"],
    ["--tenant-id", "team-a"],
    ["--use-message-dates"],
    ["--ignore-duplicate-ids"],
    ["--block-remote-css-and-fonts"],
    ["--disable-link-check-rate-limit"],
    ["--allow-untrusted-tls"],
    ["--disable-http-compression"],
    ["--hide-delete-all-button"],
    ["--smtp-strict-rfc-headers"],
    ["--smtp-disable-rdns"],
    ["-t", "invoices=subject:invoice"],
    ["--tag", "invoices=subject:invoice"],
    ["--tags-config", str(REPO / "tests" / "tag-filters.yml")],
    ["--tags-title-case"],
    ["--tags-disable", "plus-addresses,x-tags"],
    ["--tags-username"],
    ["--webhook-delay", "2"],
    ["--db-file", "mail.db"],
    ["--ui-ssl-cert", "sans:localhost"],
    ["--smtp-ssl-cert", "sans:localhost"],
    ["--smtp-tls-required", "--smtp-tls-cert", "sans:localhost"],
    ["--disable-html-check"],
]


@pytest.mark.parametrize("argv", MAILPIT_FLAGS, ids=lambda a: a[0])
def test_every_mailpit_flag_is_accepted(argv: list[str], tmp_path: Path) -> None:
    tags = tmp_path / "tags.yml"  # Mailpit's format of --tags-config
    tags.write_text('filters:\n  - match: "subject:invoice"\n    tags: "invoices"\n')
    config_from([str(tags) if a == "tags.yml" else a for a in argv], {})


def test_mailpit_flags_and_variables_keep_mailpit_meaning() -> None:
    cfg = config_from(["--db-file", "x.db", "--smtp-tls-required", "--smtp-ssl-cert", "sans:a"], {})
    assert cfg.database == "x.db"
    assert cfg.smtp_require_starttls and cfg.smtp_tls_cert == "sans:a"
    env = {
        "MP_DATA_FILE": "y.db",
        "MP_UI_SSL_CERT": "sans:b",
        "MP_WEBHOOK_DELAY": "3",
        "MP_HIDE_DELETE_ALL_BUTTON": "true",
        "MP_TAG": "a=b",
        "MP_SMTP_DISABLE_RDNS": "1",
        "MP_SMTP_REVERSE_DNS": "1",
    }
    cfg = config_from([], env)
    assert cfg.database == "y.db" and cfg.ui_tls_cert == "sans:b"
    assert cfg.webhook_delay == 3.0 and cfg.hide_delete_all_button and cfg.tag == "a=b"
    assert not cfg.smtp_reverse_dns  # Mailpit's off switch wins


@pytest.mark.parametrize("prefix", ["MP_SMTP_RELAY_", "MP_SMTP_FORWARD_"])
def test_mailpit_fwd_smtp_errors_variables(prefix: str) -> None:
    from mailpit_py.relay.config import settings

    env = {prefix + "HOST": "127.0.0.1", prefix + "FWD_SMTP_ERRORS": "true"}
    env[prefix + "TO"] = "a@example.com"
    up = settings(config_from([], env))
    chosen = up.relay if prefix == "MP_SMTP_RELAY_" else up.forward
    assert chosen is not None and chosen.forward_smtp_errors


def test_an_unknown_variable_is_named_at_start_and_ignored() -> None:
    cfg = config_from([], {"MP_SMTP_RELAY_HSOT": "x", "MP_MAX_MESAGES": "3"})
    found = notices(cfg, {"MP_SMTP_RELAY_HSOT": "x", "MP_MAX_MESAGES": "3"}, [])
    assert any(n.startswith("MP_MAX_MESAGES is not a variable mailpit_py knows") for n in found)
    assert any(n.startswith("MP_SMTP_RELAY_HSOT is not a variable") for n in found)


def test_start_warns_of_mailpit_options_without_effect_deprecated_and_unknown_ones() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MP_")}
    env |= {"MP_TENANT_ID": "a", "MP_NO_SUCH_THING": "1", "MP_UI_SSL_KEY": ""}
    argv = ["-s", "127.0.0.1:0", "-l", "127.0.0.1:0", "--compression", "2", "--db-file", ":memory:"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailpit_py", *argv],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        assert proc.stderr is not None
        lines = []
        while not lines or "SMTP on" not in lines[-1]:
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        text = "".join(lines)
        assert "--compression" not in text  # it has Mailpit's meaning now
        assert "--tenant-id" not in text  # it has Mailpit's meaning now too
        assert "--db-file is deprecated, as in Mailpit: use --database" in text
        assert "MP_UI_SSL_KEY is deprecated, as in Mailpit: use MP_UI_TLS_KEY" in text
        assert "MP_NO_SUCH_THING is not a variable mailpit_py knows" in text
        assert "database :memory:" in lines[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_webhook_delay_holds_each_request_after_its_message_arrives() -> None:
    arrivals: list[float] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers["Content-Length"]))
            arrivals.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    try:
        cfg = config_from(["--webhook-url", url, "--webhook-delay", "1.5"], {})
        with make_server(webhook_url=cfg.webhook_url, webhook_delay=cfg.webhook_delay) as mp:
            sent = time.monotonic()
            with smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp:
                smtp.sendmail("a@example.com", ["b@example.com"], "Subject: s\r\n\r\nhi\r\n")
            wait_until(lambda: len(arrivals) == 1, timeout=20, what="the delayed webhook")
            assert arrivals[0] - sent >= 1.5
    finally:
        httpd.shutdown()
        httpd.server_close()


def _send(mp, raw: str) -> None:  # type: ignore[no-untyped-def]
    with smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp:
        smtp.sendmail("a@example.com", ["b@example.com"], raw)


def test_ignore_duplicate_ids_answers_250_and_stores_one() -> None:
    raw = "Message-ID: <same@example.com>\r\nSubject: {}\r\n\r\nhi\r\n"
    with make_server(ignore_duplicate_ids=True).start() as mp:
        _send(mp, raw.format("first"))
        _send(mp, raw.format("second"))  # smtplib raises on anything but 250
        _send(mp, raw.replace("same@", "other@").format("third"))
        with urllib.request.urlopen(mp.http_url + "api/v1/messages") as resp:
            subjects = [m["Subject"] for m in json.load(resp)["messages"]]
        assert subjects == ["third", "first"]
        with urllib.request.urlopen(mp.http_url + "api/v1/webui") as resp:
            assert json.load(resp)["DuplicatesIgnored"] is True


def test_use_message_dates_takes_the_date_header_as_received() -> None:
    raw = "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nSubject: {}\r\n\r\nhi\r\n"
    with make_server(use_message_dates=True).start() as mp:
        _send(mp, raw.format("dated"))
        _send(mp, "Subject: undated\r\n\r\nhi\r\n")  # no Date header: the time it arrived
        with urllib.request.urlopen(mp.http_url + "api/v1/messages") as resp:
            listed = {m["Subject"]: m["Created"] for m in json.load(resp)["messages"]}
    dated = datetime.fromisoformat(listed["dated"].replace("Z", "+00:00"))
    assert dated == datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    undated = datetime.fromisoformat(listed["undated"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - undated).total_seconds()) < 600


@pytest.mark.parametrize(("flag", "mode"), [(True, "delete"), (False, "wal")])
def test_disable_wal_keeps_a_rollback_journal(tmp_path: Path, flag: bool, mode: str) -> None:
    db = tmp_path / "mail.db"
    with make_server(database=str(db), disable_wal=flag).start() as mp:
        _send(mp, "Subject: s\r\n\r\nhi\r\n")
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == mode


def test_database_folder_means_mailpit_db_in_it(tmp_path: Path) -> None:
    # Mailpit reads `--database /data` (a volume) as /data/mailpit.db; SQLite cannot open a folder.
    assert config_from(["--database", str(tmp_path)], {}).database == str(tmp_path / "mailpit.db")
    cfg = config_from([], {"MP_DATABASE": str(tmp_path) + "/"})
    with make_server(database=cfg.database).start() as mp:
        _send(mp, "Subject: kept\r\n\r\nhi\r\n")
    with sqlite3.connect(tmp_path / "mailpit.db") as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1


def test_spamassassin_postmark_says_it_is_not_supported() -> None:
    with pytest.raises(ConfigError, match="postmark .* is not supported: run SpamAssassin's spamd"):
        config_from(["--enable-spamassassin", "postmark"], {})


@pytest.mark.parametrize("value", ["0h", "0d", "0"])
def test_max_age_zero_is_no_age_limit_as_in_mailpit(value: str) -> None:
    # Mailpit reads 0h as no pruning by age; it stopped start-up here ("a positive duration").
    assert config_from(["--max-age", value], {}).max_age is None
    assert config_from([], {"MP_MAX_AGE": value}).max_age is None
    assert config_from(["--max-age", "2d"], {}).max_age == 2 * 86400


def test_smtp_max_recipients_zero_is_mailpits_default_of_100() -> None:
    # Mailpit's SMTP server takes 0 as its default; it stopped start-up here.
    assert config_from(["--smtp-max-recipients", "0"], {}).smtp_max_recipients == 100
    assert config_from([], {"MP_SMTP_MAX_RECIPIENTS": "0"}).smtp_max_recipients == 100
    with _serve({"MP_SMTP_MAX_RECIPIENTS": "0"}).start() as mp:
        rcpts = [f"r{i}@example.com" for i in range(101)]
        with smtplib.SMTP(*mp.smtp_address, timeout=10) as smtp:
            refused = smtp.sendmail("a@example.com", rcpts, "Subject: s\r\n\r\nhi\r\n")
        assert list(refused) == ["r100@example.com"] and refused["r100@example.com"][0] == 452
