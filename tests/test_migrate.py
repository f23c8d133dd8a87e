"""`mailpit-py migrate`: a store filled over real SMTP is copied, and a server started on the
copy shows the same messages (raw bytes, IDs, times, tags, read state) and sessions."""

from __future__ import annotations

import json
import os
import pty
import smtplib
import sqlite3
import subprocess
import sys
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from helpers import make_server, send_raw, wait_until
from mailpit_py.config.settings import Config
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.models import Envelope
from mailpit_py.server import Server
from pgserver import APP_PASSWORD, PgServer, PgServerError

MAILPIT = [sys.executable, "-m", "mailpit_py"]

# Bytes a parser or a text column could mangle: Latin-1 in a header and the body, bytes that
# are no UTF-8 at all, a line that was dot-stuffed, trailing blanks, a tab, a very long line.
ODD = (
    b"From: Zo\xe9 <zoe@example.com>\r\nTo: rcpt@example.org\r\n"
    b"Subject: caf\xe9 \xff\xfe odd bytes\r\nX-Odd:\t \x01\x7f\r\n\r\n"
    b"na\xefve body \xc3\x28 \xed\xa0\x80\r\n.a line that began with a dot\r\n"
    b"trailing blanks   \r\n" + b"x" * 5000 + b"\r\n"
)


