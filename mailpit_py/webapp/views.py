"""Mailpit's /view pages: a message's HTML or text alone, links to the newest one and to the UI."""

from __future__ import annotations

import re
from urllib.parse import quote

from flask import Blueprint, Response, request

from mailpit_py.mailbox.shapes import StoredMessage
from mailpit_py.webapp.api import resolve
from mailpit_py.webapp.errors import text
from mailpit_py.webapp.prefix import mailbox, view
from mailpit_py.webapp.security import MAIL_HTML_CSP, MAIL_HTML_CSP_BLOCKED, mail_content

views = Blueprint("views", __name__)


@views.get("/view/latest")
def view_latest() -> Response:
    """Mailpit's link to the newest message (or newest match of ?query=): a redirect to its
    page, or to the UI when there is none."""
    query = request.args.get("query", "").strip()
    if query:
        found, _, _ = view().search(query, 0, 1)
        uid = str(found[0]["ID"]) if found else None
    else:
        listed = view().list_messages(0, 1)
        uid = str(listed[0]["ID"]) if listed else None
    root = request.script_root + "/"
    return found_at(f"{root}view/{quote(uid, safe='')}" if uid else root)


@views.get("/view/<msg_id>")
def view_page(msg_id: str) -> Response:
    """Mailpit's page of one message: the UI, opened on it."""
    return found_at(f"{request.script_root}/?m={quote(msg_id, safe='')}")


def found_at(location: str) -> Response:
    """A 302 to a path of this server, as Mailpit's http.Redirect answers."""
    return Response(status=302, headers={"Location": location})


A_TAG = re.compile(r"<a(?=[\s>/])[^>]*>", re.IGNORECASE)
TARGET_REL = re.compile(r"""\s(?:target|rel)\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]*)""", re.IGNORECASE)


def open_links_apart(html: str) -> str:
    """Mailpit's embed=1: every link opens in a new browsing context, without a referrer or an
    opener (the preview sandbox allows such popups)."""

    def rewrite(match: re.Match[str]) -> str:
        tag = TARGET_REL.sub("", match.group(0))
        end = -2 if tag.endswith("/>") else -1
        return tag[:end].rstrip() + ' target="_blank" rel="noreferrer noopener"' + tag[end:]

    return A_TAG.sub(rewrite, html)


@views.get("/view/<msg_id>.html")
def view_html(msg_id: str) -> Response:
    msg: StoredMessage = view().get(resolve(msg_id))
    if not str(msg.detail["HTML"]):
        return text(404, "This message does not contain a HTML part")  # Mailpit's answer
    base = request.script_root + f"/api/v1/message/{msg.id}/part/"
    html = msg.html_with_parts(base)
    if request.args.get("embed") == "1":
        # Mailpit also adds a script that tells the parent page the height; the sandboxing
        # policy of mail content runs no script at all, so that part is left out.
        html = open_links_apart(html)
    blocked = mailbox().config.block_remote_css_and_fonts  # Mailpit's flag, by its policy
    csp = MAIL_HTML_CSP_BLOCKED if blocked else MAIL_HTML_CSP
    return mail_content(Response(html, mimetype="text/html"), csp)


@views.get("/view/<msg_id>.txt")
def view_text(msg_id: str) -> Response:
    body = view().get(resolve(msg_id)).text
    return mail_content(Response(body, mimetype="text/plain"))
