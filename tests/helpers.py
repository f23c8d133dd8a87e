"""Test helpers shared by several test modules: SMTP clients, polling, the test messages."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
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


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Stop a process a test started: SIGTERM, then SIGKILL when it is still there after 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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


def need_command(name: str, package: str, what: str) -> str:
    """The path of command `name`; absent, the test skips, except under CI=true where it fails
    (`make test` installs Debian `package` as root, so in CI a missing one is a broken setup)."""
    path = shutil.which(name)
    if path:
        return path
    why = f"{name} is not installed (on PATH)"
    how = f"install it with `make test` as root or `sudo apt-get install -y {package}`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why}: {what} must run in CI; {how}")
    pytest.skip(f"{why}: {how}")


# Messages written for this project, always in the repository (manifest.json says what each
# one is and what parsing must make of it; dkim-keys/ holds the signed ones' public keys).
MESSAGES = REPO / "tests" / "messages"


def external_corpus_path() -> Path:
    """Where the real-world corpus is looked for: $MAILPIT_PY_CORPUS, else ../shared/corpus
    beside the checkout (CI puts it there; it is never copied into the repository)."""
    return Path(os.environ.get("MAILPIT_PY_CORPUS", REPO.parent / "shared" / "corpus"))


def corpus_dir() -> Path:
    """The external real-world corpus; absent is a failure in CI and a skip elsewhere.

    The tests that use it run over the hand-written MESSAGES as well (see CORPORA), so a fresh
    clone skips only their external half.
    """
    path = external_corpus_path()
    if not (path / "manifest.json").is_file():
        where = f"{path}/manifest.json"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                f"CI=true needs the real-world corpus, looked for at {where}: put it at "
                "../shared/corpus beside the checkout or set MAILPIT_PY_CORPUS to its directory"
            )
        pytest.skip(f"the external corpus is absent (looked for {where}; set MAILPIT_PY_CORPUS)")
    return path


# Parametrize a test over both sets: `@pytest.mark.parametrize("which", CORPORA)` and then
# `corpus_root(which)`; the external one skips (fails in CI) where it is absent.
CORPORA = [pytest.param("messages", id="messages"), pytest.param("external", id="external")]


def corpus_root(which: str) -> Path:
    """The hand-written messages ("messages") or the external corpus ("external")."""
    return MESSAGES if which == "messages" else corpus_dir()


def corpus_names(root: Path) -> list[str]:
    """The message files a corpus's manifest.json lists, in its order."""
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    return [entry["file"] for entry in manifest["files"]]


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


def dkim_rsa_key() -> tuple[bytes, str]:
    """A new RSA key for DKIM: (private key PEM, public key base64 for the p= tag)."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, base64.b64encode(der).decode()


def sqlite_steps(store: Any, read: Callable[[], object]) -> int:
    """SQLite virtual machine steps, in hundreds, that `read` takes on an in-memory store (whose
    reads run on the writer's one connection): the rows a query walks, counted without a clock."""
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0

    store.index_barrier()  # the search index's writes share the connection: none now
    conn = store._wconn
    conn.set_progress_handler(tick, 100)
    try:
        read()
    finally:
        conn.set_progress_handler(None, 0)
    return steps
