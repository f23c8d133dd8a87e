"""Serves the Flask app in-process on a bounded threaded WSGI server (port 0 supported)."""

from __future__ import annotations

import io
import logging
import queue
import re
import selectors
import socket
import ssl
import threading
import time
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler

from mailpit_py.config.values import split_hostport
from mailpit_py.net.listen import (
    ALL_INTERFACES,
    bind,
    bind_unix,
    remove_socket_file,
    socket_file,
    unix_address,
)
from mailpit_py.net.loopthread import AddressInUse

log = logging.getLogger("mailpit_py.http")

# A client has this long (seconds) from connecting to sending its request line and headers.
# Until then its connection waits in one selector thread, not in a thread of its own: 2,000
# half-sent requests held 2,000 threads for over a minute when each had a thread.
HEADER_TIMEOUT = 10.0
# Once its headers are in, a request may stall this long in any one read of its body or write
# of its response; a slow download that keeps moving is never cut. Websockets have no such
# timeout: /api/events pings its clients itself.
IDLE_TIMEOUT = 60.0
# Requests handled at once, each in a thread of a pool that never grows past this (an open
# websocket does not: see MAX_WEBSOCKETS); requests beyond it wait, headers read, for a free
# thread.
MAX_THREADS = 64
# Websockets open at once, each in a thread of its own outside that pool (they last as long as
# a browser tab, and must not leave requests waiting); one beyond this is answered 503.
MAX_WEBSOCKETS = 256
# Connections open at once (waiting for headers, waiting for a thread, or handled); a new one
# beyond this is answered 503 and closed, so no client can pile up descriptors without end.
MAX_CONNECTIONS = 1024
# Request line and headers larger than this are refused with 431.
MAX_HEADER_BYTES = 64 * 1024


_WEBSOCKET = re.compile(rb"\nupgrade:[ \t]*websocket", re.IGNORECASE)


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to debug logging, not stderr: one line per message is what users read."""

    server: _BoundedServer

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug('%s "%s" %s %s', self.address_string(), self.requestline, code, size)

    def setup(self) -> None:
        super().setup()
        prefix = self.server.taken_bytes()
        if prefix:
            # The selector thread already read the headers (and maybe some body): they are
            # read again from here, then the socket.
            self.rfile = io.BufferedReader(_Prefixed(prefix, self.rfile))

    def run_wsgi(self) -> None:
        if self.headers.get("Upgrade", "").lower() == "websocket":
            # A websocket is long-lived and mostly quiet; its handler pings the client itself.
            self.connection.settimeout(None)
        super().run_wsgi()


class _Prefixed(io.RawIOBase):
    """Bytes already taken from a socket, then the socket's own reader."""

    def __init__(self, prefix: bytes, inner: Any) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._inner = inner  # the handler's buffered reader of the socket (nothing read yet)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        result: int | None = self._inner.raw.readinto(buffer)
        return result

    def close(self) -> None:
        if not self.closed:
            self._inner.close()  # lets the socket really close (it counts its open readers)
        super().close()


