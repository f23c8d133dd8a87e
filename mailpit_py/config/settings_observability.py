"""The settings table's observability rows: Prometheus, the webhook, the log file."""

from __future__ import annotations

from dataclasses import dataclass

from mailpit_py.config.option import setting
from mailpit_py.config.values import parse_int, parse_prometheus


@dataclass(frozen=True)
class ObservabilitySettings:
    """Observability and integrations."""

    # "": off; "true": /metrics on the UI listener; or ADDR:PORT
    enable_prometheus: str = setting(
        "",
        flags=("--enable-prometheus",),
        env="MP_ENABLE_PROMETHEUS",
        help=(
            "serve Prometheus metrics: true (or the flag alone) at /metrics of the web UI, or "
            "ADDR:PORT for a listener of their own"
        ),
        convert=parse_prometheus,
        metavar="true|ADDR:PORT",
        const="true",
    )
    webhook_url: str = setting(
        "",
        flags=("--webhook-url",),
        env="MP_WEBHOOK_URL",
        help="POST the summary of each new message to this URL (JSON, as Mailpit)",
        metavar="URL",
    )
    webhook_limit: int = setting(
        1,
        flags=("--webhook-limit",),
        env="MP_WEBHOOK_LIMIT",
        help=(
            "at most one webhook request every N seconds, as in Mailpit: messages in between "
            "are not sent (0: every message)"
        ),
        convert=parse_int,
        metavar="N",
    )
    webhook_rate: int = setting(
        0,
        flags=("--webhook-rate",),
        env="MP_WEBHOOK_RATE",
        help=(
            "at most N webhook requests a second, the others waiting their turn (0: no pacing); "
            "with --webhook-limit 0 every message is sent"
        ),
        convert=parse_int,
        metavar="N",
    )
    log_file: str = setting(
        "",
        flags=("--log-file",),
        env="MP_LOG_FILE",
        help="append the log to this file instead of standard error",
        metavar="PATH",
    )
    log_format: str = setting(
        "text",
        flags=("--log-format",),
        env="MP_LOG_FORMAT",
        help="text, or json for one JSON object per line (log collectors)",
        metavar="text|json",
    )