def api(mp: Server, path: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(mp.http_url.rstrip("/") + path, data=data, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        payload = resp.read()
    if path.endswith("/raw") or method != "GET":
        return payload  # raw bytes; "ok"
    return json.loads(payload)


def fill(db: str) -> None:
    """Messages over real SMTP (tags, a binary attachment, odd bytes), one marked read."""
    with make_server(database=db, max_messages=0) as mp:
        tagged = EmailMessage()
        tagged["From"], tagged["To"], tagged["Subject"] = "a@example.com", "b@example.org", "tagged"
        tagged["X-Tags"] = "alpha, beta"
        tagged.set_content("tags travel along\n")
        binary = EmailMessage()
        binary["From"], binary["To"], binary["Subject"] = "c@example.com", "d@example.org", "bin"
        binary.set_content("see the attachment\n")
        binary.add_attachment(
            bytes(range(256)) * 40, maintype="application", subtype="octet-stream", filename="b.bin"
        )
        with smtplib.SMTP(*mp.smtp_address) as client:  # one session, two messages
            client.send_message(tagged)
            client.send_message(binary)
        odd = send_raw(mp, ODD)
        api(mp, "/api/v1/messages", "PUT", {"IDs": [odd], "Read": True})
        # The checks run after the commit: the copy must carry their stored results too.
        assert mp.mailbox is not None
        store = mp.mailbox.store
        wait_until(lambda: all(store.checks(uid) for _, uid, *_ in store.index()), what="checks")
    # A message a strict receiver refused (no From) is kept, marked refused: it stays so.
    dns = Path(db).with_name("dns-override.txt")
    dns.write_text("")  # nothing resolves: no lookup leaves this machine
    with make_server(
        database=db, max_messages=0, receiver="strict", dns_override=str(dns), dns_offline=True
    ) as mp:
        with smtplib.SMTP(*mp.smtp_address) as client:
            client.ehlo()
            client.mail("app@example.com")
            client.rcpt("rcpt@example.org")
            code, _ = client.data(b"To: rcpt@example.org\r\nSubject: refused\r\n\r\nhi\r\n")
        assert code == 550


def snapshot(db: str) -> dict[str, Any]:
    """What the API of a server on `db` shows: every message (summary, view, raw) and session."""
    with make_server(database=db, max_messages=0) as mp:
        listing = api(mp, "/api/v1/messages?limit=0")
        messages = listing["messages"]
        views = {m["ID"]: api(mp, f"/api/v1/message/{m['ID']}") for m in messages}
        # Opening a message marks it read, as Mailpit does: put the read state back as it was.
        unread = [m["ID"] for m in messages if not m["Read"]]
        if unread:
            api(mp, "/api/v1/messages", "PUT", {"IDs": unread, "Read": False})
        return {
            "total": listing["total"],
            "unread": listing["unread"],
            "summaries": messages,
            "views": views,
            "raw": {m["ID"]: api(mp, f"/api/v1/message/{m['ID']}/raw") for m in messages},
            "tags": api(mp, "/api/v1/tags"),
            "sessions": api(mp, "/api/v1/sessions?limit=0")["sessions"],
            "search": [m["ID"] for m in api(mp, "/api/v1/search?query=attachment")["messages"]],
            "smtp": {m["ID"]: api(mp, f"/api/v1/message/{m['ID']}/smtp") for m in messages},
            "is_refused": [m["ID"] for m in api(mp, "/api/v1/search?query=is:refused")["messages"]],
            "checks": {m["ID"]: mp.mailbox.store.checks(m["ID"]) for m in messages},
        }


def migrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MAILPIT, "migrate", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    db = str(tmp_path_factory.mktemp("source") / "source.db")
    fill(db)
    return db, snapshot(db)


def assert_same(copy: dict[str, Any], original: dict[str, Any]) -> None:
    assert copy["raw"] == original["raw"]  # byte for byte, under the same IDs
    assert copy["summaries"] == original["summaries"]  # order, times, read flags, tags...
    assert copy["views"] == original["views"]
    assert (copy["total"], copy["unread"], copy["tags"]) == (
        original["total"],
        original["unread"],
        original["tags"],
    )
    assert copy["sessions"] == original["sessions"]
    assert copy["search"] == original["search"]  # the search index was built too
    assert copy["smtp"] == original["smtp"]  # each message's SMTP conversation
    assert copy["checks"] == original["checks"]
    assert copy["is_refused"] == original["is_refused"]


def test_the_source_holds_what_the_migration_must_carry(source: tuple[str, Any]) -> None:
    _, original = source
    assert original["total"] == 4 and original["unread"] == 3
    refused = [m for m in original["summaries"] if m["Refused"]]
    assert [m["Subject"] for m in refused] == ["refused"]
    assert original["views"][refused[0]["ID"]]["Refused"]["Rule"] == "from-invalid"
    assert original["is_refused"] == [refused[0]["ID"]]
    assert ["alpha", "beta"] in [m["Tags"] for m in original["summaries"]]
    assert ODD in original["raw"].values()
    assert [len(s["Messages"]) for s in original["sessions"]] == [1, 1, 2]
    assert len(original["search"]) == 1
    assert all(original["checks"].values())
    assert all(t["Transcript"] for t in original["smtp"].values())


def test_sqlite_to_sqlite_keeps_raw_bytes_ids_times_tags_read_state_and_sessions(
    source: tuple[str, Any], tmp_path: Path
) -> None:
    db, original = source
    dest = str(tmp_path / "copy.db")
    proc = migrate("--from", db, "--to", dest)
    assert proc.returncode == 0, proc.stderr
    assert f"copied 4 messages and 3 sessions from {db} to {dest}" in proc.stderr
    assert_same(snapshot(dest), original)


def test_a_destination_holding_messages_is_refused_unless_append(
    source: tuple[str, Any], tmp_path: Path
) -> None:
    db, original = source
    dest = str(tmp_path / "copy.db")
    assert migrate("--from", db, "--to", dest).returncode == 0
    proc = migrate("--from", db, "--to", dest)
    assert proc.returncode == 65
    assert "already holds 4 messages and 3 sessions" in proc.stderr
    assert "add --append" in proc.stderr
    # --append skips what is there: nothing is doubled.
    proc = migrate("--from", db, "--to", dest, "--append")
    assert proc.returncode == 0, proc.stderr
    assert "copied 0 messages and 0 sessions" in proc.stderr
    assert "skipped: 4 messages, 3 sessions" in proc.stderr
    assert_same(snapshot(dest), original)


def test_append_adds_what_the_destination_lacks(source: tuple[str, Any], tmp_path: Path) -> None:
    db, original = source
    dest = str(tmp_path / "partial.db")
    with make_server(database=dest, max_messages=0) as mp:
        other = send_raw(mp, b"Subject: already here\r\n\r\nhello\r\n")
    proc = migrate("--from", db, "--to", dest, "--append")
    assert proc.returncode == 0, proc.stderr
    copy = snapshot(dest)
    assert copy["total"] == 5
    assert set(copy["raw"]) == {other, *original["raw"]}
    assert all(copy["raw"][uid] == raw for uid, raw in original["raw"].items())


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--from", "{tmp}/nothing.db", "--to", "{tmp}/x.db"], 66, "no such database file"),
        (["--from", "{src}", "--to", "{src}"], 64, "name the same store"),
        (["--from", "{src}", "--to", "{tmp}/no/such/dir/x.db"], 73, "does not exist: create"),
        (["--from", ":memory:", "--to", "{tmp}/x.db"], 64, "':memory:' is no store"),
        (["--to", "{tmp}/x.db"], 2, "the following arguments are required: --from"),
    ],
)
def test_bad_stores_get_an_error_that_says_how_to_fix_it(
    source: tuple[str, Any], tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    db, _ = source
    proc = migrate(*(a.format(tmp=tmp_path, src=db) for a in args))
    assert proc.returncode == code, proc.stderr
    assert says in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_file_that_is_no_database_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not SQLite\n" * 100)
    proc = migrate("--from", str(junk), "--to", str(tmp_path / "x.db"))
    assert proc.returncode == 66, proc.stderr
    assert f"cannot open the source {junk}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sqlite_to_postgresql_and_back_keeps_everything(
    source: tuple[str, Any], pg_url: str, tmp_path: Path
) -> None:
    db, original = source
    proc = migrate("--from", db, "--to", pg_url)
    assert proc.returncode == 0, proc.stderr
    assert "copied 4 messages and 3 sessions" in proc.stderr
    assert APP_PASSWORD not in proc.stderr  # the URL is shown without its password
    assert_same(snapshot(pg_url), original)
    back = str(tmp_path / "back.db")
    proc = migrate("--from", pg_url, "--to", back)
    assert proc.returncode == 0, proc.stderr
    assert_same(snapshot(back), original)
    # PostgreSQL holding messages is refused as a destination as SQLite is.
    proc = migrate("--from", back, "--to", pg_url)
    assert proc.returncode == 65 and "already holds 4 messages" in proc.stderr


