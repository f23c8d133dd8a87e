"""POP3 (RFC 1939, 2449, 2595) with real clients: poplib, curl; TLS both ways; misuse."""

from __future__ import annotations

import base64
import imaplib
import poplib
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from helpers import (
    CORPORA,
    MESSAGES,
    corpus_names,
    corpus_root,
    make_server,
    need_command,
    send_raw,
    wait_until,
)
from mailpit_py import events
from mailpit_py.cli import config_from
from mailpit_py.config.errors import ConfigError
from mailpit_py.config.settings import Config
from mailpit_py.config.validate import validate
from mailpit_py.mailaccess.pop3 import top_of, wire_form, wire_size
from mailpit_py.server import Server

AUTH = "ann:secret bob:pa55"


@pytest.fixture
def pop3_server() -> Iterator[Server]:
    with make_server(pop3_addr="127.0.0.1:0", pop3_auth=AUTH) as mp:
        yield mp


def login(mp: Server, user: str = "ann", password: str = "secret") -> poplib.POP3:
    client = poplib.POP3(*mp.pop3_address, timeout=10)
    client.user(user)
    client.pass_(password)
    return client


def crlf(raw: bytes) -> bytes:
    """The stored bytes with every line ending CRLF (POP3's wire form, unstuffed)."""
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join(line.removesuffix(b"\r") + b"\r\n" for line in lines)


def message(subject: str, body: str = "Hello") -> bytes:
    head = f"From: a@example.com\r\nTo: b@example.org\r\nSubject: {subject}\r\n"
    return f"{head}\r\n{body}\r\n".encode()


def test_pop3_lists_retrieves_and_ids_messages_oldest_first(pop3_server: Server) -> None:
    first = send_raw(pop3_server, message("one", ".starts with a dot\r\n..two dots\r\n."))
    second = send_raw(pop3_server, message("two"))
    client = login(pop3_server)
    try:
        assert client.stat() == (2, len(pop3_server.mailbox.raw(first)) + len(message("two")))
        _, listing, _ = client.list()
        assert listing == [
            f"1 {len(pop3_server.mailbox.raw(first))}".encode(),
            f"2 {len(message('two'))}".encode(),
        ]
        assert client.uidl()[1] == [f"1 {first}".encode(), f"2 {second}".encode()]
        assert client.uidl(2).split() == [b"+OK", b"2", second.encode()]
        assert client.list(1).split()[:2] == [b"+OK", b"1"]
        reply, lines, octets = client.retr(1)
        assert reply.startswith(b"+OK")
        # poplib undoes the dot-stuffing: the lines are the stored bytes exactly.
        assert b"\r\n".join(lines) + b"\r\n" == pop3_server.mailbox.raw(first)
        assert b".starts with a dot" in lines and b"..two dots" in lines and b"." in lines
        _, top, _ = client.top(2, 0)
        assert top[-1] == b"" and b"Subject: two" in top and b"Hello" not in top
        _, top1, _ = client.top(1, 1)
        assert top1[-1] == b".starts with a dot"
        assert client.noop().startswith(b"+OK")
    finally:
        client.quit()
    assert pop3_server.mailbox.counts()[0] == 2  # reading deletes nothing


