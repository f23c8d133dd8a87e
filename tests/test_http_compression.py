"""gzip-compressed HTTP answers, as Mailpit's: asked for by Accept-Encoding, off by a flag."""

from __future__ import annotations

import base64
import gzip
import json
import random
import socket
import subprocess
from collections.abc import Iterator

import pytest
from test_api import PNG, send

from helpers import make_server, need_command
from mailpit_py.server import Server


@pytest.fixture
def mp() -> Iterator[Server]:
    with make_server(max_messages=0) as server:
        yield server


def raw_get(mp: Server, path: str, *headers: str) -> tuple[int, dict[str, str], bytes]:
    """One GET on a raw socket: status, headers (lower-case names) and the body as sent (chunked
    transfer decoded, content encoding left alone)."""
    host, port = mp.http_address
    lines = [f"GET /{path.lstrip('/')} HTTP/1.1", f"Host: localhost:{port}", *headers]
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *rest = head.decode("latin-1").split("\r\n")
    fields: dict[str, str] = {}
    for line in rest:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if fields.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return int(status_line.split()[1]), fields, body


def dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out += data[:size]
        data = data[size + 2 :]


def message_with(n: int) -> bytes:
    lines = "\r\n".join(f"Line {i} of a long and repetitive body." for i in range(n))
    return (
        "From: a@example.com\r\nTo: b@example.com\r\nSubject: long\r\n"
        f"Message-ID: <long{n}@example.com>\r\n\r\n{lines}\r\n"
    ).encode()


def test_json_is_gzipped_for_a_client_that_asks_with_a_right_content_length(mp: Server) -> None:
    for i in range(20):
        send(mp, message_with(3 + i))
    plain_code, plain_head, plain_body = raw_get(mp, "api/v1/messages")
    code, head, body = raw_get(mp, "api/v1/messages", "Accept-Encoding: gzip, deflate")
    assert (plain_code, code) == (200, 200)
    assert "content-encoding" not in plain_head
    assert head["content-encoding"] == "gzip"
    assert "Accept-Encoding" in head["vary"] and "Accept-Encoding" in plain_head["vary"]
    assert int(head["content-length"]) == len(body) < len(plain_body)
    assert json.loads(gzip.decompress(body)) == json.loads(plain_body)


@pytest.mark.parametrize("accept", ["gzip;q=0", "identity", "br", "deflate;q=1, gzip;q=0.000"])
def test_no_gzip_unless_the_client_accepts_it(mp: Server, accept: str) -> None:
    send(mp, message_with(50))
    code, head, body = raw_get(mp, "api/v1/messages", f"Accept-Encoding: {accept}")
    assert code == 200 and "content-encoding" not in head
    assert "Accept-Encoding" in head["vary"]  # a cache keeps this answer apart from gzipped ones
    assert json.loads(body)["total"] == 1


def test_a_big_raw_message_streams_compressed_and_whole(mp: Server) -> None:
    raw = message_with(40_000)  # about 1.5 MB: more than is held back to measure
    send(mp, raw)
    code, head, body = raw_get(mp, "api/v1/message/latest/raw", "Accept-Encoding: gzip")
    assert code == 200 and head["content-encoding"] == "gzip"
    assert head["transfer-encoding"] == "chunked" and "content-length" not in head
    assert len(body) < len(raw) // 5
    assert gzip.decompress(body) == raw


def test_curl_compressed_reads_the_api_the_ui_and_a_raw_message(mp: Server) -> None:
    curl = need_command("curl", "curl", "the compression test reads answers with curl")
    raw = message_with(30_000)
    send(mp, raw)
    base = mp.http_url
    for path, expected in (("api/v1/message/latest/raw", raw), ("", None)):
        out = subprocess.run(
            [curl, "-sS", "--compressed", "-D", "-", "-o", "-", base + path],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        head, _, body = out.partition(b"\r\n\r\n")
        assert b"content-encoding: gzip" in head.lower(), head
        if expected is not None:
            assert body == expected
        else:
            assert b"<html" in body.lower()
        plain = subprocess.run(
            [curl, "-sS", "-D", "-", "-o", "/dev/null", base + path],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        assert b"content-encoding" not in plain.lower()


def test_already_compressed_parts_and_tiny_answers_are_sent_as_they_are(mp: Server) -> None:
    png = PNG + bytes(random.Random(1).randbytes(4000))
    raw = (
        "From: a@example.com\r\nTo: b@example.com\r\nSubject: pic\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nsee the picture\r\n"
        '--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename="p.png"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{base64.encodebytes(png).decode()}\r\n"
        '--b\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename="t.csv"\r\n'
        f"\r\n{'a,b,c' * 100}\r\n--b--\r\n"
    ).encode()
    send(mp, raw)
    code, head, body = raw_get(mp, "api/v1/message/latest/part/2", "Accept-Encoding: gzip")
    assert code == 200 and "content-encoding" not in head and body == png
    code, head, body = raw_get(mp, "api/v1/message/latest/part/3", "Accept-Encoding: gzip")
    assert code == 200 and head["content-encoding"] == "gzip"
    assert gzip.decompress(body).startswith(b"a,b,ca,b,c")
    code, head, body = raw_get(mp, "livez", "Accept-Encoding: gzip")
    assert code == 200 and "content-encoding" not in head


def test_the_websocket_is_never_compressed(mp: Server) -> None:
    host, port = mp.http_address
    key = base64.b64encode(b"0123456789abcdef").decode()
    request = (
        f"GET /api/events HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Accept-Encoding: gzip, deflate, br\r\n\r\n"
    )
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 101")
    assert "content-encoding" not in head
    send(mp, message_with(100))  # while the same server gzips its other answers
    code, fields, _ = raw_get(mp, "api/v1/messages", "Accept-Encoding: gzip")
    assert code == 200 and fields["content-encoding"] == "gzip"


@pytest.mark.parametrize("off", [False, True])
def test_disable_http_compression_turns_it_off(off: bool) -> None:
    with make_server(disable_http_compression=off) as mp:
        send(mp, message_with(200))
        code, head, body = raw_get(mp, "api/v1/messages", "Accept-Encoding: gzip")
        assert code == 200 and ("content-encoding" not in head) == off
        assert json.loads(body if off else gzip.decompress(body))["total"] == 1


def test_the_metrics_listener_of_its_own_gzips_too() -> None:
    with make_server(enable_prometheus="127.0.0.1:0") as mp:
        assert mp.metrics_http is not None
        host, port = mp.metrics_http.address
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(
                f"GET /metrics HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Accept-Encoding: gzip\r\n\r\n".encode()
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-encoding: gzip" in head.lower(), head
    assert b"mailpit_" in gzip.decompress(body)
