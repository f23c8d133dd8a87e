"""A client that half-closes its side of the connection (shutdown(SHUT_WR), `nc -N`) still
hears every reply to what it sent, and the session ends at once instead of at the idle timeout."""

from __future__ import annotations

import socket
from pathlib import Path

from helpers import make_server, wait_until


def read_to_eof(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server says until it closes; fails if it has not closed by `timeout`."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_half_close_before_the_greeting_gets_the_greeting_and_a_close(tmp_path: Path) -> None:
    # A load balancer's TCP check does this; held until the idle timeout, such connections pile
    # up and the balancer steers away from the instance. The idle timeout here is an hour, the
    # wait for the close (its deadline only) 30 s: a close at all is the half-close's doing.
    with make_server(database=str(tmp_path / "mail.db"), smtp_timeout=3600) as mp:
        for _ in range(5):
            with socket.create_connection(mp.smtp_address) as sock:
                sock.shutdown(socket.SHUT_WR)
                said = read_to_eof(sock, timeout=30)
                assert said.startswith(b"220 "), said


def test_a_whole_session_piped_then_half_closed_is_answered_and_stored(tmp_path: Path) -> None:
    session = (
        b"EHLO pipe.example\r\n"
        b"MAIL FROM:<a@example.org>\r\n"
        b"RCPT TO:<b@example.org>\r\n"
        b"DATA\r\n"
        b"Subject: piped\r\n\r\nsent in one go, then the client half-closed\r\n.\r\n"
        b"QUIT\r\n"
    )
    with make_server(database=str(tmp_path / "mail.db"), smtp_timeout=60) as mp:
        with socket.create_connection(mp.smtp_address) as sock:
            sock.sendall(session)
            sock.shutdown(socket.SHUT_WR)
            said = read_to_eof(sock, timeout=30).decode()
        codes = [line[:4] for line in said.splitlines() if line[3:4] == " "]
        assert codes == ["220 ", "250 ", "250 ", "250 ", "354 ", "250 ", "221 "], said
        wait_until(lambda: mp.mailbox.counts()[0] == 1, what="the piped message stored")


def test_half_close_mid_command_line_ends_the_session_without_a_reply(tmp_path: Path) -> None:
    with make_server(database=str(tmp_path / "mail.db"), smtp_timeout=60) as mp:
        with socket.create_connection(mp.smtp_address) as sock:
            sock.sendall(b"EHLO cut.example\r\nMAIL FROM:<a@exa")
            sock.shutdown(socket.SHUT_WR)
            said = read_to_eof(sock, timeout=30).decode()
        assert said.startswith("220 ") and "250" in said
        assert "MAIL" not in said and said.count("\r\n") == said.count("\n")
        assert not [line for line in said.splitlines() if line[:1] in ("4", "5")], said
