"""The web UI: serves `web/` (index.html at `/`, assets under `/ui/<version>/...`).

`web/` sits outside the package in a checkout and inside it (as `mailpit_py.web`) in a wheel, so
it is found through importlib.resources first and the checkout path second (DESIGN.md, traps).
Assets live under a content hash of the whole folder: the hashed URLs are cached for a year and a
new release changes the hash, while index.html itself is never cached.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
import threading
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from urllib.parse import quote

from flask import Blueprint, Response, abort, current_app, request

from mailpit_py.mailbox.boxes import DEFAULT_BOX
from mailpit_py.webapp.prefix import allowed, prefixed
from mailpit_py.webapp.security import UI_CSP, UI_CSP_BLOCKED

ui = Blueprint("ui", __name__)

LONG_CACHE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


def web_root() -> Traversable:
    """The folder holding index.html: the source checkout's web/, else the installed package's."""
    # A checkout beside this package wins, so a second work tree (git worktree) sharing one
    # editable install still serves its own web/ files.
    repo = Path(__file__).resolve().parent.parent.parent
    if (repo / "pyproject.toml").is_file() and (repo / "web" / "index.html").is_file():
        return repo / "web"
    try:
        root = resources.files("mailpit_py.web")
        if root.joinpath("index.html").is_file():
            return root
    except (ModuleNotFoundError, TypeError):
        pass
    raise FileNotFoundError("the web UI files (web/index.html) are missing from this install")


class Assets:
    """The UI files read once: name -> bytes, plus a short content hash used in asset URLs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, bytes] | None = None
        self.version = ""

    def files(self) -> dict[str, bytes]:
        with self._lock:
            if self._files is None:
                files: dict[str, bytes] = {}
                _collect(web_root(), "", files)
                digest = hashlib.sha256()
                for name in sorted(files):
                    digest.update(name.encode() + b"\0" + files[name] + b"\0")
                self.version = digest.hexdigest()[:12]
                self._files = files
            return self._files


def _collect(folder: Traversable, prefix: str, out: dict[str, bytes]) -> None:
    for entry in folder.iterdir():
        name = entry.name
        if name.startswith((".", "_")):  # __init__.py, __pycache__, editor files
            continue
        if entry.is_dir():
            _collect(entry, f"{prefix}{name}/", out)
        elif entry.is_file():
            out[prefix + name] = entry.read_bytes()


ASSETS = Assets()


@ui.get("/")
def index() -> Response:
    if prefixed() is None:
        # A user whose mailboxes do not include the default one is sent to one of theirs, so
        # the page's address names the mailbox it shows (its API calls and links follow it).
        boxes = allowed()
        if boxes is not None and DEFAULT_BOX not in boxes and boxes:
            target = f"{request.script_root}/mailbox/{quote(min(boxes), safe='@+')}/"
            query = request.query_string.decode("latin-1")  # a deep link (?m=ID) comes along
            if query:
                target += "?" + query
            return Response(status=302, headers={"Location": target})
    files = ASSETS.files()
    base = html.escape(request.script_root + "/", quote=True)
    page = files["index.html"].decode("utf-8")
    page = page.replace("{{PRELOAD}}", _preloads(files))
    page = page.replace("{{BASE}}", base).replace("{{VERSION}}", ASSETS.version)
    resp = Response(page, content_type=TYPES[".html"])
    resp.headers["Cache-Control"] = NO_CACHE
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    # --block-remote-css-and-fonts: the preview frame (srcdoc) is held to this policy too.
    blocked = current_app.config["MAILBOX"].config.block_remote_css_and_fonts
    resp.headers["Content-Security-Policy"] = UI_CSP_BLOCKED if blocked else UI_CSP
    return resp


def _preloads(files: dict[str, bytes]) -> str:
    """A modulepreload link per script: the browser fetches them all at once instead of one
    wave of imports after another (each wave a round trip on the first, uncached load)."""
    return "\n  ".join(
        f'<link rel="modulepreload" href="ui/{{{{VERSION}}}}/{html.escape(name, quote=True)}">'
        for name in sorted(files)
        if name.endswith(".js") and name != "app.js"
    )


@ui.get("/ui/<version>/<path:name>")
def asset(version: str, name: str) -> Response:
    files = ASSETS.files()
    data = files.get(name)
    if data is None or name == "index.html":
        abort(404, description=f"no UI asset named {name!r}")
    ext = Path(name).suffix.lower()
    ctype = TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    resp = Response(data, content_type=ctype)
    # An old page asking for an old version gets today's file, uncached.
    resp.headers["Cache-Control"] = LONG_CACHE if version == ASSETS.version else NO_CACHE
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp
