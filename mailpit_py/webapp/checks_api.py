"""Message checks API: auth, blocklist, header, HTML, link and SpamAssassin checks,
and attachment thumbnails; thin views over the checks service."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from mailpit_py.checks.service import Checks, NotApplicable
from mailpit_py.mailbox.facade import MessageNotFound
from mailpit_py.webapp.api import _disposition, resolve
from mailpit_py.webapp.errors import text
from mailpit_py.webapp.prefix import mailbox
from mailpit_py.webapp.security import mail_content

checks_api = Blueprint("checks_api", __name__)


def checks() -> Checks:
    """The server's checks service; an app made without one gets its own, started lazily."""
    found = current_app.config.get("CHECKS")
    if found is None:
        found = current_app.config["CHECKS"] = Checks(mailbox().config, mailbox())
    return found


def flag(name: str) -> bool:
    """Mailpit's reading of a boolean parameter: `true` or `1` is on, anything else off."""
    return request.args.get(name, "") in ("true", "1")


@checks_api.get("/api/v1/message/<msg_id>/auth-check")
def auth_check(msg_id: str) -> Response:
    return jsonify(checks().auth_check(resolve(msg_id), flag("refresh")))


@checks_api.get("/api/v1/message/<msg_id>/blocklist-check")
def blocklist_check(msg_id: str) -> Response:
    return jsonify(checks().blocklist_check(resolve(msg_id), flag("refresh")))


@checks_api.get("/api/v1/message/<msg_id>/header-check")
def header_check(msg_id: str) -> Response:
    return jsonify(checks().header_check(resolve(msg_id), flag("refresh")))


@checks_api.errorhandler(NotApplicable)
def not_applicable(exc: NotApplicable) -> Response:
    return text(400, str(exc))


@checks_api.get("/api/v1/message/<msg_id>/html-check")
def html_check(msg_id: str) -> Response:
    return jsonify(checks().html_check(resolve(msg_id)))


@checks_api.get("/api/v1/message/<msg_id>/link-check")
def link_check(msg_id: str) -> Response:
    return jsonify(checks().link_check(resolve(msg_id), flag("follow")))


@checks_api.get("/api/v1/message/<msg_id>/sa-check")
def sa_check(msg_id: str) -> Response:
    return jsonify(checks().sa_check(resolve(msg_id), flag("refresh")))


@checks_api.get("/api/v1/message/<msg_id>/part/<part_id>/thumb")
def thumb(msg_id: str, part_id: str) -> Response:
    try:
        data, name = checks().thumbnail(resolve(msg_id), part_id)
    except MessageNotFound as exc:
        return text(400, str(exc))  # Mailpit answers a thumbnail it cannot find with a 400
    resp = Response(data, mimetype="image/jpeg")
    if name:
        resp.headers["Content-Disposition"] = _disposition("inline", name)
    return mail_content(resp)
