"""Delete all on SQLite: the blobs are set aside in its transaction and freed by the writer a
step at a time while idle, resuming after a restart or a kill -9; nothing deleted comes back."""

from __future__ import annotations

import json
import re
import smtplib
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO, stop_process, wait_until
from mailpit_py.cli import main
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.store import drain

ENV = Envelope("ann@example.com", ("bob@example.org",))


def message(subject: str, attachment: bool = False) -> bytes:
    head = f"From: Ann <ann@example.com>\r\nTo: bob@example.org\r\nSubject: {subject}\r\n"
    if not attachment:
        return f"{head}\r\nWords of {subject}.\r\n".encode()
    return (
        f"{head}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        f"--B\r\nContent-Type: text/plain\r\n\r\nWords of {subject}.\r\n"
        "--B\r\nContent-Type: application/pdf; name=r.pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--B--\r\n"
    ).encode()


def aside(path: str) -> dict[str, int]:
    """The messages and blob tables set aside in the file with their rows, and how many tables
    in all are set aside (read on a connection of its own)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        # One read transaction: the names and their counts from one snapshot, while the
        # writer may drop a table set aside between two statements.
        conn.execute("BEGIN")
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'drain%'"
            )
        ]
        found = {
            name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            for name in names
            if name.endswith(("_messages", "_message_data", "_parts"))
        }
        return {**found, "tables": len(names)} if names else {}
    finally:
        conn.close()


# messages, message_data, parts, headers, message_checks, and the two FTS5 tables with their
# shadow tables (data, idx, content, docsize, config; the trigram one keeps no content).
TABLES_SET_ASIDE = 5 + 6 + 5


def integrity(path: str) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def schema(path: str) -> list[tuple[str, str, str, str]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY name"
        ).fetchall()
    finally:
        conn.close()


def rows(path: str, table: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> None:
    """No drain step runs (the writer is never idle long enough, nor a step overdue) until a
    test lets it."""
    monkeypatch.setattr(drain, "IDLE", 3600.0)
    monkeypatch.setattr(drain, "EVERY", 3600.0)


def test_delete_all_sets_the_blobs_aside_and_the_writer_frees_them_in_steps(
    tmp_path: Path, held: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "m.db")
    mb = Mailbox(Config(database=path, max_messages=0))
    try:
        for i in range(30):
            mb.deliver(ENV, message(f"old {i}", attachment=i % 3 == 0)).result(30)
        assert rows(path, "parts") == 10
        # As the API's DELETE does: the default mailbox, which holds every message.
        assert mb.delete_all(box="default") == 30
        assert aside(path) == {
            "drain_1_messages": 30,
            "drain_1_message_data": 30,
            "drain_1_parts": 10,
            "tables": TABLES_SET_ASIDE,
        }
        for table in ("messages", "message_data", "parts", "headers", "messages_fts"):
            assert rows(path, table) == 0
        assert integrity(path) == "ok"
        assert mb.counts() == (0, 0) and mb.counts(box="default") == (0, 0)
        assert mb.search("old")[0] == [] and mb.search("Words")[0] == []
        assert mb.list_messages(0, 50) == []

        # A message delivered before the freeing is whole, and stays so through it.
        new = mb.deliver(ENV, message("new one", attachment=True)).result(30)
        assert aside(path)["drain_1_message_data"] == 30
        monkeypatch.setattr(drain, "IDLE", 0.001)
        monkeypatch.setattr(drain, "STEP_ROWS", 4)
        monkeypatch.setattr(drain, "STEP_SECONDS", 0.0)  # one run of rows a step
        mb.store.write(lambda s: None)  # wakes the writer, which then finds itself idle
        wait_until(lambda: not aside(path), what="the tables set aside to be dropped")
        # At most 4 rows a step, divided by one more than the table's indexes: 30 steps for
        # messages (6 indexes), 8 for the 30 raw messages, 5 for the 10 parts (one index).
        assert mb.store.drain_steps >= 43  # type: ignore[attr-defined]
        assert [m["ID"] for m in mb.search("new")[0]] == [new]
        assert b"Words of new one" in mb.raw(new)
        assert mb.counts() == (1, 1)
    finally:
        mb.close()
    # Ids are never reused (IMAP's UIDs), and the schema is a new file's, index for index.
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT id FROM messages").fetchall() == [(31,)]
    finally:
        conn.close()
    assert integrity(path) == "ok"
    Mailbox(Config(database=str(tmp_path / "new.db"))).close()
    assert schema(path) == schema(str(tmp_path / "new.db"))


def test_under_steady_mail_the_freeing_still_ends(
    tmp_path: Path, held: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "m.db")
    mb = Mailbox(Config(database=path, max_messages=0))
    try:
        for i in range(10):
            mb.deliver(ENV, message(f"old {i}", attachment=True)).result(30)
        mb.delete_all()
        # The writer is never idle long enough (held): after a batch, a step once EVERY passed.
        monkeypatch.setattr(drain, "EVERY", 0.01)
        sent: list[str] = []

        def one_more_then_freed() -> bool:
            sent.append(mb.deliver(ENV, message(f"steady {len(sent)}")).result(30))
            return not aside(path)

        wait_until(one_more_then_freed, timeout=60, what="the freeing under steady mail")
        assert mb.counts() == (len(sent), len(sent))
    finally:
        mb.close()


def test_a_second_delete_all_before_the_freeing_sets_its_own_tables_aside(
    tmp_path: Path, held: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "m.db")
    mb = Mailbox(Config(database=path, max_messages=0))
    try:
        for i in range(5):
            mb.deliver(ENV, message(f"first {i}", attachment=True)).result(30)
        mb.delete_all()
        mb.deliver(ENV, message("second", attachment=True)).result(30)
        mb.delete_all()
        assert aside(path) == {
            "drain_1_messages": 5,
            "drain_1_message_data": 5,
            "drain_1_parts": 5,
            "drain_2_messages": 1,
            "drain_2_message_data": 1,
            "drain_2_parts": 1,
            "tables": 2 * TABLES_SET_ASIDE,
        }
    finally:
        mb.close()
    # Opened again (a restart), the writer resumes the freeing and finishes it.
    monkeypatch.setattr(drain, "IDLE", 0.001)
    mb = Mailbox(Config(database=path, max_messages=0))
    try:
        wait_until(lambda: not aside(path), what="the tables set aside to be dropped")
        assert mb.counts() == (0, 0)
    finally:
        mb.close()


def test_one_mailbox_among_others_is_emptied_alone_and_the_last_one_at_once(
    tmp_path: Path, held: None
) -> None:
    path = str(tmp_path / "m.db")
    mb = Mailbox(Config(database=path, max_messages=0))
    try:
        mb.deliver(ENV, message("in alpha"), boxes={"alpha": ENV.rcpt_to}).result(30)
        kept = mb.deliver(ENV, message("in default", attachment=True)).result(30)
        assert mb.delete_all(box="alpha") == 1
        assert aside(path) == {}
        assert [m["ID"] for m in mb.list_messages(0, 10)] == [kept]
        assert mb.counts(box="alpha") == (0, 0) and mb.counts() == (1, 1)
        # The default mailbox now holds every message: emptied as the whole store.
        assert mb.delete_all(box="default") == 1
        assert aside(path) == {
            "drain_1_messages": 1,
            "drain_1_message_data": 1,
            "drain_1_parts": 1,
            "tables": TABLES_SET_ASIDE,
        }
        assert [row[:3] for row in mb.store.mailboxes()] == [
            ("alpha", 0, 0),
            ("default", 0, 0),
        ]
    finally:
        mb.close()


def test_dump_and_migrate_leave_the_tables_set_aside_behind(tmp_path: Path, held: None) -> None:
    path = str(tmp_path / "m.db")
    mb = Mailbox(Config(database=path, max_messages=0))
    try:
        for i in range(4):
            mb.deliver(ENV, message(f"deleted {i}", attachment=True)).result(30)
        mb.delete_all()
        kept = mb.deliver(ENV, message("kept", attachment=True)).result(30)
    finally:
        mb.close()
    assert aside(path)
    out = tmp_path / "out"
    assert main(["dump", "--database", path, str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{kept}.eml"]
    copy = str(tmp_path / "copy.db")
    assert main(["migrate", "--from", path, "--to", copy]) == 0
    assert aside(copy) == {}
    assert rows(copy, "message_data") == rows(copy, "parts") == 1


# -- a real server process, killed with SIGKILL while it frees ---------------------------------

BANNER = re.compile(r"SMTP on 127\.0\.0\.1:(\d+), web UI and API on http://127\.0\.0\.1:(\d+)/")
# The first server frees one row a step, each after 0.2 s idle (no steps back to back): the
# kill comes amid the freeing.
SLOW = """
import sys
from mailpit_py.store import drain
from mailpit_py.cli import main

