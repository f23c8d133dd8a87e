"""`mailpit-py dump` and `ingest` with mailboxes: dump writes the default mailbox's messages as
Mailpit does (DIR/ID.eml) and each other mailbox's into DIR/NAME/, or one mailbox with
--mailbox; ingest --mailbox stores into that mailbox. Real servers, real SMTP, real files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_migrate_mailboxes import ROUTES, api

from helpers import make_server, send_raw
from mailpit_py.server import Server

MAILPIT = [sys.executable, "-m", "mailpit_py"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MAILPIT, *args], capture_output=True, text=True, timeout=300)


def raw_by_box(db: str) -> dict[str, dict[str, bytes]]:
    """Each mailbox's messages (ID -> raw bytes), read through a server's API on `db`."""
    with make_server(database=db, max_messages=0) as mp:
        out: dict[str, dict[str, bytes]] = {}
        for box in api(mp, "/api/v1/mailboxes")["Mailboxes"]:
            prefix = f"/mailbox/{box['Name']}/api/v1"
            found = api(mp, f"{prefix}/messages?limit=0")["messages"]
            out[box["Name"]] = {m["ID"]: api(mp, f"{prefix}/message/{m['ID']}/raw") for m in found}
        return out


def eml(folder: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in folder.glob("*.eml")}


def fill(mp: Server) -> None:
    """Mail routed over SMTP into default, shop (two) and blog, and a mailbox left empty."""
    send_raw(mp, b"Subject: alpha default\r\n\r\nhello\r\n")
    send_raw(mp, b"Subject: alpha shop\r\n\r\norder\r\n", rcpt="orders@shop.test")
    send_raw(mp, b"Subject: beta shop\r\n\r\norder\r\n", rcpt="orders@shop.test")
    send_raw(mp, b"Subject: beta blog\r\n\r\npost\r\n", rcpt="author@blog.test")
    api(mp, "/api/v1/mailboxes", "POST", {"Name": "empty"})


@pytest.fixture
def routed(tmp_path: Path) -> tuple[str, dict[str, dict[str, bytes]]]:
    """A database with mail routed over SMTP into default, shop and blog, and an empty mailbox."""
    db = str(tmp_path / "mail.db")
    with make_server(database=db, max_messages=0, mailbox_routes=ROUTES) as mp:
        fill(mp)
    return db, raw_by_box(db)


def check_layout(out: Path, boxes: dict[str, dict[str, bytes]]) -> None:
    assert eml(out) == boxes["default"]  # Mailpit's layout for the default mailbox
    assert eml(out / "shop") == boxes["shop"] and eml(out / "blog") == boxes["blog"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["blog", "shop"]  # not empty's


def test_dump_of_a_database_puts_each_other_mailbox_in_its_folder(
    routed: tuple[str, dict[str, dict[str, bytes]]], tmp_path: Path
) -> None:
    db, boxes = routed
    proc = run("dump", "--database", db, str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    check_layout(tmp_path / "out", boxes)
    assert "4 messages written" in proc.stdout
    assert "blog/, shop/" in proc.stdout  # says where the other mailboxes went


def test_dump_from_the_api_puts_each_other_mailbox_in_its_folder(tmp_path: Path) -> None:
    db = str(tmp_path / "mail.db")
    with make_server(database=db, max_messages=0, mailbox_routes=ROUTES) as mp:
        fill(mp)
        proc = run("dump", "--url", mp.http_url, str(tmp_path / "out"))
        assert proc.returncode == 0, proc.stderr
        one = run("dump", "--url", mp.http_url, "--mailbox", "shop", str(tmp_path / "shop"))
        assert one.returncode == 0, one.stderr
        query = run("dump", "--url", mp.http_url, "--query", "subject:alpha", str(tmp_path / "q"))
        assert query.returncode == 0, query.stderr
        missing = run("dump", "--url", mp.http_url, "--mailbox", "nope", str(tmp_path / "x"))
    boxes = raw_by_box(db)
    check_layout(tmp_path / "out", boxes)
    assert eml(tmp_path / "shop") == boxes["shop"]
    assert sorted(p.name for p in (tmp_path / "shop").iterdir()) == sorted(
        f"{i}.eml" for i in boxes["shop"]
    )
    # The query runs in each mailbox.
    assert len(eml(tmp_path / "q")) == 1 and len(eml(tmp_path / "q" / "shop")) == 1
    assert not (tmp_path / "q" / "blog").exists()
    assert missing.returncode == 66
    assert "no mailbox named 'nope'" in missing.stderr and "blog, default, empty, shop" in (
        missing.stderr
    )


def test_dump_mailbox_writes_that_mailbox_alone_and_an_unknown_one_is_named(
    routed: tuple[str, dict[str, dict[str, bytes]]], tmp_path: Path
) -> None:
    db, boxes = routed
    proc = run("dump", "--database", db, "--mailbox", "shop", str(tmp_path / "shop"))
    assert proc.returncode == 0, proc.stderr
    assert eml(tmp_path / "shop") == boxes["shop"]
    assert not [p for p in (tmp_path / "shop").iterdir() if p.is_dir()]
    proc = run("dump", "--database", db, "--mailbox", "empty", str(tmp_path / "empty"))
    assert proc.returncode == 0 and "0 messages" in proc.stdout
    proc = run("dump", "--database", db, "--mailbox", "nope", str(tmp_path / "x"))
    assert proc.returncode == 66
    assert "no mailbox named 'nope'" in proc.stderr and "blog, default, empty, shop" in proc.stderr


def test_ingest_mailbox_stores_into_that_mailbox_made_when_missing(tmp_path: Path) -> None:
    files = tmp_path / "in"
    files.mkdir()
    for n in range(3):
        (files / f"{n}.eml").write_bytes(b"To: a@example.org\r\nSubject: n%d\r\n\r\nx\r\n" % n)
    db = str(tmp_path / "mail.db")
    proc = run("ingest", "--database", db, "--mailbox", "imported", str(files))
    assert proc.returncode == 0, proc.stderr
    assert "3 imported into mailbox imported of database" in proc.stdout
    proc = run("ingest", "--database", db, str(files / "0.eml"))  # without: default, as before
    assert proc.returncode == 0, proc.stderr
    boxes = raw_by_box(db)
    assert sorted(boxes) == ["default", "imported"]
    assert sorted(boxes["imported"].values()) == sorted(eml(files).values())
    assert list(boxes["default"].values()) == [(files / "0.eml").read_bytes()]


def test_ingest_mailbox_errors_say_how_to_fix_them(tmp_path: Path) -> None:
    (tmp_path / "a.eml").write_bytes(b"Subject: x\r\n\r\nx\r\n")
    db = str(tmp_path / "mail.db")
    proc = run("ingest", "--database", db, "--mailbox", "Shop Team", str(tmp_path / "a.eml"))
    assert proc.returncode == 64
    assert "--mailbox shop_team" in proc.stderr and "Traceback" not in proc.stderr
    assert not Path(db).exists()  # nothing was opened, nor made
    proc = run("ingest", "--smtp-addr", "127.0.0.1:1", "--mailbox", "shop", str(tmp_path))
    assert proc.returncode == 64
    assert "--database" in proc.stderr and "--mailbox-route" in proc.stderr


def test_a_multi_mailbox_dump_goes_back_mailbox_by_mailbox(
    routed: tuple[str, dict[str, dict[str, bytes]]], tmp_path: Path
) -> None:
    db, boxes = routed
    out = tmp_path / "out"
    assert run("dump", "--database", db, str(out)).returncode == 0
    copy = str(tmp_path / "copy.db")
    defaults = [str(p) for p in out.glob("*.eml")]
    assert run("ingest", "--database", copy, *defaults).returncode == 0
    for folder in (p for p in out.iterdir() if p.is_dir()):
        proc = run("ingest", "--database", copy, "--mailbox", folder.name, str(folder))
        assert proc.returncode == 0, proc.stderr
    again = raw_by_box(copy)  # new IDs: compare the bytes of each mailbox
    assert {name: sorted(raws.values()) for name, raws in again.items()} == {
        name: sorted(raws.values()) for name, raws in boxes.items() if raws
    }


def test_dump_mailbox_from_an_instance_without_mailboxes_says_so(tmp_path: Path) -> None:
    # Addressed without its --webroot, the instance answers no mailbox list, as Mailpit does.
    with make_server(webroot="/mail/") as mp:
        bare = mp.http_url.rstrip("/").removesuffix("/mail")
        proc = run("dump", "--url", bare, "--mailbox", "shop", str(tmp_path / "out"))
    assert proc.returncode == 66, proc.stderr
    assert "this instance has no mailboxes" in proc.stderr and "--webroot" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_mailbox_named_dot_dot_is_never_a_folder_outside_dir(tmp_path: Path) -> None:
    from mailpit_py.config.settings import Config
    from mailpit_py.mailbox.facade import Mailbox
    from mailpit_py.models import Envelope

    db = str(tmp_path / "mail.db")
    mb = Mailbox(Config(database=db, max_messages=0))
    try:
        envelope = Envelope("a@example.com", ("b@example.org",))
        mb.deliver(envelope, b"Subject: up\r\n\r\nx\r\n", boxes={"dd": ["b@example.org"]}).result()
        with pytest.raises(ValueError, match="not a mailbox name"):
            mb.deliver(envelope, b"Subject: up\r\n\r\n", boxes={"..": ["b@example.org"]}).result()
    finally:
        mb.close()
    # No name of dots alone is made any more; a database from before may still hold one.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE mailboxes SET name = '..' WHERE name = 'dd'")
        conn.execute("UPDATE messages SET mailbox = '..' WHERE mailbox = 'dd'")
    out = tmp_path / "deep" / "out"
    proc = run("dump", "--database", db, str(out))
    assert proc.returncode == 64
    assert "dump it alone with --mailbox .." in proc.stderr
    assert not list((tmp_path / "deep").glob("*.eml"))  # nothing written beside DIR
    proc = run("dump", "--database", db, "--mailbox", "..", str(out))
    assert proc.returncode == 0, proc.stderr
    assert [p.read_bytes() for p in out.glob("*.eml")] == [b"Subject: up\r\n\r\nx\r\n"]
