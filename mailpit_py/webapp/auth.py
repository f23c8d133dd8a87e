"""HTTP basic authentication over the UI, the API and the websocket, and the send API's own rules
(Mailpit's --ui-auth-file, --send-api-auth-file and --send-api-auth-accept-any)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict

from flask import Flask, Response, g, request

from mailpit_py.config.credentials import Credentials
from mailpit_py.config.settings import Config

REALM = "mailpit_py"
# Health probes stay open: an orchestrator checks them without credentials (Mailpit does too).
OPEN_PATHS = frozenset({"/livez", "/readyz"})
SEND_PATH = "/api/v1/send"
CACHE_SIZE = 128


def load(config: Config) -> tuple[Credentials | None, Credentials | None]:
    """(UI and API credentials, send API credentials) from files and MP_* lists; None = open."""
    return (
        _merge(config.ui_auth_file, config.ui_auth, "--ui-auth-file", "MP_UI_AUTH"),
        _merge(
            config.send_api_auth_file,
            config.send_api_auth,
            "--send-api-auth-file",
            "MP_SEND_API_AUTH",
        ),
    )


def _merge(path: str, inline: str, file_flag: str, env: str) -> Credentials | None:
    entries: dict[str, str] = {}
    if path:
        entries |= Credentials.load(path, file_flag).entries
    if inline.strip():
        entries |= Credentials.parse(inline, env).entries
    return Credentials(entries) if entries else None


class Guard:
    """Decides each request: open, or basic auth against the right credential list."""

    def __init__(
        self, ui: Credentials | None, send: Credentials | None, send_accept_any: bool
    ) -> None:
        self.ui = ui
        self.send = send
        self.send_accept_any = send_accept_any
        # bcrypt costs tens of milliseconds per check and the UI makes many requests: remember
        # credentials that were right (keyed by a salted hash, never the password itself).
        self._salt = os.urandom(16)
        self._good: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.ui is not None or self.send is not None

    def required(self, path: str, method: str) -> Credentials | None:
        """The credentials this request must match, or None when it needs none."""
        if path in OPEN_PATHS:
            return None
        if path == SEND_PATH and method == "POST":
            if self.send_accept_any:
                return None
            if self.send is not None:
                return self.send  # only these: UI credentials do not open the send API
        return self.ui

    def check(self, creds: Credentials, user: str, password: str) -> bool:
        key = hashlib.sha256(
            self._salt + str(id(creds)).encode() + b"\0" + user.encode() + b"\0" + password.encode()
        ).digest()
        with self._lock:
            if key in self._good:
                self._good.move_to_end(key)
                return True
        if not creds.check(user, password):
            return False
        with self._lock:
            self._good[key] = None
            while len(self._good) > CACHE_SIZE:
                self._good.popitem(last=False)
        return True


def challenge() -> Response:
    """401 with a challenge; the same answer for an unknown user and a wrong password."""
    resp = Response("authentication required\n", status=401, mimetype="text/plain")
    resp.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    return resp


def install(app: Flask, config: Config) -> None:
    """Guard every route of the app when credentials are configured; no-op otherwise."""
    ui, send = load(config)
    guard = Guard(ui, send, config.send_api_auth_accept_any)
    app.config["AUTH_GUARD"] = guard
    if not guard.active:
        return

    @app.before_request
    def authenticate() -> Response | None:
        creds = guard.required(request.path, request.method)
        if creds is None:
            return None
        auth = request.authorization
        if (
            auth is None
            or auth.type != "basic"
            or not guard.check(creds, auth.username or "", auth.password or "")
        ):
            return challenge()
        # The mailbox config's `access` names these users: a send API login (its own list)
        # is limited as the UI login of that name is, or it could store mail in any mailbox
        # by its address and learn which mailboxes exist.
        g.ui_user = auth.username
        return None