class _Pending:
    """A connection whose request headers are not complete yet."""

    __slots__ = ("sock", "address", "deadline", "data", "handshaken")

    def __init__(self, sock: socket.socket, address: Any, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.deadline = deadline
        self.data = bytearray()
        self.handshaken = not isinstance(sock, ssl.SSLSocket)


class _BoundedServer(BaseWSGIServer):
    """werkzeug's WSGI server with a bounded pool of threads and header and idle timeouts.

    werkzeug's threaded server starts a thread per connection with no limit and no timeout:
    a client that sends half a request holds a thread for as long as it likes.
    """

    multithread = True
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._serving = False  # (werkzeug's __init__ calls server_close before we are set up)
        super().__init__(*args, **kwargs)
        self.header_timeout = HEADER_TIMEOUT
        self.idle_timeout = IDLE_TIMEOUT
        self.max_threads = MAX_THREADS
        self.max_connections = MAX_CONNECTIONS
        self.max_websockets = MAX_WEBSOCKETS
        self._websockets = 0
        self._lock = threading.Lock()
        self._open = 0  # connections accepted and not closed yet
        self._workers = 0
        self._idle_workers = 0
        self._unclaimed = 0  # requests queued for a worker and not taken yet
        self._ready: queue.SimpleQueue[tuple[socket.socket, Any, bytes] | None] = (
            queue.SimpleQueue()
        )
        self._arrivals: queue.SimpleQueue[tuple[socket.socket, Any]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._stopping = False
        self._local = threading.local()
        self._gate = threading.Thread(target=self._gate_loop, name="http-headers", daemon=True)
        self._gate.start()
        self._serving = True

    # -- accepting (serve_forever's thread) --------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            full = self._open >= self.max_connections
            if not full:
                self._open += 1
        if full:
            log.warning(
                "HTTP: %d connections open, the most allowed; refusing %s",
                self.max_connections,
                client_address,
            )
            _refuse(request, 503, "too many connections open at once; try again shortly")
            return
        self._arrivals.put((request, client_address))
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # already woken (its buffer is full) or closing

    # -- waiting for headers (one thread for every connection) --------------------------------

    def _gate_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ)
        pending: dict[socket.socket, _Pending] = {}
        while not self._stopping:
            now = time.monotonic()
            soonest = min((p.deadline for p in pending.values()), default=None)
            events = sel.select(None if soonest is None else max(soonest - now, 0.0))
            for key, _ in events:
                if key.fileobj is self._wake_r:
                    try:
                        self._wake_r.recv(4096)
                    except OSError:
                        pass
                    while True:
                        try:
                            item = self._arrivals.get_nowait()
                        except queue.Empty:
                            break
                        sock, address = item
                        sock.setblocking(False)
                        p = _Pending(sock, address, time.monotonic() + self.header_timeout)
                        pending[sock] = p
                        sel.register(sock, selectors.EVENT_READ)
                    continue
                p = pending[key.fileobj]  # type: ignore[index]
                outcome = self._read_headers(p)
                if outcome == "wait":
                    continue
                sel.unregister(p.sock)
                del pending[p.sock]
                if outcome == "ready":
                    self._dispatch(p.sock, p.address, bytes(p.data))
                else:
                    self._close(p.sock, outcome)
            now = time.monotonic()
            for p in [p for p in pending.values() if p.deadline <= now]:
                sel.unregister(p.sock)
                del pending[p.sock]
                log.debug("HTTP: %s sent no complete request in time", p.address)
                self._close(
                    p.sock,
                    f"408:request headers not complete within {self.header_timeout:g} s",
                )
        for p in pending.values():
            self._close(p.sock, "")
        sel.close()

    def _read_headers(self, p: _Pending) -> str:
        """'ready', 'wait', '' (close) or 'code:reason' (answer, then close)."""
        try:
            if not p.handshaken:
                assert isinstance(p.sock, ssl.SSLSocket)
                p.sock.do_handshake()
                p.handshaken = True
            while True:
                chunk = p.sock.recv(65536)
                if not chunk:
                    return ""  # the client went away
                start = max(len(p.data) - 3, 0)
                p.data += chunk
                if p.data.find(b"\r\n\r\n", start) >= 0 or p.data.find(b"\n\n", start) >= 0:
                    return "ready"
                if len(p.data) > MAX_HEADER_BYTES:
                    return f"431:request headers larger than {MAX_HEADER_BYTES} bytes"
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return "wait"
        except OSError as exc:
            log.debug("HTTP: %s: %s", p.address, exc)
            return ""

    def _close(self, sock: socket.socket, answer: str) -> None:
        if answer:
            code, _, reason = answer.partition(":")
            _refuse(sock, int(code), reason)
        else:
            _shut(sock)
        with self._lock:
            self._open -= 1

    # -- handling (a bounded pool of threads) -------------------------------------------------

    def _dispatch(self, sock: socket.socket, address: Any, data: bytes) -> None:
        if _is_websocket(data):
            with self._lock:
                full = self._websockets >= self.max_websockets
                if not full:
                    self._websockets += 1
            if full:
                self._close(sock, f"503:too many websockets open at once ({self.max_websockets})")
                return
            threading.Thread(
                target=self._handle, args=(sock, address, data, True), name="http-websocket"
            ).start()
            return
        self._ready.put((sock, address, data))
        with self._lock:
            self._unclaimed += 1
            spawn = self._unclaimed > self._idle_workers and self._workers < self.max_threads
            if spawn:
                self._workers += 1
                number = self._workers
        if spawn:
            threading.Thread(target=self._work, name=f"http-worker-{number}", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle_workers += 1
            item = self._ready.get()
            with self._lock:
                self._idle_workers -= 1
                self._unclaimed -= 1
            if item is None:
                return
            self._handle(*item)

    def _handle(
        self, sock: socket.socket, address: Any, data: bytes, websocket: bool = False
    ) -> None:
        try:
            sock.settimeout(self.idle_timeout)
            self._local.data = data
            self.finish_request(sock, address)
        except Exception:
            self.handle_error(sock, address)
        finally:
            self._local.data = b""
            self.shutdown_request(sock)
            with self._lock:
                self._open -= 1
                if websocket:
                    self._websockets -= 1

    def taken_bytes(self) -> bytes:
        """What the selector thread read of the request now being set up in this thread."""
        data: bytes = getattr(self._local, "data", b"")
        self._local.data = b""
        return data

    def threads(self) -> int:
        """Worker threads started (never more than max_threads)."""
        with self._lock:
            return self._workers

    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def server_close(self) -> None:
        if not self._serving:  # not set up yet, or closed already (werkzeug closes twice)
            super().server_close()
            return
        self._serving = False
        self._stopping = True
        self._wake()
        if self._gate is not threading.current_thread():
            self._gate.join(timeout=5)
        with self._lock:
            workers = self._workers
        for _ in range(workers):
            self._ready.put(None)
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()


def _is_websocket(data: bytes) -> bool:
    """Whether the request's headers (what precedes its first empty line) ask for a websocket."""
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return _WEBSOCKET.search(head) is not None


def _refuse(sock: socket.socket, code: int, reason: str) -> None:
    """Answer a connection that is not handled with a short plain-text error, then close it."""
    if not isinstance(sock, ssl.SSLSocket):  # (no TLS session yet to answer in)
        phrase = {408: "Request Timeout", 431: "Request Header Fields Too Large"}.get(
            code, "Service Unavailable"
        )
        body = f"{reason}\n".encode()
        head = (
            f"HTTP/1.1 {code} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            sock.setblocking(False)
            sock.send(head.encode() + body)  # best effort: a full buffer is not waited for
        except OSError:
            pass
    _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class HttpServer:
    def __init__(self, app: Flask, addr: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.addr = addr
        self.ssl_context = ssl_context  # HTTPS (--ui-tls-cert)
        self._server: _BoundedServer | None = None
        self._thread: threading.Thread | None = None
        self.address: tuple[str, int] = ("", 0)
        self.flag = "--listen"  # the option that set `addr`, named in errors
        self._socket_file: tuple[str, int, int] | None = None  # a Unix socket's, removed at stop

    def start(self) -> None:
        unix = unix_address(self.addr, self.flag)
        try:
            # Bind here: werkzeug exits the process on a bind error instead of raising.
            if unix is not None:  # Mailpit's unix:PATH:MODE
                sock = bind_unix(unix)
                self._socket_file = socket_file(sock)
                host, port = f"unix://{unix.path}", 0  # werkzeug's spelling of a Unix socket
            else:
                host, port = split_hostport(self.addr, self.flag)
                sock = bind(host, port)
                if host in ALL_INTERFACES:  # `::`, or 0.0.0.0 where IPv6 is unavailable
                    host = sock.getsockname()[0]
                port = sock.getsockname()[1]
        except OSError as exc:
            raise AddressInUse.explain(exc, self.addr, self.flag) from exc
        try:
            self._server = _BoundedServer(
                host,
                port,
                self.app,
                handler=_QuietHandler,
                fd=sock.fileno(),
            )
        finally:
            sock.close()  # werkzeug works on its own duplicate of the descriptor
        if self.ssl_context is not None:
            # Wrapped here rather than by werkzeug: it would do each TLS handshake in the accept
            # loop, so one client that connects and stays silent would stall every other. The
            # handshake happens in the selector thread that waits for the request's headers.
            self._server.socket = self.ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self._server.ssl_context = self.ssl_context  # werkzeug: https in the WSGI environ
        self.address = (unix.path, 0) if unix else (host, self._server.socket.getsockname()[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)
        self._thread.start()

    @property
    def where(self) -> str:
        """Where it listens, for the start line: its URL, or Mailpit's unix:PATH:MODE."""
        return self.addr if self._socket_file is not None else self.url

    @property
    def server(self) -> _BoundedServer:
        """The running WSGI server (its limits and counts)."""
        assert self._server is not None, "HTTP server not started"
        return self._server

    @property
    def url(self) -> str:
        """The base URL; on a Unix socket, the one its clients ask for (curl --unix-socket)."""
        if self._socket_file is not None:
            return "https://localhost" if self.ssl_context is not None else "http://localhost"
        host, port = self.address
        host = f"[{host}]" if ":" in host else host
        if host in ("0.0.0.0", "[::]"):
            host = "localhost"
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            if self._thread is not None:  # shutdown() waits for a serve_forever() that ran
                self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        remove_socket_file(self._socket_file)  # as Mailpit removes its socket file at exit
        self._socket_file = None
