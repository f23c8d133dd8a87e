"""POP3 and IMAP per mailbox, with real clients (poplib, imaplib, IMAPClient): a login reads
its own mailbox, sees the others it may as IMAP folders, and never another's messages."""

from __future__ import annotations

import imaplib
import poplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from helpers import make_server, send_raw, wait_until
from mailpit_py.mailaccess.access import primary_box
from mailpit_py.mailaccess.imap.folders import Folder, folder_space
from mailpit_py.server import Server

LOGINS = "ann:secret bob:secret root:secret carol:secret dave:secret"
# ann may see proj-a, bob proj-b, dave both, root (not listed) every mailbox; rcpt routes
# fill them.
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
  dave: [proj-b, proj-a]
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


def fill(mp: Server) -> dict[str, str]:
    """One message in each mailbox, routed over SMTP by recipient: subject -> message ID."""
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


def test_pop3_login_allowed_several_mailboxes_but_not_default_reads_the_first(mp: Server) -> None:
    fill(mp)
    assert pop3_subjects(mp, "dave") == ["for a"]


def test_the_own_mailbox_is_never_one_access_leaves_out() -> None:
    boxes = ["default", "proj-a", "carol"]
    assert primary_box("carol", boxes, None, auto=True) == "carol"
    assert primary_box("Carol", boxes, None, auto=True) == "carol"  # cleaned as a name
    assert primary_box("carol", boxes, None, auto=False) == "default"
    assert primary_box("eve", boxes, None, auto=True) == "default"  # no mailbox of its own
    assert primary_box("carol", boxes, {"proj-a"}, auto=True) == "proj-a"  # not allowed its own
    assert primary_box("eve", boxes, {"eve", "proj-a"}, auto=True) == "eve"  # allowed, not made
    assert primary_box("eve", boxes, {"proj-a", "default"}, auto=False) == "default"
    assert primary_box("eve", boxes, {"proj-b", "proj-a"}, auto=False) == "proj-a"
    assert primary_box("eve", boxes, set(), auto=True) is None


# -- IMAP: who sees what -------------------------------------------------------------------


