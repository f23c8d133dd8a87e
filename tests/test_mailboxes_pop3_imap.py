"""POP3 and IMAP per mailbox, with real clients (poplib, imaplib, IMAPClient): a login reads
its own mailbox, sees the others it may as IMAP folders, and never another's messages."""

from __future__ import annotations

import imaplib
import poplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import make_server
from mailpit_py.models import Envelope
from mailpit_py.server import Server

LOGINS = "ann:secret bob:secret root:secret carol:secret"
# ann may see proj-a, bob proj-b, root (not listed) every mailbox; rcpt routes fill them.
CONFIG = """\
mailboxes:
  - name: proj-a
    routes: [{rcpt: "*@a.test"}]
  - name: proj-b
    routes: [{rcpt: "*@b.test"}]
  - name: carol
    routes: [{rcpt: "*@c.test"}]
access:
  ann: [proj-a]
  bob: [proj-b]
"""


def message(subject: str) -> bytes:
    head = f"From: Sender <sender@example.com>\r\nTo: someone@example.org\r\nSubject: {subject}\r\n"
    return f"{head}Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\nBody of {subject}\r\n".encode()


def make(tmp_path: Path, **extra: Any) -> Server:
    """A server with POP3, IMAP and CONFIG's mailboxes (started with `with`)."""
    path = tmp_path / "mailboxes.yaml"
    path.write_text(CONFIG)
    settings = {"pop3_addr": "127.0.0.1:0", "pop3_auth": LOGINS, "imap_addr": "127.0.0.1:0"}
    return make_server(**settings, mailbox_config=str(path), **extra)


@pytest.fixture
def mp(tmp_path: Path) -> Iterator[Server]:
    with make(tmp_path) as server:
        yield server


@pytest.fixture
def auto(tmp_path: Path) -> Iterator[Server]:
    """As `mp`, with --mailbox-auto."""
    with make(tmp_path, mailbox_auto=True) as server:
        yield server


ROUTES = {"a.test": "proj-a", "b.test": "proj-b", "c.test": "carol"}


def send_raw(mp: Server, raw: bytes, rcpt: str) -> str:
    """Store a message in the mailbox CONFIG's routes give its recipient's domain, through
    the mailbox's delivery with that routing's answer; its ID."""
    box = ROUTES.get(rcpt.rpartition("@")[2], "default")
    envelope = Envelope("sender@example.com", (rcpt,))
    return mp.mailbox.deliver(envelope, raw, boxes={box: [rcpt]}).result(10)


def fill(mp: Server) -> dict[str, str]:
    """One message in each mailbox, routed by recipient: subject -> message ID."""
    return {
        "for a": send_raw(mp, message("for a"), "dev@a.test"),
        "for b": send_raw(mp, message("for b"), "dev@b.test"),
        "for default": send_raw(mp, message("for default"), "dev@elsewhere.test"),
    }


def imap_uid(mp: Server, msg_id: str) -> int:
    row = mp.mailbox.store.summary(msg_id)
    assert row is not None
    return int(row["id"])


def subjects_of(mp: Server, box: str) -> list[str]:
    return sorted(m["Subject"] for m in mp.mailbox.view(box).list_messages(0, 100))


def imap_login(mp: Server, user: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4(*mp.imap_address, timeout=10)
    client.login(user, "secret")
    return client


def folders(client: imaplib.IMAP4) -> list[str]:
    typ, data = client.list()
    assert typ == "OK", data
    names = []
    for line in data:
        assert isinstance(line, bytes)
        names.append(line.decode().rsplit(' "/" ', 1)[1].strip('"'))
    return names


def pop3_subjects(mp: Server, user: str) -> list[str]:
    client = poplib.POP3(*mp.pop3_address, timeout=10)
    client.user(user)
    client.pass_("secret")
    count, _ = client.stat()
    found = []
    for n in range(1, count + 1):
        _, lines, _ = client.retr(n)
        found += [ln.decode()[9:] for ln in lines if ln.startswith(b"Subject: ")]
    client.quit()
    return sorted(found)


# -- POP3 -----------------------------------------------------------------------------------


def test_pop3_each_login_reads_only_its_own_mailbox(mp: Server) -> None:
    fill(mp)
    assert pop3_subjects(mp, "ann") == ["for a"]
    assert pop3_subjects(mp, "bob") == ["for b"]
    # not listed under access: every mailbox is allowed, and the maildrop is the default one
    assert pop3_subjects(mp, "root") == ["for default"]


def test_pop3_deletes_in_its_own_mailbox_only(mp: Server) -> None:
    fill(mp)
    client = poplib.POP3(*mp.pop3_address, timeout=10)
    client.user("ann")
    client.pass_("secret")
    assert client.stat()[0] == 1
    client.dele(1)
    client.quit()
    assert subjects_of(mp, "proj-a") == []
    assert subjects_of(mp, "proj-b") == ["for b"]
    assert subjects_of(mp, "default") == ["for default"]


def test_pop3_with_mailbox_auto_reads_the_mailbox_named_after_the_user(auto: Server) -> None:
    fill(auto)
    send_raw(auto, message("for carol"), "dev@c.test")
    assert pop3_subjects(auto, "carol") == ["for carol"]
    # a user whose own mailbox does not exist (and who may see every one) reads the default
    assert pop3_subjects(auto, "root") == ["for default"]
    # a restricted user keeps its one mailbox
    assert pop3_subjects(auto, "ann") == ["for a"]


def test_pop3_without_mailbox_auto_ignores_a_mailbox_named_after_the_user(mp: Server) -> None:
    send_raw(mp, message("for carol"), "dev@c.test")
    assert pop3_subjects(mp, "carol") == []
