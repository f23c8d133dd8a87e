"""Domain errors -> HTTP answers, in one place: 404 names the ID, 400 and 409 say what is wrong."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from mailpit_py.mailbox.boxes import BoxExists, BoxNotFound, BoxRefused
from mailpit_py.mailbox.facade import MessageNotFound, SessionNotFound
from mailpit_py.relay.service import RelayError, RelayFailed
from mailpit_py.store.records import StoreError, TagError
from mailpit_py.store.search import SearchError

log = logging.getLogger("mailpit_py.web")


class BadRequest(ValueError):
    """A malformed body or parameter; the message says what is wrong."""


def text(status: int, message: str) -> Response:
    # Mailpit answers errors with a plain-text body; the send API uses JSON (see api.send).
    return Response(message.rstrip() + "\n", status=status, mimetype="text/plain")


def register(app: Flask) -> None:
    @app.errorhandler(MessageNotFound)
    def not_found(exc: MessageNotFound) -> Response:
        return text(404, str(exc))

    @app.errorhandler(BoxNotFound)
    def no_box(exc: BoxNotFound) -> Response:
        return text(404, str(exc))

    @app.errorhandler(BoxExists)
    def box_exists(exc: BoxExists) -> Response:
        return text(409, str(exc))

    @app.errorhandler(BoxRefused)
    def box_refused(exc: BoxRefused) -> Response:
        return text(400, str(exc))

    @app.errorhandler(SessionNotFound)
    def no_session(exc: SessionNotFound) -> Response:
        return text(404, str(exc))

    @app.errorhandler(BadRequest)
    def bad_request(exc: BadRequest) -> Response:
        return text(400, str(exc))

    @app.errorhandler(RelayError)
    def relay_refused(exc: RelayError) -> Response:
        return text(400, str(exc))

    @app.errorhandler(RelayFailed)
    def relay_failed(exc: RelayFailed) -> Response:
        return text(502, str(exc))

    @app.errorhandler(SearchError)
    def bad_search(exc: SearchError) -> Response:
        return text(400, f"invalid search: {exc}")

    @app.errorhandler(TagError)
    def bad_tag(exc: TagError) -> Response:
        return text(400, str(exc))  # Mailpit's text: "tag not found: x", "tag already exists: y"

    @app.errorhandler(StoreError)
    def store_error(exc: StoreError) -> Response:
        log.error("store error on %s %s: %s", request.method, request.path, exc)
        return text(503, f"the database is unavailable: {exc}")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        resp = text(exc.code or 500, exc.description or exc.name)
        for name, value in exc.get_headers():
            if name != "Content-Type":  # Allow on a 405 (RFC 9110 15.5.6), WWW-Authenticate
                resp.headers[name] = value
        return resp

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return text(500, f"internal error: {type(exc).__name__}")
