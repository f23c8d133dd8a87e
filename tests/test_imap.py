"""IMAP4rev1 (RFC 3501) and IDLE (RFC 2177) with real clients: imaplib, curl; TLS; misuse."""

from __future__ import annotations

import base64
import contextlib
import email
import imaplib
import re
import socket
import ssl
import subprocess
from collections.abc import Iterator
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    CORPORA,
    MESSAGES,
    corpus_dir,
    corpus_names,
    corpus_root,
    make_server,
    need_command,
    send_raw,
    wait_until,
)
from mailpit_py import events
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import Config
from mailpit_py.config.validate import validate
from mailpit_py.mailaccess.imap.syntax import decode_mailbox, encode_mailbox
from mailpit_py.mailbox.facade import MessageNotFound
from mailpit_py.server import Server

AUTH = "ann:secret"


@pytest.fixture
def imap_server() -> Iterator[Server]:
    with make_server(imap_addr="127.0.0.1:0", imap_auth=AUTH) as mp:
        yield mp


@pytest.fixture
def imap(imap_server: Server) -> Iterator[imaplib.IMAP4]:
    client = imaplib.IMAP4(*imap_server.imap_address, timeout=10)
    client.login("ann", "secret")
    yield client
    try:
        client.logout()
    except (imaplib.IMAP4.abort, OSError):
        pass


def message(subject: str, body: str = "Hello", sender: str = "Ann <ann@example.com>") -> bytes:
    head = f"From: {sender}\r\nTo: Bob <bob@example.org>\r\nSubject: {subject}\r\n"
    return f"{head}Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n".encode()


def selected(mp: Server) -> imaplib.IMAP4:
    """An imaplib client logged in as ann with INBOX selected."""
    client = imaplib.IMAP4(*mp.imap_address, timeout=10)
    client.login("ann", "secret")
    client.select()
    return client


def uids(mp: Server) -> list[int]:
    return [e.imap_uid for e in mp.mailbox.index()]


def fetch_literal(client: imaplib.IMAP4, uid: int, item: str) -> bytes:
    typ, data = client.uid("FETCH", str(uid), f"({item})")
    assert typ == "OK", data
    pieces = [d for d in data if isinstance(d, tuple)]
    assert len(pieces) == 1, data
    return pieces[0][1]


def test_imap_capability_login_and_select(imap_server: Server) -> None:
    send_raw(imap_server, message("one"))
    client = imaplib.IMAP4(*imap_server.imap_address, timeout=10)
    assert "IDLE" in client.capabilities and "AUTH=PLAIN" in client.capabilities
    assert "STARTTLS" not in client.capabilities  # no certificate configured
    client.login("ann", "secret")
    typ, data = client.select("INBOX")
    assert (typ, data) == ("OK", [b"1"])
    assert client.untagged_responses["UIDVALIDITY"] == [
        str(imap_server.mailbox.uid_validity()).encode()
    ]
    assert client.untagged_responses["UIDNEXT"] == [str(uids(imap_server)[0] + 1).encode()]
    assert client.untagged_responses["READ-WRITE"] == [b""]
    assert client.list() == ("OK", [b'(\\HasNoChildren) "/" "INBOX"'])
    assert client.select("inbox")[0] == "OK"  # INBOX is case-insensitive
    client.logout()


@pytest.mark.parametrize("which", CORPORA)
def test_imap_fetch_gives_every_corpus_message_byte_for_byte(
    imap_server: Server, imap: imaplib.IMAP4, which: str
) -> None:
    root = corpus_root(which)
    names = corpus_names(root)
    ids = [send_raw(imap_server, (root / name).read_bytes()) for name in names]
    imap.select("INBOX", readonly=True)
    by_id = {e.uid: e.imap_uid for e in imap_server.mailbox.index()}
    for msg_id in ids:
        # The stored bytes, but a bare LF sent as CRLF and a NUL as 0x80 (corpus messages have
        # both).
        stored = re.sub(rb"(?<!\r)\n", b"\r\n", imap_server.mailbox.raw(msg_id))
        stored = stored.replace(b"\x00", b"\x80")
        assert fetch_literal(imap, by_id[msg_id], "BODY.PEEK[]") == stored, msg_id
        typ, data = imap.uid("FETCH", str(by_id[msg_id]), "(RFC822.SIZE BODYSTRUCTURE ENVELOPE)")
        assert typ == "OK" and f"RFC822.SIZE {len(stored)} ".encode() in _flat(data), msg_id
    assert imap_server.mailbox.counts()[1] == len(ids)  # PEEK and EXAMINE mark nothing read


def _flat(data: list[object]) -> bytes:
    out = b""
    for item in data:
        if isinstance(item, tuple):
            out += item[0] + item[1]
        elif isinstance(item, bytes):
            out += item
    return out


def test_imap_sections_partials_and_structure(imap_server: Server, imap: imaplib.IMAP4) -> None:
    raw = (corpus_dir() / "mailpit/mime-attachment.eml").read_bytes()
    msg_id = send_raw(imap_server, raw)
    stored = imap_server.mailbox.raw(msg_id)
    imap.select("INBOX")
    uid = uids(imap_server)[0]
    parsed = email.message_from_bytes(stored, policy=compat32)
    header_end = stored.index(b"\r\n\r\n") + 4
    assert fetch_literal(imap, uid, "BODY.PEEK[HEADER]") == stored[:header_end]
    assert fetch_literal(imap, uid, "RFC822.HEADER") == stored[:header_end]
    assert fetch_literal(imap, uid, "BODY.PEEK[TEXT]") == stored[header_end:]
    assert fetch_literal(imap, uid, "BODY.PEEK[]<10.20>") == stored[10:30]
    assert fetch_literal(imap, uid, "BODY.PEEK[]<99999999.5>") == b""
    fields = fetch_literal(imap, uid, "BODY.PEEK[HEADER.FIELDS (Subject FROM)]")
    assert fields == (f"From: {parsed['From']}\r\nSubject: {parsed['Subject']}\r\n\r\n".encode())
    not_fields = fetch_literal(imap, uid, "BODY.PEEK[HEADER.FIELDS.NOT (Subject)]")
    assert b"Subject:" not in not_fields and b"From:" in not_fields
    # The part numbers are the PartIDs the API uses: the same bytes, once decoded.
    message = imap_server.mailbox.get(msg_id).to_api()
    for part in (*message["Attachments"], *message["Inline"]):
        encoded = fetch_literal(imap, uid, f"BODY.PEEK[{part['PartID']}]")
        assert base64.b64decode(encoded) == imap_server.mailbox.part(msg_id, part["PartID"])[1]
        mime = fetch_literal(imap, uid, f"BODY.PEEK[{part['PartID']}.MIME]")
        assert b"Content-Type:" in mime and mime.endswith(b"\r\n\r\n")
    pdf_part = next(p for p in message["Attachments"] if p["FileName"] == "Sample PDF.pdf")
    typ, data = imap.uid("FETCH", str(uid), "(BODYSTRUCTURE)")
    structure = _flat(data)
    assert b'"APPLICATION" "PDF" ("NAME" "Sample PDF.pdf")' in structure
    assert b'("ATTACHMENT" ("FILENAME" "Sample PDF.pdf"))' in structure
    assert b'"MIXED" ("BOUNDARY"' in structure and b'"RELATED"' in structure
    assert pdf_part["PartID"] == "2"
    typ, data = imap.uid("FETCH", str(uid), "(ENVELOPE)")
    assert b'"inline + attachment" (("Sender Smith" NIL "sender2" "example.com"))' in _flat(data)
    typ, data = imap.uid("FETCH", str(uid), "(BODY.PEEK[9] BODY.PEEK[1.TEXT])")
    assert typ == "OK" and b"BODY[9] {0}" in _flat(data)


