"""Resources under HTTP load: descriptors, memory and threads stay bounded over thousands of
requests and websockets, half-sent requests are cut after the header timeout without a thread
each, and neither timeout cuts a healthy websocket or a slow download."""

from __future__ import annotations

import http.client
import os
import re
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import mailpit_py.net.http as mp_http
from helpers import REPO, WsClient, wait_until
from mailpit_py.server import Server

MESSAGE = b"From: ann@example.com\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\nHello.\r\n"


def proc_status(pid: int) -> tuple[int, int, int]:
    """(open descriptors, threads, resident KB) of a process."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    status = Path(f"/proc/{pid}/status").read_text()
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return fds, threads, rss


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.fixture
def process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """A real mailpit-py process on a database file: (process, HTTP port, SMTP port)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailpit_py",
            "--smtp",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
            "--database",
            str(tmp_path / "mail.db"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        m = re.search(
            r"SMTP on 127\.0\.0\.1:(\d+), web UI and API on http://127\.0\.0\.1:(\d+)/", banner
        )
        assert m, banner
        yield proc, int(m.group(2)), int(m.group(1))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_thousands_of_requests_and_websockets_leave_no_descriptors_memory_or_threads(
    process: tuple[subprocess.Popen[str], int, int],
) -> None:
    proc, port, smtp_port = process
    with smtplib.SMTP("127.0.0.1", smtp_port) as client:
        client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE)
    paths = ["/api/v1/messages", "/readyz", "/api/v1/message/latest/raw", "/api/v1/info"]
    for i in range(100):  # warm-up: caches, the read pool, the first worker threads
        assert get(port, paths[i % len(paths)]) == 200
    fds0, threads0, rss0 = proc_status(proc.pid)
    for i in range(2000):
        assert get(port, paths[i % len(paths)]) == 200
    base = f"ws://127.0.0.1:{port}/api/events"
    for _ in range(200):
        ws = WsClient.connect(base)
        assert '"Type":"stats"' in (ws.receive(timeout=10) or "").replace(" ", "")
        ws.close()

    def settled() -> bool:
        # A websocket's handler notices its client left within a second or so.
        fds, threads, _ = proc_status(proc.pid)
        return fds < fds0 + 20 and threads <= threads0 + mp_http.MAX_THREADS

    wait_until(settled, timeout=30, what="descriptors back near their warm-up count")
    fds, threads, rss = proc_status(proc.pid)
    # Before the read pool, each request's thread left its own SQLite connection open:
    # +2 descriptors and ~140 KB per request, thousands after this loop.
    assert fds < fds0 + 20, (fds0, fds)
    assert threads <= threads0 + mp_http.MAX_THREADS, (threads0, threads)
    assert rss < rss0 + 60_000, (rss0, rss)  # KB: far from 2,000 x 140 KB