def test_imap_restricted_logins_see_only_their_own_mailbox(mp: Server) -> None:
    ids = fill(mp)
    ann = imap_login(mp, "ann")
    assert folders(ann) == ["INBOX"]
    typ, data = ann.select("INBOX")
    assert (typ, data) == ("OK", [b"1"])
    for name in ("proj-b", "default", '"proj-b/x"'):
        for readonly in (False, True):  # SELECT and EXAMINE
            typ, data = ann.select(name, readonly)
            assert typ == "NO", (name, data)
            assert b"NONEXISTENT" in data[0]
    ann.select("INBOX")
    theirs = imap_uid(mp, ids["for b"])
    assert ann.uid("SEARCH", f"UID {theirs}") == ("OK", [b""])
    typ, data = ann.uid("FETCH", str(theirs), "(BODY.PEEK[])")
    assert typ == "OK" and data == [None], data
    typ, data = ann.status("proj-b", "(MESSAGES)")
    assert typ == "NO", data
    mine = imap_uid(mp, ids["for a"])
    assert ann.uid("SEARCH", "ALL") == ("OK", [str(mine).encode()])
    typ, data = ann.uid("FETCH", str(mine), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and b"Subject: for a" in data[0][1], data
    ann.logout()
    bob = imap_login(mp, "bob")
    assert folders(bob) == ["INBOX"]
    bob.select("INBOX")
    typ, data = bob.uid("FETCH", str(mine), "(BODY.PEEK[])")
    assert typ == "OK" and data == [None], data
    typ, data = bob.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK" and len(data) == 2 and b"Subject: for b" in data[0][1], data
    bob.logout()


def test_imap_restricted_login_with_imapclient_finds_nothing_of_another_mailbox(
    mp: Server,
) -> None:
    ids = fill(mp)
    theirs = imap_uid(mp, ids["for a"])
    client = IMAPClient("127.0.0.1", port=mp.imap_address[1], ssl=False, timeout=10)
    client.login("bob", "secret")
    assert [name for _, _, name in client.list_folders()] == ["INBOX"]
    with pytest.raises(IMAPClient.Error, match="NONEXISTENT"):
        client.select_folder("proj-a")
    with pytest.raises(IMAPClient.Error, match="NONEXISTENT"):
        client.folder_status("proj-a", ["MESSAGES"])
    assert client.select_folder("INBOX")[b"EXISTS"] == 1
    assert client.search(["UID", str(theirs)]) == []
    assert client.fetch([theirs], ["BODY.PEEK[]"]) == {}
    assert client.search(["SUBJECT", "for a"]) == []
    assert client.search(["ALL"]) == [imap_uid(mp, ids["for b"])]
    client.logout()


def test_imap_flags_lists_no_keyword_of_another_mailbox(mp: Server) -> None:
    fill(mp)
    bob = imap_login(mp, "bob")
    bob.select("INBOX")
    assert bob.store("1", "+FLAGS", "($ProjectBSecret)")[0] == "OK"
    bob.logout()
    ann = imap_login(mp, "ann")
    ann.select("INBOX")
    assert b"$ProjectBSecret" not in ann.untagged_responses["FLAGS"][0]
    assert ann.uid("SEARCH", "KEYWORD", "$ProjectBSecret") == ("OK", [b""])
    ann.logout()
    bob = imap_login(mp, "bob")
    bob.select("INBOX")
    assert b"$ProjectBSecret" in bob.untagged_responses["FLAGS"][0]
    bob.logout()


def test_imap_unrestricted_login_sees_every_mailbox_as_folders(mp: Server) -> None:
    ids = fill(mp)
    tagged = send_raw(mp, message("tagged in a"), "dev+urgent@a.test")
    root = imap_login(mp, "root")
    assert folders(root) == ["INBOX", "carol", "proj-a", "proj-a/urgent", "proj-b"]
    typ, data = root.list('""', "%")  # % stops at the hierarchy delimiter
    assert typ == "OK"
    assert [d for d in data if isinstance(d, bytes) and b"proj-a" in d] == [
        b'(\\HasChildren) "/" "proj-a"'
    ]
    assert root.select("INBOX") == ("OK", [b"1"])
    assert root.select("proj-a") == ("OK", [b"2"])
    typ, data = root.uid("SEARCH", "ALL")
    assert data == [f"{imap_uid(mp, ids['for a'])} {imap_uid(mp, tagged)}".encode()]
    assert root.select('"proj-a/urgent"') == ("OK", [b"1"])
    assert root.uid("SEARCH", "ALL") == ("OK", [str(imap_uid(mp, tagged)).encode()])
    typ, data = root.status("proj-b", "(MESSAGES UNSEEN)")
    assert typ == "OK" and data == [b'"proj-b" (MESSAGES 1 UNSEEN 1)'], data
    typ, data = root.status("INBOX", "(MESSAGES)")
    assert data == [b'"INBOX" (MESSAGES 1)'], data
    root.logout()


def test_imap_login_allowed_several_mailboxes_sees_the_others_as_folders(mp: Server) -> None:
    fill(mp)
    dave = imap_login(mp, "dave")
    assert folders(dave) == ["INBOX", "proj-b"]
    assert dave.select("INBOX") == ("OK", [b"1"])
    assert dave.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1].startswith(
        b"Subject: for a"
    )
    assert dave.select("proj-b") == ("OK", [b"1"])
    assert dave.select("default")[0] == "NO"
    dave.logout()


def test_imap_with_mailbox_auto_inbox_is_the_users_mailbox(auto: Server) -> None:
    fill(auto)
    send_raw(auto, message("for carol"), "dev@c.test")
    carol = imap_login(auto, "carol")
    assert carol.select("INBOX") == ("OK", [b"1"])
    typ, data = carol.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"Subject: for carol" in data[0][1]
    # carol may see every mailbox: the default one is a folder now, not INBOX
    assert "default" in folders(carol) and "carol" not in folders(carol)
    assert carol.select("default") == ("OK", [b"1"])
    carol.logout()


# -- IMAP: changes in a mailbox folder -------------------------------------------------------


def test_imap_store_in_a_mailbox_folder_changes_that_message(mp: Server) -> None:
    ids = fill(mp)
    root = imap_login(mp, "root")
    root.select("proj-b")
    assert root.store("1", "+FLAGS", "(\\Seen $Done)")[0] == "OK"
    wait_until(lambda: mp.mailbox.view("proj-b").summary(ids["for b"])["Read"], what="read")
    assert not mp.mailbox.view("default").summary(ids["for default"])["Read"]
    typ, data = root.fetch("1", "(FLAGS)")
    assert data == [b"1 (FLAGS (\\Seen $Done))"], data
    root.logout()
    bob = imap_login(mp, "bob")
    bob.select("INBOX")
    assert bob.fetch("1", "(FLAGS)")[1] == [b"1 (FLAGS (\\Seen $Done))"]
    bob.logout()