def test_imap_nested_message_rfc822_sections() -> None:
    inner = b"From: x@example.com\r\nSubject: inner\r\n\r\ninner body\r\n"
    outer = (
        b"From: a@example.com\r\nSubject: outer\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\npreamble\r\n--b1\r\n'
        b"Content-Type: text/plain\r\n\r\nfirst\r\n--b1\r\n"
        b"Content-Type: message/rfc822\r\n\r\n" + inner + b"--b1--\r\nepilogue\r\n"
    )
    with make_server(imap_addr="127.0.0.1:0", imap_auth=AUTH) as mp:
        send_raw(mp, outer)
        client = imaplib.IMAP4(*mp.imap_address, timeout=10)
        client.login("ann", "secret")
        client.select()
        assert fetch_literal(client, 1, "BODY.PEEK[1]") == b"first"
        # The line break before a boundary belongs to the boundary (RFC 2046 section 5.1.1).
        assert fetch_literal(client, 1, "BODY.PEEK[2]") == inner[:-2]
        assert fetch_literal(client, 1, "BODY.PEEK[2.HEADER]").startswith(b"From: x@example.com")
        assert fetch_literal(client, 1, "BODY.PEEK[2.TEXT]") == b"inner body"
        assert fetch_literal(client, 1, "BODY.PEEK[2.1]") == b"inner body"
        typ, data = client.fetch("1", "(BODYSTRUCTURE)")
        structure = _flat(data)
        size = len(inner) - 2
        assert b'"MESSAGE" "RFC822" NIL NIL NIL "7BIT" %d (NIL "inner"' % size in structure
        client.logout()


def test_imap_seen_follows_the_read_state_the_ui_shows(
    imap_server: Server, imap: imaplib.IMAP4
) -> None:
    msg_id = send_raw(imap_server, message("read me"))
    imap.select("INBOX")
    uid = uids(imap_server)[0]
    assert imap.uid("FETCH", str(uid), "(FLAGS)")[1] == [f"1 (UID {uid} FLAGS ())".encode()]
    with imap_server.bus.subscribe() as sub:
        typ, data = imap.uid("FETCH", str(uid), "(BODY[TEXT])")
        assert b"\\Seen" in _flat(data)  # fetching the body sets \Seen and says so
        assert imap_server.mailbox.summary(msg_id)["Read"] is True

        def update() -> bool:
            event = sub.get(timeout=0.1)
            return isinstance(event, events.Update) and event.data == {"ID": msg_id, "Read": True}

        wait_until(update, what="the read event")
    assert imap.store("1", "-FLAGS", "(\\Seen)") == ("OK", [b"1 (FLAGS ())"])
    assert imap_server.mailbox.summary(msg_id)["Read"] is False
    assert imap.store("1", "+FLAGS.SILENT", "(\\seen \\Flagged)") == ("OK", [None])
    assert imap_server.mailbox.summary(msg_id)["Read"] is True
    assert imap.fetch("1", "(FLAGS)")[1] == [b"1 (FLAGS (\\Seen \\Flagged))"]
    # Marked unread in the UI: the client hears it at its next command.
    imap_server.mailbox.mark_read([msg_id], False)
    typ, data = imap.noop()
    assert imap.untagged_responses.get("FETCH") == [b"1 (FLAGS (\\Flagged))"] or (
        b"1 (FLAGS (\\Flagged))" in (imap.response("FETCH")[1] or [])
    )


def test_imap_search_keys(imap_server: Server, imap: imaplib.IMAP4) -> None:
    first = send_raw(imap_server, message("Invoice March", "pay 100 EUR", "Ann <ann@example.com>"))
    send_raw(imap_server, message("Lunch", "see you at noon " * 50, "Carl <carl@example.net>"))
    send_raw(imap_server, message("Invoice April", "pay 200 EUR", "Dora <dora@example.com>"))
    imap_server.mailbox.mark_read([first], True)
    imap.select("INBOX")
    all_uids = uids(imap_server)

    def search(*criteria: str) -> list[int]:
        typ, data = imap.search(None, *criteria)
        assert typ == "OK", data
        return [int(n) for n in data[0].split()]

    assert search("ALL") == [1, 2, 3]
    assert search("SEEN") == [1] and search("UNSEEN") == [2, 3]
    assert search("SUBJECT", "invoice") == [1, 3]
    assert search("FROM", "example.com") == [1, 3] and search("FROM", '"Carl"') == [2]
    assert search("TO", "bob@example.org") == [1, 2, 3]
    assert search("BODY", "noon") == [2] and search("TEXT", "Dora") == [3]
    assert search("HEADER", "Subject", "april") == [3]
    assert search("NOT", "SUBJECT", "invoice") == [2]
    assert search("OR", "SUBJECT", "lunch", "FROM", "dora") == [2, 3]
    assert search("LARGER", "500") == [2] and search("SMALLER", "500") == [1, 3]
    assert search("SINCE", "1-Jan-2000") == [1, 2, 3] and search("BEFORE", "1-Jan-2000") == []
    assert search("SENTON", "21-Nov-2026") == [1, 2, 3]
    assert search("2:*") == [2, 3] and search("UID", f"{all_uids[2]}") == [3]
    assert search("CHARSET", "UTF-8", "SUBJECT", "march") == [1]
    assert search("(SUBJECT invoice UNSEEN)") == [3]
    typ, data = imap.uid("SEARCH", "SUBJECT", "invoice")
    assert data == [f"{all_uids[0]} {all_uids[2]}".encode()]
    typ, data = imap.search("KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0]
    with pytest.raises(imaplib.IMAP4.error, match="unknown search key"):
        imap.search(None, "FROB")
    with pytest.raises(imaplib.IMAP4.error, match="date"):
        imap.search(None, "SINCE", "yesterday")


def test_imap_expunge_deletes_through_the_mailbox(imap_server: Server, imap: imaplib.IMAP4) -> None:
    keep = send_raw(imap_server, message("keep"))
    gone = send_raw(imap_server, message("gone"))
    imap.select("INBOX")
    with imap_server.bus.subscribe() as sub:
        assert imap.store("2", "+FLAGS", "(\\Deleted)")[0] == "OK"
        assert imap_server.mailbox.counts()[0] == 2  # \Deleted alone removes nothing
        assert imap.search(None, "DELETED")[1] == [b"2"]
        assert imap.expunge() == ("OK", [b"2"])

        def deleted() -> bool:
            event = sub.get(timeout=0.1)
            return isinstance(event, events.Delete) and event.data == {"ID": gone}

        wait_until(deleted, what="the delete event")
    assert [e.uid for e in imap_server.mailbox.index()] == [keep]
    assert imap.fetch("1:*", "(FLAGS)")[1] == [b"1 (FLAGS ())"]
    # CLOSE expunges without a word; EXAMINE makes the mailbox read-only.
    imap.store("1", "+FLAGS", "(\\Deleted)")
    assert imap.close()[0] == "OK"
    assert imap_server.mailbox.counts()[0] == 0
    send_raw(imap_server, message("third"))
    imap.select("INBOX", readonly=True)
    typ, data = imap.store("1", "+FLAGS", "(\\Deleted)")
    assert typ == "NO" and b"read-only" in data[0]


def test_imap_sees_deletes_and_new_mail_from_elsewhere(
    imap_server: Server, imap: imaplib.IMAP4
) -> None:
    first = send_raw(imap_server, message("a"))
    send_raw(imap_server, message("b"))
    imap.select("INBOX")
    imap_server.mailbox.delete([first])  # as the web UI does
    wait_until(lambda: imap_server.imap.generation > 0, what="the IMAP server hearing it")
    typ, data = imap.search(None, "ALL")  # SEARCH may not announce an expunge
    assert data == [b"1 2"]
    imap.noop()
    assert imap.response("EXPUNGE") == ("EXPUNGE", [b"1"])
    assert imap.search(None, "ALL")[1] == [b"1"]
    send_raw(imap_server, message("c"))
    wait_until(
        lambda: imap.noop() and (imap.response("EXISTS")[1] or [b""])[-1] == b"2",
        what="EXISTS after NOOP",
    )


def test_imap_idle_pushes_new_mail_and_expunges(imap_server: Server, imap: imaplib.IMAP4) -> None:
    send_raw(imap_server, message("before"))
    imap.select("INBOX")
    tag = imap._new_tag()
    imap.send(tag + b" IDLE\r\n")
    assert imap.readline().startswith(b"+ ")
    new = send_raw(imap_server, message("during idle"))
    assert imap.readline() == b"* 2 EXISTS\r\n"
    imap_server.mailbox.delete([new])
    assert imap.readline() == b"* 2 EXPUNGE\r\n"
    imap.send(b"DONE\r\n")
    assert imap.readline() == tag + b" OK IDLE terminated\r\n"
    assert imap.search(None, "ALL")[1] == [b"1"]


def test_imap_uids_and_uidvalidity_survive_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "mail.db")
    settings = {"imap_addr": "127.0.0.1:0", "imap_auth": AUTH, "database": db}
    with make_server(**settings) as mp:
        for n in range(3):
            send_raw(mp, message(f"m{n}"))
        mp.mailbox.delete([mp.mailbox.index()[2].uid])  # the newest: its UID is never reused
        client = selected(mp)
        before = (client.untagged_responses["UIDVALIDITY"], client.uid("SEARCH", "ALL")[1])
        next_before = client.untagged_responses["UIDNEXT"]
        client.logout()
    with make_server(**settings) as mp:
        client = selected(mp)
        after = (client.untagged_responses["UIDVALIDITY"], client.uid("SEARCH", "ALL")[1])
        assert after == before and before[1] == [b"1 2"]
        assert client.untagged_responses["UIDNEXT"] == next_before == [b"4"]
        send_raw(mp, message("new"))
        assert client.uid("SEARCH", "ALL")[1] == [b"1 2 4"]
        client.logout()
    with make_server(imap_addr="127.0.0.1:0", imap_auth=AUTH) as other:
        assert other.mailbox.uid_validity() != int(before[0][0])  # another database


