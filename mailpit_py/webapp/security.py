"""Browser protections of the web server: Host and Origin checks, CORS (--api-cors), JSON-only
POSTs, and the headers that keep mail content from running as script in the UI's origin."""

from __future__ import annotations

import re

from flask import Flask, Response, g, request

from mailpit_py.config.settings import Config
from mailpit_py.webapp.errors import text
from mailpit_py.webapp.guard import HostPolicy, OriginPolicy

# Health probes answer any Host: orchestrators call them by whatever name they know the pod by,
# and they reveal nothing.
OPEN_PATHS = frozenset({"/livez", "/readyz"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Paths whose answers are mail or mailbox data: any request to them from another site's page,
# reads included, needs --api-cors (as Mailpit checks them).
API_PREFIXES = ("/api/", "/view/")

# Mail content (any HTML, SVG, XML a sender wrote) must never run as script in the UI's origin,
# where it could call the API with the user's session. `sandbox` gives such a page an opaque
# origin and no scripts even when opened on its own in a tab. Images and styles stay allowed in
# the HTML view so a "view in browser" link shows the mail as it looks; popups keep links that
# open in a new tab working, as in the UI's own preview frame.
MAIL_HTML_CSP = (
    "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "
    "img-src * data: cid:; style-src * 'unsafe-inline'; font-src * data:; media-src * data:"
)
# --block-remote-css-and-fonts, as Mailpit's: styles and fonts from this server or inline only.
BLOCKED_REMOTE_CSS = "style-src 'self' 'unsafe-inline'; font-src 'self' data:"
MAIL_HTML_CSP_BLOCKED = MAIL_HTML_CSP.replace(
    "style-src * 'unsafe-inline'; font-src * data:", BLOCKED_REMOTE_CSS
)
MAIL_CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'"
)
# The UI's own page. A srcdoc frame inherits its embedder's policy, so this must not restrict
# what the mail preview needs (images, styles: the frame's own meta policy governs those).
UI_CSP = "script-src 'self'; object-src 'none'"
UI_CSP_BLOCKED = f"{UI_CSP}; {BLOCKED_REMOTE_CSS}"
FRAMING = "frame-ancestors 'self'"

# Types a browser shows without running anything the sender wrote: served inline. Any other type
# (HTML, XHTML, SVG, XML, JavaScript, unknown) is served as a download.
INERT_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/jpg",
        "image/pjpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "text/plain",
        "application/pdf",
    }
)


def inert(content_type: str) -> bool:
    """True when a browser can display this type inline without running the sender's code."""
    base = content_type.split(";", 1)[0].strip().lower()
    return base in INERT_TYPES or base.startswith(("audio/", "video/"))


def mail_content(resp: Response, csp: str = MAIL_CSP) -> Response:
    """Mark a response whose body the mail's sender controls: sandboxed, never sniffed."""
    resp.headers["Content-Security-Policy"] = csp
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def install(app: Flask, config: Config) -> None:
    """Host and Origin checks before anything else runs (authentication included), and the
    framing and CORS headers on every answer."""
    hosts = HostPolicy(config)
    origins = OriginPolicy(config.api_cors)

    @app.before_request
    def check_host_and_origin() -> Response | None:
        if request.path in OPEN_PATHS:
            return None
        host = request.headers.get("Host", "")
        if not hosts.allows(host):
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            return text(
                403,
                f"this server does not answer to the host name {name!r} (a guard against DNS "
                f"rebinding): if that name is yours, start mailpit-py with --allowed-hosts "
                f"{name} (or MP_ALLOWED_HOSTS={name}; * allows any)",
            )
        if _foreign_subresource(origins):
            return text(
                403,
                f"another site's page may not load {request.path} (as an image, script or "
                "similar): only this server's pages use its API; open the address in a tab of "
                "its own, or call it with fetch() from a site that --api-cors names",
            )
        origin = request.headers.get("Origin")
        if origin is None:
            return None  # not sent by a browser across sites
        if not request.path.startswith(API_PREFIXES) and request.method in SAFE_METHODS:
            return None
        if origin == "null" and request.method in ("GET", "HEAD") and not _upgrade():
            # A sandboxed frame (the UI's own mail preview loading a cid: image) sends `null`.
            # It gets no CORS headers, so it can read nothing a plain <img> elsewhere could not.
            return None
        if not origins.allows(origin, host):
            named = OriginPolicy.key(origin) or origin
            return text(
                403,
                f"a request from the web page at {origin} was refused: only pages of this "
                f"server may use its API and websocket; to let that site in, start mailpit-py "
                f"with --api-cors {named} (or MP_API_CORS={named}; * allows any origin)",
            )
        g.cors_origin = origin
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            # A CORS preflight: browsers send it without credentials, so it is answered here,
            # before authentication, and says nothing but what the allowed origin may do.
            return Response("", status=200)
        return None

    @app.after_request
    def protective_headers(resp: Response) -> Response:
        resp.headers["X-Frame-Options"] = "SAMEORIGIN"
        csp = resp.headers.get("Content-Security-Policy")
        if not csp:
            resp.headers["Content-Security-Policy"] = FRAMING
        elif "frame-ancestors" not in csp:
            resp.headers["Content-Security-Policy"] = f"{csp}; {FRAMING}"
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        origin = g.get("cors_origin")
        if origin and request.path.startswith(API_PREFIXES):
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, PUT, OPTIONS"
            resp.headers["Access-Control-Allow-Headers"] = (
                request.headers.get("Access-Control-Request-Headers") or "*"
            )
            resp.vary.add("Origin")
        return resp


# A part of a message (and its thumbnail) may be embedded by any page, as an <img>: the UI's own
# preview loads a mail's cid: images so, from its sandboxed frame (an opaque origin: a
# cross-site request), and a "view in browser" page shows them.
PART_ROUTE = re.compile(r"/api/v1/message/[^/]+/part/[^/]+(?:/thumb)?")


def _foreign_subresource(origins: OriginPolicy) -> bool:
    """An API request a page of another site made by loading it as an image, script, style or
    the like (browsers send Sec-Fetch-*, and no Origin on such a GET). Such a load cannot read
    the answer, but the request is served: `GET /api/v1/message/latest` marks the newest mail
    read, a list with limit=0 builds every summary, a check refreshes. A navigation (a link
    followed) and the browser's own requests pass; clients that are not browsers send no
    Sec-Fetch headers."""
    if not request.path.startswith("/api/") or origins.any:
        return False
    if request.headers.get("Sec-Fetch-Site") not in ("cross-site", "same-site"):
        return False
    mode = request.headers.get("Sec-Fetch-Mode")
    if mode in ("navigate", "cors", "websocket"):
        return False  # a tab's page; CORS and websockets carry an Origin, checked below
    return not PART_ROUTE.fullmatch(request.path)


def _upgrade() -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def install_json_posts(app: Flask) -> None:
    """POST takes JSON only. A page of another site can POST without asking first only as a
    form or a no-cors fetch, whose content types are text/plain, form data or none; a JSON
    content type needs the browser's CORS preflight, which --api-cors governs."""

    @app.before_request
    def require_json() -> Response | None:
        if request.method != "POST" or request.mimetype == "application/json":
            return None
        if request.url_rule is None:
            return None  # no such route or method: its 404 or 405 says more than a 415
        got = request.mimetype or "none"
        return text(
            415,
            f"POST {request.path} takes a JSON body sent with Content-Type: application/json "
            f"(this request's Content-Type: {got}); with curl, add "
            "-H 'Content-Type: application/json'",
        )
