"""Mailboxes on the web: every route also answers under /mailbox/NAME/, and each request is given
the BoxView of the one mailbox it may read and change (the un-prefixed routes: the default one).

The prefix is taken off the path by a WSGI middleware and put in SCRIPT_NAME, as the webroot is:
Flask then routes the rest unchanged, and every address built from the request's script root
(the UI's <base>, redirects, links to parts) keeps the prefix, so a page or client under a
mailbox's prefix stays in it. Which mailbox a request may use is decided once, after
authentication, against the mailbox config's `access` for the user who signed in.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, current_app, g, request
from werkzeug.wrappers import Response as WsgiResponse

from mailpit_py.mailbox.boxes import DEFAULT_BOX, BoxNotFound, is_box_name
from mailpit_py.mailbox.boxview import BoxView
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.webapp.auth import OPEN_PATHS
from mailpit_py.webapp.errors import text

PREFIX = "/mailbox/"
ENVIRON_KEY = "mailpit_py.mailbox"  # the name the prefix gave, as the path spelled it


class MailboxPrefix:
    """WSGI middleware: `/mailbox/NAME/rest` is routed as `/rest` with the name beside it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX):
            return self.app(environ, start_response)
        name, slash, rest = path[len(PREFIX) :].partition("/")
        prefix = PREFIX + name
        if not slash:
            if environ.get("REQUEST_METHOD") in ("GET", "HEAD") and name:
                # The mailbox's own address without its slash: its UI is at NAME/ (relative
                # links resolve against the slash), as the webroot's is.
                query = environ.get("QUERY_STRING", "")
                target = quote(environ.get("SCRIPT_NAME", "") + prefix + "/", safe="/@+")
                resp = WsgiResponse(
                    status=302, headers={"Location": target + ("?" + query if query else "")}
                )
                return resp(environ, start_response)
            rest = ""  # then 404 for the path: no route answers the bare prefix otherwise
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
        environ["PATH_INFO"] = "/" + rest
        environ[ENVIRON_KEY] = name
        return self.app(environ, start_response)


class BoxForbidden(PermissionError):
    """The request needs a mailbox named, or an unrestricted user; the message says which."""


def mailbox() -> Mailbox:
    return current_app.config["MAILBOX"]


def user() -> str | None:
    """The user who signed in with --ui-auth-file credentials, or None (no UI authentication)."""
    name: str | None = g.get("ui_user")
    return name


def allowed() -> set[str] | None:
    """The mailboxes this request's user may see; None: every mailbox."""
    name = user()
    if name is None:
        return None
    return mailbox().config.allowed_boxes(name)


def restricted() -> bool:
    return allowed() is not None


def may_see(name: str) -> bool:
    boxes = allowed()
    return boxes is None or name in boxes


def exists(name: str) -> bool:
    return name == DEFAULT_BOX or any(info.name == name for info in mailbox().boxes())


def prefixed() -> str | None:
    """The mailbox the request's path names (`/mailbox/NAME/...`), or None."""
    name: str | None = request.environ.get(ENVIRON_KEY)
    return name


def box_name() -> str:
    """The mailbox this request reads and changes: the prefix's, else the user's own."""
    name = prefixed()
    if name is not None:
        return name  # checked before the view ran (select_box)
    boxes = allowed()
    if boxes is None or DEFAULT_BOX in boxes:
        return DEFAULT_BOX
    if len(boxes) == 1:
        return next(iter(boxes))
    if not boxes:
        raise BoxForbidden(f"user {user()!r} may see no mailbox: ask for one in the access list")
    names = sorted(boxes)
    raise BoxForbidden(
        f"user {user()!r} may see several mailboxes and none is the default one: use the "
        f"mailbox's address, {request.script_root}/mailbox/NAME/..., NAME one of "
        + ", ".join(names)
    )


def settings_box() -> str:
    """The mailbox whose settings the instance's pages give (its retention in /api/v1/webui):
    the request's, else the default one for a user who must name one of several."""
    try:
        return box_name()
    except BoxForbidden:
        return DEFAULT_BOX