def test_imap_login_variants_literals_and_authenticate_plain(imap_server: Server) -> None:
    client = imaplib.IMAP4(*imap_server.imap_address, timeout=10)
    client.authenticate("PLAIN", lambda _: b"\0ann\0secret")
    assert client.state == "AUTH"
    client.logout()
    with socket.create_connection(imap_server.imap_address, timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        # A synchronizing literal waits for "+", LITERAL+ does not (RFC 7888).
        sock.sendall(b"a1 LOGIN {3}\r\n")
        assert f.readline().startswith(b"+ ")
        sock.sendall(b"ann {6+}\r\nsecret\r\n")
        assert f.readline().startswith(b"a1 OK")
        sock.sendall(b"a2 LOGOUT\r\n")
        assert f.readline().startswith(b"* BYE")
    with socket.create_connection(imap_server.imap_address, timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        plain = base64.b64encode(b"\0ann\0secret")
        sock.sendall(b"a1 AUTHENTICATE PLAIN " + plain + b"\r\n")  # SASL-IR
        assert f.readline().startswith(b"a1 OK [CAPABILITY")
        sock.sendall(b"a2 AUTHENTICATE PLAIN\r\n")
        assert f.readline() == b"a2 BAD already logged in\r\n"


def talk(mp: Server, *lines: str, login: bool = False) -> list[str]:
    """Send raw command lines; return each tagged (or untagged BAD) answer line."""
    answers = []
    with socket.create_connection(mp.imap_address, timeout=10) as sock:
        f = sock.makefile("rb")
        assert f.readline().startswith(b"* OK")
        if login:
            sock.sendall(b"l0 LOGIN ann secret\r\n")
            assert f.readline().startswith(b"l0 OK")
        for line in lines:
            sock.sendall(line.encode() + b"\r\n")
            while True:
                reply = f.readline().decode().rstrip("\r\n")
                tag = line.split(" ", 1)[0]
                if reply.startswith(tag + " ") or reply.startswith("* BAD") or not reply:
                    answers.append(reply)
                    break
    return answers


def test_imap_answers_misuse_with_bad_or_no(imap_server: Server) -> None:
    send_raw(imap_server, message("x"))
    before_login = talk(
        imap_server,
        "a1 SELECT INBOX",
        "a2 FETCH 1 FLAGS",
        'a3 LIST "" *',
        "a4 FROB",
        "a5 LOGIN ann wrong",
        "a6 LOGIN ann",
        "(bad",
        "a7 AUTHENTICATE CRAM-MD5",
        "a8 STARTTLS",
        "a9 NOOP",
    )
    assert before_login == [
        "a1 BAD SELECT needs a login first (LOGIN or AUTHENTICATE PLAIN)",
        "a2 BAD FETCH needs a login first (LOGIN or AUTHENTICATE PLAIN)",
        "a3 BAD LIST needs a login first (LOGIN or AUTHENTICATE PLAIN)",
        "a4 BAD unknown command FROB",
        "a5 NO [AUTHENTICATIONFAILED] invalid user name or password",
        "a6 BAD LOGIN takes a user name and a password",
        "* BAD a command starts with a tag",
        "a7 NO [CANNOT] mechanism CRAM-MD5 is not supported; use PLAIN",
        "a8 NO STARTTLS is not available: the server has no --imap-tls-cert",
        "a9 OK NOOP completed",
    ]
    logged_in = talk(
        imap_server,
        "b1 FETCH 1 FLAGS",
        "b2 SELECT Nowhere",
        "b3 SELECT INBOX",
        "b4 FETCH 5 FLAGS",
        "b5 FETCH 1 (FROB)",
        "b6 FETCH 1 BODY[HEADER.FIELDS]",
        "b7 STORE 1 FLOGS (\\Seen)",
        "b8 UID FROB 1",
        "b9 FETCH 0 FLAGS",
        "c1 CREATE inbox",
        "c2 LOGIN ann secret",
        "c3 FETCH 1 (FLAGS",
        "c4 STATUS INBOX (MESSAGES FROB)",
        login=True,
    )
    assert logged_in == [
        "b1 BAD FETCH needs a selected mailbox (SELECT or EXAMINE first)",
        "b2 NO [NONEXISTENT] no mailbox 'Nowhere': INBOX or a tag name",
        "b3 OK [READ-WRITE] SELECT completed",
        "b4 BAD no such message (the sequence number is beyond the last)",
        "b5 BAD unknown FETCH item FROB",
        "b6 BAD HEADER.FIELDS needs a list of header names",
        "b7 BAD FLOGS is not FLAGS, +FLAGS or -FLAGS",
        "b8 BAD UID FROB is not supported (FETCH, SEARCH, STORE, COPY, MOVE, EXPUNGE)",
        "b9 BAD '0' is not a message number or *",
        "c1 NO [ALREADYEXISTS] that folder exists already",
        "c2 BAD already logged in",
        "c3 BAD missing ')'",
        "c4 BAD unknown STATUS item FROB",
    ]
    with socket.create_connection(imap_server.imap_address, timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"i1 LOGIN ann secret\r\ni2 IDLE\r\n")
        assert f.readline().startswith(b"i1 OK") and f.readline().startswith(b"+ ")
        sock.sendall(b"NOT DONE\r\n")
        assert f.readline() == b"i2 BAD expected DONE to end IDLE\r\n"
        sock.sendall(b"i3 IDLE\r\n")
        assert f.readline().startswith(b"+ ")
    # The client vanished while idling: the server goes on serving others.
    assert talk(imap_server, "d1 NOOP") == ["d1 OK NOOP completed"]
    assert imap_server.mailbox.telemetry.counter("imap_logins") == {("failed",): 1, ("ok",): 2}


def test_imap_starttls_and_implicit_tls() -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with make_server(
        imap_addr="127.0.0.1:0", imap_auth=AUTH, imap_tls_cert="sans:localhost,127.0.0.1"
    ) as mp:
        send_raw(mp, message("tls"))
        client = imaplib.IMAP4(*mp.imap_address, timeout=10)
        assert "STARTTLS" in client.capabilities
        client.starttls(context)
        assert isinstance(client.sock, ssl.SSLSocket)
        assert "STARTTLS" not in client.capabilities
        client.login("ann", "secret")
        assert client.select()[1] == [b"1"]
        client.logout()
    with make_server(
        imap_addr="127.0.0.1:0",
        imap_auth=AUTH,
        imap_tls_cert="sans:localhost",
        imap_tls_implicit=True,
    ) as mp:
        send_raw(mp, message("tls"))
        client = imaplib.IMAP4_SSL(*mp.imap_address, ssl_context=context, timeout=10)
        assert "STARTTLS" not in client.capabilities
        client.login("ann", "secret")
        assert b"Subject: tls" in fetch_literal_seq(client, "1", "BODY.PEEK[HEADER]")
        client.logout()


def fetch_literal_seq(client: imaplib.IMAP4, seq: str, item: str) -> bytes:
    client.select()
    typ, data = client.fetch(seq, f"({item})")
    return _flat(data)


def test_imap_folders_are_tags(imap_server: Server, imap: imaplib.IMAP4) -> None:
    a = send_raw(imap_server, message("a"), rcpt="dev+work@example.org")  # plus-address tag
    b = send_raw(imap_server, message("b"))
    imap_server.mailbox.set_tags([b], ["Größe"])
    typ, folders = imap.list()
    names = [decode_mailbox(re.findall(rb'"([^"]*)"$', f)[0].decode()) for f in folders]
    assert names == ["INBOX", "Größe", "work"]
    assert encode_mailbox("Größe") == "Gr&APYA3w-e"
    assert imap.select("work") == ("OK", [b"1"])
    assert imap.uid("SEARCH", "ALL")[1] == [str(uids(imap_server)[0]).encode()]
    assert imap.status('"Gr&APYA3w-e"', "(MESSAGES UNSEEN)")[1] == [
        b'"Gr&APYA3w-e" (MESSAGES 1 UNSEEN 1)'
    ]
    # COPY into a folder tags; EXPUNGE in a tag folder untags (the message stays in INBOX).
    imap.select("INBOX")
    assert imap.copy("1:2", "work")[0] == "OK"
    assert imap_server.mailbox.summary(b)["Tags"] == ["Größe", "work"]
    imap.select("work")
    imap.store("1", "+FLAGS", "(\\Deleted)")
    imap.expunge()
    assert imap_server.mailbox.summary(a)["Tags"] == []
    assert imap_server.mailbox.counts()[0] == 2
    imap.select("INBOX")
    assert imap.search(None, "DELETED")[1] == [b""]  # untagged, not doomed in INBOX
    imap.expunge()
    assert imap_server.mailbox.counts()[0] == 2
    imap.select("work")
    assert imap.list('""', "w%")[1] == [b'(\\HasNoChildren) "/" "work"']
    typ, data = imap.append("work", None, None, message("appended"))
    assert typ == "OK"
    assert imap_server.mailbox.summary("latest")["Tags"] == ["work"]
    # RENAME and DELETE of a folder rename and remove its tag; INBOX stays as it is.
    assert imap.rename("work", "done")[0] == "OK"
    assert imap_server.mailbox.summary("latest")["Tags"] == ["done"]
    assert imap.delete("done")[0] == "OK"
    assert imap_server.mailbox.tags() == ["Größe"] and imap_server.mailbox.counts()[0] == 3
    assert imap.delete("INBOX")[0] == "NO" and imap.rename("INBOX", "x")[0] == "NO"
    # CREATE makes an empty folder, a tag to be: listed and selectable, filled by APPEND.
    assert imap.create("new")[0] == "OK" and imap.create("new")[0] == "NO"
    assert imap.list('""', "new")[1] == [b'(\\HasNoChildren) "/" "new"']
    assert imap.select("new") == ("OK", [b"0"])
    assert imap.append("new", None, None, message("first in new"))[0] == "OK"
    assert imap_server.mailbox.summary("latest")["Tags"] == ["new"]


def test_curl_lists_searches_and_fetches_over_imap(imap_server: Server) -> None:
    need_command("curl", "curl", "the IMAP tests that use curl")
    raw = (MESSAGES / "attachments-pdf-image.eml").read_bytes()
    msg_id = send_raw(imap_server, raw)
    uid = uids(imap_server)[0]
    base = f"imap://127.0.0.1:{imap_server.imap_address[1]}/"

    def curl(url: str, user: str = "ann:secret") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["curl", "-sS", "--user", user, url], capture_output=True, timeout=30)

    assert curl(base).stdout == b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
    assert curl(base + f"INBOX;UID={uid}").stdout == imap_server.mailbox.raw(msg_id)
    assert curl(base + "INBOX?SUBJECT%20invoice").stdout == b"* SEARCH 1\r\n"
    assert curl(base, "ann:wrong").returncode != 0


def test_imap_logins_default_to_the_pop3_list_and_are_required() -> None:
    # (pop3_addr "": POP3's logins would start POP3 on Mailpit's fixed port 1110)
    with make_server(imap_addr="127.0.0.1:0", pop3_auth="pat:pw", pop3_addr="") as mp:
        client = imaplib.IMAP4(*mp.imap_address, timeout=10)
        client.login("pat", "pw")
        client.logout()
    with pytest.raises(ConfigError, match="--imap 127.0.0.1:0 needs logins.*MP_IMAP_AUTH"):
        validate(Config(imap_addr="127.0.0.1:0"))
    with pytest.raises(ConfigError, match="--imap-tls-implicit needs --imap-tls-cert"):
        validate(Config(imap_addr="127.0.0.1:0", imap_auth=AUTH, imap_tls_implicit=True))


def test_imap_hangs_up_on_a_client_that_is_not_speaking_imap(imap_server: Server) -> None:
    with socket.create_connection(imap_server.imap_address, timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"\x16\x03\x01 hello\r\n" * 30)
        answers = [f.readline() for _ in range(22)]
        assert answers[:20] == [b"* BAD a command starts with a tag\r\n"] * 20
        assert answers[20] == b"* BYE this does not look like IMAP\r\n" and answers[21] == b""


def test_imap_empty_mailbox_and_bare_lf_messages(imap_server: Server, imap: imaplib.IMAP4) -> None:
    imap.select("INBOX")
    assert imap.fetch("1:*", "(FLAGS)") == ("OK", [None])
    assert imap.uid("FETCH", "1:*", "(FLAGS)") == ("OK", [None])
    assert imap.search(None, "ALL") == ("OK", [b""])
    raw = b"Subject: bare\nFrom: a@example.com\n\nline one\n.line two\n"
    msg_id = send_raw(imap_server, raw)
    imap.noop()
    uid = uids(imap_server)[0]
    assert imap_server.mailbox.raw(msg_id) == raw + b"\r\n"  # as received (smtplib's end)
    # Sent with CRLF line endings, the size counted the same way, offsets into the CRLF text.
    sent = raw.replace(b"\n", b"\r\n") + b"\r\n"
    assert fetch_literal(imap, uid, "BODY.PEEK[]") == sent
    typ, data = imap.uid("FETCH", str(uid), "(RFC822.SIZE)")
    assert typ == "OK" and f"RFC822.SIZE {len(sent)})".encode() in _flat(data), data
    assert fetch_literal(imap, uid, "BODY.PEEK[TEXT]") == b"line one\r\n.line two\r\n\r\n"
    assert fetch_literal(imap, uid, "BODY.PEEK[HEADER]") == sent[: sent.index(b"\r\n\r\n") + 4]
    assert fetch_literal(imap, uid, "BODY.PEEK[TEXT]<5.6>") == b"one\r\n."
    typ, data = imap.uid("FETCH", str(uid), "(BODYSTRUCTURE)")
    assert typ == "OK" and b'"7BIT" 23 3 ' in _flat(data), data  # 23 octets with CRLF
    # A NUL, which no literal may hold, is sent as 0x80, the size unchanged.
    nul = send_raw(imap_server, b"Subject: nul\r\n\r\na\x00b\r\n")
    imap.noop()
    nul_uid = uids(imap_server)[-1]
    assert b"\x00" in imap_server.mailbox.raw(nul)
    assert fetch_literal(imap, nul_uid, "BODY.PEEK[TEXT]") == b"a\x80b\r\n"
    # LARGER and SMALLER compare the same size (the stored one is 4 octets less).
    size = len(sent)
    assert imap.search(None, "LARGER", str(size - 2)) == ("OK", [b"1"])
    assert imap.search(None, "SMALLER", str(size - 2)) == ("OK", [b"2"])  # (the NUL one)
    assert imap.search(None, "SMALLER", str(size + 1)) == ("OK", [b"1 2"])
    # EXAMINE is read-only: even a non-PEEK fetch leaves the message unread.
    imap.select("INBOX", readonly=True)
    fetch_literal(imap, uid, "BODY[]")
    assert fetch_literal(imap, uid, "RFC822") == sent
    assert imap_server.mailbox.summary(msg_id)["Read"] is False


@pytest.mark.parametrize("which", CORPORA)
def test_imapclient_parses_every_envelope_and_structure_and_idles(
    imap_server: Server, which: str
) -> None:
    from imapclient import IMAPClient

    root = corpus_root(which)
    names = corpus_names(root)
    ids = [send_raw(imap_server, (root / name).read_bytes()) for name in names]
    client = IMAPClient("127.0.0.1", port=imap_server.imap_address[1], ssl=False, timeout=10)
    client.login("ann", "secret")
    client.select_folder("INBOX", readonly=True)
    found = client.search()
    assert len(found) == len(ids)
    data = client.fetch(found, ["ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE"])
    by_uid = {e.imap_uid: e.uid for e in imap_server.mailbox.index()}
    for uid, item in data.items():
        stored = imap_server.mailbox.get(by_uid[uid])
        api = stored.to_api()
        # The size of the message as sent: its stored size, a bare LF counted as CRLF.
        raw = imap_server.mailbox.raw(by_uid[uid])
        assert item[b"RFC822.SIZE"] == api["Size"] + raw.count(b"\n") - raw.count(b"\r\n")
        # Every attachment and inline part the API lists is a leaf of the structure.
        leaves = _leaves(item[b"BODYSTRUCTURE"])
        assert len(leaves) >= len(api["Attachments"]) + len(api["Inline"]), by_uid[uid]
        if not stored.detail["MessageIDGenerated"]:
            assert api["MessageID"].encode() in (item[b"ENVELOPE"].message_id or b""), uid
    client.select_folder("INBOX")
    client.idle()
    new_id = send_raw(imap_server, message("idle with IMAPClient"))
    responses = client.idle_check(timeout=10)
    client.idle_done()
    assert (len(ids) + 1, b"EXISTS") in responses
    assert imap_server.mailbox.summary(new_id)["Subject"] == "idle with IMAPClient"
    client.logout()


def _leaves(structure: object) -> list[object]:
    """The single parts of a parsed BODYSTRUCTURE (IMAPClient's BodyData)."""
    if getattr(structure, "is_multipart", False):
        parts = structure[0]  # type: ignore[index]
        return [leaf for part in parts for leaf in _leaves(part)]
    return [structure]


def test_flags_survive_a_restart_and_go_with_their_message(tmp_path: Path) -> None:
    db = str(tmp_path / "flags.db")
    settings = {"imap_addr": "127.0.0.1:0", "imap_auth": AUTH, "database": db}
    with make_server(**settings) as mp:
        for n in range(2):
            send_raw(mp, message(f"m{n}"))
        client = selected(mp)
        assert client.uid("STORE", "1", "+FLAGS", r"(\Flagged $Important)")[0] == "OK"
        assert client.uid("STORE", "2", "+FLAGS", r"(\Answered)")[0] == "OK"
        client.logout()
        mp.mailbox.delete([mp.mailbox.index()[1].uid])  # message 2 and its flags go
    with make_server(**settings) as mp:
        client = selected(mp)
        assert b"$Important" in client.untagged_responses["FLAGS"][0]  # a keyword in use
        typ, data = client.uid("FETCH", "1:*", "(FLAGS)")
        assert typ == "OK" and len(data) == 1
        assert b"\\Flagged" in data[0] and b"$Important" in data[0]
        assert client.uid("STORE", "1", "-FLAGS", r"(\Flagged)")[0] == "OK"
        client.logout()
        assert mp.mailbox.imap_flags() == {1: {"$Important"}}


def test_imap_refuses_big_literals_before_login_without_reading_them() -> None:
    with make_server(imap_addr="127.0.0.1:0", imap_auth=AUTH, max_message_size=200_000) as mp:
        with socket.create_connection(mp.imap_address, timeout=10) as sock:
            f = sock.makefile("rb")
            f.readline()
            # Before a login, a literal may hold a user name or a password, no more.
            sock.sendall(b"a1 APPEND INBOX {100000}\r\n")
            answer = f.readline()
            assert answer.startswith(b"a1 NO [TOOBIG]") and b"log in first" in answer, answer
            sock.sendall(b"a2 LOGIN {3}\r\n")  # a literal password still works
            assert f.readline().startswith(b"+ ")
            sock.sendall(b"ann {6}\r\n")
            assert f.readline().startswith(b"+ ")
            sock.sendall(b"secret\r\n")
            assert f.readline().startswith(b"a2 OK")
            # Logged in, a message may be as large as --max-message-size, not larger.
            sock.sendall(b"a3 APPEND INBOX {200001}\r\n")
            assert f.readline().startswith(b"a3 NO [TOOBIG]")
            data = message("just fits").ljust(200_000, b"x")
            sock.sendall(b"a4 APPEND INBOX {200000}\r\n")
            assert f.readline().startswith(b"+ ")
            sock.sendall(data + b"\r\n")
            assert f.readline().startswith(b"a4 OK")
        assert mp.mailbox.counts()[0] == 1
        # A non-synchronizing literal (LITERAL+) cannot be refused while its bytes are on the
        # way: the server says why and hangs up, and never reads 50 MB into memory.
        with socket.create_connection(mp.imap_address, timeout=10) as sock:
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"b1 LOGIN ann {50000000+}\r\n" + b"x" * 1000)
            answer = f.readline()
            assert answer.startswith(b"* BYE") and b"too large" in answer, answer
            assert f.readline() == b""  # closed
        # Many small literals in one command add up: bounded before a login too.
        with socket.create_connection(mp.imap_address, timeout=10) as sock:
            f = sock.makefile("rb")
            f.readline()
            sent = b"c1 LOGIN"
            answer = b""
            for _ in range(40):
                sock.sendall(sent + b" {1000}\r\n")
                answer = f.readline()
                if not answer.startswith(b"+ "):
                    break
                sent = b"y" * 1000
            assert answer.startswith(b"c1 NO [TOOBIG]"), answer
            sock.sendall(b"c2 NOOP\r\n")
            assert f.readline().startswith(b"c2 OK")


