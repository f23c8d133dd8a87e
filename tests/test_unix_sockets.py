"""Unix-socket listeners as Mailpit spells them (unix:PATH:MODE): HTTP with curl, SMTP raw."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import REPO, make_server, need_command, wait_until
from mailpit_py.config.errors import ConfigError
from mailpit_py.net.loopthread import AddressInUse


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A socket's path must fit in 108 bytes: pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="mp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def curl_json(curl: str, sock: Path, path: str) -> object:
    out = subprocess.run(
        [curl, "-sS", "--fail", "--unix-socket", str(sock), f"http://localhost/{path}"],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    return json.loads(out)


def smtp_over(sock_path: Path, message: bytes) -> list[bytes]:
    """One SMTP session on a raw AF_UNIX socket; the server's replies, one per step."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(sock_path))
        reader = sock.makefile("rb")

        def reply() -> bytes:
            while True:
                line = reader.readline()
                assert line, "the server closed the connection"
                if line[3:4] != b"-":
                    return line

        replies = [reply()]
        for command in (
            b"EHLO unix.test",
            b"MAIL FROM:<a@example.com>",
            b"RCPT TO:<b@example.com>",
        ):
            sock.sendall(command + b"\r\n")
            replies.append(reply())
        sock.sendall(b"DATA\r\n")
        replies.append(reply())
        sock.sendall(message + b"\r\n.\r\n")
        replies.append(reply())
        sock.sendall(b"QUIT\r\n")
        replies.append(reply())
        reader.close()
    return replies


def test_http_and_smtp_on_unix_sockets_with_their_modes(short_dir: Path) -> None:
    curl = need_command("curl", "curl", "the Unix-socket test reads the API with curl")
    http_sock, smtp_sock = short_dir / "http.sock", short_dir / "smtp.sock"
    with make_server(smtp_addr=f"unix:{smtp_sock}:0600", http_addr=f"unix:{http_sock}:0660") as mp:
        assert stat.S_ISSOCK(os.stat(http_sock).st_mode)
        assert stat.S_IMODE(os.stat(http_sock).st_mode) == 0o660
        assert stat.S_IMODE(os.stat(smtp_sock).st_mode) == 0o600
        replies = smtp_over(smtp_sock, b"Subject: through a socket file\r\n\r\nhello")
        assert [r[:3] for r in replies] == [b"220", b"250", b"250", b"250", b"354", b"250", b"221"]
        listed = curl_json(curl, http_sock, "api/v1/messages")
        assert isinstance(listed, dict)
        assert [m["Subject"] for m in listed["messages"]] == ["through a socket file"]
        assert mp.not_ready() == ""
    # Mailpit removes its socket files at exit.
    assert not http_sock.exists() and not smtp_sock.exists()


def test_a_stale_socket_file_is_replaced_and_a_live_one_refused(short_dir: Path) -> None:
    path = short_dir / "http.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a killed process leaves
    with make_server(http_addr=f"unix:{path}:0666") as mp:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
        with pytest.raises(AddressInUse, match=f"socket already in use: {re.escape(str(path))}"):
            make_server(http_addr=f"unix:{path}:0666").start()
        assert mp.not_ready() == ""  # the refused second server left the first one's file
        assert stat.S_ISSOCK(os.stat(path).st_mode)


def test_a_file_that_is_not_a_socket_is_never_removed(short_dir: Path) -> None:
    path = short_dir / "notes.txt"
    path.write_text("keep me")
    with pytest.raises(AddressInUse, match="is not a socket"):
        make_server(smtp_addr=f"unix:{path}:0666").start()
    assert path.read_text() == "keep me"


@pytest.mark.parametrize(
    "addr", ["unix:/tmp/mp.sock", "unix:/tmp/mp.sock:666x", "unix::0666", "unix:/tmp/a:99"]
)
def test_a_malformed_unix_address_says_how_to_write_one(addr: str) -> None:
    with pytest.raises(ConfigError, match=r"unix:PATH:MODE, e\.g\. unix:/run/mailpit\.sock:0660"):
        make_server(http_addr=addr)


def test_the_cli_starts_on_unix_sockets_and_says_where(short_dir: Path) -> None:
    curl = need_command("curl", "curl", "the Unix-socket test reads the API with curl")
    http_sock, smtp_sock = short_dir / "h.sock", short_dir / "s.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MP_")}
    env["MP_UI_BIND_ADDR"] = f"unix:{http_sock}:0666"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailpit_py", "--smtp", f"unix:{smtp_sock}:0666"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = ""
        while "SMTP on" not in line:
            line = proc.stderr.readline()
            assert line, "the server stopped before listening"
        assert f"SMTP on unix:{smtp_sock}:0666" in line
        assert f"web UI and API on unix:{http_sock}:0666" in line
        info = curl_json(curl, http_sock, "api/v1/info")
        assert isinstance(info, dict) and "Version" in info
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    wait_until(lambda: not http_sock.exists() and not smtp_sock.exists(), what="files removed")


def test_readyz_probes_a_unix_socket_listener(short_dir: Path) -> None:
    sock = short_dir / "ui.sock"
    addr = f"unix:{sock}:0660"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MP_")}

    def readyz(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailpit_py", "readyz", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env | extra,
            timeout=60,
        )

    with make_server(http_addr=addr, webroot="/mail/"):
        done = readyz("-l", addr, "--webroot", "/mail/")
        assert done.returncode == 0, done.stderr
        assert f"ready: unix:{sock}" in done.stdout
        done = readyz(MP_UI_BIND_ADDR=addr, MP_WEBROOT="/mail/")  # a container's health check
        assert done.returncode == 0, done.stderr
    done = readyz("-l", addr)
    assert done.returncode == 1 and "cannot reach unix:" in done.stderr
