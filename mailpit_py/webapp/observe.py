"""Observability views: Prometheus `/metrics` and the statistics behind the UI's stats view."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, jsonify
from prometheus_client import CollectorRegistry

from mailpit_py.webapp import metrics
from mailpit_py.webapp.errors import text
from mailpit_py.webapp.prefix import require_unrestricted, restricted, view

observe = Blueprint("observe", __name__)


@observe.get("/metrics")
def prometheus() -> Response:
    reg: CollectorRegistry | None = current_app.config.get("METRICS")
    # Every mailbox's figures: not for a user the access list limits to some (the listener of
    # --enable-prometheus ADDR:PORT has no users, as it asks for no credentials).
    require_unrestricted("the metrics (every mailbox's figures)")
    if reg is None:
        where = current_app.config.get("METRICS_ELSEWHERE", "")
        return text(
            404,
            f"metrics are served on their own listener at {where}/metrics"
            if where
            else "metrics are off: start with --enable-prometheus true (or ADDR:PORT)",
        )
    return Response(metrics.exposition(reg), content_type=metrics.CONTENT_TYPE)


@observe.get("/api/v1/stats")
def statistics() -> Response:
    figures = view().statistics()
    if restricted():
        # SMTP refusals come before any routing, so they are no mailbox's: a limited user is
        # told none of them (as its websocket hears none), they may be another project's.
        figures["Refusals"] = []
    return jsonify(figures)


def metrics_app(reg: CollectorRegistry) -> Flask:
    """The app of the separate metrics listener (`--enable-prometheus ADDR:PORT`): /metrics only,
    without the UI's authentication, as Mailpit does."""
    app = Flask(__name__, static_folder=None)
    app.config["METRICS"] = reg
    app.add_url_rule("/metrics", "metrics", prometheus)
    return app