def _client(mp: Server) -> Any:
    from imapclient import IMAPClient

    client = IMAPClient("127.0.0.1", port=mp.imap_address[1], ssl=False, timeout=10)
    client.login("ann", "secret")
    return client


def test_imap_a_moved_message_survives_the_expunge_of_its_original(imap_server: Server) -> None:
    """Mail clients without MOVE move by COPY, \\Deleted and EXPUNGE: the copy must stay."""
    first = send_raw(imap_server, message("move me"))
    other = send_raw(imap_server, message("stays"))
    imap = selected(imap_server)
    assert "UIDPLUS" in imap.capabilities and "MOVE" in imap.capabilities
    uid = uids(imap_server)[0]
    assert imap.uid("COPY", str(uid), "Archive")[0] == "OK"
    validity = imap_server.mailbox.uid_validity()
    assert imap.response("COPYUID") == ("COPYUID", [b"%d %d %d" % (validity, uid, uid)])
    imap.uid("STORE", str(uid), "+FLAGS", r"(\Deleted)")
    # \Deleted belongs to the copy in INBOX; the one in Archive is not doomed with it.
    archive = selected(imap_server)
    archive.select("Archive")
    assert archive.fetch("1", "(FLAGS)")[1] == [b"1 (FLAGS ())"]
    assert imap.expunge() == ("OK", [b"1"])
    assert imap_server.mailbox.summary(first)["Tags"] == ["Archive"]  # the web UI keeps it
    assert imap.search(None, "ALL")[1] == [b"1"]  # INBOX has the other one only
    assert imap.status("INBOX", "(MESSAGES)")[1] == [b'"INBOX" (MESSAGES 1)']
    assert archive.uid("SEARCH", "ALL")[1] == [str(uid).encode()]
    # Archive held its last copy: expunging it there deletes the message.
    archive.store("1", "+FLAGS", r"(\Deleted)")
    assert archive.expunge() == ("OK", [b"1"])
    with pytest.raises(MessageNotFound):
        imap_server.mailbox.summary(first)
    # Folder to folder by COPY and EXPUNGE: one message, now in the other folder only.
    imap.copy("1", "Work")
    imap.select("Work")
    imap.copy("1", "Done")
    imap.store("1", "+FLAGS", r"(\Deleted)")
    imap.expunge()
    assert imap_server.mailbox.summary(other)["Tags"] == ["Done"]
    imap.select("INBOX")
    assert imap.search(None, "ALL")[1] == [b"1"]  # it was in INBOX all along
    # A message in INBOX only is deleted by its expunge, as before.
    imap.store("1", "+FLAGS", r"(\Deleted)")
    imap.expunge()
    assert imap_server.mailbox.summary(other)["Tags"] == ["Done"]  # still in Done
    imap.select("Done")
    imap.store("1", "+FLAGS", r"(\Deleted)")
    imap.expunge()
    assert imap_server.mailbox.counts()[0] == 0
    imap.logout()
    archive.logout()


