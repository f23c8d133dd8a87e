"""Health: /livez, and /readyz that is ready only while SMTP, the store and HTTP all work, goes
false when the database is unavailable and comes back by itself; the info runtime statistics."""

from __future__ import annotations

import json
import smtplib
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import wait_until
from mailpit_py.config import Config
from mailpit_py.server import Server


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[Server]:
    cfg = Config(
        smtp_addr="127.0.0.1:0",
        http_addr="127.0.0.1:0",
        database=str(tmp_path / "mail.db"),
        smtp_hostname="test.local",
    )
    # A short busy timeout: a locked database fails a write in 0.2 s instead of 5.
    with Server(cfg, busy_timeout=0.2) as mp:
        yield mp


MESSAGE = b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\nHello.\r\n"


def test_livez_and_readyz_answer_ok_when_everything_runs(file_server: Server) -> None:
    assert get(file_server.http_url + "livez") == (200, "ok")
    assert get(file_server.http_url + "readyz") == (200, "ok")


def test_readiness_goes_false_while_the_database_is_locked_and_recovers(
    file_server: Server,
) -> None:
    url = file_server.http_url + "readyz"
    assert file_server.mailbox is not None
    locker = sqlite3.connect(file_server.mailbox.database_path, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        with (
            smtplib.SMTP(*file_server.smtp_address) as client,
            pytest.raises(smtplib.SMTPDataError) as refused,
        ):
            client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE)
        assert refused.value.smtp_code == 451  # never a 250 for what was not stored
        status, text = get(url)
        assert status == 503
        assert "database" in text and "not ready" in text
        assert get(file_server.http_url + "livez")[0] == 200  # alive, though not ready
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    # No new mail is needed: the readiness probe itself finds the database writable again.
    wait_until(lambda: get(url)[0] == 200, what="ready again")
    with smtplib.SMTP(*file_server.smtp_address) as client:
        client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE)


def test_readiness_is_false_when_the_store_is_closed(file_server: Server) -> None:
    assert file_server.mailbox is not None
    file_server.mailbox.store.close()
    status, text = get(file_server.http_url + "readyz")
    assert status == 503
    assert "store is closed" in text


def test_readyz_command_follows_readiness(file_server: Server) -> None:
    from mailpit_py.commands import run

    assert run("readyz", ["--url", file_server.http_url]) == 0
    assert file_server.mailbox is not None
    file_server.mailbox.store.close()
    assert run("readyz", ["--url", file_server.http_url]) != 0


def test_info_runtime_statistics_follow_the_traffic(
    server_factory: Callable[..., Server],
) -> None:
    mp = server_factory(max_message_size=2000)
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE)
        with pytest.raises(smtplib.SMTPSenderRefused):
            client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE + b"x" * 3000)
    req = urllib.request.Request(mp.http_url + "api/v1/messages", method="DELETE")
    urllib.request.urlopen(req, timeout=10).close()
    info = json.loads(get(mp.http_url + "api/v1/info")[1])
    stats = info["RuntimeStats"]
    assert set(stats) == {
        "Memory",
        "MessagesDeleted",
        "SMTPAccepted",
        "SMTPAcceptedSize",
        "SMTPIgnored",
        "SMTPRejected",
        "Uptime",
    }
    assert stats["SMTPAccepted"] == 1
    assert stats["SMTPAcceptedSize"] == len(MESSAGE)
    assert stats["SMTPRejected"] >= 1
    assert stats["MessagesDeleted"] == 1
    assert stats["Memory"] > 0
    assert info["DatabaseSize"] > 0


def test_readyz_command_probes_an_https_instance(server_factory: Callable[..., Server]) -> None:
    from mailpit_py.commands import run
    from mailpit_py.commands.readyz import default_url

    mp = server_factory(ui_tls_cert="sans:127.0.0.1", ui_auth="ann:secret")
    assert mp.http_url.startswith("https://")
    assert run("readyz", ["--url", mp.http_url]) == 0  # self-signed, behind auth: still probed
    env = {"MP_UI_BIND_ADDR": "0.0.0.0:8025", "MP_UI_TLS_CERT": "sans:localhost"}
    assert default_url(env) == "https://127.0.0.1:8025/"