@pytest.mark.parametrize("which", CORPORA)
def test_pop3_retr_gives_every_corpus_message_byte_for_byte(
    pop3_server: Server, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    root = corpus_root(which)
    names = corpus_names(root)
    monkeypatch.setattr(poplib, "_MAXLINE", 10**7)  # real mail has lines over poplib's 2048
    ids = [send_raw(pop3_server, (root / name).read_bytes()) for name in names]
    client = login(pop3_server)
    try:
        uidl = [line.split()[1].decode() for line in client.uidl()[1]]
        assert uidl[-len(ids) :] == ids
        for number, msg_id in enumerate(ids, len(uidl) - len(ids) + 1):
            stored = pop3_server.mailbox.raw(msg_id)
            _, lines, _ = client.retr(number)
            assert b"".join(line + b"\r\n" for line in lines) == crlf(stored), msg_id
    finally:
        client.quit()


def test_pop3_dele_applies_at_quit_and_publishes_one_prune(pop3_server: Server) -> None:
    keep = send_raw(pop3_server, message("keep"))
    gone = send_raw(pop3_server, message("gone"))
    with pop3_server.bus.subscribe() as sub:
        client = login(pop3_server)
        assert client.dele(2).startswith(b"+OK")
        with pytest.raises(poplib.error_proto, match="already deleted"):
            client.dele(2)
        with pytest.raises(poplib.error_proto, match="already deleted"):
            client.retr(2)
        assert client.stat() == (1, len(message("keep")))
        assert [line.split()[0] for line in client.list()[1]] == [b"1"]
        # Nothing is removed before QUIT (RFC 1939 section 6).
        assert pop3_server.mailbox.summary(gone)["ID"] == gone
        assert client.quit().startswith(b"+OK")

        def deleted() -> bool:
            event = sub.get(timeout=0.1)
            # one prune for the session's deletions, as Mailpit announces them
            return isinstance(event, events.Prune) and event.data == {"IDs": [gone]}

        wait_until(deleted, what="the prune event")
    assert [e.uid for e in pop3_server.mailbox.index()] == [keep]


def test_pop3_quit_counts_only_the_messages_it_deleted(pop3_server: Server) -> None:
    """A message marked with DELE that the web UI deleted meanwhile is not counted again."""
    ids = [send_raw(pop3_server, message(f"m{n}")) for n in range(3)]
    client = login(pop3_server)
    client.dele(1)
    client.dele(2)
    pop3_server.mailbox.delete([ids[0]])
    assert client.quit() == b"+OK bye, 1 messages deleted"
    assert [e.uid for e in pop3_server.mailbox.index()] == [ids[2]]


def test_pop3_rset_and_a_dropped_connection_delete_nothing(pop3_server: Server) -> None:
    send_raw(pop3_server, message("a"))
    client = login(pop3_server)
    client.dele(1)
    assert client.rset().startswith(b"+OK")
    assert client.stat()[0] == 1
    client.quit()
    client = login(pop3_server)
    client.dele(1)
    client.close()  # no QUIT: no UPDATE state
    client = login(pop3_server)
    assert client.stat()[0] == 1
    client.quit()
    assert pop3_server.mailbox.counts()[0] == 1


class Raw:
    """A line-level POP3 client for what poplib will not send."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.line()

    def line(self) -> str:
        return self.file.readline().decode().rstrip("\r\n")

    def cmd(self, text: str) -> str:
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def test_pop3_answers_misuse_with_err(pop3_server: Server) -> None:
    send_raw(pop3_server, message("x"))
    raw = Raw(pop3_server.pop3_address)
    try:
        assert raw.greeting.startswith("+OK")
        for command in ("STAT", "LIST", "RETR 1", "DELE 1", "UIDL", "TOP 1 1", "RSET", "NOOP"):
            assert raw.cmd(command).startswith("-ERR log in first"), command
        assert raw.cmd("PASS secret") == "-ERR send USER first"
        assert raw.cmd("FROB") == "-ERR unknown command 'FROB'"
        assert raw.cmd("") == "-ERR no command"
        assert raw.cmd("STLS").startswith("-ERR STLS is not available")
        assert raw.cmd("USER ann").startswith("+OK")
        assert raw.cmd("PASS wrong") == "-ERR [AUTH] invalid user name or password"
        assert raw.cmd("USER nobody").startswith("+OK")
        assert raw.cmd("PASS secret").startswith("-ERR [AUTH]")
        assert raw.cmd("user ann").startswith("+OK")  # commands are case-insensitive
        assert raw.cmd("pass secret").startswith("+OK logged in, 1 messages")
        assert raw.cmd("USER ann") == "-ERR already logged in"
        assert raw.cmd("RETR 2") == "-ERR no such message: 2"
        assert raw.cmd("RETR 0") == "-ERR no such message: 0"
        assert raw.cmd("RETR x") == "-ERR no such message: x"
        assert raw.cmd("RETR") == "-ERR RETR takes one message number"
        assert raw.cmd("TOP 1") == "-ERR TOP takes a message number and a number of lines"
        assert raw.cmd("TOP 1 -1") == "-ERR TOP takes a message number and a number of lines"
        assert raw.cmd("LIST 1 2") == "-ERR one message number at most"
        assert raw.cmd("DELE 9") == "-ERR no such message: 9"
        assert raw.cmd("STAT").startswith("+OK 1 ")
        assert raw.cmd("QUIT").startswith("+OK")
        assert raw.file.readline() == b""  # closed after QUIT
    finally:
        raw.close()
    logins = pop3_server.mailbox.telemetry.counter("pop3_logins")
    assert logins == {("failed",): 2, ("ok",): 1}
    telemetry = pop3_server.mailbox.telemetry
    wait_until(lambda: telemetry.gauge("pop3_connections") == 0, what="the connection gauge")


def test_pop3_password_may_hold_spaces_and_bcrypt_hashes(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"two words", bcrypt.gensalt(rounds=4)).decode()
    auth_file = tmp_path / "pop3.auth"
    auth_file.write_text(f"# readers\ncarol:{hashed}\n")
    with make_server(pop3_addr="127.0.0.1:0", pop3_auth_file=str(auth_file)) as mp:
        login(mp, "carol", "two words").quit()
        with pytest.raises(poplib.error_proto, match="AUTH"):
            login(mp, "carol", "two")


def test_pop3_stls_upgrades_then_logs_in() -> None:
    with make_server(
        pop3_addr="127.0.0.1:0",
        pop3_auth=AUTH,
        pop3_tls_cert="sans:localhost,127.0.0.1",
        pop3_starttls=True,  # ours: Mailpit's POP3 has implicit TLS only
    ) as mp:
        send_raw(mp, message("secret mail"))
        client = poplib.POP3(*mp.pop3_address, timeout=10)
        assert "STLS" in client.capa()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client.stls(context)
        assert isinstance(client.sock, ssl.SSLSocket)
        assert "STLS" not in client.capa()  # RFC 2595: not offered once in TLS
        client.user("ann")
        client.pass_("secret")
        assert b"Subject: secret mail" in client.retr(1)[1]
        with pytest.raises(poplib.error_proto, match="already using TLS|before logging in"):
            client._shortcmd("STLS")
        client.quit()


@pytest.mark.parametrize("implicit_flag", [False, True])
def test_pop3_with_a_certificate_is_implicit_tls_as_in_mailpit(implicit_flag: bool) -> None:
    with make_server(
        pop3_addr="127.0.0.1:0",
        pop3_auth=AUTH,
        pop3_tls_cert="sans:localhost",
        pop3_tls_implicit=implicit_flag,  # still accepted, and now what a certificate means
    ) as mp:
        send_raw(mp, message("over tls"))
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        client = poplib.POP3_SSL(*mp.pop3_address, context=context, timeout=10)
        assert "STLS" not in client.capa()
        client.user("bob")
        client.pass_("pa55")
        assert client.stat()[0] == 1
        client.quit()
        # A plain-text client gets no greeting it can read.
        with socket.create_connection(mp.pop3_address, timeout=10) as sock:
            sock.sendall(b"CAPA\r\n")
            assert not sock.recv(100).startswith(b"+OK")


def test_curl_lists_and_fetches_over_pop3(pop3_server: Server) -> None:
    need_command("curl", "curl", "the POP3 tests that use curl")
    raw = (MESSAGES / "attachments-pdf-image.eml").read_bytes()
    msg_id = send_raw(pop3_server, raw)
    send_raw(pop3_server, message("second"))
    port = pop3_server.pop3_address[1]
    url = f"pop3://127.0.0.1:{port}/"
    fetched = subprocess.run(
        ["curl", "-sS", "--user", "ann:secret", url + "1"], capture_output=True, timeout=30
    )
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout == crlf(pop3_server.mailbox.raw(msg_id))
    listing = subprocess.run(
        ["curl", "-sS", "--user", "ann:secret", url], capture_output=True, timeout=30
    )
    assert listing.stdout.split(b"\r\n")[:2] == [
        f"1 {len(pop3_server.mailbox.raw(msg_id))}".encode(),
        f"2 {len(message('second'))}".encode(),
    ]
    refused = subprocess.run(
        ["curl", "-sS", "--user", "ann:nope", url], capture_output=True, timeout=30
    )
    assert refused.returncode != 0


def test_pop3_without_logins_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--pop3 127.0.0.1:1110 needs logins"):
        validate(Config(pop3_addr="127.0.0.1:1110"))
    with pytest.raises(ConfigError, match="--pop3-tls-implicit needs --pop3-tls-cert"):
        validate(Config(pop3_addr="127.0.0.1:0", pop3_auth=AUTH, pop3_tls_implicit=True))
    with pytest.raises(ConfigError, match="--pop3-tls-key is needed"):
        validate(Config(pop3_addr="127.0.0.1:0", pop3_auth=AUTH, pop3_tls_cert="/x.pem"))
    with pytest.raises(ConfigError, match="cannot read /nonexistent"):
        validate(Config(pop3_addr="127.0.0.1:0", pop3_auth_file="/nonexistent"))
    with pytest.raises(ConfigError, match="MP_POP3_AUTH.*not user:password"):
        validate(Config(pop3_addr="127.0.0.1:0", pop3_auth="nocolon"))
    with pytest.raises(ConfigError, match="--pop3-starttls needs --pop3-tls-cert"):
        validate(Config(pop3_addr="127.0.0.1:0", pop3_auth=AUTH, pop3_starttls=True))
    with pytest.raises(ConfigError, match="both kinds of TLS"):
        validate(
            Config(
                pop3_addr="127.0.0.1:0",
                pop3_auth=AUTH,
                pop3_tls_cert="sans:localhost",
                pop3_starttls=True,
                pop3_tls_implicit=True,
            )
        )
    # Off means off: no logins needed.
    validate(Config(pop3_addr="", pop3_auth_file="/nonexistent-but-unused"))


def test_pop3_logins_alone_start_pop3_on_mailpits_address() -> None:
    from mailpit_py.mailaccess.access import access_for

    config = config_from([], {"MP_POP3_AUTH": AUTH})
    access = access_for(config, "pop3")
    assert access is not None and access.addr == "[::]:1110"
    assert access.credentials.entries.keys() == {"ann", "bob"}
    # Without logins POP3 stays off on its default address, silently, as Mailpit's does.
    assert access_for(config_from([], {}), "pop3") is None
    validate(config_from([], {}))
    # --pop3 '' turns it off even with logins.
    assert access_for(config_from(["--pop3", ""], {"MP_POP3_AUTH": AUTH}), "pop3") is None


def test_the_default_pop3_address_takes_ipv4_clients_too(tmp_path: Path) -> None:
    # Mailpit's [::] is dual-stack; a port of our own choosing stands in for 1110 here.
    with make_server(pop3_addr="[::]:0", pop3_auth=AUTH) as mp:
        client = poplib.POP3("127.0.0.1", mp.pop3_address[1], timeout=10)
        client.user("ann")
        client.pass_("secret")
        assert client.stat() == (0, 0)
        client.quit()
    with make_server() as mp:  # no logins: no POP3, and ready all the same
        assert mp.pop3 is None and mp.not_ready() == ""


def test_pop3_flags_and_variables_reach_the_config() -> None:
    env = {"MP_POP3_BIND_ADDR": "127.0.0.1:1110", "MP_POP3_AUTH": AUTH}
    config = config_from([], env)
    assert (config.pop3_addr, config.pop3_auth) == ("127.0.0.1:1110", AUTH)
    config = config_from(
        ["--pop3", "127.0.0.1:0", "--pop3-tls-cert", "sans:x", "--pop3-tls-implicit"], env
    )
    assert config.pop3_addr == "127.0.0.1:0" and config.pop3_tls_implicit


def test_cli_says_how_to_fix_pop3_without_logins() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mailpit_py", "--pop3", "127.0.0.1:0", "-s", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert result.returncode == 2
    assert "--pop3-auth-file" in result.stderr and "MP_POP3_AUTH" in result.stderr


def test_wire_form_stuffs_dots_and_ends_every_line_in_crlf() -> None:
    assert wire_form(b"") == b".\r\n"
    assert wire_form(b"a\r\n.b\r\n..c\r\n.\r\n") == b"a\r\n..b\r\n...c\r\n..\r\n.\r\n"
    assert wire_form(b"bare\nlf\n.x") == b"bare\r\nlf\r\n..x\r\n.\r\n"
    for data in (b"", b"\n", b"a\r\nb\n", b"x\r\r\ny\r", b"no ending", b"a\n\n.b\n"):
        assert wire_size(data) == len(crlf(data)), data
    assert top_of(b"A: 1\n\nl1\nl2\n", 1) == b"A: 1\n\nl1\n"
    assert top_of(b"A: 1\r\nB: 2\r\n", 0) == b"A: 1\r\nB: 2\r\n"  # no body at all


def test_pop3_hangs_up_on_a_client_that_is_not_speaking_pop3(pop3_server: Server) -> None:
    raw = Raw(pop3_server.pop3_address)
    try:
        raw.sock.sendall(b"GET / HTTP/1.1\r\n" * 25)
        answers = [raw.line() for _ in range(21)]
        assert answers[:20] == ["-ERR unknown command 'GET'"] * 20
        assert answers[20] == ""  # closed
    finally:
        raw.close()


def test_pop3_auth_plain_with_and_without_an_initial_response(pop3_server: Server) -> None:
    plain = base64.b64encode(b"\0bob\0pa55").decode()
    raw = Raw(pop3_server.pop3_address)
    try:
        assert raw.cmd("CAPA") == "+OK capability list follows"
        caps = []
        while (line := raw.line()) != ".":
            caps.append(line)
        assert "SASL PLAIN" in caps and "USER" in caps
        assert raw.cmd("AUTH CRAM-MD5") == "-ERR mechanism CRAM-MD5 is not supported; use PLAIN"
        assert raw.cmd("AUTH PLAIN") == "+ "
        assert raw.cmd("*") == "-ERR authentication cancelled"
        assert raw.cmd("AUTH PLAIN !!!").startswith("-ERR not a usable PLAIN response")
        other = base64.b64encode(b"ann\0bob\0pa55").decode()  # act as ann: refused
        assert raw.cmd(f"AUTH PLAIN {other}").startswith("-ERR not a usable PLAIN response")
        assert raw.cmd("AUTH PLAIN") == "+ "
        assert raw.cmd(plain) == "+OK logged in, 0 messages"
        assert raw.cmd(f"AUTH PLAIN {plain}") == "-ERR already logged in"
    finally:
        raw.close()
    raw = Raw(pop3_server.pop3_address)
    try:
        assert raw.cmd(f"AUTH PLAIN {plain}") == "+OK logged in, 0 messages"  # RFC 5034 initial
    finally:
        raw.close()


def test_cli_runs_pop3_and_imap_from_flags_and_variables(tmp_path: Path) -> None:
    auth_file = tmp_path / "logins"
    auth_file.write_text("ann:secret\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(Path(__file__).parent.parent),
        "MP_POP3_AUTH_FILE": str(auth_file),
        "MP_IMAP_BIND_ADDR": "127.0.0.1:0",
    }
    args = ["--pop3", "127.0.0.1:0", "-s", "127.0.0.1:0", "-l", "127.0.0.1:0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailpit_py", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        ports: dict[str, int] = {}
        while len(ports) < 2:
            line = proc.stderr.readline()
            assert line, "the server stopped before listening"
            for proto in ("POP3", "IMAP"):
                m = re.search(rf"{proto} on [\d.]+:(\d+)", line)
                if m:
                    ports[proto] = int(m.group(1))
        pop = poplib.POP3("127.0.0.1", ports["POP3"], timeout=10)
        pop.user("ann")
        pop.pass_("secret")
        assert pop.stat() == (0, 0)
        pop.quit()
        imap = imaplib.IMAP4("127.0.0.1", ports["IMAP"], timeout=10)
        imap.login("ann", "secret")  # IMAP uses the POP3 logins
        assert imap.select()[1] == [b"0"]
        imap.logout()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_pop3_sizes_are_the_octets_sent_for_bare_lf_messages(pop3_server: Server) -> None:
    """RFC 1939 sizes count the message as sent (CRLF line endings, before dot-stuffing): a
    message stored with bare LF endings lists the size RETR then delivers."""
    from mailpit_py.models import Envelope

    bare = b"From: a@example.com\nSubject: bare\n\n.dot line\nlast line without an ending"
    stored = pop3_server.mailbox.deliver(Envelope("a@example.com", ("b@example.org",)), bare)
    stored.result(timeout=10)
    send_raw(pop3_server, message("crlf"))
    client = login(pop3_server)
    try:
        _, listing, _ = client.list()
        sizes = [int(line.split()[1]) for line in listing]
        reply, lines, octets = client.retr(1)
        assert octets == len(crlf(bare)) == sizes[0] != len(bare)
        assert reply == f"+OK {octets} octets".encode()
        assert client.list(1) == f"+OK 1 {octets}".encode()
        assert client.retr(2)[2] == sizes[1] == len(message("crlf"))
        assert client.stat() == (2, sum(sizes))
    finally:
        client.quit()