def test_imap_move_in_one_step_with_imapclient(imap_server: Server) -> None:
    ids = [send_raw(imap_server, message(f"m{n}")) for n in range(3)]
    client = _client(imap_server)
    client.select_folder("INBOX")
    all_uids = client.search()
    client.move(all_uids[:2], "Work")
    assert client.search() == all_uids[2:]  # moved out of INBOX (its EXPUNGEs came first)
    assert [imap_server.mailbox.summary(i)["Tags"] for i in ids] == [["Work"], ["Work"], []]
    client.select_folder("Work")
    assert client.search() == all_uids[:2]
    # Back to INBOX: the messages are there again, and untagged.
    client.move(all_uids[:1], "INBOX")
    assert imap_server.mailbox.summary(ids[0])["Tags"] == []
    client.select_folder("INBOX")
    assert client.search() == [all_uids[0], all_uids[2]]
    # The web UI takes the last tag off a message moved out of INBOX: it is back in INBOX.
    imap_server.mailbox.set_tags([ids[1]], [])
    client.select_folder("INBOX")
    assert client.search() == all_uids
    typ = client._imap.uid("MOVE", str(all_uids[0]), "INBOX")[0]
    assert typ == "NO"  # into the folder it is in
    client.select_folder("INBOX", readonly=True)
    assert client._imap.uid("MOVE", str(all_uids[0]), "Work")[0] == "NO"
    client.logout()