def view() -> BoxView:
    """The request's mailbox: what every view that reads or changes messages uses."""
    found: BoxView | None = g.get("box_view")
    if found is None:
        found = g.box_view = mailbox().view(box_name())
    return found


def require_unrestricted(what: str) -> None:
    """Changes to every mailbox (or to the instance) are for users the access list leaves open."""
    if restricted():
        raise BoxForbidden(
            f"{what} needs a user who may see every mailbox; user {user()!r} may see only: "
            + (", ".join(sorted(allowed() or ())) or "none")
        )


# The header of a 404 under a renamed mailbox's old address that names the mailbox's name now.
RENAMED_HEADER = "X-Mailbox-Renamed-To"


def renamed_page(name: str) -> Response | None:
    """A request under the old address of a mailbox renamed since (the store keeps the latest
    renames: after a restart, and on every instance of a shared database). The UI page (a step
    back in a tab's history, which still holds the old address) gets a 302 to the page at the
    new name, the query kept; anything else a 404 that says where it went, in its text and its
    X-Mailbox-Renamed-To header, so a client, or a tab that polls without a websocket, can
    follow (the API stays exact: it answers for no mailbox but the one named). None when it was
    not renamed, and for a user who may not see both names (a rename tells a user nothing new)."""
    if not (is_box_name(name) and may_see(name)):
        return None
    new = mailbox().renamed_to(name)
    if new is None or not (may_see(new) and exists(new)):
        return None
    if request.method not in ("GET", "HEAD") or request.path != "/":
        answer = text(404, f"mailbox not found: {name} (renamed to {new})")
        answer.headers[RENAMED_HEADER] = new
        return answer
    # The prefix is the script root's end, as MailboxPrefix put it there.
    root = request.script_root[: -len(PREFIX + name)]
    target = f"{root}{PREFIX}{quote(new, safe='@+')}/"
    query = request.query_string.decode("latin-1")
    return Response(status=302, headers={"Location": target + ("?" + query if query else "")})


def wants_html() -> bool:
    """Whether the request is a browser's for a page (not an API client's or a script's)."""
    best = request.accept_mimetypes.best_match(["text/html", "text/plain"])
    return best == "text/html" and request.accept_mimetypes["text/html"] > 0


def missing_page(name: str) -> Response:
    """The 404 of a mailbox page nobody can open (mistyped, deleted, or not this user's), as a
    page with the way back to the inbox: a browser showed a bare line of text and nothing to
    click. The name is the request's own, escaped."""
    root = request.script_root[: -len(PREFIX + name)] + "/"
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>No such mailbox - mailpit_py</title></head><body>"
        f"<h1>No mailbox named \u201c{html.escape(name)}\u201d</h1>"
        "<p>It may have been deleted or renamed, or the address mistyped.</p>"
        f'<p><a href="{html.escape(root)}">Go to the inbox</a></p></body></html>'
    )
    return Response(body, status=404, mimetype="text/html")


def install(app: Flask) -> None:
    """Check the prefix's mailbox before any view runs: unknown, or not this user's: 404."""
    app.wsgi_app = MailboxPrefix(app.wsgi_app)  # type: ignore[method-assign]

    @app.before_request
    def select_box() -> Response | None:
        name = prefixed()
        if name is None or request.path in OPEN_PATHS:
            # The health probes ask for no credentials and tell nothing of mail: under any
            # prefix they answer as they do without one (so they tell no mailbox's existence).
            return None
        if not (is_box_name(name) and may_see(name) and exists(name)):
            moved = renamed_page(name)
            if moved is not None:
                return moved
            if request.method in ("GET", "HEAD") and request.path == "/" and wants_html():
                return missing_page(name)
            # One the user may not see answers as one that does not exist: no name leaks.
            raise BoxNotFound(name)
        return None

    @app.errorhandler(BoxForbidden)
    def forbidden(exc: BoxForbidden) -> Response:
        return text(403, str(exc))