def test_imap_search_and_expunge_in_a_mailbox_folder_stay_in_that_mailbox(mp: Server) -> None:
    ids = fill(mp)
    root = imap_login(mp, "root")
    root.select("proj-a")
    mine = str(imap_uid(mp, ids["for a"])).encode()
    assert root.uid("SEARCH", "SUBJECT", '"for"') == ("OK", [mine])
    assert root.search(None, "BODY", '"Body of for b"') == ("OK", [b""])
    assert root.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert root.expunge() == ("OK", [b"1"])
    assert subjects_of(mp, "proj-a") == []
    assert subjects_of(mp, "proj-b") == ["for b"]
    assert subjects_of(mp, "default") == ["for default"]
    root.logout()


def test_imap_copy_into_another_mailbox_stores_a_new_message_there(mp: Server) -> None:
    ids = fill(mp)
    original = imap_uid(mp, ids["for default"])
    root = imap_login(mp, "root")
    root.select("INBOX")
    assert root.uid("STORE", str(original), "+FLAGS", "(\\Flagged)")[0] == "OK"
    assert root.uid("COPY", str(original), "proj-a")[0] == "OK"
    typ, data = root.response("COPYUID")
    _, old, new = data[0].split()
    assert int(old) == original
    new_uid = int(new)
    assert new_uid > imap_uid(mp, ids["for b"])  # a new message, with a UID of its own
    assert subjects_of(mp, "proj-a") == ["for a", "for default"]
    assert subjects_of(mp, "default") == ["for default"]  # the original stays
    root.logout()
    client = IMAPClient("127.0.0.1", port=mp.imap_address[1], ssl=False, timeout=10)
    client.login("root", "secret")
    client.select_folder("proj-a")
    assert client.search() == [imap_uid(mp, ids["for a"]), new_uid]
    fetched = client.fetch([new_uid], ["FLAGS", "BODY.PEEK[]"])[new_uid]
    assert b"\\Flagged" in fetched[b"FLAGS"]
    assert fetched[b"BODY[]"] == mp.mailbox.raw(ids["for default"])
    # into a tag folder of the other mailbox: the new message is in that folder only
    client.select_folder("INBOX")
    client.copy([original], "proj-b/later")
    assert "proj-b/later" in [f[2] for f in client.list_folders()]
    assert client.select_folder("proj-b/later")[b"EXISTS"] == 1
    assert client.select_folder("proj-b")[b"EXISTS"] == 1
    client.logout()


def test_imap_move_between_mailboxes(mp: Server) -> None:
    ids = fill(mp)
    client = IMAPClient("127.0.0.1", port=mp.imap_address[1], ssl=False, timeout=10)
    client.login("root", "secret")
    client.select_folder("proj-a")
    client.move([imap_uid(mp, ids["for a"])], "proj-b")
    assert client.search() == []
    assert subjects_of(mp, "proj-a") == []
    assert subjects_of(mp, "proj-b") == ["for a", "for b"]
    client.logout()


def test_imap_restricted_login_cannot_copy_into_another_mailbox(mp: Server) -> None:
    fill(mp)
    ann = imap_login(mp, "ann")
    assert ann.select("INBOX") == ("OK", [b"1"])
    # not a mailbox ann sees: the name is a tag folder of her own mailbox, nothing more
    assert ann.copy("1", "proj-b")[0] == "OK"
    assert subjects_of(mp, "proj-b") == ["for b"]
    assert mp.mailbox.view("proj-a").list_messages(0, 10)[0]["Tags"] == ["proj-b"]
    ann.logout()


def test_imap_append_to_a_mailbox_folder(mp: Server) -> None:
    root = imap_login(mp, "root")
    typ, data = root.append("proj-b", "(\\Seen)", None, message("appended"))
    assert typ == "OK", data
    assert subjects_of(mp, "proj-b") == ["appended"]
    assert subjects_of(mp, "default") == []
    root.logout()


def test_imap_idle_in_a_mailbox_folder_hears_only_that_mailbox(mp: Server) -> None:
    fill(mp)
    root = imap_login(mp, "root")
    assert root.select("proj-b") == ("OK", [b"1"])
    tag = root._new_tag()
    root.send(tag + b" IDLE\r\n")
    assert root.readline().startswith(b"+")
    imap = mp.imap
    assert imap is not None
    # fill's three new messages heard first, one in each mailbox
    boxes = ("proj-a", "proj-b", "default")
    wait_until(lambda: all(b in imap.generations for b in boxes), what="fill's mail heard")
    heard, mark = imap.generation, imap._generation("proj-b")
    send_raw(mp, message("more for a"), "dev@a.test")  # another mailbox: nothing to say
    wait_until(lambda: imap.generation > heard, what="the IMAP server hearing of it")
    assert imap._generation("proj-b") == mark  # so no proj-b session looks again
    send_raw(mp, message("more for b"), "dev@b.test")
    line = root.readline()
    assert line == b"* 2 EXISTS\r\n", line  # proj-b's second message, not a third
    root.send(b"DONE\r\n")
    assert root.readline().startswith(tag + b" OK")
    root.logout()