def test_imap_append_keeps_flags_and_date_and_answers_appenduid(imap_server: Server) -> None:
    import datetime as dt

    client = _client(imap_server)
    when = dt.datetime(2024, 2, 29, 23, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    answer = client.append(
        "INBOX", message("uploaded"), flags=[b"\\Seen", b"\\Flagged", b"$label1"], msg_time=when
    )
    validity = imap_server.mailbox.uid_validity()
    uid = uids(imap_server)[0]
    assert answer.startswith(b"[APPENDUID %d %d]" % (validity, uid)), answer
    summary = imap_server.mailbox.summary("latest")
    assert summary["Read"] is True  # the web UI shows it read
    assert summary["Created"].startswith("2024-03-01T04:30:05")
    client.select_folder("INBOX")
    got = client.fetch([uid], ["FLAGS", "INTERNALDATE"])[uid]
    assert set(got[b"FLAGS"]) == {b"\\Seen", b"\\Flagged", b"$label1"}
    assert got[b"INTERNALDATE"].astimezone(dt.UTC) == when.astimezone(dt.UTC)
    # Appended to a tag folder: in that folder (and the web UI, tagged), not in INBOX.
    client.create_folder("Sent")
    answer = client.append("Sent", message("sent"), flags=[b"\\Answered"])
    sent_uid = uids(imap_server)[-1]
    assert answer.startswith(b"[APPENDUID %d %d]" % (validity, sent_uid))
    assert imap_server.mailbox.summary("latest")["Read"] is False
    client.select_folder("INBOX")
    assert client.search() == [uid]
    client.select_folder("Sent")
    assert client.get_flags([sent_uid]) == {sent_uid: (b"\\Answered",)}
    with pytest.raises(client.Error, match="date-time"):
        client._imap.append("INBOX", None, '"31-Foo-2024 10:00:00 +0000"', b"x")
    with pytest.raises(client.Error, match="unknown system flag"):
        client.append("INBOX", b"x", flags=[b"\\Frob"])
    client.logout()


def test_imap_uid_expunge_removes_only_the_named_messages(imap_server: Server) -> None:
    ids = [send_raw(imap_server, message(f"m{n}")) for n in range(3)]
    client = _client(imap_server)
    client.select_folder("INBOX")
    all_uids = client.search()
    client.add_flags(all_uids, [b"\\Deleted"])
    client.uid_expunge(all_uids[1:2])
    assert client.search() == [all_uids[0], all_uids[2]]
    assert [e.uid for e in imap_server.mailbox.index()] == [ids[0], ids[2]]
    client.logout()


SYSTEM = (b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Seen", b"\\Draft")


def test_imap_keywords_are_announced_and_permanent(imap_server: Server) -> None:
    send_raw(imap_server, message("k"))
    client = _client(imap_server)
    client.select_folder("INBOX")
    other = _client(imap_server)
    selected_info = other.select_folder("INBOX")
    assert b"\\*" in selected_info[b"PERMANENTFLAGS"]  # clients may make up keywords
    client.add_flags([uids(imap_server)[0]], [b"$Forwarded", b"$Junk"])
    # Another session hears of the new keywords at its next command (RFC 3501 7.2.6).
    _, responses = other.noop()
    assert (b"FLAGS", (*SYSTEM, b"$Forwarded", b"$Junk")) in responses, responses
    info = _client(imap_server).select_folder("INBOX")
    assert {b"$Forwarded", b"$Junk"} <= set(info[b"FLAGS"])
    assert {b"$Forwarded", b"$Junk", b"\\*"} <= set(info[b"PERMANENTFLAGS"])
    client.logout()
    other.logout()


def test_imap_a_range_to_star_past_the_end_names_the_last_message(imap_server: Server) -> None:
    """A client asking for what is new since message n (`n+1:*`) after some went meanwhile
    gets the last message, as `3291:*` names the last UID (RFC 3501 section 9): not a BAD that
    stops its sync. A number past the end without `*` is still an error."""
    for n in range(3):
        send_raw(imap_server, message(f"m{n}"))
    answers = talk(
        imap_server,
        "s1 SELECT INBOX",
        "f1 FETCH 5:* (UID)",
        "f2 FETCH *:9 (UID)",
        "f3 FETCH 2:5 (UID)",
        "f4 FETCH 1,7 (UID)",
        login=True,
    )
    last = uids(imap_server)[-1]
    assert answers[1:] == [
        "f1 OK FETCH completed",
        "f2 OK FETCH completed",
        "f3 BAD no such message (the sequence number is beyond the last)",
        "f4 BAD no such message (the sequence number is beyond the last)",
    ]
    client = selected(imap_server)
    assert client.fetch("5:*", "(UID)") == ("OK", [f"3 (UID {last})".encode()])
    client.logout()


def test_imap_refuses_folder_names_a_tag_cannot_have(imap_server: Server) -> None:
    """A folder is a tag, and a tag's name is cleaned: `Archives/2026` (Thunderbird's yearly
    archive) would be the tag `Archives 2026`, so a COPY there filled a folder the client never
    listed and the folder it made stayed empty. Such names are refused with a reason."""
    send_raw(imap_server, message("to archive"))
    answers = talk(
        imap_server,
        "c1 CREATE Archives/2026",
        "c2 CREATE Tr#sh",
        "c3 CREATE Archives",
        "s1 SELECT INBOX",
        "c4 COPY 1 Archives/2026",
        "c5 MOVE 1 x/y",
        "c6 RENAME Archives A/B",
        "c7 COPY 1 Archives",
        login=True,
    )
    why = "a folder is a tag, whose name has letters, digits, spaces, '-', '_', '.' and '@' only"
    assert answers[0].startswith("c1 NO [CANNOT] 'Archives/2026'") and why in answers[0]
    assert answers[1].startswith("c2 NO [CANNOT] 'Tr#sh'") and why in answers[1]
    assert answers[2] == "c3 OK CREATE completed (an empty folder until a message is put in it)"
    assert answers[4].startswith("c4 NO [CANNOT] 'Archives/2026'") and why in answers[4]
    assert answers[5].startswith("c5 NO [CANNOT] 'x/y'") and why in answers[5]
    assert answers[6].startswith("c6 NO [CANNOT] 'A/B'") and why in answers[6]
    assert answers[7].startswith("c7 OK [COPYUID ")
    (entry,) = imap_server.mailbox.index()
    assert imap_server.mailbox.summary(entry.uid)["Tags"] == ["Archives"]  # and nothing else
    client = selected(imap_server)
    typ, listed = client.list()
    assert typ == "OK" and [line.rsplit(b" ", 1)[1] for line in listed] == [
        b'"INBOX"',
        b'"Archives"',
    ]
    client.logout()


def test_imap_envelope_groups_and_address_lists(imap_server: Server) -> None:
    """ENVELOPE shows a group as RFC 3501 (7.4.2) says, a NIL-host entry with its name, its
    members, then an entry of NILs, and addresses follow each other without a space (the
    grammar's 1*address), which strict parsers insist on."""
    raw = (
        b'From: "Ann \\"A\\" Smith" <ann@example.com>\r\n'
        b"To: undisclosed-recipients:;\r\n"
        b'Cc: Team: bob@example.org, "C: the ; one" <carl@example.org>;, dan@example.net\r\n'
        b"Bcc: <@relay.example:eve@example.com>, fay@example.com\r\n"
        b"Subject: groups\r\n\r\nbody\r\n"
    )
    send_raw(imap_server, raw)
    with socket.create_connection(imap_server.imap_address, timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"a LOGIN ann secret\r\nb EXAMINE INBOX\r\nc FETCH 1 (ENVELOPE)\r\n")
        lines = []
        while not (line := f.readline()).startswith(b"c "):
            lines.append(line)
    (fetched,) = [line for line in lines if line.startswith(b"* 1 FETCH")]
    assert (
        b'(("Ann \\"A\\" Smith" NIL "ann" "example.com"))' in fetched
        and b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))' in fetched
        and b'((NIL NIL "Team" NIL)(NIL NIL "bob" "example.org")("C: the ; one" NIL "carl" '
        b'"example.org")(NIL NIL NIL NIL)(NIL NIL "dan" "example.net"))'
        in fetched
        and b'((NIL NIL "eve" "example.com")(NIL NIL "fay" "example.com"))' in fetched
    ), fetched
    from imapclient import IMAPClient

    client = IMAPClient("127.0.0.1", port=imap_server.imap_address[1], ssl=False, timeout=10)
    client.login("ann", "secret")
    client.select_folder("INBOX", readonly=True)
    (data,) = client.fetch(client.search(), ["ENVELOPE"]).values()
    cc = data[b"ENVELOPE"].cc
    assert [(a.mailbox, a.host) for a in cc] == [
        (b"Team", None),
        (b"bob", b"example.org"),
        (b"carl", b"example.org"),
        (None, None),
        (b"dan", b"example.net"),
    ]
    client.logout()