drain.STEP_ROWS = 1
drain.STEP_SECONDS = 0.0
drain.IDLE = 0.2
wait = drain.Drain.drain_wait


def every_step_after_idle(self):
    self._drain_streak = False
    return wait(self)


drain.Drain.drain_wait = every_step_after_idle
sys.exit(main())
"""


class Process:
    """mailpit_py in a process of its own, its log in a file."""

    def __init__(self, db: str, log: Path, code: str | None = None) -> None:
        self.log = log
        head = [sys.executable, "-c", code] if code else [sys.executable, "-m", "mailpit_py"]
        args = ["--smtp", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--database", db]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [*head, *args, "--max", "0", "--disable-checks"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        found = wait_until(self._banner, timeout=60, what=f"the banner in {log}")
        self.smtp_port, self.api = int(found.group(1)), f"http://127.0.0.1:{found.group(2)}/api"

    def _banner(self) -> re.Match[str] | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the server exited: {self.log.read_text(errors='replace')}")
        return BANNER.search(self.log.read_text(errors="replace"))

    def send(self, subjects: list[str], attachment: bool = False) -> None:
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as smtp:
            for subject in subjects:
                smtp.sendmail("ann@example.com", ["bob@example.org"], message(subject, attachment))

    def call(self, method: str, path: str) -> Any:
        req = urllib.request.Request(self.api + path, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
        return json.loads(body) if body.startswith((b"{", b"[")) else body

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: nothing of its own shutdown runs
        self.proc.wait(timeout=30)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for p in started:
        stop_process(p.proc)


def test_a_server_killed_amid_the_freeing_finishes_it_after_restart(
    tmp_path: Path, processes: list[Process]
) -> None:
    db = str(tmp_path / "mail.db")
    first = Process(db, tmp_path / "first.log", SLOW)
    processes.append(first)
    first.send([f"old plain {i}" for i in range(40)])
    first.send([f"old attached {i}" for i in range(40)], attachment=True)
    assert first.call("GET", "/v1/messages?limit=1")["total"] == 80
    assert first.call("DELETE", "/v1/messages") == b"ok"
    assert first.call("GET", "/v1/messages")["total"] == 0
    first.send(["new plain"])
    first.send(["new attached"], attachment=True)
    # Killed once the freeing has begun and before it ends.
    wait_until(
        lambda: 0 < aside(db).get("drain_1_messages", 0) < 80,
        timeout=30,
        what="the freeing to begin",
    )
    first.kill()
    assert aside(db)  # what was left to free is still set aside

    second = Process(db, tmp_path / "second.log")
    processes.append(second)
    listed = second.call("GET", "/v1/messages")
    assert listed["total"] == 2 and listed["unread"] == 2
    assert sorted(m["Subject"] for m in listed["messages"]) == ["new attached", "new plain"]
    assert second.call("GET", "/v1/search?query=old")["messages_count"] == 0
    wait_until(lambda: not aside(db), timeout=60, what="the freeing to finish after restart")
    assert rows(db, "message_data") == 2 and rows(db, "parts") == 1
    for m in listed["messages"]:
        assert b"Words of new" in second.call("GET", f"/v1/message/{m['ID']}/raw")
    assert second.call("GET", "/v1/search?query=new")["messages_count"] == 2


def test_pop3_and_imap_deleting_every_message_set_the_blobs_aside(
    tmp_path: Path, held: None
) -> None:
    import imaplib
    import poplib

    from helpers import make_server, send_raw

    path = str(tmp_path / "m.db")
    auth = "ann:secret"
    with make_server(
        database=path,
        max_messages=0,
        pop3_addr="127.0.0.1:0",
        pop3_auth=auth,
        imap_addr="127.0.0.1:0",
        imap_auth=auth,
    ) as mp:
        for i in range(3):
            send_raw(mp, message(f"popped {i}", attachment=True))
        pop = poplib.POP3(*mp.pop3_address, timeout=10)
        pop.user("ann")
        pop.pass_("secret")
        for n in (1, 2, 3):
            pop.dele(n)
        pop.quit()
        assert aside(path)["drain_1_message_data"] == 3
        assert mp.mailbox.counts() == (0, 0)

        for i in range(2):
            send_raw(mp, message(f"expunged {i}", attachment=True))
        imap = imaplib.IMAP4(*mp.imap_address, timeout=10)
        imap.login("ann", "secret")
        imap.select("INBOX")
        imap.store("1:*", "+FLAGS", "\\Deleted")
        assert imap.expunge()[1] == [b"1", b"1"]
        imap.logout()
        assert aside(path)["drain_2_message_data"] == 2
        assert mp.mailbox.counts() == (0, 0)


def test_the_bench_empties_a_file_and_reports_the_freeing(tmp_path: Path) -> None:
    path = str(tmp_path / "bench.db")
    mb = Mailbox(Config(database=path, max_messages=0))
    try:
        for i in range(20):
            mb.deliver(ENV, message(f"bench {i}", attachment=i % 2 == 0)).result(30)
    finally:
        mb.close()
    bench = [sys.executable, str(REPO / "bench" / "deleteall.py"), "--db", path]
    tables = subprocess.run([*bench, "--tables"], capture_output=True, text=True, timeout=120)
    assert tables.returncode == 0, tables.stderr
    assert "set aside" in tables.stdout and rows(path, "messages") == 20
    run = subprocess.run([*bench, "--every", "0.25"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    for line in ("messages 20,", "answered in", "freeing done", "delivery during the freeing"):
        assert line in run.stdout, run.stdout
    assert not aside(path)


def test_a_table_that_cannot_be_set_aside_is_emptied_in_place(tmp_path: Path) -> None:
    # A trigger of someone else's on a table keeps it from being renamed aside (as a SQLite in
    # defensive mode would keep its indexes): delete all still empties everything, at once.
    path = str(tmp_path / "triggered.db")
    mb = Mailbox(Config(database=path, max_messages=0))
    try:
        for i in range(3):
            mb.deliver(ENV, message(f"kept {i}", attachment=True)).result(10)
        with mb.store.reading() as conn:  # type: ignore[attr-defined]
            assert conn.execute("SELECT count(*) FROM parts").fetchone()[0] == 3
        mb.store.write(
            lambda s: s._wconn.execute(  # type: ignore[attr-defined]
                "CREATE TRIGGER theirs AFTER INSERT ON parts BEGIN SELECT 1; END"
            )
        )
        assert mb.delete_all() == 3
        assert mb.counts() == (0, 0)
        assert mb.search("kept")[1] == 0
        assert aside(path) == {}  # nothing set aside: freed in the transaction
        mb.deliver(ENV, message("after", attachment=True)).result(10)
        assert mb.search("after")[1] == 1
    finally:
        mb.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # The new message's parts alone, one row per message with this attachment.
        assert conn.execute("SELECT count(*) FROM parts").fetchone()[0] == 1
    finally:
        conn.close()
