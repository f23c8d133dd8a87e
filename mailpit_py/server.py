"""Wires config, store, bus and listeners together: the one way to run mailpit_py."""

from __future__ import annotations

import logging
import time
from types import TracebackType

from mailpit_py import events, metrics
from mailpit_py.config import Config
from mailpit_py.http import HttpServer
from mailpit_py.mailbox import Mailbox
from mailpit_py.smtp import SmtpServer
from mailpit_py.tls import server_context
from mailpit_py.webhook import Webhook

log = logging.getLogger("mailpit_py")


class Server:
    """A running instance: `with Server(Config(...)) as mp: ...` (CLI, fixture and tests)."""

    def __init__(self, config: Config | None = None, *, busy_timeout: float = 5.0) -> None:
        self.config = (config or Config()).validate()
        self._busy_timeout = busy_timeout  # how long a write waits on a locked database
        self.bus = events.Bus()
        self.mailbox: Mailbox | None = None
        self.smtp: SmtpServer | None = None
        self.http: HttpServer | None = None
        self.metrics_http: HttpServer | None = None  # --enable-prometheus ADDR:PORT
        self.webhook: Webhook | None = None
        self.started = time.time()

    def start(self) -> Server:
        from mailpit_py.webapp import create_app  # Flask loads only when serving

        self.started = time.time()
        self.mailbox = Mailbox(self.config, self.bus, busy_timeout=self._busy_timeout)
        try:
            self.smtp = SmtpServer(self.config, self.mailbox, self.bus)
            self.smtp.start()
            self.http = HttpServer(
                create_app(self.mailbox, self.bus, self),
                self.config.http_addr,
                # issue 5: HTTPS for the UI and API (a PEM pair, or sans: for a self-signed one)
                server_context(self.config.ui_tls_cert, self.config.ui_tls_key, "--ui-tls")
                if self.config.ui_tls_cert
                else None,
            )
            self.http.start()
            self._start_integrations()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_integrations(self) -> None:
        """Metrics on their own listener and the webhook (issue 8)."""
        from mailpit_py.webapp.observe import metrics_app

        assert self.mailbox is not None
        cfg = self.config
        if cfg.enable_prometheus not in ("", "true"):
            reg = metrics.registry(self.mailbox, self)
            self.metrics_http = HttpServer(metrics_app(reg), cfg.enable_prometheus)
            self.metrics_http.flag = "--enable-prometheus"
            self.metrics_http.start()
            log.info("Prometheus metrics on %s/metrics", self.metrics_http.url)
        if cfg.webhook_url:
            self.webhook = Webhook(
                cfg.webhook_url,
                self.bus,
                self.mailbox.telemetry,
                limit=cfg.webhook_limit,
                label=cfg.label,
            ).start()
            log.info("webhook: posting each new message to %s", cfg.webhook_url)

    def stop(self) -> None:
        """Stop listening, let in-flight messages commit, close (and maybe remove) the store."""
        if self.webhook is not None:
            self.webhook.stop()
            self.webhook = None
        self.bus.close()  # websocket handlers end and close their sockets
        if self.metrics_http is not None:
            self.metrics_http.stop()
            self.metrics_http = None
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.smtp is not None:
            self.smtp.stop()
            self.smtp = None
        if self.mailbox is not None:
            self.mailbox.close()
            self.mailbox = None

    @property
    def smtp_address(self) -> tuple[str, int]:
        """(host, port) the SMTP listener is bound to (the real port when 0 was asked)."""
        assert self.smtp is not None, "server not started"
        return self.smtp.address

    @property
    def http_address(self) -> tuple[str, int]:
        assert self.http is not None, "server not started"
        return self.http.address

    @property
    def http_url(self) -> str:
        """Base URL of the UI and API, webroot included, ending in '/'."""
        assert self.http is not None, "server not started"
        return self.http.url + self.config.webroot

    # -- what the web app asks of the running instance (webapp.Runtime) --

    def smtp_rejected(self) -> int:
        return self.smtp.rejected if self.smtp else 0

    def not_ready(self) -> str:
        """Empty when SMTP, the store and HTTP all are up; else what is not."""
        if self.smtp is None or not self.smtp.address[1]:
            return "SMTP is not listening"
        if self.http is None:
            return "HTTP is not listening"
        if self.mailbox is None:
            return "the store is closed"
        try:
            problem = self.mailbox.health()
        except Exception as exc:
            return f"the store does not answer: {exc}"
        return problem

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