def test_commands_sent_with_starttls_in_plain_text_are_dropped() -> None:
    """Whatever follows STARTTLS (IMAP) or STLS (POP3) in plain text, before the handshake,
    may have been added on the way: it is never run as if it came over TLS (the command
    injection of CVE-2011-0411). The first answer over TLS is to the first command sent
    over TLS."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with make_server(
        imap_addr="127.0.0.1:0",
        imap_auth=AUTH,
        imap_tls_cert="sans:localhost,127.0.0.1",
        pop3_addr="127.0.0.1:0",
        pop3_auth=AUTH,
        pop3_tls_cert="sans:localhost,127.0.0.1",
        pop3_starttls=True,
    ) as mp:
        cases = [
            (mp.imap_address, b"a STARTTLS\r\nb LOGIN ann secret\r\n", b"c NOOP\r\n", b"c OK"),
            (mp.pop3_address, b"STLS\r\nUSER ann\r\nPASS secret\r\n", b"CAPA\r\n", b"+OK cap"),
        ]
        for address, plain, command, answer in cases:
            with socket.create_connection(address, timeout=10) as sock:
                f = sock.makefile("rb")
                assert f.readline().startswith((b"* OK", b"+OK"))
                sock.sendall(plain)  # in one segment: the server has read it all
                assert f.readline().startswith((b"a OK", b"+OK"))
                with context.wrap_socket(sock) as tls:
                    tls.sendall(command)
                    first = tls.makefile("rb").readline()
                    assert first.startswith(answer), (address, first)


def test_imap_flags_set_in_one_session_reach_another_at_once(imap_server: Server) -> None:
    """A flag one client sets (a phone flags a message) reaches another client in that folder
    as an unsolicited FETCH (RFC 3501 section 7.4.2), at once while it idles: it was only seen
    when that client fetched FLAGS again. A client is not told again of its own STORE."""
    from imapclient import IMAPClient

    for n in range(2):
        send_raw(imap_server, message(f"m{n}"))
    idler = IMAPClient("127.0.0.1", port=imap_server.imap_address[1], ssl=False, timeout=10)
    idler.login("ann", "secret")
    idler.select_folder("INBOX")
    idler.idle()
    phone = selected(imap_server)
    try:
        assert phone.store("2", "+FLAGS.SILENT", "(\\Flagged $Label1)")[0] == "OK"
        pushed = idler.idle_check(timeout=10)
        assert (2, b"FETCH", (b"FLAGS", (b"$Label1", b"\\Flagged"))) in pushed, pushed
        idler.idle_done()
        # Its own change is answered once, by its STORE; a NOOP after it says nothing more.
        stored = idler.add_flags([uids(imap_server)[0]], [b"\\Answered"])
        assert stored == {uids(imap_server)[0]: (b"\\Answered",)}
        assert idler.noop()[1] == []
        # The other client hears of it at its next command.
        typ, data = phone.noop()
        assert typ == "OK"
        assert phone.untagged_responses.get("FETCH") == [b"1 (FLAGS (\\Answered))"]
    finally:
        phone.logout()
        idler.logout()


def test_imap_expunge_of_many_numbers_each_and_keeps_the_tagged(imap_server: Server) -> None:
    """An EXPUNGE of messages here and there says each one's number as of that response
    (RFC 3501 section 7.4.1), and of a whole INBOX of 150 (past the count whose tags are read
    one message at a time) keeps those a tag folder still holds."""
    ids = [send_raw(imap_server, message(f"m{n}")) for n in range(150)]
    imap_server.mailbox.set_tags(ids[10:20], ["keep"])
    client = selected(imap_server)
    try:
        assert client.store("2,4,5", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
        assert client.expunge() == ("OK", [b"2", b"3", b"3"])
        assert client.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
        typ, gone = client.expunge()
        assert typ == "OK" and gone == [b"1"] * 147
        left = {e.uid for e in imap_server.mailbox.index()}
        assert left == set(ids[10:20])
        assert client.select("keep")[1] == [b"10"]
    finally:
        client.logout()


def test_a_line_too_long_gets_its_answer_and_a_clean_close() -> None:
    """A command line past the limit (64 KB) is answered and the connection closed, with the
    rest of the line read and dropped first: closed on unread input, the socket sent a reset,
    and a client still sending could lose the answer to an error."""
    with make_server(
        imap_addr="127.0.0.1:0", imap_auth=AUTH, pop3_addr="127.0.0.1:0", pop3_auth=AUTH
    ) as mp:
        cases = [
            (mp.imap_address, b"a NOOP ", b"* BYE command line too long\r\n"),
            (mp.pop3_address, b"USER ", b"-ERR line too long (RFC 2449 allows 255 octets)\r\n"),
        ]
        for address, start, answer in cases:
            with socket.create_connection(address, timeout=10) as sock:
                f = sock.makefile("rb")
                f.readline()
                sock.sendall(start + b"x" * 300_000 + b"\r\n")
                received = b""
                while chunk := f.read1(65536):  # a reset raises ConnectionResetError here
                    received += chunk
                assert received == answer, address


def test_imap_copy_and_move_of_many_keep_each_messages_other_tags(imap_server: Server) -> None:
    """COPY and MOVE of 150 messages (past the count whose tags are read one message at a
    time; those with the same tags are written together) add and take only their folder's
    tag, whatever other tags each message has."""
    ids = [send_raw(imap_server, message(f"m{n}")) for n in range(150)]
    imap_server.mailbox.set_tags(ids[:50], ["red"])
    imap_server.mailbox.set_tags(ids[50:60], ["red", "blue"])
    client = selected(imap_server)
    try:
        assert client.copy("1:*", "work")[0] == "OK"
        client.select("work")
        assert client.uid("MOVE", "1:*", "done")[0] == "OK"

        def tags(msg_id: str) -> list[str]:
            return sorted(imap_server.mailbox.summary(msg_id)["Tags"])

        assert [tags(i) for i in ids[:50]] == [["done", "red"]] * 50
        assert [tags(i) for i in ids[50:60]] == [["blue", "done", "red"]] * 10
        assert [tags(i) for i in ids[60:]] == [["done"]] * 90
        assert client.select("done")[1] == [b"150"] and client.select("INBOX")[1] == [b"150"]
    finally:
        client.logout()


def test_answers_of_several_writes_are_not_held_for_the_clients_ack() -> None:
    """An untagged response and its tagged OK (two writes) reach the client together: without
    TCP_NODELAY the second waited for the client's delayed ACK of the first, 40 ms a command
    (50 FETCHes 2.7 s with imaplib). asyncio sets the option only on sockets made with
    IPPROTO_TCP, which the listener's are not, so the server's end of each IMAP and POP3
    connection is looked up (the server runs in this process) and its option read."""
    import gc

    def server_end(client: socket.socket) -> socket.socket:
        """The server's socket of this connection: the one whose address is the client's peer."""
        peer = client.getpeername()
        for obj in gc.get_objects():
            if isinstance(obj, socket.socket) and obj is not client and obj.fileno() != -1:
                with contextlib.suppress(OSError):
                    if obj.getsockname() == peer and obj.getpeername() == client.getsockname():
                        return obj
        raise AssertionError(f"no server socket for {client.getsockname()} -> {peer}")

    with make_server(
        imap_addr="127.0.0.1:0", imap_auth=AUTH, pop3_addr="127.0.0.1:0", pop3_auth=AUTH
    ) as mp:
        for address in (mp.imap_address, mp.pop3_address):
            with socket.create_connection(address, timeout=10) as sock:
                assert sock.makefile("rb").readline()  # the greeting: the session has begun
                option = server_end(sock).getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert option != 0, f"{address}: Nagle's algorithm is on"