def test_imap_session_hears_its_mailbox_folder_emptied_renamed_or_deleted(mp: Server) -> None:
    fill(mp)
    send_raw(mp, message("more for b"), "dev@b.test")
    root = imap_login(mp, "root")
    assert root.select("proj-b", readonly=True) == ("OK", [b"2"])
    assert mp.mailbox is not None
    mp.mailbox.rename_box("proj-b", "proj-c")  # as the web UI does
    wait_until(lambda: root.noop() and root.response("EXPUNGE")[1] == [b"2", b"1"], what="gone")
    assert "proj-c" in folders(root) and "proj-b" not in folders(root)
    assert root.select("proj-c") == ("OK", [b"2"])
    mp.mailbox.delete_box("proj-c")
    wait_until(lambda: root.noop() and root.response("EXPUNGE")[1] == [b"2", b"1"], what="gone")
    assert root.select("proj-c")[0] == "NO"
    root.logout()


def test_imap_mailbox_folders_cannot_be_deleted_or_renamed(mp: Server) -> None:
    fill(mp)
    root = imap_login(mp, "root")
    typ, data = root.delete("proj-a")
    assert typ == "NO" and b"web UI or the API" in data[0], data
    typ, data = root.rename("proj-a", "proj-z")
    assert typ == "NO" and b"web UI or the API" in data[0], data
    assert root.create("proj-a/new")[0] == "OK"
    assert root.rename("proj-a/new", "proj-a/newer")[0] == "OK"
    typ, data = root.rename("proj-a/newer", "proj-b/newer")
    assert typ == "NO" and b"stays in its mailbox" in data[0], data
    assert "proj-a/newer" in folders(root)
    root.logout()


def test_pop3_and_imap_keep_mailboxes_apart_on_each_store_backend(
    tmp_path: Path, database: str
) -> None:
    with make(tmp_path, database=database) as server:
        ids = fill(server)
        assert pop3_subjects(server, "ann") == ["for a"]
        theirs = imap_uid(server, ids["for b"])
        ann = imap_login(server, "ann")
        assert folders(ann) == ["INBOX"]
        assert ann.select("INBOX") == ("OK", [b"1"])
        assert ann.uid("FETCH", str(theirs), "(BODY.PEEK[])") == ("OK", [None])
        ann.logout()
        root = imap_login(server, "root")
        root.select("proj-b")
        assert root.uid("COPY", str(theirs), "proj-a")[0] == "OK"
        root.logout()
        assert subjects_of(server, "proj-a") == ["for a", "for b"]
        assert pop3_subjects(server, "ann") == ["for a", "for b"]
        assert pop3_subjects(server, "bob") == ["for b"]


def test_imap_folder_names_of_mailboxes_and_tags() -> None:
    space = folder_space("proj-a", ["default", "proj-a", "proj-b", "inbox"], None)
    assert space.parse("INBOX") == space.parse("inbox") == Folder("proj-a", "INBOX")
    assert space.parse("proj-b") == Folder("proj-b", "INBOX")
    assert space.parse("proj-b/urgent") == Folder("proj-b", "urgent")
    assert space.parse("proj-b/") is None and space.parse("proj-b/INBOX") is None
    assert space.parse("urgent") == Folder("proj-a", "urgent")  # the own mailbox's tag
    assert space.parse("proj-a") == Folder("proj-a", "proj-a")  # its own name is a tag name
    assert space.parse("nobody/x") == Folder("proj-a", "nobody/x")
    listing = space.listing({"proj-a": ["proj-b", "work"], "proj-b": ["urgent"]})
    assert listing == [
        ("INBOX", False),
        ("work", False),  # the tag proj-b is hidden by the mailbox proj-b
        ("default", False),
        ("proj-b", True),
        ("proj-b/urgent", False),
    ]
    for name, _ in listing:
        found = space.parse(name)
        assert found is not None and space.name(found) == name
    restricted = folder_space("proj-a", ["default", "proj-a", "proj-b"], {"proj-a"})
    assert restricted.parse("proj-b") == Folder("proj-a", "proj-b")  # a tag, not the mailbox
    assert restricted.listing({"proj-a": []}) == [("INBOX", False)]