@pytest.fixture
def tight(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short limits for the next server started: a 2 s header timeout, 8 threads, 100
    connections, a 0.5 s idle timeout."""
    monkeypatch.setattr(mp_http, "HEADER_TIMEOUT", 2.0, raising=False)
    monkeypatch.setattr(mp_http, "MAX_THREADS", 8, raising=False)
    monkeypatch.setattr(mp_http, "MAX_CONNECTIONS", 100, raising=False)
    monkeypatch.setattr(mp_http, "IDLE_TIMEOUT", 0.5, raising=False)


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes the connection (fails at the deadline)."""
    data = b""
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(4096)
        except TimeoutError as exc:
            raise AssertionError(f"still open at the deadline; got {data!r}") from exc
        if not chunk:
            return data
        data += chunk


def slow_download(mp: Server, body: bytes) -> bytes:
    """The latest message's raw bytes, read by a client slower than the server can send."""
    sock = socket.create_connection(mp.http_address, timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(b"GET /api/v1/message/latest/raw HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    pace = threading.Event()  # never set: the reader's own pace, up to 64 KB per 50 ms
    while chunk := sock.recv(65536):
        received += chunk
        pace.wait(0.05)
    sock.close()
    head, _, raw = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    length = re.search(rb"Content-Length: (\d+)", head)
    assert length and int(length.group(1)) == len(raw) > len(body)  # all of it, uncut
    return raw


def test_half_sent_requests_hold_no_threads_and_are_cut_after_the_header_timeout(
    tight: None, server_factory: Callable[..., Server]
) -> None:
    mp = server_factory()
    host, port = mp.http_address
    # More websockets than request threads (8): they have threads of their own.
    sockets = [
        WsClient.connect(mp.http_url.replace("http://", "ws://") + "api/events") for _ in range(12)
    ]
    for each in sockets:
        assert "stats" in (each.receive(timeout=10) or "")
    ws = sockets[0]
    before = len(threading.enumerate())
    assert mp.http is not None
    workers = mp.http.server.threads()
    slow: list[socket.socket] = []
    try:
        for _ in range(80):  # (with the 12 websockets, 92 of the 100 connections allowed)
            sock = socket.create_connection((host, port), timeout=10)
            sock.sendall(b"GET /api/v1/messages HTT")  # and never the rest
            slow.append(sock)
        # A whole request is served while the half-sent ones wait (the socket's timeout is only
        # the deadline of the wait): it took one worker of the pool of 8, they took none, so
        # it queued behind none of them.
        assert get(port, "/api/v1/messages") == 200
        assert mp.http.server.threads() <= workers + 1, mp.http.server.threads() - workers
        # It is answered before the half-sent ones are cut (accepted before it).
        slow[-1].setblocking(False)
        with pytest.raises(BlockingIOError):
            slow[-1].recv(1)
        # werkzeug's server had started a thread for each; here they wait in one selector.
        assert len(threading.enumerate()) < before + 8, len(threading.enumerate()) - before
        deadline = time.monotonic() + 2.0 + 10
        for sock in slow:
            answer = read_until_closed(sock, deadline)
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert b"request headers not complete within 2 s" in answer
        # The websocket, quiet all along (four idle timeouts and more), was not cut.
        assert ws.receive(timeout=0.1) is None
        with smtplib.SMTP(*mp.smtp_address) as client:
            client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE)
        frames = [ws.receive(timeout=10) or "" for _ in range(2)]
        assert any('"new"' in f for f in frames), frames
    finally:
        for each in sockets:
            each.close()
        for sock in slow:
            sock.close()
    # Nor is a download that takes many idle timeouts, each of its stalls shorter than one.
    body = b"x" * (3 << 20)
    with smtplib.SMTP(*mp.smtp_address) as client:
        client.sendmail("ann@example.com", ["bob@example.com"], MESSAGE + body)
    started = time.monotonic()
    assert slow_download(mp, body).rstrip().endswith(b"x" * 1000)
    assert time.monotonic() - started > 1.0


def test_connections_beyond_the_limit_are_refused_with_503(
    tight: None, server_factory: Callable[..., Server]
) -> None:
    mp = server_factory()
    host, port = mp.http_address
    held: list[socket.socket] = []
    try:
        for _ in range(100):
            held.append(socket.create_connection((host, port), timeout=10))
        # Accepted after those 100 (one accept loop, in order), when they are all open.
        extra = socket.create_connection((host, port), timeout=10)
        answer = read_until_closed(extra, time.monotonic() + 10)
        extra.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"too many connections" in answer
    finally:
        for sock in held:
            sock.close()
    # Once they are gone, new connections are served again.
    wait_until(lambda: get(port, "/livez") == 200, what="served again")


def test_reads_from_many_short_lived_threads_keep_a_bounded_pool(tmp_path: Path) -> None:
    from mailpit_py.store.sqlite import READ_POOL, Store

    path = str(tmp_path / "pool.db")
    store = Store(path)

    def descriptors() -> int:
        """This process's descriptors open on the database, its WAL or its shared memory."""
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                count += os.readlink(f"/proc/self/fd/{fd}").startswith(path)
            except OSError:
                pass  # closed meanwhile
        return count

    def burst() -> None:
        """40 threads reading at once, each ending after its read."""
        gate = threading.Barrier(40)

        def read() -> None:
            with store.reading() as conn:
                assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)
                gate.wait(timeout=10)  # 40 connections in use together

        threads = [threading.Thread(target=read) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)

    try:
        burst()
        # (SQLite keeps the descriptor of a connection closed while others hold locks on the
        # same file, and reuses it for the next one opened: what a burst opened stays open.)
        after_one = descriptors()
        for _ in range(4):
            burst()
        for _ in range(100):  # one after another: a pooled connection each time
            t = threading.Thread(target=store.counts)
            t.start()
            t.join(timeout=30)
        # A connection per thread stayed open after its thread ended: 260 more here, two or
        # three descriptors each.
        assert descriptors() <= after_one + 3, (after_one, descriptors())
        assert store.read_connections() <= READ_POOL
    finally:
        store.close()