def test_a_postgresql_destination_that_refuses_the_login_is_a_clear_error(
    source: tuple[str, Any], pg_url: str
) -> None:
    db, _ = source
    wrong = pg_url.replace(f":{APP_PASSWORD}@", ":not-the-password@")
    proc = migrate("--from", db, "--to", wrong)
    assert proc.returncode == 73, proc.stderr
    assert "cannot open the destination postgresql://mailpit:***@" in proc.stderr
    assert "not-the-password" not in proc.stderr and "Traceback" not in proc.stderr


def test_progress_is_a_bar_on_a_terminal(source: tuple[str, Any], tmp_path: Path) -> None:
    db, _ = source
    main, tty = pty.openpty()
    try:
        proc = subprocess.run(
            [*MAILPIT, "migrate", "--from", db, "--to", str(tmp_path / "copy.db")],
            stderr=tty,
            stdout=subprocess.DEVNULL,
            timeout=300,
        )
        os.close(tty)
        seen = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal's other side closed: all was read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(main)
    assert proc.returncode == 0
    assert b"migrate: [########################] 100% 4/4 4 messages" in seen
    assert b"copied 4 messages and 3 sessions" in seen


@pytest.mark.parametrize("side", ["--from", "--to"])
def test_a_database_of_mailpit_itself_is_refused_untouched_with_the_way_to_import_it(
    source: tuple[str, Any], tmp_path: Path, side: str
) -> None:
    # Mailpit's own schema (its storage/schemas/1.0.0.sql): what opening it as a store would
    # add tables to.
    mailpit_db = tmp_path / "mailpit.db"
    conn = sqlite3.connect(mailpit_db)
    conn.executescript(
        "CREATE TABLE mailbox (Sort INTEGER PRIMARY KEY AUTOINCREMENT, ID TEXT NOT NULL, "
        "Data BLOB, Search TEXT, Read INTEGER);"
        "CREATE TABLE mailbox_data (ID TEXT KEY NOT NULL, Email BLOB);"
    )
    conn.close()
    before = mailpit_db.read_bytes()
    db, _ = source
    other = str(tmp_path / "x.db") if side == "--from" else db
    args = [side, str(mailpit_db), "--to" if side == "--from" else "--from", other]
    proc = migrate(*args)
    assert proc.returncode == 65, proc.stderr
    assert f"{side} {mailpit_db} is a database of Mailpit itself" in proc.stderr
    assert "mailpit-py dump --url" in proc.stderr and "mailpit-py ingest" in proc.stderr
    assert mailpit_db.read_bytes() == before


