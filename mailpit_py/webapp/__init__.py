"""The Flask application: REST API, event websocket and the web UI, under an optional webroot."""

from __future__ import annotations

from typing import Any, Protocol

from flask import Flask
from flask_sock import Sock
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response

from mailpit_py import events
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.webapp import auth, errors, metrics, prefix, security, ws
from mailpit_py.webapp.api import api
from mailpit_py.webapp.checks_api import checks_api
from mailpit_py.webapp.compress import Compress
from mailpit_py.webapp.mailboxes_api import mailboxes_api
from mailpit_py.webapp.observe import observe
from mailpit_py.webapp.ui import ui
from mailpit_py.webapp.views import views

PING_INTERVAL = 25  # seconds: keeps idle websockets open through proxies that cut silent ones


class Runtime(Protocol):
    """What the app needs to know about the running instance."""

    started: float

    def smtp_rejected(self) -> int: ...

    def not_ready(self) -> str: ...

    def chaos(self) -> Any: ...


def create_app(mailbox: Mailbox, bus: events.Bus, runtime: Runtime) -> Flask:
    app = Flask(__name__, static_folder=None)
    app.config.update(
        MAILBOX=mailbox,
        BUS=bus,
        RUNTIME=runtime,
        WS_CLIENTS=ws.ClientCount(mailbox.telemetry),
        SOCK_SERVER_OPTIONS={"ping_interval": PING_INTERVAL},
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=mailbox.config.max_message_size * 2 or None,  # base64 grows 4/3; 0: any
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    errors.register(app)
    # Host and Origin first: a refused page learns nothing, not even whether auth is on.
    security.install(app, mailbox.config)
    auth.install(app, mailbox.config)  # before every view, the websocket included
    prefix.install(app)  # after auth: the mailbox a request may use depends on its user
    security.install_json_posts(app)  # after auth: a stranger is asked for credentials first
    app.register_blueprint(api)
    app.register_blueprint(checks_api)
    app.register_blueprint(mailboxes_api)
    app.register_blueprint(views)
    app.register_blueprint(ui)
    app.register_blueprint(observe)
    prometheus = mailbox.config.enable_prometheus
    if prometheus == "true":  # else off, or on its own listener (server.py)
        app.config["METRICS"] = metrics.registry(mailbox, runtime)
    elif prometheus:
        app.config["METRICS_ELSEWHERE"] = f"http://{prometheus}"
    ws.register(app, Sock(app))
    webroot = mailbox.config.webroot
    if webroot != "/":
        app.wsgi_app = WebrootMiddleware(app.wsgi_app, webroot)  # type: ignore[method-assign]
    if not mailbox.config.disable_http_compression:  # gzip on by default, as in Mailpit
        app.wsgi_app = Compress(app.wsgi_app)  # type: ignore[method-assign]
    return app


class WebrootMiddleware:
    """Serves the app under a path prefix (Mailpit's --webroot); elsewhere answers 404."""

    def __init__(self, app: Any, webroot: str) -> None:
        self.app = app
        self.prefix = webroot.rstrip("/")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path in ("/", self.prefix) and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            # Mailpit sends /mail to /mail/ (a 302); the bare server root goes there too, so the
            # address without the prefix still finds the UI. A query string comes along.
            query = environ.get("QUERY_STRING", "")
            target = environ.get("SCRIPT_NAME", "") + self.prefix + "/"
            if query:
                target += "?" + query
            resp = Response(status=302, headers={"Location": target})
            resp.headers["X-Content-Type-Options"] = "nosniff"
            return resp(environ, start_response)
        if path.startswith(self.prefix + "/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.prefix
            environ["PATH_INFO"] = path[len(self.prefix) :] or "/"
            return self.app(environ, start_response)
        resp = NotFound(f"mailpit_py is served under {self.prefix}/").get_response(environ)
        resp.headers["X-Frame-Options"] = "SAMEORIGIN"
        resp.headers["Content-Security-Policy"] = security.FRAMING
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp(environ, start_response)
