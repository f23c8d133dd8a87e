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
from mailpit_py.config.settings import Config
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


def total_messages(mp: Server) -> int:
    return int(json.loads(get(mp.http_url + "api/v1/messages")[1])["total"])


def test_readiness_is_false_while_the_database_cannot_grow_and_says_why(
    file_server: Server,
) -> None:
    url = file_server.http_url + "readyz"
    assert file_server.mailbox is not None
    store = file_server.mailbox.store

    def page_limit(pages: int) -> None:
        # SQLite's own limit on the file's size, on the writer's connection: past it every
        # write that needs a new page fails with SQLITE_FULL, as on a full disk.
        store.write(lambda s: s._wconn.execute(f"PRAGMA max_page_count = {pages}").fetchall())

    page_limit(1)  # (SQLite keeps it at the file's current size: it can no longer grow)
    try:
        big = MESSAGE + b"x" * 300_000 + b"\r\n"
        with (
            smtplib.SMTP(*file_server.smtp_address) as client,
            pytest.raises(smtplib.SMTPDataError) as refused,
        ):
            client.sendmail("ann@example.com", ["bob@example.com"], big)
        assert refused.value.smtp_code == 451
        # Its probe was an empty transaction, which commits: it answered 200 here.
        status, text = get(url)
        assert status == 503, text
        assert "not ready: the database cannot be written: database or disk is full" in text
    finally:
        page_limit(1 << 30)
    wait_until(lambda: get(url)[0] == 200, what="ready again")
    with smtplib.SMTP(*file_server.smtp_address) as client:
        client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE)
    assert total_messages(file_server) == 1


def test_a_451_at_the_store_deadline_means_the_message_is_never_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailpit_py.smtp import delivery as smtp

    monkeypatch.setattr(smtp, "STORE_DEADLINE", 0.5)
    cfg = Config(
        smtp_addr="127.0.0.1:0",
        http_addr="127.0.0.1:0",
        database=str(tmp_path / "mail.db"),
        smtp_hostname="test.local",
    )
    # The writer waits up to 30 s for a lock: far past the SMTP deadline.
    with Server(cfg, busy_timeout=30) as mp:
        assert mp.mailbox is not None
        locker = sqlite3.connect(mp.mailbox.database_path, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            with (
                smtplib.SMTP(*mp.smtp_address) as client,
                pytest.raises(smtplib.SMTPDataError) as refused,
            ):
                client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE)
            assert refused.value.smtp_code == 451
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        # The writer gets the lock and goes past the message it had queued: before, it then
        # committed it, and the client's retry after the 451 stored it a second time.
        mp.mailbox.store.write(lambda store: None)
        assert total_messages(mp) == 0
        with smtplib.SMTP(*mp.smtp_address) as client:
            client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE)  # the retry
        assert total_messages(mp) == 1


def test_a_failing_search_index_write_backs_off_and_warns_once(
    file_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    from mailpit_py.mailbox.record import build_record
    from mailpit_py.models import Envelope
    from mailpit_py.parse.message import parse_message
    from mailpit_py.store.sqlite import Store
    from mailpit_py.store.writer import INDEX_BACKOFF_MAX

    assert file_server.mailbox is not None
    store = file_server.mailbox.store
    env = Envelope("ann@example.com", ("bob@example.com",))
    words = " ".join(f"w{i}x" for i in range(40_000))  # index rows that need new pages
    raw = MESSAGE.replace(b"Hello.", words.encode())
    rec = build_record(
        "backoff000000000000000",
        parse_message(raw, env),
        raw,
        created=0.0,
        username="",
        session_uid="",
        transcript=(),
        envelope=env,
    )

    def committed_then_full(s: Store) -> None:
        s.insert_message(rec)  # committed with the job; its index rows come after
        s._wconn.execute("PRAGMA max_page_count = 1").fetchall()  # no growing from here

    caplog.set_level("WARNING", logger="mailpit_py.store")
    store.write(committed_then_full)

    def failures() -> list[str]:
        return [r.getMessage() for r in caplog.records if "search index" in r.getMessage()]

    # It waited 0.1, 0.2, 0.4 and 0.8 s between tries (every 50 ms before: 15 warnings a
    # second), and said so once.
    wait_until(lambda: getattr(store, "_index_backoff", 0) >= 0.8, what="a backoff of 0.8 s")
    assert len(failures()) == 1, failures()
    assert "database or disk is full" in failures()[0]
    assert INDEX_BACKOFF_MAX == 5.0
    store.write(lambda s: s._wconn.execute("PRAGMA max_page_count = 1073741823").fetchall())
    # Written at the next try, and that is said once too.
    wait_until(lambda: len(failures()) == 2, timeout=15, what="the index written again")
    assert "written again" in failures()[1]
    assert [m["ID"] for m in file_server.mailbox.search("w39999x")[0]] == [rec.uid]
