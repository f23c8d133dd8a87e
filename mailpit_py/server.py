"""Wires config, store, bus and listeners together: the one way to run mailpit_py."""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from types import TracebackType

from mailpit_py import events
from mailpit_py.checks.service import Checks
from mailpit_py.config.listeners import parse_listener
from mailpit_py.config.mailboxes import mailbox_config
from mailpit_py.config.settings import Config
from mailpit_py.config.validate import validate
from mailpit_py.mailaccess.access import access_for, enabled
from mailpit_py.mailaccess.imap.server import ImapServer
from mailpit_py.mailaccess.pop3 import Pop3Server
from mailpit_py.mailbox.boxes import BoxExists
from mailpit_py.mailbox.facade import Mailbox
from mailpit_py.mailbox.hooks import combine
from mailpit_py.mailbox.shared import SharedEvents
from mailpit_py.net.http import HttpServer
from mailpit_py.net.tls import server_context
from mailpit_py.observability.webhook import Webhook
from mailpit_py.receiver.engine import Receiver
from mailpit_py.receiver.profile import load as load_profile
from mailpit_py.relay.service import Relay
from mailpit_py.smtp.chaos import Chaos
from mailpit_py.smtp.server import SmtpServer
from mailpit_py.webapp import metrics

log = logging.getLogger("mailpit_py")


