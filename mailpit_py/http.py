"""Serves the Flask app in-process on a threaded WSGI server (port 0 supported)."""

from __future__ import annotations

import logging
import socket
import ssl
import threading

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from mailpit_py.config import split_hostport
from mailpit_py.loopthread import AddressInUse

log = logging.getLogger("mailpit_py.http")


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to debug logging, not stderr: one line per message is what users read."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug('%s "%s" %s %s', self.address_string(), self.requestline, code, size)


class HttpServer:
    def __init__(self, app: Flask, addr: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.addr = addr
        self.ssl_context = ssl_context  # HTTPS (--ui-tls-cert)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.address: tuple[str, int] = ("", 0)
        self.flag = "--listen"  # the option that set `addr`, named in errors

    def start(self) -> None:
        host, port = split_hostport(self.addr, self.flag)
        try:
            # Bind here: werkzeug exits the process on a bind error instead of raising.
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.create_server((host, port), family=family, backlog=128)
        except OSError as exc:
            raise AddressInUse.explain(exc, self.addr, self.flag) from exc
        try:
            self._server = make_server(
                host,
                sock.getsockname()[1],
                self.app,
                threaded=True,
                request_handler=_QuietHandler,
                fd=sock.fileno(),
            )
        finally:
            sock.close()  # werkzeug works on its own duplicate of the descriptor
        self._server.daemon_threads = True
        if self.ssl_context is not None:
            # Wrapped here rather than by werkzeug: it would do each TLS handshake in the accept
            # loop, so one client that connects and stays silent would stall every other. Unwrapped
            # this way, the handshake happens on the first read, in that request's own thread.
            self._server.socket = self.ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
            self._server.ssl_context = self.ssl_context  # werkzeug: https in the WSGI environ
        self.address = (host, self._server.socket.getsockname()[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
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
