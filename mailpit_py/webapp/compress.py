"""gzip for the HTTP answers of clients that accept it, as Mailpit compresses (WSGI middleware)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# Bodies shorter than this go as they are: gzip's 20 bytes of framing would outweigh the gain.
MIN_SIZE = 256
# A body is held back up to this size to learn whether it ends (it is then sent whole, with a
# Content-Length); a longer one (a big raw message) is compressed as it streams, chunked.
HOLD_BACK = 256 * 1024
LEVEL = 6  # Go's gzip.DefaultCompression, Mailpit's level

# Types worth compressing. Images, archives, audio, video and fonts are compressed already:
# gzip would cost time and gain nothing (Mailpit gzips those too).
_TEXT_TYPES = (
    "application/json",
    "application/javascript",
    "application/xml",
    "application/xhtml+xml",
    "application/x-javascript",
    "application/manifest+json",
    "image/svg+xml",
    "message/rfc822",
)

StartResponse = Callable[..., Any]


def compressible(content_type: str) -> bool:
    """Whether answers of this Content-Type are sent gzipped to clients that accept it."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "text/event-stream":  # each event must reach the client as it is written
        return False
    return kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith(("+json", "+xml"))


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (`gzip;q=0` refuses it, `*` allows it)."""
    wildcard = None
    for item in header.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        name = name.lower()
        if name in ("gzip", "x-gzip"):
            return quality > 0
        if name == "*":
            wildcard = quality > 0
    return bool(wildcard)


class Compress:
    """Wraps a WSGI app: compressible answers are gzipped for clients that send
    `Accept-Encoding: gzip`, with `Vary: Accept-Encoding` for caches; never a websocket, a
    HEAD, a partial (206) or an already encoded answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            return self.app(environ, start_response)  # the socket is handed to the websocket
        wanted = environ.get("REQUEST_METHOD") != "HEAD" and accepts_gzip(
            environ.get("HTTP_ACCEPT_ENCODING", "")
        )
        held: dict[str, Any] = {}

        def hold(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            held.update(status=status, headers=headers, exc_info=exc_info)
            return _no_write

        body = self.app(environ, hold)
        chunks = iter(body)
        first: list[bytes] = []
        if not held:  # an app may call start_response at its first chunk only
            first = [next(chunks, b"")]
        status: str = held["status"]
        headers: list[tuple[str, str]] = held["headers"]
        if self._candidate(status, headers):
            headers = _vary(headers)
        else:
            wanted = False
        if not wanted:
            start_response(status, headers, held["exc_info"])
            return _chain(first, chunks, body) if first else body
        size = sum(len(c) for c in first)
        for chunk in chunks:
            first.append(chunk)
            size += len(chunk)
            if size > HOLD_BACK:
                break
        else:  # the whole body is here
            _close(body)
            data = b"".join(first)
            if len(data) < MIN_SIZE:
                start_response(status, headers, held["exc_info"])
                return [data]
            packed = gzip.compress(data, LEVEL, mtime=0)
            headers = _encoded(headers, len(packed))
            start_response(status, headers, held["exc_info"])
            return [packed]
        start_response(status, _encoded(headers, None), held["exc_info"])
        return _stream(first, chunks, body)

    @staticmethod
    def _candidate(status: str, headers: list[tuple[str, str]]) -> bool:
        code = status.split(" ", 1)[0]
        if code in ("204", "206", "304") or code.startswith("1"):
            return False
        names = {name.lower(): value for name, value in headers}
        if "content-encoding" in names or "content-range" in names:
            return False
        return compressible(names.get("content-type", ""))


def _no_write(data: bytes) -> None:
    raise RuntimeError("the legacy WSGI write() is not supported with compression")


def _vary(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out, done = [], False
    for name, value in headers:
        if name.lower() == "vary":
            done = True
            if "accept-encoding" not in value.lower() and value.strip() != "*":
                value = f"{value}, Accept-Encoding"
        out.append((name, value))
    if not done:
        out.append(("Vary", "Accept-Encoding"))
    return out


def _encoded(headers: list[tuple[str, str]], length: int | None) -> list[tuple[str, str]]:
    """The headers of the gzipped body: its own length (None: chunked) and a weak ETag, as the
    bytes differ from the plain answer's."""
    out = []
    for name, value in headers:
        low = name.lower()
        if low == "content-length":
            continue
        if low == "etag" and not value.startswith("W/"):
            value = "W/" + value
        out.append((name, value))
    out.append(("Content-Encoding", "gzip"))
    if length is not None:
        out.append(("Content-Length", str(length)))
    return out


def _chain(first: list[bytes], rest: Iterator[bytes], body: Iterable[bytes]) -> Iterator[bytes]:
    try:
        yield from first
        yield from rest
    finally:
        _close(body)


def _stream(first: list[bytes], rest: Iterator[bytes], body: Iterable[bytes]) -> Iterator[bytes]:
    packer = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)  # 31: the gzip container
    try:
        for source in (first, rest):
            for chunk in source:
                out = packer.compress(chunk)
                if out:
                    yield out
        yield packer.flush()
    finally:
        _close(body)


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()