class Server:
    """A running instance: `with Server(Config(...)) as mp: ...` (CLI, fixture and tests)."""

    def __init__(self, config: Config | None = None, *, busy_timeout: float = 5.0) -> None:
        self.config = validate(config or Config())
        self._busy_timeout = busy_timeout  # how long a write waits on a locked database
        self.bus = events.Bus()
        self.mailbox: Mailbox | None = None
        self.smtp: SmtpServer | None = None  # the --smtp listener, named default
        self.smtp_listeners: dict[str, SmtpServer] = {}  # every listener by name, it first
        self.http: HttpServer | None = None
        self.relay: Relay | None = None
        self.checks: Checks | None = None
        self.pop3: Pop3Server | None = None
        self.imap: ImapServer | None = None
        self.metrics_http: HttpServer | None = None  # --enable-prometheus ADDR:PORT
        self.webhook: Webhook | None = None
        self.shared: SharedEvents | None = None  # other instances' changes (mailbox/shared.py)
        self.started = time.time()

    def start(self) -> Server:
        from mailpit_py.webapp import create_app  # Flask loads only when serving

        self.started = time.time()
        # Relay and checks plug into delivery through the hooks the mailbox is built with, so
        # every message has them, whenever their workers start.
        relay, checks = Relay(self.config), Checks(self.config)
        self.mailbox = Mailbox(
            self.config,
            self.bus,
            busy_timeout=self._busy_timeout,
            hooks=combine(relay.hooks(), checks.hooks()),
        )
        try:
            self._create_named_boxes()
            # Instances sharing a database (PostgreSQL) hear of each other's changes.
            self.shared = SharedEvents(self.mailbox).start()
            self.relay = relay.start(self.mailbox)
            self.checks = checks.start(self.mailbox)
            self._start_smtp(checks)
            app = create_app(self.mailbox, self.bus, self)
            app.config["CHECKS"] = self.checks
            self.http = HttpServer(
                app,
                self.config.http_addr,
                # HTTPS for the UI and API (a PEM pair, or sans: for a self-signed one)
                server_context(self.config.ui_tls_cert, self.config.ui_tls_key, "--ui-tls")
                if self.config.ui_tls_cert
                else None,
            )
            self.http.start()
            self._start_mail_readers()
            self._start_integrations()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_named_boxes(self) -> None:
        """The mailboxes the settings name exist from start-up, before mail can come: a user
        limited to one sees it, and a header may name it (docs/mailboxes.md)."""
        assert self.mailbox is not None
        for name in mailbox_config(self.config).names:
            try:
                self.mailbox.create_box(name)
            except BoxExists:
                continue  # kept from an earlier run, or made by another instance

    def _start_smtp(self, checks: Checks) -> None:
        """The --smtp listener, then each --smtp-listener, all delivering into one mailbox."""
        assert self.mailbox is not None
        cfg = self.config
        receivers: dict[str, Receiver] = {}

        def receiver(spec: str) -> Receiver:
            spec = spec or cfg.receiver
            if spec not in receivers:
                receivers[spec] = Receiver(
                    load_profile(spec),
                    checks.resolver,  # --dns-override and the checks' cache, shared
                    client_ip=cfg.checks_client_ip,
                    hostname=cfg.smtp_hostname or socket.getfqdn(),
                    spamassassin=cfg.enable_spamassassin,
                )
            return receivers[spec]

        main = receiver("")
        if not main.permissive:
            log.info(
                "SMTP answers as receiver %s (%s): %d rules; refused messages are kept",
                main.profile.name,
                main.profile.origin,
                len(main.profile.rules),
            )
        self.smtp = SmtpServer(cfg, self.mailbox, self.bus, receiver=main)
        self.smtp_listeners = {"default": self.smtp}
        self.smtp.start()
        for text in cfg.smtp_listeners:
            spec = parse_listener(text)
            tls = spec.tls != "off"
            own = dataclasses.replace(
                cfg,
                smtp_addr=spec.addr,
                smtp_tls_cert=cfg.smtp_tls_cert if tls else "",
                smtp_tls_key=cfg.smtp_tls_key if tls else "",
                smtp_require_tls=spec.tls == "implicit",
                smtp_require_starttls=spec.tls == "starttls",
            )
            listener = SmtpServer(
                own,
                self.mailbox,
                self.bus,
                name=spec.name,
                auth_mode=spec.auth,
                receiver=receiver(spec.receiver),
            )
            self.smtp_listeners[spec.name] = listener
            listener.start()
            log.info(
                "SMTP listener %s on %s (tls %s, auth %s, receiver %s)",
                spec.name,
                listener.address_text,
                spec.tls,
                "required"
                if listener.login_required
                else ("optional" if listener.auth.enabled else "off"),
                listener.receiver.profile.name if listener.receiver else "permissive",
            )

    def listener_address(self, name: str) -> tuple[str, int]:
        """(host, port) of the SMTP listener of this name ("default" is --smtp's)."""
        listener = self.smtp_listeners.get(name)
        assert listener is not None, f"no SMTP listener named {name!r}"
        return listener.address

    def _start_integrations(self) -> None:
        """Metrics on their own listener and the webhook."""
        from mailpit_py.webapp.compress import Compress
        from mailpit_py.webapp.observe import metrics_app

        assert self.mailbox is not None
        cfg = self.config
        if cfg.enable_prometheus not in ("", "true"):
            reg = metrics.registry(self.mailbox, self)
            app = metrics_app(reg)
            if not cfg.disable_http_compression:  # as Mailpit's listener (promhttp) gzips
                app.wsgi_app = Compress(app.wsgi_app)  # type: ignore[method-assign]
            self.metrics_http = HttpServer(app, cfg.enable_prometheus)
            self.metrics_http.flag = "--enable-prometheus"
            self.metrics_http.start()
            log.info("Prometheus metrics on %s/metrics", self.metrics_http.url)
        if cfg.webhook_url:
            self.webhook = Webhook(
                cfg.webhook_url,
                self.bus,
                self.mailbox.telemetry,
                limit=cfg.webhook_limit,
                rate=cfg.webhook_rate,
                delay=cfg.webhook_delay,
                label=cfg.label,
            ).start()
            log.info("webhook: posting each new message to %s", cfg.webhook_url)

    def stop(self) -> None:
        """Stop listening, let in-flight messages commit, close (and maybe remove) the store."""
        if self.webhook is not None:
            self.webhook.stop()
            self.webhook = None
        if self.shared is not None:
            self.shared.stop()
            self.shared = None
        self.bus.close()  # websocket handlers end and close their sockets
        self._stop_mail_readers()
        if self.metrics_http is not None:
            self.metrics_http.stop()
            self.metrics_http = None
        if self.http is not None:
            self.http.stop()
            self.http = None
        for listener in reversed(list(self.smtp_listeners.values())):
            listener.stop()
        if self.smtp is not None and self.smtp not in self.smtp_listeners.values():
            self.smtp.stop()
        self.smtp_listeners = {}
        self.smtp = None
        if self.relay is not None:  # the outbox keeps what is not sent yet
            self.relay.stop()
            self.relay = None
        if self.checks is not None:
            self.checks.stop()
            self.checks = None
        if self.mailbox is not None:
            self.mailbox.close()
            self.mailbox = None

    @property
    def smtp_address(self) -> tuple[str, int]:
        """(host, port) the SMTP listener is bound to (the real port when 0 was asked)."""
        assert self.smtp is not None, "server not started"
        return self.smtp.address

    # -- POP3 and IMAP --

    def _start_mail_readers(self) -> None:
        assert self.mailbox is not None
        pop3 = access_for(self.config, "pop3")
        if pop3 is not None:
            self.pop3 = Pop3Server(pop3, self.mailbox, self.config.label)
            self.pop3.start()
            log.info("POP3 on %s:%d", *self.pop3.address)
        imap = access_for(self.config, "imap")
        if imap is not None:
            self.imap = ImapServer(imap, self.mailbox, self.config.label)
            self.imap.start()
            log.info("IMAP on %s:%d", *self.imap.address)

    def _stop_mail_readers(self) -> None:
        if self.pop3 is not None:
            self.pop3.stop()
            self.pop3 = None
        if self.imap is not None:
            self.imap.stop()
            self.imap = None

    @property
    def pop3_address(self) -> tuple[str, int]:
        """(host, port) of the POP3 listener (the real port when 0 was asked)."""
        assert self.pop3 is not None, "POP3 is not running (give --pop3 ADDR)"
        return self.pop3.address

    @property
    def imap_address(self) -> tuple[str, int]:
        """(host, port) of the IMAP listener (the real port when 0 was asked)."""
        assert self.imap is not None, "IMAP is not running (give --imap ADDR)"
        return self.imap.address

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
        return sum(listener.rejected for listener in self.smtp_listeners.values())

    def chaos(self) -> Chaos | None:
        """The live chaos triggers, or None when chaos is off (the API then answers 400)."""
        return self.smtp.chaos if self.smtp else None

    def not_ready(self) -> str:
        """Empty when SMTP, the store and HTTP all are up; else what is not."""
        if self.smtp is None or self.smtp.address == ("", 0):  # (a Unix socket has no port)
            return "SMTP is not listening"
        for name, listener in self.smtp_listeners.items():
            if listener.address == ("", 0):  # not bound (a Unix socket has no port)
                return f"SMTP listener {name} is not listening"
        if self.http is None:
            return "HTTP is not listening"
        if enabled(self.config, "pop3") and self.pop3 is None:
            return "POP3 is not listening"
        if self.config.imap_addr and self.imap is None:
            return "IMAP is not listening"
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
