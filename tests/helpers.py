"""Test helpers shared by several test modules: SMTP clients, polling, the corpus."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from simple_websocket import Client as SimpleWsClient

from mailpit_py.config.settings import Config
from mailpit_py.server import Server

REPO = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        pause.wait(0.005)


def make_server(**overrides: Any) -> Server:
    cfg = {
        "smtp_addr": "127.0.0.1:0",
        "http_addr": "127.0.0.1:0",
        "database": ":memory:",
        "smtp_hostname": "test.local",
    }
    cfg.update(overrides)
    return Server(Config(**cfg))


class RawClient:
    """A line-level SMTP client on a real socket, for what smtplib will not send."""

    def __init__(self, address: tuple[str, int], timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> str:
        """One whole (possibly multi-line) reply, lines joined with newlines."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            lines.append(line.decode().rstrip("\r\n"))
            if line[3:4] != b"-":
                return "\n".join(lines)

    def cmd(self, line: str) -> str:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def send_raw(mp: Server, raw: bytes, rcpt: str = "rcpt@example.org") -> str:
    """Send raw bytes over SMTP (8BITMIME) as one message; returns the new message's ID."""
    import smtplib

    with smtplib.SMTP(*mp.smtp_address) as client:
        client.ehlo()
        client.mail("sender@example.com", ["BODY=8BITMIME"])
        client.rcpt(rcpt)
        code, reply = client.data(raw)
        assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[1]


def corpus_dir() -> Path:
    """The shared real-world corpus; absent is a failure in CI and a skip elsewhere."""
    path = Path(os.environ.get("MAILPIT_PY_CORPUS", REPO.parent / "shared" / "corpus"))
    if not (path / "manifest.json").is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the corpus is missing at {path} (set MAILPIT_PY_CORPUS)")
        pytest.skip(f"the corpus is absent at {path}")
    return path


class WsClient(SimpleWsClient):
    """simple_websocket's client, keeping a frame that arrived in the same read as the
    handshake's response.

    simple_websocket 1.1.0 takes only the first event (the accepted handshake) from that read,
    and its reader thread looks at the rest only once more data comes in: a server that sends
    a frame right after its 101 (ours sends a stats frame on subscribing) had that frame held
    back until the next one, so a test waiting for it timed out whenever both came in one
    read (a CI run under load).
    """

    def handshake(self) -> None:
        super().handshake()
        # Still before the reader thread starts: the events left in wsproto's buffer go
        # where the thread would have put them.
        self.connected = self._handle_events()