def test_every_field_of_a_stored_message_is_carried_or_rebuilt() -> None:
    from mailpit_py.commands.migrate import FROM_SOURCE, REBUILT
    from mailpit_py.store.records import MessageRecord

    assert sorted(FROM_SOURCE + REBUILT) == sorted(MessageRecord._fields)


def test_a_message_the_destination_refuses_is_named_and_the_rest_are_copied(
    source: tuple[str, Any], tmp_path: Path
) -> None:
    db, original = source
    dest = tmp_path / "picky.db"
    with make_server(database=str(dest)):
        pass  # the schema, no messages
    conn = sqlite3.connect(dest)  # a real refusal by the destination database itself
    conn.execute(
        "CREATE TRIGGER picky BEFORE INSERT ON messages WHEN NEW.subject = 'bin' "
        "BEGIN SELECT RAISE(ABORT, 'no binaries here'); END"
    )
    conn.commit()
    conn.close()
    proc = migrate("--from", str(db), "--to", str(dest))
    assert proc.returncode == 70, proc.stderr
    (refused,) = [m["ID"] for m in original["summaries"] if m["Subject"] == "bin"]
    assert f"message {refused} was not copied: the destination refused it (" in proc.stderr
    assert "no binaries here" in proc.stderr
    assert "copied 3 messages and 3 sessions" in proc.stderr
    assert "run again with --append" in proc.stderr and "Traceback" not in proc.stderr
    conn = sqlite3.connect(dest)
    conn.execute("DROP TRIGGER picky")
    conn.commit()
    conn.close()
    assert migrate("--from", str(db), "--to", str(dest), "--append").returncode == 0
    copy = snapshot(str(dest))
    # Copied last, it is listed first (the list goes by arrival in the store): all else equal.
    assert copy["raw"] == original["raw"] and copy["views"] == original["views"]
    by_id = {m["ID"]: m for m in copy["summaries"]}
    assert by_id == {m["ID"]: m for m in original["summaries"]}


def test_a_postgresql_server_that_is_down_is_a_clear_error_on_either_side(
    source: tuple[str, Any], pg_url: str, pg_server: PgServer, tmp_path: Path
) -> None:
    db, _ = source
    with pg_server.down():
        to_pg = migrate("--from", db, "--to", pg_url)
        from_pg = migrate("--from", pg_url, "--to", str(tmp_path / "x.db"))
    assert to_pg.returncode == 73, to_pg.stderr
    assert "cannot open the destination postgresql://mailpit:***@127.0.0.1:" in to_pg.stderr
    assert from_pg.returncode == 66, from_pg.stderr
    assert "cannot open the source postgresql://mailpit:***@127.0.0.1:" in from_pg.stderr
    for proc in (to_pg, from_pg):
        assert "Traceback" not in proc.stderr and APP_PASSWORD not in proc.stderr


def test_postgresql_stopping_mid_copy_stops_it_clearly_and_append_finishes_it(
    pg_url: str, pg_server: PgServer, tmp_path: Path
) -> None:
    db = str(tmp_path / "many.db")
    mb = Mailbox(Config(database=db, max_messages=0))
    envelope = Envelope("app@example.com", ("user@example.org",))
    pending = [
        mb.deliver(envelope, b"Subject: number %d\r\n\r\n%s\r\n" % (n, b"words " * 200))
        for n in range(2000)
    ]
    for fut in pending:
        fut.result()
    mb.close()
    name = pg_url.rsplit("/", 1)[1]
    proc = subprocess.Popen(
        [*MAILPIT, "migrate", "--from", db, "--to", pg_url],
        stderr=subprocess.PIPE,
        text=True,
    )

    def copied() -> int:
        try:
            return int(pg_server.sql("SELECT count(*) FROM messages", db=name) or 0)
        except PgServerError:
            return 0  # the schema is not made yet

    wait_until(copied, timeout=120, what="the first messages in PostgreSQL")
    pg_server.stop("immediate")  # as a crash would
    _, stderr = proc.communicate(timeout=120)
    pg_server.start()
    assert proc.returncode == 70, stderr
    assert "copying stopped after" in stderr and "--append" in stderr
    assert "Traceback" not in stderr and APP_PASSWORD not in stderr
    done = copied()
    assert 0 < done < 2000  # what committed stays
    proc2 = migrate("--from", db, "--to", pg_url, "--append")
    assert proc2.returncode == 0, proc2.stderr
    assert f"skipped: {done} messages" in proc2.stderr
    assert copied() == 2000
